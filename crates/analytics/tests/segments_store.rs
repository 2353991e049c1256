//! Saved segments on a real store: a person crossing a boundary — a purchase, time passing, a
//! model rescore — enters or exits exactly once, the event recorded once, across restarts.

use std::sync::Arc;

use lodestar_analytics::jobs::{create_segment, refresh_segments, refresh_segments_touched};
use lodestar_analytics::profiles::ProfileCache;
use lodestar_core::{FixedClock, Message, MessageKind, ProjectId, Timestamp};
use lodestar_store::{
    AppendBatch, DeletionRequest, EventStore, ModelFitRow, PersonRef, PersonScore, ProjectInfo,
    Store, StoreConfig,
};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path) -> Arc<Store> {
    Store::open(
        StoreConfig {
            data_dir: dir.to_path_buf(),
            maintenance_interval_ms: 0,
            ..StoreConfig::default()
        },
        Arc::new(FixedClock::new(Timestamp(T0))),
    )
    .unwrap()
}

fn buy(store: &Store, project: ProjectId, id: &str, user: &str, ts: i64) {
    send(store, project, message(id, user, ts));
}

fn message(id: &str, user: &str, ts: i64) -> Message {
    let mut m = Message::new(MessageKind::Track, id, Timestamp(ts));
    m.event = Some("Order Completed".into());
    m.user_id = Some(user.into());
    m
}

fn send(store: &Store, project: ProjectId, m: Message) {
    store
        .append(
            project,
            AppendBatch {
                messages: vec![m],
                ..Default::default()
            },
        )
        .unwrap()
        .wait_blocking()
        .unwrap();
}

fn identify(
    store: &Store,
    project: ProjectId,
    id: &str,
    user: &str,
    anon: Option<&str>,
    plan: &str,
) {
    let mut m = message(id, user, T0);
    m.kind = MessageKind::Identify;
    m.event = None;
    m.anonymous_id = anon.map(str::to_string);
    m.traits.insert("plan".into(), serde_json::json!(plan));
    send(store, project, m);
}

