//! Filters on event and person properties, and breakdowns by a property, for every analysis.
//!
//! - An **event condition** keeps the events whose properties satisfy it; with `event` set it
//!   applies to events of that name only (others pass), which is how a funnel step gets its
//!   own filter. Analyses see only the events every condition keeps.
//! - A **person condition** keeps the persons whose traits satisfy it (merged persons answer
//!   with their canonical person's traits).
//! - All conditions must hold (AND).
//!
//! Properties are named as sent (`plan`, `utm_source`); a dotted name reaches into objects
//! (`address.city`). Numbers, and strings that read as numbers, compare as numbers; other
//! strings compare as text (ISO dates order correctly); `contains` ignores case and, on an
//! array, asks whether an element equals the value. A property that is absent (or null)
//! fails every condition except `neq`, `not_contains`, `not_in` and `is_not_set`, as in
//! PostHog.
//!
//! Event conditions read message bodies, which are compressed; scoping a condition to an
//! event name limits the reading to that name's events.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use lodestar_core::JsonMap;
use lodestar_store::Snapshot;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AnalyticsError, Result};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal (absent counts as not equal).
    Neq,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Text contains (ignoring case), or an array has the element.
    Contains,
    /// The negation of `contains`.
    NotContains,
    /// Equal to one of a list.
    In,
    /// Equal to none of a list.
    NotIn,
    /// Present and not null.
    IsSet,
    /// Absent or null.
    IsNotSet,
    /// Between two values, both included (`[low, high]`).
    Between,
    /// A date or time (RFC 3339 text, `YYYY-MM-DD`, or ms since the epoch) within the last
    /// `value` days before now (segments only).
    WithinDays,
    /// A date or time more than `value` days before now (segments only).
    BeforeDays,
}

/// One condition on a property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Event conditions only: apply to events of this name only.
    #[serde(default)]
    pub event: Option<String>,
    /// Property name; dots reach into objects.
    pub property: String,
    /// Comparison.
    pub op: Op,
    /// What to compare with (a list for `in` / `not_in`; none for `is_set` / `is_not_set`).
    #[serde(default)]
    pub value: Option<Value>,
}

/// The filters of a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Conditions on event properties.
    #[serde(default)]
    pub events: Vec<Condition>,
    /// Conditions on person traits.
    #[serde(default)]
    pub persons: Vec<Condition>,
}

impl Filters {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.persons.is_empty()
    }

    /// Checks every condition; errors name `filters.events[i].value` and the like.
    pub fn check(&self) -> Result<()> {
        for (list, conds) in [("events", &self.events), ("persons", &self.persons)] {
            for (i, c) in conds.iter().enumerate() {
                c.check(&format!("filters.{list}[{i}]"))?;
            }
            if let Some(i) = conds
                .iter()
                .position(|c| matches!(c.op, Op::WithinDays | Op::BeforeDays))
            {
                return Err(AnalyticsError::invalid(
                    format!("filters.{list}[{i}].op"),
                    "within_days and before_days apply to segments; give dates with between",
                ));
            }
            if list == "persons"
                && let Some(i) = conds.iter().position(|c| c.event.is_some())
            {
                return Err(AnalyticsError::invalid(
                    format!("filters.persons[{i}].event"),
                    "a person condition has no event",
                ));
            }
        }
        Ok(())
    }
}

