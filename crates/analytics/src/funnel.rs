//! Funnels: how many persons went through a sequence of steps within a conversion window.
//!
//! Semantics (as PostHog and ClickHouse's `windowFunnel` define them):
//! - Only events inside `[from, to)` count, for every step.
//! - **Ordered** (PostHog "sequential"): step `k + 1` is an event after step `k`'s (other
//!   events may come between), and every step falls within `window` of the step-1 event that
//!   starts the chain. A person *reaches* step `k` if some chain gets that far; the chain with
//!   the latest possible start is kept for each step, which is never worse.
//! - **Strict**: the steps are consecutive events of the person, nothing in between.
//! - **Any order**: the steps' events in any order within one window; a person reaches as
//!   many steps as the window holds distinct steps (a step repeated in the funnel needs as
//!   many events).
//! - Events with equal times are taken in the order they were written; one event never
//!   counts for two steps.
//! - Time to convert (ordered and strict): from the chain's first step to the last step,
//!   the first time the last step is reached.
//!
//! **Exclusion steps** (ordered funnels only, as PostHog's): `{event, from_step, to_step}`
//! (0-based, `from_step < to_step`) disqualifies a conversion attempt — a chain of step
//! events — in which `event` occurs strictly between the attempt's step-`from_step` event and
//! its step-`to_step` event, "between" in the person's event order (time, then write order).
//! An attempt that stopped after `from_step` but before `to_step` is disqualified when the
//! event occurs after its step-`from_step` event while the attempt could still have gone on,
//! that is within the window of its first step: otherwise a person who did the excluded
//! event would count as entering the funnel and never converting, and the conversion rate
//! would be biased down.
//!
//! How this meets the "most steps reached" rule above: a person is measured by their
//! furthest attempt, exactly as without exclusions (the number of steps `m` the best chain
//! reaches). If some attempt reaching `m` steps is not disqualified, the person counts at
//! `m` steps (and the time to convert is taken over such attempts); if every attempt reaching
//! `m` steps is disqualified, the person is left out of the funnel altogether — out of every
//! step's count, as PostHog shows it — and counted in [`FunnelResult::excluded`]. A shorter
//! clean attempt does not bring them back: that would count a converter as a drop-off.
//! An exclusion event may not be one of the funnel's step events (PostHog refuses that too).
//! Without exclusions the funnel runs exactly the code it ran before.

use serde::{Deserialize, Serialize};

use lodestar_core::PersonId;

use crate::error::{AnalyticsError, Result};
use crate::source::{Events, PersonSource, run_sharded};

/// How the steps must follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunnelOrder {
    /// In order, other events allowed between steps.
    Ordered,
    /// In order, no other event between steps.
    Strict,
    /// In any order.
    Any,
}

/// Most steps a funnel may have.
pub const MAX_STEPS: usize = 32;

/// An exclusion step: attempts with `event` between step `from_step` and step `to_step`
/// do not count (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelExclusion {
    /// The event that disqualifies.
    pub event: String,
    /// The step (0-based) after whose event it disqualifies.
    pub from_step: usize,
    /// The step (0-based) before whose event it disqualifies; greater than `from_step`.
    pub to_step: usize,
}

/// A funnel question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelQuery {
    /// Event name of each step.
    pub steps: Vec<String>,
    /// Step order rule.
    pub order: FunnelOrder,
    /// Conversion window (ms), from the first step to the last.
    pub window_ms: i64,
    /// First instant counted (ms, inclusive).
    pub from_ms: i64,
    /// End of the range (ms, exclusive).
    pub to_ms: i64,
    /// List the persons who reached exactly this many steps (0-based index of the step at
    /// which they dropped off), up to `max_persons`.
    pub dropped_at: Option<usize>,
    /// Most persons listed.
    pub max_persons: usize,
    /// Exclusion steps (ordered funnels only); none by default.
    pub exclusions: Vec<FunnelExclusion>,
    /// Threads to use.
    pub threads: usize,
}

