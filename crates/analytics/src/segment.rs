//! Segments (用户分层): who satisfies a condition tree over traits, behaviour, lifecycle stage
//! and model scores — evaluated over every person, with a size and a sample of members.
//!
//! A tree is JSON, each node tagged by `type`:
//! - `and` (`all`: nodes), `or` (`any`: nodes), `not` (`node`);
//! - `trait`: a condition on a person trait (`property`, `op`, `value`, as in
//!   [`crate::filter`]);
//! - `did`: the person did `event` at least `min` (default 1) and at most `max` times in the
//!   last `days` days before now (all their history when absent), counting only events whose
//!   value passes `value` (`{"op", "value"}`) when given; with `max: 0`, "did not do X in the
//!   last D days";
//! - `sequence`: did `first`, then `then` at most `within_days` later (both within the last
//!   `days` days); `then` must come after `first` in the person's event order;
//! - `regularly`: did `event` at least `min_per_week` times (default 1) in each of the last
//!   `weeks` weeks (7-day blocks ending now);
//! - `aggregate`: a computed attribute ([`Aggregate`]: `count`, `sum`, `avg`, `min`, `max`,
//!   `first`, `last` of the event value, or `days_active`, of `event` in the last `days`)
//!   compared (`op`, `value`);
//! - `stage`: the lifecycle stage now (under the project's rules) is one of `in`;
//! - `score`: a model score of the latest fit — `clv`, `p_alive`, `expected_purchases`,
//!   `p_purchase` or `churn_risk` — compared (`op`, `value`); persons without that score fail
//!   every comparison but `is_not_set`;
//! - `first_seen` / `last_seen`: the person's first / last event `within_days` days of now, or
//!   more than `before_days` ago (one of the two).
//!
//! "Now" and the windows are instants (days of 24 hours before now), not calendar days.
//! Validation names the offending node by its path (`all[2].any[0].min`).

use std::collections::HashMap;

use lodestar_core::JsonMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AnalyticsError, Result};
use crate::filter::{Condition, Op};
use crate::source::{Events, PersonSource, run_sharded};
use crate::stages::{Stage, StageRules, stage_at};

const DAY_MS: i64 = 86_400_000;

/// A node of a segment's condition tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Node {
    /// Every child holds.
    And {
        /// Children.
        all: Vec<Node>,
    },
    /// Some child holds.
    Or {
        /// Children.
        any: Vec<Node>,
    },
    /// The child does not hold.
    Not {
        /// The child.
        node: Box<Node>,
    },
    /// A condition on a trait.
    Trait {
        /// Trait name; dots reach into objects.
        property: String,
        /// Comparison.
        op: Op,
        /// What to compare with.
        #[serde(default)]
        value: Option<Value>,
    },
    /// Did an event a number of times in a window.
    Did {
        /// Event name.
        event: String,
        /// At least this many times; default 1.
        #[serde(default)]
        min: Option<u32>,
        /// At most this many times.
        #[serde(default)]
        max: Option<u32>,
        /// In the last this many days; all history when absent.
        #[serde(default)]
        days: Option<u32>,
        /// Only events whose value (revenue, amount, score …) satisfies this comparison.
        #[serde(default)]
        value: Option<ValueTest>,
    },
    /// Did `first`, then `then` within `within_days` of it (both in the last `days` days).
    Sequence {
        /// The first event.
        first: String,
        /// The event that must follow.
        then: String,
        /// Days the second may come after the first.
        within_days: u32,
        /// Only events in the last this many days; all history when absent.
        #[serde(default)]
        days: Option<u32>,
    },
    /// Did `event` at least `min_per_week` times (default 1) in each of the last `weeks` weeks
    /// (7-day blocks before now): a habit.
    Regularly {
        /// The event.
        event: String,
        /// Weeks in a row.
        weeks: u32,
        /// Times each week; default 1.
        #[serde(default)]
        min_per_week: Option<u32>,
    },
    /// An aggregate of a person's events compared with a value: e.g. the sum of order values
    /// in the last 30 days above 500.
    Aggregate {
        /// The events; any when absent.
        #[serde(default)]
        event: Option<String>,
        /// `count`, `sum`, `avg`, `min`, `max`, `first`, `last` or `days_active`.
        agg: String,
        /// In the last this many days; all history when absent.
        #[serde(default)]
        days: Option<u32>,
        /// Comparison.
        op: Op,
        /// What to compare with.
        #[serde(default)]
        value: Option<Value>,
    },
    /// The lifecycle stage now.
    Stage {
        /// Stages that match.
        #[serde(rename = "in")]
        any_of: Vec<Stage>,
    },
    /// A model score of the latest fit.
    Score {
        /// `clv`, `p_alive`, `expected_purchases`, `p_purchase` or `churn_risk`.
        score: String,
        /// Comparison.
        op: Op,
        /// What to compare with.
        #[serde(default)]
        value: Option<Value>,
    },
    /// The first event's time.
    FirstSeen {
        /// Within this many days of now.
        #[serde(default)]
        within_days: Option<u32>,
        /// More than this many days before now.
        #[serde(default)]
        before_days: Option<u32>,
    },
    /// The last event's time.
    LastSeen {
        /// Within this many days of now.
        #[serde(default)]
        within_days: Option<u32>,
        /// More than this many days before now.
        #[serde(default)]
        before_days: Option<u32>,
    },
}

