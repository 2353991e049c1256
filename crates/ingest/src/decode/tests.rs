//! Unit tests of the decoder: every code, the merges and the time rules.

use serde_json::{Value, json};

use super::*;

/// The receive time every test uses: 2026-11-23T17:30:00Z.
fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T17:30:00Z").unwrap()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// Decodes `body` posted to `route` with default limits; generated ids are `gen-1`, `gen-2`…
fn decode_with(route: Route, body: &Value, limits: &Limits) -> Result<Decoded, IngestError> {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut next = 0;
    let mut new_id = || {
        next += 1;
        format!("gen-{next}")
    };
    decode_request(route, &bytes, now(), limits, &mut new_id)
}

fn decode(route: Route, body: &Value) -> Result<Decoded, IngestError> {
    decode_with(route, body, &Limits::default())
}

fn batch_of(items: Value) -> Decoded {
    decode(Route::Batch, &json!({ "batch": items })).unwrap()
}

/// The single rejection of a one-item batch.
fn rejected(item: Value) -> Rejection {
    let decoded = batch_of(json!([item.clone()]));
    assert!(
        decoded.messages.is_empty(),
        "accepted: {:?}",
        decoded.messages
    );
    assert_eq!(decoded.rejected.len(), 1);
    let rejection = decoded.rejected.into_iter().next().unwrap();
    assert_eq!(rejection.index, 0);
    rejection
}

/// The message and warnings of a one-item batch that must be accepted.
fn accepted(item: Value) -> (Message, Vec<Rejection>) {
    let decoded = batch_of(json!([item]));
    assert!(
        decoded.rejected.is_empty(),
        "rejected: {:?}",
        decoded.rejected
    );
    assert_eq!(decoded.messages.len(), 1);
    (
        decoded.messages.into_iter().next().unwrap(),
        decoded.warnings,
    )
}

fn assert_rejected(item: Value, code: &str, field: &str) -> Rejection {
    let rejection = rejected(item.clone());
    assert_eq!(rejection.code, code, "{rejection:?}");
    assert_eq!(rejection.field, field, "{rejection:?}");
    assert_eq!(rejection.raw, item);
    assert!(!rejection.message.is_empty());
    assert!(!rejection.message.ends_with('.'), "{}", rejection.message);
    rejection
}

fn refused(route: Route, body: Value) -> IngestError {
    decode(route, &body).unwrap_err()
}

// Whole-request errors.

#[test]
fn body_over_the_request_limit_is_too_large() {
    let limits = Limits {
        max_request_bytes: 64,
        ..Limits::default()
    };
    let mut id = || "x".to_string();
    let body = format!(
        r#"{{"batch":[{{"type":"track","event":"{}"}}]}}"#,
        "e".repeat(40)
    );
    let err = decode_request(Route::Batch, body.as_bytes(), now(), &limits, &mut id).unwrap_err();
    assert_eq!(err.code(), "payload_too_large");
    assert!(err.is_too_large());
}

