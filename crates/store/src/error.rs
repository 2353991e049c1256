//! The store's one error type: the caller's mistakes, storage faults that clear by
//! themselves (retry later), and internal failures.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No project has that name or id.
    #[error("no project named {0:?}")]
    UnknownProject(String),
    /// A project with that name exists already.
    #[error("a project named {0:?} exists already")]
    ProjectExists(String),
    /// No person has that id (or they were deleted).
    #[error("no person has that id")]
    UnknownPerson,
    /// No deletion job has that id.
    #[error("no deletion job {0}")]
    UnknownDeletion(i64),
    /// Something of that name exists already (a segment).
    #[error("{0}")]
    Conflict(String),
    /// The name does not follow the naming rule.
    #[error("invalid project name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The events could not be made durable (disk full, fsync failure, I/O error). Nothing of
    /// the request was acknowledged; the client should retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another process (a running server) has the data folder open.
    #[error(
        "the data folder {0} is in use by another lodestar process (a running server?); stop it first"
    )]
    Locked(PathBuf),
    /// The store is shutting down.
    #[error("store is shutting down")]
    ShuttingDown,
    /// A persisted file is not what it should be.
    #[error("corrupt file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error outside the write path (opening, sealing, reading).
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An SQLite error outside the write path.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::UnknownProject(_) => "unknown_project",
            StoreError::ProjectExists(_) => "project_exists",
            StoreError::UnknownPerson => "unknown_person",
            StoreError::UnknownDeletion(_) => "unknown_deletion",
            StoreError::Conflict(_) => "conflict",
            StoreError::InvalidName { .. } => "invalid_name",
            StoreError::Unavailable(_) => "storage_unavailable",
            StoreError::ShuttingDown => "shutting_down",
            StoreError::Locked(_) => "data_dir_locked",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Io { .. } => "io",
            StoreError::Sqlite(_) => "sqlite",
        }
    }

    /// Whether the caller may retry later and succeed (the fault is in the environment).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::ShuttingDown)
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
