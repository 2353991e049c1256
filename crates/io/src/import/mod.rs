//! Import: a CSV, JSON lines or Parquet file streamed into a project.
//!
//! # Formats
//! - **JSON lines** (`.jsonl`, `.ndjson`, `.json`): one Segment call per line, as
//!   `lodestar export events --format jsonl` writes them or as an SDK sends them. Each line
//!   is decoded by `lodestar-ingest` on the route its `type` names (`track` when it has
//!   none), so it is validated exactly as the HTTP API validates it. The receive time of a
//!   line is its `receivedAt`, else its `sentAt`, `timestamp` or `originalTimestamp`, in
//!   that order; a line with none of them is rejected (`missing_timestamp`), since an
//!   import has no receive time of its own. Keys the decoder does not know (such as the
//!   export's `personId`) are ignored. The HTTP API's size limits are raised to 1 MiB a
//!   line, since a stored message (with its batch's `context` merged in) can be larger
//!   than the call that brought it.
//! - **CSV** (`.csv`, `.tsv`, `.txt`) and **Parquet** (`.parquet`): an orders export, one
//!   order a row. [`OrdersMapping`] says which columns hold the customer id, the time, the
//!   amount and the order id; columns not named are detected by common English and Chinese
//!   names. Each row becomes a track message: `userId` = customer id, `event` = the
//!   mapping's event (`Order Completed`), `timestamp` = the row's time, and `properties` =
//!   `revenue` (the amount as a number), `order_id`, `currency`, and every other column
//!   under its header (numbers as numbers where plainly numbers, see
//!   [`values::parse_plain_number`]; empty cells left out; a column named like one of the
//!   three mapped keys is kept as `column:<name>`).
//!
//!   `received_at` of an imported row is the row's own time. An import has no moment of
//!   arrival worth keeping: using the event time keeps each message a pure function of
//!   the file (so re-runs produce identical messages, not just identical ids) and means
//!   "no clock skew" to everything that compares the two.
//!
//! # Message ids (what makes re-runs idempotent)
//! The store drops a message whose `messageId` it has seen (within its dedup window, 7
//! days by default), so every imported row gets an id that depends only on the file:
//! - an orders row with an order id: `ord-` + hex xxh3-128 of (event name, order id). Rows
//!   repeating an order id are one order: the second and later are counted as duplicates.
//!   The same order in two files (overlapping exports) is stored once.
//! - an orders row without one (no order id column, or an empty cell): `row-` + hex
//!   xxh3-128 of the row's normalised content (event, customer id, time in ms, properties
//!   by sorted key, numbers by value) and of how many rows with the same content came
//!   before it in the file. Two identical rows in one file stay two events, and a re-run
//!   maps them to the same two ids.
//! - a JSON line with a `messageId`: kept. Without one: `jsonl-` + the same content rule
//!   over the decoded message.
//!
//! # Bad rows
//! A row that cannot be imported is counted by reason (the codes match the HTTP API's
//! where they mean the same: `invalid_timestamp`, `missing_id`, `blocked_id`,
//! `id_too_long`; and `invalid_amount`, `wrong_column_count`, `invalid_utf8`), quoted
//! with its line number in [`ImportSummary::examples`], and put in the project's
//! quarantine (`lodestar warnings`) with the field `line 17, column order_date` and the
//! row's text. Its neighbours go on. When the first 1,000 rows are all rejected the import
//! stops before storing anything ([`IoError::NothingImportable`]): that is a wrong column
//! or delimiter, not bad data.
//!
//! # Throughput
//! Files are streamed: CSV through `csv`'s `ByteRecord` with reused buffers, Parquet row
//! by row, JSON lines line by line. Messages go to the store in batches
//! ([`ImportOptions::batch_rows`]) with up to [`ImportOptions::max_in_flight`] batches
//! awaiting commit, so reading the file overlaps the store's commits.

mod ids;
mod jsonl;
mod mapping;
mod orders;
pub mod values;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lodestar_core::ProjectId;
use lodestar_store::{AppendBatch, AppendTicket, EventStore, Quarantined};
use serde::{Deserialize, Serialize};