#[test]
fn bodies_that_are_not_json_objects_are_refused() {
    let mut id = || "x".to_string();
    let limits = Limits::default();
    let err = decode_request(
        Route::Batch,
        b"{\n  \"batch\": [,]\n}",
        now(),
        &limits,
        &mut id,
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_json");
    assert_eq!(err.field(), "body");
    assert!(err.message().contains("line 2 column"), "{}", err.message());
    assert!(!err.is_too_large());

    for route in Route::ALL {
        let err = decode_request(route, b"", now(), &limits, &mut id).unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        for body in [&b"[]"[..], b"\"text\"", b"42", b"null"] {
            let err = decode_request(route, body, now(), &limits, &mut id).unwrap_err();
            assert_eq!(err.code(), "invalid_body", "{route:?} {body:?}");
        }
    }
}

#[test]
fn a_byte_order_mark_before_the_json_is_allowed() {
    let mut body = b"\xef\xbb\xbf".to_vec();
    body.extend_from_slice(br#"{"userId":"u1","event":"E"}"#);
    let mut id = || "x".to_string();
    let decoded = decode_request(Route::Track, &body, now(), &Limits::default(), &mut id).unwrap();
    assert_eq!(decoded.messages.len(), 1);
}

#[test]
fn batch_must_be_a_non_empty_array() {
    for body in [
        json!({}),
        json!({"batch": null}),
        json!({"batch": {"type": "track"}}),
    ] {
        let err = refused(Route::Batch, body.clone());
        assert_eq!(err.code(), "invalid_batch", "{body}");
        assert_eq!(err.field(), "batch");
    }
    let err = refused(Route::Batch, json!({"batch": []}));
    assert_eq!(err.code(), "empty_batch");
    assert_eq!(err.field(), "batch");
}

#[test]
fn envelope_fields_of_the_wrong_type_refuse_the_batch() {
    let item = json!({"type": "track", "event": "E", "userId": "u1"});
    let cases = [
        (
            json!({"batch": [item.clone()], "context": []}),
            "invalid_type",
            "context",
        ),
        (
            json!({"batch": [item.clone()], "integrations": "all"}),
            "invalid_type",
            "integrations",
        ),
        (
            json!({"batch": [item.clone()], "sentAt": "soon"}),
            "invalid_timestamp",
            "sentAt",
        ),
        (
            json!({"batch": [item.clone()], "writeKey": 7}),
            "invalid_type",
            "writeKey",
        ),
    ];
    for (body, code, field) in cases {
        let err = refused(Route::Batch, body);
        assert_eq!((err.code(), err.field()), (code, field));
    }
}

#[test]
fn write_key_is_read_from_the_body() {
    let item = json!({"type": "track", "event": "E", "userId": "u1"});
    let decoded = decode(Route::Batch, &json!({"batch": [item], "writeKey": "WK"})).unwrap();
    assert_eq!(decoded.write_key.as_deref(), Some("WK"));
    let decoded = decode(Route::Track, &json!({"event": "E", "userId": "u1"})).unwrap();
    assert_eq!(decoded.write_key, None);
    let decoded = decode(
        Route::Track,
        &json!({"event": "E", "userId": "u1", "writeKey": "K2"}),
    )
    .unwrap();
    assert_eq!(decoded.write_key.as_deref(), Some("K2"));
}

// Batch items: one bad item, alone.

#[test]
fn a_bad_item_does_not_affect_its_neighbours() {
    let bad = json!({"type": "track", "userId": "u2"});
    let decoded = batch_of(json!([
        {"type": "track", "event": "A", "userId": "u1", "messageId": "m1"},
        bad.clone(),
        {"type": "identify", "userId": "u3", "messageId": "m3"},
    ]));
    let ids: Vec<&str> = decoded
        .messages
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    assert_eq!(ids, ["m1", "m3"]);
    assert_eq!(decoded.rejected.len(), 1);
    let rejection = &decoded.rejected[0];
    assert_eq!(rejection.index, 1);
    assert_eq!(rejection.code, "missing_field");
    assert_eq!(rejection.field, "batch[1].event");
    assert_eq!(rejection.raw, bad);
}

#[test]
fn items_must_be_objects_with_a_known_type() {
    let rejection = rejected(json!([1, 2]));
    assert_eq!(
        (rejection.code, rejection.field.as_str()),
        ("invalid_type", "batch[0]")
    );
    let rejection = rejected(json!("track"));
    assert_eq!(rejection.code, "invalid_type");

    assert_rejected(
        json!({"event": "E", "userId": "u1"}),
        "missing_field",
        "batch[0].type",
    );
    assert_rejected(
        json!({"type": null, "event": "E", "userId": "u1"}),
        "missing_field",
        "batch[0].type",
    );
    let rejection = assert_rejected(
        json!({"type": "Track", "event": "E", "userId": "u1"}),
        "unknown_type",
        "batch[0].type",
    );
    assert!(
        rejection.message.contains("\"Track\""),
        "{}",
        rejection.message
    );
    assert_rejected(
        json!({"type": "$set", "userId": "u1"}),
        "unknown_type",
        "batch[0].type",
    );
    assert_rejected(
        json!({"type": 1, "userId": "u1"}),
        "invalid_type",
        "batch[0].type",
    );
}

#[test]
fn an_item_over_the_event_limit_is_refused_with_a_preview() {
    let big = "x".repeat(40 * 1024);
    let item = json!({"type": "track", "event": "E", "userId": "u1", "properties": {"blob": big}});
    let rejection = rejected(item);
    assert_eq!(rejection.code, "event_too_large");
    assert_eq!(rejection.field, "batch[0]");
    let Value::String(preview) = &rejection.raw else {
        panic!("raw should be a preview string, got {:?}", rejection.raw);
    };
    assert!(preview.ends_with('…'), "{preview}");
    assert!(preview.len() <= 256 + '…'.len_utf8(), "{}", preview.len());
    assert!(preview.starts_with('{'), "{preview}");
}

#[test]
fn the_event_limit_counts_compact_json_bytes() {
    let limits = Limits {
        max_event_bytes: 60,
        ..Limits::default()
    };
    // {"event":"E","type":"track","userId":"u1"} is 42 bytes; pad the event name to hit 60.
    let event_of = |n: usize| "E".repeat(n);
    let item = |n: usize| json!({"type": "track", "event": event_of(n), "userId": "u1"});
    let fits = decode_with(Route::Batch, &json!({"batch": [item(19)]}), &limits).unwrap();
    assert_eq!(fits.messages.len(), 1);
    let over = decode_with(Route::Batch, &json!({"batch": [item(20)]}), &limits).unwrap();
    assert_eq!(over.rejected[0].code, "event_too_large");
}

#[test]
fn a_multibyte_preview_is_cut_on_a_character_boundary() {
    let item = json!({"type": "track", "event": "E", "userId": "u1", "properties": {"p": "字".repeat(20_000)}});
    let Value::String(preview) = rejected(item).raw else {
        panic!("raw should be a preview string");
    };
    assert!(preview.ends_with('…'));
    assert!(preview.contains('字'));
}

// Ids.

#[test]
fn ids_may_be_strings_or_numbers() {
    let (m, warnings) = accepted(json!({"type": "identify", "userId": 42, "anonymousId": 1.5}));
    assert_eq!(m.user_id.as_deref(), Some("42"));
    assert_eq!(m.anonymous_id.as_deref(), Some("1.5"));
    assert!(warnings.is_empty());
    let (m, _) = accepted(json!({"type": "identify", "userId": "  u1 \n"}));
    assert_eq!(m.user_id.as_deref(), Some("u1"));
    for key in ["userId", "anonymousId"] {
        for value in [json!(true), json!(["u1"]), json!({"id": "u1"})] {
            let mut item = json!({"type": "identify", "userId": "u0"});
            item[key] = value;
            assert_rejected(item, "invalid_type", &format!("batch[0].{key}"));
        }
    }
}

#[test]
fn a_placeholder_id_is_dropped_with_a_warning() {
    let item = json!({"type": "track", "event": "E", "userId": "null", "anonymousId": "anon-1"});
    let (m, warnings) = accepted(item.clone());
    assert_eq!(m.user_id, None);
    assert_eq!(m.anonymous_id.as_deref(), Some("anon-1"));
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].code, "blocked_id");
    assert_eq!(warnings[0].field, "batch[0].userId");
    assert_eq!(warnings[0].raw, item);

    let (m, warnings) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "anonymousId": "00000000-0000-0000-0000-000000000000"}),
    );
    assert_eq!(m.anonymous_id, None);
    assert_eq!(warnings[0].field, "batch[0].anonymousId");
}

