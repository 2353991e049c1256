//! The catalog: projects and their write keys, in `catalog.db` at the top of the data
//! folder. Write keys are stored only as SHA-256 hashes; the key itself is shown once, when
//! the project is created or its key rotated.
//!
//! A handle keeps the projects in memory (`by_key`, `by_name`) and checks before each lookup
//! whether another connection (another process, such as `lodestar projects rotate-key`) has
//! committed to `catalog.db` since it loaded them (`PRAGMA data_version`, which SQLite keeps
//! in the WAL index: no file read). If so it reloads, so a rotated key stops working in every
//! process at once; its own changes update the maps directly.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use lodestar_core::{ProjectId, Timestamp};

use crate::error::{Result, StoreError};

/// A project as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectInfo {
    /// Its id.
    pub id: ProjectId,
    /// Its unique name.
    pub name: String,
    /// The first characters of its write key, to tell keys apart without revealing them.
    pub key_hint: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its IANA time zone (for analyses), `UTC` unless set.
    pub time_zone: String,
}

pub(crate) struct Catalog {
    conn: Connection,
    by_key: HashMap<String, ProjectInfo>,
    by_name: HashMap<String, ProjectInfo>,
    /// `PRAGMA data_version` when the maps were loaded: it changes when another connection
    /// commits to `catalog.db`.
    loaded_version: i64,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    key_hint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    time_zone TEXT NOT NULL DEFAULT 'UTC'
);
CREATE TABLE IF NOT EXISTS project_settings (
    project INTEGER PRIMARY KEY REFERENCES projects (id),
    defaults TEXT NOT NULL DEFAULT '{}'
);
"#;

/// A project's settings: its time zone and its default parameters per analysis (the
/// lifecycle rules under `stages`, the RFM layers under `rfm`, the North Star under
/// `north_star`, …). The store keeps them; their meaning is the analyses'.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// IANA time zone analyses use when a query names none.
    pub timezone: String,
    /// Per analysis name, parameters a query gets when it does not give them.
    #[serde(default)]
    pub defaults: lodestar_core::JsonMap,
}

