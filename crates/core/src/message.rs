//! The validated, wire-independent form of one incoming message (a Segment "call").

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A JSON object: properties, traits, context.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// The kind of call, as the Segment spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Something a person did (`event` names it).
    Track,
    /// Who a person is: ties `userId` to `anonymousId` and sets traits.
    Identify,
    /// A web page view.
    Page,
    /// A mobile screen view.
    Screen,
    /// Membership of a group (company, account) with the group's traits.
    Group,
    /// `previousId` and `userId` are the same person.
    Alias,
}

impl MessageKind {
    /// All kinds, in their stable numeric order (see [`MessageKind::code`]).
    pub const ALL: [MessageKind; 6] = [
        MessageKind::Track,
        MessageKind::Identify,
        MessageKind::Page,
        MessageKind::Screen,
        MessageKind::Group,
        MessageKind::Alias,
    ];

    /// The spec's name of the kind (`track`, `identify`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Track => "track",
            MessageKind::Identify => "identify",
            MessageKind::Page => "page",
            MessageKind::Screen => "screen",
            MessageKind::Group => "group",
            MessageKind::Alias => "alias",
        }
    }

    /// Parses the spec's name of a kind.
    pub fn parse(name: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A stable one-byte code, persisted in the store. Never renumber.
    pub fn code(self) -> u8 {
        match self {
            MessageKind::Track => 0,
            MessageKind::Identify => 1,
            MessageKind::Page => 2,
            MessageKind::Screen => 3,
            MessageKind::Group => 4,
            MessageKind::Alias => 5,
        }
    }

    /// The kind of a persisted code.
    pub fn from_code(code: u8) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// One validated message, ready to be stored.
///
/// Invariant (enforced by the decoders, relied on by the store): at least one of `user_id`
/// and `anonymous_id` is set; `event` is set for `Track`; `previous_id` and `user_id` are set
/// for `Alias`; `group_id` is set for `Group`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The client's unique id of this message; the deduplication key.
    pub message_id: String,
    /// The kind of call.
    pub kind: MessageKind,
    /// Track: the event name. Page and screen: the page or screen name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The known user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The device's or session's id before the user is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// Alias: the id the person was known by before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
    /// Group: the group's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Page and screen: the category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// When it happened, after clock-skew correction. The time every analysis uses.
    pub timestamp: Timestamp,
    /// The client's own clock reading of when it happened, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_timestamp: Option<Timestamp>,
    /// The client's clock when the request was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// The server's clock when the request arrived.
    pub received_at: Timestamp,
    /// Track, page, screen: the event's properties.
    #[serde(default, skip_serializing_if = "JsonMap::is_empty")]
    pub properties: JsonMap,
    /// Identify and group: traits to set (overwrite). For identify this includes
    /// `context.traits`.
    #[serde(default, skip_serializing_if = "JsonMap::is_empty")]
    pub traits: JsonMap,
    /// Traits to set only where the person has no value yet (`$set_once`).
    #[serde(default, skip_serializing_if = "JsonMap::is_empty")]
    pub set_once: JsonMap,
    /// The spec's `context` object (library, device, ip, …).
    #[serde(default, skip_serializing_if = "JsonMap::is_empty")]
    pub context: JsonMap,
    /// The spec's `integrations` object.
    #[serde(default, skip_serializing_if = "JsonMap::is_empty")]
    pub integrations: JsonMap,
    /// The spec's `channel` (`server`, `browser`, `mobile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl Message {
    /// A message of `kind` with this id, made (and received) at `at`, with no ids, name,
    /// properties or traits yet: for messages the platform writes itself (profile edits)
    /// and for tests.
    pub fn new(kind: MessageKind, message_id: impl Into<String>, at: Timestamp) -> Message {
        Message {
            message_id: message_id.into(),
            kind,
            event: None,
            user_id: None,
            anonymous_id: None,
            previous_id: None,
            group_id: None,
            category: None,
            timestamp: at,
            original_timestamp: None,
            sent_at: None,
            received_at: at,
            properties: JsonMap::new(),
            traits: JsonMap::new(),
            set_once: JsonMap::new(),
            context: JsonMap::new(),
            integrations: JsonMap::new(),
            channel: None,
        }
    }

    /// The name analyses know this message by: the event name for track, and `$identify`,
    /// `$page`, `$screen`, `$group`, `$alias` for the other kinds.
    pub fn analytic_name(&self) -> &str {
        match self.kind {
            MessageKind::Track => self.event.as_deref().unwrap_or("$track"),
            MessageKind::Identify => "$identify",
            MessageKind::Page => "$page",
            MessageKind::Screen => "$screen",
            MessageKind::Group => "$group",
            MessageKind::Alias => "$alias",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_round_trip_and_are_stable() {
        for kind in MessageKind::ALL {
            assert_eq!(MessageKind::from_code(kind.code()), Some(kind));
            assert_eq!(MessageKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MessageKind::Alias.code(), 5);
        assert_eq!(MessageKind::from_code(6), None);
        assert_eq!(MessageKind::parse("Track"), None);
    }
}