#[test]
fn a_message_needs_a_usable_id() {
    let rejection = assert_rejected(
        json!({"type": "track", "event": "E"}),
        "missing_id",
        "batch[0].userId",
    );
    assert_eq!(rejection.message, "a message needs userId or anonymousId");
    assert_rejected(
        json!({"type": "track", "event": "E", "userId": null, "anonymousId": "  "}),
        "missing_id",
        "batch[0].userId",
    );
    // Both placeholders: refused, and the warnings of a refused item are not reported.
    let decoded = batch_of(
        json!([{"type": "track", "event": "E", "userId": "undefined", "anonymousId": "anonymous"}]),
    );
    assert_eq!(decoded.rejected[0].code, "missing_id");
    assert!(decoded.warnings.is_empty());
}

#[test]
fn ids_over_the_length_limit_are_refused() {
    let long = "u".repeat(MAX_ID_CHARS + 1);
    assert_rejected(
        json!({"type": "identify", "userId": long}),
        "id_too_long",
        "batch[0].userId",
    );
    assert_rejected(
        json!({"type": "identify", "userId": "u1", "anonymousId": long}),
        "id_too_long",
        "batch[0].anonymousId",
    );
    assert_rejected(
        json!({"type": "alias", "userId": "u1", "previousId": long}),
        "id_too_long",
        "batch[0].previousId",
    );
    assert_rejected(
        json!({"type": "group", "userId": "u1", "groupId": long}),
        "id_too_long",
        "batch[0].groupId",
    );
    let (m, _) = accepted(json!({"type": "identify", "userId": "字".repeat(MAX_ID_CHARS)}));
    assert_eq!(m.user_id.unwrap().chars().count(), MAX_ID_CHARS);
}

