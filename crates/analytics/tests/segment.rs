//! Segments: for random condition trees and random data, membership equals a naive
//! evaluator's, which recomputes every leaf from the raw rows.

use std::collections::{BTreeSet, HashMap};

use lodestar_analytics::VecSource;
use lodestar_analytics::filter::{Condition, Op};
use lodestar_analytics::profiles::ProfileTable;
use lodestar_analytics::segment::{Node, PersonFacts, SegmentQuery, ValueTest, segment};
use lodestar_analytics::stages::{Stage, StageRules, stage_at};
use proptest::prelude::*;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_772_323_200_000 + 60 * DAY;
const NAMES: [&str; 3] = ["A", "B", "Order Completed"];

/// (person, time, event, value, category property).
type Row = (u64, i64, &'static str, f64, Option<&'static str>);
const CATEGORIES: [&str; 2] = ["books", "toys"];

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        // Whole days before now (exactly on window edges), or a millisecond either side; a
        // value on some events.
        (
            1u64..25,
            1i64..70,
            -1i64..2,
            0usize..3,
            prop_oneof![Just(f64::NAN), (0u32..5).prop_map(|v| f64::from(v) * 10.0)],
            proptest::option::of(0usize..2),
        )
            .prop_map(|(p, d, jitter, n, v, c)| {
                (
                    p,
                    NOW - d * DAY + jitter,
                    NAMES[n],
                    v,
                    c.map(|c| CATEGORIES[c]),
                )
            }),
        0..150,
    )
}

