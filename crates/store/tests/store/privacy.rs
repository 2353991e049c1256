//! Deletion and suppression of a person on a real store: gone from every read at once, from
//! every file once the job is done, their ids suppressed, everyone else's events intact,
//! across restarts and interrupted jobs.

use std::collections::BTreeMap;
use std::sync::Arc;

use lodestar_core::{FixedClock, MessageKind, ProjectId, Timestamp};
use lodestar_store::{
    AppendBatch, DeletionRequest, DeletionStatus, EventStore, IdKind, ModelFitRow, PersonRef,
    PersonScore, Quarantined, Store, StoreConfig, StoreError,
};

use super::{append, config, msg, open};

const T0: i64 = 1_700_000_000_000;

/// Asks for the deletion of `person`; the job's id.
fn delete(store: &Store, project: ProjectId, person: PersonRef, suppress: bool) -> i64 {
    store
        .request_deletion(
            project,
            DeletionRequest {
                person,
                actor: "test".into(),
                suppress,
            },
            Timestamp(T0),
        )
        .unwrap()
}

/// The project database, opened behind the store's back (the store is closed).
fn events_db(dir: &std::path::Path, project: ProjectId) -> rusqlite::Connection {
    let path = dir
        .join("projects")
        .join(project.0.to_string())
        .join("events.db");
    rusqlite::Connection::open(path).unwrap()
}

/// Events per message-id prefix (the sender), as the store returns them.
fn events_by_sender(store: &Store, project: ProjectId) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    store
        .for_each_event(project, &mut |_, _, m| {
            let sender = m.message_id.split('-').next().unwrap().to_string();
            *counts.entry(sender).or_insert(0) += 1;
            Ok(())
        })
        .unwrap();
    counts
}

fn person_of(store: &Store, project: ProjectId, user: &str) -> u64 {
    store
        .find_profile(project, Some(user), None, None)
        .unwrap()
        .unwrap()
        .person
        .0
}

/// Every file of the project folder whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Alice: an anonymous history (`a-old`) merged into her user id, events in several parts and
/// in the tail, a rejected item naming her; Bob and Carol: events around hers.
fn shop(store: &Store, project: ProjectId) {
    let mut n = 0;
    let mut next = |sender: &str| {
        n += 1;
        format!("{sender}-{n}")
    };
    for round in 0..6 {
        let ts = T0 + round * 3_600_000;
        let mut batch = Vec::new();
        for _ in 0..5 {
            batch.push(msg(&next("bob"), MessageKind::Track, Some("bob"), None, ts));
            batch.push(msg(
                &next("carol"),
                MessageKind::Track,
                None,
                Some("c-dev"),
                ts,
            ));
            if round < 2 {
                batch.push(msg(
                    &next("alice"),
                    MessageKind::Track,
                    None,
                    Some("a-old"),
                    ts,
                ));
            } else {
                batch.push(msg(
                    &next("alice"),
                    MessageKind::Track,
                    Some("alice"),
                    None,
                    ts,
                ));
            }
        }
        if round == 2 {
            // Ties the anonymous history to Alice: a-old's person is merged into hers.
            batch.push(msg(
                &next("alice"),
                MessageKind::Identify,
                Some("alice"),
                Some("a-old"),
                ts,
            ));
        }
        append(store, project, batch);
        if round == 3 {
            store.seal_now(project).unwrap();
            store.compact_now(project, true).unwrap();
        }
        if round == 4 {
            store.seal_now(project).unwrap();
        }
    }
    store
        .append(
            project,
            AppendBatch {
                rejected: vec![Quarantined {
                    code: "invalid_timestamp".into(),
                    message: "bad".into(),
                    field: "batch[0].timestamp".into(),
                    raw: r#"{"userId":"alice","timestamp":"yesterday"}"#.into(),
                }],
                ..Default::default()
            },
        )
        .unwrap()
        .wait_blocking()
        .unwrap();
}

/// A fresh store with [`shop`] in project `shop`.
fn open_shop() -> (tempfile::TempDir, Arc<Store>, ProjectId) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (info, _) = store.create_project("shop").unwrap();
    shop(&store, info.id);
    (dir, store, info.id)
}

