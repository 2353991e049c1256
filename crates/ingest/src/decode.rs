//! Decoding of tracking API bodies into validated [`Message`]s.
//!
//! The order of work for one call: ids, names, objects, timestamps, `messageId`, then the
//! merges (batch `context` and `integrations`, traits) and the time correction. The first
//! problem found rejects the call; warnings are kept only for calls that are accepted.
//!
//! # Rules beyond the spec's text
//! - A JSON `null` is the same as an absent field, everywhere.
//! - Ids (`userId`, `anonymousId`, `previousId`, `groupId`) are trimmed; blank ids are
//!   absent. Numbers become their JSON text (`42`, `1.5`).
//! - `previousId` is read only for alias and `groupId` only for group. A placeholder
//!   `previousId` refuses the alias (`blocked_id`); a placeholder `userId` on an alias drops
//!   it, which then refuses the alias for lack of `userId`. Group ids are not checked
//!   against the placeholder list: they name groups, not devices.
//! - `messageId` is kept as sent (not trimmed); a blank one is replaced like a missing one.
//!   Duplicates within a batch are not detected here: deduplication is the store's job.
//! - `event` of a track must be non-blank; a blank `name` of a page or screen is absent. The
//!   name length limit applies to both.
//! - `category` and `channel` are kept on any call type when they are strings.
//! - Top-level `traits` are read for identify and group only, but must be an object on any
//!   call. Traits are merged lowest first: `context.traits` (identify only, after the
//!   batch's `context` is merged in), `traits`, `properties.$set`, top-level `$set`; and
//!   `properties.$set_once` under top-level `$set_once`. `$set` and `$set_once` leave
//!   `properties`; a `$set` that is not an object is `invalid_type`.
//! - Timestamps must be strings [`Timestamp::parse`] accepts; a number is
//!   `invalid_timestamp`. The body's `receivedAt` is ignored: the server's clock decides.
//! - On a single-call route the body's `type` is ignored, and its `sentAt` is the call's.
//! - A UTF-8 byte order mark before the JSON is skipped.

use std::io::Write;

use lodestar_core::{
    IdProblem, JsonMap, MAX_ID_CHARS, Message, MessageKind, Timestamp, check_distinct_id,
};
use serde::Serialize;
use serde_json::Value;

use crate::body::preview_chars;
use crate::error::{Code, IngestError};
use crate::limits::Limits;
use crate::route::Route;

/// The longest `messageId` accepted, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 200;

/// How many bytes of an over-size call a [`Rejection`] keeps as a preview.
const PREVIEW_BYTES: usize = 256;

/// The most characters of a client's string value quoted back in a message.
const MAX_QUOTED_CHARS: usize = 40;

/// The UTF-8 byte order mark, which a few HTTP clients put before a JSON body.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// What one request decoded to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decoded {
    /// The body's `writeKey` (top level of the batch, or of the single call), if sent. The
    /// server checks it, or the HTTP Basic user name, against the project's keys.
    pub write_key: Option<String>,
    /// The accepted messages, in the order they came.
    pub messages: Vec<Message>,
    /// Batch items that were refused; their neighbours are unaffected. Always empty for a
    /// single-call route, where a refused call is the request's [`IngestError`].
    pub rejected: Vec<Rejection>,
    /// Accepted messages that were changed on the way in (an id dropped, a timestamp
    /// clamped). The message itself is in `messages`.
    pub warnings: Vec<Rejection>,
}

/// One refused batch item, or one warning about an accepted message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// The item's position in `batch` (0 for a single call).
    pub index: usize,
    /// The stable code (see [`Code`]).
    pub code: &'static str,
    /// What is wrong, for people: lowercase, no trailing period.
    pub message: String,
    /// Where: `batch[3].timestamp`, or `userId` for a single call.
    pub field: String,
    /// The item as received; for an item over the size limit, a string holding the first
    /// 256 bytes of its JSON followed by `…`.
    pub raw: Value,
}

