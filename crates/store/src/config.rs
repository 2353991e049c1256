//! Store settings. The binary fills them from its one config struct (file < env < flags).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the embedded store behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The data folder.
    pub data_dir: PathBuf,
    /// How long a `messageId` is remembered for deduplication (ms). Default 7 days.
    pub dedup_window_ms: u64,
    /// Close the open tail segment (and so make it ready to seal) at this many rows.
    pub seal_rows: usize,
    /// Close the open tail segment at least this often (ms), however few rows it holds.
    pub seal_interval_ms: u64,
    /// About the most rows one sealing pass moves into one part (it takes whole segments,
    /// at least one).
    pub max_seal_rows: usize,
    /// Merge parts when a size tier holds this many.
    pub compact_fanin: usize,
    /// Parts this large are not merged further.
    pub max_part_rows: usize,
    /// How often the background thread checks for work (ms). 0 turns it off (tests).
    pub maintenance_interval_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("lodestar-data"),
            dedup_window_ms: 7 * 24 * 3_600_000,
            seal_rows: 200_000,
            seal_interval_ms: 30_000,
            max_seal_rows: 200_000,
            compact_fanin: 4,
            max_part_rows: 8_000_000,
            maintenance_interval_ms: 1_000,
        }
    }
}
