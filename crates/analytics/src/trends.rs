//! Trends: per hour, day, week or month, how often an event happened, by how many persons,
//! and what its values added up to — one or more series side by side.
//!
//! Definitions:
//! - The range is the calendar dates `from..=to` in the query's zone: an event counts when
//!   its time is in `[start of from, start of the day after to)`. Periods are the hours,
//!   days, weeks (from the calendar's week start, Monday) or months of that zone; a week or
//!   month cut by the range is labelled by its own first date (which may be before `from`,
//!   as PostHog labels it) but holds only the events inside the range. Hours are the zone's clock hours; when the
//!   clocks go back the repeated hour is two periods, told apart by the offset in the label
//!   (`2026-11-01T01:00:00-04:00`, `2026-11-01T01:00:00-05:00`).
//! - A **series** is an event name (or any event, `event: None`) and a math:
//!   - `total`: the number of events;
//!   - `unique` (alias `dau`): distinct persons with at least one such event;
//!   - `per_person_avg`: events over distinct persons (`null` with no persons);
//!   - `sum`, `avg`, `min`, `max` of the event's value: events whose value is not a finite
//!     number (NaN: the event has none) are skipped; `sum` of nothing is 0, `avg`, `min`,
//!     `max` of nothing are `null` (not 0: an empty period has no average).
//! - **Totals** are the same math over the whole range: for `unique`, distinct persons over
//!   the range (not the sum of the periods); `per_person_avg` is all events over those
//!   persons; `avg`, `min`, `max` over all valued events.
//! - **Breakdown by event name** (`breakdown_limit: Some(n)`): each "any event" series is
//!   split by event name: the `n` names with the most events in the range (ties by name)
//!   each get their own series, the other names together one series `$other` (only when
//!   there are such events). Series naming an event are not split. Each part is computed
//!   over its own events, so `unique` of `$other` counts persons once across its names.
//!
//! Unique counts need no set of persons: a kernel sees every event of a person at once, so a
//! person is counted in a period the first time one of their events falls in it.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, MAX_PERIODS, Periods};
use crate::source::{PersonSource, run_sharded};
use crate::spec::{RangeSpec, with_range};

/// Most series one trends query may have.
pub const MAX_SERIES: usize = 20;
/// Most event names a breakdown may show on their own.
pub const MAX_BREAKDOWN: usize = 100;
/// The breakdown value of the names outside the top `n`.
pub const OTHER: &str = "$other";

/// The length of a trends period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrendInterval {
    /// A clock hour of the zone.
    Hour,
    /// A calendar day.
    Day,
    /// A week starting on Monday.
    Week,
    /// A calendar month.
    Month,
}

impl TrendInterval {
    /// Parses `hour`, `day`, `week` or `month`; errors name `field`.
    pub fn parse(field: &str, s: &str) -> Result<TrendInterval> {
        match s {
            "hour" => Ok(TrendInterval::Hour),
            "day" => Ok(TrendInterval::Day),
            "week" => Ok(TrendInterval::Week),
            "month" => Ok(TrendInterval::Month),
            _ => Err(AnalyticsError::invalid(
                field,
                format!("{s:?} is not one of hour, day, week, month"),
            )),
        }
    }
}

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Math {
    /// Number of events.
    Total,
    /// Distinct persons (PostHog's `dau`).
    Unique,
    /// Events per distinct person.
    PerPersonAvg,
    /// Sum of the event values.
    Sum,
    /// Mean of the event values.
    Avg,
    /// Least event value.
    Min,
    /// Greatest event value.
    Max,
}

impl Math {
    /// Parses a math name (`dau` is `unique`); errors name `field`.
    pub fn parse(field: &str, s: &str) -> Result<Math> {
        Ok(match s {
            "total" => Math::Total,
            "unique" | "dau" => Math::Unique,
            "per_person_avg" => Math::PerPersonAvg,
            "sum" => Math::Sum,
            "avg" => Math::Avg,
            "min" => Math::Min,
            "max" => Math::Max,
            _ => {
                return Err(AnalyticsError::invalid(
                    field,
                    format!(
                        "{s:?} is not one of total, unique, dau, per_person_avg, sum, avg, min, max"
                    ),
                ));
            }
        })
    }
}

/// One series: an event (or any) and a math.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// The event; `None`: any event.
    pub event: Option<String>,
    /// What to measure.
    pub math: Math,
}

