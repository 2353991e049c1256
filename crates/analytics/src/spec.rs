//! The analyses' parameters as people write them — dates (`2026-11-01`), durations (`7d`),
//! zone names (`Asia/Shanghai`) — read by the HTTP API (JSON) and the command line alike, and
//! checked into queries with errors that name the offending field.
//!
//! Date ranges are inclusive calendar dates in the query's time zone (default `UTC`).

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::funnel::{FunnelOrder, FunnelQuery};
use crate::lifecycle::LifecycleQuery;
use crate::period::{Calendar, Interval};
use crate::retention::{RetentionKind, RetentionQuery};
use crate::stages::{Stage, StageRules, StagesQuery};

/// A date range and zone, shared by every analysis.
pub(crate) struct RangeSpec<'a> {
    pub(crate) date_from: &'a str,
    pub(crate) date_to: &'a str,
    pub(crate) timezone: Option<&'a str>,
}

impl RangeSpec<'_> {
    /// The zone's calendar (`UTC` when absent).
    pub(crate) fn calendar(&self) -> Result<Calendar> {
        Calendar::new(self.timezone.unwrap_or("UTC"))
    }

    /// The first and last dates, checked.
    pub(crate) fn dates(&self) -> Result<(Date, Date)> {
        let from = parse_date("date_from", self.date_from)?;
        let to = parse_date("date_to", self.date_to)?;
        if to < from {
            return Err(AnalyticsError::invalid(
                "date_to",
                format!("{to} is before date_from {from}"),
            ));
        }
        Ok((from, to))
    }

    /// `[start of date_from, start of the day after date_to)` in ms.
    pub(crate) fn bounds_ms(&self) -> Result<(i64, i64)> {
        let cal = self.calendar()?;
        let (from, to) = self.dates()?;
        let after = to
            .checked_add(jiff::Span::new().days(1))
            .map_err(|e| AnalyticsError::invalid("date_to", e.to_string()))?;
        Ok((cal.start_of(from)?, cal.start_of(after)?))
    }
}

/// Gives each spec (all have `date_from`, `date_to`, `timezone`) its [`RangeSpec`].
macro_rules! with_range {
    ($($spec:ty),*) => {$(
        impl $spec {
            pub(crate) fn range(&self) -> RangeSpec<'_> {
                RangeSpec {
                    date_from: &self.date_from,
                    date_to: &self.date_to,
                    timezone: self.timezone.as_deref(),
                }
            }
        }
    )*};
}

pub(crate) use with_range;

with_range!(FunnelSpec, RetentionSpec, LifecycleSpec, StagesSpec);

fn parse_date(field: &str, s: &str) -> Result<Date> {
    s.parse::<Date>()
        .map_err(|_| AnalyticsError::invalid(field, format!("{s:?} is not a date like 2026-11-01")))
}

/// Parses a duration like `30m`, `24h`, `7d`, `2w` into ms.
pub fn parse_duration(field: &str, s: &str) -> Result<i64> {
    let bad = || {
        AnalyticsError::invalid(
            field,
            format!("{s:?} is not a duration like 30m, 24h, 7d or 2w"),
        )
    };
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms).filter(|v| *v > 0).ok_or_else(bad)
}

/// The interval named by `s`, or `default`.
pub(crate) fn interval(s: Option<&str>, default: Interval) -> Result<Interval> {
    s.map_or(Ok(default), Interval::parse)
}

/// A funnel, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelSpec {
    /// Step event names, in order.
    pub steps: Vec<String>,
    /// `ordered` (default), `strict` or `any`.
    #[serde(default)]
    pub order: Option<FunnelOrder>,
    /// Conversion window; default `14d`.
    #[serde(default)]
    pub window: Option<String>,
    /// List the persons who dropped at this step (0-based).
    #[serde(default)]
    pub dropped_at: Option<usize>,
    /// Most persons listed; default 10,000.
    #[serde(default)]
    pub max_persons: Option<u64>,
    /// Exclusion steps `[{event, from_step, to_step}]` (ordered funnels only).
    #[serde(default)]
    pub exclusions: Vec<crate::funnel::FunnelExclusion>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl FunnelSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<FunnelQuery> {
        let (from_ms, to_ms) = self.range().bounds_ms()?;
        let steps: Vec<&str> = self.steps.iter().map(String::as_str).collect();
        let mut q = FunnelQuery::new(
            &steps,
            parse_duration("window", self.window.as_deref().unwrap_or("14d"))?,
            from_ms,
            to_ms,
        );
        q.order = self.order.unwrap_or(FunnelOrder::Ordered);
        q.dropped_at = self.dropped_at;
        if let Some(m) = self.max_persons {
            q.max_persons = usize::try_from(m).unwrap_or(usize::MAX);
        }
        q.exclusions = self.exclusions.clone();
        q.threads = threads;
        Ok(q)
    }
}

