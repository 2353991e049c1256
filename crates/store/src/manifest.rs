//! The manifest: which parts are live, and up to which write sequence number the tail has
//! been sealed into them.
//!
//! Invariant: the manifest is replaced atomically (write a temporary file, fsync it, rename
//! it over the old one, fsync the folder). A crash leaves either the old or the new manifest,
//! never a mix; parts not named by the manifest are leftovers and are deleted on open.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::part::PartStats;

/// The manifest format this code writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;
const FILE_NAME: &str = "manifest.json";

/// One live part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// The part's number; its file is `parts/part-{id:010}.lsp`.
    pub id: u64,
    /// What it holds.
    pub stats: PartStats,
    /// How many times its rows have been rewritten by compaction (0 = sealed from the tail).
    pub level: u32,
}

impl PartEntry {
    /// The part's file name.
    pub fn file_name(&self) -> String {
        part_file_name(self.id)
    }
}

/// The file name of part `id`.
pub fn part_file_name(id: u64) -> String {
    format!("part-{id:010}.lsp")
}

/// The live state of a project's sealed data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// Every event with `seq <= sealed_seq` is in exactly one live part; tail segments wholly
    /// at or below it are leftovers to delete.
    pub sealed_seq: u64,
    /// The next part id to hand out.
    pub next_part_id: u64,
    /// Live parts, in the order they were created.
    pub parts: Vec<PartEntry>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: MANIFEST_FORMAT,
            sealed_seq: 0,
            next_part_id: 1,
            parts: Vec::new(),
        }
    }
}

impl Manifest {
    /// Loads the manifest of the project folder `dir`, or the empty one if there is none.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::corrupt(&path, format!("manifest: {e}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(StoreError::corrupt(
                &path,
                format!("unsupported manifest format {}", manifest.format),
            ));
        }
        Ok(manifest)
    }

    /// Atomically replaces the manifest of `dir` with `self`.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join("manifest.json.tmp");
        let path = dir.join(FILE_NAME);
        let bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        let mut file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        file.write_all(&bytes)
            .map_err(|e| StoreError::io(&tmp, e))?;
        file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        sync_dir(dir)
    }

    /// Total rows in live parts.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.stats.rows).sum()
    }
}

/// fsyncs a folder, making renames and new files in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let file = File::open(dir).map_err(|e| StoreError::io(dir, e))?;
    file.sync_all().map_err(|e| StoreError::io(dir, e))
}

/// The parts folder of a project folder.
pub fn parts_dir(dir: &Path) -> PathBuf {
    dir.join("parts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Manifest::default());
        let mut m = Manifest {
            sealed_seq: 42,
            ..Manifest::default()
        };
        m.parts.push(PartEntry {
            id: 1,
            level: 0,
            stats: PartStats {
                rows: 42,
                persons: 3,
                min_ts: 1,
                max_ts: 2,
                min_seq: 1,
                max_seq: 42,
            },
        });
        m.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), m);
        assert!(!dir.path().join("manifest.json.tmp").exists());
        std::fs::write(dir.path().join("manifest.json"), b"{\"format\": 99}").unwrap();
        assert!(Manifest::load(dir.path()).is_err());
    }
}
