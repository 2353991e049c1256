//! Every kernel against a naive implementation of its definition, on random data with ties
//! in time, events at window and period edges, and time zones with and without daylight
//! saving. The naive versions convert every event's time to a calendar date on its own
//! (no shared period table) and search chains exhaustively.

#![allow(
    clippy::needless_range_loop,
    reason = "the naive references index as their definitions read"
)]

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use lodestar_analytics::funnel::{FunnelOrder, FunnelQuery};
use lodestar_analytics::lifecycle::LifecycleQuery;
use lodestar_analytics::retention::{RetentionKind, RetentionQuery};
use lodestar_analytics::{Calendar, Interval, VecSource, funnel, lifecycle, retention};
use proptest::prelude::*;

const NAMES: [&str; 4] = ["A", "B", "C", "D"];
const HOUR: i64 = 3_600_000;
/// 2026-03-01T00:00:00Z: a week before the US clocks change.
const BASE: i64 = 1_772_323_200_000;

type Row = (u64, i64, &'static str);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (1u64..12, 0i64..(40 * 24), 0usize..4).prop_map(|(p, h, n)| {
            // Times on whole hours (many ties and exact window edges) over 40 days.
            (p, BASE + h * HOUR, NAMES[n])
        }),
        0..120,
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

fn naive_ordered(ev: &[(i64, &str)], steps: &[&str], w: i64) -> (usize, Option<i64>) {
    // Exhaustive: the longest chain i0 < i1 < … within the window.
    fn extend(ev: &[(i64, &str)], steps: &[&str], w: i64, at: usize, k: usize, t0: i64) -> usize {
        if k == steps.len() {
            return k;
        }
        let mut best = k;
        for j in at..ev.len() {
            if ev[j].1 == steps[k] && ev[j].0 - t0 <= w {
                best = best.max(extend(ev, steps, w, j + 1, k + 1, t0));
            }
        }
        best
    }
    let mut best = 0;
    for i in 0..ev.len() {
        if ev[i].1 == steps[0] {
            best = best.max(extend(ev, steps, w, i + 1, 1, ev[i].0));
        }
    }
    // Time to convert: the earliest event that completes a chain, from the latest start.
    let mut ttc = None;
    'end: for e in 0..ev.len() {
        let mut latest: Option<i64> = None;
        for i in 0..e {
            if ev[i].1 != steps[0] {
                continue;
            }
            // A chain from i through steps 1..n-2 before e, and e as the last step.
            fn chain(
                ev: &[(i64, &str)],
                steps: &[&str],
                w: i64,
                at: usize,
                k: usize,
                t0: i64,
                end: usize,
            ) -> bool {
                if k == steps.len() - 1 {
                    return ev[end].1 == steps[k] && ev[end].0 - t0 <= w && at <= end;
                }
                (at..end).any(|j| {
                    ev[j].1 == steps[k]
                        && ev[j].0 - t0 <= w
                        && chain(ev, steps, w, j + 1, k + 1, t0, end)
                })
            }
            if chain(ev, steps, w, i + 1, 1, ev[i].0, e) {
                latest = Some(latest.map_or(ev[i].0, |l: i64| l.max(ev[i].0)));
            }
        }
        if let Some(t0) = latest {
            ttc = Some(ev[e].0 - t0);
            break 'end;
        }
    }
    (best, ttc)
}

fn naive_strict(ev: &[(i64, &str)], steps: &[&str], w: i64) -> usize {
    let mut best = 0;
    for i in 0..ev.len() {
        let mut k = 0;
        while k < steps.len()
            && i + k < ev.len()
            && ev[i + k].1 == steps[k]
            && ev[i + k].0 - ev[i].0 <= w
        {
            k += 1;
        }
        best = best.max(k);
    }
    best
}

