//! Calendar and clock of the simulated shop: Asia/Shanghai local time (UTC+8, no daylight
//! saving since 1991), the hour-of-day profile of shoppers, weekdays and shopping festivals,
//! and the table that spreads arrivals over the window.
//!
//! Integer civil-date arithmetic (no time-zone database) keeps this fast and the same on every
//! machine.

use crate::rng::{hash, tag, unit_of};

/// One day in milliseconds.
pub(crate) const DAY: i64 = 86_400_000;
/// One hour in milliseconds.
pub(crate) const HOUR: i64 = 3_600_000;
/// One second in milliseconds.
pub(crate) const SECOND: i64 = 1_000;
/// One minute in milliseconds.
pub(crate) const MINUTE: i64 = 60_000;
/// One week in milliseconds (the time unit of the BG/NBD parameters).
pub(crate) const WEEK: i64 = 7 * DAY;
/// Offset of Asia/Shanghai from UTC.
pub(crate) const SHANGHAI_OFFSET: i64 = 8 * HOUR;

/// Relative activity per local hour (0 h … 23 h) of a Chinese shopping app: a morning rise, a
/// lunch bump, and the evening peak around 21 h that continues past midnight.
const HOURLY: [f64; 24] = [
    3.0, 1.6, 0.8, 0.5, 0.4, 0.5, 1.0, 2.2, 3.2, 3.8, 4.2, 4.4, 5.2, 4.8, 4.2, 4.2, 4.3, 4.5, 5.0,
    6.0, 7.2, 7.8, 6.8, 4.8,
];

/// Relative activity Monday … Sunday.
const WEEKDAY: [f64; 7] = [0.94, 0.93, 0.95, 0.97, 1.02, 1.10, 1.09];

/// Chinese New Year's day (month, day) for 2015 … 2035.
const SPRING_FESTIVAL: [(u32, u32); 21] = [
    (2, 19),
    (2, 8),
    (1, 28),
    (2, 16),
    (2, 5),
    (1, 25),
    (2, 12),
    (2, 1),
    (1, 22),
    (2, 10),
    (1, 29),
    (2, 17),
    (2, 6),
    (1, 26),
    (2, 13),
    (2, 3),
    (1, 23),
    (2, 11),
    (1, 31),
    (2, 19),
    (2, 8),
];

/// Arrivals per day grow linearly over the window: the last day sees `1 + ARRIVAL_GROWTH`
/// times the arrivals of the first (before weekday and festival effects).
const ARRIVAL_GROWTH: f64 = 2.0;

/// A date in the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

/// The civil date of a day number (days since 1970-01-01).
pub(crate) fn civil_from_days(days: i64) -> Civil {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil { year, month, day }
}

/// The day number (days since 1970-01-01) of a civil date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Shanghai-local day number of an instant.
pub(crate) fn local_day(ms: i64) -> i64 {
    (ms + SHANGHAI_OFFSET).div_euclid(DAY)
}

/// Milliseconds since local midnight of an instant.
pub(crate) fn local_time_of_day(ms: i64) -> i64 {
    (ms + SHANGHAI_OFFSET).rem_euclid(DAY)
}

/// Writes `YYYY-MM-DDTHH:MM:SS+08:00` (Shanghai local time, whole seconds) into `out`.
pub(crate) fn write_local_datetime(out: &mut Vec<u8>, ms: i64) {
    let civil = civil_from_days(local_day(ms));
    let secs = local_time_of_day(ms) / 1_000;
    push_padded(out, civil.year.max(0) as u64, 4);
    out.push(b'-');
    push_padded(out, u64::from(civil.month), 2);
    out.push(b'-');
    push_padded(out, u64::from(civil.day), 2);
    out.push(b'T');
    push_padded(out, (secs / 3_600) as u64, 2);
    out.push(b':');
    push_padded(out, (secs / 60 % 60) as u64, 2);
    out.push(b':');
    push_padded(out, (secs % 60) as u64, 2);
    out.extend_from_slice(b"+08:00");
}

