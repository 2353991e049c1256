//! The deletion test the privacy issue asks for: on a synthetic shop with a fitted model, a
//! saved segment and recorded stage changes, delete one person who is in all of them (a buyer
//! with two devices, so two persons merged into one); then no export, analysis, segment,
//! model output or lookup contains them — at once, after the job, and after a restart — and
//! the count-based analyses equal those of the same shop where that person never existed.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use lodestar_core::{FixedClock, Message, Timestamp};
use lodestar_server::{AppState, ServerConfig, router};
use lodestar_store::{AppendBatch, AppendPipeline, EventStore, ProjectInfo, Store, StoreConfig};
use lodestar_synth::SynthConfig;
use serde_json::{Value, json};

use super::call_raw;

const USERS: u64 = 300;
const DAY: i64 = 86_400_000;

fn synth() -> SynthConfig {
    SynthConfig {
        users: USERS,
        days: 150,
        ..SynthConfig::default()
    }
}

fn now() -> Timestamp {
    Timestamp(synth().start.millis() + 160 * DAY)
}

fn open(dir: &std::path::Path) -> Arc<Store> {
    Store::open(
        StoreConfig {
            data_dir: dir.to_path_buf(),
            maintenance_interval_ms: 0,
            seal_rows: 3_000,
            max_seal_rows: 3_000,
            ..StoreConfig::default()
        },
        Arc::new(FixedClock::new(now())),
    )
    .unwrap()
}

fn app_for(store: &Arc<Store>) -> axum::Router {
    router(AppState::new(
        store.clone(),
        Arc::new(FixedClock::new(now())),
        &ServerConfig::default(),
    ))
}