#[test]
fn alias_needs_previous_id_and_user_id() {
    let (m, _) = accepted(json!({"type": "alias", "previousId": "anon-1", "userId": "u1"}));
    assert_eq!(m.previous_id.as_deref(), Some("anon-1"));
    assert_eq!(m.user_id.as_deref(), Some("u1"));
    assert_rejected(
        json!({"type": "alias", "userId": "u1"}),
        "missing_field",
        "batch[0].previousId",
    );
    assert_rejected(
        json!({"type": "alias", "userId": "u1", "previousId": ""}),
        "missing_field",
        "batch[0].previousId",
    );
    assert_rejected(
        json!({"type": "alias", "previousId": "anon-1", "anonymousId": "anon-1"}),
        "missing_field",
        "batch[0].userId",
    );
    assert_rejected(
        json!({"type": "alias", "previousId": "anon-1", "userId": "guest"}),
        "missing_field",
        "batch[0].userId",
    );
    assert_rejected(
        json!({"type": "alias", "previousId": "null", "userId": "u1"}),
        "blocked_id",
        "batch[0].previousId",
    );
    assert_rejected(
        json!({"type": "alias", "previousId": [1], "userId": "u1"}),
        "invalid_type",
        "batch[0].previousId",
    );
}

#[test]
fn group_needs_group_id() {
    let (m, _) = accepted(
        json!({"type": "group", "userId": "u1", "groupId": 7, "traits": {"name": "Acme"}}),
    );
    assert_eq!(m.group_id.as_deref(), Some("7"));
    assert_eq!(
        m.traits,
        json!({"name": "Acme"}).as_object().unwrap().clone()
    );
    assert_rejected(
        json!({"type": "group", "userId": "u1"}),
        "missing_field",
        "batch[0].groupId",
    );
    assert_rejected(
        json!({"type": "group", "userId": "u1", "groupId": false}),
        "invalid_type",
        "batch[0].groupId",
    );
}

#[test]
fn previous_and_group_ids_are_read_only_for_their_calls() {
    let (m, _) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "previousId": "p", "groupId": "g"}),
    );
    assert_eq!((m.previous_id, m.group_id), (None, None));
}

// Names.

#[test]
fn track_needs_an_event_name_within_the_limit() {
    for event in [json!(null), json!(""), json!("   ")] {
        assert_rejected(
            json!({"type": "track", "userId": "u1", "event": event}),
            "missing_field",
            "batch[0].event",
        );
    }
    assert_rejected(
        json!({"type": "track", "userId": "u1", "event": 5}),
        "invalid_type",
        "batch[0].event",
    );
    assert_rejected(
        json!({"type": "track", "userId": "u1", "event": "e".repeat(201)}),
        "event_name_too_long",
        "batch[0].event",
    );
    let (m, _) = accepted(json!({"type": "track", "userId": "u1", "event": "事".repeat(200)}));
    assert_eq!(m.event.unwrap().chars().count(), 200);
}

