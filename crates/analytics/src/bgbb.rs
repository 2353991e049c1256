//! Predicted retention for discrete opportunities — subscription renewals, yearly donations,
//! a course's weekly lessons: the BG/BB model fitted on a project's own events, and every
//! customer scored.
//!
//! Definitions:
//! - the periods (opportunities) are the calendar `interval`s (week, month or year) of the
//!   query's zone; a customer **transacts** in a period when they do one of `events` in it;
//! - a customer's first transacting period in the calibration range (`date_from` through
//!   `date_to`) is their period 0; the opportunities are the whole periods after it that
//!   start on or before `date_to` (n); x counts those with a transaction, and tₓ is the index
//!   of the last (0 when x = 0), as in Fader, Hardie & Shang (2010);
//! - customers with no opportunity yet (n = 0) are left out of the fit and the scores.
//!
//! Scores: P(alive) at the next opportunity and the expected transactions over the next
//! `horizon` opportunities.

use jiff::civil::Date;
use lodestar_models::bg_bb::{BgBbData, BgBbParams, Opportunities};
use lodestar_models::{FitOptions, ModelError};
use serde::{Deserialize, Serialize};

use crate::clv::FittedModel;
use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::source::{PersonSource, run_sharded};
use crate::spec::{RangeSpec, interval, with_range};

/// A BG/BB question.
#[derive(Debug, Clone)]
pub struct BgBbQuery {
    /// The transaction events.
    pub events: Vec<String>,
    /// The opportunity's length.
    pub interval: Interval,
    /// Zone of the calendar.
    pub calendar: Calendar,
    /// First calibration date.
    pub from: Date,
    /// Last calibration date.
    pub to: Date,
    /// Opportunities ahead to predict.
    pub horizon: u32,
    /// List this many customers, highest expected transactions first.
    pub list: usize,
    /// Threads to use.
    pub threads: usize,
}

/// One customer's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpportunityScore {
    /// Canonical person id.
    pub person: u64,
    /// x.
    pub frequency: u32,
    /// tₓ.
    pub recency: u32,
    /// n.
    pub periods: u32,
    /// P(alive) at the next opportunity.
    pub p_alive: f64,
    /// Expected transactions over the horizon.
    pub expected_transactions: f64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgBbResult {
    /// Customers fitted and scored.
    pub customers: u64,
    /// The fit.
    pub model: FittedModel,
    /// Σ expected transactions over the horizon.
    pub expected_transactions: f64,
    /// Mean P(alive).
    pub mean_p_alive: f64,
    /// The customers asked for.
    pub list: Vec<OpportunityScore>,
}

