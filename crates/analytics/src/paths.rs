//! Paths (用户路径): the most common sequences of events after a start event, or before an
//! end event, drawn as a Sankey diagram.
//!
//! Definitions:
//! - Only events within the date range count: `[start of date_from, start of the day after
//!   date_to)` in the query's time zone. Events in `exclude_events` are removed first, as if
//!   they had not happened (PostHog does the same).
//! - **After** (`direction: after`, the default): a person's path begins at their *first*
//!   `start_event` in the range (PostHog also takes the first occurrence per person) and
//!   follows their next events; without a `start_event` it begins at their first event in
//!   the range.
//! - **Before** (`direction: before`): a person's path ends at their *first* `end_event` in
//!   the range ("what led up to the first purchase") and follows their events backwards;
//!   without an `end_event` it ends at their last event in the range.
//! - With `collapse_repeats` (the default) consecutive events of the same name count once
//!   (`A A B` is `A B`), after exclusion, as PostHog's compacted paths.
//! - A path has at most `steps` steps. Step 1 is the anchor (the start or end event); step
//!   `k + 1` is the event after step `k` (direction after) or before it (direction before):
//!   steps count away from the anchor in both directions, so in `before` the columns are
//!   drawn right to left. Events with equal times keep their written order.
//! - A person without the anchor event in the range (or without events in it) has no path
//!   and is not counted.
//!
//! Output, Sankey-ready: a node is (step, event name) with the persons whose path has that
//! event at that step; an edge joins step `k` to step `k + 1` (away from the anchor) with the
//! persons whose path goes that way. Only the `edge_limit` heaviest edges are kept (ties:
//! source step, then source name, then target name, ascending), and only the nodes those
//! edges touch. Per step, `persons` reached it and `ended` had their path stop there (the
//! drop-off; at step `steps` everyone left ends).

use std::collections::HashMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::period::Calendar;
use crate::source::{PersonSource, run_sharded};
use crate::spec::{RangeSpec, with_range};

/// Most steps a path may have.
pub const MAX_PATH_STEPS: usize = 20;

/// Most edges a result may keep.
pub const MAX_EDGE_LIMIT: usize = 10_000;

/// Which way paths run from their anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathDirection {
    /// The events after the start event.
    After,
    /// The events before the end event.
    Before,
}

/// A paths question.
#[derive(Debug, Clone)]
pub struct PathsQuery {
    /// Which way paths run from the anchor.
    pub direction: PathDirection,
    /// The anchor: the start event (direction after) or end event (direction before); `None`:
    /// each person's first (after) or last (before) event in the range.
    pub anchor: Option<String>,
    /// Most steps per path, the anchor included (2 to [`MAX_PATH_STEPS`]).
    pub steps: usize,
    /// Count consecutive events of one name once.
    pub collapse_repeats: bool,
    /// Event names left out of every path.
    pub exclude: Vec<String>,
    /// Edges kept, heaviest first (1 to [`MAX_EDGE_LIMIT`]).
    pub edge_limit: usize,
    /// Time zone of the dates.
    pub calendar: Calendar,
    /// First date.
    pub from: Date,
    /// Last date, included.
    pub to: Date,
    /// Threads to use.
    pub threads: usize,
}

impl PathsQuery {
    /// The field name of the anchor, as the JSON spells it.
    fn anchor_field(&self) -> &'static str {
        match self.direction {
            PathDirection::After => "start_event",
            PathDirection::Before => "end_event",
        }
    }

    fn check(&self) -> Result<()> {
        if self.steps < 2 || self.steps > MAX_PATH_STEPS {
            return Err(AnalyticsError::invalid(
                "steps",
                format!("must be 2 to {MAX_PATH_STEPS}, not {}", self.steps),
            ));
        }
        if self.edge_limit == 0 || self.edge_limit > MAX_EDGE_LIMIT {
            return Err(AnalyticsError::invalid(
                "edge_limit",
                format!("must be 1 to {MAX_EDGE_LIMIT}, not {}", self.edge_limit),
            ));
        }
        if self.anchor.as_deref() == Some("") {
            return Err(AnalyticsError::invalid(
                self.anchor_field(),
                "empty event name",
            ));
        }
        for (i, name) in self.exclude.iter().enumerate() {
            if name.is_empty() {
                return Err(AnalyticsError::invalid(
                    format!("exclude_events[{i}]"),
                    "empty event name",
                ));
            }
            if self.anchor.as_ref() == Some(name) {
                return Err(AnalyticsError::invalid(
                    format!("exclude_events[{i}]"),
                    format!("{name:?} is the {}", self.anchor_field()),
                ));
            }
        }
        if self.to < self.from {
            return Err(AnalyticsError::invalid(
                "date_to",
                format!("{} is before date_from {}", self.to, self.from),
            ));
        }
        Ok(())
    }
}

