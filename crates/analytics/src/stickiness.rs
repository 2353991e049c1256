//! Stickiness (粘性): how many days of a week or month persons are active, and the daily
//! DAU / WAU / MAU series with their ratios.
//!
//! Definitions:
//! - A person is *active on a day* when they did the activity event that day (any event
//!   when none is named). Days are calendar days in the query's time zone (23 or 25 hours
//!   long where the clocks change).
//! - **Distribution** (Amplitude's and PostHog's stickiness, per period): for each week
//!   (starting on the calendar's week start, Monday) or month holding a date of
//!   `date_from..=date_to`, `counts[k - 1]` is the number of persons active on exactly `k`
//!   distinct days of it, `k = 1..=days` (7 for a week, 28 to 31 for a month). Periods are
//!   whole, as in the other kernels: the first and last one include their days outside the
//!   range.
//! - **Series**, for every day `d` of `date_from..=date_to`: DAU is the persons active on
//!   `d`; WAU the persons active on any of the 7 days ending on `d` (`d - 6..=d`); MAU the
//!   30 days ending on `d` (`d - 29..=d`), so days before `date_from` are read too.
//!   `dau_wau` and `dau_mau` are DAU / WAU and DAU / MAU, absent when the denominator is 0.
//! - Days are read once as a table of day boundaries (no zone conversion per event), so the
//!   29 days before `date_from` through the end of the last period may span at most
//!   [`crate::period::MAX_PERIODS`] days; a longer range is refused on `date_to`.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::source::{PersonSource, run_sharded};
use crate::spec::{RangeSpec, interval, with_range};

/// Days in the WAU window.
pub const WAU_DAYS: usize = 7;
/// Days in the MAU window.
pub const MAU_DAYS: usize = 30;

/// A stickiness question.
#[derive(Debug, Clone)]
pub struct StickinessQuery {
    /// The event that counts as activity; `None`: any event.
    pub event: Option<String>,
    /// `Week` or `Month` (a day has only one day to be active on).
    pub interval: Interval,
    /// Time zone and week start.
    pub calendar: Calendar,
    /// First date.
    pub from: Date,
    /// Last date, included.
    pub to: Date,
    /// Threads to use.
    pub threads: usize,
}

/// One week's or month's distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickinessPeriod {
    /// First date of the period.
    pub date: String,
    /// Days in the period.
    pub days: usize,
    /// Persons active on at least one day of it.
    pub persons: u64,
    /// `counts[k - 1]`: persons active on exactly `k` distinct days of it.
    pub counts: Vec<u64>,
}

/// One day of the DAU / WAU / MAU series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveDay {
    /// The date.
    pub date: String,
    /// Persons active on it.
    pub dau: u64,
    /// Persons active in the 7 days ending on it.
    pub wau: u64,
    /// Persons active in the 30 days ending on it.
    pub mau: u64,
    /// `dau / wau`; absent when `wau` is 0.
    pub dau_wau: Option<f64>,
    /// `dau / mau`; absent when `mau` is 0.
    pub dau_mau: Option<f64>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StickinessResult {
    /// Per week or month, in order.
    pub periods: Vec<StickinessPeriod>,
    /// Per day of the range, in order.
    pub daily: Vec<ActiveDay>,
}

/// A shard's counts.
struct Partial {
    /// Per period, per `k - 1`.
    counts: Vec<Vec<u64>>,
    /// Per day of the day table: +1 where a person's active stretch begins, -1 after it ends
    /// (DAU, WAU, MAU).
    diffs: [Vec<i64>; 3],
}

fn day_before(d: Date, days: i64) -> Result<Date> {
    d.checked_sub(jiff::Span::new().days(days))
        .map_err(|e| AnalyticsError::invalid("date_from", format!("{d}: {e}")))
}

