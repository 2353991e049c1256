//! Win-back (流失挽回): persons who churned, how many came back, how long it took, and what
//! they did first on coming back.
//!
//! Definitions:
//! - *Activity* is any event, or one of `activity_events` when given. All of a person's
//!   events are read, before the range and after it too.
//! - A person **churns** `churn_days` × 24 hours after an activity with no further activity
//!   up to that instant (inclusive): after an activity at `a`, with the next one at `b` (or
//!   none), they churn at `c = a + churn_days` when `b > c`. This is the moment
//!   [`mod@crate::stages`] calls them churned. The *churn date* is the calendar date of `c` in
//!   the query's time zone; churns dated within `date_from..=date_to` are counted, each in
//!   the day, week or month (`interval`) of its date. A person who churns, returns and churns
//!   again counts once for each churn.
//! - The **return** after a churn at `c` is the next activity `b`; *days to return* is the
//!   number of calendar days from the churn date to the date of `b` (0 when both fall on the
//!   same day). It counts as `returned` when days to return ≤ `window` (default 90 days).
//!   Returns may fall after `date_to`.
//! - `days_to_return[j]` counts every return, within the window or not, by days to return:
//!   bucket `j` holds `bounds[j - 1] + 1 ..= bounds[j]` (the first from 0), the last bucket
//!   everything after the last bound. Default bounds 7, 14, 30, 60, 90: `0-7`, `8-14`,
//!   `15-30`, `31-60`, `61-90`, `>90`. Returns not yet seen are in none.
//! - **After what** (`top_events`): the name of the return event (the first activity after
//!   churning) of the returns within the window, the `top_n` most frequent (ties by name).
//!   To see non-activity triggers such as a campaign click, leave `activity_events` empty.
//! - The analysis never reads the clock: a churn dated after the data's last day is still a
//!   churn, so pick a `date_to` at least `churn_days` before the data ends.
//! - Days are read once as a table of day boundaries (no zone conversion per event) from
//!   `date_from` to `date_to` plus the window or the last bucket bound, whichever is longer;
//!   it may span at most [`crate::period::MAX_PERIODS`] days, else `date_to` is refused.

use std::collections::HashMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::source::{PersonSource, run_sharded};
use crate::spec::{RangeSpec, interval, parse_duration, with_range};

const DAY_MS: i64 = 86_400_000;

/// Most days `churn_days` and the window may be.
pub const MAX_DAYS: u32 = 3_650;

/// Most bucket bounds.
pub const MAX_BUCKETS: usize = 32;

/// Most top events listed.
pub const MAX_TOP_N: usize = 1_000;

/// A win-back question.
#[derive(Debug, Clone)]
pub struct WinbackQuery {
    /// Events that count as activity; any event when empty.
    pub activity: Vec<String>,
    /// Days without activity after which a person churns.
    pub churn_days: u32,
    /// A return within this many days of the churn date counts as returned.
    pub window_days: u32,
    /// Upper bounds (days, inclusive, increasing) of the days-to-return buckets.
    pub bounds: Vec<u32>,
    /// Return events listed per period.
    pub top_n: usize,
    /// Cohort of the churn date: day, week or month.
    pub interval: Interval,
    /// Time zone and week start.
    pub calendar: Calendar,
    /// First churn date.
    pub from: Date,
    /// Last churn date, included.
    pub to: Date,
    /// Threads to use.
    pub threads: usize,
}

