//! A person's profile on a real store: `$set` / `$set_once` history, manual and rule-based
//! tags, consent per channel, the time zone and the segments they are in.

use std::sync::Arc;

use lodestar_analytics::jobs::{create_segment, edit_profiles, person_view, segment_preview};
use lodestar_analytics::profiles::ProfileCache;
use lodestar_core::{FixedClock, Message, MessageKind, Timestamp};
use lodestar_store::{AppendBatch, EventStore, Store, StoreConfig};
use serde_json::{Value, json};

const T0: i64 = 1_772_323_200_000;

const DAY: i64 = 86_400_000;

fn track(id: &str, user: &str, at: i64, event: &str, props: Value) -> Message {
    let mut m = Message::new(MessageKind::Track, id, Timestamp(at));
    m.user_id = Some(user.into());
    m.event = Some(event.into());
    m.properties = props.as_object().unwrap().clone();
    m
}

fn identify(id: &str, user: &str, at: i64, traits: Value, set_once: Value) -> Message {
    let mut m = Message::new(MessageKind::Identify, id, Timestamp(at));
    m.user_id = Some(user.into());
    m.traits = traits.as_object().unwrap().clone();
    m.set_once = set_once.as_object().unwrap().clone();
    m
}

#[test]
fn history_tags_consent_zone_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig {
            data_dir: dir.path().to_path_buf(),
            maintenance_interval_ms: 0,
            ..StoreConfig::default()
        },
        Arc::new(FixedClock::new(Timestamp(T0))),
    )
    .unwrap();
    let (project, _) = store.create_project("shop").unwrap();
    let messages = vec![
        identify(
            "i1",
            "u1",
            T0 - 3000,
            json!({"plan": "free", "timezone": "Asia/Shanghai"}),
            json!({"first_source": "ad"}),
        ),
        // Same value again: no change recorded; a second set_once is ignored.
        identify(
            "i2",
            "u1",
            T0 - 2000,
            json!({"plan": "free"}),
            json!({"first_source": "seo"}),
        ),
        identify("i3", "u1", T0 - 1000, json!({"plan": "pro"}), json!({})),
        identify(
            "i4",
            "u2",
            T0 - 1000,
            json!({"plan": "free", "timezone": "Mars/Olympus"}),
            json!({}),
        ),
        track(
            "o1",
            "u1",
            T0 - 5 * DAY,
            "Order Completed",
            json!({"revenue": 120}),
        ),
        track(
            "o2",
            "u2",
            T0 - 40 * DAY,
            "Order Completed",
            json!({"revenue": 15}),
        ),
        track(
            "n1",
            "u1",
            T0 - 3 * DAY,
            "NPS Survey Answered",
            json!({"score": 4}),
        ),
        track(
            "n2",
            "u1",
            T0 - 2 * DAY,
            "NPS Survey Answered",
            json!({"score": 9}),
        ),
    ];
    store
        .append(
            project.id,
            AppendBatch {
                messages,
                ..Default::default()
            },
        )
        .unwrap()
        .wait_blocking()
        .unwrap();
    let now = Timestamp(T0);
    let edit = |body: Value| edit_profiles(&store, &project, body.to_string().as_bytes(), now);
    let done = edit(
        json!({"user_ids": ["u1", "ghost"], "add_tags": ["vip", "beta"],
                           "consent": {"email": true, "sms": false}}),
    )
    .unwrap();
    assert_eq!((done.updated, done.unknown), (1, 1));
    let again =
        edit(json!({"user_ids": ["u1"], "add_tags": ["vip"], "consent": {"email": true}})).unwrap();
    assert_eq!((again.updated, again.unchanged), (0, 1));
    edit(json!({"user_ids": ["u1"], "remove_tags": ["beta"], "consent": {"sms": true}})).unwrap();
    let bad = edit(json!({"user_ids": ["u1"], "consent": {"fax": true}})).unwrap_err();
    assert!(bad.to_string().contains("consent.fax"), "{bad}");

    let cache = ProfileCache::default();
    let tag = json!({"name": "高价值", "tag": true,
                     "condition": {"type": "trait", "property": "plan", "op": "eq", "value": "pro"}});
    let seg = create_segment(&store, &project, &cache, tag.to_string().as_bytes(), now, 2).unwrap();
    let view = person_view(&store, &project, Some("u1"), None, None, now, 50)
        .unwrap()
        .unwrap();
    assert_eq!(view.tags, vec!["vip".to_string(), "高价值".to_string()]);
    assert_eq!(view.consent.get("email"), Some(&json!(true)));
    assert_eq!(view.consent.get("sms"), Some(&json!(true)));
    assert_eq!(view.timezone, "Asia/Shanghai");
    assert_eq!(view.segments.len(), 1);
    assert_eq!(
        (view.segments[0].segment, view.segments[0].tag),
        (seg.id, true)
    );
    assert_eq!(view.segment_history.len(), 1);
    assert!(view.segment_history[0].entered);
    // The latest NPS answer, and the RFM layer the rfm analysis gives the same buyer.
    let nps = view.nps.clone().unwrap();
    assert_eq!(
        (nps.score, nps.category.as_deref()),
        (9.0, Some("promoter"))
    );
    let day = |t: i64| Timestamp(t).to_rfc3339()[..10].to_string();
    let rfm = lodestar_analytics::registry::run_on_store(
        &store,
        &project,
        "rfm",
        json!({"date_from": day(T0 - 365 * DAY), "date_to": day(T0 - DAY), "list": 10})
            .to_string()
            .as_bytes(),
        1,
    )
    .unwrap();
    let u1 = view.profile.person.0;
    let want = rfm["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["person"] == u1)
        .map(|p| p["layer"].as_str().unwrap().to_string());
    assert!(want.is_some());
    assert_eq!(view.rfm_layer, want);
    // Oldest first: what changed, in order, and nothing for repeats.
    let history: Vec<(String, Value, String)> = view
        .trait_history
        .iter()
        .rev()
        .map(|c| (c.key.clone(), c.value.clone(), c.op.clone()))
        .collect();
    let want: Vec<(String, Value, String)> = [
        ("plan", json!("free"), "set"),
        ("timezone", json!("Asia/Shanghai"), "set"),
        ("first_source", json!("ad"), "set_once"),
        ("plan", json!("pro"), "set"),
        ("tags", json!(["vip", "beta"]), "set"),
        ("consent", json!({"email": true, "sms": false}), "set"),
        ("tags", json!(["vip"]), "set"),
        ("consent", json!({"email": true, "sms": true}), "set"),
    ]
    .into_iter()
    .map(|(k, v, o)| (k.to_string(), v, o.to_string()))
    .collect();
    // Keys of one message are recorded in the map's order; compare per message as sets.
    let mut got_sorted = history.clone();
    let mut want_sorted = want.clone();
    got_sorted.sort_by_key(|h| format!("{h:?}"));
    want_sorted.sort_by_key(|h| format!("{h:?}"));
    assert_eq!(got_sorted, want_sorted);
    // Across messages the order is the arrival order: the identifies come first.
    assert_eq!(history[3], want[3]);
    assert_eq!(history[..2].iter().filter(|h| h.0 == "plan").count(), 1);
    // A zone that is not one falls back to the project's.
    let u2 = person_view(&store, &project, Some("u2"), None, None, now, 5)
        .unwrap()
        .unwrap();
    assert_eq!(
        u2.timezone,
        store.project_settings(project.id).unwrap().timezone
    );
    assert!(u2.tags.is_empty());
    // Segments read manual tags and consent like any trait.
    let preview = |condition: Value| {
        segment_preview(
            &store,
            &project,
            &cache,
            json!({"condition": condition}).to_string().as_bytes(),
            now,
            2,
        )
        .unwrap()
        .size
    };
    assert_eq!(
        preview(json!({"type": "trait", "property": "tags", "op": "contains", "value": "vip"})),
        1
    );
    assert_eq!(
        preview(json!({"type": "trait", "property": "consent.sms", "op": "eq", "value": true})),
        1
    );
    assert_eq!(
        preview(
            json!({"type": "not", "node": {"type": "trait", "property": "consent.email", "op": "eq", "value": true}})
        ),
        1
    );
}