#[test]
fn page_and_screen_names_and_categories_are_kept() {
    let (m, _) = accepted(
        json!({"type": "page", "userId": "u1", "name": "Intro", "category": "Docs", "channel": "browser", "properties": {"url": "http://x/"}}),
    );
    assert_eq!(m.kind, MessageKind::Page);
    assert_eq!(m.event.as_deref(), Some("Intro"));
    assert_eq!(m.category.as_deref(), Some("Docs"));
    assert_eq!(m.channel.as_deref(), Some("browser"));
    assert_eq!(m.properties["url"], "http://x/");
    let (m, _) =
        accepted(json!({"type": "screen", "userId": "u1", "name": "Home", "category": "App"}));
    assert_eq!(
        (m.event.as_deref(), m.category.as_deref()),
        (Some("Home"), Some("App"))
    );
    let (m, _) = accepted(json!({"type": "page", "userId": "u1", "name": ""}));
    assert_eq!(m.event, None);
    assert_rejected(
        json!({"type": "page", "userId": "u1", "name": 3}),
        "invalid_type",
        "batch[0].name",
    );
    assert_rejected(
        json!({"type": "screen", "userId": "u1", "name": "n".repeat(201)}),
        "event_name_too_long",
        "batch[0].name",
    );
    assert_rejected(
        json!({"type": "page", "userId": "u1", "category": {}}),
        "invalid_type",
        "batch[0].category",
    );
    assert_rejected(
        json!({"type": "page", "userId": "u1", "channel": 1}),
        "invalid_type",
        "batch[0].channel",
    );
}

// Objects.

#[test]
fn objects_must_be_objects_and_null_counts_as_absent() {
    for key in [
        "properties",
        "traits",
        "context",
        "integrations",
        "$set",
        "$set_once",
    ] {
        for value in [json!([]), json!("x"), json!(1), json!(true)] {
            let mut item = json!({"type": "track", "event": "E", "userId": "u1"});
            item[key] = value;
            assert_rejected(item, "invalid_type", &format!("batch[0].{key}"));
        }
        let mut item = json!({"type": "track", "event": "E", "userId": "u1"});
        item[key] = Value::Null;
        let (m, _) = accepted(item);
        assert!(m.properties.is_empty() && m.context.is_empty() && m.traits.is_empty());
    }
}

#[test]
fn unknown_top_level_fields_are_ignored() {
    let (m, _) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "version": 2, "options": [1], "receivedAt": "garbage"}),
    );
    assert_eq!(m.received_at, now());
}

// Message ids.

#[test]
fn message_ids_are_kept_or_generated() {
    let decoded = batch_of(json!([
        {"type": "track", "event": "E", "userId": "u1"},
        {"type": "track", "event": "E", "userId": "u1", "messageId": "mine"},
        {"type": "track", "userId": "u1"},
        {"type": "track", "event": "E", "userId": "u1", "messageId": 12345},
        {"type": "track", "event": "E", "userId": "u1", "messageId": ""},
    ]));
    let ids: Vec<&str> = decoded
        .messages
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    // The refused item (index 2) did not use up a generated id.
    assert_eq!(ids, ["gen-1", "mine", "12345", "gen-2"]);
}

#[test]
fn message_ids_must_be_strings_or_numbers_within_the_limit() {
    assert_rejected(
        json!({"type": "track", "event": "E", "userId": "u1", "messageId": {"id": 1}}),
        "invalid_type",
        "batch[0].messageId",
    );
    assert_rejected(
        json!({"type": "track", "event": "E", "userId": "u1", "messageId": "m".repeat(201)}),
        "message_id_too_long",
        "batch[0].messageId",
    );
    let (m, _) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "messageId": "m".repeat(200)}),
    );
    assert_eq!(m.message_id.len(), 200);
}

// Timestamps.

