//! Deletion and suppression of a person (GDPR art. 17, 个人信息保护法 art. 47), and the
//! audit trail of both.
//!
//! A deletion happens in two steps:
//! 1. **The request** runs on the project's writer thread, ordered with appends, as one
//!    SQLite transaction: the job is recorded (`deletions`, status `pending`, with
//!    `sealed_through`, the last seq written before it: every event of the person is at or
//!    below it); the person and every person merged into it go to `deleted_persons`; their
//!    identities and `persons` rows (the profile) are deleted, and the warnings naming one of
//!    their ids; with `suppress`, a SHA-256 of each id goes to `suppressions`; the audit
//!    trail gets a row. From then on snapshots leave the persons out, and the writer drops
//!    messages carrying a suppressed id (acknowledged, not stored, counted). Derived rows are
//!    deleted right after the commit.
//! 2. **The job** (the maintenance thread, or [`crate::Store::run_deletions_now`]) seals the
//!    tail through `sealed_through`, rewrites each live part holding rows of the persons
//!    without them (one part at a time, swapped in the manifest like a compaction), deletes
//!    their derived rows again (a derived write racing the request is filtered, but one that
//!    started before it may land later), and marks the job `done` with its counts.
//!
//! A job left `running` (a crash) or `failed` goes back to `pending` when the project is
//! opened; every step is idempotent, so it simply runs again.
//!
//! Invariant: person ids are never reused. `deleted_persons` keeps the ids of deleted
//! persons for good (integers, no personal data), and new persons are numbered above them.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use lodestar_core::Timestamp;

use crate::error::{Result, StoreError};
use crate::identity::{IdKind, Prepared};

/// The tables this module keeps in the project database (schema version 3).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deletions (
    id INTEGER PRIMARY KEY,
    requested_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    suppress INTEGER NOT NULL,
    sealed_through INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    persons INTEGER NOT NULL DEFAULT 0,
    identities INTEGER NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    events INTEGER,
    derived INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deleted_persons (
    person INTEGER PRIMARY KEY,
    deletion INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deleted_persons_deletion ON deleted_persons (deletion);
CREATE TABLE IF NOT EXISTS suppressions (
    hash BLOB PRIMARY KEY,
    kind INTEGER NOT NULL,
    deletion INTEGER,
    at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

/// Who a deletion is about: any one of their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonRef {
    /// A user id.
    UserId(String),
    /// An anonymous id.
    AnonymousId(String),
    /// A person id (a merged person's id names the person it was merged into).
    Person(u64),
}

/// A request to delete a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionRequest {
    /// Who.
    pub person: PersonRef,
    /// Who asks (an operator's name, `api`, `cli`): kept in the audit trail.
    pub actor: String,
    /// Also drop every future message carrying one of the person's ids.
    pub suppress: bool,
}

/// Where a deletion job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionStatus {
    /// Recorded; the person is out of every read and lookup, their rows not yet rewritten.
    Pending,
    /// The job is rewriting parts.
    Running,
    /// Every row is gone from every live file.
    Done,
    /// The job stopped on an error (`message`); it runs again when the project is opened.
    Failed,
}

impl DeletionStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeletionStatus::Pending => "pending",
            DeletionStatus::Running => "running",
            DeletionStatus::Done => "done",
            DeletionStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> DeletionStatus {
        match s {
            "running" => DeletionStatus::Running,
            "done" => DeletionStatus::Done,
            "failed" => DeletionStatus::Failed,
            _ => DeletionStatus::Pending,
        }
    }
}

/// A deletion job as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deletion {
    /// Its id.
    pub id: i64,
    /// Where it is.
    pub status: DeletionStatus,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who asked.
    pub actor: String,
    /// Whether the person's ids are suppressed.
    pub suppress: bool,
    /// When it was asked for.
    pub requested_at: Timestamp,
    /// When the job last started.
    pub started_at: Option<Timestamp>,
    /// When it finished (done or failed).
    pub finished_at: Option<Timestamp>,
    /// Persons deleted (the person and those merged into it).
    pub persons: u64,
    /// Identities (user and anonymous ids) deleted.
    pub identities: u64,
    /// Ingestion warnings deleted because they named one of the ids.
    pub warnings: u64,
    /// Events removed from the parts (known once the job has sealed the tail).
    pub events: Option<u64>,
    /// Derived rows deleted (stage changes, model scores, segment members and entries/exits).
    pub derived: u64,
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// Its id (ascending with time).
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// `deletion_requested`, `suppressed`, `deletion_done`, `deletion_failed`, `unsuppressed`.
    pub action: String,
    /// Who.
    pub actor: String,
    /// Counts, the deletion id, SHA-256 hashes of the ids: never an id itself.
    pub detail: serde_json::Value,
}

