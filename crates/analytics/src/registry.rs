//! Every analysis by name, taking its parameters as JSON and answering JSON: the one table
//! the HTTP API and the command line's `--json` both go through.
//!
//! Besides its own parameters every analysis takes `filters` (conditions on event properties
//! and person traits, see [`crate::filter`]) and `breakdown` (a property to split by): the
//! answer then gains `breakdown.groups`, the same analysis run once per value over the
//! persons with that value.

use serde::de::DeserializeOwned;
use serde_json::Value;

use lodestar_core::JsonMap;
use lodestar_store::Snapshot;

use crate::error::{AnalyticsError, Result};
use crate::filter::{Breakdown, Filters};
use crate::source::{PersonSource, SnapshotSource};
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

fn parse<T: DeserializeOwned>(kind: &str, params: &Value) -> std::result::Result<T, RunError> {
    T::deserialize(params).map_err(|e| RunError::Json {
        analysis: kind.to_string(),
        message: e.to_string(),
    })
}

fn json<T: serde::Serialize>(r: Result<T>) -> Result<Value> {
    r.map(|v| serde_json::to_value(v).expect("results serialize"))
}

/// Calls its argument with every canonical person's id and traits.
pub type TraitsVisitor<'a> = dyn Fn(&mut dyn FnMut(u64, &JsonMap)) -> Result<()> + 'a;

/// What an analysis reads: a snapshot of the events and a way to visit every canonical
/// person's traits (for person filters and breakdowns).
pub struct Data<'a> {
    /// The events.
    pub snapshot: &'a Snapshot,
    /// Calls the visitor with every canonical person's id and traits.
    pub traits: &'a TraitsVisitor<'a>,
}

/// Runs analysis `kind` with JSON `params` (its own, plus `filters` and `breakdown`).
pub fn run(
    kind: &str,
    params: &[u8],
    data: &Data<'_>,
    threads: usize,
) -> std::result::Result<Value, RunError> {
    if !ANALYSES.contains(&kind) {
        return Err(RunError::Unknown(kind.to_string()));
    }
    let mut params: Value = serde_json::from_slice(params).map_err(|e| RunError::Json {
        analysis: kind.to_string(),
        message: e.to_string(),
    })?;
    let (filters, breakdown) = match params.as_object_mut() {
        Some(map) => (map.remove("filters"), map.remove("breakdown")),
        None => (None, None),
    };
    let filters: Filters = match filters {
        Some(f) => parse(kind, &f).map_err(|e| in_field(e, "filters"))?,
        None => Filters::default(),
    };
    let breakdown: Option<Breakdown> = match breakdown {
        Some(b) => Some(parse(kind, &b).map_err(|e| in_field(e, "breakdown"))?),
        None => None,
    };
    filters.check()?;
    let allowed = if filters.persons.is_empty() {
        None
    } else {
        let mut kept = Vec::new();
        (data.traits)(&mut |person, traits| {
            if filters.persons.iter().all(|c| c.holds(traits)) {
                kept.push(person);
            }
        })?;
        Some(kept)
    };
    let source = SnapshotSource::filtered(data.snapshot, &filters, allowed, threads)?;
    let mut value = run_on(kind, &params, &source, threads)?;
    if let Some(b) = breakdown {
        let groups = crate::filter::groups(data, &b, &params, &source, threads)?;
        let mut out = Vec::with_capacity(groups.len());
        for (label, persons) in groups {
            let n = persons.len();
            let source = source.restricted(persons);
            out.push(serde_json::json!({
                "value": label,
                "persons": n,
                "result": run_on(kind, &params, &source, threads)?,
            }));
        }
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "breakdown".into(),
                serde_json::json!({"property": b.property, "groups": out}),
            );
        }
    }
    Ok(value)
}

/// Names the parameter a JSON error is in.
fn in_field(e: RunError, field: &str) -> RunError {
    match e {
        RunError::Json { analysis, message } => RunError::Json {
            analysis,
            message: format!("{field}: {message}"),
        },
        other => other,
    }
}

/// Runs analysis `kind` with its own parameters over `source`.
pub fn run_on(
    kind: &str,
    params: &Value,
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