use crate::Format;
use crate::error::IoError;

pub use mapping::{ColumnHints, OrdersMapping};

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The file's format; `None` reads it from the extension.
    pub format: Option<Format>,
    /// Columns of an orders file named by the caller; the rest are detected.
    pub columns: ColumnHints,
    /// The event name of every orders row. Default `Order Completed`.
    pub event: String,
    /// A currency code (`CNY`) stored as `properties.currency` of rows that name none.
    pub currency: Option<String>,
    /// The CSV field delimiter; `None` guesses it from the first line (`,` `\t` `;` `|`,
    /// else runs of white space).
    pub delimiter: Option<Delimiter>,
    /// Whether the first CSV line names the columns. Without a header, columns are named
    /// `1`, `2`, … and must be named in [`ImportOptions::columns`].
    pub has_header: bool,
    /// The offset from UTC, in minutes east, of order times written without one (480 for
    /// China Standard Time). Default 0: such times are UTC.
    pub utc_offset_minutes: i32,
    /// Messages (and rejected rows) sent to the store in one append. Default 10,000.
    pub batch_rows: usize,
    /// Appends awaiting commit before reading waits for the oldest. Default 12: enough
    /// that reading goes on while the writer syncs a group.
    pub max_in_flight: usize,
    /// Bad rows quoted in the summary. Default 20.
    pub max_examples: usize,
    /// Bad rows put in the quarantine; past this they are counted, and one entry says how
    /// many more there were. Default 10,000.
    pub max_quarantined: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: None,
            columns: ColumnHints::default(),
            event: DEFAULT_EVENT.to_string(),
            currency: None,
            delimiter: None,
            has_header: true,
            utc_offset_minutes: 0,
            batch_rows: 10_000,
            max_in_flight: 12,
            max_examples: 20,
            max_quarantined: 10_000,
        }
    }
}

/// The event name of an imported order unless the caller gives another.
pub const DEFAULT_EVENT: &str = "Order Completed";

/// The longest event name accepted, as the HTTP API's limit.
const MAX_EVENT_CHARS: usize = 200;

/// Rows all rejected, from the start, after which the import gives up.
const EARLY_ABORT_ROWS: u64 = 1_000;

/// The most bytes of a bad row kept in the quarantine.
const MAX_RAW_BYTES: usize = 2_048;

impl ImportOptions {
    /// Options that use exactly the columns of `mapping`, with its event and currency, and
    /// detect nothing.
    pub fn with_mapping(mapping: &OrdersMapping) -> ImportOptions {
        ImportOptions {
            columns: ColumnHints {
                customer_id: Some(mapping.customer_id.clone()),
                timestamp: Some(mapping.timestamp.clone()),
                amount: mapping.amount.clone(),
                order_id: mapping.order_id.clone(),
                currency_column: mapping.currency_column.clone(),
                detect: false,
            },
            event: mapping.event.clone(),
            currency: mapping.currency.clone(),
            ..ImportOptions::default()
        }
    }

    fn check(&self) -> Result<(), IoError> {
        let invalid = |option, reason: &str| {
            Err(IoError::InvalidOption {
                option,
                reason: reason.to_string(),
            })
        };
        if self.event.trim().is_empty() {
            return invalid("event", "the event name is blank");
        }
        if self.event.chars().count() > MAX_EVENT_CHARS {
            return invalid("event", "the event name is over 200 characters");
        }
        if self.utc_offset_minutes.abs() > 18 * 60 {
            return invalid("utc_offset_minutes", "an offset is at most 18 hours");
        }
        if self.batch_rows == 0 || self.max_in_flight == 0 {
            return invalid(
                "batch_rows",
                "batch_rows and max_in_flight must be at least 1",
            );
        }
        Ok(())
    }
}

/// How CSV fields are separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delimiter {
    /// One byte (`,`, `\t`, `;`, `|`); fields may be quoted with `"`.
    Byte(u8),
    /// Runs of spaces and tabs, with none at the ends counting; no quoting (the CDNOW
    /// files, fixed-width dumps).
    Whitespace,
}