/// A trends question.
#[derive(Debug, Clone)]
pub struct TrendsQuery {
    /// The series, in order.
    pub series: Vec<Series>,
    /// Period length.
    pub interval: TrendInterval,
    /// Time zone and week start.
    pub calendar: Calendar,
    /// First date.
    pub from: Date,
    /// Last date, included.
    pub to: Date,
    /// Split "any event" series by event name: the top `n` names and `$other`.
    pub breakdown_limit: Option<usize>,
    /// Threads to use.
    pub threads: usize,
}

impl TrendsQuery {
    fn check(&self) -> Result<()> {
        if self.series.is_empty() || self.series.len() > MAX_SERIES {
            return Err(AnalyticsError::invalid(
                "series",
                format!("give 1 to {MAX_SERIES} series, not {}", self.series.len()),
            ));
        }
        for (i, s) in self.series.iter().enumerate() {
            if s.event.as_deref() == Some("") {
                return Err(AnalyticsError::invalid(
                    format!("series[{i}].event"),
                    "empty event name (leave it out for any event)",
                ));
            }
        }
        if let Some(n) = self.breakdown_limit
            && (n == 0 || n > MAX_BREAKDOWN)
        {
            return Err(AnalyticsError::invalid(
                "breakdown_limit",
                format!("must be 1 to {MAX_BREAKDOWN}, not {n}"),
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

/// One series' answer (one part of it, when broken down).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesResult {
    /// Index of the query's series.
    pub series: usize,
    /// Its event (`None`: any event).
    pub event: Option<String>,
    /// Its math.
    pub math: Math,
    /// The event name of this part of a breakdown (`$other` for the rest).
    pub breakdown_value: Option<String>,
    /// Period labels: first date (`2026-03-01`) or, for hours, local time with offset.
    pub labels: Vec<String>,
    /// Per period; `null` where the math is undefined (an average of nothing).
    pub values: Vec<Option<f64>>,
    /// The math over the whole range.
    pub total: Option<f64>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendsResult {
    /// Period labels, shared by every series.
    pub labels: Vec<String>,
    /// Per series (and breakdown part), in query order.
    pub series: Vec<SeriesResult>,
}

/// The periods of a trends query as UTC instants, and the counted range.
#[derive(Debug, Clone)]
pub(crate) struct Grid {
    /// Period `i` is `[starts[i], starts[i + 1])`.
    pub(crate) starts: Vec<i64>,
    /// Label of each period.
    pub(crate) labels: Vec<String>,
    /// Start of the first date.
    pub(crate) begin: i64,
    /// Start of the day after the last date.
    pub(crate) end: i64,
}

impl Grid {
    pub(crate) fn new(
        cal: &Calendar,
        interval: TrendInterval,
        from: Date,
        to: Date,
    ) -> Result<Grid> {
        let after = to
            .checked_add(jiff::Span::new().days(1))
            .map_err(|e| AnalyticsError::invalid("date_to", format!("{to}: {e}")))?;
        let begin = cal.start_of(from)?;
        let end = cal.start_of(after)?;
        let periodic = |iv: Interval| -> Result<Grid> {
            let p = Periods::new(cal, iv, from, to)?;
            Ok(Grid {
                labels: p.dates[..p.len()].iter().map(Date::to_string).collect(),
                starts: p.starts,
                begin,
                end,
            })
        };
        match interval {
            TrendInterval::Day => periodic(Interval::Day),
            TrendInterval::Week => periodic(Interval::Week),
            TrendInterval::Month => periodic(Interval::Month),
            TrendInterval::Hour => {
                let mut starts = vec![begin];
                let mut labels = vec![hour_label(cal, begin)?];
                loop {
                    let last = *starts.last().expect("not empty");
                    let next = next_hour(cal, last)?;
                    if next >= end {
                        starts.push(end);
                        break;
                    }
                    if starts.len() >= MAX_PERIODS {
                        return Err(AnalyticsError::invalid(
                            "date_to",
                            format!("the range spans more than {MAX_PERIODS} hours"),
                        ));
                    }
                    starts.push(next);
                    labels.push(hour_label(cal, next)?);
                }
                Ok(Grid {
                    starts,
                    labels,
                    begin,
                    end,
                })
            }
        }
    }

    /// Number of periods.
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }
}

fn zoned(cal: &Calendar, ms: i64) -> Result<jiff::Zoned> {
    let ts = jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| AnalyticsError::invalid("date_to", format!("{ms}: {e}")))?;
    Ok(ts.to_zoned(cal.tz.clone()))
}

fn hour_label(cal: &Calendar, ms: i64) -> Result<String> {
    Ok(zoned(cal, ms)?.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
}

/// The start of the clock hour after the one starting at `ms`.
fn next_hour(cal: &Calendar, ms: i64) -> Result<i64> {
    let later = ms + 3_600_000;
    let z = zoned(cal, later)?;
    let top = z
        .with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .map_err(|e| AnalyticsError::invalid("timezone", e.to_string()))?
        .timestamp()
        .as_millisecond();
    // Zones whose offset changes by a fraction of an hour: never go backwards.
    Ok(if top > ms { top } else { later })
}

/// A series' figures over one period (or the range).
#[derive(Debug, Clone, Copy)]
struct Cell {
    events: u64,
    persons: u64,
    valued: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for Cell {
    fn default() -> Cell {
        Cell {
            events: 0,
            persons: 0,
            valued: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Cell {
    fn add_value(&mut self, v: f64) {
        if v.is_finite() {
            self.valued += 1;
            self.sum += v;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    fn merge(&mut self, o: &Cell) {
        self.events += o.events;
        self.persons += o.persons;
        self.valued += o.valued;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    fn value(&self, math: Math) -> Option<f64> {
        let valued = self.valued > 0;
        match math {
            Math::Total => Some(self.events as f64),
            Math::Unique => Some(self.persons as f64),
            Math::PerPersonAvg => {
                (self.persons > 0).then(|| self.events as f64 / self.persons as f64)
            }
            Math::Sum => Some(self.sum),
            Math::Avg => valued.then(|| self.sum / self.valued as f64),
            Math::Min => valued.then_some(self.min),
            Math::Max => valued.then_some(self.max),
        }
    }
}

/// How a series picks and groups events, by name id.
struct Plan {
    /// Per name id: the group the name's events go to, or `u32::MAX` when not counted.
    group_of: Vec<u32>,
    /// Group labels (breakdown values); one `None` when not broken down.
    groups: Vec<Option<String>>,
}

const SKIP: u32 = u32::MAX;

/// Runs a trends query over `source`.
pub fn trends(source: &dyn PersonSource, q: &TrendsQuery) -> Result<TrendsResult> {
    q.check()?;
    let grid = Grid::new(&q.calendar, q.interval, q.from, q.to)?;
    let names = source.names();
    let breakdown = match q.breakdown_limit {
        Some(n) if q.series.iter().any(|s| s.event.is_none()) => {
            Some(top_names(source, &grid, q.threads, n))
        }
        _ => None,
    };
    let plans: Vec<Plan> = q
        .series
        .iter()
        .map(|s| match (&s.event, &breakdown) {
            (Some(event), _) => Plan {
                group_of: names
                    .iter()
                    .map(|n| if n == event { 0 } else { SKIP })
                    .collect(),
                groups: vec![None],
            },
            (None, None) => Plan {
                group_of: vec![0; names.len()],
                groups: vec![None],
            },
            (None, Some((group_of, groups))) => Plan {
                group_of: group_of.clone(),
                groups: groups.iter().cloned().map(Some).collect(),
            },
        })
        .collect();
    let periods = grid.len();
    // Per series: cells [group][period], then per group the range totals.
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut cells: Vec<Vec<Cell>> = plans
            .iter()
            .map(|p| vec![Cell::default(); p.groups.len() * (periods + 1)])
            .collect();
        // The last person (serial) counted in each cell, for unique counts.
        let mut stamps: Vec<Vec<u64>> = cells.iter().map(|c| vec![0; c.len()]).collect();
        let mut serial = 0u64;
        src.for_each_person_with_values(shard, shards, &mut |_, ev| {
            let ev = ev.within(grid.begin, grid.end);
            if ev.is_empty() {
                return;
            }
            serial += 1;
            let mut cursor = 0usize;
            for i in 0..ev.len() {
                let ts = ev.ts[i];
                while grid.starts[cursor + 1] <= ts {
                    cursor += 1;
                }
                let name = ev.names[i] as usize;
                for (s, plan) in plans.iter().enumerate() {
                    let g = plan.group_of.get(name).copied().unwrap_or(SKIP);
                    if g == SKIP {
                        continue;
                    }
                    let row = g as usize * (periods + 1);
                    for at in [row + cursor, row + periods] {
                        let cell = &mut cells[s][at];
                        cell.events += 1;
                        cell.add_value(ev.values[i]);
                        if stamps[s][at] != serial {
                            stamps[s][at] = serial;
                            cell.persons += 1;
                        }
                    }
                }
            }
        });
        cells
    });
    let mut cells: Vec<Vec<Cell>> = plans
        .iter()
        .map(|p| vec![Cell::default(); p.groups.len() * (periods + 1)])
        .collect();
    for part in partials {
        for (a, b) in cells.iter_mut().zip(part) {
            for (x, y) in a.iter_mut().zip(&b) {
                x.merge(y);
            }
        }
    }
    let mut series = Vec::new();
    for (s, (spec, plan)) in q.series.iter().zip(&plans).enumerate() {
        for (g, group) in plan.groups.iter().enumerate() {
            let row = &cells[s][g * (periods + 1)..(g + 1) * (periods + 1)];
            series.push(SeriesResult {
                series: s,
                event: spec.event.clone(),
                math: spec.math,
                breakdown_value: group.clone(),
                labels: grid.labels.clone(),
                values: row[..periods].iter().map(|c| c.value(spec.math)).collect(),
                total: row[periods].value(spec.math),
            });
        }
    }
    Ok(TrendsResult {
        labels: grid.labels,
        series,
    })
}

/// The breakdown groups: per name id its group (the top `n` names by events in the range,
/// ties by name, then `$other`), and the groups' labels.
fn top_names(
    source: &dyn PersonSource,
    grid: &Grid,
    threads: usize,
    n: usize,
) -> (Vec<u32>, Vec<String>) {
    let names = source.names();
    let partials = run_sharded(source, threads, |src, shard, shards| {
        let mut counts = vec![0u64; names.len()];
        src.for_each_person_with_values(shard, shards, &mut |_, ev| {
            for &name in ev.within(grid.begin, grid.end).names {
                counts[name as usize] += 1;
            }
        });
        counts
    });
    let mut counts = vec![0u64; names.len()];
    for part in partials {
        for (a, b) in counts.iter_mut().zip(part) {
            *a += b;
        }
    }
    let mut ranked: Vec<usize> = (0..names.len()).filter(|&i| counts[i] > 0).collect();
    ranked.sort_by(|&a, &b| {
        counts[b]
            .cmp(&counts[a])
            .then_with(|| names[a].cmp(&names[b]))
    });
    let mut group_of = vec![SKIP; names.len()];
    let mut groups: Vec<String> = Vec::new();
    for (rank, &id) in ranked.iter().enumerate() {
        if rank < n {
            group_of[id] = rank as u32;
            groups.push(names[id].clone());
        } else {
            group_of[id] = n as u32;
        }
    }
    if ranked.len() > n {
        groups.push(OTHER.to_string());
    }
    (group_of, groups)
}

/// One series, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// The event; any event when absent.
    #[serde(default)]
    pub event: Option<String>,
    /// `total` (default), `unique` (`dau`), `per_person_avg`, `sum`, `avg`, `min`, `max`.
    #[serde(default)]
    pub math: Option<String>,
}

impl SeriesSpec {
    /// The checked series; errors name `{field}.event` and `{field}.math`.
    pub(crate) fn series(&self, field: &str) -> Result<Series> {
        if self.event.as_deref() == Some("") {
            return Err(AnalyticsError::invalid(
                format!("{field}.event"),
                "empty event name (leave it out for any event)",
            ));
        }
        Ok(Series {
            event: self.event.clone(),
            math: Math::parse(
                &format!("{field}.math"),
                self.math.as_deref().unwrap_or("total"),
            )?,
        })
    }
}

/// A trends query, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendsSpec {
    /// The series.
    pub series: Vec<SeriesSpec>,
    /// `hour`, `day` (default), `week` or `month`.
    #[serde(default)]
    pub interval: Option<String>,
    /// `event`: split "any event" series by event name.
    #[serde(default)]
    pub breakdown: Option<String>,
    /// Names shown on their own in a breakdown; default 25 (PostHog's).
    #[serde(default)]
    pub breakdown_limit: Option<usize>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(TrendsSpec);

/// Reads the optional `interval` field of a spec.
pub(crate) fn trend_interval(s: Option<&str>, default: TrendInterval) -> Result<TrendInterval> {
    s.map_or(Ok(default), |s| TrendInterval::parse("interval", s))
}

impl TrendsSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<TrendsQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let series = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| s.series(&format!("series[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let breakdown_limit = match self.breakdown.as_deref() {
            None => {
                if self.breakdown_limit.is_some() {
                    return Err(AnalyticsError::invalid(
                        "breakdown_limit",
                        "needs breakdown \"event\"",
                    ));
                }
                None
            }
            Some("event") => Some(self.breakdown_limit.unwrap_or(25)),
            Some(other) => {
                return Err(AnalyticsError::invalid(
                    "breakdown",
                    format!("{other:?} is not a breakdown; the one there is: event"),
                ));
            }
        };
        let q = TrendsQuery {
            series,
            interval: trend_interval(self.interval.as_deref(), TrendInterval::Day)?,
            calendar: range.calendar()?,
            from,
            to,
            breakdown_limit,
            threads,
        };
        q.check()?;
        Ok(q)
    }
}