/// Decodes the JSON `body` posted to `route` into messages.
///
/// `body` is the decoded body (see [`crate::decode_body`]). `received_at` is the server's
/// clock when the request arrived; it anchors the clock-skew correction and becomes every
/// message's `received_at`. `new_message_id` is called once for each accepted message that
/// came without a `messageId`; what it returns is used as it is.
///
/// For [`Route::Batch`], each item is decoded on its own: a bad item becomes a
/// [`Rejection`] and its neighbours go on. For a single-call route the one call is the
/// request, so a bad call is an `Err` carrying the call's code and field. The body's own
/// `type` is not read on a single-call route: the route says what the call is.
///
/// Never panics, whatever the bytes.
pub fn decode_request(
    route: Route,
    body: &[u8],
    received_at: Timestamp,
    limits: &Limits,
    new_message_id: &mut dyn FnMut() -> String,
) -> Result<Decoded, IngestError> {
    if body.len() > limits.max_request_bytes {
        return Err(IngestError::new(
            Code::PayloadTooLarge,
            "body",
            format!(
                "request body is {} bytes; the limit is {} bytes",
                body.len(),
                limits.max_request_bytes
            ),
        ));
    }
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let root = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(root)) => root,
        Ok(other) => {
            return Err(IngestError::new(
                Code::InvalidBody,
                "body",
                format!("body must be a JSON object, found {}", json_type(&other)),
            ));
        }
        Err(err) => {
            return Err(IngestError::new(
                Code::InvalidJson,
                "body",
                format!("body is not valid JSON: {err}"),
            ));
        }
    };
    let write_key = match present(&root, "writeKey") {
        None => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(other) => {
            return Err(IngestError::new(
                Code::InvalidType,
                "writeKey",
                format!("writeKey must be a string, found {}", json_type(other)),
            ));
        }
    };
    let ctx = Ctx {
        received_at,
        limits,
        new_message_id,
    };
    match route.kind() {
        Some(kind) => decode_single(kind, root, write_key, ctx),
        None => decode_batch(&root, write_key, ctx),
    }
}

/// What every call of one request is decoded with.
struct Ctx<'a> {
    received_at: Timestamp,
    limits: &'a Limits,
    new_message_id: &'a mut dyn FnMut() -> String,
}

/// The batch's fields that apply to every item.
#[derive(Default)]
struct Envelope<'a> {
    context: Option<&'a JsonMap>,
    integrations: Option<&'a JsonMap>,
    sent_at: Option<Timestamp>,
}

/// One thing wrong with one call. `field` is relative to the call (`userId`,
/// `properties.$set`); empty for the call as a whole.
#[derive(Debug)]
struct Problem {
    code: Code,
    field: String,
    message: String,
    /// For [`Code::EventTooLarge`]: the start of the call's JSON, kept instead of the call.
    preview: Option<String>,
}

impl Problem {
    fn new(code: Code, field: &str, message: String) -> Self {
        Problem {
            code,
            field: field.to_string(),
            message,
            preview: None,
        }
    }

    /// The problem as a [`Rejection`] of the item at `index`, whose fields sit under
    /// `prefix` (`batch[3]`, or nothing for a single call).
    fn into_rejection(self, index: usize, prefix: &str, item: &Value) -> Rejection {
        let raw = match self.preview {
            Some(preview) => Value::String(preview),
            None => item.clone(),
        };
        Rejection {
            index,
            code: self.code.as_str(),
            message: self.message,
            field: join_path(prefix, &self.field),
            raw,
        }
    }
}

/// A call that passed, with what was changed on the way in.
struct Accepted {
    message: Message,
    warnings: Vec<Problem>,
}

fn decode_single(
    kind: MessageKind,
    root: JsonMap,
    write_key: Option<String>,
    mut ctx: Ctx<'_>,
) -> Result<Decoded, IngestError> {
    let size = JsonSize::of(&root);
    if size.total > ctx.limits.max_event_bytes {
        return Err(IngestError::new(
            Code::EventTooLarge,
            "body",
            too_large_message(size.total, ctx.limits.max_event_bytes),
        ));
    }
    match decode_call(&root, kind, &Envelope::default(), &mut ctx) {
        Ok(Accepted { message, warnings }) => {
            let raw = Value::Object(root);
            Ok(Decoded {
                write_key,
                messages: vec![message],
                rejected: Vec::new(),
                warnings: warnings
                    .into_iter()
                    .map(|w| w.into_rejection(0, "", &raw))
                    .collect(),
            })
        }
        Err(problem) => Err(IngestError::new(
            problem.code,
            problem.field,
            problem.message,
        )),
    }
}

