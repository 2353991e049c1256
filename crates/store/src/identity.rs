//! Identity resolution: which person a message belongs to, and when two persons are one.
//!
//! Rules (after Segment Unify's flat matching and PostHog's merge guard):
//! - A user id and an anonymous id each resolve to at most one person (`identities`).
//! - A message carrying both ids ties them together. If they already resolve to two
//!   persons, the anonymous one is merged into the known one, unless it is itself
//!   identified (has a user id of its own): then nothing is merged, the event goes to the
//!   person of the user id, and a `cannot_merge_already_identified` warning is recorded.
//! - `alias(previousId → userId)` merges the person of `previousId` into the person of
//!   `userId` under the same guard.
//! - A person has at most one user id. Blocked placeholder ids never get here (the
//!   decoders drop them).
//! - Merging never rewrites events: the merged person's id keeps pointing at its canonical
//!   person (`persons.merged_into`, always the final one), and readers resolve it.
//! - Traits: `$set` overwrites, `$set_once` writes only absent keys; on a merge the
//!   target's values win and the merged person's fill the gaps.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};

use lodestar_core::{JsonMap, Message, MessageKind, PersonId};

use crate::error::Result;

/// A message made ready for the writer on the caller's thread: its body encoded, its dedup
/// hash computed, and only the fields identity resolution needs kept.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) message_id: String,
    pub(crate) hash: [u8; 16],
    pub(crate) body: Vec<u8>,
    pub(crate) name: String,
    pub(crate) kind: MessageKind,
    pub(crate) ts: i64,
    pub(crate) user_id: Option<String>,
    pub(crate) anonymous_id: Option<String>,
    pub(crate) previous_id: Option<String>,
    pub(crate) group_id: Option<String>,
    pub(crate) traits: JsonMap,
    pub(crate) set_once: JsonMap,
}

impl Prepared {
    pub(crate) fn new(msg: Message) -> Prepared {
        let body = serde_json::to_vec(&msg).expect("message serializes");
        Prepared {
            hash: xxhash_rust::xxh3::xxh3_128(msg.message_id.as_bytes()).to_le_bytes(),
            body,
            name: msg.analytic_name().to_string(),
            kind: msg.kind,
            ts: msg.timestamp.millis(),
            message_id: msg.message_id,
            user_id: msg.user_id,
            anonymous_id: msg.anonymous_id,
            previous_id: msg.previous_id,
            group_id: msg.group_id,
            traits: msg.traits,
            set_once: msg.set_once,
        }
    }
}

/// Most cached ids or persons before a cache is emptied and refilled from the database.
const CACHE_LIMIT: usize = 4_000_000;
/// Projects with at most this many ids load them all on open, so that an id missing from
/// the cache is known to be new without asking the database.
const PRELOAD_LIMIT: usize = 1_000_000;

/// The writer's memory of identities, to spare the database most lookups. Only a cache:
/// emptied whenever a transaction fails, and refilled from the database.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    /// User ids and anonymous ids (indexed by [`IdKind`]) → person.
    ids: [HashMap<String, u64, Hasher>; 2],
    /// `ids` holds every identity in the database: a miss means the id is new.
    complete: bool,
    /// Every merged person → the person it was merged into (chains are followed).
    merged: HashMap<u64, u64, Hasher>,
    created: HashMap<u64, i64, Hasher>,
    /// New persons get ids at least this (above every deleted person; 0: no constraint).
    person_floor: u64,
}

/// xxh3 with a per-process random seed: several times cheaper than the default SipHash on
/// these hot maps, and the random seed keeps client-chosen ids from being crafted into
/// collisions.
#[derive(Clone)]
pub(crate) struct Hasher(xxhash_rust::xxh3::Xxh3Builder);

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher(xxh3)")
    }
}

impl Default for Hasher {
    fn default() -> Self {
        let mut seed = [0u8; 8];
        // Without randomness the fixed seed is still correct, only less collision-proof.
        let _ = getrandom::fill(&mut seed);
        Hasher(xxhash_rust::xxh3::Xxh3Builder::new().with_seed(u64::from_le_bytes(seed)))
    }
}

impl std::hash::BuildHasher for Hasher {
    type Hasher = xxhash_rust::xxh3::Xxh3;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

impl Resolver {
    /// Loads the merge map (complete, always) from the database.
    /// Also loads every identity when there are at most [`PRELOAD_LIMIT`].
    pub(crate) fn load(conn: &rusqlite::Connection) -> Result<Resolver> {
        let mut r = Resolver {
            merged: crate::db::merged_persons(conn)?,
            person_floor: crate::privacy::person_floor(conn)?,
            ..Resolver::default()
        };
        let count: i64 = conn.query_row("SELECT count(*) FROM identities", [], |row| row.get(0))?;
        if count as usize <= PRELOAD_LIMIT {
            let mut stmt = conn.prepare("SELECT kind, value, person FROM identities")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let kind = if row.get::<_, i64>(0)? == 0 { 0 } else { 1 };
                r.ids[kind].insert(row.get(1)?, row.get::<_, i64>(2)? as u64);
            }
            r.complete = true;
        }
        Ok(r)
    }

