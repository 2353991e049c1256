//! The per-project SQLite database: persons and identities, event names, groups,
//! ingestion warnings, and deletions, suppressions and the audit trail (`privacy`). (Events
//! live in the tail log and in parts; version 1 of this schema also held them, see
//! `migrate`; version 3 added the `privacy` tables, version 4 the trait history.)
//!
//! Opened in WAL mode with `synchronous = FULL`: a transaction is durable once `COMMIT`
//! returns.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::Result;

/// The schema version this code writes; `PRAGMA user_version` holds the stored one.
pub const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY,
    merged_into INTEGER,
    identified INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    traits TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS persons_merged ON persons (merged_into) WHERE merged_into IS NOT NULL;
CREATE TABLE IF NOT EXISTS identities (
    kind INTEGER NOT NULL,
    value TEXT NOT NULL,
    person INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_person ON identities (person);
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY,
    traits TEXT NOT NULL DEFAULT '{}',
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS warnings (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    severity TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    field TEXT NOT NULL,
    raw TEXT NOT NULL
);
"#;

/// Every change of a person's traits: `$set` (a trait given a new value) and `$set_once` (a
/// trait set for the first time), with the event time of the message that made it.
const TRAIT_HISTORY: &str = r#"
CREATE TABLE IF NOT EXISTS trait_history (
    id INTEGER PRIMARY KEY,
    person INTEGER NOT NULL,
    at INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    op TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trait_history_person ON trait_history (person, id);
"#;

/// Opens (creating if needed) the project database for writing.
pub fn open_rw(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    // Must precede the first table: lets freed pages go back to the disk.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -131_072)?; // 128 MiB
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The maintenance thread checkpoints (PASSIVE) every tick, off the write path; this is
    // only the safety net when it cannot keep up (or is off).
    conn.pragma_update(None, "wal_autocheckpoint", 50_000)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::privacy::SCHEMA)?;
        conn.execute_batch(TRAIT_HISTORY)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    } else if version == 2 || version == 3 {
        // Version 3 added the deletion, suppression and audit tables, version 4 the trait
        // history; nothing else changed.
        let privacy = if version == 2 {
            crate::privacy::SCHEMA
        } else {
            ""
        };
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {privacy} {TRAIT_HISTORY} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    } else if version > SCHEMA_VERSION {
        return Err(crate::StoreError::corrupt(
            path,
            format!(
                "database schema version {version} is newer than this build's ({SCHEMA_VERSION})"
            ),
        ));
    }
    Ok(conn)
}

/// The stored schema version (1 is migrated on open; see `migrate`).
pub fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Opens the project database for reading (sealing, exports, lookups). Readers never block
/// the writer in WAL mode.
pub fn open_ro(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(conn)
}

/// Every merged person and the person it was merged into (`persons.merged_into`, which always
/// names the final person).
pub fn merged_persons<M: FromIterator<(u64, u64)>>(conn: &Connection) -> Result<M> {
    let mut stmt =
        conn.prepare("SELECT id, merged_into FROM persons WHERE merged_into IS NOT NULL")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<std::result::Result<M, _>>()?)
}
