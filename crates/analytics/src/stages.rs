//! The five lifecycle stages (生命周期阶段) and the return from dormancy (回流), per person at
//! any date, their distribution over time, and the flows between two dates.
//!
//! A person's stage at the end of a day, from their events before that instant:
//! - no event yet: not counted;
//! - **churned** (流失期): no activity for more than `churn_days`;
//! - **dormant** (休眠期): no activity for more than `dormant_days`;
//! - **resurrected** (回流): active again within the last `resurrected_days` after a gap of
//!   more than `dormant_days` without activity (from arrival or from an earlier activity);
//! - **onboarding** (导入期): arrived, the key conversion not yet made;
//! - **maturity** (成熟期): at least `mature_conversions` conversions;
//! - **growth** (成长期): converted, fewer than `mature_conversions` times.
//!
//! A person *arrives* with their first event of any kind; *activity* is any event unless
//! `activity_events` names some. Rules are per project; [`StageRules::preset`] gives the
//! documented defaults for e-commerce, SaaS and education.

use serde::{Deserialize, Serialize};

use jiff::civil::Date;

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::source::{Events, PersonSource, run_sharded};

const DAY_MS: i64 = 86_400_000;

/// A lifecycle stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// 导入期: arrived, not yet converted.
    Onboarding,
    /// 成长期: converted, usage rising.
    Growth,
    /// 成熟期: a stable habit of repeat conversions.
    Maturity,
    /// 休眠期: inactive beyond the first threshold.
    Dormant,
    /// 流失期: inactive beyond the second threshold.
    Churned,
    /// 回流: back after dormancy.
    Resurrected,
}

impl Stage {
    /// Every stage, in reporting order.
    pub const ALL: [Stage; 6] = [
        Stage::Onboarding,
        Stage::Growth,
        Stage::Maturity,
        Stage::Dormant,
        Stage::Churned,
        Stage::Resurrected,
    ];