    fn cache_id(&mut self, kind: IdKind, value: &str, person: u64) {
        if self.ids[0].len() + self.ids[1].len() >= CACHE_LIMIT {
            self.ids = Default::default();
            self.complete = false;
        }
        self.ids[kind as usize].insert(value.to_string(), person);
    }

    fn canonical(&self, mut p: u64) -> u64 {
        while let Some(&q) = self.merged.get(&p) {
            p = q;
        }
        p
    }

    fn lookup(&mut self, tx: &Transaction<'_>, kind: IdKind, value: &str) -> Result<Option<u64>> {
        if let Some(&p) = self.ids[kind as usize].get(value) {
            return Ok(Some(self.canonical(p)));
        }
        if self.complete {
            return Ok(None);
        }
        let found = lookup(tx, kind, value)?;
        if let Some(p) = found {
            self.cache_id(kind, value, p);
        }
        Ok(found)
    }

    fn bind(&mut self, tx: &Transaction<'_>, kind: IdKind, value: &str, person: u64) -> Result<()> {
        bind(tx, kind, value, person)?;
        self.cache_id(kind, value, person);
        Ok(())
    }

    fn create(&mut self, tx: &Transaction<'_>, identified: bool, at: i64) -> Result<u64> {
        let p = create(tx, identified, at, self.person_floor)?;
        if self.created.len() >= CACHE_LIMIT {
            self.created.clear();
        }
        self.created.insert(p, at);
        Ok(p)
    }

    fn merge(&mut self, tx: &Transaction<'_>, from: u64, into: u64, at: i64) -> Result<()> {
        merge(tx, from, into, at)?;
        self.merged.insert(from, into);
        if let Some(c) = self.created.remove(&from)
            && let Some(t) = self.created.get_mut(&into)
        {
            *t = (*t).min(c);
        }
        Ok(())
    }

    /// Forgets deleted persons and their ids (after the deletion committed).
    pub(crate) fn forget(&mut self, persons: &[u64], ids: &[(IdKind, String)]) {
        for (kind, value) in ids {
            self.ids[*kind as usize].remove(value);
        }
        for p in persons {
            self.merged.remove(p);
            self.created.remove(p);
            self.person_floor = self.person_floor.max(p + 1);
        }
    }

    /// Lowers the person's `created_at` to `at` if it is earlier: usually no statement at
    /// all (the cache knows), else one.
    fn touch(&mut self, tx: &Transaction<'_>, person: u64, at: i64) -> Result<()> {
        let current = match self.created.get(&person) {
            Some(&c) => c,
            None => {
                let c: i64 = tx
                    .prepare_cached("SELECT created_at FROM persons WHERE id = ?1")?
                    .query_row(params![person as i64], |r| r.get(0))?;
                if self.created.len() >= CACHE_LIMIT {
                    self.created.clear();
                }
                self.created.insert(person, c);
                c
            }
        };
        if at < current {
            tx.prepare_cached("UPDATE persons SET created_at = ?2 WHERE id = ?1")?
                .execute(params![person as i64, at])?;
            self.created.insert(person, at);
        }
        Ok(())
    }
}

/// The kind of an identity row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A known user's id.
    User = 0,
    /// An anonymous (device, session) id.
    Anonymous = 1,
}

/// A warning raised while resolving, to be recorded with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityWarning {
    /// Stable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

pub(crate) fn lookup(tx: &Transaction<'_>, kind: IdKind, value: &str) -> Result<Option<u64>> {
    Ok(tx
        .prepare_cached("SELECT person FROM identities WHERE kind = ?1 AND value = ?2")?
        .query_row(params![kind as i64, value], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|p| p as u64))
}

fn bind(tx: &Transaction<'_>, kind: IdKind, value: &str, person: u64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO identities (kind, value, person) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind, value) DO UPDATE SET person = ?3",
    )?
    .execute(params![kind as i64, value, person as i64])?;
    Ok(())
}

