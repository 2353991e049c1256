//! Errors of the analytics crate: bad parameters (the caller's mistake, naming the field) and
//! failures reading the store.

/// Result with [`AnalyticsError`].
pub type Result<T> = std::result::Result<T, AnalyticsError>;

/// What went wrong in an analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// A parameter is invalid; `field` names it as the API and CLI spell it.
    #[error("{field}: {message}")]
    Invalid {
        /// The parameter (`steps[1]`, `window`, `timezone`, …).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] lodestar_store::StoreError),
}

impl AnalyticsError {
    /// An invalid parameter.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> AnalyticsError {
        AnalyticsError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Stable code: `invalid_parameter` or the store's code.
    pub fn code(&self) -> &'static str {
        match self {
            AnalyticsError::Invalid { .. } => "invalid_parameter",
            AnalyticsError::Store(e) => e.code(),
        }
    }

    /// The offending field (empty for store failures).
    pub fn field(&self) -> &str {
        match self {
            AnalyticsError::Invalid { field, .. } => field,
            AnalyticsError::Store(_) => "",
        }
    }
}
