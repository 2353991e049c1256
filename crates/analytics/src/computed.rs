//! Computed attributes (计算属性): named per-person values the project defines over its
//! events — `count`, `sum`, `avg`, `min`, `max`, `first`, `last`, `most_frequent`,
//! `distinct_count` of an event property (or of the event value when no property is named),
//! `days_active`, or `first_time` / `last_time` (RFC 3339 text: 最近一次购买时间), over the events named `event` (any when absent) in the last `days` days
//! (all history when absent). They live in the project's settings (`defaults.computed`), are
//! shown on every profile, and segments test them (`{"type": "computed", "name", "op",
//! "value"}`).
//!
//! A value holds until a new event of the person arrives or one of the events it counts leaves
//! the window: [`compute`] gives that instant with the value, so that a cache re-computes a
//! person only when one of the two happens.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AnalyticsError, Result};
use crate::source::{Events, PersonSource, run_sharded};

const DAY_MS: i64 = 86_400_000;

/// Per person, a computed attribute's value and the instant it changes without new events.
pub type Values = Vec<(u64, Option<Value>, i64)>;

/// The aggregates a computed attribute may use.
pub const COMPUTED_AGGREGATES: [&str; 12] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "most_frequent",
    "distinct_count",
    "days_active",
    "first_time",
    "last_time",
];

/// A computed attribute's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Computed {
    /// Its name on profiles and in segments (letters, digits, `_`).
    pub name: String,
    /// The events; any when absent.
    #[serde(default)]
    pub event: Option<String>,
    /// The event property aggregated; the event value (revenue, amount …) when absent.
    #[serde(default)]
    pub property: Option<String>,
    /// One of [`COMPUTED_AGGREGATES`].
    pub agg: String,
    /// In the last this many days; all history when absent.
    #[serde(default)]
    pub days: Option<u32>,
}

impl Computed {
    /// Checks the definition; errors name `{at}.agg` and the like.
    pub fn check(&self, at: &str) -> Result<()> {
        let field = |f: &str| format!("{at}.{f}");
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(AnalyticsError::invalid(
                field("name"),
                format!("{:?}: 1 to 64 letters, digits or _", self.name),
            ));
        }
        if !COMPUTED_AGGREGATES.contains(&self.agg.as_str()) {
            return Err(AnalyticsError::invalid(
                field("agg"),
                format!(
                    "{:?} is not one of {}",
                    self.agg,
                    COMPUTED_AGGREGATES.join(", ")
                ),
            ));
        }
        if self.event.as_deref() == Some("") {
            return Err(AnalyticsError::invalid(field("event"), "empty event name"));
        }
        if self
            .property
            .as_deref()
            .is_some_and(|p| p.split('.').any(str::is_empty))
        {
            return Err(AnalyticsError::invalid(
                field("property"),
                "not a property name",
            ));
        }
        if self.days == Some(0) {
            return Err(AnalyticsError::invalid(field("days"), "at least 1"));
        }
        Ok(())
    }

    /// The value when no event counts: 0 for counts, nothing for the rest.
    fn empty(&self) -> Option<Value> {
        matches!(
            self.agg.as_str(),
            "count" | "distinct_count" | "days_active"
        )
        .then(|| serde_json::json!(0.0))
    }

    /// Whether it reads a property from the events' bodies.
    pub fn reads_bodies(&self) -> bool {
        self.property.is_some()
    }
}

/// Checks a list of definitions (names unique); errors name `{at}[i].field`.
pub fn check_all(defs: &[Computed], at: &str) -> Result<()> {
    for (i, d) in defs.iter().enumerate() {
        d.check(&format!("{at}[{i}]"))?;
        if defs[..i].iter().any(|e| e.name == d.name) {
            return Err(AnalyticsError::invalid(
                format!("{at}[{i}].name"),
                format!("{:?} is defined twice", d.name),
            ));
        }
    }
    Ok(())
}

/// The project's definitions from its settings (`defaults.computed`, a list).
pub fn definitions(settings: &lodestar_store::ProjectSettings) -> Result<Vec<Computed>> {
    match settings.defaults.get("computed") {
        None => Ok(Vec::new()),
        Some(v) => {
            let defs: Vec<Computed> = serde_json::from_value(v.clone())
                .map_err(|e| AnalyticsError::invalid("defaults.computed", e.to_string()))?;
            check_all(&defs, "defaults.computed")?;
            Ok(defs)
        }
    }
}

