//! Filters and breakdowns over a real store (parts, tail, merged persons) against the same
//! conditions evaluated by hand on the decoded messages and profiles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lodestar_analytics::filter::Filters;
use lodestar_analytics::registry::{self, Data};
use lodestar_analytics::{PersonSource, SnapshotSource, VecSource};
use lodestar_core::{FixedClock, JsonMap, Message, MessageKind, Timestamp};
use lodestar_store::{AppendBatch, EventStore, Profile, ProjectSettings, Store, StoreConfig};
use proptest::prelude::*;
use serde_json::{Value, json};

const NAMES: [&str; 3] = ["view", "cart", "buy"];
const PLANS: [Option<&str>; 3] = [Some("free"), Some("pro"), None];
const T0: i64 = 1_700_000_000_000;

fn msg(id: usize, user: Option<String>, anon: String, step: &Step) -> Message {
    let mut properties = JsonMap::new();
    if let Some(plan) = PLANS[step.plan] {
        properties.insert("plan".into(), json!(plan));
    }
    properties.insert("n".into(), json!(step.n));
    let mut traits = JsonMap::new();
    if let Some(tier) = step.tier {
        traits.insert("tier".into(), json!(if tier { "gold" } else { "silver" }));
    }
    Message {
        message_id: format!("m{id}"),
        kind: if step.tier.is_some() && user.is_some() {
            MessageKind::Identify
        } else {
            MessageKind::Track
        },
        event: Some(NAMES[step.event].to_string()),
        user_id: user,
        anonymous_id: Some(anon),
        previous_id: None,
        group_id: None,
        category: None,
        timestamp: Timestamp(T0 + step.minute * 60_000),
        original_timestamp: None,
        sent_at: None,
        received_at: Timestamp(T0 + step.minute * 60_000),
        properties,
        traits,
        set_once: JsonMap::new(),
        context: JsonMap::new(),
        integrations: JsonMap::new(),
        channel: None,
    }
}

#[derive(Debug, Clone)]
struct Step {
    anon: u8,
    user: Option<u8>,
    event: usize,
    minute: i64,
    plan: usize,
    n: u8,
    tier: Option<bool>,
    seal: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (
            0u8..6,
            proptest::option::of(0u8..3),
            0usize..3,
            0i64..600,
            0usize..3,
            0u8..5,
            proptest::option::weighted(0.2, any::<bool>()),
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(anon, user, event, minute, plan, n, tier, seal)| Step {
                anon,
                user,
                event,
                minute,
                plan,
                n,
                tier,
                seal,
            }),
        1..70,
    )
}

/// Per canonical person: (time, seq, name, properties), and profiles per canonical person.
type Decoded = (
    Vec<(u64, i64, u64, String, JsonMap)>,
    BTreeMap<u64, Profile>,
);

fn decoded(
    store: &Store,
    snapshot: &lodestar_store::Snapshot,
    p: lodestar_core::ProjectId,
) -> Decoded {
    let mut rows = Vec::new();
    snapshot
        .for_each_message(|person, seq, m| {
            let name = m.analytic_name().to_string();
            rows.push((person.0, m.timestamp.millis(), seq, name, m.properties));
            Ok(())
        })
        .unwrap();
    rows.sort_by_key(|r| (r.0, r.1, r.2));
    let mut profiles = BTreeMap::new();
    store
        .for_each_profile(p, &mut |profile| {
            profiles.insert(profile.person.0, profile);
            Ok(())
        })
        .unwrap();
    (rows, profiles)
}

