//! Referral K-factor (裂变系数): how many new users each active user brings through
//! invitations, and how long one turn of the referral loop takes.
//!
//! Definitions:
//! - Only events within the date range count: `[start of date_from, start of the day after
//!   date_to)` in the query's time zone, each in the day, week or month (`interval`) of its
//!   date. Event and person filters apply as to every analysis: the analysis sees only the
//!   events and persons they keep.
//! - **Active** persons of a period had any event in it. **Inviters** had at least one invite
//!   event (any of `invite_events`, default `Invite Sent`); **invitations** counts the invite
//!   events.
//! - A **conversion** is a `conversion_event` (default `Signed Up`) whose `referrer_property`
//!   (default `referrer_id`; dots reach into objects) holds a referrer: a non-empty text, or a
//!   number (read as its shortest text, so `42` names user id `"42"`). Conversion events
//!   without one are not conversions (they still make their person active). A conversion
//!   counts in the period of its own time, whenever the invitation was sent.
//! - The referrer is the inviter's user id (`userId`). A conversion is **attributed** when
//!   some person of the project has that user id (their canonical person, through merges),
//!   whether or not the person filter keeps them; else it is **unattributed**, and still a
//!   conversion. A person who names their own user id is their own inviter.
//! - **Converted invitees**: distinct persons with a conversion in the period (attributed or
//!   not); in the total, distinct over the range.
//! - `invites_per_inviter = invitations / inviters`, `invites_per_active = invitations /
//!   active`, `conversion_rate = conversions / invitations` (above 1 when invitations of
//!   earlier periods convert now), and
//!
//!   **K = invites_per_inviter × conversion_rate** (= conversions / inviters): the classic
//!   viral coefficient, new users brought per inviter; and **K per active person** =
//!   `invites_per_active × conversion_rate` (= conversions / active), the growth it gives the
//!   whole base. Each ratio is absent where its denominator is 0, K where either factor is.
//! - **Viral cycle time**: for each attributed conversion at `c`, the time from the inviter's
//!   latest invite event at or before `c` (same millisecond included; only invites in the
//!   range, and only when the filters keep the inviter and that event) to `c`. A conversion
//!   whose inviter sent no such invite is not timed. Per period (of the conversion) and in
//!   total: how many were `timed`, the mean, and the median and 90th percentile (the value at
//!   index `round((n - 1) × q)` of the sorted times, as funnels do), in ms.
//! - **Top inviters**: over the whole range, the persons credited with attributed
//!   conversions or who sent invitations, `top_n` (default 10) of them, by conversions, then
//!   invitations (both descending), then person id.
//! - Totals count distinct persons over the whole range, not the sum of the periods.
//!
//! How it reads: the referrer is in the event body, so the conversion events in the range
//! are read with `crate::filter::scan_bodies`, each mapped to its canonical person; the
//! referrers are resolved with one visit of the profiles; then one pass over the persons
//! counts activity and invitations and keeps the invite times of the inviters named.

use std::collections::{HashMap, HashSet};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::registry::Data;
use crate::source::{PersonSource, SnapshotSource, run_sharded};
use crate::spec::{RangeSpec, interval, with_range};

/// Most top inviters listed.
pub const MAX_TOP_N: usize = 1_000;

/// The invite event when the query names none.
pub const DEFAULT_INVITE_EVENT: &str = "Invite Sent";

/// The conversion event when the query names none.
pub const DEFAULT_CONVERSION_EVENT: &str = "Signed Up";

/// The referrer property when the query names none.
pub const DEFAULT_REFERRER_PROPERTY: &str = "referrer_id";