fn facts() -> impl Strategy<Value = HashMap<u64, PersonFacts>> {
    proptest::collection::hash_map(
        1u64..25,
        (
            proptest::option::of(prop_oneof![Just("free"), Just("pro")]),
            proptest::option::of(0u32..80),
            proptest::option::of(0u32..500),
            proptest::option::of(0i64..90),
        ),
        0..25,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(p, (plan, age, clv, joined))| {
                let mut f = PersonFacts::default();
                if let Some(plan) = plan {
                    f.traits.insert("plan".into(), json!(plan));
                }
                if let Some(age) = age {
                    f.traits.insert("age".into(), json!(age));
                }
                if let Some(clv) = clv {
                    f.scores.insert("clv".into(), json!(clv));
                }
                if let Some(d) = joined {
                    // A date as text, whole days before now (on the edge) or as ms.
                    let t = lodestar_core::Timestamp(NOW - d * DAY);
                    let v = if d % 2 == 0 {
                        json!(t.to_rfc3339())
                    } else {
                        json!(t.0)
                    };
                    f.traits.insert("joined".into(), v);
                }
                (p, f)
            })
            .collect()
    })
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        prop_oneof![Just("free"), Just("pro")].prop_map(|v| Node::Trait {
            property: "plan".into(),
            op: Op::Eq,
            value: Some(json!(v)),
        }),
        (0u32..80).prop_map(|v| Node::Trait {
            property: "age".into(),
            op: Op::Gt,
            value: Some(json!(v)),
        }),
        (0u32..80, 0u32..40).prop_map(|(lo, w)| Node::Trait {
            property: "age".into(),
            op: Op::Between,
            value: Some(json!([lo, lo + w])),
        }),
        (0u32..90, any::<bool>()).prop_map(|(d, within)| Node::Trait {
            property: "joined".into(),
            op: if within {
                Op::WithinDays
            } else {
                Op::BeforeDays
            },
            value: Some(json!(d)),
        }),
        (0usize..3, 1u32..40).prop_map(|(n, days)| Node::FirstTime {
            event: NAMES[n].into(),
            days,
        }),
        (
            0usize..3,
            1u32..30,
            proptest::option::of(1u32..30),
            proptest::option::of(1u32..3)
        )
            .prop_map(|(n, days, active_days, min)| Node::Stopped {
                event: NAMES[n].into(),
                days,
                active_days,
                min,
            }),
        (0usize..3, 1u32..20, 1u32..40).prop_map(|(n, gap_days, days)| Node::Restarted {
            event: NAMES[n].into(),
            gap_days,
            days,
        }),
        Just(Node::InSegment { segment: 7 }),
        proptest::sample::subsequence(vec!["champions", "at_risk", "loyal"], 1..3).prop_map(
            |layers| Node::Rfm {
                any_of: layers.into_iter().map(str::to_string).collect(),
                days: None,
            }
        ),
        (
            0usize..3,
            proptest::option::of(0u32..3),
            proptest::option::of(0u32..4),
            proptest::option::of(1u32..60),
            proptest::option::of(0u32..5),
        )
            .prop_map(|(n, min, extra, days, at_least)| Node::Did {
                event: NAMES[n].into(),
                min,
                // Sometimes "did not" (`max: 0` alone), else a most at or above the least.
                max: extra.map(|e| if e == 3 && min.is_none() {
                    0
                } else {
                    min.unwrap_or(1) + e
                }),
                days,
                value: at_least.map(|v| ValueTest {
                    op: Op::Gte,
                    value: Some(json!(v * 10)),
                }),
                filters: Vec::new(),
            }),
        (0usize..3, 0usize..2, proptest::option::of(1u32..60)).prop_map(|(n, c, days)| {
            Node::Did {
                event: NAMES[n].into(),
                min: None,
                max: None,
                days,
                value: None,
                filters: vec![Condition {
                    event: None,
                    property: "category".into(),
                    op: Op::Eq,
                    value: Some(json!(CATEGORIES[c])),
                }],
            }
        }),
        (
            0usize..3,
            0usize..3,
            0u32..10,
            proptest::option::of(1u32..60)
        )
            .prop_map(|(a, b, w, days)| Node::Sequence {
                first: NAMES[a].into(),
                then: NAMES[b].into(),
                within_days: w,
                days,
            }),
        (0usize..3, 1u32..6, proptest::option::of(1u32..3)).prop_map(|(n, weeks, min_per_week)| {
            Node::Regularly {
                event: NAMES[n].into(),
                weeks,
                min_per_week,
            }
        }),
        proptest::sample::subsequence(Stage::ALL.to_vec(), 1..3)
            .prop_map(|any_of| Node::Stage { any_of }),
        (
            proptest::option::of(0usize..3),
            0usize..8,
            proptest::option::of(1u32..60),
            0u32..60
        )
            .prop_map(|(n, a, days, v)| Node::Aggregate {
                event: n.map(|n| NAMES[n].to_string()),
                agg: lodestar_analytics::segment::AGGREGATES[a].to_string(),
                days,
                op: Op::Gte,
                value: Some(json!(f64::from(v) / 2.0)),
            }),
        (0u32..500).prop_map(|v| Node::Score {
            score: "clv".into(),
            op: Op::Gte,
            value: Some(json!(v)),
        }),
        (1u32..70, any::<bool>()).prop_map(|(d, within)| Node::LastSeen {
            within_days: within.then_some(d),
            before_days: (!within).then_some(d),
        }),
        (1u32..70, any::<bool>()).prop_map(|(d, within)| Node::FirstSeen {
            within_days: within.then_some(d),
            before_days: (!within).then_some(d),
        }),
    ]
}

fn tree() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|all| Node::And { all }),
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|any| Node::Or { any }),
            inner.prop_map(|n| Node::Not { node: Box::new(n) }),
        ]
    })
}

fn rules() -> StageRules {
    StageRules::preset("ecommerce").unwrap()
}

/// Buyers' RFM layers over the default window (the kernel is checked in tests/rfm.rs; here
/// the tree's logic around it).
const RFM_LAYERS: [(u64, &str); 5] = [
    (1, "champions"),
    (4, "at_risk"),
    (5, "champions"),
    (12, "hibernating"),
    (20, "at_risk"),
];

/// The members of saved segment 7 (for `in_segment`).
const SEGMENT_7: [u64; 4] = [2, 3, 11, 30];

type Ev<'a> = (i64, &'a str, f64, Option<&'a str>);

