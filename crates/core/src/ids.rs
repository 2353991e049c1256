//! Identifiers: projects, persons, and the rules a distinct id (user id, anonymous id) must
//! follow before it may resolve or merge a person.

use serde::{Deserialize, Serialize};

/// A project: the unit of data isolation. Every event, person and setting belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectId(pub u32);

/// A person within a project. Assigned densely from 1 by the store; never reused.
///
/// After an identity merge, a person id may stand for another (its *canonical* person); the
/// store resolves that on every read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub u64);

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for PersonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest distinct id accepted, in characters (as PostHog's capture rejects beyond 200).
pub const MAX_ID_CHARS: usize = 200;

/// Why a distinct id cannot identify anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdProblem {
    /// Empty or only white space.
    #[error("id is empty")]
    Empty,
    /// Longer than [`MAX_ID_CHARS`].
    #[error("id is {chars} characters long; the limit is {MAX_ID_CHARS}")]
    TooLong {
        /// The id's length in characters.
        chars: usize,
    },
    /// A placeholder value that many devices share (`null`, `anonymous`, `0`, …); merging on it
    /// would fuse strangers into one person.
    #[error("id {0:?} is a placeholder value shared by many devices")]
    Blocked(String),
}

/// Placeholders refused whatever their case (PostHog's and Segment Unify's lists, merged).
const BLOCKED_ANY_CASE: &[&str] = &[
    "anonymous",
    "anonymous-user",
    "guest",
    "distinctid",
    "distinct_id",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "true",
    "false",
    "null",
    "none",
    "nan",
    "nil",
    "[object object]",
    "user",
    "backend",
    "system",
    "-1",
];

/// Checks that `id` may identify a person. Surrounding white space is not part of an id.
pub fn check_distinct_id(id: &str) -> Result<(), IdProblem> {
    let trimmed = id.trim();
    if trimmed.is_empty() {
        return Err(IdProblem::Empty);
    }
    let chars = trimmed.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(IdProblem::TooLong { chars });
    }
    let lower = trimmed.to_ascii_lowercase();
    // Segment Unify blocks ^[0-]*$: "0", "00000000-0000-0000-0000-000000000000", "---".
    let zeros_and_dashes = trimmed.bytes().all(|b| b == b'0' || b == b'-');
    if zeros_and_dashes || BLOCKED_ANY_CASE.contains(&lower.as_str()) {
        return Err(IdProblem::Blocked(trimmed.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_blocked() {
        for id in [
            "null",
            "NULL",
            "anonymous",
            "Undefined",
            "0",
            "00000000-0000-0000-0000-000000000000",
            "[object Object]",
            "NaN",
            "None",
            "-1",
        ] {
            assert!(
                matches!(check_distinct_id(id), Err(IdProblem::Blocked(_))),
                "{id}"
            );
        }
    }

    #[test]
    fn real_ids_pass_and_limits_hold() {
        for id in ["u1", "anon-1", "10", "0a", "user@example.com", "用户42"] {
            assert_eq!(check_distinct_id(id), Ok(()), "{id}");
        }
        assert_eq!(check_distinct_id("  "), Err(IdProblem::Empty));
        let long = "x".repeat(MAX_ID_CHARS + 1);
        assert_eq!(
            check_distinct_id(&long),
            Err(IdProblem::TooLong {
                chars: MAX_ID_CHARS + 1
            })
        );
        assert_eq!(check_distinct_id(&"字".repeat(MAX_ID_CHARS)), Ok(()));
    }
}