fn derived_rows(store: &Store, project: ProjectId, alice: u64, bob: u64) -> i64 {
    store
        .record_stage_changes(
            project,
            "2023-11-14",
            Timestamp(T0),
            &[
                (alice, None, "onboarding".into()),
                (bob, None, "onboarding".into()),
            ],
        )
        .unwrap();
    let score = |person| PersonScore {
        person,
        clv: Some(10.0),
        ..PersonScore::default()
    };
    let fit = store
        .record_model_fit(
            project,
            &ModelFitRow {
                id: 0,
                created_at: Timestamp(T0),
                model: "bg_nbd".into(),
                window_from: "2023-01-01".into(),
                window_to: "2023-11-01".into(),
                spec: serde_json::json!({}),
                summary: serde_json::json!({}),
            },
            &[score(alice), score(bob)],
        )
        .unwrap();
    let seg = store
        .create_segment(project, "all", true, &serde_json::json!({}), Timestamp(T0))
        .unwrap();
    let mut members = vec![alice, bob];
    members.sort();
    store
        .update_segment_members(project, seg, &members, Timestamp(T0))
        .unwrap();
    fit
}

#[test]
fn a_deleted_person_leaves_every_read_at_once_and_every_file_after_the_job() {
    let (dir, store, p) = open_shop();
    let before = events_by_sender(&store, p);
    assert_eq!(before["alice"], 31);
    let (alice, bob) = (person_of(&store, p, "alice"), person_of(&store, p, "bob"));
    let fit = derived_rows(&store, p, alice, bob);
    let total = store.snapshot(p).unwrap().events();
    assert!(
        store.manifest(p).unwrap().parts.len() >= 2,
        "rows in several parts"
    );
    assert!(
        !store.snapshot(p).unwrap().tail().is_empty(),
        "and in the tail"
    );

    let id = store
        .request_deletion(
            p,
            DeletionRequest {
                person: PersonRef::AnonymousId("a-old".into()),
                actor: "dpo@example.com".into(),
                suppress: true,
            },
            Timestamp(T0 + 1),
        )
        .unwrap();
    let job = store.deletion(p, id).unwrap();
    assert_eq!(job.status, DeletionStatus::Pending);
    assert_eq!((job.persons, job.identities), (2, 2));
    assert_eq!(job.warnings, 1, "the rejected item naming her");
    assert_eq!(job.derived, 4, "stage change, score, membership, entry");

    // At once: out of snapshots, lookups and derived data; everyone else intact.
    let snap = store.snapshot(p).unwrap();
    assert_eq!(snap.events(), total - 31);
    assert!(snap.is_deleted(alice));
    let mut after = events_by_sender(&store, p);
    assert_eq!(after.remove("alice"), None);
    let mut expected = before.clone();
    expected.remove("alice");
    assert_eq!(after, expected);
    for (user, anon, person) in [
        (Some("alice"), None, None),
        (None, Some("a-old"), None),
        (None, None, Some(alice)),
    ] {
        assert_eq!(store.find_profile(p, user, anon, person).unwrap(), None);
    }
    let mut profiles = 0;
    store
        .for_each_profile(p, &mut |pr| {
            assert!(!pr.user_ids.contains(&"alice".to_string()));
            profiles += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(profiles, 2);
    assert!(store.person_scores(p, alice).unwrap().is_empty());
    assert_eq!(store.person_scores(p, bob).unwrap()[0].fit, fit);
    assert_eq!(store.segment_members(p, 1, 0, 10).unwrap(), vec![bob]);
    assert!(
        store
            .stage_changes(p, 0, 10)
            .unwrap()
            .iter()
            .all(|c| c.person != alice)
    );
    assert!(store.warnings(p, 10, None).unwrap().is_empty());
    // A derived job that read the store before the deletion cannot bring her back.
    store
        .update_segment_members(p, 1, &[bob.min(alice), bob.max(alice)], Timestamp(T0 + 2))
        .unwrap();
    assert_eq!(store.segment_members(p, 1, 0, 10).unwrap(), vec![bob]);

    // Suppressed: her ids are acknowledged and dropped; others are stored.
    let mut alias = msg("alice-x4", MessageKind::Alias, Some("alice2"), None, T0 + 5);
    alias.previous_id = Some("alice".into());
    let o = append(
        &store,
        p,
        vec![
            msg("alice-x1", MessageKind::Track, Some("alice"), None, T0 + 5),
            msg("alice-x2", MessageKind::Track, None, Some("a-old"), T0 + 5),
            msg(
                "alice-x3",
                MessageKind::Identify,
                Some("new"),
                Some("a-old"),
                T0 + 5,
            ),
            alias,
            msg("bob-x5", MessageKind::Track, Some("bob"), None, T0 + 5),
        ],
    );
    assert_eq!((o.stored, o.suppressed), (1, 4));
    assert_eq!(
        store
            .metrics()
            .events_suppressed
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    assert_eq!(
        store.find_profile(p, Some("new"), None, None).unwrap(),
        None
    );

    // The job: no live file holds her rows any more.
    assert_eq!(store.run_deletions_now(p).unwrap(), 1);
    let job = store.deletion(p, id).unwrap();
    assert_eq!(job.status, DeletionStatus::Done, "{job:?}");
    assert_eq!(job.events, Some(31));
    assert!(job.finished_at.is_some());
    let snap = store.snapshot(p).unwrap();
    assert!(snap.deleted_persons().is_empty(), "nothing left to hide");
    assert_eq!(snap.events(), total - 31 + 1);
    for part in snap.parts() {
        assert!(!part.persons().contains(&alice));
        for b in 0..part.blocks() {
            for body in part.block_bodies(b).unwrap() {
                let text = String::from_utf8(body).unwrap();
                assert!(!text.contains("alice") && !text.contains("a-old"), "{text}");
            }
        }
    }
    let project_dir = dir.path().join("projects").join(p.0.to_string());
    for needle in [&b"\"alice\""[..], b"a-old"] {
        assert_eq!(
            files_containing(&project_dir, needle),
            Vec::<String>::new(),
            "{}",
            String::from_utf8_lossy(needle)
        );
    }
    let mut after = events_by_sender(&store, p);
    *expected.get_mut("bob").unwrap() += 1;
    assert_eq!(after.remove("alice"), None);
    assert_eq!(after, expected);

    // The audit trail: who, what, counts and hashes; never an id itself.
    let audit = store.audit(p, 10, None).unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["deletion_done", "deletion_requested", "suppressed"]
    );
    assert_eq!(audit[1].actor, "dpo@example.com");
    assert_eq!(audit[0].detail["events"], 31);
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains("alice") && !text.contains("a-old"), "{text}");

    // A restart keeps all of it; her person ids are not handed out again.
    store.shutdown();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.deletion(p, id).unwrap().status, DeletionStatus::Done);
    let o = append(
        &store,
        p,
        vec![
            msg("alice-y1", MessageKind::Track, Some("alice"), None, T0 + 9),
            msg("dave-y2", MessageKind::Track, Some("dave"), None, T0 + 9),
        ],
    );
    assert_eq!((o.stored, o.suppressed), (1, 1));
    assert!(person_of(&store, p, "dave") > alice.max(bob));
    assert_eq!(events_by_sender(&store, p).get("alice"), None);
}