/// Creates a person with an id of at least `floor`: SQLite would hand out the id of a
/// deleted person again if it was the highest.
fn create(tx: &Transaction<'_>, identified: bool, at: i64, floor: u64) -> Result<u64> {
    if floor == 0 {
        tx.prepare_cached(
            "INSERT INTO persons (identified, created_at, updated_at) VALUES (?1, ?2, ?2)",
        )?
        .execute(params![identified as i64, at])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO persons (id, identified, created_at, updated_at)
             VALUES (max(?3, (SELECT ifnull(max(id), 0) + 1 FROM persons)), ?1, ?2, ?2)",
        )?
        .execute(params![identified as i64, at, floor as i64])?;
    }
    Ok(tx.last_insert_rowid() as u64)
}

fn is_identified(tx: &Transaction<'_>, person: u64) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT identified FROM persons WHERE id = ?1")?
        .query_row(params![person as i64], |r| r.get::<_, i64>(0))?
        != 0)
}

fn set_identified(tx: &Transaction<'_>, person: u64) -> Result<()> {
    tx.prepare_cached("UPDATE persons SET identified = 1 WHERE id = ?1")?
        .execute(params![person as i64])?;
    Ok(())
}

fn traits_of(tx: &Transaction<'_>, person: u64) -> Result<JsonMap> {
    let text: String = tx
        .prepare_cached("SELECT traits FROM persons WHERE id = ?1")?
        .query_row(params![person as i64], |r| r.get(0))?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

fn store_traits(tx: &Transaction<'_>, person: u64, traits: &JsonMap, at: i64) -> Result<()> {
    let text = serde_json::to_string(traits).expect("json map serializes");
    tx.prepare_cached(
        "UPDATE persons SET traits = ?2, updated_at = max(updated_at, ?3) WHERE id = ?1",
    )?
    .execute(params![person as i64, text, at])?;
    Ok(())
}

/// Merges person `from` into `into`. `from` must not be identified.
fn merge(tx: &Transaction<'_>, from: u64, into: u64, at: i64) -> Result<()> {
    tx.prepare_cached("UPDATE persons SET merged_into = ?2 WHERE id = ?1 OR merged_into = ?1")?
        .execute(params![from as i64, into as i64])?;
    tx.prepare_cached("UPDATE identities SET person = ?2 WHERE person = ?1")?
        .execute(params![from as i64, into as i64])?;
    let from_traits = traits_of(tx, from)?;
    if !from_traits.is_empty() {
        let mut merged = traits_of(tx, into)?;
        for (k, v) in from_traits {
            merged.entry(k).or_insert(v);
        }
        store_traits(tx, into, &merged, at)?;
    }
    tx.prepare_cached(
        "UPDATE persons SET created_at = min(created_at,
            (SELECT created_at FROM persons WHERE id = ?1)) WHERE id = ?2",
    )?
    .execute(params![from as i64, into as i64])?;
    Ok(())
}

const ALREADY_IDENTIFIED: &str = "cannot_merge_already_identified";