/// A comparison on an event's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueTest {
    /// Comparison.
    pub op: Op,
    /// What to compare with.
    #[serde(default)]
    pub value: Option<Value>,
}

impl ValueTest {
    fn condition(&self) -> Condition {
        condition("value", self.op, &self.value)
    }
}

/// How a person's events are summed up — a computed attribute: `count`, `sum`, `avg`,
/// `min`, `max`, `first` or `last` of the event value (events without one are skipped by the
/// value aggregates), or `days_active` (distinct 24-hour days before now with the event), over
/// the events named `event` (any when absent) in the last `days` days (all history when
/// absent). None when no event qualifies (except `count` and `days_active`, which are 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// The events; any when absent.
    #[serde(default)]
    pub event: Option<String>,
    /// `count`, `sum`, `avg`, `min`, `max`, `first`, `last` or `days_active`.
    pub agg: String,
    /// In the last this many days; all history when absent.
    #[serde(default)]
    pub days: Option<u32>,
}

/// The aggregates an [`Aggregate`] may use.
pub const AGGREGATES: [&str; 8] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "days_active",
];

impl Aggregate {
    /// Checks the aggregate; errors name `{at}.agg` and the like.
    pub fn check(&self, at: &str) -> Result<()> {
        let field = |f: &str| {
            if at.is_empty() {
                f.to_string()
            } else {
                format!("{at}.{f}")
            }
        };
        if !AGGREGATES.contains(&self.agg.as_str()) {
            return Err(AnalyticsError::invalid(
                field("agg"),
                format!("{:?} is not one of {}", self.agg, AGGREGATES.join(", ")),
            ));
        }
        if self.event.as_deref() == Some("") {
            return Err(AnalyticsError::invalid(field("event"), "empty event name"));
        }
        Ok(())
    }