impl Condition {
    /// Checks the condition; errors name `{at}.value` and the like (`value` when `at` is
    /// empty).
    pub(crate) fn check(&self, at: &str) -> Result<()> {
        let join = |f: &str| {
            if at.is_empty() {
                f.to_string()
            } else {
                format!("{at}.{f}")
            }
        };
        if self.property.is_empty() || self.property.split('.').any(str::is_empty) {
            return Err(AnalyticsError::invalid(
                join("property"),
                format!("{:?} is not a property name", self.property),
            ));
        }
        if self.event.as_deref() == Some("") {
            return Err(AnalyticsError::invalid(join("event"), "empty event name"));
        }
        let field = join("value");
        match (self.op, &self.value) {
            (Op::IsSet | Op::IsNotSet, None) => Ok(()),
            (Op::IsSet | Op::IsNotSet, Some(_)) => Err(AnalyticsError::invalid(
                field,
                "is_set and is_not_set take no value",
            )),
            (_, None | Some(Value::Null)) => Err(AnalyticsError::invalid(
                field,
                "this comparison needs a value",
            )),
            (Op::In | Op::NotIn, Some(Value::Array(_))) => Ok(()),
            (Op::In | Op::NotIn, Some(_)) => {
                Err(AnalyticsError::invalid(field, "in and not_in take a list"))
            }
            (Op::Between, Some(Value::Array(pair)))
                if pair.len() == 2 && pair.iter().all(|v| v.is_number() || v.is_string()) =>
            {
                Ok(())
            }
            (Op::Between, Some(_)) => Err(AnalyticsError::invalid(
                field,
                "between takes a list of two: [low, high]",
            )),
            (Op::WithinDays | Op::BeforeDays, Some(v))
                if v.as_f64().is_some_and(|d| (0.0..=36_500.0).contains(&d)) =>
            {
                Ok(())
            }
            (Op::WithinDays | Op::BeforeDays, Some(_)) => Err(AnalyticsError::invalid(
                field,
                "within_days and before_days take a number of days (0 to 36500)",
            )),
            (_, Some(Value::Array(_) | Value::Object(_))) => Err(AnalyticsError::invalid(
                field,
                "compare with a number, a text or true/false",
            )),
            _ => Ok(()),
        }
    }

    /// Whether `props` satisfies the condition (relative dates never hold: no "now").
    pub fn holds(&self, props: &JsonMap) -> bool {
        self.holds_value(property(props, &self.property), None)
    }

    /// Whether the property's value `found` (None when absent) satisfies the condition;
    /// `now` (ms) is what relative dates count back from.
    pub(crate) fn holds_value(&self, found: Option<&Value>, now: Option<i64>) -> bool {
        let found = found.filter(|v| !v.is_null());
        let target = self.value.as_ref().unwrap_or(&Value::Null);
        let Some(v) = found else {
            return matches!(
                self.op,
                Op::Neq | Op::NotContains | Op::NotIn | Op::IsNotSet
            );
        };
        match self.op {
            Op::IsSet => true,
            Op::IsNotSet => false,
            Op::Eq => equal(v, target),
            Op::Neq => !equal(v, target),
            Op::Gt => compare(v, target) == Some(Ordering::Greater),
            Op::Gte => matches!(
                compare(v, target),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Op::Lt => compare(v, target) == Some(Ordering::Less),
            Op::Lte => matches!(compare(v, target), Some(Ordering::Less | Ordering::Equal)),
            Op::Contains => contains(v, target),
            Op::NotContains => !contains(v, target),
            Op::In => target
                .as_array()
                .is_some_and(|l| l.iter().any(|t| equal(v, t))),
            Op::NotIn => !target
                .as_array()
                .is_some_and(|l| l.iter().any(|t| equal(v, t))),
            Op::Between => target.as_array().is_some_and(|pair| {
                pair.len() == 2
                    && matches!(
                        compare(v, &pair[0]),
                        Some(Ordering::Greater | Ordering::Equal)
                    )
                    && matches!(compare(v, &pair[1]), Some(Ordering::Less | Ordering::Equal))
            }),
            Op::WithinDays | Op::BeforeDays => {
                let (Some(now), Some(t), Some(days)) = (now, time_ms(v), target.as_f64()) else {
                    return false;
                };
                let edge = now - (days * 86_400_000.0) as i64;
                if self.op == Op::WithinDays {
                    t >= edge && t <= now
                } else {
                    t < edge
                }
            }
        }
    }
}

/// A time read from a property: a date or date-time text (see
/// [`lodestar_core::Timestamp::parse`]; a bare date is its midnight UTC), or a number of ms
/// since the epoch.
pub(crate) fn time_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        Value::String(s) => lodestar_core::Timestamp::parse(s).map(|t| t.millis()),
        _ => None,
    }
}

