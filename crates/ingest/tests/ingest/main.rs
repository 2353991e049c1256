//! Integration tests of `lodestar-ingest` through its public API: bodies real SDKs sent,
//! gzip (including a bomb), and property tests that nothing panics and that encoding then
//! decoding gives a message back.

#![allow(
    unsafe_code,
    reason = "the counting allocator below measures peak memory in the gzip bomb test"
)]

mod alloc_meter;
mod gzip;
mod properties;
mod sdk_bodies;

use lodestar_core::Timestamp;
use lodestar_ingest::{Decoded, IngestError, Limits, Route, decode_request};

#[global_allocator]
static METER: alloc_meter::Meter = alloc_meter::Meter;

/// Decodes `body` posted to `route`, numbering generated message ids `gen-1`, `gen-2`, …
pub fn decode(
    route: Route,
    body: &[u8],
    received_at: Timestamp,
    limits: &Limits,
) -> Result<Decoded, IngestError> {
    let mut next = 0;
    let mut new_id = || {
        next += 1;
        format!("gen-{next}")
    };
    decode_request(route, body, received_at, limits, &mut new_id)
}
