//! Integration tests of the embedded store: durability across reopen, dedup, identity
//! resolution, sealing and compaction, checked against naive models.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use lodestar_core::{FixedClock, JsonMap, Message, MessageKind, ProjectId, Timestamp};
use lodestar_store::{AppendBatch, EventStore, Quarantined, Store, StoreConfig};
use proptest::prelude::*;

#[path = "store/privacy.rs"]
mod privacy;

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_path_buf(),
        maintenance_interval_ms: 0,
        max_seal_rows: 50,
        seal_rows: 50,
        compact_fanin: 2,
        ..StoreConfig::default()
    }
}

fn open(dir: &std::path::Path) -> Arc<Store> {
    Store::open(
        config(dir),
        Arc::new(FixedClock::new(Timestamp(1_700_000_000_000))),
    )
    .unwrap()
}

fn msg(id: &str, kind: MessageKind, user: Option<&str>, anon: Option<&str>, ts: i64) -> Message {
    Message {
        message_id: id.to_string(),
        kind,
        event: (kind == MessageKind::Track).then(|| "Order Completed".to_string()),
        user_id: user.map(str::to_string),
        anonymous_id: anon.map(str::to_string),
        previous_id: None,
        group_id: None,
        category: None,
        timestamp: Timestamp(ts),
        original_timestamp: None,
        sent_at: None,
        received_at: Timestamp(ts),
        properties: JsonMap::new(),
        traits: JsonMap::new(),
        set_once: JsonMap::new(),
        context: JsonMap::new(),
        integrations: JsonMap::new(),
        channel: None,
    }
}

fn append(
    store: &Store,
    project: ProjectId,
    messages: Vec<Message>,
) -> lodestar_store::AppendOutcome {
    store
        .append(
            project,
            AppendBatch {
                messages,
                ..Default::default()
            },
        )
        .unwrap()
        .wait_blocking()
        .unwrap()
}

/// message id -> canonical person, from a snapshot.
fn events_by_person(store: &Store, project: ProjectId) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    store
        .for_each_event(project, &mut |person, _, m| {
            assert!(
                out.insert(m.message_id.clone(), person.0).is_none(),
                "{} twice",
                m.message_id
            );
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn appends_survive_reopen_and_dedup_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (info, key) = store.create_project("shop").unwrap();
    let out = append(
        &store,
        info.id,
        vec![msg("m1", MessageKind::Track, Some("u1"), None, 10)],
    );
    assert_eq!((out.stored, out.duplicates), (1, 0));
    let out = append(
        &store,
        info.id,
        vec![
            msg("m1", MessageKind::Track, Some("u1"), None, 10),
            msg("m2", MessageKind::Track, Some("u1"), None, 11),
        ],
    );
    assert_eq!((out.stored, out.duplicates), (1, 1));
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.authenticate(&key).unwrap().id, info.id);
    let out = append(
        &store,
        info.id,
        vec![msg("m2", MessageKind::Track, Some("u1"), None, 11)],
    );
    assert_eq!((out.stored, out.duplicates), (0, 1));
    assert_eq!(events_by_person(&store, info.id).len(), 2);
}

#[test]
fn projects_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, _) = store.create_project("a").unwrap();
    let (b, _) = store.create_project("b").unwrap();
    append(
        &store,
        a.id,
        vec![msg("same-id", MessageKind::Track, Some("u1"), None, 1)],
    );
    let out = append(
        &store,
        b.id,
        vec![msg("same-id", MessageKind::Track, Some("u1"), None, 1)],
    );
    assert_eq!(out.stored, 1, "dedup is per project");
    append(
        &store,
        b.id,
        vec![msg("only-b", MessageKind::Track, Some("u2"), None, 1)],
    );
    assert_eq!(events_by_person(&store, a.id).len(), 1);
    assert_eq!(events_by_person(&store, b.id).len(), 2);
}