/// The SHA-256 of an id and its kind: what the suppression list and the audit trail hold.
pub(crate) fn id_hash(kind: IdKind, value: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(match kind {
        IdKind::User => b"user\0".as_slice(),
        IdKind::Anonymous => b"anonymous\0".as_slice(),
    });
    h.update(value.as_bytes());
    h.finalize().into()
}

/// The suppressed id hashes of a project, in memory on the writer thread.
pub(crate) type Suppressed = HashSet<[u8; 32]>;

/// Loads the suppression list.
pub(crate) fn load_suppressed(conn: &Connection) -> Result<Suppressed> {
    let mut stmt = conn.prepare("SELECT hash FROM suppressions")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    let mut set = Suppressed::default();
    for row in rows {
        if let Ok(h) = <[u8; 32]>::try_from(row?.as_slice()) {
            set.insert(h);
        }
    }
    Ok(set)
}

/// Whether a message carries a suppressed id (its user id, anonymous id or previous id).
/// Costs nothing while the list is empty.
pub(crate) fn is_suppressed(set: &Suppressed, msg: &Prepared) -> bool {
    if set.is_empty() {
        return false;
    }
    let hit = |kind, v: &Option<String>| {
        v.as_deref()
            .is_some_and(|v| set.contains(&id_hash(kind, v)))
    };
    hit(IdKind::User, &msg.user_id)
        || hit(IdKind::Anonymous, &msg.anonymous_id)
        || hit(IdKind::User, &msg.previous_id)
        || hit(IdKind::Anonymous, &msg.previous_id)
}

/// What a recorded request changed, for the writer's caches and the derived data.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) id: i64,
    /// The persons deleted, ascending.
    pub(crate) persons: Vec<u64>,
    /// Their identities.
    pub(crate) ids: Vec<(IdKind, String)>,
    /// The hashes added to the suppression list.
    pub(crate) suppressed: Vec<[u8; 32]>,
}

/// The canonical person of `person`, or `None` when nobody has that id.
pub(crate) fn find(conn: &Connection, person: &PersonRef) -> Result<Option<u64>> {
    let found: Option<i64> = match person {
        PersonRef::UserId(v) | PersonRef::AnonymousId(v) => {
            let kind = match person {
                PersonRef::UserId(_) => IdKind::User,
                _ => IdKind::Anonymous,
            };
            conn.prepare_cached("SELECT person FROM identities WHERE kind = ?1 AND value = ?2")?
                .query_row(params![kind as i64, v], |r| r.get(0))
                .optional()?
        }
        PersonRef::Person(id) => conn
            .prepare_cached("SELECT id FROM persons WHERE id = ?1")?
            .query_row(params![*id as i64], |r| r.get(0))
            .optional()?,
    };
    let Some(p) = found else { return Ok(None) };
    let merged: Option<Option<i64>> = conn
        .prepare_cached("SELECT merged_into FROM persons WHERE id = ?1")?
        .query_row(params![p], |r| r.get(0))
        .optional()?;
    Ok(Some(merged.flatten().unwrap_or(p) as u64))
}