#[test]
fn without_suppression_the_ids_come_back_as_a_new_person_and_unsuppress_works() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (info, _) = store.create_project("shop").unwrap();
    let p = info.id;
    append(
        &store,
        p,
        vec![
            msg("u-1", MessageKind::Track, Some("u"), None, T0),
            msg("v-1", MessageKind::Track, Some("v"), None, T0),
        ],
    );
    let u = person_of(&store, p, "u");
    let v = person_of(&store, p, "v");
    assert!(v > u, "v is the highest person");
    delete(&store, p, PersonRef::Person(v), false);
    let again = DeletionRequest {
        person: PersonRef::UserId("v".into()),
        actor: "test".into(),
        suppress: true,
    };
    assert!(matches!(
        store.request_deletion(p, again, Timestamp(T0)),
        Err(StoreError::UnknownPerson)
    ));
    let o = append(
        &store,
        p,
        vec![msg("v-2", MessageKind::Track, Some("v"), None, T0)],
    );
    assert_eq!((o.stored, o.suppressed), (1, 0));
    assert!(
        person_of(&store, p, "v") > v,
        "a new person, not the deleted id again"
    );
    store.run_deletions_now(p).unwrap();
    assert_eq!(events_by_sender(&store, p)["v"], 1, "only the new event");

    delete(&store, p, PersonRef::UserId("u".into()), true);
    let o = append(
        &store,
        p,
        vec![msg("u-2", MessageKind::Track, Some("u"), None, T0)],
    );
    assert_eq!(o.suppressed, 1);
    assert!(
        store
            .unsuppress(p, IdKind::User, "u", "test", Timestamp(T0))
            .unwrap()
    );
    assert!(
        !store
            .unsuppress(p, IdKind::User, "u", "test", Timestamp(T0))
            .unwrap()
    );
    let o = append(
        &store,
        p,
        vec![msg("u-3", MessageKind::Track, Some("u"), None, T0)],
    );
    assert_eq!((o.stored, o.suppressed), (1, 0));
    assert_eq!(store.audit(p, 10, None).unwrap()[0].action, "unsuppressed");
}