#[test]
fn touched_rounds_follow_the_data_and_agree_with_a_full_round() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (project, _) = store.create_project("shop").unwrap();
    let cache = ProfileCache::default();
    buy(&store, project.id, "m1", "u1", T0);
    identify(&store, project.id, "i1", "u2", None, "free");
    let now = Timestamp(T0 + DAY);
    let make = |name: &str, condition: serde_json::Value| {
        let params = serde_json::json!({"name": name, "condition": condition});
        create_segment(
            &store,
            &project,
            &cache,
            params.to_string().as_bytes(),
            now,
            2,
        )
        .unwrap()
        .id
    };
    let repeat = make(
        "repeat",
        serde_json::json!({"type": "did", "event": "Order Completed", "min": 2}),
    );
    let pro = make(
        "pro",
        serde_json::json!({"type": "trait", "property": "plan", "op": "eq", "value": "pro"}),
    );
    let both = make(
        "pro repeat buyers",
        serde_json::json!({"type": "and", "all": [
            {"type": "in_segment", "segment": repeat},
            {"type": "trait", "property": "plan", "op": "eq", "value": "pro"}]}),
    );
    let mut since = refresh_segments_touched(&store, &project, &cache, 0, now, 2)
        .unwrap()
        .seq;
    let mut round = |store: &Store| {
        let r = refresh_segments_touched(store, &project, &cache, since, now, 2).unwrap();
        since = r.seq;
        r
    };
    let person = |user: &str| {
        store
            .find_profile(project.id, Some(user), None, None)
            .unwrap()
            .unwrap()
            .person
            .0
    };
    // A second purchase: u1 enters "repeat"; only u1 was looked at.
    buy(&store, project.id, "m2", "u1", T0 + 1000);
    let r = round(&store);
    assert_eq!(r.persons, 1);
    assert!(r.segments.contains(&(repeat, 1, 0)), "{r:?}");
    // A trait change (identify) moves u2 into "pro" without any other event.
    identify(&store, project.id, "i2", "u2", None, "pro");
    let r = round(&store);
    assert!(r.segments.contains(&(pro, 1, 0)), "{r:?}");
    // An anonymous visitor with two orders identifies as u3 on the pro plan: the merged
    // person enters all three (the nested segment sees "repeat" as of its last round).
    for (i, t) in [(1, 10), (2, 20)] {
        let mut m = message(&format!("a{i}"), "x", T0 + t);
        m.user_id = None;
        m.anonymous_id = Some("anon-3".into());
        send(&store, project.id, m);
    }
    round(&store);
    identify(&store, project.id, "i3", "u3", Some("anon-3"), "pro");
    let r = round(&store);
    let u3 = person("u3");
    assert!(r.segments.contains(&(pro, 1, 0)), "{r:?}");
    assert_eq!(
        store.segment_members(project.id, repeat, 0, 10).unwrap(),
        vec![person("u1"), u3]
    );
    assert_eq!(
        store.segment_members(project.id, pro, 0, 10).unwrap(),
        vec![person("u2"), u3]
    );
    // Nothing left for a full round to change: the touched rounds kept every segment exact,
    // except what waits on another segment's latest round.
    let full = refresh_segments(&store, &project, &cache, now, 2).unwrap();
    for (id, entered, exited) in &full {
        if *id != both {
            assert_eq!((entered, exited), (&0, &0), "segment {id}: {full:?}");
        }
    }
    // A fresh cache (a restarted server), warmed at start as a server does, agrees.
    let fresh = ProfileCache::default();
    let warmed = lodestar_analytics::jobs::warm_profiles(&store, &project, &fresh, now, 2).unwrap();
    let mut profiles = 0;
    store
        .for_each_traits(project.id, None, &mut |_, _| {
            profiles += 1;
            Ok(())
        })
        .unwrap();
    assert!(profiles > 0);
    assert_eq!(warmed, profiles);
    let again = refresh_segments(&store, &project, &fresh, now, 2).unwrap();
    assert!(again.iter().all(|r| r.1 == 0 && r.2 == 0), "{again:?}");
    assert_eq!(
        store.segment_members(project.id, both, 0, 10).unwrap(),
        vec![u3]
    );
    // A deleted person leaves the cached table and every segment, even after the deletion
    // job is done and with no event of theirs to touch them.
    let u2 = person("u2");
    let request = DeletionRequest {
        person: PersonRef::UserId("u2".into()),
        actor: "test".into(),
        suppress: true,
    };
    store.request_deletion(project.id, request, now).unwrap();
    store.run_deletions_now(project.id).unwrap();
    refresh_segments(&store, &project, &cache, now, 2).unwrap();
    assert!(
        !store
            .segment_members(project.id, pro, 0, 10)
            .unwrap()
            .contains(&u2)
    );
    let preview = lodestar_analytics::jobs::segment_preview(
        &store,
        &project,
        &cache,
        br#"{"condition": {"type": "trait", "property": "plan", "op": "eq", "value": "pro"}, "sample": 10}"#,
        now,
        2,
    )
    .unwrap();
    assert_eq!(preview.sample, vec![u3]);
}

fn events(store: &Store, project: &ProjectInfo, segment: i64) -> Vec<(u64, bool)> {
    store
        .segment_events(project.id, Some(segment), 0, 100)
        .unwrap()
        .iter()
        .map(|e| (e.person, e.entered))
        .collect()
}

