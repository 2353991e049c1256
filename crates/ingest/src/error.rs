//! The error and rejection codes of the wire format, in one table, and [`IngestError`].
//!
//! Every code is a stable, lowercase snake_case string that clients and logs may match on.
//! Renaming one is a breaking change of the HTTP API. The server maps codes to HTTP statuses
//! in one place; this crate only says which codes mean "too large" ([`Code::is_too_large`]).

use std::fmt;

/// Every code this crate produces, for whole-request errors, per-message rejections and
/// warnings alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The body, before or after decompression, is over [`Limits::max_request_bytes`].
    ///
    /// [`Limits::max_request_bytes`]: crate::Limits::max_request_bytes
    PayloadTooLarge,
    /// A `Content-Encoding` other than `identity` or `gzip`.
    UnsupportedEncoding,
    /// The body says it is gzip but does not decompress.
    InvalidGzip,
    /// The body is not JSON.
    InvalidJson,
    /// The body is JSON but not an object.
    InvalidBody,
    /// A batch body whose `batch` is missing or not an array.
    InvalidBatch,
    /// A batch body whose `batch` array is empty.
    EmptyBatch,
    /// One call is over [`Limits::max_event_bytes`].
    ///
    /// [`Limits::max_event_bytes`]: crate::Limits::max_event_bytes
    EventTooLarge,
    /// A field has the wrong JSON type (an id that is an array, `properties` that is a string,
    /// a batch item that is not an object, …).
    InvalidType,
    /// A required field is absent, null or blank: `type` of a batch item, `event` of a track,
    /// `userId` and `previousId` of an alias, `groupId` of a group.
    MissingField,
    /// A batch item whose `type` names no call of the spec.
    UnknownType,
    /// Neither a usable `userId` nor a usable `anonymousId` remains.
    MissingId,
    /// An id is longer than [`lodestar_core::MAX_ID_CHARS`] characters.
    IdTooLong,
    /// An id is a placeholder shared by many devices (`null`, `anonymous`, `0`, …). A warning
    /// when it is `userId` or `anonymousId` (the id is dropped); a rejection for `previousId`.
    BlockedId,
    /// An event, page or screen name is over [`Limits::max_event_name_chars`].
    ///
    /// [`Limits::max_event_name_chars`]: crate::Limits::max_event_name_chars
    EventNameTooLong,
    /// `timestamp`, `originalTimestamp` or `sentAt` is not a date-time.
    InvalidTimestamp,
    /// `messageId` is longer than [`MAX_MESSAGE_ID_CHARS`](crate::MAX_MESSAGE_ID_CHARS).
    MessageIdTooLong,
    /// A warning: the timestamp was too far in the future and was set to the receive time.
    TimestampClamped,
}

/// One row of the code table: the code's string, whether it means "too large", and a
/// one-line description for API docs.
struct CodeInfo {
    name: &'static str,
    too_large: bool,
    description: &'static str,
}

impl Code {
    /// Every code, in the order of the table.
    pub const ALL: [Code; 18] = [
        Code::PayloadTooLarge,
        Code::UnsupportedEncoding,
        Code::InvalidGzip,
        Code::InvalidJson,
        Code::InvalidBody,
        Code::InvalidBatch,
        Code::EmptyBatch,
        Code::EventTooLarge,
        Code::InvalidType,
        Code::MissingField,
        Code::UnknownType,
        Code::MissingId,
        Code::IdTooLong,
        Code::BlockedId,
        Code::EventNameTooLong,
        Code::InvalidTimestamp,
        Code::MessageIdTooLong,
        Code::TimestampClamped,
    ];

