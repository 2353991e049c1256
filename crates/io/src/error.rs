//! [`IoError`]: what can stop an import or an export as a whole.
//!
//! A bad row is not an error: it is counted and quarantined (see
//! [`crate::import::RowProblem`]). An `IoError` means the whole file could not be read or
//! written. Variants are grouped: the caller's mistakes (fix the command or the file), the
//! file system, and the store. Each has a stable [`IoError::code`].

use std::path::PathBuf;

use lodestar_store::StoreError;

/// Everything that stops an import or export.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    // ---- The caller's mistakes ----
    /// A format name that is none of `csv`, `jsonl`, `parquet`.
    #[error("unknown format {name:?}: expected csv, jsonl or parquet")]
    UnknownFormat {
        /// The name given.
        name: String,
    },
    /// No format was given and the file's extension names none.
    #[error(
        "cannot tell the format of {path} from its extension: name it .csv, .jsonl or .parquet, or give the format"
    )]
    FormatNotDetected {
        /// The file.
        path: PathBuf,
    },
    /// An option that cannot be used as given.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option (`delimiter`, `event`, …).
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A required column (customer id, timestamp) was not named and could not be found by
    /// its usual names.
    #[error(
        "{path}: found no {role} column (looked for {looked_for}); columns found: {}; name it explicitly",
        list(found)
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// What the column is for (`customer id`, `timestamp`).
        role: &'static str,
        /// The names tried.
        looked_for: String,
        /// The file's columns.
        found: Vec<String>,
    },
    /// A column named by the caller is not in the file.
    #[error(
        "{path}: no column {name:?} (given as the {role} column); columns found: {}",
        list(found)
    )]
    UnknownColumn {
        /// The file.
        path: PathBuf,
        /// What the column was to be used for.
        role: &'static str,
        /// The name given.
        name: String,
        /// The file's columns.
        found: Vec<String>,
    },
    /// The file's contents are not what its format needs (a JSON array instead of JSON
    /// lines, a header that is not UTF-8, a broken Parquet footer, …).
    #[error("{path}: {reason}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// The first rows were all rejected: almost surely the wrong columns or delimiter, so
    /// the import stops before anything is stored.
    #[error(
        "{path}: the first {rows} rows were all rejected ({reasons}); nothing was imported: check the columns and the delimiter"
    )]
    NothingImportable {
        /// The file.
        path: PathBuf,
        /// How many rows were read.
        rows: u64,
        /// The reasons with their counts (`invalid_timestamp 1000`).
        reasons: String,
    },

    // ---- The file system ----
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Write(#[source] std::io::Error),

    /// The consumer of an export (the webhook sender) stopped taking what it wrote; its
    /// own error says why.
    #[error("the export was stopped by its consumer")]
    Cancelled,

    // ---- Internal failures ----
    /// The Parquet library failed while writing.
    #[error("parquet writer: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IoError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            IoError::UnknownFormat { .. } => "unknown_format",
            IoError::FormatNotDetected { .. } => "format_not_detected",
            IoError::InvalidOption { .. } => "invalid_option",
            IoError::MissingColumn { .. } => "missing_column",
            IoError::UnknownColumn { .. } => "unknown_column",
            IoError::InvalidFile { .. } => "invalid_file",
            IoError::NothingImportable { .. } => "nothing_importable",
            IoError::Read { .. } => "read_failed",
            IoError::Write(_) => "write_failed",
            IoError::Cancelled => "cancelled",
            IoError::Parquet(_) => "parquet",
            IoError::Store(err) => err.code(),
        }
    }

    /// True when the caller can fix it by changing the command or the file (as opposed to
    /// a failing disk or store).
    pub fn is_user_error(&self) -> bool {
        match self {
            IoError::UnknownFormat { .. }
            | IoError::FormatNotDetected { .. }
            | IoError::InvalidOption { .. }
            | IoError::MissingColumn { .. }
            | IoError::UnknownColumn { .. }
            | IoError::InvalidFile { .. }
            | IoError::NothingImportable { .. } => true,
            IoError::Store(err) => matches!(err, StoreError::UnknownProject(_)),
            IoError::Read { .. } | IoError::Write(_) | IoError::Cancelled | IoError::Parquet(_) => {
                false
            }
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
