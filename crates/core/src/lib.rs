//! Domain vocabulary shared by every Lodestar crate: ids, timestamps, the clock, and the
//! validated form of an incoming message.
//!
//! This crate does no I/O and knows nothing of HTTP, SQL or async runtimes. Wire formats
//! (the Segment JSON spec, CSV rows) are decoded into these types by other crates.

pub mod ids;
pub mod message;
pub mod time;
pub mod value;

pub use ids::{IdProblem, MAX_ID_CHARS, PersonId, ProjectId, check_distinct_id};
pub use message::{JsonMap, Message, MessageKind};
pub use time::{Clock, FixedClock, SystemClock, Timestamp};
pub use value::{VALUE_PROPERTIES, event_value};
