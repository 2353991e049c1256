//! Every analysis by name, taking its parameters as JSON and answering JSON: the one table
//! the HTTP API and the command line's `--json` both go through.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{AnalyticsError, Result};
use crate::source::PersonSource;
use crate::spec;

/// The analyses' names, as the API path and `lodestar report` spell them.
pub const ANALYSES: &[&str] = &["funnel", "retention", "lifecycle", "stages", "rfm"];

/// Why a named analysis did not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No analysis has that name.
    #[error("no analysis {0:?}; there are {list}", list = ANALYSES.join(", "))]
    Unknown(String),
    /// The parameters are not the analysis's JSON shape.
    #[error("the {analysis} parameters: {message}")]
    Json {
        /// Which analysis.
        analysis: String,
        /// What serde said.
        message: String,
    },
    /// The analysis refused its parameters or failed.
    #[error(transparent)]
    Analysis(#[from] AnalyticsError),
}

fn parse<T: DeserializeOwned>(kind: &str, params: &[u8]) -> std::result::Result<T, RunError> {
    serde_json::from_slice(params).map_err(|e| RunError::Json {
        analysis: kind.to_string(),
        message: e.to_string(),
    })
}

fn json<T: serde::Serialize>(r: Result<T>) -> Result<Value> {
    r.map(|v| serde_json::to_value(v).expect("results serialize"))
}

/// Runs analysis `kind` with JSON `params` over `source`.
pub fn run(
    kind: &str,
    params: &[u8],
    source: &dyn PersonSource,
    threads: usize,
) -> std::result::Result<Value, RunError> {
    let value = match kind {
        "funnel" => {
            let s: spec::FunnelSpec = parse(kind, params)?;
            json(crate::funnel(source, &s.query(threads)?))?
        }
        "retention" => {
            let s: spec::RetentionSpec = parse(kind, params)?;
            json(crate::retention(source, &s.query(threads)?))?
        }
        "lifecycle" => {
            let s: spec::LifecycleSpec = parse(kind, params)?;
            json(crate::lifecycle(source, &s.query(threads)?))?
        }
        "stages" => {
            let s: spec::StagesSpec = parse(kind, params)?;
            json(crate::stages(source, &s.query(threads)?))?
        }
        "rfm" => {
            let s: crate::rfm::RfmSpec = parse(kind, params)?;
            json(crate::rfm::rfm(source, &s.query(threads)?))?
        }
        _ => return Err(RunError::Unknown(kind.to_string())),
    };
    Ok(value)
}