/// One person's value of `def` at `now` from their events (`values` per event: the property
/// read from bodies, or None to use the event value), and the instant it changes without new
/// events (`i64::MAX`: not before one arrives).
fn compute(
    def: &Computed,
    id: Option<Option<u32>>,
    ev: Events<'_>,
    props: Option<&[(i64, Value)]>,
    now: i64,
) -> (Option<Value>, i64) {
    let from = def.days.map_or(i64::MIN, |d| now - i64::from(d) * DAY_MS);
    let window = def.days.map_or(i64::MAX, |d| i64::from(d) * DAY_MS);
    // (time, value) of the events counted, in time order.
    let picked: Vec<(i64, Option<Value>)> = match props {
        Some(props) => props
            .iter()
            .filter(|(t, _)| *t >= from && *t < now)
            .map(|(t, v)| (*t, Some(v.clone()).filter(|v| !v.is_null())))
            .collect(),
        None => (0..ev.len())
            .filter(|&i| {
                ev.ts[i] >= from
                    && ev.ts[i] < now
                    && id.is_none_or(|id| id.is_some_and(|id| ev.names[i] == id))
            })
            .map(|i| {
                let v = ev.values.get(i).copied().unwrap_or(f64::NAN);
                (ev.ts[i], (!v.is_nan()).then(|| serde_json::json!(v)))
            })
            .collect(),
    };
    let expires = picked
        .first()
        .map_or(i64::MAX, |(t, _)| t.saturating_add(window));
    let values: Vec<&Value> = picked.iter().filter_map(|(_, v)| v.as_ref()).collect();
    let numbers: Vec<f64> = values
        .iter()
        .filter_map(|v| crate::filter::number(v))
        .collect();
    let num = |x: Option<f64>| x.map(|x| serde_json::json!(x));
    let value = match def.agg.as_str() {
        "count" => num(Some(picked.len() as f64)),
        "days_active" => num(Some(days_active(picked.iter().map(|(t, _)| *t), now) as f64)),
        agg @ ("sum" | "avg" | "min" | "max") => num(numeric(agg, &numbers)),
        "first_time" => picked.first().map(|(t, _)| time_text(*t)),
        "last_time" => picked.last().map(|(t, _)| time_text(*t)),
        "first" => values.first().map(|v| (*v).clone()),
        "last" => values.last().map(|v| (*v).clone()),
        "distinct_count" => {
            let mut seen: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            seen.sort_unstable();
            seen.dedup();
            num(Some(seen.len() as f64))
        }
        "most_frequent" => {
            // The most frequent value; a tie goes to the one seen last.
            let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
            for (i, v) in values.iter().enumerate() {
                let e = counts.entry(v.to_string()).or_insert((0, i));
                e.0 += 1;
                e.1 = i;
            }
            counts
                .values()
                .max_by_key(|(n, last)| (*n, *last))
                .map(|&(_, last)| values[last].clone())
        }
        _ => None,
    };
    (value.or_else(|| def.empty()), expires)
}

/// Distinct 24-hour days before `now` with an event at one of `times`.
pub(crate) fn days_active(times: impl Iterator<Item = i64>, now: i64) -> usize {
    let mut days: Vec<i64> = times.map(|t| (now - 1 - t) / DAY_MS).collect();
    days.sort_unstable();
    days.dedup();
    days.len()
}

/// `sum` (0 of nothing), `avg`, `min` or `max` of some numbers; None for nothing to average
/// or compare, or another aggregate.
pub(crate) fn numeric(agg: &str, numbers: &[f64]) -> Option<f64> {
    match agg {
        // (From +0: an empty `Iterator::sum` of floats is -0, which reads as "-0".)
        "sum" => Some(numbers.iter().fold(0.0, |a, b| a + b)),
        "avg" => (!numbers.is_empty()).then(|| numbers.iter().sum::<f64>() / numbers.len() as f64),
        "min" => numbers.iter().copied().reduce(f64::min),
        "max" => numbers.iter().copied().reduce(f64::max),
        _ => None,
    }
}

/// An instant as RFC 3339 text (what relative-date conditions read).
fn time_text(t: i64) -> Value {
    Value::String(lodestar_core::Timestamp(t).to_rfc3339())
}

/// Every definition's value for the persons of `source` (all of them, or those it is
/// restricted to), at `now`: per definition, (person, value, expires) in no set order. Persons without
/// events are not listed (their value is the empty one: 0 for counts).
pub fn compute_all(
    source: &dyn PersonSource,
    defs: &[Computed],
    now: i64,
    threads: usize,
) -> Result<Vec<Values>> {
    let ids: HashMap<&str, u32> = source
        .names()
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let resolved: Vec<Option<Option<u32>>> = defs
        .iter()
        .map(|d| d.event.as_deref().map(|e| ids.get(e).copied()))
        .collect();
    // Property values come from the bodies, once per definition that names one.
    let mut props: Vec<Option<crate::source::RowsWhere>> = Vec::with_capacity(defs.len());
    for (d, id) in defs.iter().zip(&resolved) {
        props.push(match (&d.property, id) {
            (None, _) => None,
            (Some(_), Some(None)) => Some(HashMap::new()),
            (Some(p), id) => {
                let from = d
                    .days
                    .map_or(i64::MIN, |days| now - i64::from(days) * DAY_MS);
                Some(source.property_values(id.flatten(), p, from, now, threads)?)
            }
        });
    }
    let parts = run_sharded(source, threads, |src, shard, shards| {
        let mut out: Vec<Values> = defs.iter().map(|_| Vec::new()).collect();
        src.for_each_person_with_values(shard, shards, &mut |person, events| {
            for (k, d) in defs.iter().enumerate() {
                let p = props[k]
                    .as_ref()
                    .map(|m| m.get(&person.0).map_or(&[][..], Vec::as_slice));
                let (value, expires) = compute(d, resolved[k], events, p, now);
                out[k].push((person.0, value, expires));
            }
        });
        out
    });
    let mut all: Vec<Values> = defs.iter().map(|_| Vec::new()).collect();
    for part in parts {
        for (k, m) in part.into_iter().enumerate() {
            all[k].extend(m);
        }
    }
    Ok(all)
}

/// The empty value of a definition (a person with no events).
pub fn empty_value(def: &Computed) -> Option<Value> {
    def.empty()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sum_of_nothing_is_a_plain_zero() {
        let sum = super::numeric("sum", &[]).unwrap();
        assert!(sum == 0.0 && sum.is_sign_positive(), "{sum}");
        assert_eq!(serde_json::json!(sum).to_string(), "0.0");
        assert_eq!(super::numeric("sum", &[1.5, -0.5]), Some(1.0));
    }
}
