//! What the platform derives from the behaviour events — the lifecycle stage changes, fitted
//! customer-value models (versioned, with their data window) and each buyer's scores —
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
CREATE TABLE IF NOT EXISTS model_fits (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    model TEXT NOT NULL,
    window_from TEXT NOT NULL,
    window_to TEXT NOT NULL,
    spec TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS model_scores (
    fit INTEGER NOT NULL,
    person INTEGER NOT NULL,
    p_alive REAL,
    expected_purchases REAL,
    p_purchase REAL,
    expected_spend REAL,
    clv REAL,
    churn_risk REAL,
    factors TEXT,
    PRIMARY KEY (person, fit)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    dynamic INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    evaluated_at INTEGER
);
CREATE TABLE IF NOT EXISTS segment_members (
    segment INTEGER NOT NULL,
    person INTEGER NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (segment, person)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segment_events (
    id INTEGER PRIMARY KEY,
    segment INTEGER NOT NULL,
    person INTEGER NOT NULL,
    at INTEGER NOT NULL,
    entered INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS segment_members_person ON segment_members (person);
CREATE INDEX IF NOT EXISTS segment_events_person ON segment_events (person);
"#;

/// Every table holding rows per person, with its person column: what a deletion clears.
const PERSON_TABLES: [&str; 4] = [
    "stage_changes",
    "model_scores",
    "segment_members",
    "segment_events",
];

/// Deletes every derived row of `persons` (stage changes, model scores, segment members,
/// segment entries and exits) in one transaction, overwriting the freed space
/// (`secure_delete`), then checkpoints the WAL. Returns rows deleted.
pub(crate) fn delete_persons(dir: &Path, persons: &[u64]) -> Result<u64> {
    let mut conn = open(dir)?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    let tx = conn.transaction()?;
    let mut deleted = 0u64;
    for table in PERSON_TABLES {
        let mut stmt = tx.prepare(&format!("DELETE FROM {table} WHERE person = ?1"))?;
        for p in persons {
            deleted += stmt.execute(params![*p as i64])? as u64;
        }
    }
    tx.commit()?;
    // Best effort: a reader may hold the WAL; the next checkpoint copies it then.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(deleted)
}

/// A saved segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRow {
    /// Its id.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// Re-evaluated as data change (else a fixed list of persons).
    pub dynamic: bool,
    /// The condition tree (dynamic) or the person list (static), as saved.
    pub definition: serde_json::Value,
    /// When it was saved.
    pub created_at: Timestamp,
    /// When its membership was last brought up to date.
    pub evaluated_at: Option<Timestamp>,
    /// Members now.
    pub size: u64,
    /// A rule-based tag: its name shows on its members' profiles.
    pub tag: bool,
}

/// A segment a person is in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Membership {
    /// The segment.
    pub segment: i64,
    /// Its name.
    pub name: String,
    /// Whether it is a rule-based tag.
    pub tag: bool,
    /// Member since.
    pub since: Timestamp,
}

/// A person entering or leaving a segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentEventRow {
    /// Position in the stream (ascending).
    pub id: i64,
    /// The segment.
    pub segment: i64,
    /// Canonical person.
    pub person: u64,
    /// When the evaluation saw it.
    pub at: Timestamp,
    /// `segment entered` (true) or `segment exited` (false).
    pub entered: bool,
}

/// Saves a segment; an error if the name is taken.
pub(crate) fn create_segment(
    dir: &Path,
    name: &str,
    dynamic: bool,
    definition: &serde_json::Value,
    at: Timestamp,
) -> Result<i64> {
    let conn = open(dir)?;
    conn.execute(
        "INSERT INTO segments (name, dynamic, definition, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, dynamic, definition.to_string(), at.millis()],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            crate::StoreError::Conflict(format!("a segment named {name:?} exists"))
        }
        other => other.into(),
    })?;
    Ok(conn.last_insert_rowid())
}

