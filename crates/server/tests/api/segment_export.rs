//! Segment exports over the API: Parquet read back with the `parquet` crate, and webhook
//! deliveries to a real HTTP receiver on a local port that records every request and answers
//! as each test scripts it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post as post_route;
use lodestar_server::webhook::hmac_sha256;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Value, json};

use super::{app, basic, call, call_raw, create_shop, get, post};

const USERS: usize = 23;

/// A project `shop` with `USERS` identified persons (`plan` and `orders` traits) and a static
/// segment of all of them; returns the app and the segment's id.
async fn shop_with_segment(dir: &std::path::Path) -> (axum::Router, i64) {
    let app = app(dir, None);
    let key = create_shop(&app).await;
    let batch: Vec<Value> = (0..USERS)
        .map(|i| {
            json!({"type": "identify", "userId": format!("u{i}"), "anonymousId": format!("a{i}"),
                   "messageId": format!("m{i}"),
                   "traits": {"plan": if i % 2 == 0 { "pro" } else { "free" }, "orders": i}})
        })
        .collect();
    let body = json!({ "batch": batch }).to_string();
    let (status, _) = call(
        &app,
        post("/v1/batch", Some(&basic(&key)), body),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let user_ids: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    let segment = json!({"name": "everyone", "user_ids": user_ids}).to_string();
    let (status, created) = call(
        &app,
        post("/api/projects/shop/segments", None, segment),
        "127.0.0.1:1",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["size"], USERS);
    (app, created["id"].as_i64().unwrap())
}

#[tokio::test]
async fn parquet_export_over_the_api_matches_the_jsonl_export() {
    let dir = tempfile::tempdir().unwrap();
    let (app, seg) = shop_with_segment(dir.path()).await;
    let path = format!("/api/projects/shop/segments/{seg}/export?attributes=plan,orders");
    let mut req = get(&format!("{path}&format=parquet"));
    req.extensions_mut().insert(axum::extract::ConnectInfo(
        "127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap(),
    ));
    let res = tower::ServiceExt::oneshot(app.clone(), req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let reader = SerializedFileReader::new(bytes).unwrap();
    let mut rows = BTreeMap::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let cells: BTreeMap<String, Field> = row
            .get_column_iter()
            .map(|(n, f)| (n.clone(), f.clone()))
            .collect();
        let Field::ULong(person) = cells["person_id"] else {
            panic!("person_id is an unsigned long: {cells:?}")
        };
        rows.insert(person, cells);
    }
    let (_, jsonl) = call_raw(&app, get(&path)).await;
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!((rows.len(), lines.len()), (USERS, USERS));
    for line in lines {
        let cells = &rows[&line["person_id"].as_u64().unwrap()];
        let Field::ListInternal(users) = &cells["user_ids"] else {
            panic!("user_ids is a list")
        };
        assert_eq!(
            users.elements(),
            [Field::Str(line["user_ids"][0].as_str().unwrap().into())]
        );
        let attributes = &line["attributes"];
        assert_eq!(
            cells["plan"],
            Field::Str(attributes["plan"].as_str().unwrap().into())
        );
        assert_eq!(
            cells["orders"],
            Field::Double(attributes["orders"].as_f64().unwrap())
        );
    }
    for (query, field) in [
        ("format=xlsx", "format"),
        ("attributes=plan,plan", "attributes"),
    ] {
        let path = format!("/api/projects/shop/segments/{seg}/export?{query}");
        let (status, e) = call(&app, get(&path), "127.0.0.1:1").await;
        assert_eq!(
            (status, e["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{query}: {e}"
        );
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

/// A webhook receiver on a local port: records every request, answers with the scripted
/// statuses in order, then 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> (Receiver, String) {
        let receiver = Receiver {
            got: Default::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/hook", post_route(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (receiver, url)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    receiver.got.lock().unwrap().push(Received {
        headers,
        body,
        at: Instant::now(),
    });
    let status = receiver.script.lock().unwrap().pop_front().unwrap_or(200);
    (
        StatusCode::from_u16(status).unwrap(),
        format!("test receiver says {status}"),
    )
}

async fn export_webhook(app: &axum::Router, seg: i64, request: Value) -> (StatusCode, Value) {
    let path = format!("/api/projects/shop/segments/{seg}/export/webhook");
    call(app, post(&path, None, request.to_string()), "127.0.0.1:1").await
}

fn header<'h>(r: &'h Received, name: &str) -> &'h str {
    r.headers[name].to_str().unwrap()
}

#[tokio::test]
async fn every_member_arrives_once_in_signed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (app, seg) = shop_with_segment(dir.path()).await;
    let (receiver, url) = Receiver::start(&[]).await;
    let (status, report) = export_webhook(
        &app,
        seg,
        json!({"url": url, "attributes": ["plan", "orders"], "batch_size": 5,
               "secret": "s3cret", "headers": {"Authorization": "Bearer token-1"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (
            &report["batches"],
            &report["batches_sent"],
            &report["members_sent"],
            &report["attempts"],
            &report["failed"]
        ),
        (&json!(5), &json!(5), &json!(USERS), &json!(5), &Value::Null)
    );
    let export_id = report["export_id"].as_str().unwrap();
    let got = receiver.got();
    assert_eq!(got.len(), 5);
    let mut persons = Vec::new();
    for (i, r) in got.iter().enumerate() {
        let number = i + 1;
        assert_eq!(header(r, "content-type"), "application/json");
        assert_eq!(header(r, "authorization"), "Bearer token-1");
        assert_eq!(
            header(r, "x-lodestar-delivery"),
            format!("{seg}-{export_id}-{number}")
        );
        let signature = format!("sha256={}", hex(&hmac_sha256(b"s3cret", &r.body)));
        assert_eq!(header(r, "x-lodestar-signature"), signature);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["segment"], json!({"id": seg, "name": "everyone"}));
        assert_eq!(
            (&body["batch"], &body["batches"], &body["export_id"]),
            (&json!(number), &json!(5), &json!(export_id))
        );
        assert!(body["sent_at"].as_str().unwrap().ends_with('Z'), "{body}");
        let members = body["members"].as_array().unwrap();
        assert_eq!(members.len(), if number < 5 { 5 } else { 3 });
        for m in members {
            let user = m["user_ids"][0].as_str().unwrap();
            let i: usize = user[1..].parse().unwrap();
            assert_eq!(m["anonymous_ids"], json!([format!("a{i}")]));
            assert_eq!(m["attributes"]["orders"], json!(i));
            persons.push(m["person_id"].as_u64().unwrap());
        }
    }
    let count = persons.len();
    persons.sort_unstable();
    persons.dedup();
    assert_eq!(
        (count, persons.len()),
        (USERS, USERS),
        "each member exactly once"
    );

    // Without a secret, no signature; the default batch size takes everyone at once.
    let (receiver, url) = Receiver::start(&[]).await;
    let (status, report) = export_webhook(&app, seg, json!({ "url": url })).await;
    assert_eq!((status, &report["batches"]), (StatusCode::OK, &json!(1)));
    let got = receiver.got();
    assert!(!got[0].headers.contains_key("x-lodestar-signature"));
    assert_eq!(report["batch_size"], 500);
}

#[tokio::test]
async fn a_batch_answered_503_twice_is_delivered_on_the_third_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (app, seg) = shop_with_segment(dir.path()).await;
    let (receiver, url) = Receiver::start(&[503, 503]).await;
    let (status, report) = export_webhook(&app, seg, json!({"url": url})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["batches_sent"], &report["attempts"]),
        (&json!(1), &json!(3))
    );
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    // The same body and delivery id each time, after 0.5 s and then 1 s.
    for r in &got[1..] {
        assert_eq!(r.body, got[0].body);
        assert_eq!(
            header(r, "x-lodestar-delivery"),
            header(&got[0], "x-lodestar-delivery")
        );
    }
    let waits: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(waits[0] >= Duration::from_millis(450), "{waits:?}");
    assert!(waits[1] >= Duration::from_millis(950), "{waits:?}");
    let body: Value = serde_json::from_slice(&got[2].body).unwrap();
    assert_eq!(body["members"].as_array().unwrap().len(), USERS);
}

