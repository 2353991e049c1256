//! Migrations of a project's stored formats.
//!
//! Version 1 kept unsealed events (`tail`) and the dedup window (`dedup_log`) in SQLite.
//! Version 2 keeps them in the tail log and dedup files. [`from_v1`] moves them over:
//! 1. the unsealed rows are written to a fresh tail segment (their dedup entries recomputed
//!    from the stored message ids, dated now, so they live a full window);
//! 2. the `dedup_log` hashes are written to one dedup file covering `0..=sealed_seq`;
//! 3. one transaction drops both tables and sets `user_version = 2`.
//!
//! A crash before 3 leaves version 1 in place and the migration runs again from the start
//! (the files it wrote are replaced). After 3 it is done.

use std::path::Path;

use rusqlite::Connection;

use lodestar_core::Message;

use crate::dedup;
use crate::error::{Result, StoreError};
use crate::tail::{self, Appender, Record, Tail};

/// Migrates the database `conn` of the project folder `dir` from schema version 1.
pub(crate) fn from_v1(conn: &Connection, dir: &Path, sealed_seq: u64, now: i64) -> Result<()> {
    tracing::info!(dir = %dir.display(), "migrating a version 1 project to the tail log");
    let tail_dir = tail::dir(dir);
    // Version 1 had no tail folder: anything there is from an interrupted migration.
    if tail_dir.exists() {
        std::fs::remove_dir_all(&tail_dir).map_err(|e| StoreError::io(&tail_dir, e))?;
    }
    let (tail, _) = Tail::open(tail_dir, sealed_seq)?;
    let mut log = Appender::new(tail);
    {
        let mut stmt = conn.prepare(
            "SELECT seq, person, ts, name, kind, body FROM tail WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([sealed_seq as i64])?;
        let mut pending = 0;
        while let Some(r) = rows.next()? {
            let seq = r.get::<_, i64>(0)? as u64;
            let body: Vec<u8> = r.get(5)?;
            let msg: Message = serde_json::from_slice(&body).map_err(|e| {
                StoreError::corrupt(
                    dir,
                    format!("version 1 tail row {seq}: undecodable body: {e}"),
                )
            })?;
            let hash = xxhash_rust::xxh3::xxh3_128(msg.message_id.as_bytes());
            log.push(&Record {
                seq,
                person: r.get::<_, i64>(1)? as u64,
                ts: r.get(2)?,
                name: r.get::<_, i64>(3)? as u32,
                kind: r.get::<_, i64>(4)? as u8,
                entry: dedup::entry(hash, now),
                body: &body,
            });
            pending += 1;
            if pending == 10_000 {
                log.commit(now)?;
                pending = 0;
            }
        }
    }
    log.commit(now)?;
    log.roll()?;
    let mut entries = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT hash, seen_at FROM dedup_log")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let bytes = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            let mut h = [0u8; 16];
            let n = bytes.len().min(16);
            h[..n].copy_from_slice(&bytes[..n]);
            entries.push(dedup::entry(u128::from_le_bytes(h), r.get(1)?));
        }
    }
    entries.sort_unstable();
    entries.dedup_by(|a, b| dedup::key(*a) == dedup::key(*b));
    dedup::files::write(&dedup::files::dir(dir), 0, sealed_seq, &entries)?;
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         DROP TABLE tail;
         DROP TABLE dedup_log;
         DELETE FROM meta WHERE key = 'last_seq';
         PRAGMA user_version = 2;
         COMMIT;",
    )?;
    let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}
