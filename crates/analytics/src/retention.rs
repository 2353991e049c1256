//! Cohort retention: of the persons who did a start event in a period, how many did a return
//! event 1, 2, … N periods later.
//!
//! - **First time**: a person's cohort is the period of their first start event ever (before
//!   the range too); they are counted if that period is in the range.
//! - **Recurring**: every period in the range in which a person did the start event is a
//!   cohort entry for them.
//! - Column 0 is the cohort's size; column `k` counts the cohort's persons who did the return
//!   event in period `p + k` ("on"), or in `p + k` or any later period of the analysis
//!   ("on or after", `cumulative`). The analysis reaches N periods past the last cohort.

use serde::{Deserialize, Serialize};

use jiff::civil::Date;

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::source::{PersonSource, run_sharded};

/// Which start events make cohorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionKind {
    /// The first start event ever.
    FirstTime,
    /// Every period with a start event.
    Recurring,
}

/// Most periods after a cohort.
pub const MAX_RETURN_PERIODS: usize = 400;

/// A retention question.
#[derive(Debug, Clone)]
pub struct RetentionQuery {
    /// The event that puts a person in a cohort.
    pub start_event: String,
    /// The event that counts as a return.
    pub return_event: String,
    /// Cohort rule.
    pub kind: RetentionKind,
    /// Period length.
    pub interval: Interval,
    /// Periods followed after each cohort's (N).
    pub periods: usize,
    /// "On or after" instead of "on".
    pub cumulative: bool,
    /// Time zone and week start.
    pub calendar: Calendar,
    /// First cohort date.
    pub from: Date,
    /// Last cohort date (its period is included).
    pub to: Date,
    /// Threads to use.
    pub threads: usize,
}

/// One cohort's row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohort {
    /// First date of the cohort's period.
    pub date: String,
    /// `values[0]` is the cohort's size, `values[k]` the persons retained `k` periods later.
    pub values: Vec<u64>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionResult {
    /// Per cohort period, in order.
    pub cohorts: Vec<Cohort>,
}

/// The matrix cells one person adds to: for each cohort
/// period `c` of the person, calls `add(c, k)` for k = 0 and for each k in 1..=n retained.
pub(crate) fn person_rows(
    cohorts: &[usize],
    returns: &[usize],
    n: usize,
    cumulative: bool,
    mut add: impl FnMut(usize, usize),
) {
    for &c in cohorts {
        add(c, 0);
        if cumulative {
            // Retained at k when a return falls in c + k or later: k up to the last return.
            if let Some(&last) = returns.last()
                && last > c
            {
                for k in 1..=n.min(last - c) {
                    add(c, k);
                }
            }
        } else {
            let from = returns.partition_point(|&r| r <= c);
            for &r in &returns[from..] {
                if r - c > n {
                    break;
                }
                add(c, r - c);
            }
        }
    }
}

/// Runs the retention analysis.
pub fn retention(source: &dyn PersonSource, q: &RetentionQuery) -> Result<RetentionResult> {
    if q.to < q.from {
        return Err(AnalyticsError::invalid(
            "date_to",
            "must not be before date_from",
        ));
    }
    if q.periods == 0 || q.periods > MAX_RETURN_PERIODS {
        return Err(AnalyticsError::invalid(
            "periods",
            format!("must be 1 to {MAX_RETURN_PERIODS}, not {}", q.periods),
        ));
    }
    let cal: &Calendar = &q.calendar;
    let cohort_periods = Periods::new(cal, q.interval, q.from, q.to)?;
    let shown = cohort_periods.len();
    let mut horizon = *cohort_periods.dates.last().expect("not empty");
    for _ in 1..q.periods {
        horizon = cal.next(q.interval, horizon)?;
    }
    let periods = Periods::new(cal, q.interval, q.from, horizon)?;
    let n = q.periods;
    let start = source.name_id(&q.start_event);
    let ret = source.name_id(&q.return_event);
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut m = vec![vec![0u64; n + 1]; shown];
        let Some(start) = start else { return m };
        let mut cohorts: Vec<usize> = Vec::new();
        let mut returns: Vec<usize> = Vec::new();
        src.for_each_person(shard, shards, &mut |_, ev| {
            cohorts.clear();
            returns.clear();
            if q.kind == RetentionKind::FirstTime {
                let Some(first) = ev.names.iter().position(|&e| e == start) else {
                    return;
                };
                match periods.index(ev.ts[first]) {
                    Some(p) if p < shown => cohorts.push(p),
                    _ => return,
                }
            }
            let a = ev.ts.partition_point(|&t| t < periods.begin());
            let b = ev.ts.partition_point(|&t| t < periods.end());
            let mut cursor = 0usize;
            for i in a..b {
                let name = ev.names[i];
                let is_start = q.kind == RetentionKind::Recurring && name == start;
                let is_return = Some(name) == ret;
                if !is_start && !is_return {
                    continue;
                }
                while periods.starts[cursor + 1] <= ev.ts[i] {
                    cursor += 1;
                }
                if is_start && cursor < shown && cohorts.last() != Some(&cursor) {
                    cohorts.push(cursor);
                }
                if is_return && returns.last() != Some(&cursor) {
                    returns.push(cursor);
                }
            }
            person_rows(&cohorts, &returns, n, q.cumulative, |c, k| m[c][k] += 1);
        });
        m
    });
    let mut m = vec![vec![0u64; n + 1]; shown];
    for part in partials {
        for (row, prow) in m.iter_mut().zip(part) {
            for (a, b) in row.iter_mut().zip(prow) {
                *a += b;
            }
        }
    }
    Ok(RetentionResult {
        cohorts: m
            .into_iter()
            .enumerate()
            .map(|(i, values)| Cohort {
                date: cohort_periods.dates[i].to_string(),
                values,
            })
            .collect(),
    })
}
