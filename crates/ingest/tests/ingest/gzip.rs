//! gzip through the public API: a round trip of real bodies, and a bomb cut off early.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use lodestar_core::Timestamp;
use lodestar_ingest::{Limits, Route, decode_body};

use crate::alloc_meter::peak_bytes_of;
use crate::decode;

const CAPTURED: &str = include_str!("../fixtures/segment-rudder-batches.jsonl");

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzipped_sdk_bodies_decode_like_plain_ones() {
    let limits = Limits::default();
    let received_at = Timestamp::parse("2026-11-23T17:28:42Z").unwrap();
    for line in CAPTURED.lines() {
        let request: serde_json::Value = serde_json::from_str(line).unwrap();
        let plain = serde_json::to_vec(&request["body"]).unwrap();
        let packed = gzip(&plain);
        assert!(packed.len() < plain.len());
        for header in [Some("gzip"), None] {
            let unpacked = decode_body(&packed, header, &limits).unwrap();
            assert_eq!(unpacked, plain, "{header:?}");
            assert_eq!(
                decode(Route::Batch, &unpacked, received_at, &limits).unwrap(),
                decode(Route::Batch, &plain, received_at, &limits).unwrap()
            );
        }
    }
}

#[test]
fn a_gzip_bomb_is_cut_off_without_inflating_it() {
    const INFLATED: usize = 50 * 1024 * 1024;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 64 * 1024];
    for _ in 0..INFLATED / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    let limits = Limits::default();
    assert!(
        bomb.len() < limits.max_request_bytes,
        "the bomb must pass the compressed-size check"
    );

    let (result, peak) = peak_bytes_of(|| decode_body(&bomb, Some("gzip"), &limits));
    let err = result.unwrap_err();
    assert_eq!(err.code(), "payload_too_large");
    assert!(err.is_too_large());
    assert!(err.message().contains("decompressed"), "{}", err.message());
    // The output buffer may hold the limit plus one byte, and the decoder its window and
    // tables; nowhere near the 50 MB the bomb inflates to.
    assert!(
        peak < 4 * limits.max_request_bytes,
        "peak allocation {peak} bytes"
    );
}