#[test]
fn anonymous_history_follows_the_person_through_seal_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (p, _) = store.create_project("shop").unwrap();
    append(
        &store,
        p.id,
        vec![msg("a1", MessageKind::Page, None, Some("anon-1"), 1)],
    );
    store.seal_now(p.id).unwrap();
    append(
        &store,
        p.id,
        vec![msg("u0", MessageKind::Track, Some("u1"), None, 2)],
    );
    store.seal_now(p.id).unwrap();
    // Both ids in one identify: the anonymous person is merged into the known one.
    let mut identify = msg("i1", MessageKind::Identify, Some("u1"), Some("anon-1"), 3);
    identify.traits.insert("plan".into(), "pro".into());
    append(&store, p.id, vec![identify]);
    let events = events_by_person(&store, p.id);
    assert_eq!(events["a1"], events["u0"]);
    assert_eq!(events["a1"], events["i1"]);
    store.seal_now(p.id).unwrap();
    store.compact_now(p.id, true).unwrap();
    assert_eq!(store.manifest(p.id).unwrap().parts.len(), 1);
    let after = events_by_person(&store, p.id);
    assert_eq!(after, events);
    let snap = store.snapshot(p.id).unwrap();
    assert_eq!(
        snap.parts()[0].persons().len(),
        1,
        "compaction rewrote the merged person's rows"
    );
    let mut profiles = Vec::new();
    store
        .for_each_profile(p.id, &mut |pr| {
            profiles.push(pr);
            Ok(())
        })
        .unwrap();
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].user_ids, vec!["u1"]);
    assert_eq!(profiles[0].anonymous_ids, vec!["anon-1"]);
    assert_eq!(profiles[0].traits["plan"], "pro");
    assert_eq!(profiles[0].created_at, Timestamp(1));
}

#[test]
fn two_identified_persons_are_not_merged_silently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (p, _) = store.create_project("shop").unwrap();
    append(
        &store,
        p.id,
        vec![msg(
            "1",
            MessageKind::Identify,
            Some("alice"),
            Some("device"),
            1,
        )],
    );
    append(
        &store,
        p.id,
        vec![msg("2", MessageKind::Identify, Some("bob"), None, 2)],
    );
    let out = append(
        &store,
        p.id,
        vec![msg("3", MessageKind::Track, Some("bob"), Some("device"), 3)],
    );
    assert_eq!(out.warnings, 1);
    let events = events_by_person(&store, p.id);
    assert_ne!(events["1"], events["2"]);
    assert_eq!(
        events["3"], events["2"],
        "the event goes to the user id's person"
    );
    let warnings = store.warnings(p.id, 10, None).unwrap();
    assert_eq!(warnings[0].code, "cannot_merge_already_identified");
}

#[test]
fn alias_merges_previous_id_and_traits_follow_set_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (p, _) = store.create_project("shop").unwrap();
    let mut first = msg("1", MessageKind::Track, None, Some("anon-9"), 1);
    first.set_once.insert("first_channel".into(), "ads".into());
    first.traits.insert("city".into(), "上海".into());
    let mut second = msg("2", MessageKind::Identify, Some("u9"), None, 2);
    second
        .set_once
        .insert("first_channel".into(), "email".into());
    second.traits.insert("city".into(), "北京".into());
    let mut alias = msg("3", MessageKind::Alias, Some("u9"), None, 3);
    alias.previous_id = Some("anon-9".into());
    append(&store, p.id, vec![first, second, alias]);
    let events = events_by_person(&store, p.id);
    assert_eq!(events["1"], events["2"]);
    let mut profiles = Vec::new();
    store
        .for_each_profile(p.id, &mut |pr| {
            profiles.push(pr);
            Ok(())
        })
        .unwrap();
    assert_eq!(profiles.len(), 1);
    // The target's traits win on conflict; set_once kept the first value on each person.
    assert_eq!(profiles[0].traits["city"], "北京");
    assert_eq!(profiles[0].traits["first_channel"], "email");
}