/// A K-factor question.
#[derive(Debug, Clone)]
pub struct KFactorQuery {
    /// Events that are invitations (at least one).
    pub invite_events: Vec<String>,
    /// The event an invitee converts with.
    pub conversion_event: String,
    /// The conversion event's property holding the inviter's user id; dots reach into
    /// objects.
    pub referrer_property: String,
    /// Top inviters listed (1 to [`MAX_TOP_N`]).
    pub top_n: usize,
    /// Periods: day, week or month.
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

impl KFactorQuery {
    /// Checks the parameters; errors name the field (`invite_events[0]`).
    pub fn check(&self) -> Result<()> {
        if self.invite_events.is_empty() {
            return Err(AnalyticsError::invalid(
                "invite_events",
                "give at least one invite event",
            ));
        }
        for (i, name) in self.invite_events.iter().enumerate() {
            if name.is_empty() {
                return Err(AnalyticsError::invalid(
                    format!("invite_events[{i}]"),
                    "empty event name",
                ));
            }
        }
        if self.conversion_event.is_empty() {
            return Err(AnalyticsError::invalid(
                "conversion_event",
                "empty event name",
            ));
        }
        if self.invite_events.contains(&self.conversion_event) {
            return Err(AnalyticsError::invalid(
                "conversion_event",
                format!("{:?} is also an invite event", self.conversion_event),
            ));
        }
        if self.referrer_property.is_empty() || self.referrer_property.split('.').any(str::is_empty)
        {
            return Err(AnalyticsError::invalid(
                "referrer_property",
                format!("{:?} is not a property name", self.referrer_property),
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

/// The viral cycle times of a set of attributed conversions (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleTime {
    /// Attributed conversions timed (their inviter sent an invite at or before them).
    pub timed: u64,
    /// Median, ms; absent when none was timed.
    pub median_ms: Option<i64>,
    /// Mean, ms; absent when none was timed.
    pub mean_ms: Option<f64>,
    /// 90th percentile, ms; absent when none was timed.
    pub p90_ms: Option<i64>,
}

impl CycleTime {
    /// The figures of `times` (any order).
    fn of(mut times: Vec<i64>) -> CycleTime {
        times.sort_unstable();
        let n = times.len();
        let pick = |q: f64| (n > 0).then(|| times[((n - 1) as f64 * q).round() as usize]);
        // Exact: the sum is an integer, so the mean does not depend on the order.
        let sum: i128 = times.iter().map(|&t| t as i128).sum();
        CycleTime {
            timed: n as u64,
            median_ms: pick(0.5),
            mean_ms: (n > 0).then(|| sum as f64 / n as f64),
            p90_ms: pick(0.9),
        }
    }
}

/// The figures of a period, or of the whole range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KFactorFigures {
    /// Persons with any event.
    pub active: u64,
    /// Persons with at least one invite event.
    pub inviters: u64,
    /// Invite events.
    pub invitations: u64,
    /// Conversion events with a referrer.
    pub conversions: u64,
    /// Conversions whose referrer is a known person's user id.
    pub attributed: u64,
    /// Conversions whose referrer is no known user id (`conversions - attributed`).
    pub unattributed: u64,
    /// Distinct persons with a conversion.
    pub converted_invitees: u64,
    /// `invitations / inviters`.
    pub invites_per_inviter: Option<f64>,
    /// `invitations / active`.
    pub invites_per_active: Option<f64>,
    /// `conversions / invitations`.
    pub conversion_rate: Option<f64>,
    /// `invites_per_inviter × conversion_rate`: new users per inviter (the viral
    /// coefficient).
    pub k_factor: Option<f64>,
    /// `invites_per_active × conversion_rate`: new users per active person.
    pub k_factor_per_active: Option<f64>,
    /// Time from invitation to attributed conversion.
    pub cycle_time: CycleTime,
}

/// One period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KFactorPeriod {
    /// First date of the period.
    pub date: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: KFactorFigures,
}

/// One of the top inviters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopInviter {
    /// Canonical person id.
    pub person: u64,
    /// Invite events they sent in the range.
    pub invitations: u64,
    /// Attributed conversions in the range naming them.
    pub conversions: u64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KFactorResult {
    /// Per period, in order.
    pub periods: Vec<KFactorPeriod>,
    /// The whole range.
    pub total: KFactorFigures,
    /// The inviters with most conversions, then invitations.
    pub top_inviters: Vec<TopInviter>,
}

/// Counts of one period or of the range.
#[derive(Debug, Clone, Default)]
struct Counts {
    active: u64,
    inviters: u64,
    invitations: u64,
    conversions: u64,
    attributed: u64,
    converted_invitees: u64,
    cycle_times: Vec<i64>,
}

impl Counts {
    fn figures(self) -> KFactorFigures {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let invites_per_active = ratio(self.invitations, self.active);
        let invites_per_inviter = ratio(self.invitations, self.inviters);
        let conversion_rate = ratio(self.conversions, self.invitations);
        KFactorFigures {
            active: self.active,
            inviters: self.inviters,
            invitations: self.invitations,
            conversions: self.conversions,
            attributed: self.attributed,
            unattributed: self.conversions - self.attributed,
            converted_invitees: self.converted_invitees,
            invites_per_inviter,
            invites_per_active,
            conversion_rate,
            k_factor: invites_per_inviter.zip(conversion_rate).map(|(a, b)| a * b),
            k_factor_per_active: invites_per_active.zip(conversion_rate).map(|(a, b)| a * b),
            cycle_time: CycleTime::of(self.cycle_times),
        }
    }
}

/// A conversion event in the range with a referrer.
struct Conversion {
    /// The invitee's canonical person.
    person: u64,
    ts: i64,
    referrer: String,
}

/// What one shard of persons adds up.
struct Partial {
    /// Per period: active, inviters, invitations.
    active: Vec<u64>,
    inviters: Vec<u64>,
    invitations: Vec<u64>,
    total_active: u64,
    total_inviters: u64,
    /// Invitations in the range per person who sent any.
    sent: Vec<(u64, u64)>,
    /// Invite times in the range of the persons conversions name, in time order.
    invite_times: Vec<(u64, Vec<i64>)>,
}

/// The referrer a property holds: a non-empty text, or a number as its shortest text.
fn referrer_of(props: &lodestar_core::JsonMap, property: &str) -> Option<String> {
    match crate::filter::property(props, property)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Runs the K-factor analysis over `source` (its filters apply), resolving referrers
/// through `data`'s profiles.
pub fn kfactor(
    data: &Data<'_>,
    source: &SnapshotSource<'_>,
    q: &KFactorQuery,
) -> Result<KFactorResult> {
    q.check()?;
    let periods = Periods::new(&q.calendar, q.interval, q.from, q.to)?;
    let (from_ms, to_ms) = crate::paths::range_ms(&q.calendar, q.from, q.to)?;
    let n = periods.len();

    // 1. The conversion events in the range with a referrer, from their bodies.
    let snapshot = source.snapshot();
    let mut conversions: Vec<Conversion> = Vec::new();
    if let Some(conv) = snapshot.name_id(&q.conversion_event) {
        let runs = snapshot.runs();
        let want = |r: usize, i: usize| {
            let run = &runs[r];
            run.names[i] == conv && (from_ms..to_ms).contains(&run.ts[i]) && !source.dropped(r, i)
        };
        let found = crate::filter::scan_bodies(snapshot, want, q.threads, |r, i, props| {
            let person = snapshot.canonical(runs[r].stored_person(i));
            if !source.kept(person) {
                return None;
            }
            referrer_of(props, &q.referrer_property).map(|referrer| Conversion {
                person,
                ts: runs[r].ts[i],
                referrer,
            })
        })?;
        conversions = found.into_iter().flatten().map(|(_, c)| c).collect();
    }

    // 2. Referrers to persons, through every profile's user ids.
    let mut inviter_of: HashMap<&str, Option<u64>> = conversions
        .iter()
        .map(|c| (c.referrer.as_str(), None))
        .collect();
    match data.person_of_user {
        // A few referrers: one lookup each instead of a pass over every profile.
        Some(find) if inviter_of.len() < 100_000 => {
            let ids: Vec<String> = inviter_of.keys().map(|k| k.to_string()).collect();
            for (id, person) in ids.iter().zip(find(&ids)?) {
                if let Some(slot) = inviter_of.get_mut(id.as_str()) {
                    *slot = person;
                }
            }
        }
        _ if !inviter_of.is_empty() => {
            (data.profiles)(&mut |p| {
                for id in &p.user_ids {
                    if let Some(slot) = inviter_of.get_mut(id.as_str()) {
                        slot.get_or_insert(p.person.0);
                    }
                }
            })?;
        }
        _ => {}
    }
    let named: HashSet<u64> = inviter_of.values().flatten().copied().collect();

    // 3. Activity and invitations per person, and the named inviters' invite times.
    let is_invite: Vec<bool> = source
        .names()
        .iter()
        .map(|name| q.invite_events.contains(name))
        .collect();
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut part = Partial {
            active: vec![0; n],
            inviters: vec![0; n],
            invitations: vec![0; n],
            total_active: 0,
            total_inviters: 0,
            sent: Vec::new(),
            invite_times: Vec::new(),
        };
        let mut times: Vec<i64> = Vec::new();
        src.for_each_person(shard, shards, &mut |person, ev| {
            let ev = ev.within(from_ms, to_ms);
            if ev.is_empty() {
                return;
            }
            part.total_active += 1;
            let keep_times = named.contains(&person.0);
            times.clear();
            // The last period counted, events being in time order.
            let mut last_active = None;
            let mut last_invite = None;
            let mut sent = 0u64;
            for (&t, &name) in ev.ts.iter().zip(ev.names) {
                let p = periods.index(t).expect("the periods cover the range");
                if last_active != Some(p) {
                    last_active = Some(p);
                    part.active[p] += 1;
                }
                if !is_invite[name as usize] {
                    continue;
                }
                sent += 1;
                part.invitations[p] += 1;
                if last_invite != Some(p) {
                    last_invite = Some(p);
                    part.inviters[p] += 1;
                }
                if keep_times {
                    times.push(t);
                }
            }
            if sent > 0 {
                part.total_inviters += 1;
                part.sent.push((person.0, sent));
            }
            if !times.is_empty() {
                part.invite_times.push((person.0, times.clone()));
            }
        });
        part
    });

    let mut per: Vec<Counts> = vec![Counts::default(); n];
    let mut total = Counts::default();
    let mut board: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut invite_times: HashMap<u64, Vec<i64>> = HashMap::new();
    for part in partials {
        for (p, c) in per.iter_mut().enumerate() {
            c.active += part.active[p];
            c.inviters += part.inviters[p];
            c.invitations += part.invitations[p];
            total.invitations += part.invitations[p];
        }
        total.active += part.total_active;
        total.inviters += part.total_inviters;
        for (person, sent) in part.sent {
            board.entry(person).or_default().0 += sent;
        }
        invite_times.extend(part.invite_times);
    }

    // 4. Conversions: counts, credits and cycle times.
    let mut invitees: Vec<(usize, u64)> = Vec::with_capacity(conversions.len());
    for c in &conversions {
        let p = periods.index(c.ts).expect("the periods cover the range");
        invitees.push((p, c.person));
        per[p].conversions += 1;
        total.conversions += 1;
        let Some(inviter) = inviter_of[c.referrer.as_str()] else {
            continue;
        };
        per[p].attributed += 1;
        total.attributed += 1;
        board.entry(inviter).or_default().1 += 1;
        let sent = invite_times.get(&inviter).map_or(&[][..], Vec::as_slice);
        let before = sent.partition_point(|&t| t <= c.ts);
        if before > 0 {
            let d = c.ts - sent[before - 1];
            per[p].cycle_times.push(d);
            total.cycle_times.push(d);
        }
    }
    invitees.sort_unstable();
    invitees.dedup();
    for &(p, _) in &invitees {
        per[p].converted_invitees += 1;
    }
    let mut persons: Vec<u64> = invitees.into_iter().map(|(_, person)| person).collect();
    persons.sort_unstable();
    persons.dedup();
    total.converted_invitees = persons.len() as u64;

    let mut top: Vec<TopInviter> = board
        .into_iter()
        .map(|(person, (invitations, conversions))| TopInviter {
            person,
            invitations,
            conversions,
        })
        .collect();
    top.sort_unstable_by(|a, b| {
        b.conversions
            .cmp(&a.conversions)
            .then(b.invitations.cmp(&a.invitations))
            .then(a.person.cmp(&b.person))
    });
    top.truncate(q.top_n);

    Ok(KFactorResult {
        periods: per
            .into_iter()
            .enumerate()
            .map(|(p, c)| KFactorPeriod {
                date: periods.dates[p].to_string(),
                figures: c.figures(),
            })
            .collect(),
        total: total.figures(),
        top_inviters: top,
    })
}

/// A K-factor analysis, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KFactorSpec {
    /// Events that are invitations; default `["Invite Sent"]`.
    #[serde(default)]
    pub invite_events: Option<Vec<String>>,
    /// The event an invitee converts with; default `Signed Up`.
    #[serde(default)]
    pub conversion_event: Option<String>,
    /// The conversion's property holding the inviter's user id; default `referrer_id`.
    #[serde(default)]
    pub referrer_property: Option<String>,
    /// Top inviters listed; default 10.
    #[serde(default)]
    pub top_n: Option<usize>,
    /// `day`, `week` (default) or `month`.
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

with_range!(KFactorSpec);

impl KFactorSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<KFactorQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let q = KFactorQuery {
            invite_events: self
                .invite_events
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_INVITE_EVENT.to_string()]),
            conversion_event: self
                .conversion_event
                .clone()
                .unwrap_or_else(|| DEFAULT_CONVERSION_EVENT.to_string()),
            referrer_property: self
                .referrer_property
                .clone()
                .unwrap_or_else(|| DEFAULT_REFERRER_PROPERTY.to_string()),
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
