//! Computed attributes: for random events and definitions, every person's value equals one
//! computed straight from the definition; on a real store, the values a profile cache keeps
//! current through new events and time passing equal a fresh computation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lodestar_analytics::VecSource;
use lodestar_analytics::computed::{COMPUTED_AGGREGATES, Computed, compute_all};
use lodestar_analytics::profiles::ProfileCache;
use lodestar_core::{FixedClock, JsonMap, Message, MessageKind, Timestamp};
use lodestar_store::{AppendBatch, EventStore, Store, StoreConfig};
use proptest::prelude::*;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_772_323_200_000;
const NAMES: [&str; 2] = ["View", "Order"];
const CATEGORIES: [&str; 3] = ["books", "toys", "food"];

/// (person, time, event, value, category).
type Row = (u64, i64, &'static str, f64, Option<&'static str>);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            1u64..8,
            0i64..40,
            -1i64..2,
            0usize..2,
            prop_oneof![Just(f64::NAN), (1u32..5).prop_map(|v| f64::from(v) * 5.0)],
            proptest::option::of(0usize..3),
        )
            .prop_map(|(p, d, j, n, v, c)| {
                (p, NOW - d * DAY + j, NAMES[n], v, c.map(|c| CATEGORIES[c]))
            }),
        0..80,
    )
}

fn defs() -> impl Strategy<Value = Vec<Computed>> {
    proptest::collection::vec(
        (
            proptest::option::of(0usize..2),
            any::<bool>(),
            0usize..COMPUTED_AGGREGATES.len(),
            proptest::option::of(1u32..35),
        ),
        1..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (event, by_property, agg, days))| Computed {
                name: format!("a{i}"),
                event: event.map(|e| NAMES[e].to_string()),
                property: by_property.then(|| "category".to_string()),
                agg: COMPUTED_AGGREGATES[agg].to_string(),
                days,
            })
            .collect()
    })
}

/// One event of a person: (time, event, value, category).
type Ev<'a> = (i64, &'a str, f64, Option<&'a str>);

