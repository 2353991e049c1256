//! Net Promoter Score from survey answers, per day, week or month and over the range, for
//! everyone and for segments given as sets of persons.
//!
//! Definitions:
//! - An **answer** is an event named `event` (default `NPS Survey Answered`) inside the range
//!   (calendar dates `from..=to` in the query's zone); its score is the event's value.
//! - A **valid** score is an integer 0 to 10. Any other value — none (NaN), a fraction, out of
//!   range — makes the answer **invalid**: it is counted in `invalid` (answers, not persons)
//!   and takes no part in the score, so nothing is dropped silently.
//! - Each person counts **once per period, with their last valid answer in it** (latest time;
//!   equal times in write order), as Sensors Data and Qualtrics count a respondent; someone
//!   who answered 3 and then 9 in one week is one promoter that week. The range total counts
//!   each person once with their last valid answer in the whole range.
//! - **Promoters** score 9–10, **passives** 7–8, **detractors** 0–6; `responses` is their
//!   sum (persons). **NPS** = %promoters − %detractors = 100 · (promoters − detractors) /
//!   responses, rounded half away from zero to one decimal; `null` with no responses.
//! - **Segments**: `{name: [person ids]}`; each segment gets the same table over its persons'
//!   answers (a person may be in several). Ids are canonical person ids; profile-based
//!   segments will come from the segments crate later.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use lodestar_core::PersonId;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::source::{PersonSource, run_sharded};
use crate::spec::{RangeSpec, interval, with_range};

/// The survey event when none is named.
pub const DEFAULT_EVENT: &str = "NPS Survey Answered";
/// Most segments in one query.
pub const MAX_SEGMENTS: usize = 50;

/// An NPS question.
#[derive(Debug, Clone)]
pub struct NpsQuery {
    /// The survey answer event.
    pub event: String,
    /// Period length.
    pub interval: Interval,
    /// Time zone and week start.
    pub calendar: Calendar,
    /// First date.
    pub from: Date,
    /// Last date, included.
    pub to: Date,
    /// Segments by name.
    pub segments: BTreeMap<String, Vec<PersonId>>,
    /// Threads to use.
    pub threads: usize,
}

/// One period's (or the range's) figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NpsRow {
    /// First date of the period (the range's first date for the total).
    pub date: String,
    /// Persons counted (promoters + passives + detractors).
    pub responses: u64,
    /// Persons whose counted score is 9 or 10.
    pub promoters: u64,
    /// Persons whose counted score is 7 or 8.
    pub passives: u64,
    /// Persons whose counted score is 0 to 6.
    pub detractors: u64,
    /// Answers without a valid score.
    pub invalid: u64,
    /// %promoters − %detractors, one decimal; `null` with no responses.
    pub nps: Option<f64>,
}

/// The table of one group of persons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NpsGroup {
    /// The segment's name; `None` for everyone.
    pub segment: Option<String>,
    /// Per period, in order.
    pub periods: Vec<NpsRow>,
    /// Over the whole range.
    pub total: NpsRow,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NpsResult {
    /// The survey event.
    pub event: String,
    /// Everyone.
    pub all: NpsGroup,
    /// Per segment, by name.
    pub segments: Vec<NpsGroup>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Promoters, passives, detractors.
    kinds: [u64; 3],
    invalid: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        for i in 0..3 {
            self.kinds[i] += o.kinds[i];
        }
        self.invalid += o.invalid;
    }

    fn row(&self, date: String) -> NpsRow {
        let [p, s, d] = self.kinds;
        let r = p + s + d;
        NpsRow {
            date,
            responses: r,
            promoters: p,
            passives: s,
            detractors: d,
            invalid: self.invalid,
            nps: (r > 0).then(|| ((p as f64 - d as f64) * 1000.0 / r as f64).round() / 10.0),
        }
    }
}

/// The category of a score: `promoter` (9–10), `passive` (7–8) or `detractor` (0–6); `None`
/// when it is not an integer 0 to 10.
pub fn category(score: f64) -> Option<&'static str> {
    kind(score).map(|k| ["promoter", "passive", "detractor"][k])
}

/// The kind of a valid score (0 promoter, 1 passive, 2 detractor), `None` when invalid.
fn kind(score: f64) -> Option<usize> {
    if !(0.0..=10.0).contains(&score) || score.fract() != 0.0 {
        return None;
    }
    Some(if score >= 9.0 {
        0
    } else if score >= 7.0 {
        1
    } else {
        2
    })
}