fn naive_any(ev: &[(i64, &str)], steps: &[&str], w: i64) -> usize {
    let mut need: BTreeMap<&str, usize> = BTreeMap::new();
    for s in steps {
        *need.entry(s).or_default() += 1;
    }
    let mut best = 0;
    for i in 0..ev.len() {
        for j in i..ev.len() {
            if ev[j].0 - ev[i].0 > w {
                break;
            }
            let got: usize = need
                .iter()
                .map(|(n, k)| ev[i..=j].iter().filter(|e| e.1 == *n).count().min(*k))
                .sum();
            best = best.max(got);
        }
    }
    best
}

fn steps_strategy() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(0usize..4, 2..5)
        .prop_map(|v| v.into_iter().map(|i| NAMES[i]).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn funnels_match_exhaustive_search(
        rows in rows(),
        steps in steps_strategy(),
        window_h in 1i64..200,
        order in prop_oneof![Just(FunnelOrder::Ordered), Just(FunnelOrder::Strict), Just(FunnelOrder::Any)],
        from_h in 0i64..200,
        len_h in 1i64..900,
        threads in 1usize..3,
    ) {
        let src = VecSource::new(rows.iter().copied());
        let mut q = FunnelQuery::new(&steps, window_h * HOUR, BASE + from_h * HOUR, BASE + (from_h + len_h) * HOUR);
        q.order = order;
        q.threads = threads;
        q.dropped_at = Some(1);
        let got = funnel(&src, &q).unwrap();
        let mut at_least = vec![0u64; steps.len()];
        let mut ttcs = Vec::new();
        let mut dropped = Vec::new();
        for (p, ev) in by_person(&rows) {
            let ev: Vec<(i64, &str)> = ev.into_iter().filter(|e| e.0 >= q.from_ms && e.0 < q.to_ms).collect();
            if ev.is_empty() { continue; }
            let reached = match order {
                FunnelOrder::Ordered => {
                    let (r, t) = naive_ordered(&ev, &steps, q.window_ms);
                    if let Some(t) = t { ttcs.push(t); }
                    r
                }
                FunnelOrder::Strict => naive_strict(&ev, &steps, q.window_ms),
                FunnelOrder::Any => naive_any(&ev, &steps, q.window_ms),
            };
            for k in 0..reached { at_least[k] += 1; }
            if reached == 1 { dropped.push(p); }
        }
        let persons: Vec<u64> = got.steps.iter().map(|s| s.persons).collect();
        prop_assert_eq!(&persons, &at_least);
        prop_assert_eq!(got.dropped_persons.iter().map(|p| p.0).collect::<Vec<_>>(), dropped);
        if order == FunnelOrder::Ordered {
            let t = got.time_to_convert.unwrap();
            prop_assert_eq!(t.persons as usize, ttcs.len());
            ttcs.sort();
            if !ttcs.is_empty() {
                prop_assert_eq!(t.median_ms, ttcs[((ttcs.len() - 1) as f64 * 0.5).round() as usize]);
            }
        }
    }

    #[test]
    fn lifecycle_matches_posthogs_rules(
        rows in rows(),
        tz in zone(),
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week), Just(Interval::Month)],
        event in prop_oneof![Just(None), Just(Some("A")), Just(Some("B"))],
        from_d in 0i16..30,
        len_d in 0i16..20,
        threads in 1usize..3,
    ) {
        let cal = Calendar::new(tz).unwrap();
        let from = jiff::civil::date(2026, 3, 1).checked_add(jiff::Span::new().days(from_d as i64)).unwrap();
        let to = from.checked_add(jiff::Span::new().days(len_d as i64)).unwrap();
        let src = VecSource::new(rows.iter().copied());
        let q = LifecycleQuery { event: event.map(str::to_string), interval, calendar: cal.clone(), from, to, threads };
        let got = lifecycle(&src, &q).unwrap();

        // Naive: every event's period from its own date.
        let key = |ms: i64| cal.truncate(interval, cal.date_of(ms).unwrap());
        let next = |d: Date| cal.next(interval, d).unwrap();
        let first_shown = cal.truncate(interval, from);
        let last_shown = cal.truncate(interval, to);
        let before = cal.truncate(interval, first_shown.checked_sub(jiff::Span::new().days(1)).unwrap());
        let after = next(last_shown);
        let mut want: BTreeMap<Date, [i64; 4]> = BTreeMap::new();
        for (_, ev) in by_person(&rows) {
            let created = key(ev[0].0);
            if created > after { continue; }
            let active: Vec<Date> = ev.iter()
                .filter(|e| event.is_none_or(|n| n == e.1))
                .map(|e| key(e.0))
                .filter(|d| *d >= before && *d <= after)
                .collect::<BTreeSet<_>>().into_iter().collect();
            for (i, &p) in active.iter().enumerate() {
                let prev = if i == 0 { created } else { active[i - 1] };
                let s = if prev == p { 0 } else if i != 0 && next(prev) == p { 1 } else { 2 };
                want.entry(p).or_default()[s] += 1;
                if active.get(i + 1) != Some(&next(p)) {
                    want.entry(next(p)).or_default()[3] -= 1;
                }
            }
        }
        let mut d = first_shown;
        for period in &got.periods {
            prop_assert_eq!(&period.date, &d.to_string());
            let w = want.get(&d).copied().unwrap_or_default();
            prop_assert_eq!([period.new as i64, period.returning as i64, period.resurrecting as i64, period.dormant], w, "period {}", d);
            d = next(d);
        }
        prop_assert_eq!(d, next(last_shown));
    }

    #[test]
    fn retention_matches_a_cohort_count(
        rows in rows(),
        tz in zone(),
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week)],
        kind in prop_oneof![Just(RetentionKind::FirstTime), Just(RetentionKind::Recurring)],
        cumulative in any::<bool>(),
        start in 0usize..3,
        ret in 0usize..3,
        n in 1usize..8,
        from_d in 0i16..20,
        len_d in 0i16..15,
        threads in 1usize..3,
    ) {
        let cal = Calendar::new(tz).unwrap();
        let from = jiff::civil::date(2026, 3, 1).checked_add(jiff::Span::new().days(from_d as i64)).unwrap();
        let to = from.checked_add(jiff::Span::new().days(len_d as i64)).unwrap();
        let src = VecSource::new(rows.iter().copied());
        let q = RetentionQuery {
            start_event: NAMES[start].to_string(), return_event: NAMES[ret].to_string(), kind,
            interval, periods: n, cumulative, calendar: cal.clone(), from, to, threads,
        };
        let got = retention(&src, &q).unwrap();

        let key = |ms: i64| cal.truncate(interval, cal.date_of(ms).unwrap());
        let next = |d: Date| cal.next(interval, d).unwrap();
        let first = cal.truncate(interval, from);
        let last = cal.truncate(interval, to);
        let mut horizon = last;
        for _ in 0..=n { horizon = next(horizon); } // first date past the analysis (N periods past the last cohort)
        let mut want: BTreeMap<Date, Vec<u64>> = BTreeMap::new();
        for (_, ev) in by_person(&rows) {
            let cohorts: BTreeSet<Date> = match kind {
                RetentionKind::FirstTime => ev.iter().find(|e| e.1 == NAMES[start]).map(|e| key(e.0)).into_iter().collect(),
                RetentionKind::Recurring => ev.iter().filter(|e| e.1 == NAMES[start]).map(|e| key(e.0)).collect(),
            };
            let returns: BTreeSet<Date> = ev.iter().filter(|e| e.1 == NAMES[ret]).map(|e| key(e.0)).filter(|d| *d < horizon).collect();
            for c in cohorts.into_iter().filter(|c| *c >= first && *c <= last) {
                let row = want.entry(c).or_insert_with(|| vec![0; n + 1]);
                row[0] += 1;
                let mut target = c;
                for k in 1..=n {
                    target = next(target);
                    let hit = if cumulative { returns.range(target..).next().is_some() } else { returns.contains(&target) };
                    if hit { row[k] += 1; }
                }
            }
        }
        let mut d = first;
        for cohort in &got.cohorts {
            prop_assert_eq!(&cohort.date, &d.to_string());
            let w = want.get(&d).cloned().unwrap_or_else(|| vec![0; n + 1]);
            prop_assert_eq!(&cohort.values, &w, "cohort {}", d);
            d = next(d);
        }
        prop_assert_eq!(d, next(last));
    }
}