/// The property a dotted name reaches (`address.city`).
pub(crate) fn property<'a>(props: &'a JsonMap, name: &str) -> Option<&'a Value> {
    let mut parts = name.split('.');
    let mut at = props.get(parts.next().unwrap_or_default());
    for key in parts {
        at = at.and_then(|v| v.get(key));
    }
    at
}

/// A number, or a string that reads as one.
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equal(v: &Value, t: &Value) -> bool {
    match (v, t) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Bool(a), Value::String(b)) | (Value::String(b), Value::Bool(a)) => {
            b.eq_ignore_ascii_case(if *a { "true" } else { "false" })
        }
        _ => match (number(v), number(t)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
    }
}

fn compare(v: &Value, t: &Value) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (number(v), number(t)) {
        return a.partial_cmp(&b);
    }
    match (v, t) {
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn contains(v: &Value, t: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| equal(i, t)),
        Value::String(s) => {
            let needle = match t {
                Value::String(n) => n.to_lowercase(),
                other => other.to_string(),
            };
            s.to_lowercase().contains(&needle)
        }
        other => {
            let needle = match t {
                Value::String(n) => n.to_lowercase(),
                x => x.to_string(),
            };
            other.to_string().to_lowercase().contains(&needle)
        }
    }
}

/// The properties of a stored body (a serialized message); empty when it has none.
pub(crate) fn body_properties(body: &[u8]) -> JsonMap {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        properties: JsonMap,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.properties)
        .unwrap_or_default()
}

/// A part's index and what the scan gathered from its rows: (row, value).
type PartRows<T> = (usize, Vec<(usize, T)>);

/// Calls `f(run, row, properties)` for every row of the snapshot's runs (parts in order, then
/// the tail) that `want(run, row)` picks, reading bodies in parallel over `threads` threads,
/// one part at a time each; gathers what `f` returns per run, in row order.
pub(crate) fn scan_bodies<T: Send>(
    snapshot: &Snapshot,
    want: impl Fn(usize, usize) -> bool + Sync,
    threads: usize,
    f: impl Fn(usize, usize, &JsonMap) -> Option<T> + Sync,
) -> Result<Vec<Vec<(usize, T)>>> {
    let parts = snapshot.parts();
    let next = AtomicUsize::new(0);
    let per_part: Vec<Result<Vec<PartRows<T>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<Vec<PartRows<T>>> {
                    let mut done = Vec::new();
                    loop {
                        let p = next.fetch_add(1, AtomicOrdering::Relaxed);
                        let Some(part) = parts.get(p) else {
                            return Ok(done);
                        };
                        let block_rows = part.block_rows();
                        let mut out = Vec::new();
                        for b in 0..part.blocks() {
                            let rows = b * block_rows..((b + 1) * block_rows).min(part.rows());
                            if !rows.clone().any(|i| want(p, i)) {
                                continue;
                            }
                            let bodies = part.block_bodies(b)?;
                            for i in rows {
                                if want(p, i)
                                    && let Some(t) =
                                        f(p, i, &body_properties(&bodies[i - b * block_rows]))
                                {
                                    out.push((i, t));
                                }
                            }
                        }
                        done.push((p, out));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("filter thread panicked"))
            .collect()
    });
    let mut runs: Vec<Vec<(usize, T)>> = (0..parts.len()).map(|_| Vec::new()).collect();
    for r in per_part {
        for (p, out) in r? {
            runs[p] = out;
        }
    }
    let tail = snapshot.tail();
    if !tail.is_empty() {
        let r = parts.len();
        let out = (0..tail.len())
            .filter(|&i| want(r, i))
            .filter_map(|i| f(r, i, &body_properties(&tail.bodies[i])).map(|t| (i, t)))
            .collect();
        runs.push(out);
    }
    Ok(runs)
}

