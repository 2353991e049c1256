//! Trends, North Star, NPS and funnel exclusion steps against naive implementations of their
//! definitions: every event's period from its own zoned time (jiff, per event), plain maps
//! and sets, brute-force enumeration of funnel attempts, and a normal-equations solve with an
//! explicit intercept column for the attribution.

#![allow(
    clippy::needless_range_loop,
    reason = "the naive references index as their definitions read"
)]

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use lodestar_analytics::funnel::{FunnelExclusion, FunnelOrder, FunnelQuery};
use lodestar_analytics::north_star::{
    NamedSeries, NorthStarQuery, NorthStarSpec, north_star, regress,
};
use lodestar_analytics::nps::{NpsQuery, NpsSpec, nps};
use lodestar_analytics::trends::{Math, Series, TrendInterval, TrendsQuery, TrendsSpec, trends};
use lodestar_analytics::{Calendar, Interval, VecSource, funnel};
use lodestar_core::PersonId;
use proptest::prelude::*;

const HOUR: i64 = 3_600_000;
/// 2026-03-01T00:00:00Z: a week before the US clocks go forward.
const SPRING: i64 = 1_772_323_200_000;
/// 2026-10-20T00:00:00Z: twelve days before the US clocks go back.
const FALL: i64 = 1_792_454_400_000;
const NAMES: [&str; 4] = ["A", "B", "C", "D"];

type Row = (u64, i64, &'static str, f64);

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        (0i32..=10).prop_map(f64::from),
        (-4i32..30).prop_map(|v| v as f64 / 2.0),
        Just(f64::INFINITY),
    ]
}

/// Rows over 20 days from `base`: whole hours (period edges in all three zones), or a
/// millisecond either side of one, or half past.
fn rows_from(base: i64, names: &'static [&'static str]) -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            1u64..9,
            0i64..(20 * 24),
            prop_oneof![Just(0i64), Just(0), Just(1), Just(-1), Just(HOUR / 2)],
            0..names.len(),
            value(),
        )
            .prop_map(move |(p, h, off, n, v)| (p, base + h * HOUR + off, names[n], v)),
        0..90,
    )
}

fn rows() -> impl Strategy<Value = (i64, Vec<Row>)> {
    prop_oneof![Just(SPRING), Just(FALL)]
        .prop_flat_map(|base| (Just(base), rows_from(base, &NAMES)))
}

fn zone() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("UTC"), Just("Asia/Shanghai"), Just("America/New_York")]
}

/// Rows per person in time order, ties in input order (as `VecSource` keeps them).
fn by_person(rows: &[Row]) -> BTreeMap<u64, Vec<(i64, &'static str, f64)>> {
    let mut m: BTreeMap<u64, Vec<(i64, &'static str, f64)>> = BTreeMap::new();
    for &(p, t, n, v) in rows {
        m.entry(p).or_default().push((t, n, v));
    }
    for v in m.values_mut() {
        v.sort_by_key(|e| e.0);
    }
    m
}

fn date_of_base(base: i64, days: i64) -> Date {
    let d = jiff::Timestamp::from_millisecond(base)
        .unwrap()
        .to_zoned(TimeZone::UTC)
        .date();
    d.checked_add(jiff::Span::new().days(days)).unwrap()
}

fn zoned(tz: &str, ms: i64) -> jiff::Zoned {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(TimeZone::get(tz).unwrap())
}

fn day_start(tz: &str, d: Date) -> i64 {
    d.to_zoned(TimeZone::get(tz).unwrap())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

/// The label of the period holding `ms`, from its own zoned time.
fn naive_label(tz: &str, interval: TrendInterval, ms: i64) -> String {
    let z = zoned(tz, ms);
    let d = z.date();
    match interval {
        TrendInterval::Hour => z
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        TrendInterval::Day => d.to_string(),
        TrendInterval::Week => {
            let back = d.weekday().to_monday_zero_offset() as i64;
            d.checked_sub(jiff::Span::new().days(back))
                .unwrap()
                .to_string()
        }
        TrendInterval::Month => jiff::civil::date(d.year(), d.month(), 1).to_string(),
    }
}

/// Every label the range should show, in order.
fn naive_labels(tz: &str, interval: TrendInterval, from: Date, to: Date) -> Vec<String> {
    let begin = day_start(tz, from);
    let end = day_start(tz, to.checked_add(jiff::Span::new().days(1)).unwrap());
    let mut out: Vec<String> = Vec::new();
    // All three zones' clock hours are whole UTC hours.
    let mut t = begin;
    while t < end {
        let l = naive_label(tz, interval, t);
        if out.last() != Some(&l) {
            out.push(l);
        }
        t += HOUR;
    }
    out
}

fn naive_math(math: Math, events: &[(u64, f64)]) -> Option<f64> {
    let persons: BTreeSet<u64> = events.iter().map(|e| e.0).collect();
    let vals: Vec<f64> = events
        .iter()
        .map(|e| e.1)
        .filter(|v| v.is_finite())
        .collect();
    match math {
        Math::Total => Some(events.len() as f64),
        Math::Unique => Some(persons.len() as f64),
        Math::PerPersonAvg => {
            if persons.is_empty() {
                None
            } else {
                Some(events.len() as f64 / persons.len() as f64)
            }
        }
        Math::Sum => Some(vals.iter().sum()),
        Math::Avg => {
            if vals.is_empty() {
                None
            } else {
                Some(vals.iter().sum::<f64>() / vals.len() as f64)
            }
        }
        Math::Min => vals.iter().copied().reduce(f64::min),
        Math::Max => vals.iter().copied().reduce(f64::max),
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())),
        _ => false,
    }
}