impl WinbackQuery {
    fn check(&self) -> Result<()> {
        for (i, name) in self.activity.iter().enumerate() {
            if name.is_empty() {
                return Err(AnalyticsError::invalid(
                    format!("activity_events[{i}]"),
                    "empty event name",
                ));
            }
        }
        if self.churn_days == 0 || self.churn_days > MAX_DAYS {
            return Err(AnalyticsError::invalid(
                "churn_days",
                format!("must be 1 to {MAX_DAYS}, not {}", self.churn_days),
            ));
        }
        if self.window_days == 0 || self.window_days > MAX_DAYS {
            return Err(AnalyticsError::invalid(
                "window",
                format!("must be 1 to {MAX_DAYS} days, not {}", self.window_days),
            ));
        }
        if self.bounds.is_empty() || self.bounds.len() > MAX_BUCKETS {
            return Err(AnalyticsError::invalid(
                "buckets",
                format!("give 1 to {MAX_BUCKETS} bounds, not {}", self.bounds.len()),
            ));
        }
        for (i, w) in self.bounds.windows(2).enumerate() {
            if w[1] <= w[0] {
                return Err(AnalyticsError::invalid(
                    format!("buckets[{}]", i + 1),
                    format!("{} is not above the bound before it ({})", w[1], w[0]),
                ));
            }
        }
        if let Some(&last) = self.bounds.last()
            && last > MAX_DAYS
        {
            return Err(AnalyticsError::invalid(
                format!("buckets[{}]", self.bounds.len() - 1),
                format!("must be at most {MAX_DAYS}"),
            ));
        }
        if self.top_n == 0 || self.top_n > MAX_TOP_N {
            return Err(AnalyticsError::invalid(
                "top_n",
                format!("must be 1 to {MAX_TOP_N}, not {}", self.top_n),
            ));
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

/// The default bucket bounds: 0-7, 8-14, 15-30, 31-60, 61-90, >90 days.
pub const DEFAULT_BOUNDS: [u32; 5] = [7, 14, 30, 60, 90];

/// How often one event brought persons back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnEvent {
    /// Event name.
    pub event: String,
    /// Returns it marked.
    pub count: u64,
}

/// The figures of a set of churns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinbackFigures {
    /// Churns (a person churning twice counts twice).
    pub churned: u64,
    /// Churns followed by a return within the window.
    pub returned: u64,
    /// `returned / churned`; absent when nobody churned.
    pub return_rate: Option<f64>,
    /// Returns per days-to-return bucket (see [`WinbackResult::buckets`]), window or not.
    pub days_to_return: Vec<u64>,
    /// The most frequent return events of the returns within the window.
    pub top_events: Vec<ReturnEvent>,
}

/// One cohort of churn dates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinbackPeriod {
    /// First date of the period.
    pub date: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: WinbackFigures,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinbackResult {
    /// Bucket labels (`0-7`, `8-14`, …, `>90`).
    pub buckets: Vec<String>,
    /// Per period of churn dates, in order.
    pub periods: Vec<WinbackPeriod>,
    /// Every churn in the range.
    pub total: WinbackFigures,
}

/// Counts of one period, by name id.
#[derive(Clone)]
struct Counts {
    churned: u64,
    returned: u64,
    buckets: Vec<u64>,
    events: HashMap<u32, u64>,
}

impl Counts {
    fn new(buckets: usize) -> Counts {
        Counts {
            churned: 0,
            returned: 0,
            buckets: vec![0; buckets],
            events: HashMap::new(),
        }
    }

    fn add(&mut self, other: &Counts) {
        self.churned += other.churned;
        self.returned += other.returned;
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        for (k, v) in &other.events {
            *self.events.entry(*k).or_default() += v;
        }
    }

    fn figures(&self, names: &[String], top_n: usize) -> WinbackFigures {
        let mut top: Vec<(&str, u64)> = self
            .events
            .iter()
            .map(|(&id, &n)| (names[id as usize].as_str(), n))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        top.truncate(top_n);
        WinbackFigures {
            churned: self.churned,
            returned: self.returned,
            return_rate: (self.churned > 0).then(|| self.returned as f64 / self.churned as f64),
            days_to_return: self.buckets.clone(),
            top_events: top
                .into_iter()
                .map(|(event, count)| ReturnEvent {
                    event: event.to_string(),
                    count,
                })
                .collect(),
        }
    }
}

/// The labels of the buckets bounded by `bounds`.
fn labels(bounds: &[u32]) -> Vec<String> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lo = 0u32;
    for &b in bounds {
        out.push(format!("{lo}-{b}"));
        lo = b + 1;
    }
    out.push(format!(">{}", bounds.last().copied().unwrap_or(0)));
    out
}

