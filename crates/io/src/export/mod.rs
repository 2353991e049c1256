//! Export: a project's events, profiles and ingestion warnings, written to any
//! `Write + Send` (a file, stdout, a buffer).
//!
//! # Events
//! - **JSON lines**: one object per event, the Segment-shaped JSON of
//!   `lodestar_ingest::encode_message` plus `"personId"` (the canonical person). Lossless:
//!   importing the file into another project gives the same messages.
//! - **CSV** and **Parquet**: the columns [`EVENT_COLUMNS`]; `properties`, `traits` and
//!   `context` are JSON text (`{}` when empty). Fields outside these columns (`previousId`,
//!   `groupId`, `integrations`, `$set_once`, …) are only in JSON lines.
//!
//! # Profiles
//! [`PROFILE_COLUMNS`]; in CSV and Parquet, `user_ids` and `anonymous_ids` are joined by
//! `;` and `traits` is JSON text. JSON lines has the same fields, ids as arrays and traits
//! as an object.
//!
//! # Warnings
//! [`WARNING_COLUMNS`], newest first, as the store lists them.
//!
//! # Segments
//! A saved segment's members with chosen attributes, as a file or as webhook batch bodies:
//! see [`export_segment`] and [`segment_batches`].
//!
//! # Formats
//! Times are RFC 3339 UTC text in CSV and JSON lines, and `INT64 (TIMESTAMP(MILLIS,true))`
//! in Parquet; Parquet text is `BYTE_ARRAY (UTF8)` and pages are zstd-compressed. Every
//! CSV cell goes through [`neutralise`], so no cell runs as a spreadsheet formula.

mod segment;
mod table;

use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use lodestar_core::{JsonMap, Message, PersonId, ProjectId};
use lodestar_ingest::encode_message;
use lodestar_store::{EventStore, Profile, StoreError, WarningRow};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Format;
use crate::error::IoError;

pub use segment::{BatchEnvelope, SegmentExport, WebhookBatch, export_segment, segment_batches};
pub use table::neutralise;
use table::{Column, Datum, Kind, TableWriter};

/// The columns of the CSV and Parquet event exports, in order.
pub const EVENT_COLUMNS: [&str; 11] = [
    "message_id",
    "type",
    "event",
    "person_id",
    "user_id",
    "anonymous_id",
    "timestamp",
    "received_at",
    "properties",
    "traits",
    "context",
];

/// The columns of the CSV and Parquet profile exports, in order.
pub const PROFILE_COLUMNS: [&str; 7] = [
    "person_id",
    "identified",
    "user_ids",
    "anonymous_ids",
    "created_at",
    "updated_at",
    "traits",
];

/// The columns of the warning exports, in order.
pub const WARNING_COLUMNS: [&str; 7] = ["id", "at", "severity", "code", "field", "message", "raw"];

const EVENT_KINDS: [Kind; 11] = [
    Kind::Text,
    Kind::Text,
    Kind::OptText,
    Kind::Int,
    Kind::OptText,
    Kind::OptText,
    Kind::Time,
    Kind::Time,
    Kind::Text,
    Kind::Text,
    Kind::Text,
];
const PROFILE_KINDS: [Kind; 7] = [
    Kind::Int,
    Kind::Bool,
    Kind::Text,
    Kind::Text,
    Kind::Time,
    Kind::Time,
    Kind::Text,
];
const WARNING_KINDS: [Kind; 7] = [
    Kind::Int,
    Kind::Time,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
];

/// Warnings read from the store per page.
const WARNING_PAGE: usize = 1_000;

