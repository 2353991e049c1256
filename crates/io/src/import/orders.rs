//! Orders files (CSV and Parquet): reading rows, and turning each row into a track message.
//!
//! Both readers hand rows to one [`RowMapper`] through the [`Cells`] trait, so a row of
//! either format is validated and mapped by the same code.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::str::Utf8Error;

use csv::ByteRecord;
use lodestar_core::{
    IdProblem, JsonMap, MAX_ID_CHARS, Message, MessageKind, Timestamp, check_distinct_id,
};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Number, Value};

use super::ids::{Occurrences, OrderIds, content_message_id, row_content_hash};
use super::mapping::{self, ColumnIndexes, OrdersMapping};
use super::values::{parse_amount, parse_time, text_value};
use super::{BOM, Delimiter, Problem, Run};
use crate::error::IoError;

/// One cell of a row, as its format gives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    /// Empty text, only white space, or null.
    Empty,
    /// Text, trimmed.
    Text(&'a str),
    /// A whole number (Parquet integers).
    Int(i64),
    /// A floating-point number (Parquet floats).
    Float(f64),
    /// A boolean (Parquet).
    Bool(bool),
    /// A point in time (Parquet timestamps).
    Time(Timestamp),
    /// A calendar date as days since 1970-01-01 (Parquet dates).
    Date(i32),
    /// Anything else, written as text (decimals, nested values).
    Other(String),
}

/// The cells of one row.
pub(crate) trait Cells {
    /// The cell at column `index`; an error when its bytes are not UTF-8.
    fn cell(&self, index: usize) -> Result<Cell<'_>, Utf8Error>;
}

/// The most characters of a cell quoted in a problem's message.
const QUOTE_CHARS: usize = 40;

fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// Turns rows into track messages by a resolved mapping.
pub(crate) struct RowMapper {
    headers: Vec<String>,
    columns: ColumnIndexes,
    event: String,
    currency: Option<String>,
    utc_offset_ms: i64,
    occurrences: Occurrences,
    order_ids: OrderIds,
}

impl RowMapper {
    pub(crate) fn new(
        headers: Vec<String>,
        columns: ColumnIndexes,
        mapping: &OrdersMapping,
        utc_offset_minutes: i32,
    ) -> Self {
        RowMapper {
            headers,
            columns,
            event: mapping.event.clone(),
            currency: mapping.currency.clone(),
            utc_offset_ms: i64::from(utc_offset_minutes) * 60_000,
            occurrences: Occurrences::default(),
            order_ids: OrderIds::new(&mapping.event),
        }
    }

    fn place(&self, index: usize) -> String {
        format!("column {}", self.headers[index])
    }

