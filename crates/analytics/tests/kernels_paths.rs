//! Paths, stickiness, journey stages and win-back against naive implementations of their
//! definitions, on random data with ties in time, events exactly on day boundaries (times on
//! whole hours), and time zones with and without daylight saving. The naive versions convert
//! every event's time to a date with jiff on its own and use plain loops and maps; each
//! kernel runs with one thread and with three.

#![allow(
    clippy::needless_range_loop,
    reason = "the naive references index as their definitions read"
)]

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use lodestar_analytics::journey::{
    JourneyQuery, JourneyResult, JourneySpec, JourneyStage, StageEvents, journey,
};
use lodestar_analytics::paths::{PathDirection, PathsQuery, PathsResult, PathsSpec, paths};
use lodestar_analytics::stickiness::{
    StickinessQuery, StickinessResult, StickinessSpec, stickiness,
};
use lodestar_analytics::winback::{WinbackQuery, WinbackResult, WinbackSpec, winback};
use lodestar_analytics::{Calendar, Interval, VecSource};
use proptest::prelude::*;

const NAMES: [&str; 6] = ["A", "B", "C", "D", "E", "F"];
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-03-01T00:00:00Z: a week before the US clocks change.
const BASE: i64 = 1_772_323_200_000;

type Row = (u64, i64, &'static str);

/// Rows over 40 days on whole hours (ties, exact day edges in every zone used), with names
/// drawn from the first `names` of [`NAMES`].
fn rows(names: usize, max_rows: usize) -> impl Strategy<Value = Vec<Row>> {
    rows_every(1, 10, names, max_rows)
}

/// Rows of persons `1..persons` over 40 days on multiples of `hours` hours: coarser grids
/// make more ties and more gaps of exactly whole days, fewer persons longer histories.
fn rows_every(
    hours: i64,
    persons: u64,
    names: usize,
    max_rows: usize,
) -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (1..persons, 0i64..(40 * 24 / hours), 0..names)
            .prop_map(move |(p, h, n)| (p, BASE + h * hours * HOUR, NAMES[n])),
        0..max_rows,
    )
}

fn zone() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("UTC"), Just("Asia/Shanghai"), Just("America/New_York")]
}