#[test]
fn boundaries_are_crossed_once_each_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (project, _) = store.create_project("shop").unwrap();
    buy(&store, project.id, "m1", "u1", T0);
    buy(&store, project.id, "m2", "u2", T0);
    let repeat = serde_json::json!({"name": "repeat buyers", "condition":
        {"type": "did", "event": "Order Completed", "min": 2, "days": 30}});
    // One cache for the store's life, as a server keeps it.
    let cache = ProfileCache::default();
    let c = create_segment(
        &store,
        &project,
        &cache,
        repeat.to_string().as_bytes(),
        Timestamp(T0 + DAY),
        2,
    )
    .unwrap();
    let seg = c.id;
    assert_eq!(c.size, 0);
    let u1 = store
        .find_profile(project.id, Some("u1"), None, None)
        .unwrap()
        .unwrap()
        .person
        .0;

    // A purchase: u1 enters, once.
    buy(&store, project.id, "m3", "u1", T0 + 2 * DAY);
    let now = Timestamp(T0 + 3 * DAY);
    assert_eq!(
        refresh_segments(&store, &project, &cache, now, 2).unwrap(),
        vec![(seg, 1, 0)]
    );
    assert_eq!(
        refresh_segments(&store, &project, &cache, now, 2).unwrap(),
        vec![(seg, 0, 0)]
    );
    assert_eq!(events(&store, &project, seg), vec![(u1, true)]);

    // A restart changes nothing.
    store.shutdown();
    drop(store);
    let store = open(dir.path());
    let project = store.project("shop").unwrap();
    let cache = ProfileCache::default();
    assert_eq!(
        refresh_segments(&store, &project, &cache, now, 1).unwrap(),
        vec![(seg, 0, 0)]
    );
    assert_eq!(
        store.segment_members(project.id, seg, 0, 10).unwrap(),
        vec![u1]
    );

    // Time passes: the first purchase leaves the 30-day window; u1 exits, once.
    let later = Timestamp(T0 + 31 * DAY);
    assert_eq!(
        refresh_segments(&store, &project, &cache, later, 2).unwrap(),
        vec![(seg, 0, 1)]
    );
    assert_eq!(
        refresh_segments(&store, &project, &cache, later, 2).unwrap(),
        vec![(seg, 0, 0)]
    );
    assert_eq!(events(&store, &project, seg), vec![(u1, true), (u1, false)]);

    // A model rescore: u1's CLV crosses 500 up, then down.
    let valuable = serde_json::json!({"name": "valuable", "condition":
        {"type": "score", "score": "clv", "op": "gt", "value": 500}});
    let v = create_segment(
        &store,
        &project,
        &cache,
        valuable.to_string().as_bytes(),
        later,
        2,
    )
    .unwrap();
    let vseg = v.id;
    assert_eq!(v.size, 0);
    let fit = |clv: f64| {
        let row = ModelFitRow {
            id: 0,
            created_at: later,
            model: "bg_nbd".into(),
            window_from: "2023-11-01".into(),
            window_to: "2023-12-01".into(),
            spec: serde_json::json!({}),
            summary: serde_json::json!({}),
        };
        let score = PersonScore {
            person: u1,
            clv: Some(clv),
            ..PersonScore::default()
        };
        store.record_model_fit(project.id, &row, &[score]).unwrap();
    };
    fit(900.0);
    let results = refresh_segments(&store, &project, &cache, later, 2).unwrap();
    assert!(results.contains(&(vseg, 1, 0)), "{results:?}");
    fit(100.0);
    let results = refresh_segments(&store, &project, &cache, later, 2).unwrap();
    assert!(results.contains(&(vseg, 0, 1)), "{results:?}");
    assert_eq!(
        events(&store, &project, vseg),
        vec![(u1, true), (u1, false)]
    );

    // Static segments keep their list; names are unique.
    let fixed = serde_json::json!({"name": "pilot", "persons": [u1, u1, 999]});
    let st = create_segment(
        &store,
        &project,
        &cache,
        fixed.to_string().as_bytes(),
        later,
        1,
    )
    .unwrap();
    let sseg = st.id;
    assert_eq!(st.size, 2);
    refresh_segments(&store, &project, &cache, later, 1).unwrap();
    assert_eq!(
        store.segment_members(project.id, sseg, 0, 10).unwrap(),
        vec![u1, 999]
    );
    let again = create_segment(
        &store,
        &project,
        &cache,
        fixed.to_string().as_bytes(),
        later,
        1,
    );
    assert!(again.unwrap_err().to_string().contains("exists"));
    // A static segment from user ids (a CSV list): unknown ids are counted, not members.
    let listed = serde_json::json!({"name": "from csv", "user_ids": ["u2", "u1", "ghost", "u2"]});
    let l = create_segment(
        &store,
        &project,
        &cache,
        listed.to_string().as_bytes(),
        later,
        1,
    )
    .unwrap();
    let u2 = store
        .find_profile(project.id, Some("u2"), None, None)
        .unwrap()
        .unwrap()
        .person
        .0;
    assert_eq!((l.size, l.unknown_user_ids), (2, 1));
    let mut want = vec![u1, u2];
    want.sort_unstable();
    assert_eq!(
        store.segment_members(project.id, l.id, 0, 10).unwrap(),
        want
    );
}