    fn cell<'r>(&self, row: &'r impl Cells, index: usize) -> Result<Cell<'r>, Problem> {
        row.cell(index).map_err(|_| {
            Problem::new(
                "invalid_utf8",
                self.place(index),
                "the cell is not UTF-8 text; save the file as UTF-8",
            )
        })
    }

    /// The message of one row, or why there is none.
    pub(crate) fn build(&mut self, row: &impl Cells) -> Result<Message, Problem> {
        let columns = &self.columns;
        let user_id = self.customer_id(row)?;
        let timestamp = self.timestamp(row)?;
        let revenue = match columns.amount {
            Some(index) => self.amount(row, index)?,
            None => None,
        };
        let order_id = match columns.order_id {
            Some(index) => plain_text(self.cell(row, index)?),
            None => None,
        };
        let row_currency = match columns.currency {
            Some(index) => plain_text(self.cell(row, index)?),
            None => None,
        };

        let mut properties = JsonMap::new();
        for (index, key) in &columns.others {
            if let Some(value) = cell_value(self.cell(row, *index)?) {
                properties.insert(key.clone(), value);
            }
        }
        if let Some(revenue) = revenue {
            properties.insert("revenue".to_string(), Value::Number(revenue));
        }
        if let Some(order_id) = &order_id {
            properties.insert("order_id".to_string(), Value::String(order_id.clone()));
        }
        if let Some(currency) = row_currency.or_else(|| self.currency.clone()) {
            properties.insert("currency".to_string(), Value::String(currency));
        }

        let message_id = match &order_id {
            Some(order_id) => self.order_ids.id(order_id),
            None => {
                let content =
                    row_content_hash(&self.event, &user_id, timestamp.millis(), &properties);
                content_message_id("row", content, self.occurrences.next(content))
            }
        };
        Ok(Message {
            message_id,
            kind: MessageKind::Track,
            event: Some(self.event.clone()),
            user_id: Some(user_id),
            anonymous_id: None,
            previous_id: None,
            group_id: None,
            category: None,
            timestamp,
            original_timestamp: None,
            sent_at: None,
            received_at: timestamp,
            properties,
            traits: JsonMap::new(),
            set_once: JsonMap::new(),
            context: JsonMap::new(),
            integrations: JsonMap::new(),
            channel: None,
        })
    }

    fn customer_id(&self, row: &impl Cells) -> Result<String, Problem> {
        let index = self.columns.customer_id;
        let id = match plain_text(self.cell(row, index)?) {
            Some(id) => id,
            None => {
                return Err(Problem::new(
                    "missing_id",
                    self.place(index),
                    "the customer id is blank",
                ));
            }
        };
        match check_distinct_id(&id) {
            Ok(()) => Ok(id),
            Err(IdProblem::Empty) => Err(Problem::new(
                "missing_id",
                self.place(index),
                "the customer id is blank",
            )),
            Err(IdProblem::TooLong { chars }) => Err(Problem::new(
                "id_too_long",
                self.place(index),
                format!("the customer id is {chars} characters long; the limit is {MAX_ID_CHARS}"),
            )),
            Err(IdProblem::Blocked(value)) => Err(Problem::new(
                "blocked_id",
                self.place(index),
                format!(
                    "the customer id {} is a placeholder, not a customer",
                    quote(&value)
                ),
            )),
        }
    }

    fn timestamp(&self, row: &impl Cells) -> Result<Timestamp, Problem> {
        let index = self.columns.timestamp;
        let offset_minutes = (self.utc_offset_ms / 60_000) as i32;
        let bad = |text: &str| {
            Problem::new(
                "invalid_timestamp",
                self.place(index),
                format!(
                    "{} is not a date or time this import reads (use YYYY-MM-DD [HH:MM:SS] or RFC 3339)",
                    quote(text)
                ),
            )
        };
        match self.cell(row, index)? {
            Cell::Empty => Err(Problem::new(
                "invalid_timestamp",
                self.place(index),
                "the order time is blank",
            )),
            Cell::Text(text) => parse_time(text, offset_minutes).ok_or_else(|| bad(text)),
            Cell::Other(text) => parse_time(&text, offset_minutes).ok_or_else(|| bad(&text)),
            Cell::Int(n) => {
                let text = n.to_string();
                parse_time(&text, offset_minutes).ok_or_else(|| bad(&text))
            }
            Cell::Time(at) => Ok(at),
            Cell::Date(days) => Ok(Timestamp(
                i64::from(days) * Timestamp::DAY - self.utc_offset_ms,
            )),
            Cell::Float(f) => Err(bad(&f.to_string())),
            Cell::Bool(b) => Err(bad(&b.to_string())),
        }
    }

    fn amount(&self, row: &impl Cells, index: usize) -> Result<Option<Number>, Problem> {
        let bad = |text: &str| {
            Problem::new(
                "invalid_amount",
                self.place(index),
                format!("{} is not an amount", quote(text)),
            )
        };
        let from_text = |text: &str| {
            parse_amount(text)
                .and_then(Number::from_f64)
                .map(Some)
                .ok_or_else(|| bad(text))
        };
        match self.cell(row, index)? {
            Cell::Empty => Ok(None),
            Cell::Text(text) => from_text(text),
            Cell::Other(text) => from_text(&text),
            Cell::Int(n) => Ok(Number::from_f64(n as f64)),
            Cell::Float(f) => Number::from_f64(f)
                .map(Some)
                .ok_or_else(|| bad(&f.to_string())),
            Cell::Bool(b) => Err(bad(&b.to_string())),
            Cell::Time(at) => Err(bad(&at.to_string())),
            Cell::Date(days) => Err(bad(&days.to_string())),
        }
    }
}