#[test]
fn bad_parameters_name_the_field() {
    let src = VecSource::new([(1, BASE, "A")]);
    let q = FunnelQuery::new(&["A"], HOUR, BASE, BASE + HOUR);
    assert_eq!(funnel(&src, &q).unwrap_err().field(), "steps");
    let q = FunnelQuery::new(&["A", ""], HOUR, BASE, BASE + HOUR);
    assert_eq!(funnel(&src, &q).unwrap_err().field(), "steps[1]");
    let q = FunnelQuery::new(&["A", "B"], 0, BASE, BASE + HOUR);
    assert_eq!(funnel(&src, &q).unwrap_err().field(), "window");
}

/// The stage of one person at instant `t`, straight from the definition.
fn naive_stage(
    ev: &[(i64, &str)],
    t: i64,
    rules: &lodestar_analytics::StageRules,
) -> Option<lodestar_analytics::Stage> {
    use lodestar_analytics::Stage;
    let before: Vec<(i64, &str)> = ev.iter().copied().filter(|e| e.0 < t).collect();
    let arrival = before.first()?.0;
    let is_activity =
        |n: &str| rules.activity_events.is_empty() || rules.activity_events.iter().any(|a| a == n);
    let active: Vec<i64> = before
        .iter()
        .filter(|e| is_activity(e.1))
        .map(|e| e.0)
        .collect();
    let day = 86_400_000i64;
    let quiet = t - active.last().copied().unwrap_or(arrival);
    if quiet > rules.churn_days as i64 * day {
        return Some(Stage::Churned);
    }
    if quiet > rules.dormant_days as i64 * day {
        return Some(Stage::Dormant);
    }
    // Returns: an activity more than dormant_days after the previous one (or the arrival).
    let mut previous = arrival;
    let mut last_return = None;
    for &a in &active {
        if a - previous > rules.dormant_days as i64 * day {
            last_return = Some(a);
        }
        previous = a;
    }
    if last_return.is_some_and(|r| t - r <= rules.resurrected_days as i64 * day) {
        return Some(Stage::Resurrected);
    }
    let conversions = before
        .iter()
        .filter(|e| e.1 == rules.conversion_event)
        .count() as u32;
    Some(if conversions == 0 {
        Stage::Onboarding
    } else if conversions >= rules.mature_conversions {
        Stage::Maturity
    } else {
        Stage::Growth
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn stages_match_their_definition(
        rows in rows(),
        tz in zone(),
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week)],
        dormant in 1u32..6,
        extra in 1u32..10,
        mature in 2u32..4,
        resurrected in 1u32..5,
        activity in prop_oneof![Just(vec![]), Just(vec!["A".to_string(), "B".to_string()])],
        from_d in 0i16..30,
        len_d in 0i16..20,
        threads in 1usize..3,
    ) {
        use lodestar_analytics::{Stage, StageRules, StagesQuery, stages};
        let rules = StageRules {
            activity_events: activity,
            conversion_event: "C".into(),
            dormant_days: dormant,
            churn_days: dormant + extra,
            mature_conversions: mature,
            resurrected_days: resurrected,
        };
        let cal = Calendar::new(tz).unwrap();
        let from = jiff::civil::date(2026, 3, 1).checked_add(jiff::Span::new().days(from_d as i64)).unwrap();
        let to = from.checked_add(jiff::Span::new().days(len_d as i64)).unwrap();
        let src = VecSource::new(rows.iter().copied());
        let q = StagesQuery { rules: rules.clone(), interval, calendar: cal.clone(), from, to, members: Some(Stage::Dormant), members_limit: usize::MAX, threads };
        let got = stages(&src, &q).unwrap();
        let end_of = |d: Date| cal.start_of(d.checked_add(jiff::Span::new().days(1)).unwrap()).unwrap();
        let persons = by_person(&rows);
        for point in &got.points {
            let d: Date = point.date.parse().unwrap();
            let mut want = vec![0u64; 6];
            for ev in persons.values() {
                if let Some(s) = naive_stage(ev, end_of(d), &rules) {
                    want[Stage::ALL.iter().position(|x| *x == s).unwrap()] += 1;
                }
            }
            prop_assert_eq!(&point.counts, &want, "at the end of {}", d);
        }
        // Points: the end of each period, the last one cut at `to`.
        prop_assert_eq!(got.points.last().map(|p| p.date.clone()), Some(to.to_string()));
        let mut flows: BTreeMap<(Option<Stage>, Stage), u64> = BTreeMap::new();
        for ev in persons.values() {
            if let Some(b) = naive_stage(ev, end_of(to), &rules) {
                *flows.entry((naive_stage(ev, end_of(from), &rules), b)).or_default() += 1;
            }
        }
        let got_flows: BTreeMap<(Option<Stage>, Stage), u64> = got.flows.iter().map(|f| ((f.from, f.to), f.persons)).collect();
        prop_assert_eq!(got_flows, flows);
        let dormant: Vec<u64> = persons.iter().filter(|(_, ev)| naive_stage(ev, end_of(to), &rules) == Some(Stage::Dormant)).map(|(p, _)| *p).collect();
        prop_assert_eq!(got.members.as_ref(), Some(&dormant));
        // The day's changes: each person whose stage at the end of `to` differs from the day
        // before's.
        let changes = lodestar_analytics::stages::stage_changes(&src, &rules, &cal, to, threads).unwrap();
        let got_changes: Vec<(u64, Option<Stage>, Stage)> = changes.iter().map(|c| (c.person, c.from, c.to)).collect();
        let day_before = to.checked_sub(jiff::Span::new().days(1)).unwrap();
        let mut want_changes = Vec::new();
        for (p, ev) in &persons {
            let (a, b) = (naive_stage(ev, end_of(day_before), &rules), naive_stage(ev, end_of(to), &rules));
            if let Some(b) = b && a != Some(b) {
                want_changes.push((*p, a, b));
            }
        }
        prop_assert_eq!(got_changes, want_changes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A person's stage history is their stage at the end of every day from their first
    /// event's day, and at now, kept where it changed.
    #[test]
    fn a_persons_stage_history_is_their_stage_day_by_day(
        rows in rows(),
        tz in zone(),
        dormant in 1u32..6,
        extra in 1u32..10,
        now_h in 0i64..(50 * 24),
    ) {
        use lodestar_analytics::{PersonSource, StageRules};
        let rules = StageRules {
            activity_events: vec![],
            conversion_event: "C".into(),
            dormant_days: dormant,
            churn_days: dormant + extra,
            mature_conversions: 2,
            resurrected_days: 3,
        };
        let cal = Calendar::new(tz).unwrap();
        let now = BASE + now_h * HOUR + 1;
        let src = VecSource::new(rows.iter().copied());
        let persons = by_person(&rows);
        let mut seen = 0;
        src.for_each_person(0, 1, &mut |person, ev| {
            seen += 1;
            let got = lodestar_analytics::stages::stage_history(&rules, src.names(), ev, &cal, now).unwrap();
            let naive = &persons[&person.0];
            let mut want = Vec::new();
            let mut before = None;
            let last = cal.date_of(now).unwrap();
            let mut d = cal.date_of(naive[0].0).unwrap();
            // Events after now (a clock behind the data) make no history yet.
            while d <= last {
                let at = if d == last { now } else { cal.start_of(d.checked_add(jiff::Span::new().days(1)).unwrap()).unwrap() };
                let s = naive_stage(naive, at, &rules);
                if let Some(to) = s && s != before {
                    want.push((d.to_string(), before, to));
                }
                before = s;
                d = d.checked_add(jiff::Span::new().days(1)).unwrap();
            }
            let got: Vec<_> = got.into_iter().map(|s| (s.day, s.from, s.to)).collect();
            assert_eq!(got, want, "person {}", person.0);
        });
        prop_assert_eq!(seen, persons.len());
    }
}