/// One node: an event at a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathNode {
    /// `"{step}_{event}"`, as edges name it.
    pub id: String,
    /// Step, 1 for the anchor.
    pub step: usize,
    /// Event name.
    pub event: String,
    /// Persons whose path has this event at this step.
    pub persons: u64,
}

/// One edge: from a node at step `k` to one at step `k + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEdge {
    /// Node id at step `k`.
    pub source: String,
    /// Node id at step `k + 1`.
    pub target: String,
    /// Persons whose path goes this way.
    pub persons: u64,
}

/// Persons at one step, all events together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStep {
    /// Step, 1 for the anchor.
    pub step: usize,
    /// Persons whose path reached it.
    pub persons: u64,
    /// Persons whose path stops at it (drop-off).
    pub ended: u64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathsResult {
    /// The direction asked, for drawing.
    pub direction: PathDirection,
    /// Persons with a path.
    pub persons: u64,
    /// Nodes touched by the kept edges, by step, then persons (descending), then name.
    pub nodes: Vec<PathNode>,
    /// The heaviest edges, heaviest first.
    pub edges: Vec<PathEdge>,
    /// Per step `1..=steps`.
    pub steps: Vec<PathStep>,
}

/// A shard's counts, by name id.
struct Partial {
    /// (step index from 0, name) → persons.
    nodes: HashMap<(usize, u32), u64>,
    /// (source step index from 0, source name, target name) → persons.
    edges: HashMap<(usize, u32, u32), u64>,
    /// ended[k]: paths of exactly `k + 1` steps.
    ended: Vec<u64>,
}

impl Partial {
    fn new(steps: usize) -> Partial {
        Partial {
            nodes: HashMap::new(),
            edges: HashMap::new(),
            ended: vec![0; steps],
        }
    }
}

/// The instants `[start of from, start of the day after to)` in the calendar's zone.
pub(crate) fn range_ms(cal: &Calendar, from: Date, to: Date) -> Result<(i64, i64)> {
    let after = to
        .checked_add(jiff::Span::new().days(1))
        .map_err(|e| AnalyticsError::invalid("date_to", format!("{to}: {e}")))?;
    Ok((cal.start_of(from)?, cal.start_of(after)?))
}

/// Runs the paths analysis.
pub fn paths(source: &dyn PersonSource, q: &PathsQuery) -> Result<PathsResult> {
    q.check()?;
    let (from_ms, to_ms) = range_ms(&q.calendar, q.from, q.to)?;
    let names = source.names();
    let anchor = match &q.anchor {
        Some(name) => match source.name_id(name) {
            Some(id) => Some(id),
            // Nobody did it: no paths.
            None => return Ok(assemble(q, names, Partial::new(q.steps))),
        },
        None => None,
    };
    let excluded: Vec<bool> = names.iter().map(|n| q.exclude.contains(n)).collect();
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut part = Partial::new(q.steps);
        // The person's path, anchor first.
        let mut path: Vec<u32> = Vec::with_capacity(q.steps);
        // Direction before: the kept events up to the anchor, in time order.
        let mut seen: Vec<u32> = Vec::new();
        src.for_each_person(shard, shards, &mut |_, ev| {
            let ev = ev.within(from_ms, to_ms);
            path.clear();
            seen.clear();
            let kept = ev.names.iter().copied().filter(|&n| !excluded[n as usize]);
            match q.direction {
                PathDirection::After => {
                    let mut started = anchor.is_none();
                    for name in kept {
                        if !started {
                            started = Some(name) == anchor;
                        }
                        if !started || (q.collapse_repeats && path.last() == Some(&name)) {
                            continue;
                        }
                        path.push(name);
                        if path.len() == q.steps {
                            break;
                        }
                    }
                }
                PathDirection::Before => {
                    let mut found = anchor.is_none();
                    for name in kept {
                        if !(q.collapse_repeats && seen.last() == Some(&name)) {
                            seen.push(name);
                        }
                        if Some(name) == anchor {
                            found = true;
                            break;
                        }
                    }
                    if found {
                        path.extend(seen.iter().rev().take(q.steps));
                    }
                }
            }
            if path.is_empty() {
                return;
            }
            for (k, &name) in path.iter().enumerate() {
                *part.nodes.entry((k, name)).or_default() += 1;
            }
            for (k, w) in path.windows(2).enumerate() {
                *part.edges.entry((k, w[0], w[1])).or_default() += 1;
            }
            part.ended[path.len() - 1] += 1;
        });
        part
    });
    let mut total = Partial::new(q.steps);
    for part in partials {
        for (k, v) in part.nodes {
            *total.nodes.entry(k).or_default() += v;
        }
        for (k, v) in part.edges {
            *total.edges.entry(k).or_default() += v;
        }
        for (a, b) in total.ended.iter_mut().zip(part.ended) {
            *a += b;
        }
    }
    Ok(assemble(q, names, total))
}