/// A cell as an id: text as it is, numbers written out; `None` when empty.
fn plain_text(cell: Cell<'_>) -> Option<String> {
    match cell {
        Cell::Empty => None,
        Cell::Text(text) => Some(text.to_string()),
        Cell::Other(text) => Some(text),
        Cell::Int(n) => Some(n.to_string()),
        Cell::Float(f) => Some(f.to_string()),
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Time(at) => Some(at.to_rfc3339()),
        Cell::Date(days) => {
            Some(Timestamp(i64::from(days) * Timestamp::DAY).to_rfc3339()[..10].to_string())
        }
    }
}

/// A cell as a property value; `None` for an empty cell.
fn cell_value(cell: Cell<'_>) -> Option<Value> {
    Some(match cell {
        Cell::Empty => return None,
        Cell::Text(text) => text_value(text),
        Cell::Other(text) => text_value(&text),
        Cell::Int(n) => Value::Number(n.into()),
        Cell::Float(f) => {
            Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
        }
        Cell::Bool(b) => Value::Bool(b),
        Cell::Time(at) => Value::String(at.to_rfc3339()),
        Cell::Date(days) => Value::String(
            Timestamp(i64::from(days) * Timestamp::DAY).to_rfc3339()[..10].to_string(),
        ),
    })
}

// ---- CSV ----

/// A CSV record's cells.
struct CsvRow<'r>(&'r ByteRecord);

impl Cells for CsvRow<'_> {
    fn cell(&self, index: usize) -> Result<Cell<'_>, Utf8Error> {
        let text = std::str::from_utf8(self.0.get(index).unwrap_or_default())?.trim();
        Ok(if text.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(text)
        })
    }
}

/// Where records come from: the `csv` parser, or white-space splitting.
///
/// The `csv` parser is set to end records at `\n` only, so a `\r` before it stays at the
/// end of the last field (cells are trimmed, and [`record_text`] drops it). That keeps
/// line numbers exact: `csv`'s own record positions lag behind after a `\r\n` or a
/// skipped blank line, so the start line is worked out from where the record ended.
enum Source {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        /// Where the data ends, when its last line has no `\n` (in the parser's bytes).
        unterminated_end: Option<u64>,
    },
    Words {
        input: BufReader<File>,
        line: Vec<u8>,
        line_no: u64,
        bytes: u64,
    },
}

impl Source {
    /// Reads the next record into `record`; returns the line it starts on, or `None` at
    /// the end of the file.
    fn next(&mut self, record: &mut ByteRecord, run: &Run<'_>) -> Result<Option<u64>, IoError> {
        match self {
            Source::Csv {
                reader,
                unterminated_end,
            } => match reader.read_byte_record(record) {
                Ok(true) => {
                    let end = reader.position();
                    let inner: usize = record
                        .iter()
                        .map(|f| f.iter().filter(|&&b| b == b'\n').count())
                        .sum();
                    let terminated = *unterminated_end != Some(end.byte());
                    Ok(Some(
                        end.line()
                            .saturating_sub(inner as u64 + u64::from(terminated))
                            .max(1),
                    ))
                }
                Ok(false) => Ok(None),
                Err(err) => Err(csv_error(run, err)),
            },
            Source::Words {
                input,
                line,
                line_no,
                bytes,
            } => loop {
                line.clear();
                let n = input
                    .read_until(b'\n', line)
                    .map_err(|source| IoError::Read {
                        path: run.path.to_path_buf(),
                        source,
                    })?;
                if n == 0 {
                    return Ok(None);
                }
                *line_no += 1;
                *bytes += n as u64;
                record.clear();
                for word in line
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                {
                    record.push_field(word);
                }
                if !record.is_empty() {
                    return Ok(Some(*line_no));
                }
            },
        }
    }

    /// Bytes consumed so far (after a byte order mark).
    fn bytes_read(&self) -> u64 {
        match self {
            Source::Csv { reader, .. } => reader.position().byte(),
            Source::Words { bytes, .. } => *bytes,
        }
    }
}

