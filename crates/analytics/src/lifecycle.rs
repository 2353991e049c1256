//! Interval lifecycle: per day, week or month, how many persons were new, returning,
//! resurrecting, or went dormant — PostHog's definition, exactly:
//!
//! - a person's *active periods* are the periods in which they did the event (any event if
//!   none is named), read from one period before the range to one after it;
//! - each active period is compared with the person's previous active period, or for the
//!   first one with the period the person was *created* in (their first event of any kind):
//!   **new** when that is the same period (only possible for the first), **returning** when it
//!   is the period just before and this is not the first active period, **resurrecting**
//!   otherwise;
//! - the period after an active period is **dormant** when the person is not active in it
//!   (reported as a negative count).
//!
//! A person created before the range whose first activity in it falls in the range counts
//! as resurrecting, as in PostHog.

use serde::{Deserialize, Serialize};

use jiff::civil::Date;

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::source::{PersonSource, run_sharded};

/// A lifecycle question.
#[derive(Debug, Clone)]
pub struct LifecycleQuery {
    /// The event that counts as activity; `None`: any event.
    pub event: Option<String>,
    /// Period length.
    pub interval: Interval,
    /// Time zone and week start.
    pub calendar: Calendar,
    /// First date shown.
    pub from: Date,
    /// Last date shown (its period is included).
    pub to: Date,
    /// Threads to use.
    pub threads: usize,
}

/// One period's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecyclePeriod {
    /// First date of the period.
    pub date: String,
    /// Persons new in it.
    pub new: u64,
    /// Persons active in it and in the one before.
    pub returning: u64,
    /// Persons active in it after a gap (or created earlier and active for the first time).
    pub resurrecting: u64,
    /// Persons active in the previous period but not in this one (as a negative number).
    pub dormant: i64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleResult {
    /// Per period, in order.
    pub periods: Vec<LifecyclePeriod>,
}

const BEFORE: i64 = i64::MIN / 4;

/// One person's statuses: calls `count(status, period)`
/// with padded period indices, where status 0 new, 1 returning, 2 resurrecting, 3 dormant.
pub(crate) fn person_statuses(active: &[i64], created: i64, mut count: impl FnMut(usize, i64)) {
    for (i, &p) in active.iter().enumerate() {
        let previous = if i == 0 { created } else { active[i - 1] };
        let status = if previous == p {
            0
        } else if i != 0 && previous == p - 1 {
            1
        } else {
            2
        };
        count(status, p);
        let next = active.get(i + 1).copied();
        if next != Some(p + 1) {
            count(3, p + 1);
        }
    }
}

/// Runs the lifecycle analysis.
pub fn lifecycle(source: &dyn PersonSource, q: &LifecycleQuery) -> Result<LifecycleResult> {
    if q.to < q.from {
        return Err(AnalyticsError::invalid(
            "date_to",
            "must not be before date_from",
        ));
    }
    let cal = &q.calendar;
    let first = cal.truncate(q.interval, q.from);
    let before = back_one(cal, q.interval, first)?;
    let last = cal.truncate(q.interval, q.to);
    let after = cal.next(q.interval, last)?;
    // Padded: one period before and one after the range.
    let periods = Periods::new(cal, q.interval, before, after)?;
    let shown = periods.len() - 2;
    let event = match &q.event {
        Some(name) => match source.name_id(name) {
            Some(id) => Some(id),
            // Nobody did it: all zeros.
            None => {
                return Ok(LifecycleResult {
                    periods: (1..=shown).map(|i| empty_period(&periods, i)).collect(),
                });
            }
        },
        None => None,
    };
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut counts = vec![[0u64; 4]; periods.len() + 1];
        let mut active: Vec<i64> = Vec::new();
        src.for_each_person(shard, shards, &mut |_, ev| {
            let created_ms = ev.ts[0];
            let created = if created_ms < periods.begin() {
                BEFORE
            } else {
                match periods.index(created_ms) {
                    Some(i) => i as i64,
                    None => return, // created after the range
                }
            };
            active.clear();
            let a = ev.ts.partition_point(|&t| t < periods.begin());
            let b = ev.ts.partition_point(|&t| t < periods.end());
            let mut cursor = 0usize;
            for i in a..b {
                if event.is_some_and(|e| e != ev.names[i]) {
                    continue;
                }
                // Times are sorted: walk the boundaries forward.
                while periods.starts[cursor + 1] <= ev.ts[i] {
                    cursor += 1;
                }
                if active.last() != Some(&(cursor as i64)) {
                    active.push(cursor as i64);
                }
            }
            person_statuses(&active, created, |status, p| {
                counts[p as usize][status] += 1;
            });
        });
        counts
    });
    let mut counts = vec![[0u64; 4]; periods.len() + 1];
    for part in partials {
        for (a, b) in counts.iter_mut().zip(part) {
            for s in 0..4 {
                a[s] += b[s];
            }
        }
    }
    Ok(LifecycleResult {
        periods: (1..=shown)
            .map(|i| LifecyclePeriod {
                new: counts[i][0],
                returning: counts[i][1],
                resurrecting: counts[i][2],
                dormant: -(counts[i][3] as i64),
                ..empty_period(&periods, i)
            })
            .collect(),
    })
}

fn empty_period(periods: &Periods, i: usize) -> LifecyclePeriod {
    LifecyclePeriod {
        date: periods.dates[i].to_string(),
        new: 0,
        returning: 0,
        resurrecting: 0,
        dormant: 0,
    }
}

/// The first date of the period before the one starting on `start`.
fn back_one(cal: &Calendar, interval: Interval, start: Date) -> Result<Date> {
    let day_before = start
        .checked_sub(jiff::Span::new().days(1))
        .map_err(|e| AnalyticsError::invalid("date_from", format!("{start}: {e}")))?;
    Ok(cal.truncate(interval, day_before))
}