impl Delimiter {
    /// Reads a delimiter as given on a command line: one ASCII character, `\t` or `tab`, or
    /// ` `, `space` or `whitespace` for [`Delimiter::Whitespace`].
    pub fn parse(text: &str) -> Result<Delimiter, IoError> {
        let invalid = |reason: &str| IoError::InvalidOption {
            option: "delimiter",
            reason: format!("{text:?}: {reason}"),
        };
        match text {
            "\\t" | "\t" | "tab" | "TAB" => Ok(Delimiter::Byte(b'\t')),
            " " | "space" | "whitespace" => Ok(Delimiter::Whitespace),
            _ => {
                let &[byte] = text.as_bytes() else {
                    return Err(invalid("a delimiter is one ASCII character"));
                };
                if !byte.is_ascii()
                    || matches!(byte, b'"' | b'\n' | b'\r')
                    || byte.is_ascii_alphanumeric()
                {
                    return Err(invalid("not usable as a delimiter"));
                }
                Ok(Delimiter::Byte(byte))
            }
        }
    }
}

/// How far an import has come; passed to the caller's callback after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Bytes of the file read so far (estimated from rows for Parquet).
    pub bytes_read: u64,
    /// The file's size in bytes.
    pub bytes_total: u64,
    /// Rows (lines) read so far.
    pub rows: u64,
    /// Rows rejected so far.
    pub rejected: u64,
}

/// One bad row, as quoted in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProblem {
    /// The line in the file where the row starts (1-based, the header counting); for
    /// Parquet, the row number (1-based).
    pub line: u64,
    /// The stable code of the reason.
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSummary {
    /// The file.
    pub file: PathBuf,
    /// Its format.
    pub format: Format,
    /// The columns used (CSV, Parquet).
    pub mapping: Option<OrdersMapping>,
    /// Rows read (data rows and JSON lines; the header and blank lines do not count).
    /// Always `stored + duplicates + rejected`.
    pub rows: u64,
    /// Messages stored.
    pub stored: u64,
    /// Messages the store had already (a re-run, a repeated order id).
    pub duplicates: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Rejected rows by reason code.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// The first bad rows, up to [`ImportOptions::max_examples`].
    pub examples: Vec<RowProblem>,
    /// Warnings recorded about stored messages (an id dropped as a placeholder, an
    /// identity that could not be merged).
    pub warnings: u64,
    /// How long the import took, in seconds.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        };
        writeln!(
            f,
            "{}: {} rows in {:.1} s ({:.0} rows/s)",
            self.file.display(),
            self.rows,
            secs,
            rate
        )?;
        if let Some(m) = &self.mapping {
            write!(
                f,
                "  columns: customer id {:?}, time {:?}",
                m.customer_id, m.timestamp
            )?;
            if let Some(amount) = &m.amount {
                write!(f, ", amount {amount:?}")?;
            }
            if let Some(order_id) = &m.order_id {
                write!(f, ", order id {order_id:?}")?;
            }
            writeln!(f, "; event {:?}", m.event)?;
        }
        writeln!(f, "  stored      {}", self.stored)?;
        writeln!(f, "  duplicates  {}", self.duplicates)?;
        write!(f, "  rejected    {}", self.rejected)?;
        if !self.rejected_by_reason.is_empty() {
            let reasons: Vec<String> = self
                .rejected_by_reason
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            write!(f, " ({})", reasons.join(", "))?;
        }
        writeln!(f)?;
        if self.warnings > 0 {
            writeln!(f, "  warnings    {}", self.warnings)?;
        }
        if !self.examples.is_empty() {
            writeln!(f, "  first problems:")?;
            for p in &self.examples {
                writeln!(f, "    line {}: {}: {}", p.line, p.code, p.message)?;
            }
        }
        Ok(())
    }
}