impl FunnelQuery {
    /// An ordered funnel over `steps` with a window, over `[from_ms, to_ms)`.
    pub fn new(steps: &[&str], window_ms: i64, from_ms: i64, to_ms: i64) -> FunnelQuery {
        FunnelQuery {
            steps: steps.iter().map(|s| s.to_string()).collect(),
            order: FunnelOrder::Ordered,
            window_ms,
            from_ms,
            to_ms,
            dropped_at: None,
            max_persons: 10_000,
            exclusions: Vec::new(),
            threads: 1,
        }
    }

    fn check(&self) -> Result<()> {
        if self.steps.len() < 2 || self.steps.len() > MAX_STEPS {
            return Err(AnalyticsError::invalid(
                "steps",
                format!(
                    "a funnel has 2 to {MAX_STEPS} steps, not {}",
                    self.steps.len()
                ),
            ));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if s.is_empty() {
                return Err(AnalyticsError::invalid(
                    format!("steps[{i}]"),
                    "empty event name",
                ));
            }
        }
        if self.window_ms <= 0 {
            return Err(AnalyticsError::invalid("window", "must be positive"));
        }
        if self.to_ms <= self.from_ms {
            return Err(AnalyticsError::invalid(
                "date_to",
                "must be after date_from",
            ));
        }
        if let Some(k) = self.dropped_at
            && k >= self.steps.len()
        {
            return Err(AnalyticsError::invalid(
                "dropped_at",
                format!(
                    "step {k} does not exist (the funnel has {})",
                    self.steps.len()
                ),
            ));
        }
        if !self.exclusions.is_empty() && self.order != FunnelOrder::Ordered {
            return Err(AnalyticsError::invalid(
                "exclusions",
                "exclusion steps apply to ordered funnels only",
            ));
        }
        for (i, x) in self.exclusions.iter().enumerate() {
            if x.event.is_empty() {
                return Err(AnalyticsError::invalid(
                    format!("exclusions[{i}].event"),
                    "empty event name",
                ));
            }
            if self.steps.contains(&x.event) {
                return Err(AnalyticsError::invalid(
                    format!("exclusions[{i}].event"),
                    format!("{:?} is also a step of the funnel", x.event),
                ));
            }
            if x.to_step >= self.steps.len() {
                return Err(AnalyticsError::invalid(
                    format!("exclusions[{i}].to_step"),
                    format!(
                        "step {} does not exist (the funnel has {})",
                        x.to_step,
                        self.steps.len()
                    ),
                ));
            }
            if x.from_step >= x.to_step {
                return Err(AnalyticsError::invalid(
                    format!("exclusions[{i}].from_step"),
                    format!("must be before to_step {}", x.to_step),
                ));
            }
        }
        Ok(())
    }
}

/// One step's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStep {
    /// Its event.
    pub event: String,
    /// Persons who reached it.
    pub persons: u64,
    /// `persons` over the first step's.
    pub conversion_from_first: f64,
    /// `persons` over the previous step's.
    pub conversion_from_previous: f64,
    /// Persons who reached the previous step but not this one.
    pub dropped: u64,
}

/// Distribution of the time to convert (ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeToConvert {
    /// Converted persons measured.
    pub persons: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub median_ms: i64,
    /// 90th percentile.
    pub p90_ms: i64,
    /// Histogram: (bin start ms, persons), ten equal bins from 0 to the maximum.
    pub histogram: Vec<(i64, u64)>,
}

/// A funnel's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelResult {
    /// Per step.
    pub steps: Vec<FunnelStep>,
    /// Time from the first to the last step (ordered and strict funnels).
    pub time_to_convert: Option<TimeToConvert>,
    /// The persons asked for by [`FunnelQuery::dropped_at`].
    pub dropped_persons: Vec<PersonId>,
    /// Persons left out of every step because all their furthest attempts were disqualified
    /// by an exclusion step (0 without exclusions).
    #[serde(default)]
    pub excluded: u64,
}

#[derive(Debug, Default)]
struct Partial {
    /// reached[k] = persons reaching exactly k steps.
    reached: Vec<u64>,
    ttc: Vec<i64>,
    dropped: Vec<PersonId>,
    excluded: u64,
}

