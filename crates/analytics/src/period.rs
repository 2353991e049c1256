//! Calendar periods (days, weeks, months) in a time zone, as UTC instants.
//!
//! An analysis asks "in which day (week, month) of Asia/Shanghai was this event?" millions
//! of times. The answer never needs a time-zone conversion per event: the period boundaries
//! of the analysed range are converted once (a few hundred at most), and an event's period
//! is a binary search among them. Days are calendar days, so a day in a zone with daylight
//! saving is 23 or 25 hours long on the days the clocks change.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};

/// The length of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// A calendar day.
    Day,
    /// A week starting on [`Calendar::week_start`].
    Week,
    /// A calendar month.
    Month,
    /// A calendar year (for discrete opportunities such as yearly donations; the general
    /// analyses parse day, week and month only).
    Year,
}

impl Interval {
    /// Parses `day`, `week` or `month`.
    pub fn parse(s: &str) -> Result<Interval> {
        match s {
            "day" => Ok(Interval::Day),
            "week" => Ok(Interval::Week),
            "month" => Ok(Interval::Month),
            _ => Err(AnalyticsError::invalid(
                "interval",
                format!("{s:?} is not one of day, week, month"),
            )),
        }
    }
}

/// How dates are read: a time zone and the first day of the week.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// The zone in which days begin.
    pub tz: TimeZone,
    /// The first day of a week (Monday by default, as in China and ISO 8601).
    pub week_start: Weekday,
}

impl Calendar {
    /// A calendar for the IANA zone `name` (`Asia/Shanghai`, `UTC`, `America/New_York`).
    pub fn new(name: &str) -> Result<Calendar> {
        let tz = TimeZone::get(name).map_err(|e| {
            AnalyticsError::invalid("timezone", format!("unknown time zone {name:?}: {e}"))
        })?;
        Ok(Calendar {
            tz,
            week_start: Weekday::Monday,
        })
    }

    /// UTC.
    pub fn utc() -> Calendar {
        Calendar {
            tz: TimeZone::UTC,
            week_start: Weekday::Monday,
        }
    }

    /// The instant (ms) a date begins.
    pub fn start_of(&self, date: Date) -> Result<i64> {
        let zoned = date
            .to_zoned(self.tz.clone())
            .map_err(|e| AnalyticsError::invalid("date", format!("{date}: {e}")))?;
        Ok(zoned.timestamp().as_millisecond())
    }

    /// The date of an instant (ms).
    pub fn date_of(&self, ms: i64) -> Result<Date> {
        let ts = jiff::Timestamp::from_millisecond(ms)
            .map_err(|e| AnalyticsError::invalid("timestamp", format!("{ms}: {e}")))?;
        Ok(ts.to_zoned(self.tz.clone()).date())
    }

    /// The first date of the period holding `date`.
    pub fn truncate(&self, interval: Interval, date: Date) -> Date {
        match interval {
            Interval::Day => date,
            Interval::Week => {
                let back = (date.weekday().to_monday_zero_offset() as i16
                    - self.week_start.to_monday_zero_offset() as i16)
                    .rem_euclid(7);
                date.checked_sub(jiff::Span::new().days(back as i64))
                    .unwrap_or(date)
            }
            Interval::Month => date.first_of_month(),
            Interval::Year => date.first_of_year(),
        }
    }

    /// The first date of the period after the one starting on `start`.
    pub fn next(&self, interval: Interval, start: Date) -> Result<Date> {
        let span = match interval {
            Interval::Day => jiff::Span::new().days(1),
            Interval::Week => jiff::Span::new().weeks(1),
            Interval::Month => jiff::Span::new().months(1),
            Interval::Year => jiff::Span::new().years(1),
        };
        start
            .checked_add(span)
            .map_err(|e| AnalyticsError::invalid("date_to", format!("{start}: {e}")))
    }
}