/// Per run, a bitset of the rows the event conditions drop (none when it drops nothing).
pub(crate) fn event_masks(
    snapshot: &Snapshot,
    conditions: &[Condition],
    threads: usize,
) -> Result<Vec<Option<Vec<u64>>>> {
    let names = snapshot.names();
    // Per name: the conditions that apply to it.
    let per_name: Vec<Vec<&Condition>> = names
        .iter()
        .map(|n| {
            conditions
                .iter()
                .filter(|c| c.event.as_deref().is_none_or(|e| e == n))
                .collect()
        })
        .collect();
    let runs = snapshot.runs();
    let want = |r: usize, i: usize| !per_name[runs[r].names[i] as usize].is_empty();
    let dropped = scan_bodies(snapshot, want, threads, |r, i, props| {
        let name = runs[r].names[i] as usize;
        (!per_name[name].iter().all(|c| c.holds(props))).then_some(())
    })?;
    Ok(dropped
        .into_iter()
        .zip(&runs)
        .map(|(rows, run)| {
            if rows.is_empty() {
                return None;
            }
            let mut bits = vec![0u64; run.rows().div_ceil(64)];
            for (i, ()) in rows {
                bits[i / 64] |= 1 << (i % 64);
            }
            Some(bits)
        })
        .collect())
}

/// Whether bit `i` is set.
pub(crate) fn bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

/// Whether any bit in `a..b` is set.
pub(crate) fn any_bit(bits: &[u64], a: usize, b: usize) -> bool {
    (a..b).any(|i| bit(bits, i))
}

/// Which property a breakdown splits by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breakdown {
    /// Property name; dots reach into objects.
    pub property: String,
    /// `person` (a trait) or `event` (the property on the person's first event in the range
    /// named `event`, or their first event of any name: first touch). Default `event`.
    #[serde(default)]
    pub of: Option<String>,
    /// `of: event` only: the event whose first occurrence gives the value.
    #[serde(default)]
    pub event: Option<String>,
    /// Most values shown, the largest by persons; the rest go to `$other`. Default 10, at
    /// most 50.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The breakdown value of a property: its text, a number's shortest form, `$none` when absent.
