//! The Segment HTTP Tracking API wire format: turns the bytes an SDK posts to
//! `/v1/{track,identify,page,screen,group,alias,batch}` into validated
//! [`lodestar_core::Message`]s, and stored messages back into that JSON.
//!
//! The same format is spoken by RudderStack's SDKs and accepted by Jitsu; bodies captured
//! from `segment-analytics-python` and `rudder-sdk-python` are decoded in the tests.
//!
//! # Use
//! ```
//! use lodestar_core::Timestamp;
//! use lodestar_ingest::{Limits, Route, decode_body, decode_request};
//!
//! let limits = Limits::default();
//! let raw = br#"{"batch":[{"type":"track","event":"Signed Up","userId":"u1"}]}"#;
//! let body = decode_body(raw, None, &limits)?;
//! let route = Route::from_path_segment("batch").expect("a known route");
//! let mut ids = 0;
//! let mut new_id = || {
//!     ids += 1;
//!     format!("generated-{ids}")
//! };
//! let decoded = decode_request(route, &body, Timestamp(1_700_000_000_000), &limits, &mut new_id)?;
//! assert_eq!(decoded.messages[0].event.as_deref(), Some("Signed Up"));
//! assert_eq!(decoded.messages[0].message_id, "generated-1");
//! # Ok::<(), lodestar_ingest::IngestError>(())
//! ```
//!
//! # Map
//! - [`body`]: content encodings (`identity`, `gzip`) and the request size limit.
//! - [`decode`]: JSON to messages: validation, batch merges, traits, clock-skew correction.
//! - [`encode`]: messages back to the spec's JSON.
//! - [`error`]: every error and warning code, in one table; [`IngestError`].
//! - [`route`], [`limits`]: the endpoints and the limits.
//!
//! # Invariants
//! - **Pure functions.** No HTTP framework, no storage, no clock, no randomness, no logging:
//!   the server passes in the receive time and a message id generator, and maps
//!   [`IngestError::is_too_large`] and the codes to statuses.
//! - **Never panics, whatever the bytes.** Property tests and the `fuzz/` target check it.
//! - **Bounded memory.** A body over [`Limits::max_request_bytes`] is refused before it is
//!   parsed, and gzip output is cut one byte past the same limit.
//! - **One bad item never sinks a batch.** Each batch item is decoded on its own and refused
//!   alone, as a [`Rejection`] that says where and why.

pub mod body;
pub mod decode;
pub mod encode;
pub mod error;
pub mod limits;
pub mod route;

pub use body::decode_body;
pub use decode::{Decoded, MAX_MESSAGE_ID_CHARS, Rejection, decode_request};
pub use encode::encode_message;
pub use error::{Code, IngestError};
pub use limits::Limits;
pub use route::Route;