/// A retention table, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSpec {
    /// The event that puts a person in a cohort.
    pub start_event: String,
    /// The event that counts as coming back; default the start event.
    #[serde(default)]
    pub return_event: Option<String>,
    /// `first_time` (default) or `recurring`.
    #[serde(default)]
    pub kind: Option<RetentionKind>,
    /// `day`, `week` (default) or `month`.
    #[serde(default)]
    pub interval: Option<String>,
    /// Periods after each cohort; default 8.
    #[serde(default)]
    pub periods: Option<usize>,
    /// "On or after" instead of "on"; default false.
    #[serde(default)]
    pub cumulative: Option<bool>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl RetentionSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<RetentionQuery> {
        let (from, to) = self.range().dates()?;
        if self.start_event.is_empty() {
            return Err(AnalyticsError::invalid("start_event", "empty event name"));
        }
        Ok(RetentionQuery {
            start_event: self.start_event.clone(),
            return_event: self
                .return_event
                .clone()
                .unwrap_or_else(|| self.start_event.clone()),
            kind: self.kind.unwrap_or(RetentionKind::FirstTime),
            interval: interval(self.interval.as_deref(), Interval::Week)?,
            periods: self.periods.unwrap_or(8),
            cumulative: self.cumulative.unwrap_or(false),
            calendar: self.range().calendar()?,
            from,
            to,
            threads,
        })
    }
}

/// An interval lifecycle, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSpec {
    /// The event that counts as activity; any event when absent.
    #[serde(default)]
    pub event: Option<String>,
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

impl LifecycleSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<LifecycleQuery> {
        let (from, to) = self.range().dates()?;
        Ok(LifecycleQuery {
            event: self.event.clone(),
            interval: interval(self.interval.as_deref(), Interval::Week)?,
            calendar: self.range().calendar()?,
            from,
            to,
            threads,
        })
    }
}

/// Lifecycle stages, as asked: a preset or full rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagesSpec {
    /// `ecommerce` (default), `saas` or `education`, when `rules` is absent.
    #[serde(default)]
    pub preset: Option<String>,
    /// The project's own rules.
    #[serde(default)]
    pub rules: Option<StageRules>,
    /// Distribution points: the end of each `day`, `week` (default) or `month`.
    #[serde(default)]
    pub interval: Option<String>,
    /// List the persons in this stage at the end of `date_to`.
    #[serde(default)]
    pub members: Option<Stage>,
    /// At most this many; default 1,000, at most 100,000.
    #[serde(default)]
    pub members_limit: Option<usize>,
    /// First date (`YYYY-MM-DD`); the flows start at its end.
    pub date_from: String,
    /// Last date, included; the flows end at its end.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl StagesSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<StagesQuery> {
        let (from, to) = self.range().dates()?;
        let rules = match (&self.rules, &self.preset) {
            (Some(_), Some(_)) => {
                return Err(AnalyticsError::invalid(
                    "preset",
                    "give a preset or rules, not both",
                ));
            }
            (Some(rules), None) => rules.clone(),
            (None, preset) => StageRules::preset(preset.as_deref().unwrap_or("ecommerce"))?,
        };
        let members_limit = self.members_limit.unwrap_or(1_000);
        if members_limit > 100_000 {
            return Err(AnalyticsError::invalid(
                "members_limit",
                "at most 100000 persons can be listed",
            ));
        }
        Ok(StagesQuery {
            rules,
            interval: interval(self.interval.as_deref(), Interval::Week)?,
            calendar: self.range().calendar()?,
            from,
            to,
            members: self.members,
            members_limit,
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_their_errors() {
        assert_eq!(parse_duration("window", "7d").unwrap(), 7 * 86_400_000);
        assert_eq!(parse_duration("window", "30m").unwrap(), 1_800_000);
        for bad in ["", "7", "d", "7y", "-1d", "0h", "99999999999999999w"] {
            assert_eq!(
                parse_duration("window", bad).unwrap_err().field(),
                "window",
                "{bad}"
            );
        }
    }

    #[test]
    fn specs_check_their_fields() {
        let spec: FunnelSpec = serde_json::from_str(
            r#"{"steps":["a","b"],"window":"7d","date_from":"2026-01-01","date_to":"2026-01-31","timezone":"Asia/Shanghai"}"#,
        )
        .unwrap();
        let q = spec.query(2).unwrap();
        // 2026-01-01T00:00+08:00 to 2026-02-01T00:00+08:00.
        assert_eq!(q.from_ms, 1_767_196_800_000);
        assert_eq!(q.to_ms - q.from_ms, 31 * 86_400_000);
        let mut bad = spec.clone();
        bad.date_to = "2026-13-01".into();
        assert_eq!(bad.query(1).unwrap_err().field(), "date_to");
        let mut bad = spec.clone();
        bad.timezone = Some("Nowhere".into());
        assert_eq!(bad.query(1).unwrap_err().field(), "timezone");
        assert!(
            serde_json::from_str::<FunnelSpec>(
                r#"{"steps":[],"date_from":"x","date_to":"y","bogus":1}"#
            )
            .is_err()
        );
        let r: RetentionSpec = serde_json::from_str(
            r#"{"start_event":"signup","interval":"fortnight","date_from":"2026-01-01","date_to":"2026-01-31"}"#,
        )
        .unwrap();
        assert_eq!(r.query(1).unwrap_err().field(), "interval");
    }
}