#[test]
fn a_static_segment_from_a_funnels_drop_offs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (project, _) = store.create_project("shop").unwrap();
    let cache = ProfileCache::default();
    for (i, user) in ["u1", "u2", "u3"].into_iter().enumerate() {
        let mut m = message(&format!("v{i}"), user, T0);
        m.event = Some("Product Viewed".into());
        send(&store, project.id, m);
    }
    buy(&store, project.id, "o1", "u1", T0 + 1000);
    let day = |t: i64| lodestar_core::Timestamp(t).to_rfc3339()[..10].to_string();
    let funnel = serde_json::json!({"steps": ["Product Viewed", "Order Completed"],
        "date_from": day(T0), "date_to": day(T0 + DAY), "dropped_at": 1});
    let params = serde_json::json!({"name": "viewed, did not buy",
        "from_analysis": {"kind": "funnel", "params": funnel}});
    let now = Timestamp(T0 + 2 * DAY);
    let created = create_segment(
        &store,
        &project,
        &cache,
        params.to_string().as_bytes(),
        now,
        2,
    )
    .unwrap();
    let person = |u: &str| {
        store
            .find_profile(project.id, Some(u), None, None)
            .unwrap()
            .unwrap()
            .person
            .0
    };
    let mut want = vec![person("u2"), person("u3")];
    want.sort_unstable();
    assert_eq!(created.size, 2);
    assert_eq!(
        store
            .segment_members(project.id, created.id, 0, 10)
            .unwrap(),
        want
    );
    // Static: a later purchase does not move anyone.
    buy(&store, project.id, "o2", "u2", T0 + 2000);
    refresh_segments(&store, &project, &cache, now, 2).unwrap();
    assert_eq!(
        store
            .segment_members(project.id, created.id, 0, 10)
            .unwrap(),
        want
    );
    // Errors name the field.
    let mut bad = params.clone();
    bad["name"] = "x".into();
    bad["from_analysis"]["params"]
        .as_object_mut()
        .unwrap()
        .remove("dropped_at");
    let e =
        create_segment(&store, &project, &cache, bad.to_string().as_bytes(), now, 2).unwrap_err();
    assert!(
        e.to_string().contains("from_analysis.params.dropped_at"),
        "{e}"
    );
    bad["from_analysis"]["kind"] = "rfm".into();
    let e =
        create_segment(&store, &project, &cache, bad.to_string().as_bytes(), now, 2).unwrap_err();
    assert!(e.to_string().contains("from_analysis.kind"), "{e}");
}

#[test]
fn rfm_conditions_match_the_rfm_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (project, _) = store.create_project("shop").unwrap();
    let cache = ProfileCache::default();
    // Twenty buyers: user k buys k % 5 + 1 times, the last (k * 7) % 60 days ago.
    let now_ms = T0 - T0 % DAY + 100 * DAY;
    let mut n = 0;
    for k in 0..20i64 {
        for j in 0..=(k % 5) {
            n += 1;
            let mut m = message(
                &format!("o{n}"),
                &format!("u{k}"),
                now_ms - ((k * 7) % 60 + j * 3 + 1) * DAY,
            );
            m.properties
                .insert("revenue".into(), serde_json::json!(10 * (k + 1)));
            send(&store, project.id, m);
        }
    }
    let day = |t: i64| lodestar_core::Timestamp(t).to_rfc3339()[..10].to_string();
    let params = serde_json::json!({"date_from": day(now_ms - 90 * DAY), "date_to": day(now_ms - DAY),
        "timezone": "UTC", "list": 1000});
    let rfm = lodestar_analytics::registry::run_on_store(
        &store,
        &project,
        "rfm",
        params.to_string().as_bytes(),
        1,
    )
    .unwrap();
    let now = Timestamp(now_ms);
    let mut checked = 0;
    for layer in rfm["layers"].as_array().unwrap() {
        let key = layer["key"].as_str().unwrap();
        let mut want: Vec<u64> = rfm["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["layer"] == key)
            .map(|p| p["person"].as_u64().unwrap())
            .collect();
        want.sort_unstable();
        let tree = serde_json::json!({"condition": {"type": "rfm", "in": [key], "days": 90}, "sample": 100});
        let got = lodestar_analytics::jobs::segment_preview(
            &store,
            &project,
            &cache,
            tree.to_string().as_bytes(),
            now,
            2,
        )
        .unwrap();
        assert_eq!(got.sample, want, "layer {key}");
        checked += want.len();
    }
    assert_eq!(checked, 20, "every buyer in one layer");
}
