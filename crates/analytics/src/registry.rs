//! Every analysis by name, taking its parameters as JSON and answering JSON: the one table
//! the HTTP API and the command line's `--json` both go through.
//!
//! Besides its own parameters every analysis takes `filters` (conditions on event properties
//! and person traits, see [`crate::filter`]) and `breakdown` (a property to split by): the
//! answer then gains `breakdown.groups`, the same analysis run once per value over the
//! persons with that value.

use serde::de::DeserializeOwned;
use serde_json::Value;

use lodestar_store::{Profile, ProjectSettings, Snapshot};

use crate::error::{AnalyticsError, Result};
use crate::filter::{Breakdown, Filters};
use crate::source::{PersonSource, SnapshotSource};
use crate::spec;

/// The analyses' names, as the API path and `lodestar report` spell them.
pub const ANALYSES: &[&str] = &[
    "funnel",
    "retention",
    "lifecycle",
    "stages",
    "rfm",
    "paths",
    "stickiness",
    "journey",
    "winback",
    "trends",
    "north_star",
    "nps",
    "kfactor",
    "clv",
    "bgbb",
    "churn",
];

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

impl From<lodestar_store::StoreError> for RunError {
    fn from(e: lodestar_store::StoreError) -> RunError {
        RunError::Analysis(e.into())
    }
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

/// Calls its argument with every canonical person's profile (id, user ids, traits).
pub type ProfileVisitor<'a> = dyn Fn(&mut dyn FnMut(&Profile)) -> Result<()> + 'a;

/// What an analysis reads: a snapshot of the events, the project's settings, and a way to
/// visit every canonical person's profile (for person filters, breakdowns and referrals).
pub struct Data<'a> {
    /// The events.
    pub snapshot: &'a Snapshot,
    /// The project's time zone and default parameters.
    pub settings: &'a ProjectSettings,
    /// Visits every canonical person's profile.
    pub profiles: &'a ProfileVisitor<'a>,
    /// Finds the persons of user ids directly, when the data can (a store's index); without
    /// it, analyses that need it visit every profile.
    pub person_of_user: Option<&'a UserLookup<'a>>,
}

/// A lookup of user ids' canonical persons (None for ids nobody has), in order.
pub type UserLookup<'a> = dyn Fn(&[String]) -> Result<Vec<Option<u64>>> + 'a;

/// The analyses pinned to the dashboard's overview (`defaults.dashboard`): a list of
/// `{"title", "route"}`, the route being the page's address in the dashboard.
fn check_pins(value: &Value) -> std::result::Result<(), RunError> {
    let Value::Array(pins) = value else {
        return Err(
            AnalyticsError::invalid("defaults.dashboard", "a list of {title, route}").into(),
        );
    };
    for (i, pin) in pins.iter().enumerate() {
        for key in ["title", "route"] {
            if !pin
                .get(key)
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 2000))
            {
                return Err(AnalyticsError::invalid(
                    format!("defaults.dashboard[{i}].{key}"),
                    "a text of 1 to 2000 characters",
                )
                .into());
            }
        }
    }
    Ok(())
}