/// Every saved segment with its size.
pub(crate) fn segments(dir: &Path) -> Result<Vec<SegmentRow>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT s.id, s.name, s.dynamic, s.definition, s.created_at, s.evaluated_at,
                (SELECT count(*) FROM segment_members m WHERE m.segment = s.id), s.tag
         FROM segments s ORDER BY s.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let definition: String = r.get(3)?;
        Ok(SegmentRow {
            id: r.get(0)?,
            name: r.get(1)?,
            dynamic: r.get(2)?,
            definition: serde_json::from_str(&definition).unwrap_or(serde_json::Value::Null),
            created_at: Timestamp(r.get(4)?),
            evaluated_at: r.get::<_, Option<i64>>(5)?.map(Timestamp),
            size: r.get::<_, i64>(6)? as u64,
            tag: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Marks a segment as a rule-based tag (or not); false when there is no such segment.
pub(crate) fn set_tag(dir: &Path, segment: i64, tag: bool) -> Result<bool> {
    let conn = open(dir)?;
    Ok(conn.execute(
        "UPDATE segments SET tag = ?2 WHERE id = ?1",
        params![segment, tag],
    )? > 0)
}

/// The segments some persons are in (by segment).
pub(crate) fn memberships(dir: &Path, persons: &[u64]) -> Result<Vec<Membership>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT s.id, s.name, s.tag, m.since FROM segment_members m
         JOIN segments s ON s.id = m.segment WHERE m.person = ?1",
    )?;
    let mut out: Vec<Membership> = Vec::new();
    for &p in persons {
        let rows = stmt.query_map(params![p as i64], |r| {
            Ok(Membership {
                segment: r.get(0)?,
                name: r.get(1)?,
                tag: r.get(2)?,
                since: Timestamp(r.get(3)?),
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by_key(|m| m.segment);
    out.dedup_by_key(|m| m.segment);
    Ok(out)
}

/// Brings a segment's membership to `members` (ascending, distinct) as of `at` — among the
/// persons of `scope` (ascending) only, when given — recording an
/// entry for each newcomer and an exit for each leaver, all in one transaction (so each
/// crossing is recorded once, whatever crashes or restarts come between evaluations).
/// Returns (entered, exited).
pub(crate) fn update_members(
    dir: &Path,
    segment: i64,
    scope: Option<&[u64]>,
    members: &[u64],
    at: Timestamp,
) -> Result<(u64, u64)> {
    let mut conn = open(dir)?;
    let tx = conn.transaction()?;
    let current: Vec<u64> = match scope {
        None => {
            let mut stmt = tx
                .prepare("SELECT person FROM segment_members WHERE segment = ?1 ORDER BY person")?;
            let rows = stmt.query_map(params![segment], |r| r.get::<_, i64>(0))?;
            rows.map(|r| r.map(|p| p as u64))
                .collect::<std::result::Result<_, _>>()?
        }
        Some(scope) => {
            let mut stmt =
                tx.prepare("SELECT 1 FROM segment_members WHERE segment = ?1 AND person = ?2")?;
            let mut out = Vec::new();
            for &p in scope {
                if stmt.exists(params![segment, p as i64])? {
                    out.push(p);
                }
            }
            out
        }
    };
    let (mut entered, mut exited) = (0u64, 0u64);
    {
        let mut add =
            tx.prepare("INSERT INTO segment_members (segment, person, since) VALUES (?1, ?2, ?3)")?;
        let mut remove =
            tx.prepare("DELETE FROM segment_members WHERE segment = ?1 AND person = ?2")?;
        let mut event = tx.prepare(
            "INSERT INTO segment_events (segment, person, at, entered) VALUES (?1, ?2, ?3, ?4)",
        )?;
        // Both lists are sorted: one walk finds the newcomers and the leavers.
        let (mut i, mut j) = (0, 0);
        while i < current.len() || j < members.len() {
            let (old, new) = (current.get(i), members.get(j));
            match (old, new) {
                (Some(o), Some(n)) if o == n => {
                    i += 1;
                    j += 1;
                }
                (Some(&o), n) if n.is_none_or(|&n| o < n) => {
                    remove.execute(params![segment, o as i64])?;
                    event.execute(params![segment, o as i64, at.millis(), false])?;
                    exited += 1;
                    i += 1;
                }
                (_, Some(&n)) => {
                    add.execute(params![segment, n as i64, at.millis()])?;
                    event.execute(params![segment, n as i64, at.millis(), true])?;
                    entered += 1;
                    j += 1;
                }
                (_, None) => break,
            }
        }
    }
    tx.execute(
        "UPDATE segments SET evaluated_at = ?2 WHERE id = ?1",
        params![segment, at.millis()],
    )?;
    tx.commit()?;
    Ok((entered, exited))
}

/// A segment's members, ascending, from `after`.
pub(crate) fn segment_members(
    dir: &Path,
    segment: i64,
    after: u64,
    limit: usize,
) -> Result<Vec<u64>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT person FROM segment_members WHERE segment = ?1 AND person > ?2
         ORDER BY person LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![segment, after as i64, limit as i64], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(rows
        .map(|r| r.map(|p| p as u64))
        .collect::<std::result::Result<_, _>>()?)
}

/// The latest `limit` entries and exits of some persons, newest first.
pub(crate) fn person_segment_events(
    dir: &Path,
    persons: &[u64],
    limit: usize,
) -> Result<Vec<SegmentEventRow>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT id, segment, person, at, entered FROM segment_events
         WHERE person = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let mut out = Vec::new();
    for &p in persons {
        let rows = stmt.query_map(params![p as i64, limit as i64], segment_event_row)?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.id));
    out.truncate(limit);
    Ok(out)
}

/// Entries and exits with ids above `after`, in order (of one segment, or all).
pub(crate) fn segment_events(
    dir: &Path,
    segment: Option<i64>,
    after: i64,
    limit: usize,
) -> Result<Vec<SegmentEventRow>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT id, segment, person, at, entered FROM segment_events
         WHERE id > ?1 AND (?2 IS NULL OR segment = ?2) ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after, segment, limit as i64], segment_event_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// A `segment_events` row selected as (id, segment, person, at, entered).
fn segment_event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentEventRow> {
    Ok(SegmentEventRow {
        id: r.get(0)?,
        segment: r.get(1)?,
        person: r.get::<_, i64>(2)? as u64,
        at: Timestamp(r.get(3)?),
        entered: r.get(4)?,
    })
}

/// A fitted model as kept: a version (its id), its data window and what the fit found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFitRow {
    /// The version, ascending.
    pub id: i64,
    /// When it was fitted.
    pub created_at: Timestamp,
    /// `bg_nbd`, `pareto_nbd`, … or `churn_logistic`.
    pub model: String,
    /// First date of the calibration window.
    pub window_from: String,
    /// Last date of the calibration window.
    pub window_to: String,
    /// The parameters it was fitted with.
    pub spec: serde_json::Value,
    /// The fit: parameters, standard errors, report, validation.
    pub summary: serde_json::Value,
}