/// Keeps the heaviest edges and their nodes, and names everything.
fn assemble(q: &PathsQuery, names: &[String], total: Partial) -> PathsResult {
    let name = |id: u32| names[id as usize].as_str();
    let node_id = |k: usize, id: u32| format!("{}_{}", k + 1, name(id));
    let mut edges: Vec<((usize, u32, u32), u64)> = total.edges.into_iter().collect();
    edges.sort_by(|(a, pa), (b, pb)| {
        pb.cmp(pa)
            .then(a.0.cmp(&b.0))
            .then_with(|| name(a.1).cmp(name(b.1)))
            .then_with(|| name(a.2).cmp(name(b.2)))
    });
    edges.truncate(q.edge_limit);
    let mut touched: Vec<(usize, u32)> = edges
        .iter()
        .flat_map(|((k, a, b), _)| [(*k, *a), (*k + 1, *b)])
        .collect();
    touched.sort_unstable();
    touched.dedup();
    let mut nodes: Vec<PathNode> = touched
        .into_iter()
        .map(|(k, id)| PathNode {
            id: node_id(k, id),
            step: k + 1,
            event: name(id).to_string(),
            persons: total.nodes.get(&(k, id)).copied().unwrap_or(0),
        })
        .collect();
    nodes.sort_by(|a, b| {
        a.step
            .cmp(&b.step)
            .then(b.persons.cmp(&a.persons))
            .then_with(|| a.event.cmp(&b.event))
    });
    // Persons reaching step k: those whose path has at least k + 1 steps.
    let mut steps = Vec::with_capacity(q.steps);
    let mut remaining: u64 = total.ended.iter().sum();
    let persons = remaining;
    for (k, &ended) in total.ended.iter().enumerate() {
        steps.push(PathStep {
            step: k + 1,
            persons: remaining,
            ended,
        });
        remaining -= ended;
    }
    PathsResult {
        direction: q.direction,
        persons,
        nodes,
        edges: edges
            .into_iter()
            .map(|((k, a, b), persons)| PathEdge {
                source: node_id(k, a),
                target: node_id(k + 1, b),
                persons,
            })
            .collect(),
        steps,
    }
}

/// Paths, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsSpec {
    /// `after` (default): paths from the start event on; `before`: paths up to the end event.
    #[serde(default)]
    pub direction: Option<PathDirection>,
    /// The event paths start from (direction after); each person's first event when absent.
    #[serde(default)]
    pub start_event: Option<String>,
    /// The event paths end at (direction before); each person's last event when absent.
    #[serde(default)]
    pub end_event: Option<String>,
    /// Most steps per path, the anchor included; default 5, at most 20.
    #[serde(default)]
    pub steps: Option<usize>,
    /// Count consecutive repeats of one event once; default true.
    #[serde(default)]
    pub collapse_repeats: Option<bool>,
    /// Event names left out of paths.
    #[serde(default)]
    pub exclude_events: Vec<String>,
    /// Edges kept, heaviest first; default 50.
    #[serde(default)]
    pub edge_limit: Option<usize>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(PathsSpec);

impl PathsSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<PathsQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let direction = self.direction.unwrap_or(PathDirection::After);
        let anchor = match direction {
            PathDirection::After => {
                if self.end_event.is_some() {
                    return Err(AnalyticsError::invalid(
                        "end_event",
                        "only with direction before; use start_event",
                    ));
                }
                self.start_event.clone()
            }
            PathDirection::Before => {
                if self.start_event.is_some() {
                    return Err(AnalyticsError::invalid(
                        "start_event",
                        "only with direction after; use end_event",
                    ));
                }
                self.end_event.clone()
            }
        };
        let q = PathsQuery {
            direction,
            anchor,
            steps: self.steps.unwrap_or(5),
            collapse_repeats: self.collapse_repeats.unwrap_or(true),
            exclude: self.exclude_events.clone(),
            edge_limit: self.edge_limit.unwrap_or(50),
            calendar: range.calendar()?,
            from,
            to,
            threads,
        };
        q.check()?;
        Ok(q)
    }
}