#[test]
fn quarantine_is_durable_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (p, _) = store.create_project("shop").unwrap();
    let batch = AppendBatch {
        messages: vec![msg("ok", MessageKind::Track, Some("u1"), None, 1)],
        rejected: vec![Quarantined {
            code: "missing_id".into(),
            message: "a message needs userId or anonymousId".into(),
            field: "batch[1]".into(),
            raw: "{\"type\":\"track\"}".into(),
        }],
        warnings: vec![],
    };
    let out = store.append(p.id, batch).unwrap().wait_blocking().unwrap();
    assert_eq!((out.stored, out.rejected), (1, 1));
    drop(store);
    let store = open(dir.path());
    let w = store.warnings(p.id, 10, None).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(
        (
            w[0].severity.as_str(),
            w[0].code.as_str(),
            w[0].field.as_str()
        ),
        ("rejected", "missing_id", "batch[1]")
    );
}

/// A naive model of the identity rules, to compare the store against.
#[derive(Default)]
struct NaiveIdentity {
    next: u64,
    user: HashMap<String, u64>,
    anon: HashMap<String, u64>,
    parent: HashMap<u64, u64>,
    identified: HashMap<u64, bool>,
}

impl NaiveIdentity {
    fn root(&self, mut p: u64) -> u64 {
        while let Some(&q) = self.parent.get(&p) {
            p = q;
        }
        p
    }
    fn new_person(&mut self, identified: bool) -> u64 {
        self.next += 1;
        self.identified.insert(self.next, identified);
        self.next
    }
    fn apply(&mut self, user: Option<&str>, anon: Option<&str>) -> u64 {
        let pu = user.and_then(|u| self.user.get(u)).map(|&p| self.root(p));
        let pa = anon.and_then(|a| self.anon.get(a)).map(|&p| self.root(p));
        match (user, anon) {
            (Some(u), None) => match pu {
                Some(p) => p,
                None => {
                    let p = self.new_person(true);
                    self.user.insert(u.into(), p);
                    p
                }
            },
            (None, Some(a)) => match pa {
                Some(p) => p,
                None => {
                    let p = self.new_person(false);
                    self.anon.insert(a.into(), p);
                    p
                }
            },
            (Some(u), Some(a)) => match (pu, pa) {
                (Some(k), Some(p)) if k == p => k,
                (Some(k), Some(p)) => {
                    if !self.identified[&p] {
                        self.parent.insert(p, k);
                    }
                    k
                }
                (Some(k), None) => {
                    self.anon.insert(a.into(), k);
                    k
                }
                (None, Some(p)) => {
                    if self.identified[&p] {
                        let k = self.new_person(true);
                        self.user.insert(u.into(), k);
                        k
                    } else {
                        self.identified.insert(p, true);
                        self.user.insert(u.into(), p);
                        p
                    }
                }
                (None, None) => {
                    let k = self.new_person(true);
                    self.user.insert(u.into(), k);
                    self.anon.insert(a.into(), k);
                    k
                }
            },
            (None, None) => unreachable!("generator always sets an id"),
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Send {
        user: Option<u8>,
        anon: Option<u8>,
        dup_of: Option<usize>,
    },
    Seal,
    Compact,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (proptest::option::of(0u8..6), proptest::option::of(0u8..8), proptest::option::weighted(0.1, 0usize..64))
            .prop_filter("an id", |(u, a, _)| u.is_some() || a.is_some())
            .prop_map(|(user, anon, dup_of)| Step::Send { user, anon, dup_of }),
        1 => Just(Step::Seal),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Whatever the interleaving of appends, duplicates, seals, compactions and restarts:
    /// every distinct message id is stored exactly once, and two events share a person
    /// exactly when the naive identity model says they do.
    #[test]
    fn store_matches_naive_model(steps in proptest::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let (p, _) = store.create_project("prop").unwrap();
        let mut naive = NaiveIdentity::default();
        let mut expected: BTreeMap<String, u64> = BTreeMap::new(); // id -> naive person at send
        let mut sent: Vec<String> = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Send { user, anon, dup_of } => {
                    let u = user.map(|u| format!("user{u}"));
                    let a = anon.map(|a| format!("anon{a}"));
                    let id = match dup_of.and_then(|d| sent.get(d % sent.len().max(1))) {
                        Some(prev) => prev.clone(),
                        None => format!("m{i}"),
                    };
                    let m = msg(&id, MessageKind::Track, u.as_deref(), a.as_deref(), i as i64);
                    let out = append(&store, p.id, vec![m]);
                    if expected.contains_key(&id) {
                        prop_assert_eq!(out.duplicates, 1);
                    } else {
                        prop_assert_eq!(out.stored, 1);
                        let person = naive.apply(u.as_deref(), a.as_deref());
                        expected.insert(id.clone(), person);
                        sent.push(id);
                    }
                }
                Step::Seal => { store.seal_now(p.id).unwrap(); }
                Step::Compact => { store.compact_now(p.id, false).unwrap(); }
                Step::Reopen => { drop(store); store = open(dir.path()); }
            }
        }
        let actual = events_by_person(&store, p.id);
        prop_assert_eq!(actual.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
        // Same partition of events into persons.
        let mut pairs: HashMap<u64, u64> = HashMap::new();
        for (id, naive_person) in &expected {
            let root = naive.root(*naive_person);
            let stored = actual[id];
            let prev = pairs.insert(root, stored);
            prop_assert!(prev.is_none() || prev == Some(stored), "naive person {} split", root);
        }
        let distinct: std::collections::HashSet<u64> = pairs.values().copied().collect();
        prop_assert_eq!(distinct.len(), pairs.len(), "two naive persons fused");
    }
}

#[test]
fn dedup_window_expires_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(Timestamp(1_700_000_000_000)));
    let cfg = StoreConfig {
        dedup_window_ms: 1_000,
        ..config(dir.path())
    };
    let store = Store::open(cfg.clone(), clock.clone()).unwrap();
    let (p, _) = store.create_project("shop").unwrap();
    assert_eq!(
        append(
            &store,
            p.id,
            vec![msg("m", MessageKind::Track, Some("u"), None, 1)]
        )
        .stored,
        1
    );
    // Sealed: the entry moves from the tail log to a dedup file.
    assert_eq!(store.seal_now(p.id).unwrap(), 1);
    drop(store);
    // Within the window, after a restart: still a duplicate.
    clock.advance(500);
    let store = Store::open(cfg.clone(), clock.clone()).unwrap();
    assert_eq!(
        append(
            &store,
            p.id,
            vec![msg("m", MessageKind::Track, Some("u"), None, 1)]
        )
        .duplicates,
        1
    );
    drop(store);
    // Past the window (and the slack of at most an eighth of it, at least a second, that
    // expiry allows): the id is forgotten.
    clock.advance(3_000);
    let store = Store::open(cfg, clock.clone()).unwrap();
    assert_eq!(
        append(
            &store,
            p.id,
            vec![msg("m", MessageKind::Track, Some("u"), None, 2)]
        )
        .stored,
        1
    );
}