/// Straight from the definition: one person's rows, time-sorted.
fn naive(d: &Computed, ev: &[Ev<'_>]) -> Option<Value> {
    let from = d.days.map_or(i64::MIN, |days| NOW - i64::from(days) * DAY);
    let picked: Vec<_> = ev
        .iter()
        .filter(|e| e.0 >= from && e.0 < NOW && d.event.as_deref().is_none_or(|n| n == e.1))
        .collect();
    let values: Vec<Value> = picked
        .iter()
        .filter_map(|e| match &d.property {
            Some(_) => e.3.map(|c| json!(c)),
            None => (!e.2.is_nan()).then(|| json!(e.2)),
        })
        .collect();
    let nums: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    let n = |x: f64| Some(json!(x));
    match d.agg.as_str() {
        "count" => n(picked.len() as f64),
        "days_active" => n(picked
            .iter()
            .map(|e| (NOW - 1 - e.0) / DAY)
            .collect::<BTreeSet<_>>()
            .len() as f64),
        "sum" => n(nums.iter().sum()),
        "avg" if !nums.is_empty() => n(nums.iter().sum::<f64>() / nums.len() as f64),
        "min" if !nums.is_empty() => n(nums.iter().copied().fold(f64::INFINITY, f64::min)),
        "max" if !nums.is_empty() => n(nums.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        "first_time" => picked
            .first()
            .map(|e| json!(lodestar_core::Timestamp(e.0).to_rfc3339())),
        "last_time" => picked
            .last()
            .map(|e| json!(lodestar_core::Timestamp(e.0).to_rfc3339())),
        "first" => values.first().cloned(),
        "last" => values.last().cloned(),
        "distinct_count" => n(values
            .iter()
            .map(Value::to_string)
            .collect::<BTreeSet<_>>()
            .len() as f64),
        "most_frequent" => {
            // Highest count; among equals, the one whose last occurrence is latest.
            let mut best: Option<(usize, usize, &Value)> = None;
            for (i, v) in values.iter().enumerate() {
                let count = values.iter().filter(|w| *w == v).count();
                let last = values.iter().rposition(|w| w == v).unwrap();
                if i == last && best.is_none_or(|b| (count, last) > (b.0, b.1)) {
                    best = Some((count, last, v));
                }
            }
            best.map(|b| b.2.clone())
        }
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn values_match_the_definitions(rows in rows(), defs in defs(), threads in 1usize..3) {
        let source = VecSource::with_properties(rows.iter().map(|&(p, t, n, v, c)| {
            let mut props = JsonMap::new();
            if let Some(c) = c {
                props.insert("category".into(), json!(c));
            }
            (p, t, n, v, props)
        }));
        let got = compute_all(&source, &defs, NOW, threads).unwrap();
        let mut by_person: BTreeMap<u64, Vec<Ev<'_>>> = BTreeMap::new();
        for &(p, t, n, v, c) in &rows {
            by_person.entry(p).or_default().push((t, n, v, c));
        }
        for (k, d) in defs.iter().enumerate() {
            for (p, ev) in by_person.iter_mut() {
                ev.sort_by_key(|e| e.0);
                let want = naive(d, ev);
                let (_, value, expires) = got[k]
                    .iter()
                    .find(|r| r.0 == *p)
                    .cloned()
                    .expect("every person with events");
                prop_assert_eq!(&value, &want, "{:?} for person {}", d, p);
                // It holds until the oldest counted event leaves the window.
                let counted = ev.iter().filter(|e| {
                    d.days.is_none_or(|days| e.0 >= NOW - i64::from(days) * DAY)
                        && e.0 < NOW
                        && d.event.as_deref().is_none_or(|n| n == e.1)
                }).map(|e| e.0).min();
                let want_expiry = match (d.days, counted) {
                    (Some(days), Some(t)) => t + i64::from(days) * DAY,
                    _ => i64::MAX,
                };
                if d.property.is_none() {
                    prop_assert_eq!(expires, want_expiry);
                }
            }
        }
    }
}

fn track(id: &str, user: &str, ts: i64, event: &str, props: JsonMap) -> Message {
    let mut m = Message::new(MessageKind::Track, id, Timestamp(ts));
    m.event = Some(event.into());
    m.user_id = Some(user.into());
    m.properties = props;
    m
}

#[test]
fn a_cache_keeps_computed_attributes_current_through_events_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig {
            data_dir: dir.path().to_path_buf(),
            maintenance_interval_ms: 0,
            ..StoreConfig::default()
        },
        Arc::new(FixedClock::new(Timestamp(NOW))),
    )
    .unwrap();
    let (project, _) = store.create_project("shop").unwrap();
    let defs = json!([
        {"name": "spend_30d", "event": "Order", "agg": "sum", "days": 30},
        {"name": "orders", "event": "Order", "agg": "count"},
        {"name": "favourite_category", "event": "View", "property": "category",
         "agg": "most_frequent", "days": 14}
    ]);
    let mut settings = store.project_settings(project.id).unwrap();
    settings.defaults.insert("computed".into(), defs);
    store.set_project_settings(project.id, &settings).unwrap();
    let mut n = 0;
    let mut send = |user: &str, at: i64, event: &str, props: Value| {
        n += 1;
        let m = track(
            &format!("m{n}"),
            user,
            at,
            event,
            props.as_object().unwrap().clone(),
        );
        store
            .append(
                project.id,
                AppendBatch {
                    messages: vec![m],
                    ..Default::default()
                },
            )
            .unwrap()
            .wait_blocking()
            .unwrap();
    };
    send("u1", NOW - 20 * DAY, "Order", json!({"revenue": 100}));
    send("u1", NOW - 2 * DAY, "View", json!({"category": "books"}));
    send("u2", NOW - 5 * DAY, "Order", json!({"revenue": 40}));
    let cache = ProfileCache::default();
    let facts = |cache: &ProfileCache, now: i64, user: &str| {
        let person = store
            .find_profile(project.id, Some(user), None, None)
            .unwrap()
            .unwrap()
            .person
            .0;
        let snapshot = store.snapshot(project.id).unwrap();
        cache
            .with_table(&store, &project, &snapshot, &[], &[], (now, 2), |t| {
                t.facts(person).unwrap().traits
            })
            .unwrap()
    };
    let get = |m: &JsonMap, k: &str| m.get(&format!("computed.{k}")).cloned();
    let first = facts(&cache, NOW, "u1");
    assert_eq!(get(&first, "spend_30d"), Some(json!(100.0)));
    assert_eq!(get(&first, "favourite_category"), Some(json!("books")));
    // New events: only u1 is touched; the values follow.
    send("u1", NOW - DAY, "Order", json!({"revenue": 50}));
    send("u1", NOW - DAY, "View", json!({"category": "toys"}));
    send("u1", NOW - 3_600_000, "View", json!({"category": "toys"}));
    let later = facts(&cache, NOW, "u1");
    assert_eq!(get(&later, "spend_30d"), Some(json!(150.0)));
    assert_eq!(get(&later, "orders"), Some(json!(2.0)));
    assert_eq!(get(&later, "favourite_category"), Some(json!("toys")));
    // Time passes: the first order leaves the 30-day window with no new event.
    let month = NOW + 11 * DAY;
    let aged = facts(&cache, month, "u1");
    assert_eq!(get(&aged, "spend_30d"), Some(json!(50.0)));
    assert_eq!(get(&aged, "orders"), Some(json!(2.0)));
    // Everything the cache kept equals a fresh computation, for every person.
    for user in ["u1", "u2"] {
        for at in [month, month + 20 * DAY] {
            assert_eq!(
                facts(&cache, at, user),
                facts(&ProfileCache::default(), at, user),
                "{user} at {at}"
            );
        }
    }
    // Segments test them, and a profile shows them.
    let view = lodestar_analytics::jobs::person_view(
        &store,
        &project,
        Some("u2"),
        None,
        None,
        Timestamp(NOW),
        5,
    )
    .unwrap()
    .unwrap();
    assert_eq!(view.computed.get("spend_30d"), Some(&json!(40.0)));
    assert_eq!(view.computed.get("favourite_category"), Some(&Value::Null));
    let preview = lodestar_analytics::jobs::segment_preview(
        &store,
        &project,
        &cache,
        json!({"condition": {"type": "computed", "name": "spend_30d", "op": "gte", "value": 40}})
            .to_string()
            .as_bytes(),
        Timestamp(NOW),
        2,
    )
    .unwrap();
    assert_eq!(preview.size, 2);
}
