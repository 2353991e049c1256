//! Feeds arbitrary bytes through `decode_body` and `decode_request` on every route, and
//! checks that whatever is accepted keeps the `Message` invariant.
//!
//! The first byte picks the `Content-Encoding` header and the limits; the rest is the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lodestar_core::{MessageKind, Timestamp, check_distinct_id};
use lodestar_ingest::{Code, Decoded, Limits, Route, decode_body, decode_request};

/// A fixed receive time: 2026-11-23T17:30:00Z.
const RECEIVED_AT: Timestamp = Timestamp(1_795_455_000_000);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = match selector % 4 {
        0 => None,
        1 => Some("gzip"),
        2 => Some("identity"),
        _ => Some("br"),
    };
    let limits = if selector & 0x80 == 0 {
        Limits::default()
    } else {
        Limits {
            max_event_bytes: 256,
            max_request_bytes: 4096,
            max_future_ms: 1_000,
            max_event_name_chars: 8,
        }
    };
    if let Ok(decoded) = decode_body(body, encoding, &limits) {
        assert!(decoded.len() <= limits.max_request_bytes);
        run_every_route(&decoded, &limits);
    }
    // Also the raw bytes, so the fuzzer need not learn gzip to reach the JSON decoder.
    run_every_route(body, &limits);
});

fn run_every_route(body: &[u8], limits: &Limits) {
    for route in Route::ALL {
        let mut next = 0u32;
        let mut new_id = || {
            next += 1;
            format!("fuzz-{next}")
        };
        match decode_request(route, body, RECEIVED_AT, limits, &mut new_id) {
            Ok(decoded) => check(&decoded, route, limits),
            Err(err) => {
                assert!(Code::parse(err.code()).is_some());
                assert!(!err.message().is_empty());
            }
        }
    }
}

/// What every decoded request must satisfy.
fn check(decoded: &Decoded, route: Route, limits: &Limits) {
    if route != Route::Batch {
        assert_eq!(decoded.messages.len(), 1);
        assert!(decoded.rejected.is_empty());
    }
    for rejection in decoded.rejected.iter().chain(&decoded.warnings) {
        assert!(Code::parse(rejection.code).is_some(), "{}", rejection.code);
    }
    for m in &decoded.messages {
        assert!(m.user_id.is_some() || m.anonymous_id.is_some());
        for id in [&m.user_id, &m.anonymous_id].into_iter().flatten() {
            assert_eq!(check_distinct_id(id), Ok(()));
        }
        match m.kind {
            MessageKind::Track => {
                let event = m.event.as_deref().expect("a track has an event");
                assert!(!event.trim().is_empty());
                assert!(event.chars().count() <= limits.max_event_name_chars);
            }
            MessageKind::Alias => assert!(m.previous_id.is_some() && m.user_id.is_some()),
            MessageKind::Group => assert!(m.group_id.is_some()),
            MessageKind::Identify | MessageKind::Page | MessageKind::Screen => {}
        }
        assert_eq!(m.received_at, RECEIVED_AT);
        assert!(m.timestamp <= RECEIVED_AT.add_millis(limits.max_future_ms));
        assert!(!m.message_id.trim().is_empty());
        if let Some(kind) = route.kind() {
            assert_eq!(m.kind, kind);
        }
    }
}