fn interval_strategy() -> impl Strategy<Value = TrendInterval> {
    prop_oneof![
        Just(TrendInterval::Hour),
        Just(TrendInterval::Day),
        Just(TrendInterval::Week),
        Just(TrendInterval::Month)
    ]
}

fn math_strategy() -> impl Strategy<Value = Math> {
    prop_oneof![
        Just(Math::Total),
        Just(Math::Unique),
        Just(Math::PerPersonAvg),
        Just(Math::Sum),
        Just(Math::Avg),
        Just(Math::Min),
        Just(Math::Max)
    ]
}

fn series_strategy() -> impl Strategy<Value = Vec<Series>> {
    proptest::collection::vec(
        (
            prop_oneof![
                Just(None),
                Just(Some("A")),
                Just(Some("B")),
                Just(Some("nobody"))
            ],
            math_strategy(),
        )
            .prop_map(|(e, math)| Series {
                event: e.map(str::to_string),
                math,
            }),
        1..4,
    )
}

/// (from, to) dates: up to 19 days after the base, up to 12 days long.
fn dates(base: i64, from_d: i64, len_d: i64) -> (Date, Date) {
    let from = date_of_base(base, from_d);
    (
        from,
        from.checked_add(jiff::Span::new().days(len_d)).unwrap(),
    )
}

/// One naive trends answer: per (series, breakdown value) the labelled values and total.
type NaiveTrend =
    BTreeMap<(usize, Option<String>), (BTreeMap<String, Vec<(u64, f64)>>, Vec<(u64, f64)>)>;

