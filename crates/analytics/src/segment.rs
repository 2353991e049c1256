//! Segments (用户分层): who satisfies a condition tree over traits, behaviour, lifecycle stage
//! and model scores — evaluated over every person, with a size and a sample of members.
//!
//! A tree is JSON, each node tagged by `type`:
//! - `and` (`all`: nodes), `or` (`any`: nodes), `not` (`node`);
//! - `trait`: a condition on a person trait (`property`, `op`, `value`, as in
//!   [`crate::filter`], plus `within_days` / `before_days` for dates relative to now);
//! - `did`: the person did `event` at least `min` (default 1; 0 when `max` is given) and at
//!   most `max` times in the
//!   last `days` days before now (all their history when absent), counting only events whose
//!   value passes `value` (`{"op", "value"}`) when given; with `max: 0`, "did not do X in the
//!   last D days";
//!   and, with `where`, only events whose properties satisfy every condition (the events'
//!   bodies are read);
//! - `first_time`: did `event` for the first time in the last `days` days;
//! - `stopped`: did `event` at least `min` times (default 1) in the `active_days` (default
//!   `days`) before the last `days` days, and not since;
//! - `restarted`: did `event` in the last `days` days after a gap of at least `gap_days`
//!   without it (having done it before);
//! - `in_segment`: a member of saved segment `segment` as of its latest evaluation;
//! - `computed`: a computed attribute of the project (`name`) compared (`op`, `value`);
//! - `rfm`: the RFM layer now (`in`: layer keys) of the purchases in the last `days` (365);
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
use crate::profiles::{Cell, Column, ProfileTable};
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
        /// At least this many times; default 1, or 0 when `max` is given.
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
        /// Only events whose properties satisfy every condition (`property`, `op`, `value`,
        /// as in [`crate::filter`]); reads the events' bodies.
        #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
        filters: Vec<Condition>,
    },
    /// Did `event` for the first time in the last `days` days (never before).
    FirstTime {
        /// The event.
        event: String,
        /// The window, days before now.
        days: u32,
    },
    /// Stopped doing `event`: at least `min` times (default 1) in the `active_days` days
    /// (default `days`) before the last `days` days, and not once in the last `days` days.
    Stopped {
        /// The event.
        event: String,
        /// Days without it, up to now.
        days: u32,
        /// The active period before those days; default `days`.
        #[serde(default)]
        active_days: Option<u32>,
        /// Times in the active period; default 1.
        #[serde(default)]
        min: Option<u32>,
    },
    /// Came back to `event`: did it in the last `days` days after a gap of at least
    /// `gap_days` days without it, having done it before the gap.
    Restarted {
        /// The event.
        event: String,
        /// The shortest gap, days.
        gap_days: u32,
        /// The return falls within the last this many days.
        days: u32,
    },
    /// The RFM layer (by key, e.g. `champions`, `at_risk`, or `important_value` in the eight
    /// scheme) of the person's purchases in the last `days` days (default 365), under the
    /// project's RFM settings; persons who bought nothing there have none.
    Rfm {
        /// Layers that match.
        #[serde(rename = "in")]
        any_of: Vec<String>,
        /// The window, days before now; default 365.
        #[serde(default)]
        days: Option<u32>,
    },
    /// A computed attribute of the project (see [`crate::computed`]) compared with a value.
    Computed {
        /// The attribute's name.
        name: String,
        /// Comparison.
        op: Op,
        /// What to compare with.
        #[serde(default)]
        value: Option<Value>,
    },
    /// A member of a saved segment (as of that segment's latest evaluation).
    InSegment {
        /// The segment's id.
        segment: i64,
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

    /// The aggregate of `ev` before `now`, the event's id resolved: `id` is `None` for any
    /// event, `Some(None)` for an event no one did (which counts nothing).
    pub(crate) fn of(&self, ev: Events<'_>, id: Option<Option<u32>>, now: i64) -> Option<f64> {
        let from = self.days.map_or(i64::MIN, |d| now - i64::from(d) * DAY_MS);
        let picked = (0..ev.len()).filter(|&i| {
            ev.ts[i] >= from
                && ev.ts[i] < now
                && id.is_none_or(|id| id.is_some_and(|id| ev.names[i] == id))
        });
        match self.agg.as_str() {
            "count" => Some(picked.count() as f64),
            "days_active" => {
                Some(crate::computed::days_active(picked.map(|i| ev.ts[i]), now) as f64)
            }
            agg => {
                let values: Vec<f64> = picked
                    .map(|i| ev.values[i])
                    .filter(|v| !v.is_nan())
                    .collect();
                match agg {
                    "first" => values.first().copied(),
                    "last" => values.last().copied(),
                    agg => crate::computed::numeric(agg, &values),
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
                filters,
                ..
            } => {
                if event.is_empty() {
                    return Err(AnalyticsError::invalid(field("event"), "empty event name"));
                }
                if let Some(v) = value {
                    v.condition().check(&field("value"))?;
                }
                for (i, c) in filters.iter().enumerate() {
                    let at = field(&format!("where[{i}]"));
                    c.check(&at)?;
                    if c.event.is_some() {
                        return Err(AnalyticsError::invalid(
                            format!("{at}.event"),
                            "the node's event applies; leave event out",
                        ));
                    }
                    if matches!(c.op, Op::WithinDays | Op::BeforeDays) {
                        return Err(AnalyticsError::invalid(
                            format!("{at}.op"),
                            "within_days and before_days apply to traits",
                        ));
                    }
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
            Node::FirstTime { event, .. }
            | Node::Stopped { event, .. }
            | Node::Restarted { event, .. } => {
                if event.is_empty() {
                    return Err(AnalyticsError::invalid(field("event"), "empty event name"));
                }
                if let Node::Stopped { days: 0, .. } = self {
                    return Err(AnalyticsError::invalid(field("days"), "at least 1"));
                }
                if let Node::Restarted { gap_days: 0, .. } = self {
                    return Err(AnalyticsError::invalid(field("gap_days"), "at least 1"));
                }
            }
            Node::InSegment { .. } => {}
            Node::Rfm { any_of, days } => {
                if any_of.is_empty() || any_of.iter().any(String::is_empty) {
                    return Err(AnalyticsError::invalid(
                        field("in"),
                        "name at least one layer",
                    ));
                }
                if *days == Some(0) {
                    return Err(AnalyticsError::invalid(field("days"), "at least 1"));
                }
            }
            Node::Computed { name, op, value } => {
                if name.is_empty() {
                    return Err(AnalyticsError::invalid(field("name"), "empty name"));
                }
                condition(name, *op, value).check(at)?;
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

/// The window of an `rfm` node without `days`.
pub const DEFAULT_RFM_DAYS: u32 = 365;

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
    /// For `rfm` nodes: per window (days), every buyer's RFM layer key (see
    /// [`Node::rfm_windows`]).
    pub rfm: HashMap<u32, HashMap<u64, String>>,
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

impl Node {
    /// The trait names the tree tests (the profile columns it needs).
    pub fn trait_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |n| {
            if let Node::Trait { property, .. } = n
                && !out.contains(property)
            {
                out.push(property.clone());
            }
        });
        out
    }

    /// The RFM windows (days) the tree's `rfm` nodes use.
    pub fn rfm_windows(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.walk(&mut |n| {
            if let Node::Rfm { days, .. } = n {
                let d = days.unwrap_or(DEFAULT_RFM_DAYS);
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        });
        out
    }

    /// The saved segments the tree refers to.
    pub fn segments_referenced(&self) -> Vec<i64> {
        let mut out = Vec::new();
        self.walk(&mut |n| {
            if let Node::InSegment { segment } = n
                && !out.contains(segment)
            {
                out.push(*segment);
            }
        });
        out
    }

    fn walk(&self, f: &mut dyn FnMut(&Node)) {
        f(self);
        match self {
            Node::And { all: c } | Node::Or { any: c } => c.iter().for_each(|n| n.walk(f)),
            Node::Not { node } => node.walk(f),
            _ => {}
        }
    }
}

/// A trait condition ready to test cells: text values are tested once per distinct text.
struct TraitTest<'a> {
    column: Option<&'a Column>,
    cond: Condition,
    now: i64,
    absent: bool,
    by_string: Vec<bool>,
}

impl TraitTest<'_> {
    fn holds(&self, at: Option<usize>) -> bool {
        let cell = match (self.column, at) {
            (Some(c), Some(at)) => c.cells.get(at).copied().unwrap_or(Cell::Absent),
            _ => Cell::Absent,
        };
        let now = Some(self.now);
        match cell {
            Cell::Absent => self.absent,
            Cell::Str(i) => self.by_string[i as usize],
            Cell::Bool(b) => self.cond.holds_value(Some(&Value::Bool(b)), now),
            Cell::Num(n) => self.cond.holds_value(Some(&serde_json::json!(n)), now),
            Cell::Other(i) => {
                let v = self.column.map(|c| &c.others[i as usize]);
                self.cond.holds_value(v, now)
            }
        }
    }
}

/// A node with its event names resolved and its windows turned into instants.
enum Exec<'a> {
    And(Vec<Exec<'a>>),
    Or(Vec<Exec<'a>>),
    Not(Box<Exec<'a>>),
    Trait(TraitTest<'a>),
    Did {
        id: Option<u32>,
        min: u64,
        max: Option<u64>,
        from: i64,
        test: Option<Condition>,
        /// With `where`: per person, the times of the events whose properties pass.
        passing: Option<HashMap<u64, Vec<i64>>>,
    },
    Sequence {
        first: Option<u32>,
        then: Option<u32>,
        from: i64,
        within: i64,
    },
    Regularly {
        id: Option<u32>,
        weeks: usize,
        min: u32,
    },
    Aggregate {
        agg: Aggregate,
        id: Option<Option<u32>>,
        cond: Condition,
    },
    Stage(&'a [Stage]),
    Score {
        which: usize,
        cond: Condition,
    },
    Seen {
        first: bool,
        within: Option<u32>,
        before: Option<u32>,
    },
    FirstTime {
        id: Option<u32>,
        from: i64,
    },
    Stopped {
        id: Option<u32>,
        from: i64,
        edge: i64,
        min: u64,
    },
    Restarted {
        id: Option<u32>,
        gap: i64,
        from: i64,
    },
    InSegment(Option<&'a [u64]>),
    Rfm {
        layers: &'a HashMap<u64, String>,
        any_of: &'a [String],
    },
}

/// What compiling a tree needs.
struct Compile<'a> {
    source: &'a dyn PersonSource,
    table: &'a ProfileTable,
    rfm: &'a HashMap<u32, HashMap<u64, String>>,
    ids: HashMap<&'a str, u32>,
    now: i64,
    threads: usize,
}

impl<'a> Compile<'a> {
    fn since(&self, days: Option<u32>) -> i64 {
        days.map_or(i64::MIN, |d| self.now - i64::from(d) * DAY_MS)
    }

    fn id(&self, event: &str) -> Option<u32> {
        self.ids.get(event).copied()
    }

    fn node(&self, node: &'a Node) -> Result<Exec<'a>> {
        Ok(match node {
            Node::And { all } => {
                Exec::And(all.iter().map(|n| self.node(n)).collect::<Result<_>>()?)
            }
            Node::Or { any } => Exec::Or(any.iter().map(|n| self.node(n)).collect::<Result<_>>()?),
            Node::Not { node } => Exec::Not(Box::new(self.node(node)?)),
            Node::Trait {
                property,
                op,
                value,
            } => self.test(self.table.column(property), condition(property, *op, value)),
            Node::Computed { name, op, value } => {
                self.test(self.table.computed(name), condition(name, *op, value))
            }
            Node::InSegment { segment } => Exec::InSegment(self.table.members(*segment)),
            Node::Rfm { any_of, days } => {
                let days = days.unwrap_or(DEFAULT_RFM_DAYS);
                let layers = self.rfm.get(&days).ok_or_else(|| {
                    AnalyticsError::invalid(
                        "rfm",
                        format!("RFM layers over {days} days not computed"),
                    )
                })?;
                Exec::Rfm { layers, any_of }
            }
            Node::Did {
                event,
                min,
                max,
                days,
                value,
                filters,
            } => {
                let id = self.id(event);
                let from = self.since(*days);
                let passing = match (filters.is_empty(), id) {
                    (true, _) => None,
                    (false, None) => Some(HashMap::new()),
                    (false, Some(id)) => {
                        Some(
                            self.source
                                .times_where(id, filters, from, self.now, self.threads)?,
                        )
                    }
                };
                Exec::Did {
                    id,
                    // "At least once", unless a most is given ("at most twice" includes never).
                    min: u64::from(min.unwrap_or(if max.is_some() { 0 } else { 1 })),
                    max: max.map(u64::from),
                    from,
                    test: value.as_ref().map(ValueTest::condition),
                    passing,
                }
            }
            Node::Sequence {
                first,
                then,
                within_days,
                days,
            } => Exec::Sequence {
                first: self.id(first),
                then: self.id(then),
                from: self.since(*days),
                within: i64::from(*within_days) * DAY_MS,
            },
            Node::Regularly {
                event,
                weeks,
                min_per_week,
            } => Exec::Regularly {
                id: self.id(event),
                weeks: *weeks as usize,
                min: min_per_week.unwrap_or(1),
            },
            Node::Aggregate {
                event,
                agg,
                days,
                op,
                value,
            } => Exec::Aggregate {
                agg: aggregate(event, agg, days),
                id: event.as_deref().map(|e| self.id(e)),
                cond: condition("value", *op, value),
            },
            Node::Stage { any_of } => Exec::Stage(any_of),
            Node::Score { score, op, value } => Exec::Score {
                which: SCORES.iter().position(|s| s == score).unwrap_or(0),
                cond: condition(score, *op, value),
            },
            Node::FirstSeen {
                within_days,
                before_days,
            } => Exec::Seen {
                first: true,
                within: *within_days,
                before: *before_days,
            },
            Node::LastSeen {
                within_days,
                before_days,
            } => Exec::Seen {
                first: false,
                within: *within_days,
                before: *before_days,
            },
            Node::FirstTime { event, days } => Exec::FirstTime {
                id: self.id(event),
                from: self.since(Some(*days)),
            },
            Node::Stopped {
                event,
                days,
                active_days,
                min,
            } => {
                let edge = self.since(Some(*days));
                Exec::Stopped {
                    id: self.id(event),
                    from: edge - i64::from(active_days.unwrap_or(*days)) * DAY_MS,
                    edge,
                    min: u64::from(min.unwrap_or(1)),
                }
            }
            Node::Restarted {
                event,
                gap_days,
                days,
            } => Exec::Restarted {
                id: self.id(event),
                gap: i64::from(*gap_days) * DAY_MS,
                from: self.since(Some(*days)),
            },
        })
    }

    /// A condition on a profile column (a trait or a computed attribute).
    fn test(&self, column: Option<&'a Column>, cond: Condition) -> Exec<'a> {
        let now = Some(self.now);
        let by_string = column.map_or_else(Vec::new, |c| {
            c.strings
                .iter()
                .map(|t| cond.holds_value(Some(&Value::String(t.clone())), now))
                .collect()
        });
        Exec::Trait(TraitTest {
            column,
            absent: cond.holds_value(None, now),
            cond,
            now: self.now,
            by_string,
        })
    }
}

/// What every person of one evaluation shares.
struct Ctx<'a> {
    names: &'a [String],
    table: &'a ProfileTable,
    now: i64,
    rules: &'a StageRules,
}

impl Ctx<'_> {
    fn person<'e>(&'e self, person: u64, events: Events<'e>) -> Person<'e> {
        Person {
            person,
            at: self.table.slot(person),
            events,
            names: self.names,
            table: self.table,
            now: self.now,
            rules: self.rules,
            stage: std::cell::OnceCell::new(),
        }
    }
}

/// One person's inputs.
struct Person<'a> {
    person: u64,
    at: Option<usize>,
    events: Events<'a>,
    names: &'a [String],
    table: &'a ProfileTable,
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

    /// Times of event `id` before now, from `from` on.
    fn times(&self, id: u32, from: i64) -> impl Iterator<Item = (usize, i64)> + '_ {
        let ev = self.events;
        // Events are in time order: the window is a range.
        let a = ev.ts.partition_point(|&t| t < from);
        let b = ev.ts.partition_point(|&t| t < self.now);
        (a..b)
            .filter(move |&i| ev.names[i] == id)
            .map(move |i| (i, ev.ts[i]))
    }

    fn holds(&self, node: &Exec<'_>) -> bool {
        match node {
            Exec::And(all) => all.iter().all(|n| self.holds(n)),
            Exec::Or(any) => any.iter().any(|n| self.holds(n)),
            Exec::Not(node) => !self.holds(node),
            Exec::Trait(test) => test.holds(self.at),
            Exec::Did {
                id,
                min,
                max,
                from,
                test,
                passing,
            } => {
                let n = match (id, passing) {
                    (None, _) => 0,
                    (Some(_), Some(passing)) => passing.get(&self.person).map_or(0, |ts| {
                        ts.iter().filter(|&&t| t >= *from && t < self.now).count() as u64
                    }),
                    (Some(id), None) => self
                        .times(*id, *from)
                        .filter(|&(i, _)| {
                            test.as_ref().is_none_or(|c| {
                                c.holds_value(value_json(self.events.values[i]).as_ref(), None)
                            })
                        })
                        .count() as u64,
                };
                n >= *min && max.is_none_or(|m| n <= m)
            }
            Exec::Sequence {
                first,
                then,
                from,
                within,
            } => {
                let (Some(a), Some(b)) = (*first, *then) else {
                    return false;
                };
                // The latest earlier `first` is the best partner of each `then`.
                let mut last_first: Option<i64> = None;
                for (&t, &name) in self.events.ts.iter().zip(self.events.names) {
                    if t < *from || t >= self.now {
                        continue;
                    }
                    if name == b && last_first.is_some_and(|f| t - f <= *within) {
                        return true;
                    }
                    if name == a {
                        last_first = Some(t);
                    }
                }
                false
            }
            Exec::Regularly { id, weeks, min } => {
                let Some(id) = *id else {
                    return false;
                };
                let week = 7 * DAY_MS;
                let mut counts = vec![0u32; *weeks];
                for (_, t) in self.times(id, i64::MIN) {
                    if let Some(c) = counts.get_mut(((self.now - 1 - t) / week) as usize) {
                        *c += 1;
                    }
                }
                counts.iter().all(|c| c >= min)
            }
            Exec::Aggregate { agg, id, cond } => {
                let got = agg.of(self.events, *id, self.now);
                cond.holds_value(value_json(got.unwrap_or(f64::NAN)).as_ref(), None)
            }
            Exec::Stage(any_of) => self.stage().is_some_and(|s| any_of.contains(&s)),
            Exec::Score { which, cond } => {
                let v = self.table.score(*which, self.at);
                cond.holds_value(value_json(v).as_ref(), None)
            }
            Exec::Seen {
                first,
                within,
                before,
            } => {
                let t = if *first {
                    self.events.ts.first().copied()
                } else {
                    self.events
                        .ts
                        .iter()
                        .rev()
                        .find(|&&t| t < self.now)
                        .copied()
                };
                seen(t, *within, *before, self.now)
            }
            Exec::FirstTime { id, from } => id.is_some_and(|id| {
                self.times(id, i64::MIN)
                    .next()
                    .is_some_and(|(_, t)| t >= *from)
            }),
            Exec::Stopped {
                id,
                from,
                edge,
                min,
            } => id.is_some_and(|id| {
                let (mut before, mut since) = (0u64, 0u64);
                for (_, t) in self.times(id, *from) {
                    if t < *edge {
                        before += 1;
                    } else {
                        since += 1;
                    }
                }
                before >= *min && since == 0
            }),
            Exec::Restarted { id, gap, from } => id.is_some_and(|id| {
                let mut prev: Option<i64> = None;
                for (_, t) in self.times(id, i64::MIN) {
                    if t >= *from && prev.is_some_and(|p| t - p >= *gap) {
                        return true;
                    }
                    prev = Some(t);
                }
                false
            }),
            Exec::InSegment(members) => {
                members.is_some_and(|m| m.binary_search(&self.person).is_ok())
            }
            Exec::Rfm { layers, any_of } => {
                layers.get(&self.person).is_some_and(|l| any_of.contains(l))
            }
        }
    }
}

impl Exec<'_> {
    /// Whether any node reads the person's profile or id (traits, scores, computed
    /// attributes, segments, RFM layers).
    fn reads_profile(&self) -> bool {
        match self {
            Exec::And(all) => all.iter().any(Exec::reads_profile),
            Exec::Or(any) => any.iter().any(Exec::reads_profile),
            Exec::Not(node) => node.reads_profile(),
            Exec::Trait(_) | Exec::Score { .. } | Exec::InSegment(_) | Exec::Rfm { .. } => true,
            _ => false,
        }
    }

    /// The node's truth when it does not depend on events: `Some` for conditions on the
    /// profile at position `at` (or on no profile) of `person` (unknown: `None`).
    fn decided(
        &self,
        table: &ProfileTable,
        at: Option<usize>,
        person: Option<u64>,
    ) -> Option<bool> {
        match self {
            Exec::And(all) => {
                let mut out = Some(true);
                for n in all {
                    match n.decided(table, at, person) {
                        Some(false) => return Some(false),
                        None => out = None,
                        Some(true) => {}
                    }
                }
                out
            }
            Exec::Or(any) => {
                let mut out = Some(false);
                for n in any {
                    match n.decided(table, at, person) {
                        Some(true) => return Some(true),
                        None => out = None,
                        Some(false) => {}
                    }
                }
                out
            }
            Exec::Not(node) => node.decided(table, at, person).map(|b| !b),
            Exec::Trait(test) => Some(test.holds(at)),
            Exec::Score { which, cond } => {
                Some(cond.holds_value(value_json(table.score(*which, at)).as_ref(), None))
            }
            Exec::InSegment(members) => {
                person.map(|p| members.is_some_and(|m| m.binary_search(&p).is_ok()))
            }
            Exec::Rfm { layers, any_of } => {
                person.map(|p| layers.get(&p).is_some_and(|l| any_of.contains(l)))
            }
            _ => None,
        }
    }
}

/// The persons of `table` whose profile does not rule them out, and `source` kept to them —
/// when that leaves out at least half and no person without a profile could be a member.
fn narrow<'s>(
    source: &'s dyn PersonSource,
    table: &ProfileTable,
    exec: &Exec<'_>,
    threads: usize,
) -> Option<(Box<dyn PersonSource + 's>, Vec<u64>)> {
    if exec.decided(table, None, None) != Some(false) {
        return None;
    }
    let n = table.positions_len();
    let threads = threads.max(1);
    let candidates: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (n * t / threads..n * (t + 1) / threads)
                        .filter_map(|at| {
                            let p = table.at(at)?;
                            (exec.decided(table, Some(at), Some(p)) != Some(false)).then_some(p)
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("segment thread panicked"))
            .collect()
    });
    if candidates.len() * 2 > n {
        return None;
    }
    let kept = source.restricted_to(candidates.clone())?;
    Some((kept, candidates))
}

/// A value as a comparison reads it (None when the event or score has none).
fn value_json(v: f64) -> Option<Value> {
    (!v.is_nan()).then(|| serde_json::json!(v))
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

/// Evaluates a segment over every person of `source` with events and every person of
/// `table` (persons with a profile and no events are tested with none); `table` gives their
/// traits (the columns of [`Node::trait_keys`]; a column not loaded reads as absent), scores
/// and the members of saved segments.
pub fn segment(
    source: &dyn PersonSource,
    table: &ProfileTable,
    q: &SegmentQuery,
) -> Result<SegmentResult> {
    Ok(segment_members(source, table, q)?.into_result(q.sample))
}

/// Every member of a segment, sorted, and the number of persons tested.
#[derive(Debug, Clone, Default)]
pub struct Members {
    /// Member person ids, ascending.
    pub members: Vec<u64>,
    /// Persons tested.
    pub persons: u64,
}

impl Members {
    /// The size and the first `sample` members.
    pub fn into_result(mut self, sample: usize) -> SegmentResult {
        let size = self.members.len() as u64;
        self.members.truncate(sample);
        SegmentResult {
            size,
            persons: self.persons,
            sample: self.members,
        }
    }
}

/// [`segment`], listing every member.
pub fn segment_members(
    source: &dyn PersonSource,
    table: &ProfileTable,
    q: &SegmentQuery,
) -> Result<Members> {
    members_among(source, table, q, None)
}

/// [`segment_members`] over some persons only: `source` holds only their events and the
/// table is walked for `only` (sorted) instead of everyone.
pub(crate) fn members_among(
    source: &dyn PersonSource,
    table: &ProfileTable,
    q: &SegmentQuery,
    only: Option<&[u64]>,
) -> Result<Members> {
    q.root.check()?;
    let names = source.names();
    let compile = Compile {
        source,
        table,
        ids: names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as u32))
            .collect(),
        now: q.now,
        threads: q.threads,
        rfm: &q.rfm,
    };
    let exec = compile.node(&q.root)?;
    // Conditions on profiles alone (traits, scores, other segments) settle most persons
    // before their events are read: only the others are walked.
    let narrowed = match only {
        Some(_) => None,
        None => narrow(source, table, &exec, q.threads),
    };
    let (source, only) = match &narrowed {
        Some((s, candidates)) => (&**s, Some(candidates.as_slice())),
        None => (source, only),
    };
    let ctx = Ctx {
        names,
        table,
        now: q.now,
        rules: &q.rules,
    };
    let parts = run_sharded(source, q.threads, |src, shard, shards| {
        let (mut members, mut visited, mut unprofiled) = (Vec::new(), Vec::new(), 0u64);
        src.for_each_person_with_values(shard, shards, &mut |id, events| {
            let p = ctx.person(id.0, events);
            match p.at {
                Some(at) => visited.push(at),
                // Events newer than the table's profiles.
                None => unprofiled += 1,
            }
            if p.holds(&exec) {
                members.push(id.0);
            }
        });
        (members, visited, unprofiled)
    });
    let mut seen = vec![false; table.positions_len()];
    let mut out = Members::default();
    for (m, v, unprofiled) in parts {
        out.persons += v.len() as u64 + unprofiled;
        for &at in &v {
            seen[at] = true;
        }
        out.members.extend(m);
    }
    // Everyone else in the table (or of `only`), with no events. A tree that reads nothing
    // of the profile answers the same for all of them: asked once.
    let positions: Vec<usize> = match only {
        None => (0..table.positions_len()).collect(),
        Some(only) => only.iter().filter_map(|&p| table.slot(p)).collect(),
    };
    if !exec.reads_profile() {
        let unseen: Vec<u64> = positions
            .iter()
            .filter(|&&at| !seen[at])
            .filter_map(|&at| table.at(at))
            .collect();
        out.persons += unseen.len() as u64;
        if ctx.person(0, Events::default()).holds(&exec) {
            out.members.extend(unseen);
        }
        out.members.sort_unstable();
        out.members.dedup();
        return Ok(out);
    }
    let rest: Vec<(Vec<u64>, u64)> = std::thread::scope(|scope| {
        let threads = q.threads.max(1);
        let handles: Vec<_> = positions
            .chunks(positions.len().div_ceil(threads).max(1))
            .map(|chunk| {
                let (seen, exec, ctx) = (&seen, &exec, &ctx);
                scope.spawn(move || {
                    let (mut members, mut tested) = (Vec::new(), 0u64);
                    for &at in chunk {
                        if seen[at] {
                            continue;
                        }
                        if let Some(id) = table.at(at) {
                            tested += 1;
                            if ctx.person(id, Events::default()).holds(exec) {
                                members.push(id);
                            }
                        }
                    }
                    (members, tested)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("segment thread panicked"))
            .collect()
    });
    for (m, tested) in rest {
        out.members.extend(m);
        out.persons += tested;
    }
    if narrowed.is_some() {
        // Everyone in the table was tested (most by their profile alone).
        out.persons = table.len() as u64;
    }
    out.members.sort_unstable();
    out.members.dedup();
    Ok(out)
}
