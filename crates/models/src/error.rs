//! The crate's one error type.
//!
//! Every variant has a stable [`ModelError::code`] that callers (the server's error table, the
//! CLI) can match on; messages are lowercase and carry the offending record where there is one.

/// Why data could not be summarised, a model could not be fitted, or an input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// There is no customer (or no transaction) to work with.
    #[error("no customers in the data")]
    EmptyData,
    /// A model of spend needs customers with at least one repeat purchase.
    #[error("no repeat buyers in the data")]
    NoRepeatBuyers,
    /// Every customer has frequency 0, so the purchase process cannot be identified.
    #[error("every customer has zero repeat purchases")]
    AllZeroFrequency,
    /// A value is NaN or infinite.
    #[error("non-finite {field} in record {index}")]
    NonFinite {
        /// Which input field.
        field: &'static str,
        /// Position of the record in the input.
        index: usize,
    },
    /// A customer's recency (last − first purchase) is larger than their age.
    #[error("recency {recency} exceeds age {age} in record {index}")]
    RecencyExceedsAge {
        /// Position of the record in the input.
        index: usize,
        /// The recency given.
        recency: f64,
        /// The age given.
        age: f64,
    },
    /// A value is outside its domain (a negative time, a zero weight, a non-positive spend …).
    #[error("invalid {field} {value} in record {index}: {reason}")]
    InvalidValue {
        /// Which input field.
        field: &'static str,
        /// Position of the record in the input.
        index: usize,
        /// The value given.
        value: f64,
        /// What the value must satisfy.
        reason: &'static str,
    },
    /// A model parameter or an option is outside its domain.
    #[error("invalid {name} {value}: {reason}")]
    InvalidParameter {
        /// Which parameter or option.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What the value must satisfy.
        reason: &'static str,
    },
    /// The optimiser stopped before reaching a maximum of the likelihood.
    #[error("fit did not converge after {iterations} iterations (gradient norm {gradient_norm:e})")]
    NotConverged {
        /// Optimiser iterations used.
        iterations: usize,
        /// Largest absolute gradient component (per customer, in log-parameters) at the stop.
        gradient_norm: f64,
    },
}

impl ModelError {
    /// A stable machine-readable code, one per variant.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyData => "empty_data",
            Self::NoRepeatBuyers => "no_repeat_buyers",
            Self::AllZeroFrequency => "all_zero_frequency",
            Self::NonFinite { .. } => "non_finite_value",
            Self::RecencyExceedsAge { .. } => "recency_exceeds_age",
            Self::InvalidValue { .. } => "invalid_value",
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::NotConverged { .. } => "not_converged",
        }
    }

    /// True when the caller's data or options are at fault (as opposed to a numerical failure
    /// of the fit on data that was valid).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::NotConverged { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            ModelError::EmptyData,
            ModelError::NoRepeatBuyers,
            ModelError::AllZeroFrequency,
            ModelError::NonFinite {
                field: "age",
                index: 0,
            },
            ModelError::RecencyExceedsAge {
                index: 0,
                recency: 2.0,
                age: 1.0,
            },
            ModelError::InvalidValue {
                field: "weight",
                index: 0,
                value: 0.0,
                reason: "must be > 0",
            },
            ModelError::InvalidParameter {
                name: "r",
                value: -1.0,
                reason: "must be > 0",
            },
            ModelError::NotConverged {
                iterations: 1,
                gradient_norm: 1.0,
            },
        ];
        let mut codes: Vec<_> = all.iter().map(ModelError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(all[3].to_string(), "non-finite age in record 0");
    }
}