/// Writes `value` in decimal, left-padded with zeros to at least `width` digits (at most 20).
pub(crate) fn push_padded(out: &mut Vec<u8>, mut value: u64, width: usize) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [b'0'; 20];
    let mut at = 20;
    while value >= 100 {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if value >= 10 {
        let pair = value as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + value as u8;
    }
    let start = at.min(20 - width.min(20));
    out.extend_from_slice(&digits[start..]);
}

/// How busy a local day is relative to an ordinary Thursday: weekday, Spring Festival lull,
/// the 618 and Double 11 shopping festivals, Double 12 and the National Day holiday.
pub(crate) fn day_weight(day: i64) -> f64 {
    let civil = civil_from_days(day);
    let weekday = WEEKDAY[(day + 3).rem_euclid(7) as usize];
    let festival = match (civil.month, civil.day) {
        (6, 18) => 1.9,
        (6, 1..=17) => 1.2,
        (11, 11) => 2.4,
        (10, 31) | (11, 1..=10) => 1.3,
        (12, 12) => 1.4,
        (10, 1..=7) => 0.9,
        _ => 1.0,
    };
    let spring = match spring_festival(civil.year) {
        Some(new_year) if (-1..=6).contains(&(day - new_year)) => 0.65,
        _ => 1.0,
    };
    weekday * festival * spring
}

/// The day number of Chinese New Year in `year`, for the years the table covers.
fn spring_festival(year: i64) -> Option<i64> {
    let at = usize::try_from(year - 2015).ok()?;
    let (month, day) = *SPRING_FESTIVAL.get(at)?;
    Some(days_from_civil(year, month, day))
}

/// The hour-of-day profile as a cumulative distribution over one local day.
#[derive(Debug, Clone)]
pub(crate) struct Diurnal {
    /// `cum[h]` is the share of activity before local hour `h`; `cum[24] == 1`.
    cum: [f64; 25],
    /// `start[b]`: the hour holding quantile `b / BUCKETS`, where a search may begin.
    start: [u8; DIURNAL_BUCKETS],
}

/// Buckets of the quantile lookup tables (a search then takes a step or two).
const DIURNAL_BUCKETS: usize = 128;
const ARRIVAL_BUCKETS_PER_DAY: usize = 4;

/// The index `i` with `cum[i] <= q < cum[i + 1]`, scanning forward from `from`, at most `last`.
fn scan(cum: &[f64], q: f64, from: usize, last: usize) -> usize {
    let mut i = from;
    while i < last && cum[i + 1] <= q {
        i += 1;
    }
    i
}

impl Diurnal {
    pub(crate) fn new() -> Self {
        let total: f64 = HOURLY.iter().sum();
        let mut cum = [0.0; 25];
        for h in 0..24 {
            cum[h + 1] = cum[h] + HOURLY[h] / total;
        }
        cum[24] = 1.0;
        let start = std::array::from_fn(|b| {
            let q = b as f64 / DIURNAL_BUCKETS as f64;
            cum[1..].partition_point(|c| *c <= q).min(23) as u8
        });
        Diurnal { cum, start }
    }

    /// The share of a day's activity before local time of day `tod` (ms).
    fn cdf(&self, tod: i64) -> f64 {
        let h = (tod / HOUR) as usize;
        let frac = (tod % HOUR) as f64 / HOUR as f64;
        self.cum[h] + frac * (self.cum[h + 1] - self.cum[h])
    }

    /// The local time of day (ms) below which a share `q` of the day's activity falls.
    fn inverse(&self, q: f64) -> i64 {
        let bucket = ((q * DIURNAL_BUCKETS as f64) as usize).min(DIURNAL_BUCKETS - 1);
        let h = scan(&self.cum, q, usize::from(self.start[bucket]), 23);
        let width = self.cum[h + 1] - self.cum[h];
        let frac = if width > 0.0 {
            (q - self.cum[h]) / width
        } else {
            0.0
        };
        ((h as f64 + frac.clamp(0.0, 1.0)) * HOUR as f64) as i64
    }