    /// The table. The only place a code's string is written.
    fn info(self) -> CodeInfo {
        let (name, too_large, description) = match self {
            Code::PayloadTooLarge => (
                "payload_too_large",
                true,
                "the request body is over the size limit, before or after decompression",
            ),
            Code::UnsupportedEncoding => (
                "unsupported_encoding",
                false,
                "the content encoding is neither identity nor gzip",
            ),
            Code::InvalidGzip => ("invalid_gzip", false, "the gzip body does not decompress"),
            Code::InvalidJson => ("invalid_json", false, "the body is not JSON"),
            Code::InvalidBody => ("invalid_body", false, "the body is not a JSON object"),
            Code::InvalidBatch => (
                "invalid_batch",
                false,
                "the batch field is missing or not an array",
            ),
            Code::EmptyBatch => ("empty_batch", false, "the batch array is empty"),
            Code::EventTooLarge => (
                "event_too_large",
                true,
                "one call is over the per-event size limit",
            ),
            Code::InvalidType => ("invalid_type", false, "a field has the wrong JSON type"),
            Code::MissingField => (
                "missing_field",
                false,
                "a field the call type requires is absent, null or blank",
            ),
            Code::UnknownType => ("unknown_type", false, "the type names no call of the spec"),
            Code::MissingId => (
                "missing_id",
                false,
                "the message has neither a usable userId nor a usable anonymousId",
            ),
            Code::IdTooLong => ("id_too_long", false, "an id is over the length limit"),
            Code::BlockedId => (
                "blocked_id",
                false,
                "an id is a placeholder shared by many devices",
            ),
            Code::EventNameTooLong => (
                "event_name_too_long",
                false,
                "an event, page or screen name is over the length limit",
            ),
            Code::InvalidTimestamp => (
                "invalid_timestamp",
                false,
                "a timestamp is not an ISO 8601 date-time",
            ),
            Code::MessageIdTooLong => (
                "message_id_too_long",
                false,
                "the messageId is over the length limit",
            ),
            Code::TimestampClamped => (
                "timestamp_clamped",
                false,
                "the timestamp was too far in the future and was set to the receive time",
            ),
        };
        CodeInfo {
            name,
            too_large,
            description,
        }
    }

    /// The stable string of the code (`payload_too_large`, …).
    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    /// True for the codes a server answers with 413 Payload Too Large.
    pub fn is_too_large(self) -> bool {
        self.info().too_large
    }

    /// A one-line description, for API documentation.
    pub fn description(self) -> &'static str {
        self.info().description
    }

    /// The code named by `name`, if any.
    pub fn parse(name: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|code| code.as_str() == name)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a whole request was refused.
///
/// Every cause is the client's: decoding is a pure function with no I/O, so there is no
/// internal failure to report. The message is lowercase, has no trailing period and may be
/// shown to the client; it never quotes more than a short preview of what the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IngestError {
    kind: Code,
    field: String,
    message: String,
}

impl IngestError {
    /// An error of `kind` about `field` (a path in the body such as `batch`, `sentAt` or
    /// `properties.$set`; `body` for the body as a whole).
    pub fn new(kind: Code, field: impl Into<String>, message: impl Into<String>) -> Self {
        IngestError {
            kind,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The stable code (see [`Code::as_str`]).
    pub fn code(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The code, as a value to match on.
    pub fn kind(&self) -> Code {
        self.kind
    }

    /// Where the problem is: `body`, `Content-Encoding`, `batch`, `sentAt`, `userId`, …
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The human-readable message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the server should answer 413 rather than 400.
    pub fn is_too_large(&self) -> bool {
        self.kind.is_too_large()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name} is not snake_case"
            );
            assert_eq!(Code::parse(name), Some(code));
            assert!(!code.description().is_empty());
            assert!(!code.description().ends_with('.'));
        }
        assert_eq!(Code::parse("PAYLOAD_TOO_LARGE"), None);
    }

    #[test]
    fn only_size_codes_are_too_large() {
        let too_large: Vec<&str> = Code::ALL
            .into_iter()
            .filter(|c| c.is_too_large())
            .map(Code::as_str)
            .collect();
        assert_eq!(too_large, ["payload_too_large", "event_too_large"]);
        let err = IngestError::new(Code::EventTooLarge, "body", "too big");
        assert!(err.is_too_large());
        assert_eq!(err.code(), "event_too_large");
        assert_eq!(err.to_string(), "too big");
        assert!(!IngestError::new(Code::InvalidJson, "body", "x").is_too_large());
    }
}
