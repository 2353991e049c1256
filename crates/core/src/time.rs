//! Time: a millisecond UTC timestamp and the injected clock.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// A point in time, in milliseconds since the Unix epoch (UTC).
///
/// Milliseconds are the precision of the Segment spec and of every SDK we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// One second, in the unit of [`Timestamp`].
    pub const SECOND: i64 = 1_000;
    /// One hour.
    pub const HOUR: i64 = 3_600_000;
    /// One day (24 hours).
    pub const DAY: i64 = 86_400_000;

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses an ISO 8601 / RFC 3339 date-time with an offset (`Z` or `+08:00`).
    ///
    /// A date-time without an offset is read as UTC; a bare date (`2024-03-01`) as its
    /// midnight UTC. Returns `None` when the text is none of these.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Some(Timestamp(dt.timestamp_millis()));
        }
        // Lenient forms seen in exports: a space instead of `T`, no offset, a bare date.
        let normalised = text.replacen(' ', "T", 1);
        if let Ok(dt) = DateTime::parse_from_rfc3339(&normalised) {
            return Some(Timestamp(dt.timestamp_millis()));
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
            if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(&normalised, format) {
                return Some(Timestamp(naive.and_utc().timestamp_millis()));
            }
        }
        for format in ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"] {
            if let Ok(date) = chrono::NaiveDate::parse_from_str(text, format) {
                return Some(Timestamp(
                    date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis(),
                ));
            }
        }
        None
    }

    /// Formats as RFC 3339 in UTC with millisecond precision (`2024-03-01T08:00:00.000Z`).
    pub fn to_rfc3339(self) -> String {
        match Utc.timestamp_millis_opt(self.0).single() {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("@{}ms", self.0),
        }
    }

    /// This timestamp moved by `millis` (saturating).
    pub fn add_millis(self, millis: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The source of "now". Injected everywhere; nothing deeper than the binary reads the wall
/// clock itself.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }
}

/// A clock that stands still until moved; for tests and simulations.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> Self {
        FixedClock(AtomicI64::new(at.0))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_sdks_send() {
        let a = Timestamp::parse("2026-11-23T17:28:39.491+00:00").unwrap();
        let b = Timestamp::parse("2026-11-23T17:28:39.491Z").unwrap();
        let c = Timestamp::parse("2026-11-24T01:28:39.491+08:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.to_rfc3339(), "2026-11-23T17:28:39.491Z");
        let micros = Timestamp::parse("2026-11-23T17:28:40.679383+00:00").unwrap();
        assert_eq!(micros.millis() % 1000, 679);
    }

    #[test]
    fn parses_export_forms_and_rejects_garbage() {
        assert_eq!(
            Timestamp::parse("1997-01-01").unwrap(),
            Timestamp::parse("1997-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            Timestamp::parse("19970101").unwrap(),
            Timestamp::parse("1997-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            Timestamp::parse("2024-03-01 08:30:00").unwrap(),
            Timestamp::parse("2024-03-01T08:30:00Z").unwrap()
        );
        assert!(Timestamp::parse("yesterday").is_none());
        assert!(Timestamp::parse("").is_none());
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let clock = FixedClock::new(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.advance(500);
        assert_eq!(clock.now(), Timestamp(1_500));
    }
}