fn columns<const N: usize>(names: [&'static str; N], kinds: [Kind; N]) -> Vec<Column> {
    names
        .into_iter()
        .zip(kinds)
        .map(|(name, kind)| Column {
            name: name.into(),
            kind,
        })
        .collect()
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    /// The format written.
    pub format: Format,
    /// Rows (events, profiles, warnings) written.
    pub rows: u64,
    /// How long it took, in seconds.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrote {} rows as {} in {:.1} s",
            self.rows,
            self.format,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Writes every event of `project` to `out` in `format`. See the module docs for the
/// shapes. `out` is buffered here; pass it unbuffered.
pub fn export_events(
    store: &dyn EventStore,
    project: ProjectId,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary, IoError> {
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let rows = match format {
        Format::Jsonl => {
            let mut rows = 0;
            visit_events(store, project, |person, message| {
                let mut value = encode_message(&message);
                if let Value::Object(map) = &mut value {
                    map.insert("personId".to_string(), json!(person.0));
                }
                write_json_line(&mut out, &value)?;
                rows += 1;
                Ok(())
            })?;
            rows
        }
        Format::Csv | Format::Parquet => {
            let columns = columns(EVENT_COLUMNS, EVENT_KINDS);
            let sink: &mut (dyn Write + Send) = &mut out;
            let mut table = open_table(format, "events", &columns, sink)?;
            let mut rows = 0;
            visit_events(store, project, |person, message| {
                table.write(event_row(person, message))?;
                rows += 1;
                Ok(())
            })?;
            table.finish()?;
            rows
        }
    };
    out.flush().map_err(IoError::Write)?;
    Ok(ExportSummary {
        format,
        rows,
        elapsed: started.elapsed(),
    })
}

/// Writes every profile of `project` to `out` in `format`.
pub fn export_profiles(
    store: &dyn EventStore,
    project: ProjectId,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary, IoError> {
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let rows = match format {
        Format::Jsonl => {
            let mut rows = 0;
            visit_profiles(store, project, |p| {
                let value = json!({
                    "person_id": p.person.0,
                    "identified": p.identified,
                    "user_ids": p.user_ids,
                    "anonymous_ids": p.anonymous_ids,
                    "created_at": p.created_at.to_rfc3339(),
                    "updated_at": p.updated_at.to_rfc3339(),
                    "traits": p.traits,
                });
                write_json_line(&mut out, &value)?;
                rows += 1;
                Ok(())
            })?;
            rows
        }
        Format::Csv | Format::Parquet => {
            let columns = columns(PROFILE_COLUMNS, PROFILE_KINDS);
            let sink: &mut (dyn Write + Send) = &mut out;
            let mut table = open_table(format, "profiles", &columns, sink)?;
            let mut rows = 0;
            visit_profiles(store, project, |p| {
                table.write(vec![
                    Datum::Int(p.person.0 as i64),
                    Datum::Bool(p.identified),
                    Datum::Text(p.user_ids.join(";")),
                    Datum::Text(p.anonymous_ids.join(";")),
                    Datum::Time(p.created_at),
                    Datum::Time(p.updated_at),
                    Datum::Text(json_text(&p.traits)),
                ])?;
                rows += 1;
                Ok(())
            })?;
            table.finish()?;
            rows
        }
    };
    out.flush().map_err(IoError::Write)?;
    Ok(ExportSummary {
        format,
        rows,
        elapsed: started.elapsed(),
    })
}

/// Writes the ingestion warnings and quarantined items of `project`, newest first.
pub fn export_warnings(
    store: &dyn EventStore,
    project: ProjectId,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary, IoError> {
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut rows = 0;
    match format {
        Format::Jsonl => {
            for_each_warning(store, project, |w| {
                let value = json!({
                    "id": w.id,
                    "at": w.at.to_rfc3339(),
                    "severity": w.severity,
                    "code": w.code,
                    "field": w.field,
                    "message": w.message,
                    "raw": w.raw,
                });
                rows += 1;
                write_json_line(&mut out, &value)
            })?;
        }
        Format::Csv | Format::Parquet => {
            let columns = columns(WARNING_COLUMNS, WARNING_KINDS);
            let sink: &mut (dyn Write + Send) = &mut out;
            let mut table = open_table(format, "warnings", &columns, sink)?;
            for_each_warning(store, project, |w| {
                rows += 1;
                table.write(vec![
                    Datum::Int(w.id),
                    Datum::Time(w.at),
                    Datum::Text(w.severity),
                    Datum::Text(w.code),
                    Datum::Text(w.field),
                    Datum::Text(w.message),
                    Datum::Text(w.raw),
                ])
            })?;
            table.finish()?;
        }
    }
    out.flush().map_err(IoError::Write)?;
    Ok(ExportSummary {
        format,
        rows,
        elapsed: started.elapsed(),
    })
}

fn open_table<'w>(
    format: Format,
    name: &str,
    columns: &[Column],
    out: &'w mut (dyn Write + Send),
) -> Result<TableWriter<'w>, IoError> {
    match format {
        Format::Parquet => TableWriter::parquet(name, columns, out),
        Format::Csv | Format::Jsonl => TableWriter::csv(columns, out),
    }
}

fn event_row(person: PersonId, m: Message) -> Vec<Datum> {
    let opt = |s: Option<String>| s.map_or(Datum::Null, Datum::Text);
    vec![
        Datum::Text(m.message_id),
        Datum::Text(m.kind.as_str().to_string()),
        opt(m.event),
        Datum::Int(person.0 as i64),
        opt(m.user_id),
        opt(m.anonymous_id),
        Datum::Time(m.timestamp),
        Datum::Time(m.received_at),
        Datum::Text(json_text(&m.properties)),
        Datum::Text(json_text(&m.traits)),
        Datum::Text(json_text(&m.context)),
    ]
}

fn json_text(map: &JsonMap) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_string())
}

fn write_json_line(out: &mut impl Write, value: &Value) -> Result<(), IoError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| IoError::Write(e.into()))?;
    out.write_all(b"\n").map_err(IoError::Write)
}

/// Runs `f` on every event; an error of `f` stops the walk and is returned as it is.
fn visit_events(
    store: &dyn EventStore,
    project: ProjectId,
    mut f: impl FnMut(PersonId, Message) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let mut failure = None;
    let walked = store.for_each_event(project, &mut |person, _seq, message| {
        f(person, message).map_err(|e| {
            failure = Some(e);
            stop_walk()
        })
    });
    finish_walk(walked, failure)
}

/// Runs `f` on every profile; an error of `f` stops the walk and is returned as it is.
fn visit_profiles(
    store: &dyn EventStore,
    project: ProjectId,
    mut f: impl FnMut(Profile) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let mut failure = None;
    let walked = store.for_each_profile(project, &mut |profile| {
        f(profile).map_err(|e| {
            failure = Some(e);
            stop_walk()
        })
    });
    finish_walk(walked, failure)
}

/// The store's callbacks can only fail with a [`StoreError`]; this one stands for "the
/// export failed, see the error kept aside" and never reaches the caller.
fn stop_walk() -> StoreError {
    StoreError::Unavailable("export stopped".to_string())
}

fn finish_walk(walked: Result<(), StoreError>, failure: Option<IoError>) -> Result<(), IoError> {
    match failure {
        Some(err) => Err(err),
        None => walked.map_err(IoError::Store),
    }
}

/// Pages through all warnings, newest first.
fn for_each_warning(
    store: &dyn EventStore,
    project: ProjectId,
    mut f: impl FnMut(WarningRow) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let mut before = None;
    loop {
        let page = store.warnings(project, WARNING_PAGE, before)?;
        let last = page.len();
        for row in page {
            before = Some(row.id);
            f(row)?;
        }
        if last < WARNING_PAGE {
            return Ok(());
        }
    }
}