/// Imports one file into `project`.
///
/// Reads the file once, streaming, and returns when every batch is durable. `progress`
/// is called after each batch is sent and once at the end. Bad rows do not fail the
/// import (see the module docs); an `Err` means the file could not be read at all, the
/// columns could not be found, or the store failed (then batches sent before the failure
/// are stored, and a re-run completes the import without doubling them).
pub fn import_file(
    store: &dyn EventStore,
    project: ProjectId,
    path: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportSummary, IoError> {
    options.check()?;
    let format = match options.format {
        Some(format) => format,
        None => {
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
            {
                return Err(IoError::InvalidFile {
                    path: path.to_path_buf(),
                    reason: "compressed files are not read; decompress it first".to_string(),
                });
            }
            Format::from_path(path).ok_or_else(|| IoError::FormatNotDetected {
                path: path.to_path_buf(),
            })?
        }
    };
    let read_error = |source| IoError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let bytes_total = file.metadata().map_err(read_error)?.len();
    let mut run = Run {
        store,
        project,
        path,
        format,
        options,
        progress,
        started: Instant::now(),
        bytes_total,
        bytes_read: 0,
        batch: AppendBatch {
            messages: Vec::with_capacity(options.batch_rows.min(MAX_PRESIZED_BATCH)),
            ..AppendBatch::default()
        },
        in_flight: VecDeque::new(),
        sent_any: false,
        accepted: 0,
        rows: 0,
        stored: 0,
        duplicates: 0,
        warnings: 0,
        rejected: 0,
        by_reason: BTreeMap::new(),
        examples: Vec::new(),
        quarantined: 0,
    };
    let mapping = match format {
        Format::Csv => Some(orders::import_csv(&mut run, file)?),
        Format::Parquet => Some(orders::import_parquet(&mut run, file)?),
        Format::Jsonl => {
            jsonl::import_jsonl(&mut run, file)?;
            None
        }
    };
    run.finish()?;
    tracing::info!(
        file = %path.display(),
        rows = run.rows,
        stored = run.stored,
        duplicates = run.duplicates,
        rejected = run.rejected,
        "import finished"
    );
    Ok(ImportSummary {
        file: path.to_path_buf(),
        format,
        mapping,
        rows: run.rows,
        stored: run.stored,
        duplicates: run.duplicates,
        rejected: run.rejected,
        rejected_by_reason: run.by_reason,
        examples: run.examples,
        warnings: run.warnings,
        elapsed: run.started.elapsed(),
    })
}

/// A bad row, before it is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub code: &'static str,
    pub message: String,
    /// Where in the row: `column order_date`, `field userId`; empty for the whole row.
    pub place: String,
}

impl Problem {
    pub(crate) fn new(
        code: &'static str,
        place: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            code,
            message: message.into(),
            place: place.into(),
        }
    }
}

/// One import under way: the batch being filled, the appends awaiting commit, and the
/// counts.
pub(crate) struct Run<'a> {
    store: &'a dyn EventStore,
    project: ProjectId,
    pub path: &'a Path,
    format: Format,
    pub options: &'a ImportOptions,
    progress: &'a mut dyn FnMut(Progress),
    started: Instant,
    pub bytes_total: u64,
    pub bytes_read: u64,
    batch: AppendBatch,
    in_flight: VecDeque<AppendTicket>,
    sent_any: bool,
    accepted: u64,
    rows: u64,
    stored: u64,
    duplicates: u64,
    warnings: u64,
    rejected: u64,
    by_reason: BTreeMap<String, u64>,
    examples: Vec<RowProblem>,
    quarantined: u64,
}

