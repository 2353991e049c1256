//! Encoding of stored messages back into the spec's JSON, for export and replay.

use lodestar_core::{JsonMap, Message, MessageKind, Timestamp};
use serde_json::Value;

/// The Segment-shaped JSON of a stored message: what an SDK would have sent, with the
/// server's fields (`receivedAt`, the corrected `timestamp`) filled in.
///
/// Timestamps are RFC 3339 in UTC with milliseconds. Empty objects and absent fields are
/// left out. Where the call type has a home for traits (`traits` on identify and group) they
/// go there; on other calls they go to a top-level `$set`, and `set_once` always goes to a
/// top-level `$set_once`, as PostHog SDKs send them. A page or screen's `event` is written
/// as `name`. `previousId` is written only for alias and `groupId` only for group.
///
/// Decoding the result with [`crate::decode_request`] on the message's route, with
/// `received_at` set to the message's `received_at`, gives the message back, except for
/// these normalisations:
/// - identify: keys of `context.traits` are folded into `traits` (top-level keys win);
/// - `$set` and `$set_once` inside `properties` move to `traits` and `set_once`;
/// - ids are trimmed, blank names and ids become absent, and placeholder ids are dropped;
/// - a timestamp more than the limit ahead of `received_at` is clamped to it;
/// - timestamps outside the years 0000 to 9999 do not survive RFC 3339 and are refused.
pub fn encode_message(m: &Message) -> Value {
    let mut out = JsonMap::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    let text = |s: &str| Value::String(s.to_string());
    let time = |t: Timestamp| Value::String(t.to_rfc3339());
    let object = |map: &JsonMap| Value::Object(map.clone());

    put("type", text(m.kind.as_str()));
    put("messageId", text(&m.message_id));
    if let Some(user_id) = &m.user_id {
        put("userId", text(user_id));
    }
    if let Some(anonymous_id) = &m.anonymous_id {
        put("anonymousId", text(anonymous_id));
    }
    if let Some(event) = &m.event {
        match m.kind {
            MessageKind::Track => put("event", text(event)),
            MessageKind::Page | MessageKind::Screen => put("name", text(event)),
            MessageKind::Identify | MessageKind::Group | MessageKind::Alias => {}
        }
    }
    if let Some(category) = &m.category {
        put("category", text(category));
    }
    if let (MessageKind::Alias, Some(previous_id)) = (m.kind, &m.previous_id) {
        put("previousId", text(previous_id));
    }
    if let (MessageKind::Group, Some(group_id)) = (m.kind, &m.group_id) {
        put("groupId", text(group_id));
    }
    if !m.properties.is_empty() {
        put("properties", object(&m.properties));
    }
    if !m.traits.is_empty() {
        let key = match m.kind {
            MessageKind::Identify | MessageKind::Group => "traits",
            MessageKind::Track | MessageKind::Page | MessageKind::Screen | MessageKind::Alias => {
                "$set"
            }
        };
        put(key, object(&m.traits));
    }
    if !m.set_once.is_empty() {
        put("$set_once", object(&m.set_once));
    }
    if !m.context.is_empty() {
        put("context", object(&m.context));
    }
    if !m.integrations.is_empty() {
        put("integrations", object(&m.integrations));
    }
    if let Some(channel) = &m.channel {
        put("channel", text(channel));
    }
    put("timestamp", time(m.timestamp));
    if let Some(original) = m.original_timestamp {
        put("originalTimestamp", time(original));
    }
    if let Some(sent_at) = m.sent_at {
        put("sentAt", time(sent_at));
    }
    put("receivedAt", time(m.received_at));
    Value::Object(out)
}