/// The version 1 project schema, which kept unsealed events and the dedup window in SQLite.
const V1_SCHEMA: &str = r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE tail (seq INTEGER PRIMARY KEY, person INTEGER NOT NULL, ts INTEGER NOT NULL,
    name INTEGER NOT NULL, kind INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE dedup_log (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, seen_at INTEGER NOT NULL);
CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE persons (id INTEGER PRIMARY KEY, merged_into INTEGER, identified INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, traits TEXT NOT NULL DEFAULT '{}');
CREATE INDEX persons_merged ON persons (merged_into) WHERE merged_into IS NOT NULL;
CREATE TABLE identities (kind INTEGER NOT NULL, value TEXT NOT NULL, person INTEGER NOT NULL,
    PRIMARY KEY (kind, value)) WITHOUT ROWID;
CREATE INDEX identities_person ON identities (person);
CREATE TABLE groups (group_id TEXT PRIMARY KEY, traits TEXT NOT NULL DEFAULT '{}', updated_at INTEGER NOT NULL);
CREATE TABLE warnings (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, severity TEXT NOT NULL,
    code TEXT NOT NULL, message TEXT NOT NULL, field TEXT NOT NULL, raw TEXT NOT NULL);
"#;

#[test]
fn a_version_1_project_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp(1_700_000_000_000);
    let (info, _) = Store::create_project_in(dir.path(), "shop", now).unwrap();
    let pdir = dir.path().join("projects").join(info.id.0.to_string());
    std::fs::create_dir_all(&pdir).unwrap();
    {
        let conn = rusqlite::Connection::open(pdir.join("events.db")).unwrap();
        conn.execute_batch(V1_SCHEMA).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO persons (id, identified, created_at, updated_at) VALUES (1, 1, 5, 5)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO identities (kind, value, person) VALUES (0, 'u1', 1)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO names (id, name) VALUES (1, 'Order Completed')",
            [],
        )
        .unwrap();
        for seq in 1..=3i64 {
            let body = serde_json::to_vec(&msg(
                &format!("t{seq}"),
                MessageKind::Track,
                Some("u1"),
                None,
                seq,
            ))
            .unwrap();
            conn.execute(
                "INSERT INTO tail (seq, person, ts, name, kind, body) VALUES (?1, 1, ?1, 1, 0, ?2)",
                rusqlite::params![seq, body],
            )
            .unwrap();
        }
        // A message sealed long ago whose id is still within the dedup window.
        let old = xxhash_rust::xxh3::xxh3_128(b"sealed-earlier").to_le_bytes();
        conn.execute(
            "INSERT INTO dedup_log (hash, seen_at) VALUES (?1, ?2)",
            rusqlite::params![&old[..], now.0 - 1000],
        )
        .unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('last_seq', 3)", [])
            .unwrap();
    }
    let store = open(dir.path());
    let events = events_by_person(&store, info.id);
    assert_eq!(
        events.keys().cloned().collect::<Vec<_>>(),
        vec!["t1", "t2", "t3"]
    );
    let out = append(
        &store,
        info.id,
        vec![
            msg("t2", MessageKind::Track, Some("u1"), None, 2),
            msg("sealed-earlier", MessageKind::Track, Some("u1"), None, 2),
            msg("t4", MessageKind::Track, Some("u1"), None, 4),
        ],
    );
    assert_eq!((out.stored, out.duplicates), (1, 2));
    let mut seqs = Vec::new();
    store
        .for_each_event(info.id, &mut |person, seq, _| {
            assert_eq!(person.0, 1, "the migrated person keeps its events");
            seqs.push(seq);
            Ok(())
        })
        .unwrap();
    seqs.sort();
    assert_eq!(seqs, vec![1, 2, 3, 4], "sequence numbers continue");
    drop(store);
    let conn = rusqlite::Connection::open(pdir.join("events.db")).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, 4,
        "version 1 → 2 (the tail log) → 3 (the privacy tables) → 4 (the trait history)"
    );
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('tail', 'dedup_log')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
    drop(conn);
    let store = open(dir.path());
    assert_eq!(events_by_person(&store, info.id).len(), 4);
}

