//! The HTTP contract, driven through the router in-process: status codes, error bodies,
//! admin-token checks. (The black-box tests in `tests/e2e` drive the real binary.)

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use lodestar_core::{FixedClock, Timestamp};
use lodestar_server::{AppState, ServerConfig, router};
use lodestar_store::{Store, StoreConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

#[path = "api/deletion.rs"]
mod deletion;
#[path = "api/profiles.rs"]
mod profiles;
#[path = "api/segment_export.rs"]
mod segment_export;

fn app(dir: &std::path::Path, admin_token: Option<&str>) -> axum::Router {
    let clock = Arc::new(FixedClock::new(Timestamp(1_764_000_000_000)));
    let store = Store::open(
        StoreConfig {
            data_dir: dir.to_path_buf(),
            maintenance_interval_ms: 0,
            ..StoreConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let config = ServerConfig {
        admin_token: admin_token.map(str::to_string),
        ..ServerConfig::default()
    };
    router(AppState::new(store, clock, &config))
}

async fn call(app: &axum::Router, req: Request<Body>, peer: &str) -> (StatusCode, Value) {
    let mut req = req;
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, auth: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(body.into()).unwrap()
}

/// Status and raw body of a loopback request.
async fn call_raw(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let mut req = req;
    req.extensions_mut()
        .insert(ConnectInfo("127.0.0.1:1".parse::<SocketAddr>().unwrap()));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn put(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::put(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn basic(key: &str) -> String {
    // base64 of "key:" without a crate: the alphabet by hand.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{key}:").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

#[tokio::test]
async fn admin_token_guards_project_creation_and_ingestion_answers_200() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), Some("s3cret"));
    let body = json!({"name": "shop"}).to_string();
    let (status, err) = call(
        &app,
        post("/api/admin/projects", Some("Bearer wrong"), body.clone()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, _) = call(
        &app,
        post("/api/admin/projects", None, body.clone()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, created) = call(
        &app,
        post("/api/admin/projects", Some("Bearer s3cret"), body),
        "10.1.2.3:9",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = created["write_key"].as_str().unwrap().to_string();

    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m1"},
        {"type": "track", "event": "No Id", "messageId": "m2"}
    ]});
    let (status, ok) = call(
        &app,
        post("/v1/batch", Some(&basic(&key)), batch.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(
        (ok["stored"].as_u64(), ok["rejected"].as_u64()),
        (Some(1), Some(1))
    );

    // The quarantined item is listed with its reason and place.
    let req = Request::get("/api/projects/shop/warnings")
        .header("authorization", "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let (status, w) = call(&app, req, "127.0.0.1:1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w["warnings"][0]["code"], "missing_id");
    assert_eq!(w["warnings"][0]["field"], "batch[1].userId");
}

#[tokio::test]
async fn errors_carry_status_code_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), None);
    // Without an admin token, loopback may administer and others may not.
    let (status, _) = call(
        &app,
        post("/api/admin/projects", None, r#"{"name":"x"}"#),
        "192.0.2.1:5",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, created) = call(
        &app,
        post("/api/admin/projects", None, r#"{"name":"x"}"#),
        "127.0.0.1:5",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = created["write_key"].as_str().unwrap().to_string();

    let (status, e) = call(
        &app,
        post("/v1/track", Some(&basic(&key)), "{not json"),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (status, e) = call(
        &app,
        post("/v1/track", Some(&basic("lsk_nope")), "{}"),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_write_key"))
    );
    let (status, e) = call(
        &app,
        post("/v1/track", None, r#"{"userId":"u","event":"e"}"#),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_write_key"))
    );
    let big = json!({"userId": "u", "event": "e", "properties": {"blob": "x".repeat(40_000)}})
        .to_string();
    let (status, e) = call(
        &app,
        post("/v1/track", Some(&basic(&key)), big),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("event_too_large"))
    );
    let (status, e) = call(
        &app,
        post("/v1/track", Some(&basic(&key)), r#"{"event":"e"}"#),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_id"))
    );
    let (status, e) = call(
        &app,
        post("/v1/nonsense", Some(&basic(&key)), "{}"),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_route"))
    );
    // writeKey in the body works too.
    let body = json!({"writeKey": key, "userId": "u", "event": "e"}).to_string();
    let (status, _) = call(&app, post("/v1/track", None, body), "127.0.0.1:1").await;
    assert_eq!(status, StatusCode::OK);
}

/// Posts an analysis request for project `shop` from loopback.
/// Creates project `shop` (admin from loopback) and returns its write key.
async fn create_shop(app: &axum::Router) -> String {
    let body = json!({"name": "shop"}).to_string();
    let (_, created) = call(app, post("/api/admin/projects", None, body), "127.0.0.1:1").await;
    created["write_key"].as_str().unwrap().to_string()
}

async fn analyse(app: &axum::Router, kind: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let path = format!("/api/projects/shop/analyses/{kind}");
    call(app, post(&path, None, body), "127.0.0.1:1").await
}

#[tokio::test]
async fn analyses_answer_json_and_name_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), None);
    let key = create_shop(&app).await;
    // u1 views then buys within a day; u2 only views (before the test clock's now, so the
    // times are kept as sent).
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "view", "messageId": "a", "timestamp": "2025-09-01T02:00:00Z"},
        {"type": "track", "userId": "u1", "event": "buy", "messageId": "b", "timestamp": "2025-09-01T20:00:00Z",
         "properties": {"revenue": "19.90", "price": 5}},
        {"type": "track", "userId": "u2", "event": "view", "messageId": "c", "timestamp": "2025-09-02T02:00:00Z"},
        {"type": "track", "userId": "u2", "event": "view", "messageId": "d", "timestamp": "2025-09-09T02:00:00Z"}
    ]});
    let (status, _) = call(
        &app,
        post("/v1/batch", Some(&basic(&key)), batch.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let funnel = json!({"steps": ["view", "buy"], "window": "1d", "date_from": "2025-09-01",
        "date_to": "2025-09-30", "timezone": "Asia/Shanghai", "dropped_at": 1});
    let (status, f) = analyse(&app, "funnel", funnel.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(f["steps"][0]["persons"], 2);
    assert_eq!(f["steps"][1]["persons"], 1);
    assert_eq!(f["dropped_persons"].as_array().unwrap().len(), 1);
    let retention = json!({"start_event": "view", "interval": "week", "periods": 2,
        "date_from": "2025-09-01", "date_to": "2025-09-07", "timezone": "Asia/Shanghai"});
    let (status, r) = analyse(&app, "retention", retention.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    // Week of 2025-09-01 (Shanghai): u1 and u2 start; u2 comes back the next week.
    assert_eq!(r["cohorts"][0]["values"], json!([2, 1, 0]));
    let lifecycle = json!({"interval": "week", "date_from": "2025-09-01", "date_to": "2025-09-15"});
    let (status, l) = analyse(&app, "lifecycle", lifecycle.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{l}");
    assert_eq!(l["periods"].as_array().unwrap().len(), 3);
    // The purchase's value is its revenue (a numeric string), not its price.
    let rfm = json!({"purchase_events": ["buy"], "list": 5, "date_from": "2025-09-01", "date_to": "2025-09-30"});
    let (status, m) = analyse(&app, "rfm", rfm.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["persons"], 1);
    assert_eq!(m["list"][0]["monetary"], 19.9);
    assert_eq!(m["list"][0]["recency_days"], 29);

    // Project settings: a zone and RFM defaults; queries leave them out.
    let settings = json!({"timezone": "Asia/Shanghai", "defaults": {
        "rfm": {"purchase_events": ["buy"], "scheme": "eight"},
        "stages": {"rules": {"conversion_event": "buy", "dormant_days": 30, "churn_days": 90,
                             "mature_conversions": 3, "resurrected_days": 30}}}});
    let (status, _) = call(
        &app,
        put("/api/projects/shop/settings", settings.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = call(&app, get("/api/projects/shop/settings"), "127.0.0.1:1").await;
    assert_eq!(got, settings);
    let (status, m) = analyse(
        &app,
        "rfm",
        json!({"list": 5, "date_from": "2025-09-01", "date_to": "2025-09-30"}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["layers"][0]["key"], "important_value");
    // Recency to the end of 2025-09-30 in Shanghai (16:00 UTC): 28 days 20 hours.
    assert_eq!(m["list"][0]["recency_days"], 28);
    // Stage changes (Shanghai days, e-commerce rules): u1 arrived on 09-01 and bought early
    // on 09-02 (04:00 local); u2 arrived on 09-02.
    let run = |q: &str| {
        Request::post(format!("/api/projects/shop/stage_changes{q}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, r) = call(&app, run("?date=2025-09-02"), "127.0.0.1:1").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["days"][0]["added"], 2);
    let (_, again) = call(&app, run("?date=2025-09-02"), "127.0.0.1:1").await;
    assert_eq!(
        again["days"][0]["added"], 0,
        "recording a day twice adds nothing"
    );
    let (_, feed) = call(&app, get("/api/projects/shop/stage_changes"), "127.0.0.1:1").await;
    let changes: Vec<(Option<&str>, &str)> = feed["stage_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["from"].as_str(), c["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        vec![(Some("onboarding"), "growth"), (None, "onboarding")]
    );
    // Catching up: every day after the last recorded one through yesterday (2025-11-24 in
    // Shanghai by the test clock), where both fall dormant after 30 quiet days.
    let (_, r) = call(&app, run(""), "127.0.0.1:1").await;
    let days = r["days"].as_array().unwrap();
    assert_eq!(days.len(), 83);
    assert_eq!(days.last().unwrap()["day"], "2025-11-24");
    let (_, feed) = call(
        &app,
        get("/api/projects/shop/stage_changes?after=2"),
        "127.0.0.1:1",
    )
    .await;
    let dormant: Vec<&str> = feed["stage_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["to"] == "dormant")
        .map(|c| c["day"].as_str().unwrap())
        .collect();
    assert_eq!(dormant, vec!["2025-10-02", "2025-10-09"]);
    let (status, e) = call(&app, run("?date=yesterday"), "127.0.0.1:1").await;
    assert_eq!(
        (status, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("date"))
    );

    // A person looked up by any id: profile, stage now (the test clock: 2025-11-24, 84 quiet
    // days after u1's purchase under the project's rules: dormant), newest events first.
    let (status, v) = call(
        &app,
        get("/api/projects/shop/persons?user_id=u1"),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["profile"]["user_ids"], json!(["u1"]));
    assert_eq!(v["events"], 2);
    assert_eq!(v["stage"], "dormant");
    assert_eq!(v["stage_zh"], "休眠期");
    let names: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["buy", "view"]);
    assert_eq!(v["timeline"][0]["value"], 19.9);
    let id = v["profile"]["person"].as_u64().unwrap();
    // Its stage history is the recorded stream's changes for that person, day for day.
    let (_, all) = call(
        &app,
        get("/api/projects/shop/stage_changes?limit=1000"),
        "127.0.0.1:1",
    )
    .await;
    let recorded: Vec<Value> = all["stage_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["person"] == id)
        .map(|c| json!([c["day"], c["from"], c["to"]]))
        .collect();
    let history: Vec<Value> = v["stage_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["day"], c["from"], c["to"]]))
        .collect();
    // (The stream was first recorded for 09-02, so u1's arrival on 09-01 is in the history
    // only.)
    assert_eq!(history[0], json!(["2025-09-01", null, "onboarding"]));
    assert_eq!(history[1..], recorded[..]);
    assert_eq!(recorded.len(), 2);
    // The builder's pickers: the stored event names, the trait keys, the RFM layers.
    let (status, schema) = call(&app, get("/api/projects/shop/schema"), "127.0.0.1:1").await;
    assert_eq!(status, StatusCode::OK, "{schema}");
    assert_eq!(schema["events"], json!(["buy", "view"]));
    assert_eq!(schema["rfm_layers"][0]["key"], "important_value");
    assert!(schema["scores"].as_array().unwrap().contains(&json!("clv")));
    // And the built-in choices a settings form starts from, as the analyses use them.
    assert_eq!(schema["stage_presets"][0][0], "ecommerce");
    assert_eq!(
        schema["stage_presets"][0][1]["conversion_event"],
        "Order Completed"
    );
    assert_eq!(schema["rfm_default_layers"][0]["key"], "champions");
    assert!(
        schema["computed_aggregates"]
            .as_array()
            .unwrap()
            .contains(&json!("most_frequent"))
    );
    let (_, by_id) = call(
        &app,
        get(&format!("/api/projects/shop/persons?id={id}&limit=1")),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(by_id["profile"]["user_ids"], json!(["u1"]));
    assert_eq!(by_id["timeline"].as_array().unwrap().len(), 1);
    let (status, e) = call(
        &app,
        get("/api/projects/shop/persons?user_id=nobody"),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_person"))
    );
    let (status, e) = call(
        &app,
        get("/api/projects/shop/persons?user_id=u1&id=1"),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("user_id"))
    );

    // A saved segment: its first members are entries; a refresh with nothing changed adds none.
    let buyers = json!({"name": "buyers", "condition": {"type": "did", "event": "buy"}});
    let (status, created) = call(
        &app,
        post("/api/projects/shop/segments", None, buyers.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, created["size"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "{created}"
    );
    let seg = created["id"].as_i64().unwrap();
    let (_, list) = call(&app, get("/api/projects/shop/segments"), "127.0.0.1:1").await;
    assert_eq!(list["segments"][0]["size"], 1);
    let (_, members) = call(
        &app,
        get(&format!("/api/projects/shop/segments/{seg}/members")),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(members["members"], json!([id]));
    let (_, refreshed) = call(
        &app,
        Request::post("/api/projects/shop/segments/refresh")
            .body(Body::empty())
            .unwrap(),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(refreshed["segments"][0]["entered"], 0);
    let (_, ev) = call(
        &app,
        get("/api/projects/shop/segment_events"),
        "127.0.0.1:1",
    )
    .await;
    let ev = ev["segment_events"].as_array().unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0]["event"].as_str(), ev[0]["person"].as_u64()),
        (Some("segment entered"), Some(id))
    );
    let (status, _) = call(
        &app,
        post("/api/projects/shop/segments", None, buyers.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Exports: CSV with the chosen attributes (absent ones empty), and JSONL.
    let (status, csv) = call_raw(
        &app,
        get(&format!(
            "/api/projects/shop/segments/{seg}/export?format=csv&attributes=plan,clv"
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert_eq!(
        csv,
        format!("person_id,user_ids,anonymous_ids,plan,clv\n{id},u1,,,\n")
    );
    let (_, jsonl) = call_raw(
        &app,
        get(&format!("/api/projects/shop/segments/{seg}/export")),
    )
    .await;
    let line: Value = serde_json::from_str(jsonl.trim()).unwrap();
    assert_eq!(
        (line["person_id"].as_u64(), &line["user_ids"]),
        (Some(id), &json!(["u1"]))
    );
    let (status, _) = call_raw(&app, get("/api/projects/shop/segments/999/export")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let bad = json!({"name": "x", "condition": {"type": "or", "any": []}});
    let (status, e) = call(
        &app,
        post("/api/projects/shop/segments", None, bad.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("any"))
    );

    for (bad, field) in [
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (
            json!({"timezone": "UTC", "defaults": {"rfm": {"scheme": "nine"}}}),
            "defaults.rfm.scheme",
        ),
        (
            json!({"timezone": "UTC", "defaults": {"astrology": {}}}),
            "defaults.astrology",
        ),
        (
            json!({"timezone": "UTC", "defaults": {"funnel": {"window": "7y"}}}),
            "defaults.funnel.window",
        ),
    ] {
        let (status, e) = call(
            &app,
            put("/api/projects/shop/settings", bad.to_string()),
            "127.0.0.1:1",
        )
        .await;
        assert_eq!(
            (status, e["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{e}"
        );
    }

    let bad = json!({"steps": ["view", "buy"], "window": "7y", "date_from": "2026-03-01", "date_to": "2026-03-31"});
    let (status, e) = analyse(&app, "funnel", bad.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_parameter"), Some("window"))
    );
    let (status, e) = analyse(&app, "funnel", "{\"steps\": 3}").await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (status, e) = analyse(&app, "astrology", "{}").await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_analysis"))
    );
}

#[tokio::test]
async fn models_are_fitted_versioned_and_scores_found_by_person() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), None);
    let key = create_shop(&app).await;
    // The CDNOW sample's purchases, sent as the SDKs would.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/tests/fixtures/CDNOW_sample.txt"
    );
    let lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    for (n, chunk) in lines.chunks(400).enumerate() {
        let batch: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let d = f[2];
                json!({"type": "track", "event": "Order Completed", "userId": format!("c{}", f[1]),
                       "messageId": format!("m{n}-{i}"),
                       "timestamp": format!("{}-{}-{}T12:00:00Z", &d[..4], &d[4..6], &d[6..]),
                       "properties": {"revenue": f[4].parse::<f64>().unwrap(),
                                      "order": {"net": f[4].parse::<f64>().unwrap() / 2.0}}})
            })
            .collect();
        let (status, r) = call(
            &app,
            post(
                "/v1/batch",
                Some(&basic(&key)),
                json!({"batch": batch}).to_string(),
            ),
            "127.0.0.1:1",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }
    let params =
        json!({"date_from": "1997-01-01", "date_to": "1997-09-30", "holdout_to": "1998-06-30"});
    let (status, fit) = call(
        &app,
        post("/api/projects/shop/models", None, params.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fit}");
    let r = fit["fit"]["purchase_model"]["params"]["r"]
        .as_f64()
        .unwrap();
    assert!((r - 0.243).abs() < 5e-4, "{r}");
    assert_eq!(fit["fit"]["customers"], 2357);
    let first = fit["id"].as_i64().unwrap();
    let (_, again) = call(
        &app,
        post("/api/projects/shop/models", None, params.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert!(
        again["id"].as_i64().unwrap() > first,
        "each fit is a new version"
    );
    let (_, models) = call(&app, get("/api/projects/shop/models"), "127.0.0.1:1").await;
    let models = models["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(
        (
            models[1]["window_from"].as_str(),
            models[1]["window_to"].as_str()
        ),
        (Some("1997-01-01"), Some("1997-09-30"))
    );
    // Some buyer's scores, from both versions, newest first.
    let (_, scores) = call(
        &app,
        get("/api/projects/shop/persons/1/scores"),
        "127.0.0.1:1",
    )
    .await;
    let scores = scores["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2, "{scores:?}");
    assert!(scores[0]["fit"].as_i64() > scores[1]["fit"].as_i64());
    let p = scores[0]["p_alive"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    // Amounts from a named property: half the revenue scales Gamma-Gamma's γ by a half and
    // leaves p and q as they were.
    let net =
        json!({"date_from": "1997-01-01", "date_to": "1997-09-30", "amount_property": "order.net"});
    let (status, half) = call(
        &app,
        post("/api/projects/shop/models", None, net.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{half}");
    let gg = |v: &Value, k: &str| v["fit"]["spend_model"]["params"][k].as_f64().unwrap();
    assert!((gg(&half, "gamma") / gg(&fit, "gamma") - 0.5).abs() < 1e-3);
    for k in ["p", "q"] {
        assert!((gg(&half, k) / gg(&fit, k) - 1.0).abs() < 1e-3, "{k}");
    }
    // The churn model: every considered person's risk kept with the new version.
    let churn = json!({"kind": "churn", "date_from": "1997-01-01", "date_to": "1997-12-31"});
    let (status, c) = call(
        &app,
        post("/api/projects/shop/models", None, churn.to_string()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    let scored = c["fit"]["scored"].as_u64().unwrap();
    assert!(scored > 100, "{c}");
    let mut risks = 0;
    for person in 1..=60 {
        let (_, s) = call(
            &app,
            get(&format!("/api/projects/shop/persons/{person}/scores")),
            "127.0.0.1:1",
        )
        .await;
        if let Some(r) = s["scores"][0]["churn_risk"].as_f64() {
            assert!((0.0..=1.0).contains(&r));
            assert_eq!(s["scores"][0]["fit"], c["id"]);
            risks += 1;
        }
    }
    assert!(risks > 0, "some of the first persons were scored");
    // Each kept risk comes with its main factors, as the churn analysis gives them.
    let (status, analysis) = analyse(
        &app,
        "churn",
        json!({"date_from": "1997-01-01", "date_to": "1997-12-31", "list": 100000}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{analysis}");
    let mut compared = 0;
    for p in analysis["list"].as_array().unwrap().iter().take(20) {
        let (_, s) = call(
            &app,
            get(&format!(
                "/api/projects/shop/persons/{}/scores",
                p["person"]
            )),
            "127.0.0.1:1",
        )
        .await;
        assert_eq!(s["scores"][0]["churn_factors"], p["top_factors"], "{s}");
        compared += 1;
    }
    assert_eq!(compared, 20);
    let (status, e) = call(
        &app,
        post(
            "/api/projects/shop/models",
            None,
            json!({"kind": "astrology"}).to_string(),
        ),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("kind"))
    );
    // Segments over the stored scores: everyone the newest value fit scored, and the rest.
    let preview = |tree: Value| {
        post(
            "/api/projects/shop/segments/preview",
            None,
            json!({"condition": tree, "sample": 3}).to_string(),
        )
    };
    let (status, scored) = call(
        &app,
        preview(json!({"type": "score", "score": "p_alive", "op": "gte", "value": 0})),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{scored}");
    assert_eq!(scored["size"], 2357);
    assert_eq!(scored["sample"].as_array().unwrap().len(), 3);
    let (_, rest) = call(&app, preview(json!({"type": "not", "node": {"type": "score", "score": "p_alive", "op": "gte", "value": 0}})), "127.0.0.1:1").await;
    assert_eq!(
        rest["size"].as_u64().unwrap() + 2357,
        rest["persons"].as_u64().unwrap()
    );
    let (status, e) = call(
        &app,
        preview(json!({"type": "and", "all": [{"type": "did", "event": ""}]})),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("all[0].event"))
    );
    // A window without purchases cannot support a fit; the error names the parameter.
    let (status, e) = call(
        &app,
        post(
            "/api/projects/shop/models",
            None,
            json!({"date_from": "2001-01-01", "date_to": "2001-02-01"}).to_string(),
        ),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("purchase_events")),
        "{e}"
    );
}

#[tokio::test]
async fn rotating_a_write_key_refuses_the_old_one_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), Some("s3cret"));
    let admin = Some("Bearer s3cret");
    let (_, made) = call(
        &app,
        post(
            "/api/admin/projects",
            admin,
            json!({"name": "shop"}).to_string(),
        ),
        "127.0.0.1:1",
    )
    .await;
    let old = made["write_key"].as_str().unwrap().to_string();
    let track = |key: &str, id: &str| {
        post(
            "/v1/track",
            Some(&basic(key)),
            json!({"userId": "u1", "event": "Order Completed", "messageId": id}).to_string(),
        )
    };
    assert_eq!(
        call(&app, track(&old, "m1"), "127.0.0.1:1").await.0,
        StatusCode::OK
    );
    // Admin-checked like the other admin routes.
    let rotate = |auth| post("/api/admin/projects/shop/rotate_key", auth, Body::empty());
    let (status, _) = call(&app, rotate(Some("Bearer wrong")), "127.0.0.1:1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, e) = call(
        &app,
        post("/api/admin/projects/nope/rotate_key", admin, Body::empty()),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_project"))
    );
    let (status, rotated) = call(&app, rotate(admin), "127.0.0.1:1").await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["write_key"].as_str().unwrap().to_string();
    assert!(new.starts_with("lsk_") && new != old);
    assert_eq!(rotated["project"]["name"], "shop");
    assert_eq!(rotated["project"]["key_hint"], new[..8]);
    let (status, e) = call(&app, track(&old, "m2"), "127.0.0.1:1").await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_write_key"))
    );
    let (status, out) = call(&app, track(&new, "m1"), "127.0.0.1:1").await;
    assert_eq!(
        (status, out["duplicates"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    // The list shows the new key's hint, never a key.
    let list = Request::get("/api/admin/projects")
        .header("authorization", "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let (_, listed) = call(&app, list, "127.0.0.1:1").await;
    let text = listed.to_string();
    assert!(
        !text.contains(&new[8..]) && !text.contains(&old[8..]),
        "{text}"
    );
    assert_eq!(listed["projects"][0]["key_hint"], new[..8]);
    // Rotated by another process (the command line) while the server runs: refused too.
    let (_, newest) = Store::rotate_key_in(dir.path(), "shop").unwrap();
    assert_eq!(
        call(&app, track(&new, "m3"), "127.0.0.1:1").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, track(&newest, "m3"), "127.0.0.1:1").await.0,
        StatusCode::OK
    );
}