/// Rows per person, sorted by time, keeping input order among ties (as `VecSource` does).
fn by_person(rows: &[Row]) -> BTreeMap<u64, Vec<(i64, &'static str)>> {
    let mut m: BTreeMap<u64, Vec<(i64, &'static str)>> = BTreeMap::new();
    for &(p, t, n) in rows {
        m.entry(p).or_default().push((t, n));
    }
    for v in m.values_mut() {
        v.sort_by_key(|e| e.0);
    }
    m
}

/// The date of instant `ms` in zone `tz`, converted on its own.
fn date_in(tz: &str, ms: i64) -> Date {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(TimeZone::get(tz).unwrap())
        .date()
}

fn add_days(d: Date, n: i64) -> Date {
    d.checked_add(jiff::Span::new().days(n)).unwrap()
}

fn march(day: i64) -> Date {
    add_days(jiff::civil::date(2026, 3, 1), day)
}

/// Days from `a` to `b`.
fn days_between(a: Date, b: Date) -> i64 {
    let mut n = 0;
    let mut d = a;
    while d < b {
        d = add_days(d, 1);
        n += 1;
    }
    n
}

/// First date of the week (Monday) or month holding `d`.
fn period_start(interval: Interval, d: Date) -> Date {
    match interval {
        Interval::Day => d,
        Interval::Week => add_days(d, -(d.weekday().to_monday_zero_offset() as i64)),
        Interval::Month => jiff::civil::date(d.year(), d.month(), 1),
        Interval::Year => jiff::civil::date(d.year(), 1, 1),
    }
}

fn next_period(interval: Interval, d: Date) -> Date {
    match interval {
        Interval::Day => add_days(d, 1),
        Interval::Week => add_days(d, 7),
        Interval::Month => d.checked_add(jiff::Span::new().months(1)).unwrap(),
        Interval::Year => d.checked_add(jiff::Span::new().years(1)).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// Paths

/// Per node (step, name), per edge (step, from, to), paths ended per step, persons.
type NaivePaths = (
    BTreeMap<(usize, &'static str), u64>,
    BTreeMap<(usize, &'static str, &'static str), u64>,
    Vec<u64>,
);

fn naive_paths(rows: &[Row], q: &PathsQuery, tz: &str) -> NaivePaths {
    let mut nodes = BTreeMap::new();
    let mut edges = BTreeMap::new();
    let mut ended = vec![0u64; q.steps];
    for (_, ev) in by_person(rows) {
        // In range and not excluded, then repeats collapsed over the whole sequence.
        let mut seq: Vec<&'static str> = Vec::new();
        for (t, n) in ev {
            let d = date_in(tz, t);
            if d < q.from || d > q.to || q.exclude.iter().any(|x| x == n) {
                continue;
            }
            if q.collapse_repeats && seq.last() == Some(&n) {
                continue;
            }
            seq.push(n);
        }
        let anchor_at = match &q.anchor {
            Some(a) => seq.iter().position(|n| n == a),
            None if seq.is_empty() => None,
            None => Some(match q.direction {
                PathDirection::After => 0,
                PathDirection::Before => seq.len() - 1,
            }),
        };
        let Some(at) = anchor_at else { continue };
        let path: Vec<&'static str> = match q.direction {
            PathDirection::After => seq[at..].iter().copied().take(q.steps).collect(),
            PathDirection::Before => seq[..=at].iter().rev().copied().take(q.steps).collect(),
        };
        for k in 0..path.len() {
            *nodes.entry((k + 1, path[k])).or_insert(0) += 1;
            if k + 1 < path.len() {
                *edges.entry((k + 1, path[k], path[k + 1])).or_insert(0) += 1;
            }
        }
        ended[path.len() - 1] += 1;
    }
    (nodes, edges, ended)
}

fn check_paths(got: &PathsResult, want: &NaivePaths, q: &PathsQuery) -> Result<(), TestCaseError> {
    let (nodes, edges, ended) = want;
    // Heaviest edges, ties by source step, source name, target name.
    let mut order: Vec<(&(usize, &str, &str), &u64)> = edges.iter().collect();
    order.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    order.truncate(q.edge_limit);
    let want_edges: Vec<(String, String, u64)> = order
        .iter()
        .map(|((k, a, b), n)| (format!("{k}_{a}"), format!("{}_{b}", k + 1), **n))
        .collect();
    let got_edges: Vec<(String, String, u64)> = got
        .edges
        .iter()
        .map(|e| (e.source.clone(), e.target.clone(), e.persons))
        .collect();
    prop_assert_eq!(got_edges, want_edges);
    let mut touched = BTreeSet::new();
    for ((k, a, b), _) in &order {
        touched.insert((*k, *a));
        touched.insert((k + 1, *b));
    }
    let want_nodes: BTreeSet<(usize, String, u64)> = touched
        .into_iter()
        .map(|(k, n)| (k, n.to_string(), nodes[&(k, n)]))
        .collect();
    let got_nodes: BTreeSet<(usize, String, u64)> = got
        .nodes
        .iter()
        .map(|n| {
            assert_eq!(n.id, format!("{}_{}", n.step, n.event));
            (n.step, n.event.clone(), n.persons)
        })
        .collect();
    prop_assert_eq!(got_nodes, want_nodes);
    prop_assert_eq!(
        got.nodes.len(),
        got.edges
            .iter()
            .flat_map(|e| [&e.source, &e.target])
            .collect::<BTreeSet<_>>()
            .len()
    );
    prop_assert_eq!(got.steps.len(), q.steps);
    let mut reaching: u64 = ended.iter().sum();
    prop_assert_eq!(got.persons, reaching);
    for (k, s) in got.steps.iter().enumerate() {
        prop_assert_eq!((s.step, s.persons, s.ended), (k + 1, reaching, ended[k]));
        reaching -= ended[k];
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn paths_match_naive_sequences(
        rows in rows(5, 100),
        tz in zone(),
        direction in prop_oneof![Just(PathDirection::After), Just(PathDirection::Before)],
        anchor in prop_oneof![Just(None), Just(Some("A")), Just(Some("B"))],
        steps in 2usize..7,
        collapse in any::<bool>(),
        exclude in prop_oneof![Just(vec![]), Just(vec!["C".to_string()]), Just(vec!["C".to_string(), "E".to_string()])],
        edge_limit in 1usize..15,
        from_d in 0i64..25,
        len_d in 0i64..20,
    ) {
        let src = VecSource::new(rows.iter().copied());
        let mut q = PathsQuery {
            direction,
            anchor: anchor.map(str::to_string),
            steps,
            collapse_repeats: collapse,
            exclude,
            edge_limit,
            calendar: Calendar::new(tz).unwrap(),
            from: march(from_d),
            to: march(from_d + len_d),
            threads: 1,
        };
        let got = paths(&src, &q).unwrap();
        q.threads = 3;
        prop_assert_eq!(&paths(&src, &q).unwrap(), &got);
        check_paths(&got, &naive_paths(&rows, &q, tz), &q)?;
    }
}

#[test]
fn paths_by_hand() {
    // 1: A A B C; 2: A B D; 3: X A B C (X before the start); 4: no A.
    let src = VecSource::new([
        (1, BASE, "A"),
        (1, BASE + HOUR, "A"),
        (1, BASE + 2 * HOUR, "B"),
        (1, BASE + 3 * HOUR, "C"),
        (2, BASE, "A"),
        (2, BASE + HOUR, "B"),
        (2, BASE + 2 * HOUR, "D"),
        (3, BASE, "X"),
        (3, BASE + HOUR, "A"),
        (3, BASE + 2 * HOUR, "B"),
        (3, BASE + 3 * HOUR, "C"),
        (4, BASE, "B"),
    ]);
    let spec: PathsSpec = serde_json::from_str(
        r#"{"start_event":"A","date_from":"2026-03-01","date_to":"2026-03-01"}"#,
    )
    .unwrap();
    let q = spec.query(1).unwrap();
    assert_eq!((q.steps, q.edge_limit, q.collapse_repeats), (5, 50, true));
    let r = paths(&src, &q).unwrap();
    let edges: Vec<(&str, &str, u64)> = r
        .edges
        .iter()
        .map(|e| (e.source.as_str(), e.target.as_str(), e.persons))
        .collect();
    assert_eq!(
        edges,
        [("1_A", "2_B", 3), ("2_B", "3_C", 2), ("2_B", "3_D", 1)]
    );
    let nodes: Vec<(&str, u64)> = r.nodes.iter().map(|n| (n.id.as_str(), n.persons)).collect();
    assert_eq!(nodes, [("1_A", 3), ("2_B", 3), ("3_C", 2), ("3_D", 1)]);
    let steps: Vec<(u64, u64)> = r.steps.iter().map(|s| (s.persons, s.ended)).collect();
    assert_eq!(steps, [(3, 0), (3, 0), (3, 3), (0, 0), (0, 0)]);

    // Before C, repeats kept: person 1 C ← B ← A ← A, person 3 C ← B ← A ← X; edge_limit 2.
    let spec: PathsSpec = serde_json::from_str(
        r#"{"direction":"before","end_event":"C","collapse_repeats":false,"steps":3,"edge_limit":2,
            "date_from":"2026-03-01","date_to":"2026-03-01"}"#,
    )
    .unwrap();
    let r = paths(&src, &spec.query(2).unwrap()).unwrap();
    let edges: Vec<(&str, &str, u64)> = r
        .edges
        .iter()
        .map(|e| (e.source.as_str(), e.target.as_str(), e.persons))
        .collect();
    assert_eq!(edges, [("1_C", "2_B", 2), ("2_B", "3_A", 2)]);
    assert_eq!(
        r.steps.iter().map(|s| s.ended).collect::<Vec<_>>(),
        [0, 0, 2]
    );
}

#[test]
fn paths_errors_name_the_field() {
    let spec = |json: &str| serde_json::from_str::<PathsSpec>(json).unwrap();
    let base = r#""date_from":"2026-03-01","date_to":"2026-03-02""#;
    let field = |json: String| spec(&json).query(1).unwrap_err().field().to_string();
    assert_eq!(field(format!(r#"{{"steps":21,{base}}}"#)), "steps");
    assert_eq!(field(format!(r#"{{"steps":1,{base}}}"#)), "steps");
    assert_eq!(field(format!(r#"{{"edge_limit":0,{base}}}"#)), "edge_limit");
    assert_eq!(
        field(format!(r#"{{"start_event":"",{base}}}"#)),
        "start_event"
    );
    assert_eq!(
        field(format!(
            r#"{{"start_event":"A","exclude_events":["B","A"],{base}}}"#
        )),
        "exclude_events[1]"
    );
    assert_eq!(field(format!(r#"{{"end_event":"A",{base}}}"#)), "end_event");
    assert_eq!(
        field(format!(
            r#"{{"direction":"before","start_event":"A",{base}}}"#
        )),
        "start_event"
    );
    assert_eq!(
        field(r#"{"date_from":"2026-03-02","date_to":"2026-03-01"}"#.to_string()),
        "date_to"
    );
    assert!(serde_json::from_str::<PathsSpec>(&format!(r#"{{"bogus":1,{base}}}"#)).is_err());
    assert!(
        serde_json::from_str::<PathsSpec>(&format!(r#"{{"direction":"sideways",{base}}}"#))
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------
// Stickiness

fn naive_stickiness(rows: &[Row], q: &StickinessQuery, tz: &str) -> StickinessResult {
    use lodestar_analytics::stickiness::{ActiveDay, StickinessPeriod};
    let active: Vec<BTreeSet<Date>> = by_person(rows)
        .into_values()
        .map(|ev| {
            ev.iter()
                .filter(|e| q.event.as_deref().is_none_or(|n| n == e.1))
                .map(|e| date_in(tz, e.0))
                .collect()
        })
        .collect();
    let mut periods = Vec::new();
    let mut p = period_start(q.interval, q.from);
    while p <= q.to {
        let next = next_period(q.interval, p);
        let days = days_between(p, next) as usize;
        let mut counts = vec![0u64; days];
        for set in &active {
            let k = set.iter().filter(|d| **d >= p && **d < next).count();
            if k > 0 {
                counts[k - 1] += 1;
            }
        }
        periods.push(StickinessPeriod {
            date: p.to_string(),
            days,
            persons: counts.iter().sum(),
            counts,
        });
        p = next;
    }
    let mut daily = Vec::new();
    let mut d = q.from;
    while d <= q.to {
        let within = |n: i64| {
            active
                .iter()
                .filter(|set| set.iter().any(|a| *a <= d && *a > add_days(d, -n)))
                .count() as u64
        };
        let (dau, wau, mau) = (within(1), within(7), within(30));
        daily.push(ActiveDay {
            date: d.to_string(),
            dau,
            wau,
            mau,
            dau_wau: (wau > 0).then(|| dau as f64 / wau as f64),
            dau_mau: (mau > 0).then(|| dau as f64 / mau as f64),
        });
        d = add_days(d, 1);
    }
    StickinessResult { periods, daily }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn stickiness_matches_naive_day_counts(
        rows in rows(3, 150),
        tz in zone(),
        interval in prop_oneof![Just(Interval::Week), Just(Interval::Month)],
        event in prop_oneof![Just(None), Just(Some("A")), Just(Some("Z"))],
        from_d in 0i64..40,
        len_d in 0i64..20,
    ) {
        let src = VecSource::new(rows.iter().copied());
        let mut q = StickinessQuery {
            event: event.map(str::to_string),
            interval,
            calendar: Calendar::new(tz).unwrap(),
            from: march(from_d),
            to: march(from_d + len_d),
            threads: 1,
        };
        let got = stickiness(&src, &q).unwrap();
        q.threads = 3;
        prop_assert_eq!(&stickiness(&src, &q).unwrap(), &got);
        prop_assert_eq!(got, naive_stickiness(&rows, &q, tz));
    }
}

#[test]
fn stickiness_by_hand() {
    // 2026-03-02 is a Monday. Person 1: Mon twice, Tue, and 40 days earlier; person 2: Wed.
    let mon = BASE + DAY;
    let src = VecSource::new([
        (1, mon, "open"),
        (1, mon + 5 * HOUR, "open"),
        (1, mon + DAY, "open"),
        (1, mon - 40 * DAY, "open"),
        (2, mon + 2 * DAY, "open"),
    ]);
    let spec: StickinessSpec =
        serde_json::from_str(r#"{"date_from":"2026-03-02","date_to":"2026-03-04"}"#).unwrap();
    let r = stickiness(&src, &spec.query(1).unwrap()).unwrap();
    assert_eq!(r.periods.len(), 1);
    assert_eq!(r.periods[0].date, "2026-03-02");
    assert_eq!(r.periods[0].counts, [1, 1, 0, 0, 0, 0, 0]);
    let series: Vec<(u64, u64, u64)> = r.daily.iter().map(|d| (d.dau, d.wau, d.mau)).collect();
    assert_eq!(series, [(1, 1, 1), (1, 1, 1), (1, 2, 2)]);
    assert_eq!(r.daily[2].dau_mau, Some(0.5));
    // Months: March has 31 days.
    let spec: StickinessSpec = serde_json::from_str(
        r#"{"interval":"month","event":"open","date_from":"2026-03-02","date_to":"2026-03-04"}"#,
    )
    .unwrap();
    let r = stickiness(&src, &spec.query(2).unwrap()).unwrap();
    assert_eq!(r.periods[0].days, 31);
    assert_eq!(&r.periods[0].counts[..3], [1, 1, 0]);
}

#[test]
fn stickiness_errors_name_the_field() {
    let spec: StickinessSpec = serde_json::from_str(
        r#"{"interval":"day","date_from":"2026-03-01","date_to":"2026-03-02"}"#,
    )
    .unwrap();
    assert_eq!(spec.query(1).unwrap_err().field(), "interval");
    let spec: StickinessSpec =
        serde_json::from_str(r#"{"event":"","date_from":"2026-03-01","date_to":"2026-03-02"}"#)
            .unwrap();
    assert_eq!(spec.query(1).unwrap_err().field(), "event");
    let spec: StickinessSpec = serde_json::from_str(
        r#"{"timezone":"Mars/Olympus","date_from":"2026-03-01","date_to":"2026-03-02"}"#,
    )
    .unwrap();
    assert_eq!(spec.query(1).unwrap_err().field(), "timezone");
}

// ---------------------------------------------------------------------------------------
// Journey

/// A: discover, B: engage, C: purchase, D and E: use, F: refer; nothing else staged.
fn test_stages() -> StageEvents {
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
    StageEvents {
        discover: v(&["A"]),
        engage: v(&["B"]),
        purchase: v(&["C"]),
        use_events: v(&["D", "E"]),
        refer: v(&["F"]),
    }
}

/// (reached any order, reached in order) per stage.
fn naive_journey(rows: &[Row], q: &JourneyQuery, tz: &str) -> (u64, [u64; 6], [u64; 6]) {
    let lists: [&[&str]; 5] = [&["A"], &["B"], &["C"], &["D", "E"], &["F"]];
    let retain = q.retain_after_days as i64 * DAY;
    let mut persons = 0;
    let mut any = [0u64; 6];
    let mut ordered = [0u64; 6];
    for (_, ev) in by_person(rows) {
        let ev: Vec<(i64, &str)> = ev
            .into_iter()
            .filter(|e| {
                let d = date_in(tz, e.0);
                d >= q.from && d <= q.to
            })
            .collect();
        if ev.is_empty() {
            continue;
        }
        persons += 1;
        let times_of = |list: &[&str]| -> Vec<i64> {
            ev.iter()
                .filter(|e| list.contains(&e.1))
                .map(|e| e.0)
                .collect()
        };
        let kept: Vec<Vec<i64>> = lists.iter().map(|&l| times_of(l)).collect();
        let purchase_or_use = times_of(&["C", "D", "E"]);
        // Any order.
        let stage_lists = [0usize, 1, 2, 3, usize::MAX, 4];
        for s in 0..6 {
            let hit = if s == 4 {
                kept[2]
                    .first()
                    .is_some_and(|&p| purchase_or_use.iter().any(|&t| t >= p + retain))
            } else {
                !kept[stage_lists[s]].is_empty()
            };
            any[s] += hit as u64;
        }
        // In order: each stage's first time at or after the previous stage's.
        let mut times: Vec<i64> = Vec::new();
        for s in 0..6 {
            let prev = times.last().copied().unwrap_or(i64::MIN);
            let next = if s == 4 {
                purchase_or_use
                    .iter()
                    .copied()
                    .filter(|&t| t >= prev && t >= times[2] + retain)
                    .min()
            } else {
                kept[stage_lists[s]]
                    .iter()
                    .copied()
                    .filter(|&t| t >= prev)
                    .min()
            };
            match next {
                Some(t) => times.push(t),
                None => break,
            }
        }
        for s in 0..times.len() {
            ordered[s] += 1;
        }
    }
    (persons, any, ordered)
}

fn check_journey(
    got: &JourneyResult,
    want: (u64, [u64; 6], [u64; 6]),
) -> Result<(), TestCaseError> {
    let (persons, any, ordered) = want;
    prop_assert_eq!(got.persons, persons);
    prop_assert_eq!(got.stages.len(), 6);
    for (s, row) in got.stages.iter().enumerate() {
        prop_assert_eq!(row.stage, JourneyStage::ALL[s]);
        prop_assert_eq!(
            (row.reached, row.reached_in_order),
            (any[s], ordered[s]),
            "stage {:?}",
            row.stage
        );
        let conversion =
            (s > 0 && ordered[s - 1] > 0).then(|| ordered[s] as f64 / ordered[s - 1] as f64);
        prop_assert_eq!(row.conversion, conversion);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn journey_matches_naive_chains(
        rows in prop_oneof![rows(6, 120), rows_every(12, 4, 6, 100)],
        tz in zone(),
        retain_after_days in 1u32..6,
        from_d in 0i64..20,
        len_d in 0i64..25,
    ) {
        let src = VecSource::new(rows.iter().copied());
        let mut q = JourneyQuery {
            stages: test_stages(),
            retain_after_days,
            calendar: Calendar::new(tz).unwrap(),
            from: march(from_d),
            to: march(from_d + len_d),
            threads: 1,
        };
        let got = journey(&src, &q).unwrap();
        q.threads = 3;
        prop_assert_eq!(&journey(&src, &q).unwrap(), &got);
        check_journey(&got, naive_journey(&rows, &q, tz))?;
    }
}

#[test]
fn journey_by_hand() {
    // Person 1 goes through every stage, the use event 8 days after the purchase also
    // retaining them; person 2 buys before discovering (not in order) and never retains;
    // person 3 engages and discovers at the same instant, written in that order.
    let t = BASE;
    let src = VecSource::new([
        (1, t, "$pageview"),
        (1, t + HOUR, "Product Viewed"),
        (1, t + 2 * HOUR, "Order Completed"),
        (1, t + 8 * DAY, "$screen"),
        (1, t + 9 * DAY, "Invite Sent"),
        (2, t, "Order Completed"),
        (2, t + HOUR, "$pageview"),
        (2, t + 2 * HOUR, "Signed Up"),
        (2, t + 3 * DAY, "Product Reviewed"),
        (3, t, "Signed Up"),
        (3, t, "$pageview"),
    ]);
    let spec: JourneySpec = serde_json::from_str(
        r#"{"date_from":"2026-03-01","date_to":"2026-03-31","timezone":"Asia/Shanghai"}"#,
    )
    .unwrap();
    let q = spec.query(1).unwrap();
    assert_eq!(q.stages, StageEvents::default());
    let r = journey(&src, &q).unwrap();
    assert_eq!(r.persons, 3);
    let got: Vec<(&str, &str, u64, u64)> = r
        .stages
        .iter()
        .map(|s| {
            (
                s.label_en.as_str(),
                s.label_zh.as_str(),
                s.reached,
                s.reached_in_order,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Discover", "发现", 3, 3),
            ("Engage", "吸引", 3, 3),
            ("Purchase", "购买", 2, 1),
            ("Use", "使用", 2, 1),
            ("Retain", "留存", 1, 1),
            ("Refer", "推荐", 1, 1),
        ]
    );
    assert_eq!(r.stages[2].conversion, Some(1.0 / 3.0));
    assert_eq!(r.stages[0].conversion, None);
    // Retain after 10 days: person 1's use on day 8 no longer retains.
    let spec: JourneySpec = serde_json::from_str(
        r#"{"retain_after_days":10,"stages":{"refer":["Invite Sent"]},
            "date_from":"2026-03-01","date_to":"2026-03-31"}"#,
    )
    .unwrap();
    let r = journey(&src, &spec.query(3).unwrap()).unwrap();
    assert_eq!((r.stages[4].reached, r.stages[5].reached_in_order), (0, 0));
    assert_eq!(r.stages[5].reached, 1);
}

#[test]
fn journey_errors_name_the_field() {
    let field = |json: &str| {
        serde_json::from_str::<JourneySpec>(json)
            .unwrap()
            .query(1)
            .unwrap_err()
            .field()
            .to_string()
    };
    assert_eq!(
        field(r#"{"stages":{"purchase":[""]},"date_from":"2026-03-01","date_to":"2026-03-02"}"#),
        "stages.purchase[0]"
    );
    assert_eq!(
        field(
            r#"{"stages":{"use":["x","$pageview"]},"date_from":"2026-03-01","date_to":"2026-03-02"}"#
        ),
        "stages.use[1]"
    );
    assert_eq!(
        field(r#"{"stages":{"engage":[]},"date_from":"2026-03-01","date_to":"2026-03-02"}"#),
        "stages.engage"
    );
    assert_eq!(
        field(r#"{"retain_after_days":0,"date_from":"2026-03-01","date_to":"2026-03-02"}"#),
        "retain_after_days"
    );
    assert!(
        serde_json::from_str::<JourneySpec>(
            r#"{"stages":{"retain":["x"]},"date_from":"2026-03-01","date_to":"2026-03-02"}"#
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------
// Win-back

/// Per churn period: churned, returned, buckets, return-event counts.
type NaiveWinback = BTreeMap<Date, (u64, u64, Vec<u64>, BTreeMap<&'static str, u64>)>;

fn naive_winback(rows: &[Row], q: &WinbackQuery, tz: &str) -> NaiveWinback {
    let mut out: NaiveWinback = BTreeMap::new();
    let churn = q.churn_days as i64 * DAY;
    for (_, ev) in by_person(rows) {
        let act: Vec<(i64, &'static str)> = ev
            .into_iter()
            .filter(|e| q.activity.is_empty() || q.activity.iter().any(|a| a == e.1))
            .collect();
        for i in 0..act.len() {
            let c = act[i].0 + churn;
            let next = act.get(i + 1);
            if next.is_some_and(|b| b.0 <= c) {
                continue;
            }
            let churn_date = date_in(tz, c);
            if churn_date < q.from || churn_date > q.to {
                continue;
            }
            let cell = out
                .entry(period_start(q.interval, churn_date))
                .or_insert_with(|| (0, 0, vec![0; q.bounds.len() + 1], BTreeMap::new()));
            cell.0 += 1;
            if let Some(&(b, name)) = next {
                let d = days_between(churn_date, date_in(tz, b));
                let j = q
                    .bounds
                    .iter()
                    .position(|&x| d <= x as i64)
                    .unwrap_or(q.bounds.len());
                cell.2[j] += 1;
                if d <= q.window_days as i64 {
                    cell.1 += 1;
                    *cell.3.entry(name).or_insert(0) += 1;
                }
            }
        }
    }
    out
}

fn top(events: &BTreeMap<&str, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = events.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn check_winback(
    got: &WinbackResult,
    want: &NaiveWinback,
    q: &WinbackQuery,
) -> Result<(), TestCaseError> {
    let empty = (0, 0, vec![0; q.bounds.len() + 1], BTreeMap::new());
    let mut p = period_start(q.interval, q.from);
    let mut total = empty.clone();
    for period in &got.periods {
        prop_assert_eq!(&period.date, &p.to_string());
        let w = want.get(&p).unwrap_or(&empty);
        let f = &period.figures;
        prop_assert_eq!(
            (f.churned, f.returned, &f.days_to_return),
            (w.0, w.1, &w.2),
            "period {}",
            p
        );
        let got_top: Vec<(String, u64)> = f
            .top_events
            .iter()
            .map(|e| (e.event.clone(), e.count))
            .collect();
        prop_assert_eq!(got_top, top(&w.3, q.top_n));
        total.0 += w.0;
        total.1 += w.1;
        for j in 0..w.2.len() {
            total.2[j] += w.2[j];
        }
        for (k, v) in &w.3 {
            *total.3.entry(*k).or_insert(0) += v;
        }
        p = next_period(q.interval, p);
    }
    prop_assert!(p > q.to && period_start(q.interval, q.to) < p);
    let t = &got.total;
    prop_assert_eq!(
        (t.churned, t.returned, &t.days_to_return),
        (total.0, total.1, &total.2)
    );
    let got_top: Vec<(String, u64)> = t
        .top_events
        .iter()
        .map(|e| (e.event.clone(), e.count))
        .collect();
    prop_assert_eq!(got_top, top(&total.3, q.top_n));
    prop_assert_eq!(
        t.return_rate,
        (total.0 > 0).then(|| total.1 as f64 / total.0 as f64)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn winback_matches_naive_churns(
        rows in prop_oneof![rows(4, 100), rows_every(12, 4, 4, 40)],
        tz in zone(),
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week), Just(Interval::Month)],
        activity in prop_oneof![Just(vec![]), Just(vec!["A".to_string(), "B".to_string()])],
        churn_days in 1u32..6,
        window_days in 1u32..12,
        bounds in prop_oneof![Just(vec![0u32]), Just(vec![1, 3, 7]), Just(vec![2, 5])],
        top_n in 1usize..4,
        from_d in 0i64..35,
        len_d in 0i64..20,
    ) {
        let src = VecSource::new(rows.iter().copied());
        let mut q = WinbackQuery {
            activity,
            churn_days,
            window_days,
            bounds,
            top_n,
            interval,
            calendar: Calendar::new(tz).unwrap(),
            from: march(from_d),
            to: march(from_d + len_d),
            threads: 1,
        };
        let got = winback(&src, &q).unwrap();
        q.threads = 3;
        prop_assert_eq!(&winback(&src, &q).unwrap(), &got);
        check_winback(&got, &naive_winback(&rows, &q, tz), &q)?;
    }
}

#[test]
fn winback_by_hand() {
    // Person 1: active Mar 1 10:00, back Apr 9 on a campaign click (churned Mar 31 10:00,
    // 9 days), churns again May 9 and never returns. Person 2: active Mar 1, Mar 20, then
    // back on Aug 1 (churned Apr 19; 104 days: outside the window, bucket >90).
    let t = BASE + 10 * HOUR;
    let src = VecSource::new([
        (1, t, "$pageview"),
        (1, t + 39 * DAY, "Campaign Clicked"),
        (2, t, "$pageview"),
        (2, t + 19 * DAY, "$pageview"),
        (2, t + 153 * DAY, "Order Completed"),
    ]);
    let spec: WinbackSpec = serde_json::from_str(
        r#"{"interval":"month","date_from":"2026-03-01","date_to":"2026-05-31"}"#,
    )
    .unwrap();
    let q = spec.query(2).unwrap();
    assert_eq!((q.churn_days, q.window_days, q.top_n), (30, 90, 10));
    let r = winback(&src, &q).unwrap();
    assert_eq!(r.buckets, ["0-7", "8-14", "15-30", "31-60", "61-90", ">90"]);
    let months: Vec<(&str, u64, u64)> = r
        .periods
        .iter()
        .map(|p| (p.date.as_str(), p.figures.churned, p.figures.returned))
        .collect();
    assert_eq!(
        months,
        [
            ("2026-03-01", 1, 1),
            ("2026-04-01", 1, 0),
            ("2026-05-01", 1, 0)
        ]
    );
    assert_eq!(r.periods[0].figures.days_to_return, [0, 1, 0, 0, 0, 0]);
    assert_eq!(r.periods[1].figures.days_to_return, [0, 0, 0, 0, 0, 1]);
    assert_eq!(r.total.top_events.len(), 1);
    assert_eq!(r.total.top_events[0].event, "Campaign Clicked");
    assert_eq!(r.total.return_rate, Some(1.0 / 3.0));
    // Activity is only orders: person 2 churns 30 days after the August order, outside.
    let spec: WinbackSpec = serde_json::from_str(
        r#"{"activity_events":["Order Completed"],"date_from":"2026-03-01","date_to":"2026-05-31"}"#,
    )
    .unwrap();
    assert_eq!(
        winback(&src, &spec.query(1).unwrap())
            .unwrap()
            .total
            .churned,
        0
    );
}

#[test]
fn winback_errors_name_the_field() {
    let field = |json: &str| {
        serde_json::from_str::<WinbackSpec>(json)
            .unwrap()
            .query(1)
            .unwrap_err()
            .field()
            .to_string()
    };
    let f = |extra: &str| {
        field(&format!(
            r#"{{{extra},"date_from":"2026-03-01","date_to":"2026-03-02"}}"#
        ))
    };
    assert_eq!(f(r#""buckets":[7,7]"#), "buckets[1]");
    assert_eq!(f(r#""buckets":[]"#), "buckets");
    assert_eq!(f(r#""window":"36h""#), "window");
    assert_eq!(f(r#""window":"soon""#), "window");
    assert_eq!(f(r#""churn_days":0"#), "churn_days");
    assert_eq!(f(r#""top_n":0"#), "top_n");
    assert_eq!(f(r#""activity_events":["a",""]"#), "activity_events[1]");
    assert_eq!(f(r#""interval":"year""#), "interval");
}