/// The per-person rule: which steps a person reached, and how fast.
pub(crate) struct Matcher {
    /// Bit k set when name id `i` is step k's event.
    masks: Vec<u64>,
    /// For any-order funnels: how many steps each name fills (by name id).
    need: Vec<u32>,
    steps: usize,
    order: FunnelOrder,
    window: i64,
    /// By name id, for exclusion events: bit `k` set when the event disqualifies attempts
    /// that have done exactly `k` steps. Empty without exclusions.
    armed: Vec<u64>,
}

/// Scratch space of [`Matcher::ordered_excluding`], reused across persons.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    /// `live[k]`: start times (ascending, distinct) of the clean attempts with `k` steps done
    /// that may still go on or be disqualified.
    live: Vec<Vec<i64>>,
    /// `safe[k]`: a clean attempt with `k` steps done can no longer be disqualified.
    safe: Vec<bool>,
    /// Merge buffer.
    merged: Vec<i64>,
}

impl Matcher {
    pub(crate) fn new(
        names: &[String],
        steps: &[String],
        order: FunnelOrder,
        window: i64,
    ) -> Matcher {
        let mut masks = vec![0u64; names.len()];
        let mut need = vec![0u32; names.len()];
        for (k, step) in steps.iter().enumerate() {
            if let Some(id) = names.iter().position(|n| n == step) {
                masks[id] |= 1 << k;
                need[id] += 1;
            }
        }
        Matcher {
            masks,
            need,
            steps: steps.len(),
            order,
            window,
            armed: Vec::new(),
        }
    }

    /// Adds exclusion steps (checked by [`FunnelQuery`]).
    pub(crate) fn exclude(&mut self, names: &[String], exclusions: &[FunnelExclusion]) {
        if exclusions.is_empty() {
            return;
        }
        self.armed = vec![0u64; names.len()];
        for x in exclusions {
            if let Some(id) = names.iter().position(|n| *n == x.event) {
                // Attempts that have done the from-step but not the to-step.
                for k in x.from_step + 1..=x.to_step {
                    self.armed[id] |= 1 << k;
                }
            }
        }
    }

    /// An ordered funnel with exclusion steps: the steps reached and the time to convert,
    /// or `None` when every furthest attempt is disqualified.
    ///
    /// Attempts are tracked by their start time per number of steps done; the attempt with
    /// the latest start is still the one that goes furthest, but an earlier start can escape
    /// an exclusion the later one meets (its window closes first), so every distinct start
    /// is kept until its window closes.
    pub(crate) fn ordered_excluding(
        &self,
        ev: Events<'_>,
        hits: &mut Vec<u32>,
        at: &mut Attempts,
    ) -> Option<(usize, Option<i64>)> {
        let n = self.steps;
        let (most, _) = self.ordered(ev, hits);
        if most == 0 {
            return Some((0, None));
        }
        at.live.resize_with(n + 1, Vec::new);
        for v in &mut at.live {
            v.clear();
        }
        at.safe.clear();
        at.safe.resize(n + 1, false);
        let mut ttc = None;
        for (i, &name) in ev.names.iter().enumerate() {
            let ts = ev.ts[i];
            let mut armed = self.armed.get(name as usize).copied().unwrap_or(0);
            while armed != 0 {
                let k = armed.trailing_zeros() as usize;
                armed &= armed - 1;
                // Attempts whose window has closed escape; the others are disqualified.
                if at.live[k].first().is_some_and(|&s| ts - s > self.window) {
                    at.safe[k] = true;
                }
                at.live[k].clear();
            }
            let mask = self.mask(name);
            if mask == 0 {
                continue;
            }
            for k in (0..n).rev() {
                if mask & (1 << k) == 0 {
                    continue;
                }
                if k == 0 {
                    if at.live[1].last() != Some(&ts) {
                        at.live[1].push(ts);
                    }
                    continue;
                }
                // Attempts with k steps done go on to k + 1 when within their window.
                let closed = at.live[k].partition_point(|&s| ts - s > self.window);
                if closed > 0 {
                    at.safe[k] = true;
                    at.live[k].drain(..closed);
                }
                let Some(&latest) = at.live[k].last() else {
                    continue;
                };
                if k + 1 == n && ttc.is_none() {
                    ttc = Some(ts - latest);
                }
                let (lower, upper) = at.live.split_at_mut(k + 1);
                merge_into(&mut upper[0], &lower[k], &mut at.merged);
            }
        }
        (at.safe[most] || !at.live[most].is_empty())
            .then_some((most, if most == n { ttc } else { None }))
    }