    /// The Chinese name used in reports.
    pub fn zh(self) -> &'static str {
        match self {
            Stage::Onboarding => "导入期",
            Stage::Growth => "成长期",
            Stage::Maturity => "成熟期",
            Stage::Dormant => "休眠期",
            Stage::Churned => "流失期",
            Stage::Resurrected => "回流",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a project defines its stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRules {
    /// Events that count as activity; any event when empty.
    #[serde(default)]
    pub activity_events: Vec<String>,
    /// The key conversion (a purchase, a subscription, a lesson finished).
    pub conversion_event: String,
    /// Days without activity before a person is dormant.
    pub dormant_days: u32,
    /// Days without activity before a person is churned (more than `dormant_days`).
    pub churn_days: u32,
    /// Conversions that make a person mature.
    pub mature_conversions: u32,
    /// Days a returning person counts as resurrected.
    pub resurrected_days: u32,
}

/// The names [`StageRules::preset`] knows.
pub const PRESETS: [&str; 3] = ["ecommerce", "saas", "education"];

impl StageRules {
    /// Documented defaults: `ecommerce` (Order Completed; dormant after 30 days, churned after
    /// 90; mature at 3 orders), `saas` (Subscription Started; 14 / 60 days; mature at 2
    /// renewals' worth of subscription events), `education` (Lesson Completed; 7 / 30 days;
    /// mature at 10 lessons). Activity is any event in each.
    pub fn preset(name: &str) -> Result<StageRules> {
        let (conversion, dormant, churn, mature) = match name {
            "ecommerce" => ("Order Completed", 30, 90, 3),
            "saas" => ("Subscription Started", 14, 60, 2),
            "education" => ("Lesson Completed", 7, 30, 10),
            _ => {
                return Err(AnalyticsError::invalid(
                    "preset",
                    format!("{name:?} is not one of {}", PRESETS.join(", ")),
                ));
            }
        };
        Ok(StageRules {
            activity_events: Vec::new(),
            conversion_event: conversion.to_string(),
            dormant_days: dormant,
            churn_days: churn,
            mature_conversions: mature,
            resurrected_days: dormant,
        })
    }

    fn check(&self) -> Result<()> {
        if self.conversion_event.is_empty() {
            return Err(AnalyticsError::invalid(
                "conversion_event",
                "empty event name",
            ));
        }
        if self.dormant_days == 0 {
            return Err(AnalyticsError::invalid(
                "dormant_days",
                "must be at least 1",
            ));
        }
        if self.churn_days <= self.dormant_days {
            return Err(AnalyticsError::invalid(
                "churn_days",
                format!("must be more than dormant_days ({})", self.dormant_days),
            ));
        }
        if self.mature_conversions < 2 {
            return Err(AnalyticsError::invalid(
                "mature_conversions",
                "must be at least 2",
            ));
        }
        if self.resurrected_days == 0 {
            return Err(AnalyticsError::invalid(
                "resurrected_days",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The rules resolved against a source's event names.
pub(crate) struct Resolved {
    /// activity[name id], or None for "any event".
    activity: Option<Vec<bool>>,
    conversion: Option<u32>,
    dormant: i64,
    churn: i64,
    mature: u32,
    resurrected: i64,
}

impl Resolved {
    pub(crate) fn new(rules: &StageRules, names: &[String]) -> Resolved {
        let activity = (!rules.activity_events.is_empty()).then(|| {
            names
                .iter()
                .map(|n| rules.activity_events.contains(n))
                .collect()
        });
        Resolved {
            activity,
            conversion: names
                .iter()
                .position(|n| *n == rules.conversion_event)
                .map(|i| i as u32),
            dormant: rules.dormant_days as i64 * DAY_MS,
            churn: rules.churn_days as i64 * DAY_MS,
            mature: rules.mature_conversions,
            resurrected: rules.resurrected_days as i64 * DAY_MS,
        }
    }

    fn is_activity(&self, name: u32) -> bool {
        self.activity
            .as_ref()
            .is_none_or(|a| a.get(name as usize).copied().unwrap_or(false))
    }

    /// The person's stage at each instant of `at` (ascending), in one pass over `ev`.
    pub(crate) fn stages(
        &self,
        ev: Events<'_>,
        at: &[i64],
        mut out: impl FnMut(usize, Option<Stage>),
    ) {
        let mut i = 0usize;
        let mut arrived: Option<i64> = None;
        let mut last_active: Option<i64> = None;
        let mut last_return: Option<i64> = None;
        let mut conversions = 0u32;
        for (k, &t) in at.iter().enumerate() {
            while i < ev.len() && ev.ts[i] < t {
                let (ts, name) = (ev.ts[i], ev.names[i]);
                arrived.get_or_insert(ts);
                if self.is_activity(name) {
                    let since = last_active.or(arrived).expect("arrived above");
                    if ts - since > self.dormant {
                        last_return = Some(ts);
                    }
                    last_active = Some(ts);
                }
                if Some(name) == self.conversion {
                    conversions += 1;
                }
                i += 1;
            }
            let stage = arrived.map(|arrival| {
                let quiet = t - last_active.unwrap_or(arrival);
                if quiet > self.churn {
                    Stage::Churned
                } else if quiet > self.dormant {
                    Stage::Dormant
                } else if last_return.is_some_and(|r| t - r <= self.resurrected) {
                    Stage::Resurrected
                } else if conversions == 0 {
                    Stage::Onboarding
                } else if conversions >= self.mature {
                    Stage::Maturity
                } else {
                    Stage::Growth
                }
            });
            out(k, stage);
        }
    }
}

/// A stages question: the distribution at the end of each period, and the flows between the
/// first and last date.
#[derive(Debug, Clone)]
pub struct StagesQuery {
    /// The project's rules.
    pub rules: StageRules,
    /// Where distribution points fall: the end of each period.
    pub interval: Interval,
    /// Time zone and week start.
    pub calendar: Calendar,
    /// First date.
    pub from: Date,
    /// Last date.
    pub to: Date,
    /// List the persons in this stage at the end of `to` (for a segment or an export).
    pub members: Option<Stage>,
    /// At most this many of them, lowest ids first.
    pub members_limit: usize,
    /// Threads to use.
    pub threads: usize,
}

/// Persons per stage at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePoint {
    /// The last date included (the stage is taken at the end of it).
    pub date: String,
    /// Persons per stage, in [`Stage::ALL`] order.
    pub counts: Vec<u64>,
}

/// One flow between the two dates (Sankey-ready).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageFlow {
    /// Stage at the first date; `None`: not yet arrived.
    pub from: Option<Stage>,
    /// Stage at the last date.
    pub to: Stage,
    /// Persons.
    pub persons: u64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagesResult {
    /// Stage names, English and Chinese, in count order.
    pub stages: Vec<(Stage, String)>,
    /// Distribution at the end of each period.
    pub points: Vec<StagePoint>,
    /// Flows from the end of `from` to the end of `to`.
    pub flows: Vec<StageFlow>,
    /// The persons asked for by [`StagesQuery::members`], ascending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<u64>>,
}

/// One person's stage at instant `at` from their events (`names` is the source's event-name
/// dictionary); `None` before their first event.
pub fn stage_at(rules: &StageRules, names: &[String], ev: Events<'_>, at: i64) -> Option<Stage> {
    let mut got = None;
    Resolved::new(rules, names).stages(ev, &[at], |_, s| got = s);
    got
}

/// One step of a person's stage history: from the end of `day` (in the calendar's zone) on,
/// the person was in `to`; before it in `from` (`None`: not yet arrived).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageStep {
    /// The day at whose end the stage changed (the day of `now` for a change today).
    pub day: String,
    /// Stage before.
    pub from: Option<Stage>,
    /// Stage after.
    pub to: Stage,
}

/// One person's stage history: their stage at the end of every day from the day of their
/// first event through yesterday, and at `now`, kept where it changed (oldest first). The same
/// days as [`stage_changes`] gives, so a change recorded by the daily job is one of these.
pub fn stage_history(
    rules: &StageRules,
    names: &[String],
    ev: Events<'_>,
    calendar: &Calendar,
    now: i64,
) -> Result<Vec<StageStep>> {
    rules.check()?;
    let Some(&first) = ev.ts.first() else {
        return Ok(Vec::new());
    };
    let one = jiff::Span::new().days(1);
    let last_day = calendar.date_of(now)?;
    let mut days = Vec::new();
    let mut at = Vec::new();
    let mut d = calendar.date_of(first)?;
    while d < last_day {
        let next = d
            .checked_add(one)
            .map_err(|e| AnalyticsError::invalid("date", e.to_string()))?;
        days.push(d);
        at.push(calendar.start_of(next)?);
        d = next;
    }
    days.push(last_day);
    at.push(now);
    let mut got = vec![None; at.len()];
    Resolved::new(rules, names).stages(ev, &at, |k, s| got[k] = s);
    let mut out = Vec::new();
    let mut before = None;
    for (day, stage) in days.iter().zip(got) {
        if let Some(to) = stage
            && stage != before
        {
            out.push(StageStep {
                day: day.to_string(),
                from: before,
                to,
            });
        }
        before = stage;
    }
    Ok(out)
}

/// A person's change of stage from the end of one day to the end of the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageChange {
    /// Canonical person id.
    pub person: u64,
    /// Stage at the end of the day before; `None`: not yet arrived.
    pub from: Option<Stage>,
    /// Stage at the end of the day.
    pub to: Stage,
}

/// The persons whose stage at the end of `date` (in `calendar`'s zone) differs from their
/// stage at the end of the day before, sorted by person: the day's stage changes, as the
/// project's automation receives them.
pub fn stage_changes(
    source: &dyn PersonSource,
    rules: &StageRules,
    calendar: &Calendar,
    date: Date,
    threads: usize,
) -> Result<Vec<StageChange>> {
    rules.check()?;
    let next = date
        .checked_add(jiff::Span::new().days(1))
        .map_err(|e| AnalyticsError::invalid("date", e.to_string()))?;
    let at = [calendar.start_of(date)?, calendar.start_of(next)?];
    let resolved = Resolved::new(rules, source.names());
    let parts = run_sharded(source, threads, |src, shard, shards| {
        let mut out = Vec::new();
        src.for_each_person(shard, shards, &mut |person, ev| {
            let mut got = [None; 2];
            resolved.stages(ev, &at, |k, s| got[k] = s);
            if let [from, Some(to)] = got
                && from != Some(to)
            {
                out.push(StageChange {
                    person: person.0,
                    from,
                    to,
                });
            }
        });
        out
    });
    let mut all: Vec<StageChange> = parts.into_iter().flatten().collect();
    all.sort_unstable_by_key(|c| c.person);
    Ok(all)
}

/// Runs the stages analysis.
pub fn stages(source: &dyn PersonSource, q: &StagesQuery) -> Result<StagesResult> {
    q.rules.check()?;
    if q.to < q.from {
        return Err(AnalyticsError::invalid(
            "date_to",
            "must not be before date_from",
        ));
    }
    let cal = &q.calendar;
    let periods = Periods::new(cal, q.interval, q.from, q.to)?;
    // Instants: the end of the first date, the end of each period (the last one cut at the
    // end of `to`), and the end of `to` for the flows.
    let day_end = |d: Date| -> Result<(String, i64)> {
        let next = d
            .checked_add(jiff::Span::new().days(1))
            .map_err(|e| AnalyticsError::invalid("date_to", e.to_string()))?;
        Ok((d.to_string(), cal.start_of(next)?))
    };
    let mut points = Vec::new();
    for i in 0..periods.len() {
        let last_day = periods.dates[i + 1]
            .checked_sub(jiff::Span::new().days(1))
            .map_err(|e| AnalyticsError::invalid("date_to", e.to_string()))?;
        points.push(day_end(last_day.min(q.to))?);
    }
    let (_, first_end) = day_end(q.from)?;
    let (_, last_end) = day_end(q.to)?;
    let mut at: Vec<i64> = points.iter().map(|p| p.1).collect();
    at.push(first_end);
    at.push(last_end);
    let mut order: Vec<usize> = (0..at.len()).collect();
    order.sort_by_key(|&i| at[i]);
    let sorted: Vec<i64> = order.iter().map(|&i| at[i]).collect();
    let resolved = Resolved::new(&q.rules, source.names());
    let n_points = points.len();
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut counts = vec![[0u64; 6]; n_points];
        let mut flows = [[0u64; 6]; 7];
        let mut members: Vec<u64> = Vec::new();
        let mut got: Vec<Option<Stage>> = vec![None; sorted.len()];
        src.for_each_person(shard, shards, &mut |person, ev| {
            resolved.stages(ev, &sorted, |k, s| got[order[k]] = s);
            for (i, s) in got[..n_points].iter().enumerate() {
                if let Some(s) = s {
                    counts[i][s.index()] += 1;
                }
            }
            if let Some(to) = got[n_points + 1] {
                let from = got[n_points].map_or(6, Stage::index);
                flows[from][to.index()] += 1;
                if q.members == Some(to) {
                    members.push(person.0);
                }
            }
        });
        (counts, flows, members)
    });
    let mut counts = vec![[0u64; 6]; n_points];
    let mut flows = [[0u64; 6]; 7];
    let mut members: Vec<u64> = Vec::new();
    for (c, f, m) in partials {
        members.extend(m);
        for (a, b) in counts.iter_mut().zip(c) {
            for s in 0..6 {
                a[s] += b[s];
            }
        }
        for (a, b) in flows.iter_mut().zip(f) {
            for s in 0..6 {
                a[s] += b[s];
            }
        }
    }
    let mut flow_list = Vec::new();
    for (from, row) in flows.iter().enumerate() {
        for (to, &persons) in row.iter().enumerate() {
            if persons > 0 {
                flow_list.push(StageFlow {
                    from: Stage::ALL.get(from).copied(),
                    to: Stage::ALL[to],
                    persons,
                });
            }
        }
    }
    members.sort_unstable();
    members.truncate(q.members_limit);
    Ok(StagesResult {
        stages: Stage::ALL
            .iter()
            .map(|s| (*s, s.zh().to_string()))
            .collect(),
        points: points
            .into_iter()
            .zip(counts)
            .map(|((date, _), c)| StagePoint {
                date,
                counts: c.to_vec(),
            })
            .collect(),
        flows: flow_list,
        members: q.members.map(|_| members),
    })
}
