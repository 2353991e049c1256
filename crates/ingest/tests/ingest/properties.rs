//! Property tests: no input makes the decoder panic or break the `Message` invariant, and
//! `decode(encode(m)) == m` for every valid message.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use lodestar_core::{JsonMap, Message, MessageKind, Timestamp, check_distinct_id};
use lodestar_ingest::{Code, Decoded, Limits, Route, decode_body, encode_message};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::decode;

/// The receive time of the panic and invariant tests.
fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T17:30:00Z").unwrap()
}

/// Small limits, so that arbitrary inputs reach the size checks too.
fn tight_limits() -> Limits {
    Limits {
        max_event_bytes: 300,
        max_request_bytes: 2_000,
        max_future_ms: Timestamp::HOUR,
        max_event_name_chars: 10,
    }
}

// Strategies.

/// Any JSON value, a few levels deep. Floats are eighths, which JSON text carries exactly.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_000i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn json_map() -> impl Strategy<Value = JsonMap> {
    prop::collection::btree_map("[a-z$_]{1,8}|\\PC{0,8}", json_value(), 0..4)
        .prop_map(|map| map.into_iter().collect())
}

/// Values that the decoder treats specially: ids, time stamps, placeholders, wrong types.
fn interesting_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        prop::sample::select(vec![
            json!("u1"),
            json!("null"),
            json!("anonymous"),
            json!("0"),
            json!(" "),
            json!(""),
            json!(42),
            json!(-1),
            json!(1.5),
            json!("2026-11-23T17:29:00Z"),
            json!("2026-11-25T00:00:00+08:00"),
            json!("1970-01-01"),
            json!("+275760-09-13T00:00:00Z"),
            json!("9999-12-31T23:59:59.999Z"),
            json!("track"),
            json!("identify"),
            json!("page"),
            json!("screen"),
            json!("group"),
            json!("alias"),
            json!({"traits": {"a": 1}}),
            json!({"$set": {"a": 1}, "$set_once": 3}),
            json!("x".repeat(250)),
        ]),
    ]
}

const KNOWN_KEYS: &[&str] = &[
    "type",
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "messageId",
    "event",
    "name",
    "category",
    "channel",
    "properties",
    "traits",
    "context",
    "integrations",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "$set",
    "$set_once",
    "writeKey",
];

/// An object whose keys are mostly the spec's, with values of any type.
fn call_like() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (prop::sample::select(KNOWN_KEYS), interesting_value()),
        0..10,
    )
    .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// A batch body: the envelope's fields plus items that look like calls, or anything.
fn batch_like() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(prop_oneof![4 => call_like(), 1 => json_value()], 0..6),
        prop::option::of(interesting_value()),
        prop::option::of(interesting_value()),
        prop::option::of(interesting_value()),
    )
        .prop_map(|(items, context, sent_at, write_key)| {
            let mut body = json!({ "batch": items });
            for (key, value) in [
                ("context", context),
                ("sentAt", sent_at),
                ("writeKey", write_key),
            ] {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            body
        })
}

/// An id that passes `check_distinct_id` and has no surrounding white space.
fn valid_id() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9@._-]{1,40}", "\\PC{1,20}"].prop_filter("a usable id", |id| {
        id.trim() == id && check_distinct_id(id).is_ok()
    })
}

fn non_blank(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("\\PC{{1,{max}}}"))
        .unwrap()
        .prop_filter("not blank", |s| !s.trim().is_empty())
}

/// Timestamps that RFC 3339 can write: the years 0000 to 9999.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    let first = Timestamp::parse("0000-01-01T00:00:00Z").unwrap().millis();
    let last = Timestamp::parse("9999-12-31T23:59:59.999Z")
        .unwrap()
        .millis();
    (first..=last).prop_map(Timestamp)
}

/// A map without the keys decoding moves elsewhere (`$set`, `$set_once`) or folds into
/// traits (`traits` of an identify's context).
fn plain_map(excluded: &'static [&'static str]) -> impl Strategy<Value = JsonMap> {
    json_map().prop_map(move |mut map| {
        for key in excluded {
            map.remove(*key);
        }
        map
    })
}

/// Any message that satisfies `Message`'s invariant and that decoding can produce.
fn valid_message() -> impl Strategy<Value = Message> {
    let ids = (
        non_blank(60),
        prop::option::of(valid_id()),
        prop::option::of(valid_id()),
        valid_id(),
        valid_id(),
    );
    let names = (
        non_blank(50),
        prop::option::of(non_blank(50)),
        prop::option::of("\\PC{0,12}"),
        prop::option::of("\\PC{0,12}"),
    );
    let times = (
        timestamp(),
        prop::option::of(timestamp()),
        prop::option::of(timestamp()),
        timestamp(),
    );
    let maps = (
        plain_map(&["$set", "$set_once"]),
        json_map(),
        json_map(),
        plain_map(&["traits"]),
        json_map(),
    );
    (
        prop::sample::select(MessageKind::ALL.to_vec()),
        ids,
        names,
        times,
        maps,
    )
        .prop_map(|(kind, ids, names, times, maps)| {
            let (message_id, mut user_id, anonymous_id, other_id, fallback_id) = ids;
            let (event, page_name, category, channel) = names;
            let (timestamp, original_timestamp, sent_at, received_at) = times;
            let (properties, traits, set_once, context, integrations) = maps;
            if kind == MessageKind::Alias || (user_id.is_none() && anonymous_id.is_none()) {
                user_id = user_id.or(Some(fallback_id));
            }
            Message {
                message_id,
                kind,
                event: match kind {
                    MessageKind::Track => Some(event),
                    MessageKind::Page | MessageKind::Screen => page_name,
                    _ => None,
                },
                user_id,
                anonymous_id,
                previous_id: (kind == MessageKind::Alias).then(|| other_id.clone()),
                group_id: (kind == MessageKind::Group).then_some(other_id),
                category,
                timestamp,
                original_timestamp,
                sent_at,
                received_at,
                properties,
                traits,
                set_once,
                context,
                integrations,
                channel,
            }
        })
}