/// Runs the win-back analysis.
pub fn winback(source: &dyn PersonSource, q: &WinbackQuery) -> Result<WinbackResult> {
    q.check()?;
    let cal = &q.calendar;
    let periods = Periods::new(cal, q.interval, q.from, q.to)?;
    // Days from date_from to past the furthest day a bucket or the window tells apart: a
    // return after the table is after both.
    let range_days = q
        .from
        .until(q.to)
        .map_err(|e| AnalyticsError::invalid("date_to", e.to_string()))?
        .get_days() as usize
        + 1;
    let horizon = q.window_days.max(*q.bounds.last().expect("checked")) as i64 + 1;
    let table_end =
        q.to.checked_add(jiff::Span::new().days(horizon))
            .map_err(|e| AnalyticsError::invalid("date_to", format!("{}: {e}", q.to)))?;
    let days = Periods::new(cal, Interval::Day, q.from, table_end)?;
    let (from_ms, to_ms) = (days.starts[0], days.starts[range_days]);
    let churn_ms = q.churn_days as i64 * DAY_MS;
    let window = q.window_days as usize;
    let is_activity: Vec<bool> = source
        .names()
        .iter()
        .map(|n| q.activity.is_empty() || q.activity.contains(n))
        .collect();
    let n_buckets = q.bounds.len() + 1;
    let bucket = |d: usize| q.bounds.partition_point(|&b| (b as usize) < d);
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut counts = vec![Counts::new(n_buckets); periods.len()];
        src.for_each_person(shard, shards, &mut |_, ev| {
            // The previous activity, looking for the next.
            let mut last: Option<i64> = None;
            let mut on_churn = |c: i64, back: Option<(i64, u32)>| {
                if c < from_ms || c >= to_ms {
                    return;
                }
                let p = periods.index(c).expect("within the range");
                let cell = &mut counts[p];
                cell.churned += 1;
                let Some((b, name)) = back else { return };
                let churn_day = days.index(c).expect("within the range");
                let d = days.index(b).map_or(usize::MAX, |r| r - churn_day);
                cell.buckets[bucket(d)] += 1;
                if d <= window {
                    cell.returned += 1;
                    *cell.events.entry(name).or_default() += 1;
                }
            };
            for (&t, &name) in ev.ts.iter().zip(ev.names) {
                if !is_activity[name as usize] {
                    continue;
                }
                if let Some(a) = last {
                    let c = a.saturating_add(churn_ms);
                    if t > c {
                        on_churn(c, Some((t, name)));
                    }
                }
                last = Some(t);
            }
            if let Some(a) = last {
                on_churn(a.saturating_add(churn_ms), None);
            }
        });
        counts
    });
    let mut counts = vec![Counts::new(n_buckets); periods.len()];
    for part in partials {
        for (a, b) in counts.iter_mut().zip(&part) {
            a.add(b);
        }
    }
    let mut total = Counts::new(n_buckets);
    for c in &counts {
        total.add(c);
    }
    let names = source.names();
    Ok(WinbackResult {
        buckets: labels(&q.bounds),
        periods: counts
            .iter()
            .enumerate()
            .map(|(p, c)| WinbackPeriod {
                date: periods.dates[p].to_string(),
                figures: c.figures(names, q.top_n),
            })
            .collect(),
        total: total.figures(names, q.top_n),
    })
}

/// Win-back, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinbackSpec {
    /// Events that count as activity; any event when absent or empty.
    #[serde(default)]
    pub activity_events: Vec<String>,
    /// Days without activity before a person churns; default 30.
    #[serde(default)]
    pub churn_days: Option<u32>,
    /// How soon a return counts, in whole days (`90d`, `12w`); default `90d`.
    #[serde(default)]
    pub window: Option<String>,
    /// Upper bounds (days) of the days-to-return buckets; default `[7, 14, 30, 60, 90]`.
    #[serde(default)]
    pub buckets: Option<Vec<u32>>,
    /// Return events listed per period; default 10.
    #[serde(default)]
    pub top_n: Option<usize>,
    /// Cohort of the churn date: `day`, `week` (default) or `month`.
    #[serde(default)]
    pub interval: Option<String>,
    /// First churn date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last churn date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(WinbackSpec);

impl WinbackSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<WinbackQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let window_ms = parse_duration("window", self.window.as_deref().unwrap_or("90d"))?;
        if window_ms % DAY_MS != 0 {
            return Err(AnalyticsError::invalid("window", "must be whole days"));
        }
        let window_days = u32::try_from(window_ms / DAY_MS)
            .map_err(|_| AnalyticsError::invalid("window", "too long"))?;
        let q = WinbackQuery {
            activity: self.activity_events.clone(),
            churn_days: self.churn_days.unwrap_or(30),
            window_days,
            bounds: self
                .buckets
                .clone()
                .unwrap_or_else(|| DEFAULT_BOUNDS.to_vec()),
            top_n: self.top_n.unwrap_or(10),
            interval: interval(self.interval.as_deref(), Interval::Week)?,
            calendar: range.calendar()?,
            from,
            to,
            threads,
        };
        q.check()?;
        Ok(q)
    }
}