/// Straight from the definitions, on one person's rows (time-sorted).
fn naive(
    node: &Node,
    p: u64,
    ev: &[Ev<'_>],
    f: Option<&PersonFacts>,
    stage: Option<Stage>,
) -> bool {
    let num = |v: &Value| v.as_f64();
    let past = |d: u32| NOW - i64::from(d) * DAY;
    match node {
        Node::And { all } => all.iter().all(|n| naive(n, p, ev, f, stage)),
        Node::Or { any } => any.iter().any(|n| naive(n, p, ev, f, stage)),
        Node::Not { node } => !naive(node, p, ev, f, stage),
        Node::InSegment { .. } => SEGMENT_7.contains(&p),
        Node::Computed { .. } => unreachable!("not generated: tests/computed.rs"),
        Node::Rfm { any_of, .. } => RFM_LAYERS
            .iter()
            .any(|(q, l)| *q == p && any_of.iter().any(|a| a == l)),
        Node::FirstTime { event, days } => ev
            .iter()
            .find(|e| e.1 == event && e.0 < NOW)
            .is_some_and(|e| e.0 >= past(*days)),
        Node::Stopped {
            event,
            days,
            active_days,
            min,
        } => {
            let lo = past(*days) - i64::from(active_days.unwrap_or(*days)) * DAY;
            let before = ev
                .iter()
                .filter(|e| e.1 == event && e.0 >= lo && e.0 < past(*days))
                .count() as u32;
            let since = ev
                .iter()
                .filter(|e| e.1 == event && e.0 >= past(*days) && e.0 < NOW)
                .count();
            before >= min.unwrap_or(1) && since == 0
        }
        Node::Restarted {
            event,
            gap_days,
            days,
        } => {
            let times: Vec<i64> = ev
                .iter()
                .filter(|e| e.1 == event && e.0 < NOW)
                .map(|e| e.0)
                .collect();
            times
                .windows(2)
                .any(|w| w[1] >= past(*days) && w[1] - w[0] >= i64::from(*gap_days) * DAY)
        }
        Node::Trait {
            property,
            op,
            value,
        } => {
            let got = f.and_then(|f| f.traits.get(property));
            let ms = |g: &Value| {
                g.as_i64()
                    .or_else(|| lodestar_core::Timestamp::parse(g.as_str().unwrap()).map(|t| t.0))
                    .unwrap()
            };
            match (op, got, value) {
                (Op::Eq, Some(g), Some(v)) => g == v,
                (Op::Gt, Some(g), Some(v)) => num(g).unwrap() > num(v).unwrap(),
                (Op::Between, Some(g), Some(v)) => {
                    let g = num(g).unwrap();
                    g >= num(&v[0]).unwrap() && g <= num(&v[1]).unwrap()
                }
                (Op::WithinDays, Some(g), Some(v)) => {
                    ms(g) >= NOW - num(v).unwrap() as i64 * DAY && ms(g) <= NOW
                }
                (Op::BeforeDays, Some(g), Some(v)) => ms(g) < NOW - num(v).unwrap() as i64 * DAY,
                (_, None, _) => false,
                _ => unreachable!("generated ops only"),
            }
        }
        Node::Did {
            event,
            min,
            max,
            days,
            value,
            filters,
        } => {
            let mut n = 0u32;
            for &(t, name, v, c) in ev {
                let in_window = days.is_none_or(|d| t >= NOW - i64::from(d) * DAY);
                let passes = value.as_ref().is_none_or(|test| {
                    !v.is_nan() && v >= num(test.value.as_ref().unwrap()).unwrap()
                }) && filters
                    .iter()
                    .all(|w| c.is_some_and(|c| Some(&json!(c)) == w.value.as_ref()));
                if name == event && t < NOW && in_window && passes {
                    n += 1;
                }
            }
            n >= min.unwrap_or(if max.is_some() { 0 } else { 1 }) && max.is_none_or(|m| n <= m)
        }
        Node::Sequence {
            first,
            then,
            within_days,
            days,
        } => {
            let ok = |t: i64| t < NOW && days.is_none_or(|d| t >= NOW - i64::from(d) * DAY);
            (0..ev.len()).any(|i| {
                (i + 1..ev.len()).any(|j| {
                    ev[i].1 == first
                        && ev[j].1 == then
                        && ok(ev[i].0)
                        && ok(ev[j].0)
                        && ev[j].0 - ev[i].0 <= i64::from(*within_days) * DAY
                })
            })
        }
        Node::Regularly {
            event,
            weeks,
            min_per_week,
        } => (0..i64::from(*weeks)).all(|k| {
            let (lo, hi) = (NOW - (k + 1) * 7 * DAY, NOW - k * 7 * DAY);
            let n = ev
                .iter()
                .filter(|e| e.1 == event && e.0 >= lo && e.0 < hi)
                .count() as u32;
            n >= min_per_week.unwrap_or(1)
        }),
        Node::Aggregate {
            event,
            agg,
            days,
            value,
            ..
        } => {
            let picked: Vec<&Ev<'_>> = ev
                .iter()
                .filter(|e| {
                    e.0 < NOW
                        && days.is_none_or(|d| e.0 >= NOW - i64::from(d) * DAY)
                        && event.as_deref().is_none_or(|n| n == e.1)
                })
                .collect();
            let values: Vec<f64> = picked.iter().map(|e| e.2).filter(|v| !v.is_nan()).collect();
            let got = match agg.as_str() {
                "count" => Some(picked.len() as f64),
                "days_active" => Some(
                    picked
                        .iter()
                        .map(|e| (NOW - 1 - e.0) / DAY)
                        .collect::<BTreeSet<_>>()
                        .len() as f64,
                ),
                "sum" => Some(values.iter().sum()),
                "avg" if !values.is_empty() => {
                    Some(values.iter().sum::<f64>() / values.len() as f64)
                }
                "min" => values
                    .iter()
                    .copied()
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v)))),
                "max" => values
                    .iter()
                    .copied()
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
                "first" => values.first().copied(),
                "last" => values.last().copied(),
                _ => None,
            };
            got.is_some_and(|g| g >= num(value.as_ref().unwrap()).unwrap())
        }
        Node::Stage { any_of } => stage.is_some_and(|s| any_of.contains(&s)),
        Node::Score { value, .. } => f
            .and_then(|f| f.scores.get("clv"))
            .is_some_and(|c| num(c).unwrap() >= num(value.as_ref().unwrap()).unwrap()),
        Node::FirstSeen {
            within_days,
            before_days,
        }
        | Node::LastSeen {
            within_days,
            before_days,
        } => {
            let past: Vec<i64> = ev.iter().map(|e| e.0).filter(|&t| t < NOW).collect();
            let t = if matches!(node, Node::FirstSeen { .. }) {
                // The first event at all must be in the past to count.
                ev.first().map(|e| e.0).filter(|&t| t < NOW)
            } else {
                past.iter().max().copied()
            };
            match (t, within_days, before_days) {
                (None, ..) => false,
                (Some(t), Some(d), _) => t >= NOW - i64::from(*d) * DAY,
                (Some(t), None, Some(d)) => t < NOW - i64::from(*d) * DAY,
                _ => unreachable!("checked"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn membership_matches_a_naive_evaluator(rows in rows(), facts in facts(), root in tree(), threads in 1usize..4) {
        let source = VecSource::with_properties(rows.iter().map(|&(p, t, n, v, c)| {
            let mut props = lodestar_core::JsonMap::new();
            if let Some(c) = c {
                props.insert("category".into(), json!(c));
            }
            (p, t, n, v, props)
        }));
        let q = SegmentQuery { root: root.clone(), now: NOW, rules: rules(), sample: usize::MAX, threads,
            rfm: [(365, RFM_LAYERS.iter().map(|(p, l)| (*p, l.to_string())).collect())].into_iter().collect() };
        // As in a store, every person with events has a profile (maybe empty); some only a
        // profile.
        let mut facts = facts;
        for r in &rows {
            facts.entry(r.0).or_default();
        }
        let mut table = ProfileTable::from_facts(&facts, &root.trait_keys());
        table.set_memberships([(7, SEGMENT_7.to_vec())].into_iter().collect());
        let got = segment(&source, &table, &q).unwrap();
        let mut by_person: std::collections::BTreeMap<u64, Vec<Ev<'_>>> = Default::default();
        for &(p, t, n, v, c) in &rows {
            by_person.entry(p).or_default().push((t, n, v, c));
        }
        // Persons with a profile and no events are tested too.
        for p in facts.keys() {
            by_person.entry(*p).or_default();
        }
        prop_assert_eq!(table.len(), by_person.len());
        let mut want = BTreeSet::new();
        for (p, ev) in by_person.iter_mut() {
            ev.sort_by_key(|e| e.0);
            // The stage leaf uses the stage kernel's own per-person function (itself checked
            // against its definition in tests/kernels.rs).
            let one = VecSource::new(ev.iter().map(|&(t, n, _, _)| (*p, t, n)));
            let mut stage = None;
            lodestar_analytics::PersonSource::for_each_person(&one, 0, 1, &mut |_, e| {
                stage = stage_at(&rules(), lodestar_analytics::PersonSource::names(&one), e, NOW);
            });
            if naive(&root, *p, ev, facts.get(p), stage) {
                want.insert(*p);
            }
        }
        prop_assert_eq!(got.size as usize, want.len());
        prop_assert_eq!(got.sample.iter().copied().collect::<BTreeSet<_>>(), want);
        prop_assert_eq!(got.persons as usize, by_person.len());
    }
}

#[test]
fn errors_name_the_node() {
    let check = |v: Value| {
        serde_json::from_value::<Node>(v)
            .unwrap()
            .check()
            .unwrap_err()
            .field()
            .to_string()
    };
    assert_eq!(check(json!({"type": "and", "all": []})), "all");
    assert_eq!(
        check(json!({"type": "or", "any": [
            {"type": "stage", "in": ["dormant"]},
            {"type": "and", "all": [{"type": "did", "event": "A", "min": 3, "max": 1}]}
        ]})),
        "any[1].all[0].max"
    );
    assert_eq!(
        check(
            json!({"type": "not", "node": {"type": "score", "score": "ltv", "op": "gt", "value": 1}})
        ),
        "node.score"
    );
    assert_eq!(
        check(json!({"type": "trait", "property": "plan", "op": "in", "value": "pro"})),
        "value"
    );
    assert_eq!(check(json!({"type": "last_seen"})), "within_days");
    assert!(serde_json::from_value::<Node>(json!({"type": "astrology"})).is_err());
}

#[test]
fn habits_and_sequences_by_hand() {
    // One event exactly 7 days before now is in the last week: [now − 7 d, now).
    let rows = vec![
        (1u64, NOW - 7 * DAY, "A", f64::NAN),
        (1, NOW - 10 * DAY, "A", f64::NAN),
        (2, NOW - 3 * DAY, "B", 30.0),
        (2, NOW - DAY, "Order Completed", f64::NAN),
        // Both in the 24 hours [now − 2 d, now − 1 d): one active day.
        (3, NOW - 2 * DAY, "C", f64::NAN),
        (3, NOW - 2 * DAY + 1, "C", f64::NAN),
    ];
    let source = VecSource::with_values(rows);
    let run = |root: Value| {
        let q = SegmentQuery {
            root: serde_json::from_value(root).unwrap(),
            now: NOW,
            rules: rules(),
            sample: 10,
            threads: 1,
            rfm: Default::default(),
        };
        segment(&source, &ProfileTable::default(), &q)
            .unwrap()
            .sample
    };
    assert_eq!(
        run(json!({"type": "regularly", "event": "A", "weeks": 2})),
        vec![1]
    );
    assert_eq!(
        run(json!({"type": "regularly", "event": "A", "weeks": 3})),
        Vec::<u64>::new()
    );
    assert_eq!(
        run(json!({"type": "sequence", "first": "B", "then": "Order Completed", "within_days": 2})),
        vec![2]
    );
    assert_eq!(
        run(json!({"type": "sequence", "first": "B", "then": "Order Completed", "within_days": 1})),
        Vec::<u64>::new()
    );
    assert_eq!(
        run(json!({"type": "did", "event": "B", "value": {"op": "gte", "value": 30}})),
        vec![2]
    );
    assert_eq!(
        run(json!({"type": "did", "event": "B", "value": {"op": "gt", "value": 30}})),
        Vec::<u64>::new()
    );
    assert_eq!(
        run(
            json!({"type": "aggregate", "event": "C", "agg": "days_active", "op": "eq", "value": 1})
        ),
        vec![3]
    );
    // An event nobody did: counted 0 times by everyone.
    assert_eq!(
        run(
            json!({"type": "aggregate", "event": "Nobody", "agg": "count", "op": "eq", "value": 0})
        ),
        vec![1, 2, 3]
    );
    assert_eq!(
        run(
            json!({"type": "aggregate", "event": "B", "agg": "sum", "days": 7, "op": "gte", "value": 30})
        ),
        vec![2]
    );
}