    /// A point of the 24-hour slot starting at `slot_start`, at quantile `v` of the shoppers'
    /// hour-of-day profile. Increasing in `v`; the result lies in `[slot_start, slot_start +
    /// DAY)` whatever local time the slot begins at.
    pub(crate) fn place(&self, slot_start: i64, v: f64) -> i64 {
        let offset = local_time_of_day(slot_start);
        let mut q = self.cdf(offset) + v;
        if q >= 1.0 {
            q -= 1.0;
        }
        let x = (self.inverse(q) - offset).rem_euclid(DAY);
        slot_start + x.min(DAY - 1)
    }
}

/// The window's days, each with its calendar weight, and the cumulative arrival curve.
#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    pub start: i64,
    pub end: i64,
    /// Per 24-hour slot of the window: weekday × festival × a day's own noise.
    weights: Vec<f64>,
    /// The largest entry of `weights`.
    pub max_weight: f64,
    /// The mean entry of `weights`.
    pub mean_weight: f64,
    /// Cumulative arrival share at the start of each slot; `arrival_cum[days] == 1`.
    arrival_cum: Vec<f64>,
    /// `arrival_start[b]`: the slot holding arrival quantile `b / arrival_start.len()`.
    arrival_start: Vec<u32>,
    pub diurnal: Diurnal,
}

impl Calendar {
    pub(crate) fn new(seed: u64, start: i64, days: u32) -> Self {
        let n = days as usize;
        let mut weights = Vec::with_capacity(n);
        let mut arrival_cum = Vec::with_capacity(n + 1);
        arrival_cum.push(0.0);
        for k in 0..n {
            let mid = start + k as i64 * DAY + DAY / 2;
            let day = local_day(mid);
            // Each day gets its own ±15 % (weather, news, a post that went viral).
            let noise = 0.85 + 0.3 * unit_of(hash(seed, day as u64, tag::DAY_NOISE));
            let w = day_weight(day) * noise;
            weights.push(w);
            let growth = 1.0 + ARRIVAL_GROWTH * (k as f64 + 0.5) / n as f64;
            let last = arrival_cum[k];
            arrival_cum.push(last + w * growth);
        }
        let total = arrival_cum[n].max(f64::MIN_POSITIVE);
        for c in &mut arrival_cum {
            *c /= total;
        }
        arrival_cum[n] = 1.0;
        let buckets = n * ARRIVAL_BUCKETS_PER_DAY;
        let arrival_start = (0..buckets)
            .map(|b| {
                let q = b as f64 / buckets as f64;
                arrival_cum[1..].partition_point(|c| *c <= q).min(n - 1) as u32
            })
            .collect();
        let max_weight = weights.iter().copied().fold(0.0, f64::max);
        let mean_weight = weights.iter().sum::<f64>() / n.max(1) as f64;
        Calendar {
            start,
            end: start + i64::from(days) * DAY,
            weights,
            max_weight,
            mean_weight,
            arrival_cum,
            arrival_start,
            diurnal: Diurnal::new(),
        }
    }

    /// The instant at quantile `y` ∈ [0, 1) of the arrival curve; increasing in `y`.
    pub(crate) fn arrival_at(&self, y: f64) -> i64 {
        let days = self.weights.len();
        let buckets = self.arrival_start.len();
        let bucket = ((y * buckets as f64) as usize).min(buckets - 1);
        let k = scan(
            &self.arrival_cum,
            y,
            self.arrival_start[bucket] as usize,
            days - 1,
        );
        let width = self.arrival_cum[k + 1] - self.arrival_cum[k];
        let v = if width > 0.0 {
            ((y - self.arrival_cum[k]) / width).clamp(0.0, 1.0 - 1e-12)
        } else {
            0.0
        };
        let slot_start = self.start + k as i64 * DAY;
        self.diurnal.place(slot_start, v)
    }

    /// The calendar weight of the slot holding instant `t`, relative to the busiest slot.
    pub(crate) fn busyness(&self, t: i64) -> f64 {
        let k = ((t - self.start).div_euclid(DAY)).clamp(0, self.weights.len() as i64 - 1);
        self.weights[k as usize] / self.max_weight
    }