/// Runs the stickiness analysis.
pub fn stickiness(source: &dyn PersonSource, q: &StickinessQuery) -> Result<StickinessResult> {
    if q.interval == Interval::Day {
        return Err(AnalyticsError::invalid(
            "interval",
            "stickiness needs week or month",
        ));
    }
    if q.event.as_deref() == Some("") {
        return Err(AnalyticsError::invalid("event", "empty event name"));
    }
    if q.to < q.from {
        return Err(AnalyticsError::invalid(
            "date_to",
            format!("{} is before date_from {}", q.to, q.from),
        ));
    }
    let cal = &q.calendar;
    let periods = Periods::new(cal, q.interval, q.from, q.to)?;
    let last_day = day_before(*periods.dates.last().expect("not empty"), 1)?;
    let first_day = day_before(q.from, MAU_DAYS as i64 - 1)?.min(periods.dates[0]);
    let days = Periods::new(cal, Interval::Day, first_day, last_day.max(q.to))?;
    // The period of each day of the table, if any.
    let mut period_of: Vec<Option<usize>> = Vec::with_capacity(days.len());
    let mut p = 0usize;
    for d in &days.dates[..days.len()] {
        while p < periods.len() && periods.dates[p + 1] <= *d {
            p += 1;
        }
        period_of.push((p < periods.len() && periods.dates[p] <= *d).then_some(p));
    }
    let period_days: Vec<usize> = (0..periods.len())
        .map(|p| period_of.iter().filter(|&&x| x == Some(p)).count())
        .collect();
    // By name id; all false when the named event never happened.
    let is_activity: Vec<bool> = source
        .names()
        .iter()
        .map(|n| q.event.as_ref().is_none_or(|e| e == n))
        .collect();
    let windows = [1usize, WAU_DAYS, MAU_DAYS];
    let new_partial = || Partial {
        counts: period_days.iter().map(|&n| vec![0u64; n]).collect(),
        diffs: std::array::from_fn(|_| vec![0i64; days.len() + 1]),
    };
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut part = new_partial();
        let mut active: Vec<usize> = Vec::new();
        let mut in_period: Vec<usize> = vec![0; periods.len()];
        src.for_each_person(shard, shards, &mut |_, ev| {
            let ev = ev.within(days.begin(), days.end());
            active.clear();
            let mut cursor = 0usize;
            for (&t, &name) in ev.ts.iter().zip(ev.names) {
                if !is_activity[name as usize] {
                    continue;
                }
                while days.starts[cursor + 1] <= t {
                    cursor += 1;
                }
                if active.last() != Some(&cursor) {
                    active.push(cursor);
                }
            }
            for &a in &active {
                if let Some(p) = period_of[a] {
                    in_period[p] += 1;
                }
            }
            for (p, n) in in_period.iter_mut().enumerate() {
                if *n > 0 {
                    part.counts[p][*n - 1] += 1;
                    *n = 0;
                }
            }
            // Each active day covers itself and the window's days after it; merged stretches
            // count the person once a day.
            for (w, diff) in windows.iter().zip(part.diffs.iter_mut()) {
                let mut stretch: Option<(usize, usize)> = None;
                for &a in &active {
                    let end = (a + w).min(days.len());
                    stretch = match stretch {
                        Some((s, e)) if a <= e => Some((s, end)),
                        Some((s, e)) => {
                            diff[s] += 1;
                            diff[e] -= 1;
                            Some((a, end))
                        }
                        None => Some((a, end)),
                    };
                }
                if let Some((s, e)) = stretch {
                    diff[s] += 1;
                    diff[e] -= 1;
                }
            }
        });
        part
    });
    let mut total = new_partial();
    for part in partials {
        for (a, b) in total.counts.iter_mut().zip(part.counts) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        for (a, b) in total.diffs.iter_mut().zip(part.diffs) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
    let running: Vec<Vec<u64>> = total
        .diffs
        .iter()
        .map(|diff| {
            let mut level = 0i64;
            diff.iter()
                .map(|d| {
                    level += d;
                    level as u64
                })
                .collect()
        })
        .collect();
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    let daily = (0..days.len())
        .filter(|&i| days.dates[i] >= q.from && days.dates[i] <= q.to)
        .map(|i| {
            let (dau, wau, mau) = (running[0][i], running[1][i], running[2][i]);
            ActiveDay {
                date: days.dates[i].to_string(),
                dau,
                wau,
                mau,
                dau_wau: ratio(dau, wau),
                dau_mau: ratio(dau, mau),
            }
        })
        .collect();
    Ok(StickinessResult {
        periods: total
            .counts
            .into_iter()
            .enumerate()
            .map(|(p, counts)| StickinessPeriod {
                date: periods.dates[p].to_string(),
                days: counts.len(),
                persons: counts.iter().sum(),
                counts,
            })
            .collect(),
        daily,
    })
}

/// Stickiness, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickinessSpec {
    /// The event that counts as activity; any event when absent.
    #[serde(default)]
    pub event: Option<String>,
    /// `week` (default) or `month`.
    #[serde(default)]
    pub interval: Option<String>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(StickinessSpec);

impl StickinessSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<StickinessQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let interval = interval(self.interval.as_deref(), Interval::Week)?;
        if interval == Interval::Day {
            return Err(AnalyticsError::invalid(
                "interval",
                "stickiness needs week or month",
            ));
        }
        if self.event.as_deref() == Some("") {
            return Err(AnalyticsError::invalid("event", "empty event name"));
        }
        Ok(StickinessQuery {
            event: self.event.clone(),
            interval,
            calendar: range.calendar()?,
            from,
            to,
            threads,
        })
    }
}