/// Records a deletion request in `tx` (see the module docs). `sealed_through` is the last
/// seq written before it.
pub(crate) fn record(
    tx: &Transaction<'_>,
    req: &DeletionRequest,
    now: i64,
    sealed_through: u64,
) -> Result<Recorded> {
    let canonical = find(tx, &req.person)?.ok_or(StoreError::UnknownPerson)?;
    let mut persons = vec![canonical];
    {
        let mut stmt = tx.prepare("SELECT id FROM persons WHERE merged_into = ?1")?;
        let rows = stmt.query_map(params![canonical as i64], |r| r.get::<_, i64>(0))?;
        for r in rows {
            persons.push(r? as u64);
        }
    }
    persons.sort_unstable();
    let mut ids = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT kind, value FROM identities WHERE person = ?1")?;
        for p in &persons {
            let rows = stmt.query_map(params![*p as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            for r in rows {
                let (kind, value) = r?;
                let kind = if kind == 0 {
                    IdKind::User
                } else {
                    IdKind::Anonymous
                };
                ids.push((kind, value));
            }
        }
    }
    tx.execute(
        "INSERT INTO deletions (requested_at, actor, suppress, sealed_through, status, persons,
                                identities)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
        params![
            now,
            req.actor,
            req.suppress,
            sealed_through as i64,
            persons.len() as i64,
            ids.len() as i64
        ],
    )?;
    let id = tx.last_insert_rowid();
    let mut warnings = 0usize;
    {
        let mut mark =
            tx.prepare("INSERT OR IGNORE INTO deleted_persons (person, deletion) VALUES (?1, ?2)")?;
        let mut forget_ids = tx.prepare("DELETE FROM identities WHERE person = ?1")?;
        let mut forget_person = tx.prepare("DELETE FROM persons WHERE id = ?1")?;
        let mut forget_history = tx.prepare("DELETE FROM trait_history WHERE person = ?1")?;
        for p in &persons {
            mark.execute(params![*p as i64, id])?;
            forget_ids.execute(params![*p as i64])?;
            forget_person.execute(params![*p as i64])?;
            forget_history.execute(params![*p as i64])?;
        }
        // Warnings name ids quoted: in the raw item (JSON) and in identity warnings' text.
        let mut forget_warnings =
            tx.prepare("DELETE FROM warnings WHERE instr(raw, ?1) > 0 OR instr(message, ?1) > 0")?;
        for (_, value) in &ids {
            let quoted = serde_json::to_string(value).expect("a string serializes");
            warnings += forget_warnings.execute(params![quoted])?;
        }
    }
    tx.execute(
        "UPDATE deletions SET warnings = ?2 WHERE id = ?1",
        params![id, warnings as i64],
    )?;
    let hashes: Vec<String> = ids
        .iter()
        .map(|(k, v)| hex::encode(id_hash(*k, v)))
        .collect();
    let mut suppressed = Vec::new();
    if req.suppress {
        let mut add = tx.prepare(
            "INSERT OR IGNORE INTO suppressions (hash, kind, deletion, at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (kind, value) in &ids {
            let h = id_hash(*kind, value);
            add.execute(params![h.as_slice(), *kind as i64, id, now])?;
            suppressed.push(h);
        }
        audit(
            tx,
            now,
            "suppressed",
            &req.actor,
            &serde_json::json!({"deletion": id, "ids": ids.len(), "id_hashes": hashes}),
        )?;
    }
    audit(
        tx,
        now,
        "deletion_requested",
        &req.actor,
        &serde_json::json!({
            "deletion": id,
            "persons": persons.len(),
            "identities": ids.len(),
            "warnings": warnings,
            "suppress": req.suppress,
            "id_hashes": hashes,
        }),
    )?;
    Ok(Recorded {
        id,
        persons,
        ids,
        suppressed,
    })
}

/// Removes an id from the suppression list; whether it was there.
pub(crate) fn unsuppress(
    tx: &Transaction<'_>,
    kind: IdKind,
    value: &str,
    actor: &str,
    now: i64,
) -> Result<Option<[u8; 32]>> {
    let h = id_hash(kind, value);
    let n = tx.execute(
        "DELETE FROM suppressions WHERE hash = ?1",
        params![h.as_slice()],
    )?;
    if n == 0 {
        return Ok(None);
    }
    audit(
        tx,
        now,
        "unsuppressed",
        actor,
        &serde_json::json!({"id_hashes": [hex::encode(h)]}),
    )?;
    Ok(Some(h))
}