/// [`run`] on a project of a store: a snapshot now, its settings, its profiles.
pub fn run_on_store(
    store: &lodestar_store::Store,
    project: &lodestar_store::ProjectInfo,
    kind: &str,
    params: &[u8],
    threads: usize,
) -> std::result::Result<Value, RunError> {
    let snapshot = store.snapshot(project.id)?;
    let profiles = |f: &mut dyn FnMut(&Profile)| {
        lodestar_store::EventStore::for_each_profile(store, project.id, &mut |p| {
            f(&p);
            Ok(())
        })
        .map_err(AnalyticsError::from)
    };
    let settings = store.project_settings(project.id)?;
    let lookup = |users: &[String]| -> Result<Vec<Option<u64>>> {
        Ok(store.persons_of_users(project.id, users)?)
    };
    let data = Data {
        snapshot: &snapshot,
        settings: &settings,
        profiles: &profiles,
        person_of_user: Some(&lookup),
    };
    run(kind, params, &data, threads)
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
    apply_defaults(kind, &mut params, data.settings);
    let (filters, breakdown) = match params.as_object_mut() {
        Some(map) => (map.remove("filters"), map.remove("breakdown")),
        None => (None, None),
    };
    let filters: Filters = match filters {
        Some(f) => parse(kind, &f).map_err(|e| in_field(e, "filters"))?,
        None => Filters::default(),
    };
    let mut breakdown: Option<Breakdown> = match breakdown {
        Some(b) => Some(parse(kind, &b).map_err(|e| in_field(e, "breakdown"))?),
        None => None,
    };
    // A funnel's first touch is its first step's event unless the query names another.
    if let Some(b) = breakdown.as_mut()
        && kind == "funnel"
        && b.of.as_deref() != Some("person")
        && b.event.is_none()
    {
        b.event = params
            .get("steps")
            .and_then(|s| s.get(0))
            .and_then(Value::as_str)
            .map(String::from);
    }
    filters.check()?;
    let allowed = if filters.persons.is_empty() {
        None
    } else {
        let mut kept = Vec::new();
        (data.profiles)(&mut |p| {
            if filters.persons.iter().all(|c| c.holds(&p.traits)) {
                kept.push(p.person.0);
            }
        })?;
        Some(kept)
    };
    let source = SnapshotSource::filtered(data.snapshot, &filters, allowed, threads)?;
    let mut value = run_with_data(kind, &params, data, &source, threads)?;
    if let Some(b) = breakdown {
        let groups = crate::filter::groups(data, &b, &params, &source, threads)?;
        let mut out = Vec::with_capacity(groups.len());
        for (label, persons) in groups {
            let n = persons.len();
            let source = source.restricted(persons);
            out.push(serde_json::json!({
                "value": label,
                "persons": n,
                "result": run_with_data(kind, &params, data, &source, threads)?,
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

/// Fills what the query leaves out from the project's settings: its time zone, and the
/// parameters under `defaults.<kind>` (a query's `preset` displaces default `rules`, and
/// its `rules` a default `preset`).
pub fn apply_defaults(kind: &str, params: &mut Value, settings: &ProjectSettings) {
    let Some(map) = params.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(defaults)) = settings.defaults.get(kind) {
        // A query's own preset or rules displace the other from the defaults.
        let (has_preset, has_rules) = (map.contains_key("preset"), map.contains_key("rules"));
        for (k, v) in defaults {
            if (has_preset && k == "rules") || (has_rules && k == "preset") {
                continue;
            }
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    map.entry("timezone")
        .or_insert_with(|| Value::String(settings.timezone.clone()));
}

/// Checks settings before they are saved: a known time zone, and per analysis named under
/// `defaults` parameters that the analysis accepts (they may leave out what every query
/// gives, such as a funnel's steps). Errors name the field (`defaults.rfm.scheme`).
pub fn check_settings(settings: &ProjectSettings) -> std::result::Result<(), RunError> {
    crate::period::Calendar::new(&settings.timezone)
        .map_err(|e| AnalyticsError::invalid("timezone", e.to_string()))?;
    for (kind, value) in &settings.defaults {
        let field = format!("defaults.{kind}");
        if kind == "computed" {
            crate::computed::definitions(settings)?;
            continue;
        }
        if kind == "dashboard" {
            check_pins(value)?;
            continue;
        }
        if !ANALYSES.contains(&kind.as_str()) {
            return Err(AnalyticsError::invalid(
                field,
                format!("no analysis {kind:?}; there are {}", ANALYSES.join(", ")),
            )
            .into());
        }
        let Value::Object(defaults) = value else {
            return Err(AnalyticsError::invalid(field, "an object of parameters").into());
        };
        for key in ["date_from", "date_to", "timezone", "filters", "breakdown"] {
            if defaults.contains_key(key) {
                return Err(AnalyticsError::invalid(
                    format!("{field}.{key}"),
                    "given per query or by the project's time zone, not as a default",
                )
                .into());
            }
        }
        let mut params = value.clone();
        let map = params.as_object_mut().expect("an object");
        // A year (a month for hourly defaults, within the periods a query may span), so that
        // checks that count periods (a North Star's drivers) pass for any sensible query.
        let hourly = map.get("interval").and_then(Value::as_str) == Some("hour");
        map.insert("date_from".into(), Value::from("2025-01-01"));
        let to = if hourly { "2025-01-31" } else { "2025-12-31" };
        map.insert("date_to".into(), Value::from(to));
        // What queries always give, so that the defaults' own values get checked.
        match kind.as_str() {
            "funnel" => {
                map.entry("steps")
                    .or_insert_with(|| serde_json::json!(["a", "b"]));
            }
            "retention" => {
                map.entry("start_event").or_insert_with(|| Value::from("a"));
            }
            _ => {}
        }
        // Analyses that read profiles or need data to fit: only their queries are checked.
        let checked = match kind.as_str() {
            "kfactor" => check_query(kind, &params, crate::kfactor::KFactorSpec::query),
            "clv" => check_query(kind, &params, crate::clv::ClvSpec::query),
            "churn" => check_query(kind, &params, crate::churn::ChurnSpec::query),
            "bgbb" => check_query(kind, &params, crate::bgbb::BgBbSpec::query),
            _ => run_on(kind, &params, &crate::VecSource::default(), 1),
        };
        match checked {
            Ok(_) => {}
            // Partial defaults: every given field parsed, some per-query field is missing.
            Err(RunError::Json { message, .. }) if message.starts_with("missing field") => {}
            Err(RunError::Json { message, .. }) => {
                return Err(AnalyticsError::invalid(field, message).into());
            }
            Err(RunError::Analysis(AnalyticsError::Invalid { field: f, message })) => {
                return Err(AnalyticsError::invalid(format!("{field}.{f}"), message).into());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Parses a spec and checks its query, without running the analysis.
fn check_query<S: DeserializeOwned, Q>(
    kind: &str,
    params: &Value,
    query: fn(&S, usize) -> Result<Q>,
) -> std::result::Result<Value, RunError> {
    let spec: S = parse(kind, params)?;
    query(&spec, 1)?;
    Ok(Value::Null)
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

/// Runs analysis `kind` over `source`, giving the analyses that need them the profiles.
fn run_with_data(
    kind: &str,
    params: &Value,
    data: &Data<'_>,
    source: &SnapshotSource<'_>,
    threads: usize,
) -> std::result::Result<Value, RunError> {
    match kind {
        "kfactor" => {
            let s: crate::kfactor::KFactorSpec = parse(kind, params)?;
            Ok(json(crate::kfactor::kfactor(
                data,
                source,
                &s.query(threads)?,
            ))?)
        }
        "clv" => {
            let s: crate::clv::ClvSpec = parse(kind, params)?;
            Ok(json(crate::clv::clv_snapshot(source, &s.query(threads)?))?)
        }
        _ => run_on(kind, params, source, threads),
    }
}

/// Runs analysis `kind` with its own parameters over `source` (every analysis but
/// `kfactor`, which needs the profiles: see [`run`]).
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
        "paths" => {
            let s: crate::paths::PathsSpec = parse(kind, params)?;
            json(crate::paths::paths(source, &s.query(threads)?))?
        }
        "stickiness" => {
            let s: crate::stickiness::StickinessSpec = parse(kind, params)?;
            json(crate::stickiness::stickiness(source, &s.query(threads)?))?
        }
        "journey" => {
            let s: crate::journey::JourneySpec = parse(kind, params)?;
            json(crate::journey::journey(source, &s.query(threads)?))?
        }
        "winback" => {
            let s: crate::winback::WinbackSpec = parse(kind, params)?;
            json(crate::winback::winback(source, &s.query(threads)?))?
        }
        "trends" => {
            let s: crate::trends::TrendsSpec = parse(kind, params)?;
            json(crate::trends::trends(source, &s.query(threads)?))?
        }
        "north_star" => {
            let s: crate::north_star::NorthStarSpec = parse(kind, params)?;
            json(crate::north_star::north_star(source, &s.query(threads)?))?
        }
        "nps" => {
            let s: crate::nps::NpsSpec = parse(kind, params)?;
            json(crate::nps::nps(source, &s.query(threads)?))?
        }
        "churn" => {
            let s: crate::churn::ChurnSpec = parse(kind, params)?;
            json(crate::churn::churn(source, &s.query(threads)?))?
        }
        "bgbb" => {
            let s: crate::bgbb::BgBbSpec = parse(kind, params)?;
            json(crate::bgbb::bgbb(source, &s.query(threads)?))?
        }
        "clv" => {
            let s: crate::clv::ClvSpec = parse(kind, params)?;
            json(crate::clv::clv(source, &s.query(threads)?))?
        }
        "kfactor" => {
            return Err(AnalyticsError::invalid(
                "kind",
                "kfactor reads profiles: run it through registry::run",
            )
            .into());
        }
        _ => return Err(RunError::Unknown(kind.to_string())),
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(defaults: Value) -> ProjectSettings {
        ProjectSettings {
            timezone: "UTC".into(),
            defaults: defaults.as_object().expect("an object").clone(),
        }
    }

    #[test]
    fn a_north_star_with_weekly_drivers_is_accepted_and_a_bad_one_named() {
        let driver = |e: &str| serde_json::json!({"name": e, "event": e, "math": "unique"});
        let four = serde_json::json!({"north_star": {
            "metric": {"name": "buyers", "event": "buy", "math": "unique"},
            "interval": "week",
            "drivers": [driver("a"), driver("b"), driver("c"), driver("d")],
        }});
        check_settings(&settings(four)).expect("four weekly drivers are a sensible default");
        let hourly = serde_json::json!({"north_star": {
            "metric": {"name": "buyers", "event": "buy", "math": "unique"},
            "interval": "hour",
            "drivers": [driver("a")],
        }});
        check_settings(&settings(hourly)).expect("hourly defaults stay within the periods");
        let bad = serde_json::json!({"north_star": {
            "metric": {"name": "buyers", "event": "buy", "math": "median"},
        }});
        match check_settings(&settings(bad)) {
            Err(RunError::Analysis(e)) => assert!(e.field().starts_with("defaults.north_star")),
            other => panic!("{other:?}"),
        }
    }
}