#[test]
fn unparsable_timestamps_are_refused() {
    for key in ["timestamp", "originalTimestamp", "sentAt"] {
        for value in [json!("yesterday"), json!(1_700_000_000_000_i64), json!({})] {
            let mut item = json!({"type": "track", "event": "E", "userId": "u1"});
            item[key] = value;
            assert_rejected(item, "invalid_timestamp", &format!("batch[0].{key}"));
        }
    }
}

#[test]
fn an_explicit_timestamp_is_kept() {
    let (m, warnings) = accepted(json!({
        "type": "track", "event": "E", "userId": "u1",
        "timestamp": "2020-01-01T00:00:00Z",
        "originalTimestamp": "2026-11-23T17:00:00Z",
        "sentAt": "2026-11-23T17:00:05Z",
    }));
    assert_eq!(m.timestamp, at("2020-01-01T00:00:00Z"));
    assert_eq!(m.original_timestamp, Some(at("2026-11-23T17:00:00Z")));
    assert_eq!(m.sent_at, Some(at("2026-11-23T17:00:05Z")));
    assert_eq!(m.received_at, now());
    assert!(warnings.is_empty());
}

#[test]
fn original_timestamp_is_corrected_for_clock_skew() {
    // The client's clock runs one hour behind: it sent 5 s after the event by its own clock.
    let (m, _) = accepted(json!({
        "type": "track", "event": "E", "userId": "u1",
        "originalTimestamp": "2026-11-23T16:29:50Z",
        "sentAt": "2026-11-23T16:29:55Z",
    }));
    assert_eq!(m.timestamp, at("2026-11-23T17:29:55Z"));
    assert_eq!(m.original_timestamp, Some(at("2026-11-23T16:29:50Z")));
}

#[test]
fn batch_sent_at_applies_to_items_without_their_own() {
    let decoded = decode(
        Route::Batch,
        &json!({
            "sentAt": "2026-11-23T16:30:00Z",
            "batch": [
                {"type": "track", "event": "A", "userId": "u1", "originalTimestamp": "2026-11-23T16:29:00Z"},
                {"type": "track", "event": "B", "userId": "u1", "originalTimestamp": "2026-11-23T16:29:00Z",
                 "sentAt": "2026-11-23T16:29:30Z"},
                {"type": "track", "event": "C", "userId": "u1", "originalTimestamp": "2026-11-23T16:29:00Z",
                 "sentAt": null},
            ]
        }),
    )
    .unwrap();
    let m = &decoded.messages;
    assert_eq!(m[0].sent_at, Some(at("2026-11-23T16:30:00Z")));
    assert_eq!(m[0].timestamp, at("2026-11-23T17:29:00Z"));
    assert_eq!(m[1].sent_at, Some(at("2026-11-23T16:29:30Z")));
    assert_eq!(m[1].timestamp, at("2026-11-23T17:29:30Z"));
    assert_eq!(m[2].sent_at, Some(at("2026-11-23T16:30:00Z")));
}

#[test]
fn without_sent_at_the_original_timestamp_is_taken_as_is() {
    let (m, _) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "originalTimestamp": "2026-11-20T08:00:00+08:00"}),
    );
    assert_eq!(m.timestamp, at("2026-11-20T00:00:00Z"));
    assert_eq!(m.sent_at, None);
}

#[test]
fn without_any_time_the_receive_time_is_used() {
    let (m, _) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "sentAt": "2026-11-23T10:00:00Z"}),
    );
    assert_eq!(m.timestamp, now());
    assert_eq!(m.original_timestamp, None);
    assert_eq!(m.sent_at, Some(at("2026-11-23T10:00:00Z")));
}