fn naive_trends(
    rows: &[Row],
    tz: &str,
    interval: TrendInterval,
    from: Date,
    to: Date,
    series: &[Series],
    breakdown: Option<usize>,
) -> NaiveTrend {
    let begin = day_start(tz, from);
    let end = day_start(tz, to.checked_add(jiff::Span::new().days(1)).unwrap());
    let inside: Vec<&Row> = rows.iter().filter(|r| r.1 >= begin && r.1 < end).collect();
    // The breakdown's groups.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &inside {
        *counts.entry(r.2).or_default() += 1;
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let group = |name: &str| -> String {
        let n = breakdown.unwrap();
        match ranked.iter().position(|r| r.0 == name) {
            Some(i) if i < n => name.to_string(),
            _ => "$other".to_string(),
        }
    };
    let mut out: NaiveTrend = BTreeMap::new();
    for (s, ser) in series.iter().enumerate() {
        let split = ser.event.is_none() && breakdown.is_some();
        if !split {
            out.entry((s, None)).or_default();
        } else {
            for (name, _) in &ranked {
                out.entry((s, Some(group(name)))).or_default();
            }
        }
        for r in &inside {
            if ser.event.as_deref().is_some_and(|e| e != r.2) {
                continue;
            }
            let key = (s, split.then(|| group(r.2)));
            let entry = out.entry(key).or_default();
            entry
                .0
                .entry(naive_label(tz, interval, r.1))
                .or_default()
                .push((r.0, r.3));
            entry.1.push((r.0, r.3));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn trends_match_a_per_event_count(
        (base, rows) in rows(),
        tz in zone(),
        interval in interval_strategy(),
        series in series_strategy(),
        breakdown in prop_oneof![Just(None), (1usize..4).prop_map(Some)],
        from_d in 0i64..12,
        len_d in 0i64..8,
    ) {
        let (from, to) = dates(base, from_d, if interval == TrendInterval::Hour { len_d.min(2) } else { len_d });
        let src = VecSource::with_values(rows.iter().copied());
        let want = naive_trends(&rows, tz, interval, from, to, &series, breakdown);
        let labels = naive_labels(tz, interval, from, to);
        for threads in [1, 3] {
            let q = TrendsQuery {
                series: series.clone(), interval, calendar: Calendar::new(tz).unwrap(),
                from, to, breakdown_limit: breakdown, threads,
            };
            let got = trends(&src, &q).unwrap();
            prop_assert_eq!(&got.labels, &labels);
            let keys: BTreeSet<(usize, Option<String>)> = got.series.iter().map(|s| (s.series, s.breakdown_value.clone())).collect();
            prop_assert_eq!(keys.len(), got.series.len());
            prop_assert_eq!(&keys, &want.keys().cloned().collect::<BTreeSet<_>>());
            for s in &got.series {
                let (periods, total) = &want[&(s.series, s.breakdown_value.clone())];
                let math = series[s.series].math;
                prop_assert_eq!(&s.labels, &labels);
                for (i, l) in labels.iter().enumerate() {
                    let w = naive_math(math, periods.get(l).map_or(&[][..], |v| v));
                    prop_assert!(close(s.values[i], w), "series {} {:?} at {}: got {:?}, want {:?}", s.series, s.breakdown_value, l, s.values[i], w);
                }
                // Every naive event falls in a shown period.
                for l in periods.keys() {
                    prop_assert!(labels.contains(l), "{} not shown", l);
                }
                let w = naive_math(math, total);
                prop_assert!(close(s.total, w), "total of series {}: got {:?}, want {:?}", s.series, s.total, w);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// NPS

fn nps_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (0i32..=10).prop_map(f64::from),
        1 => Just(f64::NAN),
        1 => prop_oneof![Just(-1.0), Just(11.0), Just(7.5), Just(f64::INFINITY)],
    ]
}

fn nps_rows() -> impl Strategy<Value = (i64, Vec<Row>)> {
    prop_oneof![Just(SPRING), Just(FALL)].prop_flat_map(|base| {
        (
            Just(base),
            proptest::collection::vec(
                (
                    1u64..9,
                    0i64..(40 * 24),
                    prop_oneof![Just(0i64), Just(-1), Just(1)],
                    prop_oneof![4 => Just("NPS Survey Answered"), 1 => Just("A")],
                    nps_value(),
                )
                    .prop_map(move |(p, h, off, n, v)| (p, base + h * HOUR + off, n, v)),
                0..80,
            ),
        )
    })
}

/// Promoters, passives, detractors, invalid.
fn naive_nps_row(scores: &BTreeMap<u64, f64>, invalid: u64) -> [u64; 4] {
    let mut c = [0, 0, 0, invalid];
    for &s in scores.values() {
        c[if s >= 9.0 {
            0
        } else if s >= 7.0 {
            1
        } else {
            2
        }] += 1;
    }
    c
}

/// 100 · (p − d) / r to one decimal, half away from zero, in integers.
fn naive_score(p: u64, d: u64, r: u64) -> Option<f64> {
    if r == 0 {
        return None;
    }
    let n = (p as i64 - d as i64) * 1000;
    let r = r as i64;
    let tenths = if n >= 0 {
        (2 * n + r) / (2 * r)
    } else {
        -((-2 * n + r) / (2 * r))
    };
    Some(tenths as f64 / 10.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn nps_matches_last_answer_per_person(
        (base, rows) in nps_rows(),
        tz in zone(),
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week), Just(Interval::Month)],
        seg_a in proptest::collection::vec(0u64..10, 0..6),
        seg_b in proptest::collection::vec(0u64..10, 0..6),
        from_d in 0i64..20,
        len_d in 0i64..25,
    ) {
        let (from, to) = dates(base, from_d, len_d);
        let src = VecSource::with_values(rows.iter().copied());
        let segments: BTreeMap<String, Vec<PersonId>> = [
            ("a".to_string(), seg_a.iter().map(|&p| PersonId(p)).collect()),
            ("b".to_string(), seg_b.iter().map(|&p| PersonId(p)).collect()),
        ].into_iter().collect();
        let ti = match interval { Interval::Day => TrendInterval::Day, Interval::Week => TrendInterval::Week, Interval::Month => TrendInterval::Month, Interval::Year => unreachable!("not drawn") };
        let labels = naive_labels(tz, ti, from, to);
        let begin = day_start(tz, from);
        let end = day_start(tz, to.checked_add(jiff::Span::new().days(1)).unwrap());
        let valid = |v: f64| (0.0..=10.0).contains(&v) && v.fract() == 0.0;
        for threads in [1, 3] {
            let q = NpsQuery {
                event: "NPS Survey Answered".into(), interval, calendar: Calendar::new(tz).unwrap(),
                from, to, segments: segments.clone(), threads,
            };
            let got = nps(&src, &q).unwrap();
            let groups: Vec<(&lodestar_analytics::nps::NpsGroup, Option<BTreeSet<u64>>)> =
                std::iter::once((&got.all, None))
                    .chain(got.segments.iter().map(|g| {
                        let ids = if g.segment.as_deref() == Some("a") { &seg_a } else { &seg_b };
                        (g, Some(ids.iter().copied().collect()))
                    }))
                    .collect();
            prop_assert_eq!(got.segments.len(), 2);
            for (g, members) in groups {
                // (period label) -> person -> last valid score; invalid answers per period.
                let mut last: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
                let mut invalid: BTreeMap<String, u64> = BTreeMap::new();
                let mut overall: BTreeMap<u64, f64> = BTreeMap::new();
                let mut overall_invalid = 0;
                for (p, ev) in by_person(&rows) {
                    if members.as_ref().is_some_and(|m| !m.contains(&p)) { continue; }
                    for (t, n, v) in ev {
                        if n != "NPS Survey Answered" || t < begin || t >= end { continue; }
                        let l = naive_label(tz, ti, t);
                        if valid(v) {
                            last.entry(l).or_default().insert(p, v);
                            overall.insert(p, v);
                        } else {
                            *invalid.entry(l).or_default() += 1;
                            overall_invalid += 1;
                        }
                    }
                }
                let dates: Vec<String> = g.periods.iter().map(|r| r.date.clone()).collect();
                prop_assert_eq!(&dates, &labels);
                for r in &g.periods {
                    let w = naive_nps_row(last.get(&r.date).unwrap_or(&BTreeMap::new()), invalid.get(&r.date).copied().unwrap_or(0));
                    prop_assert_eq!([r.promoters, r.passives, r.detractors, r.invalid], w, "{:?} {}", g.segment, r.date);
                    prop_assert_eq!(r.responses, w[0] + w[1] + w[2]);
                    prop_assert_eq!(r.nps, naive_score(w[0], w[2], w[0] + w[1] + w[2]));
                }
                let w = naive_nps_row(&overall, overall_invalid);
                let t = &g.total;
                prop_assert_eq!([t.promoters, t.passives, t.detractors, t.invalid], w);
                prop_assert_eq!(t.nps, naive_score(w[0], w[2], w[0] + w[1] + w[2]));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Funnel exclusion steps

const FNAMES: [&str; 5] = ["A", "B", "C", "X", "D"];

/// Whether a chain (indices into `ev`) of `m` steps is disqualified.
fn spoiled(ev: &[(i64, &str)], chain: &[usize], ex: &[FunnelExclusion], w: i64) -> bool {
    let m = chain.len();
    ex.iter().any(|x| {
        if x.from_step >= m {
            return false;
        }
        let after = chain[x.from_step];
        (after + 1..ev.len()).any(|j| {
            ev[j].1 == x.event
                && if x.to_step < m {
                    j < chain[x.to_step]
                } else {
                    ev[j].0 - ev[chain[0]].0 <= w
                }
        })
    })
}

/// Every chain: indices i0 < i1 < … of the steps' events within the window of i0.
fn chains(ev: &[(i64, &str)], steps: &[&str], w: i64) -> Vec<Vec<usize>> {
    fn grow(
        ev: &[(i64, &str)],
        steps: &[&str],
        w: i64,
        chain: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        out.push(chain.clone());
        let k = chain.len();
        if k == steps.len() {
            return;
        }
        let t0 = ev[chain[0]].0;
        for j in chain[k - 1] + 1..ev.len() {
            if ev[j].1 == steps[k] && ev[j].0 - t0 <= w {
                chain.push(j);
                grow(ev, steps, w, chain, out);
                chain.pop();
            }
        }
    }
    let mut out = Vec::new();
    for i in 0..ev.len() {
        if ev[i].1 == steps[0] {
            grow(ev, steps, w, &mut vec![i], &mut out);
        }
    }
    out
}

/// Steps reached and time to convert, or `None` when the person is excluded.
fn naive_excluding(
    ev: &[(i64, &str)],
    steps: &[&str],
    ex: &[FunnelExclusion],
    w: i64,
) -> Option<(usize, Option<i64>)> {
    let all = chains(ev, steps, w);
    let most = all.iter().map(Vec::len).max().unwrap_or(0);
    if most == 0 {
        return Some((0, None));
    }
    let clean: Vec<&Vec<usize>> = all
        .iter()
        .filter(|c| c.len() == most && !spoiled(ev, c, ex, w))
        .collect();
    if clean.is_empty() {
        return None;
    }
    let ttc = if most == steps.len() {
        let end = clean.iter().map(|c| c[most - 1]).min().unwrap();
        let start = clean
            .iter()
            .filter(|c| c[most - 1] == end)
            .map(|c| ev[c[0]].0)
            .max()
            .unwrap();
        Some(ev[end].0 - start)
    } else {
        None
    };
    Some((most, ttc))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn funnel_exclusions_match_brute_force(
        rows in proptest::collection::vec(
            (1u64..8, 0i64..(2 * 24), prop_oneof![Just(0i64), Just(1)], 0usize..5)
                .prop_map(|(p, h, off, n)| (p, SPRING + h * HOUR + off, FNAMES[n])),
            0..70),
        steps in proptest::collection::vec(0usize..3, 2..5),
        raw_ex in proptest::collection::vec((3usize..5, 0usize..4, 1usize..4), 1..3),
        window_h in 1i64..16,
        from_h in 0i64..12,
        len_h in 1i64..(2 * 24),
    ) {
        let steps: Vec<&str> = steps.into_iter().map(|i| FNAMES[i]).collect();
        let ex: Vec<FunnelExclusion> = raw_ex
            .into_iter()
            .map(|(e, a, b)| {
                let from_step = a.min(steps.len() - 2);
                let to_step = (from_step + b).min(steps.len() - 1);
                FunnelExclusion { event: FNAMES[e].into(), from_step, to_step }
            })
            .collect();
        let src = VecSource::new(rows.iter().copied());
        let w = window_h * HOUR;
        let (from_ms, to_ms) = (SPRING + from_h * HOUR, SPRING + (from_h + len_h) * HOUR);
        let mut at_least = vec![0u64; steps.len()];
        let mut excluded = 0u64;
        let mut ttcs = Vec::new();
        let mut dropped = Vec::new();
        let mut persons: BTreeMap<u64, Vec<(i64, &str)>> = BTreeMap::new();
        for &(p, t, n) in &rows {
            persons.entry(p).or_default().push((t, n));
        }
        for (p, mut ev) in persons {
            ev.sort_by_key(|e| e.0);
            let ev: Vec<(i64, &str)> = ev.into_iter().filter(|e| e.0 >= from_ms && e.0 < to_ms).collect();
            if ev.is_empty() { continue; }
            match naive_excluding(&ev, &steps, &ex, w) {
                None => excluded += 1,
                Some((r, t)) => {
                    for k in 0..r { at_least[k] += 1; }
                    ttcs.extend(t);
                    if r == 1 { dropped.push(p); }
                }
            }
        }
        ttcs.sort();
        for threads in [1, 3] {
            let mut q = FunnelQuery::new(&steps, w, from_ms, to_ms);
            q.exclusions = ex.clone();
            q.threads = threads;
            q.dropped_at = Some(1);
            let got = funnel(&src, &q).unwrap();
            let persons: Vec<u64> = got.steps.iter().map(|s| s.persons).collect();
            prop_assert_eq!(&persons, &at_least);
            prop_assert_eq!(got.excluded, excluded);
            prop_assert_eq!(got.dropped_persons.iter().map(|p| p.0).collect::<Vec<_>>(), dropped.clone());
            let t = got.time_to_convert.unwrap();
            prop_assert_eq!(t.persons as usize, ttcs.len());
            if !ttcs.is_empty() {
                prop_assert_eq!(t.median_ms, ttcs[((ttcs.len() - 1) as f64 * 0.5).round() as usize]);
                let mean = ttcs.iter().map(|&v| v as f64).sum::<f64>() / ttcs.len() as f64;
                prop_assert!((t.mean_ms - mean).abs() < 1e-6 * (1.0 + mean));
            }
        }
    }
}

#[test]
fn funnel_exclusions_by_hand() {
    let h = |n: i64| SPRING + n * HOUR;
    let src = VecSource::new([
        // 1: A X B: the only attempt has X between A and B: excluded.
        (1, h(0), "A"),
        (1, h(1), "X"),
        (1, h(2), "B"),
        // 2: A B X: X after the conversion: converts.
        (2, h(0), "A"),
        (2, h(1), "B"),
        (2, h(2), "X"),
        // 3: A X A B: the second attempt is clean.
        (3, h(0), "A"),
        (3, h(1), "X"),
        (3, h(2), "A"),
        (3, h(3), "B"),
        // 4: A X, no B, X within the window: the attempt is disqualified.
        (4, h(0), "A"),
        (4, h(1), "X"),
        // 5: A, X after the window closed: an honest drop-off.
        (5, h(0), "A"),
        (5, h(30), "X"),
    ]);
    let mut q = FunnelQuery::new(&["A", "B"], 24 * HOUR, h(0), h(48));
    let plain = funnel(&src, &q).unwrap();
    assert_eq!(
        plain.steps.iter().map(|s| s.persons).collect::<Vec<_>>(),
        [5, 3]
    );
    assert_eq!(plain.excluded, 0);
    q.exclusions = vec![FunnelExclusion {
        event: "X".into(),
        from_step: 0,
        to_step: 1,
    }];
    let r = funnel(&src, &q).unwrap();
    assert_eq!(
        r.steps.iter().map(|s| s.persons).collect::<Vec<_>>(),
        [3, 2]
    );
    assert_eq!(r.excluded, 2);
    // Person 3 converts in 1 h (second A to B), person 2 in 1 h.
    assert_eq!(r.time_to_convert.unwrap().median_ms, HOUR);
}

#[test]
fn an_earlier_attempt_escapes_an_exclusion_a_later_one_meets() {
    // Window 10 h. Attempts A(0) B and A(5) B; X at 13 h is outside the first attempt's
    // window (it could no longer reach C) but inside the second's.
    let h = |n: i64| SPRING + n * HOUR;
    let src = VecSource::new([
        (1, h(0), "A"),
        (1, h(5), "A"),
        (1, h(6), "B"),
        (1, h(13), "X"),
    ]);
    let mut q = FunnelQuery::new(&["A", "B", "C"], 10 * HOUR, h(0), h(48));
    q.exclusions = vec![FunnelExclusion {
        event: "X".into(),
        from_step: 1,
        to_step: 2,
    }];
    let r = funnel(&src, &q).unwrap();
    assert_eq!(r.excluded, 0);
    assert_eq!(
        r.steps.iter().map(|s| s.persons).collect::<Vec<_>>(),
        [1, 1, 0]
    );
    // With X at 9 h both attempts could still go on: excluded.
    let src = VecSource::new([
        (1, h(0), "A"),
        (1, h(5), "A"),
        (1, h(6), "B"),
        (1, h(9), "X"),
    ]);
    assert_eq!(funnel(&src, &q).unwrap().excluded, 1);
}

#[test]
fn funnel_exclusion_parameters_name_the_field() {
    let src = VecSource::new([(1, SPRING, "A")]);
    let mut q = FunnelQuery::new(&["A", "B"], HOUR, SPRING, SPRING + HOUR);
    let x = |event: &str, from_step, to_step| FunnelExclusion {
        event: event.into(),
        from_step,
        to_step,
    };
    q.exclusions = vec![x("X", 0, 1), x("X", 0, 2)];
    assert_eq!(
        funnel(&src, &q).unwrap_err().field(),
        "exclusions[1].to_step"
    );
    q.exclusions = vec![x("X", 1, 1)];
    assert_eq!(
        funnel(&src, &q).unwrap_err().field(),
        "exclusions[0].from_step"
    );
    q.exclusions = vec![x("B", 0, 1)];
    assert_eq!(funnel(&src, &q).unwrap_err().field(), "exclusions[0].event");
    q.exclusions = vec![x("X", 0, 1)];
    q.order = FunnelOrder::Strict;
    assert_eq!(funnel(&src, &q).unwrap_err().field(), "exclusions");
    let spec: lodestar_analytics::spec::FunnelSpec = serde_json::from_str(
        r#"{"steps":["a","b"],"exclusions":[{"event":"x","from_step":0,"to_step":1}],"date_from":"2026-01-01","date_to":"2026-01-31"}"#,
    )
    .unwrap();
    assert_eq!(spec.query(1).unwrap().exclusions, vec![x("x", 0, 1)]);
}

// ---------------------------------------------------------------------------------------
// North Star

/// Least squares with an explicit intercept column: (X'X) β = X'y by Gauss–Jordan.
fn naive_ols(y: &[f64], xs: &[Vec<f64>]) -> Vec<f64> {
    let m = y.len();
    let k = xs.len() + 1;
    let col = |j: usize, t: usize| if j == 0 { 1.0 } else { xs[j - 1][t] };
    let mut a = vec![vec![0.0; k + 1]; k];
    for i in 0..k {
        for j in 0..k {
            a[i][j] = (0..m).map(|t| col(i, t) * col(j, t)).sum();
        }
        a[i][k] = (0..m).map(|t| col(i, t) * y[t]).sum();
    }
    for c in 0..k {
        let p = (c..k)
            .max_by(|&i, &j| a[i][c].abs().partial_cmp(&a[j][c].abs()).unwrap())
            .unwrap();
        a.swap(c, p);
        let d = a[c][c];
        for j in 0..=k {
            a[c][j] /= d;
        }
        for r in 0..k {
            if r != c {
                let f = a[r][c];
                for j in 0..=k {
                    a[r][j] -= f * a[c][j];
                }
            }
        }
    }
    (0..k).map(|i| a[i][k]).collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn near(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn attribution_matches_the_normal_equations(
        (k, m) in (0usize..4).prop_flat_map(|k| (Just(k), (k + 2)..14)),
        data in proptest::collection::vec(-10.0f64..10.0, 14 * 5),
        gaps in proptest::collection::vec(proptest::bool::weighted(0.1), 14),
    ) {
        let y: Vec<Option<f64>> = (0..m).map(|t| (!gaps[t]).then_some(data[t])).collect();
        let xs: Vec<Vec<Option<f64>>> = (0..k)
            .map(|j| (0..m).map(|t| Some(data[14 * (j + 1) + t])).collect())
            .collect();
        let names: Vec<String> = (0..k).map(|j| format!("d{j}")).collect();
        let refs: Vec<&[Option<f64>]> = xs.iter().map(|x| x.as_slice()).collect();
        let rows: Vec<usize> = (0..m).filter(|&t| y[t].is_some()).collect();
        let got = regress(&y, &refs, &names);
        if rows.len() < k + 1 || rows.len() < 2 {
            prop_assert!(got.is_err());
            return Ok(());
        }
        let got = got.unwrap();
        let yv: Vec<f64> = rows.iter().map(|&t| y[t].unwrap()).collect();
        let xv: Vec<Vec<f64>> = xs.iter().map(|x| rows.iter().map(|&t| x[t].unwrap()).collect()).collect();
        let beta = naive_ols(&yv, &xv);
        prop_assert_eq!(got.observations, rows.len());
        prop_assert!(near(got.intercept, beta[0], 1e-6), "{} vs {}", got.intercept, beta[0]);
        let fitted: Vec<f64> = (0..yv.len()).map(|t| beta[0] + (0..k).map(|j| beta[j + 1] * xv[j][t]).sum::<f64>()).collect();
        let my = yv.iter().sum::<f64>() / yv.len() as f64;
        let sst: f64 = yv.iter().map(|v| (v - my).powi(2)).sum();
        let ssr: f64 = yv.iter().zip(&fitted).map(|(a, b)| (a - b).powi(2)).sum();
        prop_assert!(near(got.r_squared, 1.0 - ssr / sst, 1e-6), "{} vs {}", got.r_squared, 1.0 - ssr / sst);
        let sd = |v: &[f64]| { let mv = v.iter().sum::<f64>() / v.len() as f64; v.iter().map(|x| (x - mv).powi(2)).sum::<f64>().sqrt() };
        let mut shares = 0.0;
        for j in 0..k {
            let d = &got.drivers[j];
            prop_assert!(near(d.coefficient, beta[j + 1], 1e-6), "b{} {} vs {}", j, d.coefficient, beta[j + 1]);
            prop_assert!(near(d.correlation, pearson(&xv[j], &yv), 1e-9));
            prop_assert!(near(d.standardized_coefficient, beta[j + 1] * sd(&xv[j]) / sd(&yv), 1e-6));
            shares += d.variance_share;
        }
        prop_assert!(near(shares, got.r_squared, 1e-9));
    }
}

#[test]
fn attribution_by_hand() {
    // Δmetric = 1 + 2·Δd1 + 3·Δd2 exactly.
    let d1 = [1.0, 0.0, 2.0, -1.0, 3.0, 1.0];
    let d2 = [0.0, 1.0, 1.0, 2.0, -2.0, 0.5];
    let y: Vec<Option<f64>> = (0..6)
        .map(|t| Some(1.0 + 2.0 * d1[t] + 3.0 * d2[t]))
        .collect();
    let x1: Vec<Option<f64>> = d1.iter().map(|&v| Some(v)).collect();
    let x2: Vec<Option<f64>> = d2.iter().map(|&v| Some(v)).collect();
    let a = regress(&y, &[&x1, &x2], &["d1".into(), "d2".into()]).unwrap();
    assert!((a.intercept - 1.0).abs() < 1e-9);
    assert!((a.drivers[0].coefficient - 2.0).abs() < 1e-9);
    assert!((a.drivers[1].coefficient - 3.0).abs() < 1e-9);
    assert!((a.r_squared - 1.0).abs() < 1e-9);
    // A driver that does not move: not identified.
    let flat: Vec<Option<f64>> = vec![Some(4.0); 6];
    assert!(regress(&y, &[&x1, &flat], &["d1".into(), "flat".into()]).is_err());
    // Collinear drivers: not identified.
    let twice: Vec<Option<f64>> = d1.iter().map(|&v| Some(2.0 * v)).collect();
    assert!(regress(&y, &[&x1, &twice], &["d1".into(), "twice".into()]).is_err());
}

#[test]
fn north_star_by_hand() {
    // Weeks (UTC, Monday) from 2026-03-02: orders by persons, and visits.
    let day = 24 * HOUR;
    let mon = SPRING + day; // 2026-03-02, a Monday
    let mut rows: Vec<(u64, i64, &str, f64)> = Vec::new();
    // Week 0: 2 buyers; week 1: 2 buyers; week 2: 3; week 3: 0; week 4: 1.
    for (w, buyers) in [(0i64, 2u64), (1, 2), (2, 3), (3, 0), (4, 1)] {
        for p in 0..buyers {
            rows.push((p + 1, mon + w * 7 * day + HOUR, "Order Completed", 10.0));
        }
        // Visits: 3 a buyer.
        for p in 0..buyers * 3 {
            rows.push((100 + p, mon + w * 7 * day + 2 * HOUR, "Visit", f64::NAN));
        }
    }
    let src = VecSource::with_values(rows.iter().copied());
    let q = NorthStarQuery {
        metric: NamedSeries {
            name: "buyers".into(),
            series: Series {
                event: Some("Order Completed".into()),
                math: Math::Unique,
            },
        },
        drivers: vec![NamedSeries {
            name: "visitors".into(),
            series: Series {
                event: Some("Visit".into()),
                math: Math::Unique,
            },
        }],
        interval: TrendInterval::Week,
        calendar: Calendar::utc(),
        from: jiff::civil::date(2026, 3, 2),
        to: jiff::civil::date(2026, 4, 5),
        threads: 2,
    };
    let r = north_star(&src, &q).unwrap();
    assert_eq!(r.labels[0], "2026-03-02");
    let v = |x: &[Option<f64>]| x.to_vec();
    assert_eq!(
        v(&r.metric.values),
        [Some(2.0), Some(2.0), Some(3.0), Some(0.0), Some(1.0)]
    );
    assert_eq!(
        v(&r.metric.change),
        [None, Some(0.0), Some(1.0), Some(-3.0), Some(1.0)]
    );
    // Relative change: null after a 0.
    assert_eq!(
        v(&r.metric.relative_change),
        [None, Some(0.0), Some(0.5), Some(-1.0), None]
    );
    assert_eq!(r.drivers[0].values[2], Some(9.0));
    // buyers = visitors / 3 exactly.
    let a = r.attribution.unwrap();
    assert_eq!(a.observations, 4);
    assert!((a.drivers[0].coefficient - 1.0 / 3.0).abs() < 1e-9);
    assert!((a.r_squared - 1.0).abs() < 1e-9);
    assert!((a.drivers[0].variance_share - 1.0).abs() < 1e-9);
}

#[test]
fn north_star_parameters_name_the_field() {
    let spec: NorthStarSpec = serde_json::from_str(
        r#"{"metric":{"event":"Order Completed"},
            "drivers":[{"name":"a","event":"A"},{"name":"b","event":"B"}],
            "interval":"week","date_from":"2026-03-02","date_to":"2026-03-15"}"#,
    )
    .unwrap();
    // Two weeks, two drivers: at least four periods are needed.
    assert_eq!(spec.query(1).unwrap_err().field(), "drivers");
    let mut ok = spec.clone();
    ok.date_to = "2026-04-30".into();
    assert!(ok.query(1).is_ok());
    let mut bad = ok.clone();
    bad.drivers[1].math = Some("median".into());
    assert_eq!(bad.query(1).unwrap_err().field(), "drivers[1].math");
    let mut bad = ok.clone();
    bad.drivers[1].name = None;
    assert_eq!(bad.query(1).unwrap_err().field(), "drivers[1].name");
    let mut bad = ok.clone();
    bad.drivers[1].name = Some("a".into());
    assert_eq!(bad.query(1).unwrap_err().field(), "drivers[1].name");
}

// ---------------------------------------------------------------------------------------
// Trends and NPS by hand

#[test]
fn trends_by_hand() {
    // Asia/Shanghai days begin at 16:00 UTC.
    let d1 = 1_772_294_400_000; // 2026-03-01T00:00+08:00
    let day = 24 * HOUR;
    let src = VecSource::with_values([
        (1, d1, "Order Completed", 30.0),
        (1, d1 + HOUR, "Order Completed", 10.0),
        (2, d1 + day - 1, "Order Completed", f64::NAN),
        (2, d1 + day, "Order Completed", 5.0),
        (3, d1 + day, "View", f64::NAN),
        (3, d1 + 2 * day, "Order Completed", 1.0), // after the range
    ]);
    let series = |math| Series {
        event: Some("Order Completed".into()),
        math,
    };
    let q = TrendsQuery {
        series: vec![
            series(Math::Total),
            series(Math::Unique),
            series(Math::PerPersonAvg),
            series(Math::Sum),
            series(Math::Avg),
            series(Math::Min),
            series(Math::Max),
            Series {
                event: None,
                math: Math::Unique,
            },
        ],
        interval: TrendInterval::Day,
        calendar: Calendar::new("Asia/Shanghai").unwrap(),
        from: jiff::civil::date(2026, 3, 1),
        to: jiff::civil::date(2026, 3, 2),
        breakdown_limit: None,
        threads: 2,
    };
    let r = trends(&src, &q).unwrap();
    assert_eq!(r.labels, ["2026-03-01", "2026-03-02"]);
    let got: Vec<(Vec<Option<f64>>, Option<f64>)> = r
        .series
        .iter()
        .map(|s| (s.values.clone(), s.total))
        .collect();
    assert_eq!(got[0], (vec![Some(3.0), Some(1.0)], Some(4.0)));
    // Person 2 is in both days: 2 + 1 per day, 2 over the range.
    assert_eq!(got[1], (vec![Some(2.0), Some(1.0)], Some(2.0)));
    assert_eq!(got[2], (vec![Some(1.5), Some(1.0)], Some(2.0)));
    assert_eq!(got[3], (vec![Some(40.0), Some(5.0)], Some(45.0)));
    assert_eq!(got[4], (vec![Some(20.0), Some(5.0)], Some(15.0)));
    assert_eq!(got[5], (vec![Some(10.0), Some(5.0)], Some(5.0)));
    assert_eq!(got[6], (vec![Some(30.0), Some(5.0)], Some(30.0)));
    assert_eq!(got[7], (vec![Some(2.0), Some(2.0)], Some(3.0)));

    // Breakdown of any event, top 1: Order Completed, and the rest as $other.
    let q = TrendsQuery {
        series: vec![Series {
            event: None,
            math: Math::Total,
        }],
        breakdown_limit: Some(1),
        ..q
    };
    let r = trends(&src, &q).unwrap();
    let parts: Vec<(Option<String>, Option<f64>)> = r
        .series
        .iter()
        .map(|s| (s.breakdown_value.clone(), s.total))
        .collect();
    assert_eq!(
        parts,
        [
            (Some("Order Completed".to_string()), Some(4.0)),
            (Some("$other".to_string()), Some(1.0))
        ]
    );

    // Hours across the New York fall-back: the repeated 01:00 is two periods.
    let q = TrendsQuery {
        series: vec![Series {
            event: None,
            math: Math::Total,
        }],
        interval: TrendInterval::Hour,
        calendar: Calendar::new("America/New_York").unwrap(),
        from: jiff::civil::date(2026, 11, 1),
        to: jiff::civil::date(2026, 11, 1),
        breakdown_limit: None,
        threads: 1,
    };
    let r = trends(&VecSource::new([(1, FALL, "A")]), &q).unwrap();
    assert_eq!(r.labels.len(), 25);
    assert_eq!(r.labels[1], "2026-11-01T01:00:00-04:00");
    assert_eq!(r.labels[2], "2026-11-01T01:00:00-05:00");
}

#[test]
fn trends_parameters_name_the_field() {
    let spec: TrendsSpec = serde_json::from_str(
        r#"{"series":[{"event":"A"},{"math":"median"}],"date_from":"2026-03-01","date_to":"2026-03-07"}"#,
    )
    .unwrap();
    assert_eq!(spec.query(1).unwrap_err().field(), "series[1].math");
    let mut s = spec.clone();
    s.series[1].math = Some("dau".into());
    let q = s.query(1).unwrap();
    assert_eq!(q.series[1].math, Math::Unique);
    assert_eq!(q.interval, TrendInterval::Day);
    s.interval = Some("minute".into());
    assert_eq!(s.query(1).unwrap_err().field(), "interval");
    s.interval = None;
    s.series[0].event = Some(String::new());
    assert_eq!(s.query(1).unwrap_err().field(), "series[0].event");
    s.series[0].event = None;
    s.breakdown = Some("event".into());
    s.breakdown_limit = Some(0);
    assert_eq!(s.query(1).unwrap_err().field(), "breakdown_limit");
    s.breakdown = Some("country".into());
    assert_eq!(s.query(1).unwrap_err().field(), "breakdown");
    assert!(
        serde_json::from_str::<TrendsSpec>(
            r#"{"series":[],"date_from":"2026-03-01","date_to":"2026-03-07","bogus":1}"#
        )
        .is_err()
    );
    let empty: TrendsSpec =
        serde_json::from_str(r#"{"series":[],"date_from":"2026-03-01","date_to":"2026-03-07"}"#)
            .unwrap();
    assert_eq!(empty.query(1).unwrap_err().field(), "series");
}

#[test]
fn nps_by_hand() {
    let d = 1_772_323_200_000; // 2026-03-01T00:00Z
    let day = 24 * HOUR;
    let ev = "NPS Survey Answered";
    let src = VecSource::with_values([
        // Person 1 answers 3 then 9 in March: one promoter, with the last answer.
        (1, d, ev, 3.0),
        (1, d + day, ev, 9.0),
        (2, d, ev, 7.0),
        (3, d, ev, 0.0),
        (4, d, ev, 10.0),
        // Invalid answers: counted, not scored.
        (5, d, ev, 11.0),
        (5, d, ev, f64::NAN),
        (6, d, ev, 8.5),
        // April: person 1 turns detractor.
        (1, d + 31 * day, ev, 6.0),
    ]);
    let spec: NpsSpec = serde_json::from_str(
        r#"{"segments":{"vip":[1,4]},"date_from":"2026-03-01","date_to":"2026-04-30"}"#,
    )
    .unwrap();
    let r = nps(&src, &spec.query(2).unwrap()).unwrap();
    let march = &r.all.periods[0];
    assert_eq!(march.date, "2026-03-01");
    assert_eq!(
        (
            march.promoters,
            march.passives,
            march.detractors,
            march.invalid
        ),
        (2, 1, 1, 3)
    );
    // 100 · (2 − 1) / 4.
    assert_eq!(march.nps, Some(25.0));
    let april = &r.all.periods[1];
    assert_eq!((april.responses, april.nps), (1, Some(-100.0)));
    // Over the range person 1's last answer is 6.
    assert_eq!(
        (
            r.all.total.promoters,
            r.all.total.detractors,
            r.all.total.nps
        ),
        (1, 2, Some(-25.0))
    );
    let vip = &r.segments[0];
    assert_eq!(vip.segment.as_deref(), Some("vip"));
    assert_eq!(vip.periods[0].nps, Some(100.0));
    assert_eq!(vip.total.nps, Some(0.0));
    // One decimal: 1 promoter, 2 passives → 33.3.
    let src = VecSource::with_values([(1, d, ev, 9.0), (2, d, ev, 7.0), (3, d, ev, 8.0)]);
    let r = nps(&src, &spec.query(1).unwrap()).unwrap();
    assert_eq!(r.all.total.nps, Some(33.3));
}

#[test]
fn nps_parameters_name_the_field() {
    let spec: NpsSpec = serde_json::from_str(
        r#"{"interval":"hour","date_from":"2026-03-01","date_to":"2026-04-30"}"#,
    )
    .unwrap();
    assert_eq!(spec.query(1).unwrap_err().field(), "interval");
    let spec: NpsSpec =
        serde_json::from_str(r#"{"event":"","date_from":"2026-03-01","date_to":"2026-04-30"}"#)
            .unwrap();
    assert_eq!(spec.query(1).unwrap_err().field(), "event");
    let spec: NpsSpec = serde_json::from_str(
        r#"{"segments":{"":[1]},"date_from":"2026-03-01","date_to":"2026-04-30"}"#,
    )
    .unwrap();
    assert_eq!(spec.query(1).unwrap_err().field(), "segments");
    assert!(
        serde_json::from_str::<NpsSpec>(
            r#"{"segments":{"a":[-1]},"date_from":"2026-03-01","date_to":"2026-04-30"}"#
        )
        .is_err()
    );
}