fn csv_error(run: &Run<'_>, err: csv::Error) -> IoError {
    let line = err.position().map_or(0, |p| p.line());
    match err.into_kind() {
        csv::ErrorKind::Io(source) => IoError::Read {
            path: run.path.to_path_buf(),
            source,
        },
        other => IoError::InvalidFile {
            path: run.path.to_path_buf(),
            reason: format!("line {line}: {other:?}"),
        },
    }
}

/// Guesses the delimiter from the first line: the most frequent of `,` `\t` `;` `|`
/// outside quotes; white space when there is none of them.
fn sniff_delimiter(head: &[u8]) -> Delimiter {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut counts = [0usize; 4];
    let candidates = [b',', b'\t', b';', b'|'];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = candidates.iter().position(|&c| c == b) {
            counts[i] += 1;
        }
    }
    let (best, &count) = counts
        .iter()
        .enumerate()
        .max_by_key(|&(i, count)| (*count, std::cmp::Reverse(i)))
        .unwrap_or((0, &0));
    if count > 0 {
        return Delimiter::Byte(candidates[best]);
    }
    let words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .count();
    if words > 1 {
        Delimiter::Whitespace
    } else {
        Delimiter::Byte(b',')
    }
}

/// A record as text for the quarantine: fields joined by the delimiter, quoted where
/// needed, invalid UTF-8 replaced.
fn record_text(record: &ByteRecord, delimiter: Delimiter) -> String {
    let separator = match delimiter {
        Delimiter::Byte(b) => char::from(b),
        Delimiter::Whitespace => ' ',
    };
    let mut out = String::new();
    let last = record.len().saturating_sub(1);
    for (i, field) in record.iter().enumerate() {
        if i > 0 {
            out.push(separator);
        }
        let field = if i == last {
            field.strip_suffix(b"\r").unwrap_or(field)
        } else {
            field
        };
        let text = String::from_utf8_lossy(field);
        if text.contains([separator, '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&text);
        }
        if out.len() > super::MAX_RAW_BYTES {
            break;
        }
    }
    out
}

/// Imports a CSV orders file.
pub(crate) fn import_csv(run: &mut Run<'_>, mut file: File) -> Result<OrdersMapping, IoError> {
    let read_error = |source| IoError::Read {
        path: run.path.to_path_buf(),
        source,
    };
    let ends_with_newline = last_byte(&mut file).map_err(read_error)? == Some(b'\n');
    let mut input = BufReader::with_capacity(1 << 20, file);
    let bom = if input.fill_buf().map_err(read_error)?.starts_with(BOM) {
        BOM.len()
    } else {
        0
    };
    input.consume(bom);
    let delimiter = match run.options.delimiter {
        Some(delimiter) => delimiter,
        None => sniff_delimiter(input.fill_buf().map_err(read_error)?),
    };
    let mut source = match delimiter {
        Delimiter::Byte(byte) => Source::Csv {
            reader: csv::ReaderBuilder::new()
                .delimiter(byte)
                .terminator(csv::Terminator::Any(b'\n'))
                .has_headers(false)
                .flexible(true)
                .buffer_capacity(1 << 16)
                .from_reader(input),
            unterminated_end: (!ends_with_newline).then(|| run.bytes_total - bom as u64),
        },
        Delimiter::Whitespace => Source::Words {
            input,
            line: Vec::with_capacity(256),
            line_no: 0,
            bytes: 0,
        },
    };

    let mut record = ByteRecord::new();
    let mut pending = None;
    let headers = if run.options.has_header {
        match source.next(&mut record, run)? {
            Some(_) => header_names(run, &record)?,
            None => Vec::new(),
        }
    } else {
        pending = source.next(&mut record, run)?;
        (1..=record.len()).map(|i| i.to_string()).collect()
    };
    let headers = mapping::tidy_headers(headers);
    let (mapping, columns) = mapping::resolve(
        run.path,
        &headers,
        &run.options.columns,
        &run.options.event,
        run.options.currency.as_deref(),
    )?;
    tracing::debug!(file = %run.path.display(), ?mapping, ?delimiter, "orders mapping");
    let mut mapper = RowMapper::new(
        headers.clone(),
        columns,
        &mapping,
        run.options.utc_offset_minutes,
    );

    loop {
        let line = match pending.take() {
            Some(line) => line,
            None => match source.next(&mut record, run)? {
                Some(line) => line,
                None => break,
            },
        };
        if record.iter().all(|f| f.trim_ascii().is_empty()) {
            continue; // a blank line
        }
        run.row();
        run.bytes_read = source.bytes_read() + bom as u64;
        if record.len() != headers.len() {
            let problem = Problem::new(
                "wrong_column_count",
                "",
                format!(
                    "the row has {} fields; the header has {}",
                    record.len(),
                    headers.len()
                ),
            );
            run.reject(line, problem, &record_text(&record, delimiter))?;
            continue;
        }
        match mapper.build(&CsvRow(&record)) {
            Ok(message) => run.accept(message)?,
            Err(problem) => run.reject(line, problem, &record_text(&record, delimiter))?,
        }
    }
    Ok(mapping)
}

/// The file's last byte (`None` when it is empty), leaving it positioned at the start.
fn last_byte(file: &mut File) -> std::io::Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut byte = [0u8];
    file.read_exact(&mut byte)?;
    file.rewind()?;
    Ok(Some(byte[0]))
}