#[test]
fn timestamps_far_in_the_future_are_clamped_with_a_warning() {
    let item =
        json!({"type": "track", "event": "E", "userId": "u1", "timestamp": "2026-11-24T17:30:00Z"});
    let (m, warnings) = accepted(item.clone());
    assert_eq!(m.timestamp, now());
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].code, "timestamp_clamped");
    assert_eq!(warnings[0].field, "batch[0].timestamp");
    assert_eq!(warnings[0].raw, item);

    // Exactly 23 h ahead is still allowed; one millisecond more is not.
    let (m, warnings) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "timestamp": "2026-11-24T16:30:00.000Z"}),
    );
    assert_eq!(m.timestamp, at("2026-11-24T16:30:00Z"));
    assert!(warnings.is_empty());
    let (m, warnings) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "timestamp": "2026-11-24T16:30:00.001Z"}),
    );
    assert_eq!(m.timestamp, now());
    assert_eq!(warnings.len(), 1);

    // A skew correction that lands in the future is clamped too.
    let (m, warnings) = accepted(json!({
        "type": "track", "event": "E", "userId": "u1",
        "originalTimestamp": "2026-11-25T00:00:00Z", "sentAt": "2026-11-23T00:00:00Z",
    }));
    assert_eq!(m.timestamp, now());
    assert_eq!(warnings[0].code, "timestamp_clamped");
}

#[test]
fn time_arithmetic_saturates_instead_of_overflowing() {
    let (ts, clamped) = resolve_time(
        None,
        Some(Timestamp(i64::MIN)),
        Some(Timestamp(i64::MAX)),
        Timestamp(i64::MIN),
        i64::MAX,
    );
    assert_eq!((ts, clamped), (Timestamp(i64::MIN), None));
    let (ts, clamped) = resolve_time(Some(Timestamp(i64::MAX)), None, None, Timestamp(0), -5);
    assert_eq!((ts, clamped), (Timestamp(0), Some(Timestamp(i64::MAX))));
}

// Merges.

#[test]
fn batch_context_and_integrations_merge_into_items_and_items_win() {
    let decoded = decode(
        Route::Batch,
        &json!({
            "context": {"library": {"name": "batch-lib"}, "ip": "1.2.3.4"},
            "integrations": {"All": false, "Mixpanel": true},
            "batch": [
                {"type": "track", "event": "A", "userId": "u1",
                 "context": {"ip": "5.6.7.8", "locale": "zh-CN"}, "integrations": {"All": true}},
                {"type": "track", "event": "B", "userId": "u1"},
            ]
        }),
    )
    .unwrap();
    let [a, b] = &decoded.messages[..] else {
        panic!("expected two messages");
    };
    assert_eq!(
        Value::Object(a.context.clone()),
        json!({"library": {"name": "batch-lib"}, "ip": "5.6.7.8", "locale": "zh-CN"})
    );
    assert_eq!(
        Value::Object(a.integrations.clone()),
        json!({"All": true, "Mixpanel": true})
    );
    assert_eq!(
        Value::Object(b.context.clone()),
        json!({"library": {"name": "batch-lib"}, "ip": "1.2.3.4"})
    );
    assert_eq!(
        Value::Object(b.integrations.clone()),
        json!({"All": false, "Mixpanel": true})
    );
}

#[test]
fn identify_traits_merge_top_level_over_context_traits() {
    let (m, _) = accepted(json!({
        "type": "identify", "userId": "u1",
        "context": {"traits": {"email": "old@x", "plan": "free"}},
        "traits": {"email": "new@x"},
    }));
    assert_eq!(
        Value::Object(m.traits),
        json!({"email": "new@x", "plan": "free"})
    );
    // RudderStack sends identify traits only in context.traits, and the batch's context
    // counts as the item's.
    let decoded = decode(
        Route::Batch,
        &json!({"context": {"traits": {"tier": 2}}, "batch": [{"type": "identify", "userId": "u1"}]}),
    )
    .unwrap();
    assert_eq!(
        Value::Object(decoded.messages[0].traits.clone()),
        json!({"tier": 2})
    );
    assert_rejected(
        json!({"type": "identify", "userId": "u1", "context": {"traits": "x"}}),
        "invalid_type",
        "batch[0].context.traits",
    );
}