async fn post(app: &axum::Router, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, text) = call_raw(app, req).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    call_raw(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// The first user who signed up, bought at least twice, and logged in on a second device.
fn victim() -> (u64, Vec<String>) {
    for i in 0..USERS {
        let (truth, _) = lodestar_synth::generate_user(&synth(), i);
        if truth.signed_up_at.is_some()
            && truth.orders.len() >= 2
            && let Some(second) = truth.second_anonymous_id
        {
            return (i, vec![truth.user_id, truth.anonymous_id, second]);
        }
    }
    panic!("no user fits");
}

fn push(pipe: &mut AppendPipeline<'_>, messages: Vec<Message>) {
    for chunk in messages.chunks(1_000) {
        pipe.push(AppendBatch {
            messages: chunk.to_vec(),
            ..Default::default()
        })
        .unwrap();
    }
}

/// The shop, with or without the victim: the first half of the users and the victim's first
/// half sealed into parts, the rest in the tail.
fn build(dir: &std::path::Path, victim: u64, with_victim: bool) -> (Arc<Store>, ProjectInfo) {
    let store = open(dir);
    let (info, _) = store.create_project("shop").unwrap();
    let user = |i| lodestar_synth::generate_user(&synth(), i).1;
    let mut mine = user(victim);
    let later = mine.split_off(mine.len() / 2);
    let mut pipe = AppendPipeline::new(&*store, info.id, 4);
    for i in (0..USERS / 2).filter(|&i| i != victim) {
        push(&mut pipe, user(i));
    }
    if with_victim {
        push(&mut pipe, mine);
    }
    pipe.finish().unwrap();
    store.seal_now(info.id).unwrap();
    let mut pipe = AppendPipeline::new(&*store, info.id, 4);
    if with_victim {
        push(&mut pipe, later);
    }
    for i in (USERS / 2..USERS).filter(|&i| i != victim) {
        push(&mut pipe, user(i));
    }
    pipe.finish().unwrap();
    (store, info)
}

fn analyses() -> Vec<(&'static str, Value)> {
    let range = |v: Value| {
        let mut v = v;
        v["date_from"] = json!("2025-01-01");
        v["date_to"] = json!("2025-05-31");
        v["timezone"] = json!("Asia/Shanghai");
        v
    };
    vec![
        (
            "funnel",
            range(json!({"steps": ["Product Viewed", "Order Completed"], "window": "7d"})),
        ),
        (
            "retention",
            range(json!({"start_event": "Order Completed", "interval": "month", "periods": 3})),
        ),
        ("lifecycle", range(json!({"interval": "month"}))),
        (
            "rfm",
            range(json!({"purchase_events": ["Order Completed"], "list": 1000})),
        ),
        ("stages", range(json!({"interval": "month"}))),
    ]
}

/// The analyses' results, with the person ids they list left out (numbering differs between
/// two stores).
async fn counts(app: &axum::Router) -> Vec<Value> {
    let mut out = Vec::new();
    for (kind, params) in analyses() {
        let (status, mut v) =
            post(app, &format!("/api/projects/shop/analyses/{kind}"), params).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {v}");
        strip_person_ids(&mut v);
        out.push(v);
    }
    out
}

fn strip_person_ids(v: &mut Value) {
    match v {
        Value::Object(map) => {
            // Lists of persons, and person ids (not counts such as `persons`).
            for key in ["list", "dropped_persons", "person"] {
                map.remove(key);
            }
            for x in map.values_mut() {
                strip_person_ids(x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_person_ids),
        _ => {}
    }
}

/// Every `person` (or `persons` list of ids) field of an analysis result.
fn listed_persons(v: &Value, out: &mut Vec<u64>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("person", Value::Number(n)) => out.extend(n.as_u64()),
                    ("dropped_persons", Value::Array(ids)) => {
                        out.extend(ids.iter().filter_map(Value::as_u64))
                    }
                    _ => listed_persons(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| listed_persons(x, out)),
        _ => {}
    }
}

/// Everything a person could show up in, as text, plus the person ids in id-keyed outputs.
async fn outputs(store: &Store, app: &axum::Router, info: &ProjectInfo) -> (String, Vec<u64>) {
    let mut text = String::new();
    for format in [lodestar_io::Format::Jsonl, lodestar_io::Format::Csv] {
        let mut buf = Vec::new();
        lodestar_io::export_events(store, info.id, format, &mut buf).unwrap();
        text.push_str(&String::from_utf8(buf).unwrap());
        let mut buf = Vec::new();
        lodestar_io::export_profiles(store, info.id, format, &mut buf).unwrap();
        text.push_str(&String::from_utf8(buf).unwrap());
    }
    let mut buf = Vec::new();
    lodestar_io::export_warnings(store, info.id, lodestar_io::Format::Jsonl, &mut buf).unwrap();
    text.push_str(&String::from_utf8(buf).unwrap());
    for format in ["csv", "jsonl"] {
        let (status, body) = get(
            app,
            &format!("/api/projects/shop/segments/1/export?format={format}&attributes=clv,p_alive"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        text.push_str(&body);
    }
    let mut persons: Vec<u64> = Vec::new();
    for (kind, params) in analyses() {
        let (_, v) = post(app, &format!("/api/projects/shop/analyses/{kind}"), params).await;
        text.push_str(&v.to_string());
        listed_persons(&v, &mut persons);
    }
    persons.extend(store.segment_members(info.id, 1, 0, 1_000_000).unwrap());
    persons.extend(
        store
            .latest_scores(info.id)
            .unwrap()
            .iter()
            .map(|s| s.person),
    );
    persons.extend(
        store
            .stage_changes(info.id, 0, 1_000_000)
            .unwrap()
            .iter()
            .map(|c| c.person),
    );
    persons.extend(
        store
            .segment_events(info.id, None, 0, 1_000_000)
            .unwrap()
            .iter()
            .map(|e| e.person),
    );
    store
        .for_each_event(info.id, &mut |p, _, _| {
            persons.push(p.0);
            Ok(())
        })
        .unwrap();
    (text, persons)
}

async fn assert_gone(
    store: &Store,
    app: &axum::Router,
    info: &ProjectInfo,
    ids: &[String],
    persons: &[u64],
) {
    let (text, seen) = outputs(store, app, info).await;
    for id in ids {
        assert!(
            !text.contains(&format!("\"{id}\"")),
            "{id} still in an output"
        );
        assert!(!text.contains(&format!(",{id},")), "{id} still in a CSV");
    }
    for p in persons {
        assert!(!seen.contains(p), "person {p} still in an output");
        assert!(store.person_scores(info.id, *p).unwrap().is_empty());
        let (status, _) = get(app, &format!("/api/projects/shop/persons?id={p}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    for (i, id) in ids.iter().enumerate() {
        let q = if i == 0 { "user_id" } else { "anonymous_id" };
        let (status, body) = get(app, &format!("/api/projects/shop/persons?{q}={id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_deleting_a_person_no_output_contains_them() {
    let (victim, ids) = victim();
    let dir = tempfile::tempdir().unwrap();
    let (store, info) = tokio::task::block_in_place(|| build(dir.path(), victim, true));
    let app = app_for(&store);
    let threads = 2;

    // The person is in every derived output first.
    let (status, fit) = post(
        &app,
        "/api/projects/shop/models",
        json!({"date_from": "2025-01-01", "date_to": "2025-05-31"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fit}");
    let created = lodestar_analytics::jobs::create_segment(
        &store,
        &info,
        &Default::default(),
        json!({"name": "buyers", "condition":
            {"type": "did", "event": "Order Completed", "min": 1, "days": 365}})
        .to_string()
        .as_bytes(),
        now(),
        threads,
    )
    .unwrap();
    assert_eq!(created.id, 1);
    let person = store
        .find_profile(info.id, Some(&ids[0]), None, None)
        .unwrap()
        .unwrap()
        .person
        .0;
    let (truth, _) = lodestar_synth::generate_user(&synth(), victim);
    let arrival = jiff::Timestamp::from_millisecond(truth.arrival.millis())
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
        .date();
    lodestar_analytics::jobs::emit_stage_changes(&store, &info, now(), Some(arrival), threads)
        .unwrap();
    let persons: Vec<u64> = {
        let snap = store.snapshot(info.id).unwrap();
        let mut p = vec![person];
        p.extend(
            snap.merged_persons()
                .iter()
                .filter(|(_, to)| **to == person)
                .map(|(from, _)| *from),
        );
        p
    };
    assert!(
        persons.len() >= 2,
        "two devices, persons merged: {persons:?}"
    );
    let (_, seen) = outputs(&store, &app, &info).await;
    for (what, list) in [
        (
            "segment",
            store.segment_members(info.id, 1, 0, 1_000_000).unwrap(),
        ),
        (
            "scores",
            store
                .latest_scores(info.id)
                .unwrap()
                .iter()
                .map(|s| s.person)
                .collect(),
        ),
        (
            "stage changes",
            store
                .stage_changes(info.id, 0, 1_000_000)
                .unwrap()
                .iter()
                .map(|c| c.person)
                .collect(),
        ),
    ] {
        assert!(list.contains(&person), "the victim is in the {what} first");
    }
    assert!(seen.contains(&person));

    // The same shop where the person never existed.
    let other = tempfile::tempdir().unwrap();
    let (never, _) = tokio::task::block_in_place(|| build(other.path(), victim, false));
    let never = counts(&app_for(&never)).await;
    assert_ne!(counts(&app).await, never, "the victim counts before");
    assert!(
        outputs(&store, &app, &info)
            .await
            .1
            .iter()
            .filter(|p| **p == person)
            .count()
            > 10,
        "the victim is listed in analyses and events"
    );

    // Delete through the API.
    let (status, job) = post(
        &app,
        "/api/projects/shop/deletions",
        json!({"user_id": ids[0], "suppress": true, "actor": "dpo"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["deletion"]["status"], "pending");
    let id = job["deletion"]["id"].as_i64().unwrap();

    // At once, before the job: gone, and the analyses are those of the shop without them.
    assert_gone(&store, &app, &info, &ids, &persons).await;
    assert_eq!(counts(&app).await, never);

    // The job, then the same.
    assert_eq!(
        tokio::task::block_in_place(|| store.run_deletions_now(info.id)).unwrap(),
        1
    );
    let (status, body) = get(&app, &format!("/api/projects/shop/deletions/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(job["deletion"]["status"], "done", "{job}");
    let events = job["deletion"]["events"].as_u64().unwrap();
    assert_eq!(
        events,
        lodestar_synth::generate_user(&synth(), victim).1.len() as u64
    );
    assert_gone(&store, &app, &info, &ids, &persons).await;
    let after = counts(&app).await;
    assert_eq!(after, never);

    // A restart keeps all of it; the audit trail says what happened.
    store.shutdown();
    drop(app);
    drop(store);
    let store = open(dir.path());
    let app = app_for(&store);
    assert_gone(&store, &app, &info, &ids, &persons).await;
    assert_eq!(after, counts(&app).await);
    let (status, body) = get(&app, "/api/projects/shop/audit").await;
    assert_eq!(status, StatusCode::OK);
    let audit: Value = serde_json::from_str(&body).unwrap();
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["deletion_done", "deletion_requested", "suppressed"]
    );
    for id in &ids {
        assert!(!body.contains(id.as_str()));
    }
    let (status, body) = get(&app, "/api/projects/shop/deletions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"done\""), "{body}");
    let (status, e) = post(
        &app,
        "/api/projects/shop/deletions",
        json!({"user_id": ids[0]}),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_person"))
    );
    let (status, e) = post(&app, "/api/projects/shop/deletions", json!({})).await;
    assert_eq!(
        (status, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("user_id"))
    );
    let (status, _) = get(&app, "/api/projects/shop/deletions/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