#[test]
fn an_interrupted_job_resumes_on_open_and_the_person_stays_hidden_meanwhile() {
    let (dir, store, p) = open_shop();
    let before = events_by_sender(&store, p);
    let id = delete(&store, p, PersonRef::UserId("alice".into()), true);
    // The process dies with the job under way.
    store.shutdown();
    drop(store);
    events_db(dir.path(), p)
        .execute("UPDATE deletions SET status = 'running'", [])
        .unwrap();
    let store = open(dir.path());
    let job = store.deletion(p, id).unwrap();
    assert_eq!(
        job.status,
        DeletionStatus::Pending,
        "put back to pending on open"
    );
    assert!(!events_by_sender(&store, p).contains_key("alice"));
    // The maintenance thread picks it up.
    store.shutdown();
    drop(store);
    let store = Store::open(
        StoreConfig {
            maintenance_interval_ms: 20,
            ..config(dir.path())
        },
        Arc::new(FixedClock::new(Timestamp(T0))),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.deletion(p, id).unwrap().status != DeletionStatus::Done {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut expected = before;
    expected.remove("alice");
    assert_eq!(events_by_sender(&store, p), expected);
    assert_eq!(store.deletion(p, id).unwrap().events, Some(31));
}

#[test]
fn a_version_2_database_gets_the_privacy_tables_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (info, _) = store.create_project("shop").unwrap();
    let p = info.id;
    append(
        &store,
        p,
        vec![msg("u-1", MessageKind::Track, Some("u"), None, T0)],
    );
    store.shutdown();
    drop(store);
    events_db(dir.path(), p)
        .execute_batch(
            "DROP TABLE deletions; DROP TABLE deleted_persons; DROP TABLE suppressions;
             DROP TABLE audit; DROP TABLE trait_history; PRAGMA user_version = 2;",
        )
        .unwrap();
    let store = open(dir.path());
    delete(&store, p, PersonRef::UserId("u".into()), true);
    assert_eq!(store.run_deletions_now(p).unwrap(), 1);
    assert!(events_by_sender(&store, p).is_empty());
    let version: i64 = events_db(dir.path(), p)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4, "2 → 3 (privacy) → 4 (trait history)");
}

#[test]
fn a_version_3_database_gets_the_trait_history_on_open_and_deletion_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (info, _) = store.create_project("shop").unwrap();
    let p = info.id;
    append(
        &store,
        p,
        vec![msg("u-1", MessageKind::Track, Some("u"), None, T0)],
    );
    store.shutdown();
    drop(store);
    events_db(dir.path(), p)
        .execute_batch("DROP TABLE trait_history; PRAGMA user_version = 3;")
        .unwrap();
    let store = open(dir.path());
    let mut m = msg("u-2", MessageKind::Identify, Some("u"), None, T0 + 1);
    m.traits.insert("plan".into(), serde_json::json!("pro"));
    append(&store, p, vec![m]);
    let person = person_of(&store, p, "u");
    let history = store.trait_history(p, &[person], 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].key.as_str(), history[0].op.as_str()),
        ("plan", "set")
    );
    delete(&store, p, PersonRef::UserId("u".into()), true);
    assert!(store.trait_history(p, &[person], 10).unwrap().is_empty());
}