/// Consecutive periods covering a date range: period `i` is `[starts[i], starts[i + 1])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periods {
    /// First date of each period, plus the date after the last one.
    pub dates: Vec<Date>,
    /// The same as UTC instants (ms).
    pub starts: Vec<i64>,
}

/// Most periods one analysis may span.
pub const MAX_PERIODS: usize = 5_000;

impl Periods {
    /// The periods of `interval` holding the dates `from..=to`.
    pub fn new(calendar: &Calendar, interval: Interval, from: Date, to: Date) -> Result<Periods> {
        if to < from {
            return Err(AnalyticsError::invalid(
                "date_to",
                format!("{to} is before date_from {from}"),
            ));
        }
        let mut dates = vec![calendar.truncate(interval, from)];
        loop {
            let next = calendar.next(interval, *dates.last().expect("not empty"))?;
            dates.push(next);
            if next > to {
                break;
            }
            if dates.len() > MAX_PERIODS {
                return Err(AnalyticsError::invalid(
                    "date_to",
                    format!("the range spans more than {MAX_PERIODS} periods"),
                ));
            }
        }
        let starts = dates
            .iter()
            .map(|d| calendar.start_of(*d))
            .collect::<Result<Vec<_>>>()?;
        Ok(Periods { dates, starts })
    }

    /// Number of periods.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Whether there are none (never, once built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The period holding instant `ms`, if any.
    pub fn index(&self, ms: i64) -> Option<usize> {
        if ms < self.starts[0] || ms >= *self.starts.last().expect("not empty") {
            return None;
        }
        Some(self.starts.partition_point(|&s| s <= ms) - 1)
    }

    /// The first instant covered.
    pub fn begin(&self) -> i64 {
        self.starts[0]
    }

    /// The first instant after the last period.
    pub fn end(&self) -> i64 {
        *self.starts.last().expect("not empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn shanghai_days_begin_at_16_utc() {
        let cal = Calendar::new("Asia/Shanghai").unwrap();
        let p = Periods::new(&cal, Interval::Day, date(2026, 3, 1), date(2026, 3, 3)).unwrap();
        assert_eq!(p.len(), 3);
        // 2026-02-28T16:00:00Z
        assert_eq!(p.starts[0], 1_772_294_400_000);
        assert_eq!(p.index(p.starts[1] - 1), Some(0));
        assert_eq!(p.index(p.starts[1]), Some(1));
        assert_eq!(p.index(p.end()), None);
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let cal = Calendar::new("America/New_York").unwrap();
        let spring = Periods::new(&cal, Interval::Day, date(2026, 3, 8), date(2026, 3, 8)).unwrap();
        assert_eq!(spring.starts[1] - spring.starts[0], 23 * 3_600_000);
        let fall = Periods::new(&cal, Interval::Day, date(2026, 11, 1), date(2026, 11, 1)).unwrap();
        assert_eq!(fall.starts[1] - fall.starts[0], 25 * 3_600_000);
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let cal = Calendar::utc();
        // 2026-12-02 is a Wednesday.
        let w = Periods::new(&cal, Interval::Week, date(2026, 12, 2), date(2026, 12, 14)).unwrap();
        assert_eq!(w.dates[0], date(2026, 11, 30));
        assert_eq!(w.len(), 3);
        let m = Periods::new(&cal, Interval::Month, date(2026, 1, 31), date(2026, 3, 1)).unwrap();
        assert_eq!(
            m.dates,
            vec![
                date(2026, 1, 1),
                date(2026, 2, 1),
                date(2026, 3, 1),
                date(2026, 4, 1)
            ]
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        assert_eq!(Calendar::new("Mars/Base").unwrap_err().field(), "timezone");
        let cal = Calendar::utc();
        let e = Periods::new(&cal, Interval::Day, date(2026, 2, 1), date(2026, 1, 1)).unwrap_err();
        assert_eq!(e.field(), "date_to");
    }
}