impl Run<'_> {
    /// Counts a row read; call once per data row or JSON line.
    pub(crate) fn row(&mut self) {
        self.rows += 1;
    }

    /// Queues an accepted message, sending the batch when it is full.
    pub(crate) fn accept(&mut self, message: lodestar_core::Message) -> Result<(), IoError> {
        self.accepted += 1;
        self.batch.messages.push(message);
        self.send_if_full()
    }

    /// Queues a warning about an accepted message.
    pub(crate) fn warn(&mut self, warning: Quarantined) {
        self.batch.warnings.push(warning);
    }

    /// Counts, quotes and quarantines a bad row. `line` is where it starts; `raw` its text.
    pub(crate) fn reject(&mut self, line: u64, problem: Problem, raw: &str) -> Result<(), IoError> {
        self.rejected += 1;
        *self.by_reason.entry(problem.code.to_string()).or_insert(0) += 1;
        if self.examples.len() < self.options.max_examples {
            let message = if problem.place.is_empty() {
                problem.message.clone()
            } else {
                format!("{}: {}", problem.place, problem.message)
            };
            self.examples.push(RowProblem {
                line,
                code: problem.code.to_string(),
                message,
            });
        }
        if self.quarantined < self.options.max_quarantined {
            self.quarantined += 1;
            let unit = if self.format == Format::Parquet {
                "row"
            } else {
                "line"
            };
            let field = if problem.place.is_empty() {
                format!("{unit} {line}")
            } else {
                format!("{unit} {line}, {}", problem.place)
            };
            self.batch.rejected.push(Quarantined {
                code: problem.code.to_string(),
                message: problem.message,
                field,
                raw: truncate(raw, MAX_RAW_BYTES).to_string(),
            });
        }
        if !self.sent_any && self.accepted == 0 && self.rows >= EARLY_ABORT_ROWS {
            let reasons: Vec<String> = self
                .by_reason
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            return Err(IoError::NothingImportable {
                path: self.path.to_path_buf(),
                rows: self.rows,
                reasons: reasons.join(", "),
            });
        }
        self.send_if_full()
    }

    fn send_if_full(&mut self) -> Result<(), IoError> {
        if self.batch.messages.len() + self.batch.rejected.len() >= self.options.batch_rows {
            self.send()?;
        }
        Ok(())
    }

    /// Sends the batch, first waiting for the oldest append when too many are in flight.
    fn send(&mut self) -> Result<(), IoError> {
        while self.in_flight.len() >= self.options.max_in_flight {
            self.settle_oldest()?;
        }
        let batch = std::mem::replace(
            &mut self.batch,
            AppendBatch {
                messages: Vec::with_capacity(self.options.batch_rows.min(MAX_PRESIZED_BATCH)),
                ..AppendBatch::default()
            },
        );
        if !(batch.messages.is_empty() && batch.rejected.is_empty() && batch.warnings.is_empty()) {
            self.in_flight
                .push_back(self.store.append(self.project, batch)?);
            self.sent_any = true;
        }
        (self.progress)(Progress {
            bytes_read: self.bytes_read.min(self.bytes_total),
            bytes_total: self.bytes_total,
            rows: self.rows,
            rejected: self.rejected,
        });
        Ok(())
    }

    fn settle_oldest(&mut self) -> Result<(), IoError> {
        if let Some(ticket) = self.in_flight.pop_front() {
            let outcome = ticket.wait_blocking()?;
            self.stored += outcome.stored as u64;
            self.duplicates += outcome.duplicates as u64;
            self.warnings += outcome.warnings as u64;
        }
        Ok(())
    }

    /// Sends what is left and waits for every append.
    fn finish(&mut self) -> Result<(), IoError> {
        let unlisted = self.rejected - self.quarantined;
        if unlisted > 0 {
            self.batch.rejected.push(Quarantined {
                code: "rejections_not_listed".to_string(),
                message: format!(
                    "{unlisted} more rejected rows of this import are not listed; the import summary counts them by reason"
                ),
                field: format!("file {}", self.path.display()),
                raw: String::new(),
            });
        }
        self.bytes_read = self.bytes_total;
        self.send()?;
        while !self.in_flight.is_empty() {
            self.settle_oldest()?;
        }
        Ok(())
    }
}

/// The longest prefix of `text` within `max` bytes that ends on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The most messages a batch makes room for in advance (more than this still fit).
const MAX_PRESIZED_BATCH: usize = 50_000;

/// The UTF-8 byte order mark.
pub(crate) const BOM: &[u8] = b"\xef\xbb\xbf";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_parse() {
        assert_eq!(Delimiter::parse(",").unwrap(), Delimiter::Byte(b','));
        assert_eq!(Delimiter::parse("\\t").unwrap(), Delimiter::Byte(b'\t'));
        assert_eq!(Delimiter::parse(" ").unwrap(), Delimiter::Whitespace);
        assert_eq!(Delimiter::parse(";").unwrap(), Delimiter::Byte(b';'));
        for bad in ["", ",,", "\"", "a", "，"] {
            assert!(Delimiter::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("订单号", 4), "订");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