    /// The aggregate of `ev` before `now`; `ids` maps the source's event names to their ids
    /// (an event no one did counts nothing).
    pub(crate) fn of(&self, ev: Events<'_>, ids: &HashMap<&str, u32>, now: i64) -> Option<f64> {
        let id = self.event.as_deref().map(|e| ids.get(e).copied());
        let from = self.days.map_or(i64::MIN, |d| now - i64::from(d) * DAY_MS);
        let picked = (0..ev.len()).filter(|&i| {
            ev.ts[i] >= from
                && ev.ts[i] < now
                && id.is_none_or(|id| id.is_some_and(|id| ev.names[i] == id))
        });
        match self.agg.as_str() {
            "count" => Some(picked.count() as f64),
            "days_active" => {
                let mut days: Vec<i64> = picked.map(|i| (now - 1 - ev.ts[i]) / DAY_MS).collect();
                days.sort_unstable();
                days.dedup();
                Some(days.len() as f64)
            }
            agg => {
                let values: Vec<f64> = picked
                    .map(|i| ev.values[i])
                    .filter(|v| !v.is_nan())
                    .collect();
                match agg {
                    "sum" => Some(values.iter().sum()),
                    "avg" => (!values.is_empty())
                        .then(|| values.iter().sum::<f64>() / values.len() as f64),
                    "min" => values.iter().copied().reduce(f64::min),
                    "max" => values.iter().copied().reduce(f64::max),
                    "first" => values.first().copied(),
                    "last" => values.last().copied(),
                    _ => None,
                }
            }
        }
    }
}

/// The scores a segment can test.
pub const SCORES: [&str; 5] = [
    "clv",
    "p_alive",
    "expected_purchases",
    "p_purchase",
    "churn_risk",
];

/// Deepest tree accepted.
pub const MAX_DEPTH: usize = 32;

impl Node {
    /// Checks the tree; errors name the node by its path.
    pub fn check(&self) -> Result<()> {
        self.check_at("", 0)
    }