pub(crate) fn value_label(props: &JsonMap, name: &str) -> String {
    match property(props, name) {
        None | Some(Value::Null) => NONE.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The persons of each breakdown value: the `limit` values with most persons (ties by
/// value), then `$other` for the rest; persons `source` keeps only.
pub(crate) fn groups(
    data: &crate::registry::Data<'_>,
    b: &Breakdown,
    params: &Value,
    source: &crate::source::SnapshotSource<'_>,
    threads: usize,
) -> Result<Vec<(String, Vec<u64>)>> {
    if b.property.is_empty() || b.property.split('.').any(str::is_empty) {
        return Err(AnalyticsError::invalid(
            "breakdown.property",
            format!("{:?} is not a property name", b.property),
        ));
    }
    let limit = b.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(AnalyticsError::invalid(
            "breakdown.limit",
            "between 1 and 50",
        ));
    }
    let mut labels: Vec<(u64, String)> = Vec::new();
    match b.of.as_deref() {
        Some("person") => {
            if b.event.is_some() {
                return Err(AnalyticsError::invalid(
                    "breakdown.event",
                    "a person breakdown has no event",
                ));
            }
            (data.profiles)(&mut |p| {
                if source.kept(p.person.0) {
                    labels.push((p.person.0, value_label(&p.traits, &b.property)));
                }
            })?;
        }
        None | Some("event") => {
            let text = |f: &str| params.get(f).and_then(Value::as_str);
            let range = crate::spec::RangeSpec {
                date_from: text("date_from").unwrap_or_default(),
                date_to: text("date_to").unwrap_or_default(),
                timezone: text("timezone"),
            };
            let (from, to) = range.bounds_ms()?;
            let snapshot = source.snapshot();
            let name = match &b.event {
                Some(e) => match snapshot.name_id(e) {
                    Some(id) => Some(id),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            let runs = snapshot.runs();
            let want = |r: usize, i: usize| {
                let run = &runs[r];
                name.is_none_or(|n| run.names[i] == n)
                    && (from..to).contains(&run.ts[i])
                    && !source.dropped(r, i)
            };
            let found = scan_bodies(snapshot, want, threads, |_, _, props| {
                Some(value_label(props, &b.property))
            })?;
            // First touch: per canonical person, the label of the earliest (time, seq) row.
            let mut firsts: Vec<(u64, i64, u64, String)> = Vec::new();
            for (r, rows) in found.into_iter().enumerate() {
                let run = &runs[r];
                for (i, label) in rows {
                    let person = snapshot.canonical(run.stored_person(i));
                    if source.kept(person) {
                        firsts.push((person, run.ts[i], run.seqs[i], label));
                    }
                }
            }
            firsts.sort_unstable_by_key(|f| (f.0, f.1, f.2));
            firsts.dedup_by_key(|f| f.0);
            labels = firsts.into_iter().map(|(p, _, _, l)| (p, l)).collect();
        }
        Some(other) => {
            return Err(AnalyticsError::invalid(
                "breakdown.of",
                format!("{other:?} is not one of event, person"),
            ));
        }
    }
    let mut by_label: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for (p, l) in labels {
        by_label.entry(l).or_default().push(p);
    }
    let mut groups: Vec<(String, Vec<u64>)> = by_label.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    if groups.len() > limit {
        let rest: Vec<u64> = groups.drain(limit..).flat_map(|g| g.1).collect();
        groups.push((OTHER.to_string(), rest));
    }
    Ok(groups)
}

/// The label of persons without the property.
pub const NONE: &str = "$none";
/// The label of the values beyond the limit.
pub const OTHER: &str = "$other";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(op: Op, value: Option<Value>, props: Value) -> bool {
        let c = Condition {
            event: None,
            property: "a.b".into(),
            op,
            value,
        };
        c.holds(props.as_object().unwrap())
    }

    #[test]
    fn comparisons_follow_the_documented_rules() {
        let p = json!({"a": {"b": "12.5"}});
        assert!(holds(Op::Eq, Some(json!(12.5)), p.clone()));
        assert!(
            holds(Op::Gt, Some(json!(9)), p.clone()),
            "numeric, not text, order"
        );
        assert!(holds(Op::Lte, Some(json!("12.5")), p.clone()));
        // Not both numbers: text order, where "12.5" sorts before "abc".
        assert!(holds(Op::Lt, Some(json!("abc")), p.clone()));
        assert!(!holds(Op::Gt, Some(json!(true)), p.clone()));
        let s = json!({"a": {"b": "Hello World"}});
        assert!(holds(Op::Contains, Some(json!("world")), s.clone()));
        assert!(holds(Op::In, Some(json!(["x", "Hello World"])), s.clone()));
        assert!(holds(Op::NotIn, Some(json!(["x"])), s.clone()));
        assert!(holds(
            Op::Gt,
            Some(json!("2026-01-01")),
            json!({"a": {"b": "2026-03-01"}})
        ));
        let arr = json!({"a": {"b": ["red", "blue"]}});
        assert!(holds(Op::Contains, Some(json!("blue")), arr.clone()));
        assert!(!holds(Op::Contains, Some(json!("gree")), arr));
        assert!(holds(
            Op::Eq,
            Some(json!(true)),
            json!({"a": {"b": "true"}})
        ));
    }

    #[test]
    fn absent_passes_only_the_negations() {
        let none = json!({"a": {"c": 1}});
        let null = json!({"a": {"b": null}});
        for p in [none, null] {
            assert!(!holds(Op::Eq, Some(json!(1)), p.clone()));
            assert!(!holds(Op::Gt, Some(json!(1)), p.clone()));
            assert!(!holds(Op::IsSet, None, p.clone()));
            assert!(holds(Op::Neq, Some(json!(1)), p.clone()));
            assert!(holds(Op::NotIn, Some(json!([1])), p.clone()));
            assert!(holds(Op::NotContains, Some(json!("x")), p.clone()));
            assert!(holds(Op::IsNotSet, None, p.clone()));
        }
    }

    #[test]
    fn checks_name_the_condition() {
        let f: Filters = serde_json::from_value(json!({
            "events": [{"property": "plan", "op": "eq", "value": "pro"},
                       {"property": "n", "op": "in", "value": 3}]
        }))
        .unwrap();
        assert_eq!(f.check().unwrap_err().field(), "filters.events[1].value");
        let f: Filters = serde_json::from_value(json!({
            "persons": [{"property": "a..b", "op": "is_set"}]
        }))
        .unwrap();
        assert_eq!(
            f.check().unwrap_err().field(),
            "filters.persons[0].property"
        );
    }
}
