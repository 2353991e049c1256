//! Profiles over HTTP: computed attributes in the settings (checked, named errors), tags and
//! consent edited, the person's view carrying them, and segments on them.

use super::*;

#[tokio::test]
async fn profiles_carry_computed_attributes_tags_and_consent() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), None);
    let key = create_shop(&app).await;
    let local = "127.0.0.1:1";
    let batch = json!({"batch": [
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m1",
         "timestamp": "2025-11-20T10:00:00Z"},
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m2",
         "properties": {"revenue": 80, "category": "books"}, "timestamp": "2025-11-21T10:00:00Z"},
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m3",
         "properties": {"revenue": 20, "category": "toys"}, "timestamp": "2025-11-22T10:00:00Z"}
    ]});
    let (status, _) = call(
        &app,
        post("/v1/batch", Some(&basic(&key)), batch.to_string()),
        local,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A bad definition is refused with the field named; a good one is kept.
    let bad = json!({"timezone": "UTC", "defaults": {"computed": [
        {"name": "spend", "agg": "median", "event": "Order Completed"}]}});
    let (status, err) = call(
        &app,
        put("/api/projects/shop/settings", bad.to_string()),
        local,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["field"], "defaults.computed[0].agg");
    let good = json!({"timezone": "UTC", "defaults": {"computed": [
        {"name": "spend_30d", "agg": "sum", "event": "Order Completed", "days": 30},
        {"name": "last_order", "agg": "last_time", "event": "Order Completed"},
        {"name": "favourite_category", "agg": "most_frequent", "event": "Order Completed",
         "property": "category"}]}});
    let (status, err) = call(
        &app,
        put("/api/projects/shop/settings", good.to_string()),
        local,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{err}");

    let edit = json!({"user_ids": ["u1"], "add_tags": ["vip"], "consent": {"email": true}});
    let (status, done) = call(
        &app,
        post("/api/projects/shop/persons/edit", None, edit.to_string()),
        local,
    )
    .await;
    assert_eq!(
        (status, done["updated"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{done}"
    );
    let bad = json!({"user_ids": ["u1"], "consent": {"fax": true}});
    let (status, err) = call(
        &app,
        post("/api/projects/shop/persons/edit", None, bad.to_string()),
        local,
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("consent.fax"))
    );

    let (status, view) = call(&app, get("/api/projects/shop/persons?user_id=u1"), local).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["computed"]["spend_30d"], json!(100.0));
    assert_eq!(
        view["computed"]["last_order"],
        json!("2025-11-22T10:00:00.000Z")
    );
    // A tie (one each): the one seen last.
    assert_eq!(view["computed"]["favourite_category"], json!("toys"));
    assert_eq!(view["tags"], json!(["vip"]));
    assert_eq!(view["consent"], json!({"email": true}));
    let keys: Vec<&str> = view["trait_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"plan") && keys.contains(&"tags") && keys.contains(&"consent"),
        "{keys:?}"
    );

    let preview = json!({"condition": {"type": "and", "all": [
        {"type": "computed", "name": "spend_30d", "op": "gte", "value": 100},
        {"type": "trait", "property": "tags", "op": "contains", "value": "vip"}]}});
    let (status, got) = call(
        &app,
        post(
            "/api/projects/shop/segments/preview",
            None,
            preview.to_string(),
        ),
        local,
    )
    .await;
    assert_eq!(
        (status, got["size"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{got}"
    );
}