#[tokio::test]
async fn a_400_fails_the_export_at_once_naming_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (app, seg) = shop_with_segment(dir.path()).await;
    let (receiver, url) = Receiver::start(&[200, 400]).await;
    let (status, e) = export_webhook(&app, seg, json!({"url": url, "batch_size": 10})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{e}");
    assert_eq!(e["code"], "webhook_failed");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("batch 2 of 3")
            && message.contains("400 Bad Request")
            && message.contains("test receiver says 400")
            && message.contains(&url),
        "{message}"
    );
    let delivery = &e["delivery"];
    assert_eq!(
        (
            &delivery["batches_sent"],
            &delivery["members_sent"],
            &delivery["failed"]["batch"],
            &delivery["failed"]["attempts"],
            &delivery["failed"]["status"]
        ),
        (&json!(1), &json!(10), &json!(2), &json!(1), &json!(400))
    );
    assert_eq!(
        receiver.got().len(),
        2,
        "no retry of a 400, no batch after it"
    );
}

#[tokio::test]
async fn an_unreachable_receiver_fails_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (app, seg) = shop_with_segment(dir.path()).await;
    // A port nobody listens on: bound, then closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let (status, e) = export_webhook(&app, seg, json!({ "url": url })).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("batch 1 of 1")
            && message.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{message}"
    );
    assert_eq!(
        (
            &e["delivery"]["failed"]["attempts"],
            &e["delivery"]["failed"]["status"],
            &e["delivery"]["batches_sent"]
        ),
        (&json!(5), &Value::Null, &json!(0))
    );
}

#[tokio::test]
async fn bad_webhook_requests_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (app, seg) = shop_with_segment(dir.path()).await;
    for (request, field) in [
        (json!({"url": "https://example.com/hook"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (
            json!({"url": "http://127.0.0.1:9/hook", "batch_size": 10_001}),
            "batch_size",
        ),
        (
            json!({"url": "http://127.0.0.1:9/hook", "headers": {"X-Lodestar-Signature": "x"}}),
            "headers",
        ),
        (
            json!({"url": "http://127.0.0.1:9/hook", "attributes": ["person_id"]}),
            "attributes",
        ),
    ] {
        let (status, e) = export_webhook(&app, seg, request.clone()).await;
        assert_eq!(
            (status, e["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{request}: {e}"
        );
    }
    let message = export_webhook(&app, seg, json!({"url": "https://example.com/hook"}))
        .await
        .1["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("https:// is not supported yet"),
        "{message}"
    );
    let (status, e) = export_webhook(&app, seg, json!({"uri": "http://x/"})).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (status, e) = export_webhook(&app, 999, json!({"url": "http://127.0.0.1:9/"})).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_segment"))
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