fn decode_batch(
    root: &JsonMap,
    write_key: Option<String>,
    mut ctx: Ctx<'_>,
) -> Result<Decoded, IngestError> {
    let as_error = |p: Problem| IngestError::new(p.code, p.field, p.message);
    let envelope = Envelope {
        context: object_field(root, "context").map_err(as_error)?,
        integrations: object_field(root, "integrations").map_err(as_error)?,
        sent_at: timestamp_field(root, "sentAt").map_err(as_error)?,
    };
    let items = match root.get("batch") {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(IngestError::new(
                Code::InvalidBatch,
                "batch",
                format!("batch must be an array, found {}", json_type(other)),
            ));
        }
        None => {
            return Err(IngestError::new(
                Code::InvalidBatch,
                "batch",
                "body has no batch array",
            ));
        }
    };
    if items.is_empty() {
        return Err(IngestError::new(
            Code::EmptyBatch,
            "batch",
            "batch has no items",
        ));
    }
    let mut decoded = Decoded {
        write_key,
        messages: Vec::with_capacity(items.len()),
        rejected: Vec::new(),
        warnings: Vec::new(),
    };
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("batch[{index}]");
        match decode_item(item, &envelope, &mut ctx) {
            Ok(Accepted { message, warnings }) => {
                decoded.messages.push(message);
                decoded.warnings.extend(
                    warnings
                        .into_iter()
                        .map(|w| w.into_rejection(index, &prefix, item)),
                );
            }
            Err(problem) => {
                decoded
                    .rejected
                    .push(problem.into_rejection(index, &prefix, item));
            }
        }
    }
    Ok(decoded)
}

