//! Content encodings: turns the bytes as sent into the JSON bytes to decode.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::error::{Code, IngestError};
use crate::limits::Limits;

/// The first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most characters of a client's header value quoted back in an error message.
const MAX_QUOTED_CHARS: usize = 40;

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

/// Returns the body's bytes without their content encoding.
///
/// `content_encoding` is the `Content-Encoding` header, if any. `identity` (or no header)
/// passes the bytes through; `gzip` (or `x-gzip`, any case) is decompressed. With no header,
/// a body that starts with gzip's magic bytes is decompressed too, since several SDKs compress
/// without saying so and JSON never starts with those bytes.
///
/// Both the body as sent and the decompressed body must stay within
/// [`Limits::max_request_bytes`]. Decompression stops one byte past the limit, so a gzip bomb
/// costs at most that much memory.
///
/// Errors: `payload_too_large`, `unsupported_encoding`, `invalid_gzip`.
pub fn decode_body(
    raw: &[u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Vec<u8>, IngestError> {
    let encoding = match content_encoding.map(str::trim) {
        None | Some("") if raw.starts_with(&GZIP_MAGIC) => Encoding::Gzip,
        None | Some("") => Encoding::Identity,
        Some(name) if name.eq_ignore_ascii_case("identity") => Encoding::Identity,
        Some(name) if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") => {
            Encoding::Gzip
        }
        Some(name) => {
            return Err(IngestError::new(
                Code::UnsupportedEncoding,
                "Content-Encoding",
                format!(
                    "content encoding {:?} is not supported; use gzip or identity",
                    preview_chars(name, MAX_QUOTED_CHARS)
                ),
            ));
        }
    };
    let limit = limits.max_request_bytes;
    if raw.len() > limit {
        return Err(IngestError::new(
            Code::PayloadTooLarge,
            "body",
            format!(
                "request body is {} bytes; the limit is {limit} bytes",
                raw.len()
            ),
        ));
    }
    match encoding {
        Encoding::Identity => Ok(raw.to_vec()),
        Encoding::Gzip => gunzip(raw, limit),
    }
}

/// Decompresses every gzip member of `raw`, reading at most `limit + 1` bytes of output.
fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    let cap = limit.saturating_add(1);
    // JSON compresses about 5 to 10 times; start near that, never past the cap.
    let mut out = Vec::with_capacity(raw.len().saturating_mul(8).min(cap));
    let mut decoder = MultiGzDecoder::new(raw).take(u64::try_from(cap).unwrap_or(u64::MAX));
    if let Err(err) = decoder.read_to_end(&mut out) {
        return Err(IngestError::new(
            Code::InvalidGzip,
            "body",
            format!("body is not valid gzip: {err}"),
        ));
    }
    if out.len() > limit {
        return Err(IngestError::new(
            Code::PayloadTooLarge,
            "body",
            format!("decompressed body exceeds the limit of {limit} bytes"),
        ));
    }
    Ok(out)
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn preview_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn limits(max_request_bytes: usize) -> Limits {
        Limits {
            max_request_bytes,
            ..Limits::default()
        }
    }

    #[test]
    fn identity_passes_through() {
        let body = br#"{"batch":[]}"#;
        for header in [None, Some("identity"), Some(" Identity "), Some("")] {
            assert_eq!(
                decode_body(body, header, &Limits::default()).unwrap(),
                body.to_vec()
            );
        }
    }

    #[test]
    fn gzip_is_decompressed_by_header_or_magic_bytes() {
        let body = br#"{"type":"track","event":"Signed Up","userId":"u1"}"#;
        let packed = gzip(body);
        assert_ne!(packed, body.to_vec());
        for header in [Some("gzip"), Some("GZIP"), Some("x-gzip"), None] {
            assert_eq!(
                decode_body(&packed, header, &Limits::default()).unwrap(),
                body.to_vec(),
                "{header:?}"
            );
        }
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let mut packed = gzip(b"{\"a\":");
        packed.extend(gzip(b"1}"));
        assert_eq!(
            decode_body(&packed, Some("gzip"), &Limits::default()).unwrap(),
            b"{\"a\":1}".to_vec()
        );
    }

    #[test]
    fn identity_header_wins_over_magic_bytes() {
        let packed = gzip(b"{}");
        assert_eq!(
            decode_body(&packed, Some("identity"), &Limits::default()).unwrap(),
            packed
        );
    }

    #[test]
    fn unknown_encodings_are_refused() {
        for name in ["br", "deflate", "zstd", "gzip, br"] {
            let err = decode_body(b"{}", Some(name), &Limits::default()).unwrap_err();
            assert_eq!(err.code(), "unsupported_encoding", "{name}");
            assert_eq!(err.field(), "Content-Encoding");
            assert!(!err.is_too_large());
        }
        let long = "x".repeat(10_000);
        let err = decode_body(b"{}", Some(&long), &Limits::default()).unwrap_err();
        assert!(err.message().len() < 200, "{}", err.message());
    }

    #[test]
    fn corrupt_or_truncated_gzip_is_invalid() {
        let packed = gzip(br#"{"batch":[{"type":"track"}]}"#);
        let truncated = &packed[..packed.len() - 6];
        let mut corrupt = packed.clone();
        corrupt[12] ^= 0xff;
        for body in [
            truncated,
            &corrupt[..],
            &[0x1f, 0x8b, 0x00][..],
            b"not gzip",
        ] {
            let err = decode_body(body, Some("gzip"), &Limits::default()).unwrap_err();
            assert_eq!(err.code(), "invalid_gzip", "{body:?}");
        }
    }

    #[test]
    fn bodies_over_the_limit_are_too_large_before_and_after_decompression() {
        let err = decode_body(&[b' '; 101], None, &limits(100)).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        assert!(err.is_too_large());
        assert!(decode_body(&[b' '; 100], None, &limits(100)).is_ok());

        let body = vec![b' '; 101];
        let packed = gzip(&body);
        assert!(packed.len() < 100);
        let err = decode_body(&packed, Some("gzip"), &limits(100)).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        assert!(err.message().contains("decompressed"), "{}", err.message());
        assert_eq!(
            decode_body(&gzip(&body[..100]), Some("gzip"), &limits(100)).unwrap(),
            body[..100].to_vec()
        );

        // xorshift64: bytes gzip cannot shrink much.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let incompressible: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let packed = gzip(&incompressible);
        assert!(packed.len() > 1000);
        let err = decode_body(&packed, Some("gzip"), &limits(1000)).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        assert!(!err.message().contains("decompressed"), "{}", err.message());
    }

    #[test]
    fn previews_cut_on_character_boundaries() {
        assert_eq!(preview_chars("abc", 5), "abc");
        assert_eq!(preview_chars("abcdef", 3), "abc…");
        assert_eq!(preview_chars("用户用户", 2), "用户…");
    }
}