/// Finds or creates the person of `msg`, merging persons where the rules allow, and applies
/// its traits. Returns the canonical person and any warnings.
pub(crate) fn resolve(
    r: &mut Resolver,
    tx: &Transaction<'_>,
    msg: &Prepared,
) -> Result<(PersonId, Vec<IdentityWarning>)> {
    let at = msg.ts;
    let mut warnings = Vec::new();
    let person = if msg.kind == MessageKind::Alias {
        resolve_alias(r, tx, msg, at, &mut warnings)?
    } else {
        resolve_ids(
            r,
            tx,
            msg.user_id.as_deref(),
            msg.anonymous_id.as_deref(),
            at,
            &mut warnings,
        )?
    };
    r.touch(tx, person, at)?;
    let person_traits = msg.kind != MessageKind::Group && !msg.traits.is_empty();
    if person_traits || !msg.set_once.is_empty() {
        let mut traits = traits_of(tx, person)?;
        let mut changes: Vec<(&str, &serde_json::Value, &str)> = Vec::new();
        if person_traits {
            for (k, v) in &msg.traits {
                if traits.get(k) != Some(v) {
                    changes.push((k, v, "set"));
                    traits.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, v) in &msg.set_once {
            if !traits.contains_key(k) {
                changes.push((k, v, "set_once"));
                traits.insert(k.clone(), v.clone());
            }
        }
        if !changes.is_empty() {
            store_traits(tx, person, &traits, at)?;
            let mut history = tx.prepare_cached(
                "INSERT INTO trait_history (person, at, key, value, op) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (k, v, op) in changes {
                let text = serde_json::to_string(v).expect("json serializes");
                history.execute(params![person as i64, at, k, text, op])?;
            }
        }
    }
    if msg.kind == MessageKind::Group
        && let Some(group) = &msg.group_id
    {
        {
            let text = serde_json::to_string(&msg.traits).expect("json map serializes");
            tx.prepare_cached(
                "INSERT INTO groups (group_id, traits, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (group_id) DO UPDATE SET
                   traits = json_patch(groups.traits, excluded.traits), updated_at = ?3",
            )?
            .execute(params![group, text, at])?;
        }
    }
    Ok((PersonId(person), warnings))
}

fn resolve_ids(
    r: &mut Resolver,
    tx: &Transaction<'_>,
    user: Option<&str>,
    anon: Option<&str>,
    at: i64,
    warnings: &mut Vec<IdentityWarning>,
) -> Result<u64> {
    let by_user = match user {
        Some(u) => r.lookup(tx, IdKind::User, u)?,
        None => None,
    };
    let by_anon = match anon {
        Some(a) => r.lookup(tx, IdKind::Anonymous, a)?,
        None => None,
    };
    Ok(match (user, anon) {
        (None, None) => r.create(tx, false, at)?,
        (Some(u), None) => match by_user {
            Some(p) => p,
            None => {
                let p = r.create(tx, true, at)?;
                r.bind(tx, IdKind::User, u, p)?;
                p
            }
        },
        (None, Some(a)) => match by_anon {
            Some(p) => p,
            None => {
                let p = r.create(tx, false, at)?;
                r.bind(tx, IdKind::Anonymous, a, p)?;
                p
            }
        },
        (Some(u), Some(a)) => match (by_user, by_anon) {
            (Some(k), Some(p)) if k == p => k,
            (Some(k), Some(p)) => {
                if is_identified(tx, p)? {
                    warnings.push(IdentityWarning {
                        code: ALREADY_IDENTIFIED,
                        message: format!(
                            "anonymous id {a:?} belongs to another identified person; not merged into user {u:?}"
                        ),
                    });
                } else {
                    r.merge(tx, p, k, at)?;
                }
                k
            }
            (Some(k), None) => {
                r.bind(tx, IdKind::Anonymous, a, k)?;
                k
            }
            (None, Some(p)) => {
                if is_identified(tx, p)? {
                    warnings.push(IdentityWarning {
                        code: ALREADY_IDENTIFIED,
                        message: format!(
                            "anonymous id {a:?} belongs to another identified person; user {u:?} gets a person of its own"
                        ),
                    });
                    let k = r.create(tx, true, at)?;
                    r.bind(tx, IdKind::User, u, k)?;
                    k
                } else {
                    r.bind(tx, IdKind::User, u, p)?;
                    set_identified(tx, p)?;
                    p
                }
            }
            (None, None) => {
                let k = r.create(tx, true, at)?;
                r.bind(tx, IdKind::User, u, k)?;
                r.bind(tx, IdKind::Anonymous, a, k)?;
                k
            }
        },
    })
}

fn resolve_alias(
    r: &mut Resolver,
    tx: &Transaction<'_>,
    msg: &Prepared,
    at: i64,
    warnings: &mut Vec<IdentityWarning>,
) -> Result<u64> {
    let (Some(user), Some(previous)) = (msg.user_id.as_deref(), msg.previous_id.as_deref()) else {
        // The decoders guarantee both; fall back to ordinary resolution if not.
        return resolve_ids(
            r,
            tx,
            msg.user_id.as_deref(),
            msg.anonymous_id.as_deref(),
            at,
            warnings,
        );
    };
    let target = r.lookup(tx, IdKind::User, user)?;
    let prev = match r.lookup(tx, IdKind::User, previous)? {
        Some(p) => Some(p),
        None => r.lookup(tx, IdKind::Anonymous, previous)?,
    };
    Ok(match (target, prev) {
        (Some(t), Some(p)) if t == p => t,
        (Some(t), Some(p)) => {
            if is_identified(tx, p)? {
                warnings.push(IdentityWarning {
                    code: ALREADY_IDENTIFIED,
                    message: format!(
                        "alias {previous:?} → {user:?}: {previous:?} belongs to another identified person; not merged"
                    ),
                });
            } else {
                r.merge(tx, p, t, at)?;
            }
            t
        }
        (Some(t), None) => {
            r.bind(tx, IdKind::Anonymous, previous, t)?;
            t
        }
        (None, Some(p)) => {
            if is_identified(tx, p)? {
                warnings.push(IdentityWarning {
                    code: ALREADY_IDENTIFIED,
                    message: format!(
                        "alias {previous:?} → {user:?}: {previous:?} is another identified person; {user:?} gets a person of its own"
                    ),
                });
                let t = r.create(tx, true, at)?;
                r.bind(tx, IdKind::User, user, t)?;
                t
            } else {
                r.bind(tx, IdKind::User, user, p)?;
                set_identified(tx, p)?;
                p
            }
        }
        (None, None) => {
            let t = r.create(tx, true, at)?;
            r.bind(tx, IdKind::User, user, t)?;
            r.bind(tx, IdKind::Anonymous, previous, t)?;
            t
        }
    })
}