// Checks.

/// What every decoded request must satisfy, whatever came in.
fn check_decoded(decoded: &Decoded, items: Option<usize>, limits: &Limits) {
    if let Some(items) = items {
        assert_eq!(decoded.messages.len() + decoded.rejected.len(), items);
    }
    for rejection in decoded.rejected.iter().chain(&decoded.warnings) {
        assert!(Code::parse(rejection.code).is_some(), "{}", rejection.code);
        assert!(!rejection.message.ends_with('.'), "{}", rejection.message);
        let first = rejection.message.chars().next().unwrap();
        assert!(!first.is_uppercase(), "{}", rejection.message);
    }
    let indexes: Vec<usize> = decoded.rejected.iter().map(|r| r.index).collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    for m in &decoded.messages {
        assert!(m.user_id.is_some() || m.anonymous_id.is_some(), "{m:?}");
        for id in [&m.user_id, &m.anonymous_id].into_iter().flatten() {
            assert_eq!(check_distinct_id(id), Ok(()));
        }
        match m.kind {
            MessageKind::Track => {
                let event = m.event.as_deref().unwrap();
                assert!(!event.trim().is_empty());
                assert!(event.chars().count() <= limits.max_event_name_chars);
            }
            MessageKind::Alias => assert!(m.previous_id.is_some() && m.user_id.is_some()),
            MessageKind::Group => assert!(m.group_id.is_some()),
            _ => {}
        }
        assert!(!m.message_id.trim().is_empty());
        assert_eq!(m.received_at, now());
        assert!(m.timestamp <= now().add_millis(limits.max_future_ms));
        assert!(!m.properties.contains_key("$set") && !m.properties.contains_key("$set_once"));
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        for limits in [Limits::default(), tight_limits()] {
            for encoding in [None, Some("gzip"), Some("identity")] {
                let _ = decode_body(&bytes, encoding, &limits);
            }
            let packed = gzip(&bytes);
            prop_assert_eq!(decode_body(&packed, Some("gzip"), &limits).ok(), (bytes.len() <= limits.max_request_bytes).then(|| bytes.clone()));
            for route in Route::ALL {
                if let Ok(decoded) = decode(route, &bytes, now(), &limits) {
                    check_decoded(&decoded, None, &limits);
                }
            }
        }
    }

    #[test]
    fn arbitrary_json_never_panics(body in prop_oneof![batch_like(), call_like(), json_value()]) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let items = body.get("batch").and_then(Value::as_array).map(Vec::len);
        for limits in [Limits::default(), tight_limits()] {
            for route in Route::ALL {
                if let Ok(decoded) = decode(route, &bytes, now(), &limits) {
                    let expected = if route == Route::Batch { items } else { Some(1) };
                    check_decoded(&decoded, expected, &limits);
                }
            }
        }
    }

    #[test]
    fn decoding_an_encoded_message_gives_it_back(message in valid_message()) {
        let limits = Limits {
            max_event_bytes: usize::MAX,
            max_request_bytes: usize::MAX,
            max_future_ms: i64::MAX,
            ..Limits::default()
        };
        let encoded = encode_message(&message);
        let mut fail_if_called = || -> String { panic!("a message id was generated") };

        let single = serde_json::to_vec(&encoded).unwrap();
        let route = Route::for_kind(message.kind);
        let decoded = lodestar_ingest::decode_request(route, &single, message.received_at, &limits, &mut fail_if_called).unwrap();
        prop_assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
        prop_assert_eq!(&decoded.messages, &vec![message.clone()]);

        let batch = serde_json::to_vec(&json!({ "batch": [encoded] })).unwrap();
        let decoded = lodestar_ingest::decode_request(Route::Batch, &batch, message.received_at, &limits, &mut fail_if_called).unwrap();
        prop_assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        prop_assert_eq!(&decoded.messages, &vec![message]);
    }
}

#[test]
fn encoding_writes_the_spec_field_names() {
    let at = |text: &str| Timestamp::parse(text).unwrap();
    let message = Message {
        message_id: "m1".into(),
        kind: MessageKind::Page,
        event: Some("Intro".into()),
        user_id: Some("u1".into()),
        anonymous_id: None,
        previous_id: None,
        group_id: None,
        category: Some("Docs".into()),
        timestamp: at("2026-11-23T17:28:39.491Z"),
        original_timestamp: Some(at("2026-11-23T17:28:39Z")),
        sent_at: None,
        received_at: at("2026-11-23T17:28:42+00:00"),
        properties: json!({"url": "http://x/"}).as_object().unwrap().clone(),
        traits: json!({"plan": "pro"}).as_object().unwrap().clone(),
        set_once: JsonMap::new(),
        context: JsonMap::new(),
        integrations: json!({"All": true}).as_object().unwrap().clone(),
        channel: Some("browser".into()),
    };
    assert_eq!(
        encode_message(&message),
        json!({
            "type": "page",
            "messageId": "m1",
            "userId": "u1",
            "name": "Intro",
            "category": "Docs",
            "properties": {"url": "http://x/"},
            "$set": {"plan": "pro"},
            "integrations": {"All": true},
            "channel": "browser",
            "timestamp": "2026-11-23T17:28:39.491Z",
            "originalTimestamp": "2026-11-23T17:28:39.000Z",
            "receivedAt": "2026-11-23T17:28:42.000Z",
        })
    );
}