/// Appends a row to the audit trail.
pub(crate) fn audit(
    conn: &Connection,
    at: i64,
    action: &str,
    actor: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    conn.prepare_cached("INSERT INTO audit (at, action, actor, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![at, action, actor, detail.to_string()])?;
    Ok(())
}

/// The audit trail, newest first, ids below `before`.
pub(crate) fn audit_rows(
    conn: &Connection,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<AuditRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, at, action, actor, detail FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![before.unwrap_or(i64::MAX), limit as i64], |r| {
        let detail: String = r.get(4)?;
        Ok(AuditRow {
            id: r.get(0)?,
            at: Timestamp(r.get(1)?),
            action: r.get(2)?,
            actor: r.get(3)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

const DELETION_COLUMNS: &str = "id, status, message, actor, suppress, requested_at, started_at,
    finished_at, persons, identities, warnings, events, derived";

fn deletion_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Deletion> {
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)? as u64) };
    Ok(Deletion {
        id: r.get(0)?,
        status: DeletionStatus::parse(&r.get::<_, String>(1)?),
        message: r.get(2)?,
        actor: r.get(3)?,
        suppress: r.get(4)?,
        requested_at: Timestamp(r.get(5)?),
        started_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
        finished_at: r.get::<_, Option<i64>>(7)?.map(Timestamp),
        persons: count(8)?,
        identities: count(9)?,
        warnings: count(10)?,
        events: r.get::<_, Option<i64>>(11)?.map(|n| n as u64),
        derived: count(12)?,
    })
}

/// One deletion job.
pub(crate) fn deletion(conn: &Connection, id: i64) -> Result<Deletion> {
    conn.query_row(
        &format!("SELECT {DELETION_COLUMNS} FROM deletions WHERE id = ?1"),
        params![id],
        deletion_row,
    )
    .optional()?
    .ok_or(StoreError::UnknownDeletion(id))
}

/// Every deletion job, newest first.
pub(crate) fn deletions(conn: &Connection) -> Result<Vec<Deletion>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {DELETION_COLUMNS} FROM deletions ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map([], deletion_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Jobs still to run, oldest first: (id, sealed_through).
pub(crate) fn unfinished(conn: &Connection) -> Result<Vec<(i64, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT id, sealed_through FROM deletions WHERE status IN ('pending', 'running')
         ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Puts jobs a crash left `running`, and failed ones, back to `pending` (on open).
pub(crate) fn resume(conn: &Connection) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE deletions SET status = 'pending', message = NULL
         WHERE status IN ('running', 'failed')",
        [],
    )?)
}

/// The persons of one job, ascending.
pub(crate) fn job_persons(conn: &Connection, id: i64) -> Result<Vec<u64>> {
    let mut stmt =
        conn.prepare("SELECT person FROM deleted_persons WHERE deletion = ?1 ORDER BY person")?;
    let rows = stmt.query_map(params![id], |r| r.get::<_, i64>(0))?;
    Ok(rows
        .map(|r| r.map(|p| p as u64))
        .collect::<std::result::Result<_, _>>()?)
}

/// Persons whose deletion is not done yet: their rows may still be in parts and the tail,
/// and readers leave them out.
pub(crate) fn deleting(conn: &Connection) -> Result<HashSet<u64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.person FROM deleted_persons d JOIN deletions j ON j.id = d.deletion
         WHERE j.status != 'done'",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
    Ok(rows
        .map(|r| r.map(|p| p as u64))
        .collect::<std::result::Result<_, _>>()?)
}

/// Every person ever deleted: derived writes leave them out.
pub(crate) fn all_deleted(conn: &Connection) -> Result<HashSet<u64>> {
    let mut stmt = conn.prepare_cached("SELECT person FROM deleted_persons")?;
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
    Ok(rows
        .map(|r| r.map(|p| p as u64))
        .collect::<std::result::Result<_, _>>()?)
}

/// The lowest id a new person may get: above every deleted person (0: no constraint).
pub(crate) fn person_floor(conn: &Connection) -> Result<u64> {
    let max: Option<i64> =
        conn.query_row("SELECT max(person) FROM deleted_persons", [], |r| r.get(0))?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

/// Marks a job running.
pub(crate) fn mark_running(conn: &Connection, id: i64, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE deletions SET status = 'running', started_at = ?2, message = NULL WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Records the events a job will remove, once (a resumed job keeps the first count).
pub(crate) fn set_events(conn: &Connection, id: i64, events: u64) -> Result<()> {
    conn.execute(
        "UPDATE deletions SET events = ?2 WHERE id = ?1 AND events IS NULL",
        params![id, events as i64],
    )?;
    Ok(())
}

/// Adds derived rows deleted to a job's count.
pub(crate) fn add_derived(conn: &Connection, id: i64, rows: u64) -> Result<()> {
    conn.execute(
        "UPDATE deletions SET derived = derived + ?2 WHERE id = ?1",
        params![id, rows as i64],
    )?;
    Ok(())
}

/// Marks a job done or failed, with its audit row, in one transaction.
pub(crate) fn finish(conn: &mut Connection, id: i64, now: i64, error: Option<&str>) -> Result<()> {
    let tx = conn.transaction()?;
    let status = match error {
        None => DeletionStatus::Done,
        Some(_) => DeletionStatus::Failed,
    };
    tx.execute(
        "UPDATE deletions SET status = ?2, message = ?3, finished_at = ?4 WHERE id = ?1",
        params![id, status.as_str(), error, now],
    )?;
    let job = deletion(&tx, id)?;
    let action = match error {
        None => "deletion_done",
        Some(_) => "deletion_failed",
    };
    audit(
        &tx,
        now,
        action,
        "lodestar",
        &serde_json::json!({
            "deletion": id,
            "persons": job.persons,
            "identities": job.identities,
            "events": job.events,
            "derived": job.derived,
            "warnings": job.warnings,
            "error": error,
        }),
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_hashes_depend_on_kind_and_value() {
        let a = id_hash(IdKind::User, "u1");
        assert_eq!(a, id_hash(IdKind::User, "u1"));
        assert_ne!(a, id_hash(IdKind::Anonymous, "u1"));
        assert_ne!(a, id_hash(IdKind::User, "u2"));
        // The kind is part of what is hashed, not only the value.
        assert_ne!(a.as_slice(), Sha256::digest(b"u1").as_slice());
    }
}