fn events_of(source: &dyn PersonSource) -> Vec<(u64, Vec<i64>, Vec<String>)> {
    let mut seen = Vec::new();
    source.for_each_person(0, 1, &mut |person, ev| {
        let names = ev
            .names
            .iter()
            .map(|&n| source.names()[n as usize].clone())
            .collect();
        seen.push((person.0, ev.ts.to_vec(), names));
    });
    seen.sort();
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn filters_and_breakdowns_match_hand_evaluation(steps in steps(), scoped in any::<bool>(), threads in 1usize..3) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            StoreConfig { data_dir: dir.path().to_path_buf(), maintenance_interval_ms: 0, seal_rows: 7, max_seal_rows: 7, compact_fanin: 2, ..StoreConfig::default() },
            Arc::new(FixedClock::new(Timestamp(T0))),
        ).unwrap();
        let (p, _) = store.create_project("shop").unwrap();
        for (i, step) in steps.iter().enumerate() {
            let m = msg(i, step.user.map(|u| format!("u{u}")), format!("a{}", step.anon), step);
            store.append(p.id, AppendBatch { messages: vec![m], ..Default::default() }).unwrap().wait_blocking().unwrap();
            if step.seal {
                store.seal_now(p.id).unwrap();
                store.compact_now(p.id, false).unwrap();
            }
        }
        let snapshot = store.snapshot(p.id).unwrap();
        let (rows, profiles) = decoded(&store, &snapshot, p.id);

        // Keep "pro" events (only "buy" events when scoped) of persons with n ≥ 2 somewhere… no:
        // of gold-tier persons.
        let filters: Filters = serde_json::from_value(json!({
            "events": [{"property": "plan", "op": "eq", "value": "pro", "event": if scoped { Some("buy") } else { None }},
                       {"property": "n", "op": "lt", "value": 4}],
            "persons": [{"property": "tier", "op": "eq", "value": "gold"}],
        })).unwrap();
        let gold: BTreeSet<u64> = profiles.iter().filter(|(_, p)| p.traits.get("tier") == Some(&json!("gold"))).map(|(p, _)| *p).collect();
        let keep_event = |name: &str, props: &JsonMap| {
            let n_ok = props.get("n").and_then(Value::as_u64).is_some_and(|n| n < 4);
            let plan_ok = (scoped && name != "buy") || props.get("plan") == Some(&json!("pro"));
            n_ok && plan_ok
        };
        let kept: Vec<_> = rows.iter().filter(|r| gold.contains(&r.0) && keep_event(&r.3, &r.4)).collect();
        let naive = VecSource::new(kept.iter().map(|r| (r.0, r.1, r.3.as_str())));
        let source = SnapshotSource::filtered(&snapshot, &filters, Some(gold.iter().copied().collect()), threads).unwrap();
        prop_assert_eq!(events_of(&source), events_of(&naive));

        // A funnel broken down by the plan of each person's first "view" (first touch).
        let visit = |f: &mut dyn FnMut(&Profile)| {
            for p in profiles.values() {
                f(p);
            }
            Ok(())
        };
        let settings = ProjectSettings { timezone: "UTC".into(), defaults: JsonMap::new() };
        let data = Data { snapshot: &snapshot, settings: &settings, profiles: &visit, person_of_user: None };
        let params = json!({"steps": ["view", "buy"], "window": "1d", "date_from": "2023-11-14", "date_to": "2023-11-15",
                            "breakdown": {"property": "plan", "limit": 2}});
        let got = registry::run("funnel", params.to_string().as_bytes(), &data, threads).unwrap();
        let mut first_view: BTreeMap<u64, String> = BTreeMap::new();
        for r in &rows {
            if r.3 == "view" {
                first_view.entry(r.0).or_insert_with(|| r.4.get("plan").and_then(Value::as_str).unwrap_or("$none").to_string());
            }
        }
        let mut by_label: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for (p, l) in &first_view {
            by_label.entry(l.clone()).or_default().insert(*p);
        }
        let mut want: Vec<(String, BTreeSet<u64>)> = by_label.into_iter().collect();
        want.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        if want.len() > 2 {
            let rest: BTreeSet<u64> = want.drain(2..).flat_map(|g| g.1).collect();
            want.push(("$other".into(), rest));
        }
        let groups = got["breakdown"]["groups"].as_array().unwrap();
        prop_assert_eq!(groups.len(), want.len());
        for (g, (label, persons)) in groups.iter().zip(&want) {
            prop_assert_eq!(g["value"].as_str().unwrap(), label.as_str());
            prop_assert_eq!(g["persons"].as_u64().unwrap(), persons.len() as u64);
            // The group's funnel is the funnel of its persons' events.
            let subset = VecSource::new(rows.iter().filter(|r| persons.contains(&r.0)).map(|r| (r.0, r.1, r.3.as_str())));
            let alone = registry::run_on("funnel", &json!({"steps": ["view", "buy"], "window": "1d",
                "date_from": "2023-11-14", "date_to": "2023-11-15"}), &subset, 1).unwrap();
            prop_assert_eq!(&g["result"]["steps"], &alone["steps"]);
        }
    }
}

#[test]
fn bad_filters_and_breakdowns_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig {
            data_dir: dir.path().to_path_buf(),
            ..StoreConfig::default()
        },
        Arc::new(FixedClock::new(Timestamp(T0))),
    )
    .unwrap();
    let (p, _) = store.create_project("shop").unwrap();
    let snapshot = store.snapshot(p.id).unwrap();
    let none = |_: &mut dyn FnMut(&Profile)| Ok(());
    let settings = ProjectSettings {
        timezone: "UTC".into(),
        defaults: JsonMap::new(),
    };
    let data = Data {
        snapshot: &snapshot,
        settings: &settings,
        profiles: &none,
        person_of_user: None,
    };
    let field = |extra: Value| {
        let mut params =
            json!({"steps": ["a", "b"], "date_from": "2023-11-14", "date_to": "2023-11-15"});
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        match registry::run("funnel", params.to_string().as_bytes(), &data, 1).unwrap_err() {
            registry::RunError::Analysis(e) => e.field().to_string(),
            other => other.to_string(),
        }
    };
    assert_eq!(
        field(json!({"filters": {"events": [{"property": "x", "op": "gt"}]}})),
        "filters.events[0].value"
    );
    assert_eq!(
        field(json!({"filters": {"persons": [{"property": "x", "op": "is_set", "event": "a"}]}})),
        "filters.persons[0].event"
    );
    assert_eq!(
        field(json!({"breakdown": {"property": "plan", "of": "device"}})),
        "breakdown.of"
    );
    assert!(
        field(json!({"filters": {"events": [{"property": "x", "op": "approx"}]}}))
            .contains("filters")
    );
}
