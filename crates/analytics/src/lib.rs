//! Analysis kernels over per-person event streams: funnels, retention, interval lifecycle,
//! lifecycle stages.
//!
//! Every kernel reads a [`PersonSource`] (one person at a time, events in time order) in
//! one pass, one thread per shard of persons, and adds up the shards' partial results. The
//! store's snapshot is read through [`SnapshotSource`]; tests use [`VecSource`] and check
//! each kernel against a naive implementation of the same definition.
//!
//! This crate knows nothing of HTTP or of any wire format, and never reads the clock: dates
//! and the time zone come with each query.

pub mod bgbb;
pub mod churn;
pub mod clv;
pub mod computed;
mod error;
pub mod filter;
pub mod funnel;
pub mod jobs;
pub mod journey;
pub mod kfactor;
pub mod lifecycle;
pub mod north_star;
pub mod nps;
pub mod paths;
pub mod period;
pub mod profiles;
pub mod registry;
pub mod retention;
pub mod rfm;
pub mod segment;
mod source;
pub mod spec;
pub mod stages;
pub mod stickiness;
pub mod trends;
pub mod winback;

pub use error::{AnalyticsError, Result};
pub use funnel::{FunnelOrder, FunnelQuery, FunnelResult, funnel};
pub use lifecycle::{LifecycleQuery, LifecycleResult, lifecycle};
pub use period::{Calendar, Interval, Periods};
pub use retention::{RetentionQuery, RetentionResult, retention};
pub use source::{Events, PersonSource, SnapshotSource, VecSource, run_sharded};
pub use stages::{Stage, StageRules, StagesQuery, StagesResult, stages};