/// One person's scores from one fit (a customer-value fit gives the first five, a churn fit
/// the risk).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PersonScore {
    /// The fit (model version).
    pub fit: i64,
    /// Canonical person.
    pub person: u64,
    /// P(alive) at the end of the window.
    pub p_alive: Option<f64>,
    /// Expected purchases over the fit's horizon.
    pub expected_purchases: Option<f64>,
    /// Probability of at least one purchase over the horizon.
    pub p_purchase: Option<f64>,
    /// Expected spend per purchase.
    pub expected_spend: Option<f64>,
    /// Customer lifetime value over the horizon.
    pub clv: Option<f64>,
    /// P(no activity in the churn model's next window).
    pub churn_risk: Option<f64>,
    /// The churn risk's main factors (a churn fit): up to three `{feature, name,
    /// contribution}`, largest contribution to the log-odds first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn_factors: Option<serde_json::Value>,
}

/// Keeps a fit and every buyer's scores in one transaction; returns the fit's id.
pub(crate) fn record_model_fit(
    dir: &Path,
    fit: &ModelFitRow,
    scores: &[PersonScore],
) -> Result<i64> {
    let mut conn = open(dir)?;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO model_fits (created_at, model, window_from, window_to, spec, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            fit.created_at.millis(),
            fit.model,
            fit.window_from,
            fit.window_to,
            fit.spec.to_string(),
            fit.summary.to_string()
        ],
    )?;
    let id = tx.last_insert_rowid();
    {
        let mut insert = tx.prepare(
            "INSERT INTO model_scores
             (fit, person, p_alive, expected_purchases, p_purchase, expected_spend, clv, churn_risk,
              factors)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for s in scores {
            insert.execute(params![
                id,
                s.person as i64,
                s.p_alive,
                s.expected_purchases,
                s.p_purchase,
                s.expected_spend,
                s.clv,
                s.churn_risk,
                s.churn_factors.as_ref().map(|f| f.to_string())
            ])?;
        }
    }
    tx.commit()?;
    Ok(id)
}