/// Decodes one batch item: an object of any call type, within the size limit.
fn decode_item(
    item: &Value,
    envelope: &Envelope<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<Accepted, Problem> {
    let Value::Object(call) = item else {
        return Err(Problem::new(
            Code::InvalidType,
            "",
            format!("a batch item must be an object, found {}", json_type(item)),
        ));
    };
    let size = JsonSize::of(call);
    if size.total > ctx.limits.max_event_bytes {
        let mut problem = Problem::new(
            Code::EventTooLarge,
            "",
            too_large_message(size.total, ctx.limits.max_event_bytes),
        );
        problem.preview = Some(size.preview());
        return Err(problem);
    }
    let kind = match present(call, "type") {
        None => {
            return Err(Problem::new(
                Code::MissingField,
                "type",
                "a batch item needs a type".to_string(),
            ));
        }
        Some(Value::String(name)) => MessageKind::parse(name).ok_or_else(|| {
            Problem::new(
                Code::UnknownType,
                "type",
                format!(
                    "type {:?} is not one of track, identify, page, screen, group, alias",
                    preview_chars(name, MAX_QUOTED_CHARS)
                ),
            )
        })?,
        Some(other) => {
            return Err(Problem::new(
                Code::InvalidType,
                "type",
                format!("type must be a string, found {}", json_type(other)),
            ));
        }
    };
    decode_call(call, kind, envelope, ctx)
}

/// Decodes and validates one call of a known kind.
fn decode_call(
    call: &JsonMap,
    kind: MessageKind,
    envelope: &Envelope<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<Accepted, Problem> {
    let limits = ctx.limits;
    let mut warnings = Vec::new();

    // Ids.
    let user_id = person_id(call, "userId", &mut warnings)?;
    let anonymous_id = person_id(call, "anonymousId", &mut warnings)?;
    let previous_id = match kind {
        MessageKind::Alias => Some(previous_id(call)?),
        _ => None,
    };
    let group_id = match kind {
        MessageKind::Group => Some(group_id(call)?),
        _ => None,
    };
    if kind == MessageKind::Alias && user_id.is_none() {
        return Err(Problem::new(
            Code::MissingField,
            "userId",
            "an alias needs userId, the id the person is known by from now on".to_string(),
        ));
    }
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Problem::new(
            Code::MissingId,
            "userId",
            "a message needs userId or anonymousId".to_string(),
        ));
    }

    // Names.
    let event = match kind {
        MessageKind::Track => Some(track_event(call, limits)?),
        MessageKind::Page | MessageKind::Screen => page_name(call, limits)?,
        _ => None,
    };
    let category = string_field(call, "category")?.map(str::to_string);
    let channel = string_field(call, "channel")?.map(str::to_string);

    // Objects.
    let properties = object_field(call, "properties")?;
    let own_traits = object_field(call, "traits")?;
    let own_context = object_field(call, "context")?;
    let own_integrations = object_field(call, "integrations")?;
    let set = object_field(call, "$set")?;
    let set_once = object_field(call, "$set_once")?;

    // Timestamps.
    let timestamp = timestamp_field(call, "timestamp")?;
    let original_timestamp = timestamp_field(call, "originalTimestamp")?;
    let sent_at = timestamp_field(call, "sentAt")?.or(envelope.sent_at);

    let message_id = message_id_field(call)?;

    // Merges: the item's own keys win over the batch's.
    let context = merged(envelope.context, own_context);
    let integrations = merged(envelope.integrations, own_integrations);

    // Traits, lowest precedence first: context.traits (identify), traits (identify, group),
    // properties.$set, top-level $set.
    let mut traits = JsonMap::new();
    if kind == MessageKind::Identify {
        match context.get("traits") {
            None | Some(Value::Null) => {}
            Some(Value::Object(context_traits)) => extend(&mut traits, context_traits),
            Some(other) => {
                return Err(Problem::new(
                    Code::InvalidType,
                    "context.traits",
                    format!(
                        "context.traits must be an object, found {}",
                        json_type(other)
                    ),
                ));
            }
        }
    }
    if let (MessageKind::Identify | MessageKind::Group, Some(own_traits)) = (kind, own_traits) {
        extend(&mut traits, own_traits);
    }
    let mut properties = properties.cloned().unwrap_or_default();
    let mut all_set_once = JsonMap::new();
    if let Some(from_properties) = take_object(&mut properties, "$set")? {
        extend(&mut traits, &from_properties);
    }
    if let Some(from_properties) = take_object(&mut properties, "$set_once")? {
        extend(&mut all_set_once, &from_properties);
    }
    if let Some(set) = set {
        extend(&mut traits, set);
    }
    if let Some(set_once) = set_once {
        extend(&mut all_set_once, set_once);
    }

    // Time.
    let (timestamp, clamped) = resolve_time(
        timestamp,
        original_timestamp,
        sent_at,
        ctx.received_at,
        limits.max_future_ms,
    );
    if let Some(was) = clamped {
        warnings.push(Problem::new(
            Code::TimestampClamped,
            "timestamp",
            format!(
                "timestamp {was} is more than {} ms after the receive time; set to the receive time",
                limits.max_future_ms.max(0)
            ),
        ));
    }

    let message_id = match message_id {
        Some(id) => id,
        None => (ctx.new_message_id)(),
    };
    let message = Message {
        message_id,
        kind,
        event,
        user_id,
        anonymous_id,
        previous_id,
        group_id,
        category,
        timestamp,
        original_timestamp,
        sent_at,
        received_at: ctx.received_at,
        properties,
        traits,
        set_once: all_set_once,
        context,
        integrations,
        channel,
    };
    Ok(Accepted { message, warnings })
}

/// The event time, and the time it was before clamping if it had to be clamped.
///
/// An explicit `timestamp` is kept (historical import). Without one, `originalTimestamp` is
/// corrected for the client's clock skew, `received_at − (sent_at − originalTimestamp)`,
/// when `sent_at` is known, and taken as it is when not. With neither, the receive time.
fn resolve_time(
    timestamp: Option<Timestamp>,
    original_timestamp: Option<Timestamp>,
    sent_at: Option<Timestamp>,
    received_at: Timestamp,
    max_future_ms: i64,
) -> (Timestamp, Option<Timestamp>) {
    let resolved = match (timestamp, original_timestamp, sent_at) {
        (Some(timestamp), _, _) => timestamp,
        (None, Some(original), Some(sent)) => {
            let skew = sent.millis().saturating_sub(original.millis());
            Timestamp(received_at.millis().saturating_sub(skew))
        }
        (None, Some(original), None) => original,
        (None, None, _) => received_at,
    };
    if resolved > received_at.add_millis(max_future_ms.max(0)) {
        (received_at, Some(resolved))
    } else {
        (resolved, None)
    }
}