/// Drops the `value` section from a part's footer, making it a part of the earlier format.
fn strip_value_section(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    let footer_len = u64::from_le_bytes(bytes[n - 24..n - 16].try_into().unwrap()) as usize;
    let footer_start = n - 24 - footer_len;
    let mut footer: serde_json::Value =
        serde_json::from_slice(&bytes[footer_start..n - 24]).unwrap();
    footer["sections"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["name"] != "value");
    let footer = serde_json::to_vec(&footer).unwrap();
    let mut out = bytes[..footer_start].to_vec();
    out.extend_from_slice(&footer);
    out.extend_from_slice(&(footer.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&footer).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(b"LSPEND01");
    std::fs::write(path, out).unwrap();
}

#[test]
fn parts_of_the_format_before_values_are_read_and_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let want: Vec<u64>;
    let project;
    {
        let store = open(dir.path());
        let (p, _) = store.create_project("shop").unwrap();
        project = p.id;
        let messages: Vec<Message> = (0..120)
            .map(|i| {
                let mut m = msg(
                    &format!("m{i}"),
                    MessageKind::Track,
                    Some(&format!("u{}", i % 7)),
                    None,
                    1_700_000_000_000 + i * 1000,
                );
                if i % 3 == 0 {
                    m.properties
                        .insert("revenue".into(), serde_json::json!(i as f64 / 4.0));
                }
                m
            })
            .collect();
        append(&store, p.id, messages);
        store.seal_now(p.id).unwrap();
        let snapshot = store.snapshot(p.id).unwrap();
        want = snapshot
            .parts()
            .iter()
            .flat_map(|part| part.values().iter().map(|v| v.to_bits()))
            .collect();
        assert!(want.iter().any(|v| !f64::from_bits(*v).is_nan()));
        store.shutdown();
    }
    let parts = dir
        .path()
        .join("projects")
        .join(project.0.to_string())
        .join("parts");
    for entry in std::fs::read_dir(&parts).unwrap() {
        strip_value_section(&entry.unwrap().path());
    }
    let store = open(dir.path());
    let old = store.snapshot(project).unwrap();
    assert!(old.parts().iter().all(|p| !p.has_values()));
    let computed: Vec<u64> = old
        .parts()
        .iter()
        .flat_map(|part| part.values().iter().map(|v| v.to_bits()))
        .collect();
    assert_eq!(computed, want, "values computed from the bodies");
    assert!(store.upgrade_parts_now(project).unwrap() > 0);
    assert_eq!(store.upgrade_parts_now(project).unwrap(), 0);
    let new = store.snapshot(project).unwrap();
    assert!(new.parts().iter().all(|p| p.has_values()));
    let stored: Vec<u64> = new
        .parts()
        .iter()
        .flat_map(|part| part.values().iter().map(|v| v.to_bits()))
        .collect();
    assert_eq!(stored, want);
    assert_eq!(new.events(), 120);
}