fn header_names(run: &Run<'_>, record: &ByteRecord) -> Result<Vec<String>, IoError> {
    record
        .iter()
        .map(|field| {
            std::str::from_utf8(field).map(str::to_string).map_err(|_| IoError::InvalidFile {
                path: run.path.to_path_buf(),
                reason: "the header is not UTF-8 text (GBK or another legacy encoding?); save the file as UTF-8"
                    .to_string(),
            })
        })
        .collect()
}

// ---- Parquet ----

/// A Parquet row's fields, in schema order.
struct ParquetRow<'r>(Vec<&'r Field>);

impl Cells for ParquetRow<'_> {
    fn cell(&self, index: usize) -> Result<Cell<'_>, Utf8Error> {
        let Some(field) = self.0.get(index) else {
            return Ok(Cell::Empty);
        };
        Ok(match field {
            Field::Null => Cell::Empty,
            Field::Bool(b) => Cell::Bool(*b),
            Field::Byte(n) => Cell::Int(i64::from(*n)),
            Field::Short(n) => Cell::Int(i64::from(*n)),
            Field::Int(n) => Cell::Int(i64::from(*n)),
            Field::Long(n) => Cell::Int(*n),
            Field::UByte(n) => Cell::Int(i64::from(*n)),
            Field::UShort(n) => Cell::Int(i64::from(*n)),
            Field::UInt(n) => Cell::Int(i64::from(*n)),
            Field::ULong(n) => match i64::try_from(*n) {
                Ok(n) => Cell::Int(n),
                Err(_) => Cell::Other(n.to_string()),
            },
            Field::Float16(f) => Cell::Float(f.to_f64()),
            Field::Float(f) => Cell::Float(f64::from(*f)),
            Field::Double(f) => Cell::Float(*f),
            Field::Str(text) => {
                let text = text.trim();
                if text.is_empty() {
                    Cell::Empty
                } else {
                    Cell::Text(text)
                }
            }
            Field::Bytes(bytes) => {
                let text = std::str::from_utf8(bytes.data())?.trim();
                if text.is_empty() {
                    Cell::Empty
                } else {
                    Cell::Text(text)
                }
            }
            Field::Date(days) => Cell::Date(*days),
            Field::TimestampMillis(ms) => Cell::Time(Timestamp(*ms)),
            Field::TimestampMicros(us) => Cell::Time(Timestamp(us.div_euclid(1_000))),
            other => Cell::Other(other.to_string()),
        })
    }
}