impl NpsQuery {
    fn check(&self) -> Result<()> {
        if self.event.is_empty() {
            return Err(AnalyticsError::invalid("event", "empty event name"));
        }
        if self.segments.len() > MAX_SEGMENTS {
            return Err(AnalyticsError::invalid(
                "segments",
                format!(
                    "at most {MAX_SEGMENTS} segments, not {}",
                    self.segments.len()
                ),
            ));
        }
        if self.segments.contains_key("") {
            return Err(AnalyticsError::invalid("segments", "empty segment name"));
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

/// Runs the NPS analysis.
pub fn nps(source: &dyn PersonSource, q: &NpsQuery) -> Result<NpsResult> {
    q.check()?;
    let cal = &q.calendar;
    let periods = Periods::new(cal, q.interval, q.from, q.to)?;
    let n = periods.len();
    let begin = cal.start_of(q.from)?;
    let end = cal.start_of(
        q.to.checked_add(jiff::Span::new().days(1))
            .map_err(|e| AnalyticsError::invalid("date_to", e.to_string()))?,
    )?;
    // Group 0 is everyone, group 1 + i segment i.
    let groups = 1 + q.segments.len();
    let mut member: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, persons) in q.segments.values().enumerate() {
        for p in persons {
            let g = member.entry(p.0).or_default();
            if g.last() != Some(&(i + 1)) {
                g.push(i + 1);
            }
        }
    }
    let event = source.name_id(&q.event);
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        // [group][period], then per group the range total at index n.
        let mut counts = vec![Counts::default(); groups * (n + 1)];
        let Some(event) = event else { return counts };
        let mut slots: Vec<usize> = Vec::new();
        src.for_each_person_with_values(shard, shards, &mut |person, ev| {
            let ev = ev.within(begin, end);
            slots.clear();
            slots.push(0);
            if let Some(g) = member.get(&person.0) {
                slots.extend(g);
            }
            let mut add = |at: usize, kind: Option<usize>| {
                for &g in &slots {
                    let c = &mut counts[g * (n + 1) + at];
                    match kind {
                        Some(k) => c.kinds[k] += 1,
                        None => c.invalid += 1,
                    }
                }
            };
            // The last valid answer of the current period, and of the range.
            let mut current: Option<(usize, usize)> = None;
            let mut last: Option<usize> = None;
            let mut cursor = 0usize;
            for i in 0..ev.len() {
                if ev.names[i] != event {
                    continue;
                }
                while periods.starts[cursor + 1] <= ev.ts[i] {
                    cursor += 1;
                }
                let Some(k) = kind(ev.values[i]) else {
                    add(cursor, None);
                    add(n, None);
                    continue;
                };
                if let Some((p, k0)) = current
                    && p != cursor
                {
                    add(p, Some(k0));
                }
                current = Some((cursor, k));
                last = Some(k);
            }
            if let Some((p, k)) = current {
                add(p, Some(k));
            }
            if let Some(k) = last {
                add(n, Some(k));
            }
        });
        counts
    });
    let mut counts = vec![Counts::default(); groups * (n + 1)];
    for part in partials {
        for (a, b) in counts.iter_mut().zip(&part) {
            a.add(b);
        }
    }
    let table = |g: usize, segment: Option<String>| NpsGroup {
        segment,
        periods: (0..n)
            .map(|i| counts[g * (n + 1) + i].row(periods.dates[i].to_string()))
            .collect(),
        total: counts[g * (n + 1) + n].row(q.from.to_string()),
    };
    Ok(NpsResult {
        event: q.event.clone(),
        all: table(0, None),
        segments: q
            .segments
            .keys()
            .enumerate()
            .map(|(i, name)| table(i + 1, Some(name.clone())))
            .collect(),
    })
}

/// An NPS analysis, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpsSpec {
    /// The survey answer event; default `NPS Survey Answered`.
    #[serde(default)]
    pub event: Option<String>,
    /// `day`, `week` or `month` (default).
    #[serde(default)]
    pub interval: Option<String>,
    /// Segments: name → person ids.
    #[serde(default)]
    pub segments: BTreeMap<String, Vec<u64>>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(NpsSpec);

impl NpsSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<NpsQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let q = NpsQuery {
            event: self.event.clone().unwrap_or_else(|| DEFAULT_EVENT.into()),
            interval: interval(self.interval.as_deref(), Interval::Month)?,
            calendar: range.calendar()?,
            from,
            to,
            segments: self
                .segments
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(|&p| PersonId(p)).collect()))
                .collect(),
            threads,
        };
        q.check()?;
        Ok(q)
    }
}