    fn mask(&self, name: u32) -> u64 {
        self.masks.get(name as usize).copied().unwrap_or(0)
    }

    /// Steps reached by a person (0..=steps) and, if converted, the time to convert.
    /// `hits` is scratch space, reused across persons.
    pub(crate) fn person(&self, ev: Events<'_>, hits: &mut Vec<u32>) -> (usize, Option<i64>) {
        match self.order {
            FunnelOrder::Ordered => self.ordered(ev, hits),
            FunnelOrder::Strict => self.strict(ev),
            FunnelOrder::Any => (self.any(ev, hits), None),
        }
    }

    fn ordered(&self, ev: Events<'_>, hits: &mut Vec<u32>) -> (usize, Option<i64>) {
        const NONE: i64 = i64::MIN;
        let n = self.steps;
        let mut start = [NONE; MAX_STEPS];
        let mut ttc = None;
        // Most events are no step: find the ones that are without a branch per event (a
        // mispredicted branch costs more than the rest of the work), then walk only those.
        // Grown, never cleared: every slot read below was written for this person first.
        if hits.len() <= ev.len() {
            hits.resize(ev.len() + 1, 0);
        }
        let mut found = 0usize;
        for (i, &name) in ev.names.iter().enumerate() {
            hits[found] = i as u32;
            found += (self.mask(name) != 0) as usize;
        }
        for &i in &hits[..found] {
            let i = i as usize;
            let ts = ev.ts[i];
            let mask = self.mask(ev.names[i]);
            for k in (0..n).rev() {
                if mask & (1 << k) == 0 {
                    continue;
                }
                if k == 0 {
                    start[0] = ts;
                } else if start[k - 1] != NONE
                    && ts - start[k - 1] <= self.window
                    && start[k - 1] > start[k]
                {
                    start[k] = start[k - 1];
                    if k == n - 1 && ttc.is_none() {
                        ttc = Some(ts - start[k - 1]);
                    }
                }
            }
        }
        let reached = (0..n)
            .rev()
            .find(|&k| start[k] != NONE)
            .map_or(0, |k| k + 1);
        (reached, ttc)
    }

    fn strict(&self, ev: Events<'_>) -> (usize, Option<i64>) {
        let n = self.steps;
        // Live chains: (start time, steps done).
        let mut chains: Vec<(i64, usize)> = Vec::new();
        let mut best = 0;
        let mut ttc = None;
        for (i, &ts) in ev.ts.iter().enumerate() {
            let mask = self.mask(ev.names[i]);
            chains.retain_mut(|(start, done)| {
                if mask & (1 << *done) != 0 && ts - *start <= self.window {
                    *done += 1;
                    best = best.max(*done);
                    if *done == n {
                        ttc.get_or_insert(ts - *start);
                        return false;
                    }
                    true
                } else {
                    false
                }
            });
            if mask & 1 != 0 {
                best = best.max(1);
                chains.push((ts, 1));
            }
        }
        (best, ttc)
    }

    fn any(&self, ev: Events<'_>, counts: &mut Vec<u32>) -> usize {
        counts.clear();
        counts.resize(self.need.len(), 0);
        let mut filled = 0usize;
        let mut best = 0usize;
        let mut lo = 0usize;
        let matching = |i: usize| self.mask(ev.names[i]) != 0;
        for hi in 0..ev.len() {
            if !matching(hi) {
                continue;
            }
            let name = ev.names[hi] as usize;
            counts[name] += 1;
            if counts[name] <= self.need[name] {
                filled += 1;
            }
            while ev.ts[hi] - ev.ts[lo] > self.window {
                if matching(lo) {
                    let l = ev.names[lo] as usize;
                    if counts[l] <= self.need[l] {
                        filled -= 1;
                    }
                    counts[l] -= 1;
                }
                lo += 1;
            }
            best = best.max(filled);
        }
        best
    }
}