/// Checks a project name: 1 to 64 characters of `a-z 0-9 _ -`, starting with a letter or digit.
pub fn check_project_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > 64 {
        Some("a name has 1 to 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Some("a name uses only lowercase letters, digits, '_' and '-'")
    } else if !name.as_bytes()[0].is_ascii_alphanumeric() {
        Some("a name starts with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn new_write_key() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Unavailable(format!("no randomness for a write key: {e}")))?;
    Ok(format!("lsk_{}", hex::encode(bytes)))
}

impl Catalog {
    pub(crate) fn open(data_dir: &Path) -> Result<Catalog> {
        let conn = Connection::open(data_dir.join("catalog.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(SCHEMA)?;
        let mut catalog = Catalog {
            conn,
            by_key: HashMap::new(),
            by_name: HashMap::new(),
            loaded_version: 0,
        };
        catalog.reload()?;
        Ok(catalog)
    }

    fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?)
    }

    /// Reloads the projects if another connection has committed to the catalog since they
    /// were loaded (a project created, a key rotated, settings changed). Must precede every
    /// lookup in the maps: a rotated key is refused from the next request on.
    fn refresh(&mut self) -> Result<()> {
        if self.data_version()? != self.loaded_version {
            self.reload()?;
        }
        Ok(())
    }

    /// Re-reads the projects (another process, such as `lodestar projects create`, may have
    /// added some).
    pub(crate) fn reload(&mut self) -> Result<()> {
        // Read before the rows: a commit between the two makes the next lookup reload again,
        // never miss a change.
        let version = self.data_version()?;
        let mut stmt = self.conn.prepare(
            "SELECT id, name, key_hash, key_hint, created_at, time_zone FROM projects ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(2)?,
                ProjectInfo {
                    id: ProjectId(r.get::<_, i64>(0)? as u32),
                    name: r.get(1)?,
                    key_hint: r.get(3)?,
                    created_at: Timestamp(r.get(4)?),
                    time_zone: r.get(5)?,
                },
            ))
        })?;
        self.by_key.clear();
        self.by_name.clear();
        for row in rows {
            let (hash, info) = row?;
            self.by_name.insert(info.name.clone(), info.clone());
            self.by_key.insert(hash, info);
        }
        self.loaded_version = version;
        Ok(())
    }

    pub(crate) fn create(&mut self, name: &str, now: Timestamp) -> Result<(ProjectInfo, String)> {
        check_project_name(name)?;
        self.reload()?;
        if self.by_name.contains_key(name) {
            return Err(StoreError::ProjectExists(name.to_string()));
        }
        let key = new_write_key()?;
        let hint = key[..8].to_string();
        let hash = hash_key(&key);
        self.conn.execute(
            "INSERT INTO projects (name, key_hash, key_hint, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, hash, hint, now.millis()],
        )?;
        let id = ProjectId(self.conn.last_insert_rowid() as u32);
        let info = ProjectInfo {
            id,
            name: name.to_string(),
            key_hint: hint,
            created_at: now,
            time_zone: "UTC".to_string(),
        };
        self.by_name.insert(name.to_string(), info.clone());
        self.by_key.insert(hash, info.clone());
        Ok((info, key))
    }

    /// The project whose write key this is. A key rotated by any process is refused at once
    /// (see the module doc). If the catalog cannot be read, the keys loaded last are used
    /// rather than refusing every request (clients drop events refused with 401).
    pub(crate) fn by_key(&mut self, key: &str) -> Option<ProjectInfo> {
        if let Err(e) = self.refresh() {
            tracing::warn!(error = %e, "catalog not re-read; using the write keys loaded last");
        }
        self.by_key.get(&hash_key(key)).cloned()
    }

    pub(crate) fn by_name(&mut self, name: &str) -> Result<ProjectInfo> {
        self.refresh()?;
        self.by_name
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::UnknownProject(name.to_string()))
    }

    /// Gives the project a new write key, returned (shown this once); the old one is refused
    /// from now on, here and, through `data_version`, in every other process.
    pub(crate) fn rotate_key(&mut self, name: &str) -> Result<(ProjectInfo, String)> {
        let key = new_write_key()?;
        let hint = key[..8].to_string();
        let changed = self.conn.execute(
            "UPDATE projects SET key_hash = ?2, key_hint = ?3 WHERE name = ?1",
            params![name, hash_key(&key), hint],
        )?;
        if changed == 0 {
            return Err(StoreError::UnknownProject(name.to_string()));
        }
        self.reload()?;
        Ok((self.by_name(name)?, key))
    }

    /// The project's settings, read from the database (another process may have changed them).
    pub(crate) fn settings(&self, id: ProjectId) -> Result<ProjectSettings> {
        let (timezone, defaults): (String, Option<String>) = self.conn.query_row(
            "SELECT p.time_zone, s.defaults FROM projects p
             LEFT JOIN project_settings s ON s.project = p.id WHERE p.id = ?1",
            params![id.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let defaults = match defaults {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                StoreError::corrupt("catalog.db", format!("project {} settings: {e}", id.0))
            })?,
            None => lodestar_core::JsonMap::new(),
        };
        Ok(ProjectSettings { timezone, defaults })
    }

    /// Replaces the project's settings (checked by the caller).
    pub(crate) fn set_settings(&mut self, id: ProjectId, s: &ProjectSettings) -> Result<()> {
        let defaults = serde_json::to_string(&s.defaults).expect("a JSON map serializes");
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE projects SET time_zone = ?2 WHERE id = ?1",
            params![id.0, s.timezone],
        )?;
        tx.execute(
            "INSERT INTO project_settings (project, defaults) VALUES (?1, ?2)
             ON CONFLICT (project) DO UPDATE SET defaults = excluded.defaults",
            params![id.0, defaults],
        )?;
        tx.commit()?;
        self.reload()
    }

    pub(crate) fn all(&self) -> Vec<ProjectInfo> {
        let mut all: Vec<_> = self.by_name.values().cloned().collect();
        all.sort_by_key(|p| p.id);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_the_rule() {
        for ok in ["shop", "a", "shop-cn_2", "9lives"] {
            assert!(check_project_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Shop", "-x", "_x", "has space", "点", &"x".repeat(65)] {
            assert!(check_project_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_hashed_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let (info, key) = c.create("shop", Timestamp(5)).unwrap();
        assert!(key.starts_with("lsk_") && key.len() == 36);
        assert_eq!(c.by_key(&key), Some(info.clone()));
        assert_eq!(c.by_key("lsk_wrong"), None);
        assert!(matches!(
            c.create("shop", Timestamp(6)),
            Err(StoreError::ProjectExists(_))
        ));
        let stored: String = c
            .conn
            .query_row("SELECT key_hash FROM projects", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains(&key[4..]));
        // A second handle (another process) sees the project.
        let mut other = Catalog::open(dir.path()).unwrap();
        assert_eq!(other.by_name("shop").unwrap().id, info.id);
    }

    #[test]
    fn settings_round_trip_and_other_handles_see_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let (info, _) = c.create("shop", Timestamp(5)).unwrap();
        let fresh = c.settings(info.id).unwrap();
        assert_eq!((fresh.timezone.as_str(), fresh.defaults.len()), ("UTC", 0));
        let mut defaults = lodestar_core::JsonMap::new();
        defaults.insert("rfm".into(), serde_json::json!({"scheme": "eight"}));
        let want = ProjectSettings {
            timezone: "Asia/Shanghai".into(),
            defaults,
        };
        c.set_settings(info.id, &want).unwrap();
        c.set_settings(info.id, &want).unwrap();
        let other = Catalog::open(dir.path()).unwrap();
        assert_eq!(other.settings(info.id).unwrap(), want);
        assert_eq!(c.by_name("shop").unwrap().time_zone, "Asia/Shanghai");
    }

    #[test]
    fn a_rotated_key_is_refused_at_once_here_and_in_other_handles() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Catalog::open(dir.path()).unwrap();
        let (info, old) = server.create("shop", Timestamp(5)).unwrap();
        // Another process (the command line) with its own connection.
        let mut cli = Catalog::open(dir.path()).unwrap();
        assert_eq!(server.by_key(&old).unwrap().id, info.id, "cached");
        let (rotated, new) = cli.rotate_key("shop").unwrap();
        assert_ne!(new, old);
        assert_eq!(
            (rotated.id, rotated.key_hint.as_str()),
            (info.id, &new[..8])
        );
        // The server's cache still held the old hash: refused from the next lookup on.
        assert_eq!(server.by_key(&old), None);
        assert_eq!(server.by_key(&new).unwrap().key_hint, new[..8]);
        assert_eq!(server.by_name("shop").unwrap().key_hint, new[..8]);
        // Rotating in the same handle drops the old key from its own cache too.
        let (_, newer) = server.rotate_key("shop").unwrap();
        assert_eq!((server.by_key(&new), cli.by_key(&new)), (None, None));
        assert_eq!(cli.by_key(&newer).unwrap().id, info.id);
        assert!(matches!(
            server.rotate_key("nope"),
            Err(StoreError::UnknownProject(_))
        ));
        let hashes: i64 = server
            .conn
            .query_row("SELECT count(*) FROM projects", [], |r| r.get(0))
            .unwrap();
        assert_eq!(hashes, 1);
    }

    #[test]
    fn events_written_with_the_old_key_stay_after_rotation() {
        use crate::{AppendBatch, EventStore, Store, StoreConfig};
        use lodestar_core::{FixedClock, Message, MessageKind};
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            maintenance_interval_ms: 0,
            ..StoreConfig::default()
        };
        let store =
            Store::open(config, std::sync::Arc::new(FixedClock::new(Timestamp(9)))).unwrap();
        let (_, old) = store.create_project("shop").unwrap();
        let write = |key: &str, id: &str| {
            let project = store.authenticate(key)?;
            let mut m = Message::new(MessageKind::Track, id, Timestamp(7));
            m.user_id = Some("u1".into());
            m.event = Some("Order Completed".into());
            let batch = AppendBatch {
                messages: vec![m],
                ..Default::default()
            };
            Some(
                store
                    .append(project.id, batch)
                    .unwrap()
                    .wait_blocking()
                    .unwrap(),
            )
        };
        let ids = |store: &Store| {
            let mut ids = Vec::new();
            let id = store.project("shop").unwrap().id;
            store
                .for_each_event(id, &mut |_, _, m| {
                    ids.push(m.message_id);
                    Ok(())
                })
                .unwrap();
            ids.sort();
            ids
        };
        assert_eq!(write(&old, "m1").unwrap().stored, 1);
        assert_eq!(write(&old, "m2").unwrap().stored, 1);
        let (_, new) = store.rotate_key("shop").unwrap();
        assert!(write(&old, "m3").is_none(), "the old key is refused");
        assert_eq!(ids(&store), ["m1", "m2"], "acknowledged events unchanged");
        let out = write(&new, "m2").unwrap();
        assert_eq!(
            (out.stored, out.duplicates),
            (0, 1),
            "same project, same dedup"
        );
        assert_eq!(write(&new, "m4").unwrap().stored, 1);
        assert_eq!(ids(&store), ["m1", "m2", "m4"]);
        // From another process while the store is open.
        let (_, newest) = Store::rotate_key_in(dir.path(), "shop").unwrap();
        assert!(write(&new, "m5").is_none());
        assert_eq!(write(&newest, "m5").unwrap().stored, 1);
        assert!(matches!(
            Store::rotate_key_in(&dir.path().join("missing"), "shop"),
            Err(StoreError::UnknownProject(_))
        ));
    }
}