/// Imports a Parquet orders file: one row per order, columns at the top level of the
/// schema (nested columns are kept as text).
pub(crate) fn import_parquet(run: &mut Run<'_>, file: File) -> Result<OrdersMapping, IoError> {
    let invalid = |reason: String| IoError::InvalidFile {
        path: run.path.to_path_buf(),
        reason,
    };
    let reader = SerializedFileReader::new(file)
        .map_err(|e| invalid(format!("not a readable Parquet file: {e}")))?;
    let meta = reader.metadata().file_metadata();
    let total_rows = meta.num_rows().max(1) as u64;
    let headers = mapping::tidy_headers(
        meta.schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
    );
    let (mapping, columns) = mapping::resolve(
        run.path,
        &headers,
        &run.options.columns,
        &run.options.event,
        run.options.currency.as_deref(),
    )?;
    let mut mapper = RowMapper::new(headers, columns, &mapping, run.options.utc_offset_minutes);
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| invalid(format!("cannot read rows: {e}")))?;
    for (n, row) in rows.enumerate() {
        let number = n as u64 + 1;
        let row = row.map_err(|e| invalid(format!("row {number}: {e}")))?;
        run.row();
        run.bytes_read = run.bytes_total.saturating_mul(number) / total_rows;
        let cells = ParquetRow(row.get_column_iter().map(|(_, field)| field).collect());
        match mapper.build(&cells) {
            Ok(message) => run.accept(message)?,
            Err(problem) => run.reject(number, problem, &row.to_string())?,
        }
    }
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows mapped per second, without a store: `cargo test --release -p lodestar-io
    /// parse_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    #[allow(clippy::print_stderr, reason = "prints the measurement")]
    fn parse_throughput() {
        let rows = 1_000_000;
        let mut data = String::from("order_id,customer_id,order_date,amount,channel,sku\n");
        for i in 0..rows {
            data.push_str(&format!(
                "SO{i:09},C{:08},2024-{:02}-{:02} 10:{:02}:00,{}.{:02},web,SKU-{:04}\n",
                i * 7 % 200_000,
                i % 12 + 1,
                i % 28 + 1,
                i % 60,
                i % 500,
                i % 100,
                i % 2000
            ));
        }
        let headers: Vec<String> = [
            "order_id",
            "customer_id",
            "order_date",
            "amount",
            "channel",
            "sku",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for with_order_ids in [true, false] {
            // Without detection the order id column is an ordinary property, and ids come
            // from the content rule.
            let hints = super::super::ColumnHints {
                customer_id: Some("customer_id".into()),
                timestamp: Some("order_date".into()),
                amount: Some("amount".into()),
                order_id: with_order_ids.then(|| "order_id".into()),
                currency_column: None,
                detect: false,
            };
            let (mapping, columns) = mapping::resolve(
                std::path::Path::new("bench.csv"),
                &headers,
                &hints,
                "Order Completed",
                None,
            )
            .unwrap();
            let headers = headers.clone();
            let mut mapper = RowMapper::new(headers, columns, &mapping, 0);
            let started = std::time::Instant::now();
            let mut reader = csv::ReaderBuilder::new().from_reader(data.as_bytes());
            let mut record = ByteRecord::new();
            let mut batch = Vec::with_capacity(10_000);
            let mut n = 0;
            while reader.read_byte_record(&mut record).unwrap() {
                batch.push(mapper.build(&CsvRow(&record)).unwrap());
                if batch.len() == 10_000 {
                    n += batch.len();
                    batch.clear();
                }
            }
            n += batch.len();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "order ids {with_order_ids}: {n} rows in {secs:.2} s: {:.0} rows/s",
                n as f64 / secs
            );
        }
    }

    #[test]
    fn sniffs_delimiters() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1,2,3"), Delimiter::Byte(b','));
        assert_eq!(sniff_delimiter(b"a\tb\tc\n"), Delimiter::Byte(b'\t'));
        assert_eq!(sniff_delimiter(b"a;b;\"x,y\"\n"), Delimiter::Byte(b';'));
        assert_eq!(
            sniff_delimiter(b" 00004 0001 19970101  2   29.33\r\n"),
            Delimiter::Whitespace
        );
        assert_eq!(sniff_delimiter(b"single\n"), Delimiter::Byte(b','));
    }

    #[test]
    fn record_text_quotes_what_needs_it() {
        let record = ByteRecord::from(vec!["a", "b,c", "say \"hi\""]);
        assert_eq!(
            record_text(&record, Delimiter::Byte(b',')),
            "a,\"b,c\",\"say \"\"hi\"\"\""
        );
    }
}