/// Sets `into` to the sorted union of sorted `into` and `add`, without repeats.
fn merge_into(into: &mut Vec<i64>, add: &[i64], buf: &mut Vec<i64>) {
    buf.clear();
    let (mut a, mut b) = (0, 0);
    while a < into.len() || b < add.len() {
        let x = match (into.get(a), add.get(b)) {
            (Some(&x), Some(&y)) if x <= y => {
                a += 1;
                b += (x == y) as usize;
                x
            }
            (_, Some(&y)) => {
                b += 1;
                y
            }
            (Some(&x), None) => {
                a += 1;
                x
            }
            (None, None) => unreachable!("loop condition"),
        };
        buf.push(x);
    }
    std::mem::swap(into, buf);
}

/// Runs a funnel over `source`.
pub fn funnel(source: &dyn PersonSource, q: &FunnelQuery) -> Result<FunnelResult> {
    q.check()?;
    let mut matcher = Matcher::new(source.names(), &q.steps, q.order, q.window_ms);
    matcher.exclude(source.names(), &q.exclusions);
    let excluding = !q.exclusions.is_empty();
    let n = q.steps.len();
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut p = Partial {
            reached: vec![0; n + 1],
            ..Partial::default()
        };
        let mut hits: Vec<u32> = Vec::new();
        let mut attempts = Attempts::default();
        src.for_each_person(shard, shards, &mut |person, ev| {
            let ev = ev.within(q.from_ms, q.to_ms);
            if ev.is_empty() {
                return;
            }
            let (reached, ttc) = if excluding {
                match matcher.ordered_excluding(ev, &mut hits, &mut attempts) {
                    Some(r) => r,
                    None => {
                        p.excluded += 1;
                        return;
                    }
                }
            } else {
                matcher.person(ev, &mut hits)
            };
            p.reached[reached] += 1;
            if let Some(t) = ttc {
                p.ttc.push(t);
            }
            if q.dropped_at == Some(reached) && reached > 0 && p.dropped.len() < q.max_persons {
                p.dropped.push(person);
            }
        });
        p
    });
    let mut reached = vec![0u64; n + 1];
    let mut ttc = Vec::new();
    let mut dropped = Vec::new();
    let mut excluded = 0;
    for p in partials {
        excluded += p.excluded;
        for (a, b) in reached.iter_mut().zip(p.reached) {
            *a += b;
        }
        ttc.extend(p.ttc);
        dropped.extend(p.dropped);
    }
    dropped.sort();
    dropped.truncate(q.max_persons);
    // at_least[k] = persons reaching step k (0-based) or further.
    let mut at_least = vec![0u64; n];
    let mut acc = 0;
    for k in (0..n).rev() {
        acc += reached[k + 1];
        at_least[k] = acc;
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let steps = (0..n)
        .map(|k| FunnelStep {
            event: q.steps[k].clone(),
            persons: at_least[k],
            conversion_from_first: ratio(at_least[k], at_least[0]),
            conversion_from_previous: if k == 0 {
                ratio(at_least[0], at_least[0])
            } else {
                ratio(at_least[k], at_least[k - 1])
            },
            dropped: if k == 0 {
                0
            } else {
                at_least[k - 1] - at_least[k]
            },
        })
        .collect();
    let time_to_convert = (q.order != FunnelOrder::Any).then(|| summarize(ttc));
    Ok(FunnelResult {
        steps,
        time_to_convert,
        dropped_persons: dropped,
        excluded,
    })
}

fn summarize(mut v: Vec<i64>) -> TimeToConvert {
    v.sort_unstable();
    let n = v.len();
    let pick = |q: f64| {
        if n == 0 {
            0
        } else {
            v[((n - 1) as f64 * q).round() as usize]
        }
    };
    let max = v.last().copied().unwrap_or(0);
    let width = (max / 10).max(1);
    let mut histogram: Vec<(i64, u64)> = (0..10).map(|i| (i * width, 0)).collect();
    for &t in &v {
        let b = ((t / width) as usize).min(9);
        histogram[b].1 += 1;
    }
    TimeToConvert {
        persons: n as u64,
        mean_ms: if n == 0 {
            0.0
        } else {
            v.iter().map(|&t| t as f64).sum::<f64>() / n as f64
        },
        median_ms: pick(0.5),
        p90_ms: pick(0.9),
        histogram,
    }
}
