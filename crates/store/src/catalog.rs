//! The catalog: projects and their write keys, in `catalog.db` at the top of the data
//! folder. Write keys are stored only as SHA-256 hashes; the key itself is shown once, when
//! the project is created.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
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
        };
        catalog.reload()?;
        Ok(catalog)
    }

    /// Re-reads the projects (another process, such as `lodestar projects create`, may have
    /// added some).
    pub(crate) fn reload(&mut self) -> Result<()> {
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

    pub(crate) fn by_key(&mut self, key: &str) -> Option<ProjectInfo> {
        let hash = hash_key(key);
        if let Some(info) = self.by_key.get(&hash) {
            return Some(info.clone());
        }
        // Created by another process since we loaded? Look once more in the database.
        let found = self
            .conn
            .query_row(
                "SELECT 1 FROM projects WHERE key_hash = ?1",
                params![hash],
                |_| Ok(()),
            )
            .optional()
            .ok()
            .flatten();
        if found.is_some() && self.reload().is_ok() {
            return self.by_key.get(&hash).cloned();
        }
        None
    }

    pub(crate) fn by_name(&mut self, name: &str) -> Result<ProjectInfo> {
        if let Some(info) = self.by_name.get(name) {
            return Ok(info.clone());
        }
        self.reload()?;
        self.by_name
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::UnknownProject(name.to_string()))
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
}