fn fit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelFitRow> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    };
    Ok(ModelFitRow {
        id: r.get(0)?,
        created_at: Timestamp(r.get(1)?),
        model: r.get(2)?,
        window_from: r.get(3)?,
        window_to: r.get(4)?,
        spec: json(5)?,
        summary: json(6)?,
    })
}

/// Every fit, newest first.
pub(crate) fn model_fits(dir: &Path) -> Result<Vec<ModelFitRow>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT id, created_at, model, window_from, window_to, spec, summary FROM model_fits
         ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([], fit_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Every person's scores from the newest customer-value fit and the newest churn fit (a
/// person scored by both has two rows).
pub(crate) fn latest_scores(dir: &Path) -> Result<Vec<PersonScore>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT fit, person, p_alive, expected_purchases, p_purchase, expected_spend, clv,
                churn_risk, NULL
         FROM model_scores WHERE fit IN (
             SELECT max(id) FROM model_fits WHERE model = 'churn_logistic'
             UNION SELECT max(id) FROM model_fits WHERE model != 'churn_logistic')",
    )?;
    let rows = stmt.query_map([], score_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

fn score_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PersonScore> {
    Ok(PersonScore {
        fit: r.get(0)?,
        person: r.get::<_, i64>(1)? as u64,
        p_alive: r.get(2)?,
        expected_purchases: r.get(3)?,
        p_purchase: r.get(4)?,
        expected_spend: r.get(5)?,
        clv: r.get(6)?,
        churn_risk: r.get(7)?,
        churn_factors: r
            .get::<_, Option<String>>(8)?
            .and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// A person's scores from every fit, newest first.
pub(crate) fn person_scores(dir: &Path, person: u64) -> Result<Vec<PersonScore>> {
    let conn = open(dir)?;
    let mut stmt = conn.prepare(
        "SELECT fit, person, p_alive, expected_purchases, p_purchase, expected_spend, clv,
                churn_risk, factors
         FROM model_scores
         WHERE person = ?1 ORDER BY fit DESC",
    )?;
    let rows = stmt.query_map(params![person as i64], score_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

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
    // Added after the first release of this file: segments that are rule-based tags.
    let has_tag: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('segments') WHERE name = 'tag'")?
        .exists([])?;
    if !has_tag {
        conn.execute_batch("ALTER TABLE segments ADD COLUMN tag INTEGER NOT NULL DEFAULT 0")?;
    }
    // Added later still: the churn risk's main factors per person.
    let has_factors: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('model_scores') WHERE name = 'factors'")?
        .exists([])?;
    if !has_factors {
        conn.execute_batch("ALTER TABLE model_scores ADD COLUMN factors TEXT")?;
    }
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
    fn membership_changes_are_recorded_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let seg = create_segment(
            d,
            "vip",
            true,
            &serde_json::json!({"type": "x"}),
            Timestamp(1),
        )
        .unwrap();
        assert!(create_segment(d, "vip", true, &serde_json::json!({}), Timestamp(1)).is_err());
        assert_eq!(
            update_members(d, seg, None, &[1, 3, 5], Timestamp(10)).unwrap(),
            (3, 0)
        );
        assert_eq!(
            update_members(d, seg, None, &[1, 3, 5], Timestamp(20)).unwrap(),
            (0, 0)
        );
        assert_eq!(
            update_members(d, seg, None, &[3, 4, 5, 9], Timestamp(30)).unwrap(),
            (2, 1)
        );
        assert_eq!(segment_members(d, seg, 0, 10).unwrap(), vec![3, 4, 5, 9]);
        assert_eq!(segment_members(d, seg, 4, 2).unwrap(), vec![5, 9]);
        let events = segment_events(d, Some(seg), 0, 100).unwrap();
        let got: Vec<(u64, i64, bool)> = events
            .iter()
            .map(|e| (e.person, e.at.millis(), e.entered))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 10, true),
                (3, 10, true),
                (5, 10, true),
                (1, 30, false),
                (4, 30, true),
                (9, 30, true)
            ]
        );
        let list = segments(d).unwrap();
        assert_eq!(
            (list[0].size, list[0].evaluated_at),
            (4, Some(Timestamp(30)))
        );
        assert_eq!(segment_events(d, Some(seg + 1), 0, 100).unwrap().len(), 0);
        // Among some persons only: 4 leaves, 7 comes, 3 and 9 (outside the scope) stay.
        assert_eq!(
            update_members(d, seg, Some(&[4, 5, 7]), &[5, 7], Timestamp(40)).unwrap(),
            (1, 1)
        );
        assert_eq!(segment_members(d, seg, 0, 10).unwrap(), vec![3, 5, 7, 9]);
    }

    #[test]
    fn fits_are_versioned_and_scores_found_by_person() {
        let dir = tempfile::tempdir().unwrap();
        let fit = |n: i64| ModelFitRow {
            id: 0,
            created_at: Timestamp(n),
            model: "bg_nbd".into(),
            window_from: "2026-01-01".into(),
            window_to: format!("2026-0{n}-01"),
            spec: serde_json::json!({"n": n}),
            summary: serde_json::json!({"ll": -n}),
        };
        let score = |person: u64, p: f64| PersonScore {
            fit: 0,
            person,
            p_alive: Some(p),
            expected_purchases: Some(2.0 * p),
            p_purchase: Some(p / 2.0),
            expected_spend: None,
            clv: Some(10.0 * p),
            churn_risk: None,
            churn_factors: None,
        };
        let a = record_model_fit(dir.path(), &fit(1), &[score(7, 0.5), score(8, 0.25)]).unwrap();
        let factors = serde_json::json!([{"feature": "recency", "contribution": 0.5}]);
        let risky = PersonScore {
            churn_risk: Some(0.75),
            churn_factors: Some(factors.clone()),
            ..score(7, 0.75)
        };
        let b = record_model_fit(dir.path(), &fit(2), &[risky]).unwrap();
        assert!(b > a);
        let fits = model_fits(dir.path()).unwrap();
        assert_eq!(fits.iter().map(|f| f.id).collect::<Vec<_>>(), vec![b, a]);
        assert_eq!(fits[1].spec, serde_json::json!({"n": 1}));
        let s = person_scores(dir.path(), 7).unwrap();
        assert_eq!(
            s.iter().map(|s| (s.fit, s.p_alive)).collect::<Vec<_>>(),
            vec![(b, Some(0.75)), (a, Some(0.5))]
        );
        assert_eq!(s[0].churn_factors, Some(factors));
        assert_eq!(s[1].churn_factors, None);
        assert_eq!(person_scores(dir.path(), 8).unwrap()[0].clv, Some(2.5));
        assert!(person_scores(dir.path(), 9).unwrap().is_empty());
    }

    #[test]
    fn a_stream_from_before_factors_gets_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("derived.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE model_scores (fit INTEGER NOT NULL, person INTEGER NOT NULL,
                 p_alive REAL, expected_purchases REAL, p_purchase REAL, expected_spend REAL,
                 clv REAL, churn_risk REAL, PRIMARY KEY (person, fit)) WITHOUT ROWID;
             INSERT INTO model_scores VALUES (1, 7, 0.5, NULL, NULL, NULL, 3.0, NULL);",
        )
        .unwrap();
        drop(conn);
        let s = person_scores(dir.path(), 7).unwrap();
        assert_eq!((s[0].clv, s[0].churn_factors.clone()), (Some(3.0), None));
    }

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
