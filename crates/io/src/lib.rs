//! Import and export of Lodestar data: orders and events in, events, profiles and warnings
//! out, as CSV, JSON lines or Parquet.
//!
//! # Map
//! - [`import`]: [`import_file`] streams a file into a project. JSON lines are Segment
//!   calls, decoded by `lodestar-ingest` exactly as the HTTP API decodes them; CSV and
//!   Parquet are "orders exports" (one order a row), mapped to track messages by
//!   [`OrdersMapping`]. Every row gets a deterministic message id, so importing the same
//!   file twice stores nothing new. Bad rows are counted, quoted in the summary and put in
//!   the project's quarantine; good rows go on.
//! - [`export`]: [`export_events`], [`export_profiles`] and [`export_warnings`] write a
//!   project's data. JSON lines of events are lossless and import back unchanged; CSV cells
//!   that a spreadsheet would run as formulas are neutralised. [`export_segment`] writes a
//!   saved segment's members with chosen attributes; [`segment_batches`] cuts them into
//!   webhook bodies (the server sends them).
//! - [`error`]: [`IoError`], the one error type, with a stable code per variant.
//!
//! # Invariants
//! - **Streaming.** Neither direction holds a whole file or a whole project in memory:
//!   imports read row by row and send batches, exports write event by event (Parquet keeps
//!   one row group at a time).
//! - **No HTTP, no clock.** The store is reached only through
//!   [`lodestar_store::EventStore`]; time comes from the data, never from the wall clock
//!   (elapsed times in summaries are measured with [`std::time::Instant`] and are for
//!   people only).
//! - **Nothing is dropped silently.** Every row read is stored, counted as a duplicate, or
//!   rejected with its line number and reason.

pub mod error;
pub mod export;
pub mod import;

use std::path::Path;

pub use error::IoError;
pub use export::{
    BatchEnvelope, ExportSummary, SegmentExport, WebhookBatch, export_events, export_profiles,
    export_segment, export_warnings, segment_batches,
};
pub use import::{
    ColumnHints, Delimiter, ImportOptions, ImportSummary, OrdersMapping, Progress, RowProblem,
    import_file,
};

/// A file format Lodestar reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values (or another delimiter, see [`Delimiter`]).
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format's name as the CLI spells it: `csv`, `jsonl`, `parquet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    /// The format of a name (`csv`, `jsonl`, `ndjson`, `json`, `parquet`, `tsv`, `txt`), any
    /// case.
    pub fn parse(name: &str) -> Result<Format, IoError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            "parquet" | "pq" => Ok(Format::Parquet),
            _ => Err(IoError::UnknownFormat {
                name: name.to_string(),
            }),
        }
    }

    /// The format a file's extension names, if any (`orders.csv`, `events.ndjson`).
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?;
        Format::parse(extension).ok()
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = IoError;

    fn from_str(s: &str) -> Result<Format, IoError> {
        Format::parse(s)
    }
}