/// `userId` or `anonymousId`: a placeholder is dropped with a warning, too long is refused.
fn person_id(
    call: &JsonMap,
    key: &str,
    warnings: &mut Vec<Problem>,
) -> Result<Option<String>, Problem> {
    let Some(id) = id_field(call, key)? else {
        return Ok(None);
    };
    match check_distinct_id(&id) {
        Ok(()) => Ok(Some(id)),
        Err(IdProblem::Empty) => Ok(None),
        Err(IdProblem::TooLong { chars }) => Err(id_too_long(key, chars)),
        Err(IdProblem::Blocked(value)) => {
            warnings.push(Problem::new(
                Code::BlockedId,
                key,
                format!("{key} {value:?} is a placeholder shared by many devices and was ignored"),
            ));
            Ok(None)
        }
    }
}

/// An alias's `previousId`: required, and a placeholder is refused (merging on it would fuse
/// strangers).
fn previous_id(call: &JsonMap) -> Result<String, Problem> {
    let key = "previousId";
    let missing = || {
        Problem::new(
            Code::MissingField,
            key,
            "an alias needs previousId, the id the person was known by before".to_string(),
        )
    };
    let id = id_field(call, key)?.ok_or_else(missing)?;
    match check_distinct_id(&id) {
        Ok(()) => Ok(id),
        Err(IdProblem::Empty) => Err(missing()),
        Err(IdProblem::TooLong { chars }) => Err(id_too_long(key, chars)),
        Err(IdProblem::Blocked(value)) => Err(Problem::new(
            Code::BlockedId,
            key,
            format!("previousId {value:?} is a placeholder shared by many devices"),
        )),
    }
}

/// A group's `groupId`: required and within the id length limit. Placeholder checks do not
/// apply: a group id names a group, not a device.
fn group_id(call: &JsonMap) -> Result<String, Problem> {
    let key = "groupId";
    let id = id_field(call, key)?.ok_or_else(|| {
        Problem::new(
            Code::MissingField,
            key,
            "a group call needs groupId".to_string(),
        )
    })?;
    let chars = id.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(id_too_long(key, chars));
    }
    Ok(id)
}

fn id_too_long(key: &str, chars: usize) -> Problem {
    Problem::new(
        Code::IdTooLong,
        key,
        format!("{key} is {chars} characters long; the limit is {MAX_ID_CHARS}"),
    )
}

/// An id field: a string (trimmed) or a number (written as JSON writes it, as SDKs do).
/// Absent, null and blank are `None`.
fn id_field(call: &JsonMap, key: &str) -> Result<Option<String>, Problem> {
    match present(call, key) {
        None => Ok(None),
        Some(Value::String(text)) => {
            let trimmed = text.trim();
            Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
        }
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => Err(Problem::new(
            Code::InvalidType,
            key,
            format!(
                "{key} must be a string or a number, found {}",
                json_type(other)
            ),
        )),
    }
}

/// `messageId`: a string (kept as sent) or a number. Absent, null and blank mean "assign
/// one".
fn message_id_field(call: &JsonMap) -> Result<Option<String>, Problem> {
    let key = "messageId";
    let id = match present(call, key) {
        None => return Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(None),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(other) => {
            return Err(Problem::new(
                Code::InvalidType,
                key,
                format!(
                    "messageId must be a string or a number, found {}",
                    json_type(other)
                ),
            ));
        }
    };
    let chars = id.chars().count();
    if chars > MAX_MESSAGE_ID_CHARS {
        return Err(Problem::new(
            Code::MessageIdTooLong,
            key,
            format!("messageId is {chars} characters long; the limit is {MAX_MESSAGE_ID_CHARS}"),
        ));
    }
    Ok(Some(id))
}

/// A track's `event`: a non-blank string within the name length limit.
fn track_event(call: &JsonMap, limits: &Limits) -> Result<String, Problem> {
    let missing = || {
        Problem::new(
            Code::MissingField,
            "event",
            "a track call needs an event name".to_string(),
        )
    };
    let name = string_field(call, "event")?.ok_or_else(missing)?;
    if name.trim().is_empty() {
        return Err(missing());
    }
    check_name_length("event", name, limits)?;
    Ok(name.to_string())
}

/// A page's or screen's `name`: optional; blank counts as absent.
fn page_name(call: &JsonMap, limits: &Limits) -> Result<Option<String>, Problem> {
    match string_field(call, "name")? {
        Some(name) if !name.trim().is_empty() => {
            check_name_length("name", name, limits)?;
            Ok(Some(name.to_string()))
        }
        _ => Ok(None),
    }
}

