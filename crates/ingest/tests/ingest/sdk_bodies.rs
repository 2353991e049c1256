//! The `/v1/batch` bodies that `segment-analytics-python` 2.4.0 and `rudder-sdk-python`
//! 2.1.9 sent to a loopback server (fixtures/segment-rudder-batches.jsonl, one captured
//! request a line).

use lodestar_core::{MessageKind, Timestamp};
use lodestar_ingest::{Limits, Route};
use serde_json::{Value, json};

use crate::decode;

const CAPTURED: &str = include_str!("../fixtures/segment-rudder-batches.jsonl");

/// A receive time shortly after the captures were sent.
fn received_at() -> Timestamp {
    Timestamp::parse("2026-11-23T17:28:42Z").unwrap()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// The captured requests' bodies, as bytes, with the User-Agent that sent them.
fn captured_bodies() -> Vec<(String, Vec<u8>)> {
    CAPTURED
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let request: Value = serde_json::from_str(line).unwrap();
            assert_eq!(request["path"], "/v1/batch");
            let agent = request["headers"]["User-Agent"]
                .as_str()
                .unwrap()
                .to_string();
            (agent, serde_json::to_vec(&request["body"]).unwrap())
        })
        .collect()
}

#[test]
fn the_fixture_holds_segment_and_rudder_captures() {
    let agents: Vec<String> = captured_bodies().into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        agents,
        [
            "analytics-python/2.4.0",
            "analytics-python/2.4.0",
            "analytics-python/2.1.9"
        ]
    );
}

#[test]
fn every_captured_batch_is_accepted_whole() {
    for (agent, body) in captured_bodies() {
        let request: Value = serde_json::from_slice(&body).unwrap();
        let items = request["batch"].as_array().unwrap();
        let decoded = decode(Route::Batch, &body, received_at(), &Limits::default()).unwrap();
        assert!(
            decoded.rejected.is_empty(),
            "{agent}: {:?}",
            decoded.rejected
        );
        assert!(
            decoded.warnings.is_empty(),
            "{agent}: {:?}",
            decoded.warnings
        );
        assert_eq!(decoded.messages.len(), items.len(), "{agent}");
        for (message, item) in decoded.messages.iter().zip(items) {
            assert_eq!(message.kind.as_str(), item["type"], "{agent}");
            assert_eq!(message.message_id, item["messageId"], "{agent}");
            assert_eq!(
                message.user_id.as_deref(),
                item["userId"].as_str(),
                "{agent}"
            );
            assert_eq!(
                message.anonymous_id.as_deref(),
                item["anonymousId"].as_str(),
                "{agent}"
            );
            let sent = at(item["timestamp"].as_str().unwrap());
            assert_eq!(
                message.timestamp, sent,
                "{agent}: an explicit timestamp is kept"
            );
            assert_eq!(
                message.sent_at,
                Some(at(request["sentAt"].as_str().unwrap()))
            );
            assert_eq!(message.received_at, received_at());
            assert_eq!(message.context["library"]["name"], "analytics-python");
        }
    }
}

#[test]
fn the_segment_batch_decodes_to_these_messages() {
    let (_, body) = &captured_bodies()[0];
    let decoded = decode(Route::Batch, body, received_at(), &Limits::default()).unwrap();
    assert_eq!(decoded.write_key.as_deref(), Some("WRITEKEY_SEG"));
    let kinds: Vec<MessageKind> = decoded.messages.iter().map(|m| m.kind).collect();
    use MessageKind::*;
    assert_eq!(kinds, [Identify, Track, Page, Screen, Group, Alias]);
    let [identify, track, page, screen, group, alias] = &decoded.messages[..] else {
        panic!("six messages");
    };

    assert_eq!(identify.user_id.as_deref(), Some("u1"));
    assert_eq!(identify.anonymous_id.as_deref(), Some("anon-1"));
    assert_eq!(
        Value::Object(identify.traits.clone()),
        json!({"email": "a@b.c", "plan": "pro"})
    );
    assert_eq!(identify.timestamp, at("2026-11-23T17:28:39.491Z"));
    // sentAt has microseconds; milliseconds are kept.
    assert_eq!(identify.sent_at, Some(at("2026-11-23T17:28:39.991Z")));

    assert_eq!(track.event.as_deref(), Some("Order Completed"));
    assert_eq!(
        Value::Object(track.properties.clone()),
        json!({"revenue": 12.5})
    );
    assert!(track.traits.is_empty());

    assert_eq!(page.event.as_deref(), Some("Intro"));
    assert_eq!(page.category.as_deref(), Some("Docs"));
    assert_eq!(page.anonymous_id, None);
    assert_eq!(page.properties["url"], "http://x/");

    assert_eq!(screen.event.as_deref(), Some("Home"));
    assert_eq!(screen.category.as_deref(), Some("App"));

    assert_eq!(group.group_id.as_deref(), Some("g1"));
    assert_eq!(Value::Object(group.traits.clone()), json!({"name": "Acme"}));

    assert_eq!(alias.previous_id.as_deref(), Some("anon-1"));
    assert_eq!(alias.user_id.as_deref(), Some("u1"));
    assert!(alias.integrations.is_empty());
}

#[test]
fn the_rudder_batch_keeps_context_traits_channel_and_integrations() {
    let (_, body) = &captured_bodies()[2];
    let decoded = decode(Route::Batch, body, received_at(), &Limits::default()).unwrap();
    assert_eq!(
        decoded.write_key, None,
        "Rudder sends the key only in the Basic header"
    );
    let identify = &decoded.messages[0];
    assert_eq!(identify.kind, MessageKind::Identify);
    assert_eq!(
        Value::Object(identify.traits.clone()),
        json!({"email": "a@b.c"})
    );
    for message in &decoded.messages {
        assert_eq!(message.channel.as_deref(), Some("server"));
        assert_eq!(
            Value::Object(message.integrations.clone()),
            json!({"All": true})
        );
    }
    assert_eq!(decoded.messages[2].kind, MessageKind::Alias);
    assert_eq!(decoded.messages[2].previous_id.as_deref(), Some("anon-1"));
}

#[test]
fn a_posthog_body_posted_to_the_segment_batch_route_is_refused_item_by_item() {
    // PostHog's v0 batch has no `type` per item: it is another dialect, not a Segment body.
    let body = json!({"api_key": "phc_TESTKEY", "batch": [
        {"event": "Order Completed", "distinct_id": "u1", "properties": {"revenue": 12.5}},
        {"event": "$set", "distinct_id": "u1", "$set": {"email": "a@b.c"}},
    ]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let decoded = decode(Route::Batch, &bytes, received_at(), &Limits::default()).unwrap();
    assert!(decoded.messages.is_empty());
    let fields: Vec<(&str, &str)> = decoded
        .rejected
        .iter()
        .map(|r| (r.code, r.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("missing_field", "batch[0].type"),
            ("missing_field", "batch[1].type")
        ]
    );
}