#[test]
fn a_person_is_found_by_any_of_their_ids_after_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (p, _) = store.create_project("shop").unwrap();
    let t = 1_700_000_000_000;
    append(
        &store,
        p.id,
        vec![
            msg("a", MessageKind::Track, None, Some("anon-1"), t),
            msg("b", MessageKind::Track, Some("u1"), None, t + 1),
        ],
    );
    let before = store
        .find_profile(p.id, None, Some("anon-1"), None)
        .unwrap()
        .unwrap();
    let user = store
        .find_profile(p.id, Some("u1"), None, None)
        .unwrap()
        .unwrap();
    assert_ne!(before.person, user.person);
    // One message with both ids merges the anonymous visitor into the user.
    append(
        &store,
        p.id,
        vec![msg(
            "c",
            MessageKind::Identify,
            Some("u1"),
            Some("anon-1"),
            t + 2,
        )],
    );
    let by_anon = store
        .find_profile(p.id, None, Some("anon-1"), None)
        .unwrap()
        .unwrap();
    let by_user = store
        .find_profile(p.id, Some("u1"), None, None)
        .unwrap()
        .unwrap();
    let by_old_id = store
        .find_profile(p.id, None, None, Some(before.person.0))
        .unwrap()
        .unwrap();
    assert_eq!(by_anon, by_user);
    assert_eq!(by_old_id, by_user);
    assert_eq!(by_user.user_ids, vec!["u1".to_string()]);
    assert!(by_user.anonymous_ids.contains(&"anon-1".to_string()));
    assert!(
        store
            .find_profile(p.id, Some("u2"), None, None)
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_profile(p.id, None, None, Some(999))
            .unwrap()
            .is_none()
    );
}