    /// Moves `t` to a shopper-like time of day within its own 24-hour slot of the window, using
    /// quantile `v`. If that lands before `floor`, `t` is kept as it is.
    pub(crate) fn to_shopping_hour(&self, t: i64, v: f64, floor: i64) -> i64 {
        let k = (t - self.start).div_euclid(DAY);
        let placed = self.diurnal.place(self.start + k * DAY, v);
        if placed < floor { t } else { placed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 10_957, 20_089, 20_454, 2_000_000] {
            let c = civil_from_days(days);
            assert_eq!(days_from_civil(c.year, c.month, c.day), days);
        }
        assert_eq!(
            civil_from_days(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1
            }
        );
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(2025, 1, 1), 20_089);
    }

    #[test]
    fn numbers_are_written_padded() {
        for (value, width, text) in [
            (0, 1, "0"),
            (7, 2, "07"),
            (42, 1, "42"),
            (100, 4, "0100"),
            (12_345, 2, "12345"),
            (u64::MAX, 1, "18446744073709551615"),
        ] {
            let mut out = Vec::new();
            push_padded(&mut out, value, width);
            assert_eq!(out, text.as_bytes(), "{value}");
        }
    }

    #[test]
    fn local_time_formats_in_shanghai() {
        let mut out = Vec::new();
        // 2024-12-31T16:00:00Z is midnight on 1 January 2025 in Shanghai.
        write_local_datetime(&mut out, 1_735_660_800_000 + 3_723_000);
        assert_eq!(String::from_utf8(out).unwrap(), "2025-01-01T01:02:03+08:00");
    }

    #[test]
    fn diurnal_placement_is_monotone_and_stays_in_slot() {
        let d = Diurnal::new();
        for slot_start in [
            0,
            5 * HOUR + 17,
            1_735_660_800_000,
            1_735_660_800_000 + 13 * HOUR,
        ] {
            let mut last = slot_start;
            for i in 0..1_000 {
                let t = d.place(slot_start, f64::from(i) / 1_000.0);
                assert!(t >= last && t < slot_start + DAY, "{slot_start} {i} {t}");
                last = t;
            }
        }
    }

    #[test]
    fn evenings_are_busier_than_nights() {
        let d = Diurnal::new();
        let slot = 1_735_660_800_000; // local midnight
        let mut evening = 0;
        let mut night = 0;
        for i in 0..10_000 {
            let h = local_time_of_day(d.place(slot, f64::from(i) / 10_000.0)) / HOUR;
            match h {
                19..=22 => evening += 1,
                2..=5 => night += 1,
                _ => {}
            }
        }
        assert!(evening > 8 * night, "{evening} {night}");
    }

    #[test]
    fn festivals_and_spring_festival_show() {
        let double_11 = days_from_civil(2025, 11, 11);
        let ordinary = days_from_civil(2025, 11, 20);
        let new_year = days_from_civil(2025, 1, 29);
        assert!(day_weight(double_11) > 2.0 * day_weight(ordinary));
        assert!(day_weight(new_year) < day_weight(ordinary));
    }

    #[test]
    fn bucketed_lookups_agree_with_binary_search() {
        let cal = Calendar::new(9, 1_735_660_800_000, 365);
        let d = &cal.diurnal;
        for i in 0..100_000 {
            let q = f64::from(i) / 100_000.0;
            let bucket = ((q * DIURNAL_BUCKETS as f64) as usize).min(DIURNAL_BUCKETS - 1);
            let fast = scan(&d.cum, q, usize::from(d.start[bucket]), 23);
            assert_eq!(fast, d.cum[1..].partition_point(|c| *c <= q).min(23), "{q}");
            let buckets = cal.arrival_start.len();
            let bucket = ((q * buckets as f64) as usize).min(buckets - 1);
            let fast = scan(&cal.arrival_cum, q, cal.arrival_start[bucket] as usize, 364);
            let slow = cal.arrival_cum[1..].partition_point(|c| *c <= q).min(364);
            assert_eq!(fast, slow, "{q}");
        }
    }

    #[test]
    fn arrivals_are_increasing_and_in_window() {
        let cal = Calendar::new(1, 1_735_660_800_000 + 5 * HOUR, 30);
        let mut last = cal.start;
        for i in 0..3_000 {
            let t = cal.arrival_at(f64::from(i) / 3_000.0);
            assert!(t >= last && t < cal.end);
            last = t;
        }
    }
}
