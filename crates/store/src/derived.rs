//! Events the platform derives from the behaviour events — today the lifecycle stage changes —
//! kept in their own stream, `projects/<id>/derived.db`, so that "any event" in an analysis
//! still means something a person did. Automation reads the stream by id, in order.
//!
//! Recording a day's changes is idempotent: one row per (person, day), and the last day
//! recorded is kept, so a rerun after a crash or a restart emits nothing twice.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use lodestar_core::Timestamp;

use crate::error::Result;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS stage_changes (
    id INTEGER PRIMARY KEY,
    person INTEGER NOT NULL,
    day TEXT NOT NULL,
    at INTEGER NOT NULL,
    from_stage TEXT,
    to_stage TEXT NOT NULL,
    UNIQUE (person, day)
);
CREATE TABLE IF NOT EXISTS derived_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#;

/// One change of lifecycle stage, as the stream holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageChangeRow {
    /// Position in the stream (ascending).
    pub id: i64,
    /// Canonical person at the time of recording.
    pub person: u64,
    /// The day (in the project's zone) at whose end the person was in `to`.
    pub day: String,
    /// The end of that day.
    pub at: Timestamp,
    /// Stage before (`None`: the person arrived that day).
    pub from: Option<String>,
    /// Stage after.
    pub to: String,
}

fn open(dir: &Path) -> Result<Connection> {
    let conn = Connection::open(dir.join("derived.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Records a day's changes, (person, from, to), and marks the day done; changes already
/// recorded for that person and day are kept as they were. Returns rows added.
pub(crate) fn record_stage_changes(
    dir: &Path,
    day: &str,
    at: Timestamp,
    changes: &[(u64, Option<String>, String)],
) -> Result<usize> {
    let mut conn = open(dir)?;
    let tx = conn.transaction()?;
    let mut added = 0;
    {
        let mut insert = tx.prepare(
            "INSERT OR IGNORE INTO stage_changes (person, day, at, from_stage, to_stage)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (person, from, to) in changes {
            added += insert.execute(params![*person as i64, day, at.millis(), from, to])?;
        }
    }
    tx.execute(
        "INSERT INTO derived_meta (key, value) VALUES ('stages_through', ?1)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        params![day],
    )?;
    tx.commit()?;
    Ok(added)
}

/// The last day whose changes were recorded.
pub(crate) fn stages_through(dir: &Path) -> Result<Option<String>> {
    let conn = open(dir)?;
    Ok(conn
        .query_row(
            "SELECT value FROM derived_meta WHERE key = 'stages_through'",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Up to `limit` changes with ids above `after`, in order.
pub(crate) fn stage_changes(dir: &Path, after: i64, limit: usize) -> Result<Vec<StageChangeRow>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT id, person, day, at, from_stage, to_stage FROM stage_changes
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
        Ok(StageChangeRow {
            id: r.get(0)?,
            person: r.get::<_, i64>(1)? as u64,
            day: r.get(2)?,
            at: Timestamp(r.get(3)?),
            from: r.get(4)?,
            to: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_a_day_twice_adds_nothing_and_the_stream_is_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(stages_through(d).unwrap(), None);
        let day1 = [
            (7, None, "onboarding".to_string()),
            (3, Some("growth".to_string()), "dormant".to_string()),
        ];
        assert_eq!(
            record_stage_changes(d, "2026-03-01", Timestamp(10), &day1).unwrap(),
            2
        );
        assert_eq!(
            record_stage_changes(d, "2026-03-01", Timestamp(10), &day1).unwrap(),
            0
        );
        let day2 = [(7, Some("onboarding".to_string()), "growth".to_string())];
        assert_eq!(
            record_stage_changes(d, "2026-03-02", Timestamp(20), &day2).unwrap(),
            1
        );
        // An older day recorded late does not move the mark back.
        record_stage_changes(d, "2026-02-27", Timestamp(5), &[]).unwrap();
        assert_eq!(stages_through(d).unwrap().as_deref(), Some("2026-03-02"));
        let all = stage_changes(d, 0, 10).unwrap();
        assert_eq!(
            all.iter()
                .map(|r| (r.person, r.day.as_str(), r.to.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (7, "2026-03-01", "onboarding"),
                (3, "2026-03-01", "dormant"),
                (7, "2026-03-02", "growth")
            ]
        );
        assert_eq!(stage_changes(d, all[1].id, 10).unwrap().len(), 1);
    }
}