    fn check_at(&self, at: &str, depth: usize) -> Result<()> {
        let field = |f: &str| {
            if at.is_empty() {
                f.to_string()
            } else {
                format!("{at}.{f}")
            }
        };
        if depth > MAX_DEPTH {
            return Err(AnalyticsError::invalid(
                if at.is_empty() { "type" } else { at },
                format!("deeper than {MAX_DEPTH} levels"),
            ));
        }
        match self {
            Node::And { all: children } | Node::Or { any: children } => {
                let name = if matches!(self, Node::And { .. }) {
                    "all"
                } else {
                    "any"
                };
                if children.is_empty() {
                    return Err(AnalyticsError::invalid(
                        field(name),
                        "needs at least one condition",
                    ));
                }
                for (i, c) in children.iter().enumerate() {
                    c.check_at(&field(&format!("{name}[{i}]")), depth + 1)?;
                }
            }
            Node::Not { node } => node.check_at(&field("node"), depth + 1)?,
            Node::Trait {
                property,
                op,
                value,
            } => {
                condition(property, *op, value).check(at)?;
            }
            Node::Did {
                event,
                min,
                max,
                value,
                ..
            } => {
                if event.is_empty() {
                    return Err(AnalyticsError::invalid(field("event"), "empty event name"));
                }
                if let Some(v) = value {
                    v.condition().check(&field("value"))?;
                }
                if let (Some(lo), Some(hi)) = (min, max)
                    && lo > hi
                {
                    return Err(AnalyticsError::invalid(
                        field("max"),
                        format!("{hi} is below min {lo}"),
                    ));
                }
            }
            Node::Sequence { first, then, .. } => {
                for (name, e) in [("first", first), ("then", then)] {
                    if e.is_empty() {
                        return Err(AnalyticsError::invalid(field(name), "empty event name"));
                    }
                }
            }
            Node::Regularly { event, weeks, .. } => {
                if event.is_empty() {
                    return Err(AnalyticsError::invalid(field("event"), "empty event name"));
                }
                if !(1..=520).contains(weeks) {
                    return Err(AnalyticsError::invalid(field("weeks"), "between 1 and 520"));
                }
            }
            Node::Aggregate {
                event,
                agg,
                days,
                op,
                value,
            } => {
                aggregate(event, agg, days).check(at)?;
                condition("value", *op, value).check(at)?;
            }
            Node::Stage { any_of } => {
                if any_of.is_empty() {
                    return Err(AnalyticsError::invalid(
                        field("in"),
                        "name at least one stage",
                    ));
                }
            }
            Node::Score { score, op, value } => {
                if !SCORES.contains(&score.as_str()) {
                    return Err(AnalyticsError::invalid(
                        field("score"),
                        format!("{score:?} is not one of {}", SCORES.join(", ")),
                    ));
                }
                condition(score, *op, value).check(at)?;
            }
            Node::FirstSeen {
                within_days,
                before_days,
            }
            | Node::LastSeen {
                within_days,
                before_days,
            } => {
                if within_days.is_some() == before_days.is_some() {
                    return Err(AnalyticsError::invalid(
                        field("within_days"),
                        "give within_days or before_days",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn aggregate(event: &Option<String>, agg: &str, days: &Option<u32>) -> Aggregate {
    Aggregate {
        event: event.clone(),
        agg: agg.to_string(),
        days: *days,
    }
}

fn condition(property: &str, op: Op, value: &Option<Value>) -> Condition {
    Condition {
        event: None,
        property: property.to_string(),
        op,
        value: value.clone(),
    }
}

/// What a person is tested on besides their events.
#[derive(Debug, Clone, Default)]
pub struct PersonFacts {
    /// Traits.
    pub traits: JsonMap,
    /// Latest scores by name (see [`SCORES`]).
    pub scores: JsonMap,
}

/// A segment question.
#[derive(Debug, Clone)]
pub struct SegmentQuery {
    /// The tree.
    pub root: Node,
    /// Now, ms.
    pub now: i64,
    /// The project's lifecycle rules (for `stage` nodes).
    pub rules: StageRules,
    /// Members listed, lowest ids first.
    pub sample: usize,
    /// Threads to use.
    pub threads: usize,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentResult {
    /// Members.
    pub size: u64,
    /// Persons tested (everyone with events).
    pub persons: u64,
    /// The first members by id.
    pub sample: Vec<u64>,
}

/// Per-person inputs of one evaluation.
struct Person<'a> {
    events: Events<'a>,
    names: &'a [String],
    facts: Option<&'a PersonFacts>,
    now: i64,
    rules: &'a StageRules,
    stage: std::cell::OnceCell<Option<Stage>>,
}

impl Person<'_> {
    fn stage(&self) -> Option<Stage> {
        *self
            .stage
            .get_or_init(|| stage_at(self.rules, self.names, self.events, self.now))
    }

    fn holds(&self, node: &Node, ids: &HashMap<&str, u32>) -> bool {
        match node {
            Node::And { all } => all.iter().all(|n| self.holds(n, ids)),
            Node::Or { any } => any.iter().any(|n| self.holds(n, ids)),
            Node::Not { node } => !self.holds(node, ids),
            Node::Trait {
                property,
                op,
                value,
            } => {
                let empty = JsonMap::new();
                let traits = self.facts.map_or(&empty, |f| &f.traits);
                condition(property, *op, value).holds(traits)
            }
            Node::Did {
                event,
                min,
                max,
                days,
                value,
            } => {
                let Some(&id) = ids.get(event.as_str()) else {
                    return min.unwrap_or(1) == 0;
                };
                let from = days.map_or(i64::MIN, |d| self.now - i64::from(d) * DAY_MS);
                let test = value.as_ref().map(ValueTest::condition);
                let ev = &self.events;
                let n = (0..ev.len())
                    .filter(|&i| {
                        let t = ev.ts[i];
                        ev.names[i] == id
                            && t >= from
                            && t < self.now
                            && test
                                .as_ref()
                                .is_none_or(|c| c.holds(&value_map(ev.values[i])))
                    })
                    .count() as u64;
                n >= u64::from(min.unwrap_or(1)) && max.is_none_or(|m| n <= u64::from(m))
            }
            Node::Sequence {
                first,
                then,
                within_days,
                days,
            } => {
                let (Some(&a), Some(&b)) = (ids.get(first.as_str()), ids.get(then.as_str())) else {
                    return false;
                };
                let from = days.map_or(i64::MIN, |d| self.now - i64::from(d) * DAY_MS);
                let within = i64::from(*within_days) * DAY_MS;
                // The latest earlier `first` is the best partner of each `then`.
                let mut last_first: Option<i64> = None;
                for (&t, &name) in self.events.ts.iter().zip(self.events.names) {
                    if t < from || t >= self.now {
                        continue;
                    }
                    if name == b && last_first.is_some_and(|f| t - f <= within) {
                        return true;
                    }
                    if name == a {
                        last_first = Some(t);
                    }
                }
                false
            }
            Node::Regularly {
                event,
                weeks,
                min_per_week,
            } => {
                let Some(&id) = ids.get(event.as_str()) else {
                    return false;
                };
                let week = 7 * DAY_MS;
                let mut counts = vec![0u32; *weeks as usize];
                for (&t, &name) in self.events.ts.iter().zip(self.events.names) {
                    if name == id && t < self.now {
                        let k = (self.now - 1 - t) / week;
                        if let Some(c) = counts.get_mut(k as usize) {
                            *c += 1;
                        }
                    }
                }
                counts.iter().all(|&c| c >= min_per_week.unwrap_or(1))
            }
            Node::Aggregate {
                event,
                agg,
                days,
                op,
                value,
            } => {
                let got = aggregate(event, agg, days).of(self.events, ids, self.now);
                condition("value", *op, value).holds(&value_map(got.unwrap_or(f64::NAN)))
            }
            Node::Stage { any_of } => self.stage().is_some_and(|s| any_of.contains(&s)),
            Node::Score { score, op, value } => {
                let empty = JsonMap::new();
                let scores = self.facts.map_or(&empty, |f| &f.scores);
                condition(score, *op, value).holds(scores)
            }
            Node::FirstSeen {
                within_days,
                before_days,
            } => seen(
                self.events.ts.first().copied(),
                *within_days,
                *before_days,
                self.now,
            ),
            Node::LastSeen {
                within_days,
                before_days,
            } => {
                let last = self
                    .events
                    .ts
                    .iter()
                    .rev()
                    .find(|&&t| t < self.now)
                    .copied();
                seen(last, *within_days, *before_days, self.now)
            }
        }
    }
}

/// An event's value as the map a [`ValueTest`] reads (`value` absent when the event has none).
fn value_map(v: f64) -> JsonMap {
    let mut m = JsonMap::new();
    if !v.is_nan() {
        m.insert("value".into(), serde_json::json!(v));
    }
    m
}

fn seen(t: Option<i64>, within: Option<u32>, before: Option<u32>, now: i64) -> bool {
    let Some(t) = t.filter(|&t| t < now) else {
        return false;
    };
    match (within, before) {
        (Some(d), _) => t >= now - i64::from(d) * DAY_MS,
        (None, Some(d)) => t < now - i64::from(d) * DAY_MS,
        (None, None) => true,
    }
}

/// Evaluates a segment over every person of `source` with events; `facts` gives their traits
/// and scores.
pub fn segment(
    source: &dyn PersonSource,
    facts: &HashMap<u64, PersonFacts>,
    q: &SegmentQuery,
) -> Result<SegmentResult> {
    q.root.check()?;
    let names = source.names();
    let ids: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let parts = run_sharded(source, q.threads, |src, shard, shards| {
        let (mut persons, mut members) = (0u64, Vec::new());
        src.for_each_person_with_values(shard, shards, &mut |person, events| {
            persons += 1;
            let p = Person {
                events,
                names,
                facts: facts.get(&person.0),
                now: q.now,
                rules: &q.rules,
                stage: std::cell::OnceCell::new(),
            };
            if p.holds(&q.root, &ids) {
                members.push(person.0);
            }
        });
        (persons, members)
    });
    let mut persons = 0;
    let mut members = Vec::new();
    for (n, m) in parts {
        persons += n;
        members.extend(m);
    }
    members.sort_unstable();
    let size = members.len() as u64;
    members.truncate(q.sample);
    Ok(SegmentResult {
        size,
        persons,
        sample: members,
    })
}