#[test]
fn only_identify_and_group_read_traits() {
    let (m, _) = accepted(
        json!({"type": "track", "event": "E", "userId": "u1", "traits": {"a": 1}, "context": {"traits": {"b": 2}}}),
    );
    assert!(m.traits.is_empty());
    let (m, _) = accepted(
        json!({"type": "group", "userId": "u1", "groupId": "g", "context": {"traits": {"b": 2}}}),
    );
    assert!(m.traits.is_empty());
}

#[test]
fn set_and_set_once_move_into_traits() {
    let (m, _) = accepted(json!({
        "type": "track", "event": "E", "userId": "u1",
        "$set": {"email": "a@b.c"},
        "$set_once": {"first_seen": "2026"},
        "properties": {"revenue": 1, "$set": {"plan": "pro"}, "$set_once": {"source": "ad", "first_seen": "2025"}},
    }));
    assert_eq!(Value::Object(m.properties), json!({"revenue": 1}));
    assert_eq!(
        Value::Object(m.traits),
        json!({"email": "a@b.c", "plan": "pro"})
    );
    assert_eq!(
        Value::Object(m.set_once),
        json!({"source": "ad", "first_seen": "2026"})
    );

    let (m, _) = accepted(
        json!({"type": "identify", "userId": "u1", "traits": {"a": 1, "b": 1}, "$set": {"b": 2}}),
    );
    assert_eq!(Value::Object(m.traits), json!({"a": 1, "b": 2}));

    let (m, _) = accepted(json!({"type": "page", "userId": "u1", "properties": {"$set": null}}));
    assert!(m.properties.is_empty());
    assert_rejected(
        json!({"type": "page", "userId": "u1", "properties": {"$set": "x"}}),
        "invalid_type",
        "batch[0].properties.$set",
    );
    assert_rejected(
        json!({"type": "page", "userId": "u1", "properties": {"$set_once": [1]}}),
        "invalid_type",
        "batch[0].properties.$set_once",
    );
}

// Single-call routes.

#[test]
fn a_single_call_route_decides_the_type() {
    let decoded = decode(
        Route::Track,
        &json!({"type": "identify", "event": "E", "userId": "u1"}),
    )
    .unwrap();
    assert_eq!(decoded.messages[0].kind, MessageKind::Track);
    for (route, body) in [
        (Route::Identify, json!({"userId": "u1", "traits": {"a": 1}})),
        (Route::Page, json!({"userId": "u1", "name": "Home"})),
        (Route::Screen, json!({"anonymousId": "a1"})),
        (Route::Group, json!({"userId": "u1", "groupId": "g1"})),
        (Route::Alias, json!({"userId": "u1", "previousId": "a1"})),
    ] {
        let decoded = decode(route, &body).unwrap();
        assert_eq!(Some(decoded.messages[0].kind), route.kind());
        assert!(decoded.rejected.is_empty());
    }
}

#[test]
fn an_invalid_single_call_is_a_request_error() {
    let err = refused(Route::Track, json!({"userId": "u1"}));
    assert_eq!((err.code(), err.field()), ("missing_field", "event"));
    let err = refused(Route::Identify, json!({"traits": {}}));
    assert_eq!((err.code(), err.field()), ("missing_id", "userId"));
    let err = refused(
        Route::Track,
        json!({"userId": "u1", "event": "E", "timestamp": "nope"}),
    );
    assert_eq!(
        (err.code(), err.field()),
        ("invalid_timestamp", "timestamp")
    );
    assert!(!err.is_too_large());

    let big = json!({"userId": "u1", "event": "E", "properties": {"b": "x".repeat(33 * 1024)}});
    let err = refused(Route::Track, big);
    assert_eq!((err.code(), err.field()), ("event_too_large", "body"));
    assert!(err.is_too_large());
}

#[test]
fn single_call_warnings_point_at_the_call() {
    let body = json!({"userId": "none", "anonymousId": "a1", "event": "E"});
    let decoded = decode(Route::Track, &body).unwrap();
    assert_eq!(decoded.warnings.len(), 1);
    let warning = &decoded.warnings[0];
    assert_eq!(
        (warning.index, warning.code, warning.field.as_str()),
        (0, "blocked_id", "userId")
    );
    assert_eq!(warning.raw, body);
}
