//! Size, length and clock limits the decoder enforces.

use lodestar_core::Timestamp;

/// The limits a request and its messages must stay within.
///
/// The defaults are Segment's published limits (32 KB per call, 500 KB per request) and
/// PostHog's rule for clock skew (timestamps more than 23 h ahead are clamped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes one call may take, measured as compact JSON as received (before the
    /// batch's `context` and `integrations` are merged in).
    pub max_event_bytes: usize,
    /// The most bytes a request body may take, both as sent and after decompression.
    pub max_request_bytes: usize,
    /// How far past the receive time, in milliseconds, a timestamp may lie before it is
    /// clamped to the receive time. A negative value counts as 0.
    pub max_future_ms: i64,
    /// The longest event, page or screen name accepted, in characters.
    pub max_event_name_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 32 * 1024,
            max_request_bytes: 500 * 1024,
            max_future_ms: 23 * Timestamp::HOUR,
            max_event_name_chars: 200,
        }
    }
}