/// Runs the BG/BB analysis.
pub fn bgbb(source: &dyn PersonSource, q: &BgBbQuery) -> Result<BgBbResult> {
    if q.events.is_empty() {
        return Err(AnalyticsError::invalid("events", "name at least one"));
    }
    let periods = Periods::new(&q.calendar, q.interval, q.from, q.to)?;
    let (begin, end) = (periods.begin(), periods.end());
    let last = periods.len() as u32 - 1;
    let wanted: Vec<bool> = source
        .names()
        .iter()
        .map(|n| q.events.contains(n))
        .collect();
    let parts = run_sharded(source, q.threads, |src, shard, shards| {
        let mut out: Vec<(u64, Opportunities)> = Vec::new();
        let mut seen: Vec<u32> = Vec::new();
        src.for_each_person(shard, shards, &mut |person, ev| {
            seen.clear();
            for i in 0..ev.len() {
                let ts = ev.ts[i];
                if wanted[ev.names[i] as usize]
                    && ts >= begin
                    && ts < end
                    && let Some(p) = periods.index(ts)
                {
                    seen.push(p as u32);
                }
            }
            seen.dedup();
            let Some(&first) = seen.first() else {
                return;
            };
            let n = last - first;
            if n == 0 {
                return;
            }
            let x = seen.len() as u32 - 1;
            let recency = if x == 0 { 0 } else { seen[x as usize] - first };
            let o = Opportunities::new(x, recency, n).expect("x ≤ tₓ ≤ n by construction");
            out.push((person.0, o));
        });
        out
    });
    let customers: Vec<(u64, Opportunities)> = parts.into_iter().flatten().collect();
    let unfit = |e: ModelError| {
        AnalyticsError::invalid("events", format!("the data cannot support a fit: {e}"))
    };
    let mut patterns: std::collections::BTreeMap<(u32, u32, u32), f64> = Default::default();
    for (_, o) in &customers {
        *patterns
            .entry((o.frequency(), o.recency(), o.periods()))
            .or_default() += 1.0;
    }
    let rows: Vec<(u32, u32, u32, f64)> = patterns
        .into_iter()
        .map(|((x, t, n), w)| (x, t, n, w))
        .collect();
    let data = BgBbData::from_patterns(&rows).map_err(unfit)?;
    let options = FitOptions {
        threads: q.threads.max(1),
        ..FitOptions::default()
    };
    let fit = BgBbParams::fit(&data, &options).map_err(unfit)?;
    let params = fit.params;
    let mut scores: Vec<OpportunityScore> = customers
        .iter()
        .map(|(person, o)| OpportunityScore {
            person: *person,
            frequency: o.frequency(),
            recency: o.recency(),
            periods: o.periods(),
            p_alive: params.prob_alive(o, 1),
            expected_transactions: params.expected_transactions(o, q.horizon),
        })
        .collect();
    let n = scores.len();
    let expected = scores.iter().map(|s| s.expected_transactions).sum();
    let mean_p_alive = scores.iter().map(|s| s.p_alive).sum::<f64>() / n.max(1) as f64;
    scores.sort_by(|a, b| {
        b.expected_transactions
            .total_cmp(&a.expected_transactions)
            .then(a.person.cmp(&b.person))
    });
    scores.truncate(q.list);
    Ok(BgBbResult {
        customers: n as u64,
        model: FittedModel {
            model: "bg_bb".into(),
            params: serde_json::to_value(params).expect("parameters serialize"),
            std_errors: fit
                .std_errors
                .map(|s| serde_json::to_value(s).expect("parameters serialize")),
            report: fit.report,
        },
        expected_transactions: expected,
        mean_p_alive,
        list: scores,
    })
}

/// BG/BB, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgBbSpec {
    /// The transaction events (renewals, donations, lessons).
    pub events: Vec<String>,
    /// `week`, `month` (default) or `year`.
    #[serde(default)]
    pub interval: Option<String>,
    /// Opportunities ahead to predict; default 12.
    #[serde(default)]
    pub horizon: Option<u32>,
    /// List this many customers; default 20.
    #[serde(default)]
    pub list: Option<usize>,
    /// First calibration date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last calibration date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(BgBbSpec);

impl BgBbSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<BgBbQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        if let Some(i) = self.events.iter().position(String::is_empty) {
            return Err(AnalyticsError::invalid(
                format!("events[{i}]"),
                "empty event name",
            ));
        }
        if self.events.is_empty() {
            return Err(AnalyticsError::invalid("events", "name at least one"));
        }
        let interval = match self.interval.as_deref() {
            Some("year") => Interval::Year,
            other => interval(other, Interval::Month)?,
        };
        if interval == Interval::Day {
            return Err(AnalyticsError::invalid(
                "interval",
                "opportunities are weeks, months or years",
            ));
        }
        let horizon = self.horizon.unwrap_or(12);
        if !(1..=1000).contains(&horizon) {
            return Err(AnalyticsError::invalid("horizon", "between 1 and 1000"));
        }
        Ok(BgBbQuery {
            events: self.events.clone(),
            interval,
            calendar: range.calendar()?,
            from,
            to,
            horizon,
            list: self.list.unwrap_or(20).min(100_000),
            threads,
        })
    }
}