fn check_name_length(key: &str, name: &str, limits: &Limits) -> Result<(), Problem> {
    let chars = name.chars().count();
    if chars > limits.max_event_name_chars {
        return Err(Problem::new(
            Code::EventNameTooLong,
            key,
            format!(
                "{key} is {chars} characters long; the limit is {}",
                limits.max_event_name_chars
            ),
        ));
    }
    Ok(())
}

/// A string field; absent and null are `None`.
fn string_field<'a>(call: &'a JsonMap, key: &str) -> Result<Option<&'a str>, Problem> {
    match present(call, key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(Problem::new(
            Code::InvalidType,
            key,
            format!("{key} must be a string, found {}", json_type(other)),
        )),
    }
}

/// An object field; absent and null are `None`.
fn object_field<'a>(call: &'a JsonMap, key: &str) -> Result<Option<&'a JsonMap>, Problem> {
    match present(call, key) {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(Problem::new(
            Code::InvalidType,
            key,
            format!("{key} must be an object, found {}", json_type(other)),
        )),
    }
}

/// Removes `properties[key]` and returns it when it is an object (`$set`, `$set_once`).
fn take_object(properties: &mut JsonMap, key: &str) -> Result<Option<JsonMap>, Problem> {
    match properties.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(Problem::new(
            Code::InvalidType,
            &format!("properties.{key}"),
            format!(
                "properties.{key} must be an object, found {}",
                json_type(&other)
            ),
        )),
    }
}

/// A timestamp field: an ISO 8601 string. Absent and null are `None`.
fn timestamp_field(call: &JsonMap, key: &str) -> Result<Option<Timestamp>, Problem> {
    match present(call, key) {
        None => Ok(None),
        Some(Value::String(text)) => Timestamp::parse(text).map(Some).ok_or_else(|| {
            Problem::new(
                Code::InvalidTimestamp,
                key,
                format!(
                    "{key} {:?} is not an ISO 8601 date-time",
                    preview_chars(text, MAX_QUOTED_CHARS)
                ),
            )
        }),
        Some(other) => Err(Problem::new(
            Code::InvalidTimestamp,
            key,
            format!(
                "{key} must be an ISO 8601 date-time string, found {}",
                json_type(other)
            ),
        )),
    }
}

/// The value at `key`, with null read as absent.
fn present<'a>(map: &'a JsonMap, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|value| !value.is_null())
}

/// `base` with `own`'s keys laid over it.
fn merged(base: Option<&JsonMap>, own: Option<&JsonMap>) -> JsonMap {
    let mut out = base.cloned().unwrap_or_default();
    if let Some(own) = own {
        extend(&mut out, own);
    }
    out
}

fn extend(into: &mut JsonMap, from: &JsonMap) {
    for (key, value) in from {
        into.insert(key.clone(), value.clone());
    }
}

fn join_path(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{field}"),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn too_large_message(size: usize, limit: usize) -> String {
    format!("call is {size} bytes as JSON; the limit is {limit} bytes")
}

/// The size of a value written as compact JSON, and its first [`PREVIEW_BYTES`] bytes,
/// measured without building the whole text.
struct JsonSize {
    total: usize,
    head: Vec<u8>,
}

impl JsonSize {
    fn of(value: &impl Serialize) -> JsonSize {
        let mut size = JsonSize {
            total: 0,
            head: Vec::with_capacity(PREVIEW_BYTES),
        };
        if serde_json::to_writer(&mut size, value).is_err() {
            // Writing a parsed JSON value cannot fail; if it ever did, count it as too large
            // rather than let it through unmeasured.
            size.total = usize::MAX;
        }
        size
    }

    /// The head as text, cut at a character boundary, with `…` when it is not the whole.
    fn preview(&self) -> String {
        let text = match std::str::from_utf8(&self.head) {
            Ok(text) => text,
            Err(err) => std::str::from_utf8(&self.head[..err.valid_up_to()]).unwrap_or_default(),
        };
        if self.total > text.len() {
            format!("{text}…")
        } else {
            text.to_string()
        }
    }
}

impl Write for JsonSize {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.total = self.total.saturating_add(buf.len());
        let room = PREVIEW_BYTES.saturating_sub(self.head.len()).min(buf.len());
        self.head.extend_from_slice(&buf[..room]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
