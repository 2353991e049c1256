//! One project's store: its writer thread, its live parts, sealing and compaction.
//!
//! Sealing moves the oldest closed tail segments into a new part:
//! 1. read their records (all with `seq > sealed_seq`), in seq order;
//! 2. write them, sorted by (canonical person, ts, seq), to a part file; fsync; rename;
//!    fsync the parts folder; write their dedup entries to a dedup file the same way;
//! 3. write the manifest naming the part, with `sealed_seq` = the last seq taken (atomic);
//! 4. delete the sealed segments.
//!
//! A crash after 2 leaves an orphan part and dedup file (both deleted on open: the
//! segments still hold the rows); after 3, segments wholly `<= sealed_seq`, which readers
//! skip and the next open deletes. Compaction merges parts into one and swaps them in the
//! manifest the same way; the inputs are deleted only after the new manifest is durable.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use lodestar_core::{Clock, JsonMap, PersonId, Timestamp};

use crate::catalog::ProjectInfo;
use crate::config::StoreConfig;
use crate::db;
use crate::dedup::{self, DedupIndex, files::DedupFile};
use crate::error::{Result, StoreError};
use crate::manifest::{Manifest, PartEntry, part_file_name, parts_dir, sync_dir};
use crate::metrics::StoreMetrics;
use crate::part::{Part, PartRow, PartWriter};
use crate::privacy;
use crate::read::{Snapshot, TailRows, rows_of};
use crate::tail::{self, Appender, Tail};
use crate::writer::{
    AppendBatch, AppendOutcome, AppendReply, Command, PreparedBatch, PrivacyDone, PrivacyOp, Writer,
};

/// A person's profile as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Profile {
    /// The canonical person id.
    pub person: PersonId,
    /// Whether a user id is known.
    pub identified: bool,
    /// Known user ids.
    pub user_ids: Vec<String>,
    /// Known anonymous ids (including those of merged persons).
    pub anonymous_ids: Vec<String>,
    /// Traits.
    pub traits: JsonMap,
    /// Time of the person's earliest event.
    pub created_at: Timestamp,
    /// Last time traits or identities changed.
    pub updated_at: Timestamp,
}

/// One change of a person's traits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TraitChange {
    /// Its id (ascending with time of arrival).
    pub id: i64,
    /// The person it was recorded under (a merged person keeps their own).
    pub person: u64,
    /// The event time of the message that made it.
    pub at: Timestamp,
    /// The trait.
    pub key: String,
    /// Its new value.
    pub value: serde_json::Value,
    /// `set` or `set_once`.
    pub op: String,
}

/// One row of the ingestion warnings list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WarningRow {
    /// Its id (ascending with time).
    pub id: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// `rejected` (the item is in the quarantine, not stored as an event) or `warning`.
    pub severity: String,
    /// Stable code.
    pub code: String,
    /// Reason.
    pub message: String,
    /// Where.
    pub field: String,
    /// The item as received.
    pub raw: String,
}

/// A handle that resolves once an append is durable (or has failed).
#[derive(Debug)]
pub struct AppendTicket(pub(crate) oneshot::Receiver<AppendReply>);

impl AppendTicket {
    /// Waits for the outcome.
    pub async fn wait(self) -> Result<AppendOutcome> {
        self.0
            .await
            .map_or(Err(StoreError::ShuttingDown), |(r, _batch)| r)
    }

    /// Waits for the outcome, blocking the thread. Not for use inside an async runtime.
    pub fn wait_blocking(self) -> Result<AppendOutcome> {
        self.0
            .blocking_recv()
            .map_or(Err(StoreError::ShuttingDown), |(r, _batch)| r)
    }
}

struct Live {
    manifest: Manifest,
    parts: Vec<Arc<Part>>,
}

impl Live {
    /// The manifest entry of a live part (as a list, what `rewrite` takes).
    fn entry_of(&self, part: &Part) -> Vec<PartEntry> {
        let file = part.path().file_name().and_then(|f| f.to_str());
        self.manifest
            .parts
            .iter()
            .filter(|e| Some(e.file_name().as_str()) == file)
            .cloned()
            .collect()
    }
}

pub(crate) struct Project {
    pub(crate) info: ProjectInfo,
    dir: PathBuf,
    db_path: PathBuf,
    tx: mpsc::UnboundedSender<Command>,
    live: RwLock<Arc<Live>>,
    tail: Arc<Tail>,
    /// Live dedup files; changed only under the `maintenance` lock.
    dedup_files: Mutex<Vec<DedupFile>>,
    maintenance: Mutex<()>,
    /// Held while deletion jobs run (the maintenance thread, or a caller waiting for them).
    deletions: Mutex<()>,
    config: StoreConfig,
    clock: Arc<dyn Clock>,
    metrics: Arc<StoreMetrics>,
}

impl Project {
    pub(crate) fn open(
        info: ProjectInfo,
        dir: PathBuf,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<StoreMetrics>,
    ) -> Result<Project> {
        std::fs::create_dir_all(parts_dir(&dir)).map_err(|e| StoreError::io(&dir, e))?;
        let manifest = Manifest::load(&dir)?;
        remove_orphans(&dir, &manifest)?;
        let mut parts = Vec::with_capacity(manifest.parts.len());
        for entry in &manifest.parts {
            parts.push(Arc::new(Part::open(
                &parts_dir(&dir).join(entry.file_name()),
            )?));
        }
        let db_path = dir.join("events.db");
        {
            let conn = db::open_rw(&db_path)?;
            if db::version(&conn)? == 1 {
                crate::migrate::from_v1(&conn, &dir, manifest.sealed_seq, clock.now().millis())?;
            }
        }
        {
            // (Opened again: this brings a migrated version 2 to version 3.)
            let conn = db::open_rw(&db_path)?;
            let resumed = privacy::resume(&conn)?;
            if resumed > 0 {
                tracing::info!(project = %info.name, jobs = resumed, "resuming deletion jobs");
            }
        }
        let (tail, recovered) = Tail::open(tail::dir(&dir), manifest.sealed_seq)?;
        let dedup_files = dedup::files::open(&dedup::files::dir(&dir), manifest.sealed_seq)?;
        let runs = dedup_files
            .iter()
            .map(|f| dedup::files::read(&f.path))
            .collect::<Result<Vec<_>>>()?;
        let mut index = DedupIndex::from_parts(runs, recovered.entries);
        let window = config.dedup_window_ms as i64;
        index.expire(clock.now().millis() - window, dedup::slack(window));
        let writer = Writer::new(
            db_path.clone(),
            Appender::new(tail.clone()),
            recovered.last_seq.max(manifest.sealed_seq) + 1,
            index,
            config.seal_rows,
            clock.clone(),
            metrics.clone(),
        )?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(format!("writer-{}", info.name))
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::io(&db_path, e))?;
        Ok(Project {
            info,
            dir,
            db_path,
            tx,
            live: RwLock::new(Arc::new(Live { manifest, parts })),
            tail,
            dedup_files: Mutex::new(dedup_files),
            maintenance: Mutex::new(()),
            deletions: Mutex::new(()),
            config,
            clock,
            metrics,
        })
    }

    pub(crate) fn append(&self, batch: AppendBatch) -> Result<AppendTicket> {
        let (reply, rx) = oneshot::channel();
        let batch = PreparedBatch::new(batch);
        self.tx
            .send(Command::Append { batch, reply })
            .map_err(|_| StoreError::ShuttingDown)?;
        Ok(AppendTicket(rx))
    }

    /// Waits until everything appended before is committed, and closes the open tail
    /// segment so that sealing can take all of it.
    pub(crate) fn roll(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Roll { reply: Some(reply) })
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.blocking_recv().unwrap_or(Err(StoreError::ShuttingDown))
    }

    /// Waits until everything appended before is committed.
    pub(crate) fn barrier(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Barrier { reply })
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.blocking_recv().unwrap_or(Err(StoreError::ShuttingDown))
    }

    fn reader(&self) -> Result<Connection> {
        db::open_ro(&self.db_path)
    }

    pub(crate) fn manifest(&self) -> Manifest {
        self.live.read().expect("live lock").manifest.clone()
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let mut conn = self.reader()?;
        let tx = conn.transaction()?;
        let canonical = load_canonical(&tx)?;
        let names = load_names(&tx)?;
        let deleting = privacy::deleting(&tx)?;
        drop(tx);
        let live = self.live.read().expect("live lock");
        // Read the tail while holding the lock: sealing cannot swap the manifest (and so
        // cannot delete segments) until we are done, so no row is missed or doubled.
        let mut tail = TailRows::default();
        tail::read(
            &self.tail.segments(),
            live.manifest.sealed_seq,
            &canonical,
            &mut tail,
        )?;
        let parts = live.parts.clone();
        drop(live);
        tail.drop_persons(&deleting);
        tail.sort();
        let deleting_rows = if deleting.is_empty() {
            0
        } else {
            parts.iter().map(|p| rows_of(p, &deleting)).sum()
        };
        Ok(Snapshot {
            parts,
            tail,
            canonical,
            names,
            deleting,
            deleting_rows,
        })
    }

    /// Seals the oldest closed tail segments (about `max_seal_rows` rows, at least one
    /// segment) into a new part. Returns rows sealed.
    pub(crate) fn seal_once(&self) -> Result<usize> {
        let _guard = self.maintenance.lock().expect("maintenance lock");
        let mut manifest = self.manifest();
        let mut chosen = Vec::new();
        let mut rows = 0u64;
        for seg in self.tail.segments() {
            if !seg.closed || (rows > 0 && rows + seg.rows > self.config.max_seal_rows as u64) {
                break;
            }
            rows += seg.rows;
            chosen.push(seg);
        }
        let Some(last) = chosen.last() else {
            return Ok(0);
        };
        let (first_seq, last_seq) = (chosen[0].first_seq, last.last_seq);
        let canonical = {
            let mut conn = self.reader()?;
            let tx = conn.transaction()?;
            load_canonical(&tx)?
        };
        let mut tail = TailRows::default();
        tail::read(&chosen, manifest.sealed_seq, &canonical, &mut tail)?;
        if tail.is_empty() {
            return Ok(0);
        }
        let mut entries = std::mem::take(&mut tail.entries);
        tail.sort();
        let id = manifest.next_part_id;
        let path = parts_dir(&self.dir).join(part_file_name(id));
        let mut writer = PartWriter::create(&path)?;
        for i in 0..tail.len() {
            let row = PartRow {
                person: tail.persons[i],
                ts: tail.ts[i],
                name: tail.names[i],
                kind: tail.kinds[i],
                seq: tail.seqs[i],
                value: tail.values[i],
                body: &tail.bodies[i],
            };
            if let Err(e) = writer.push(row) {
                writer.abandon();
                return Err(e);
            }
        }
        let stats = writer.finish()?;
        sync_dir(&parts_dir(&self.dir))?;
        entries.sort_unstable();
        let dedup_file =
            dedup::files::write(&dedup::files::dir(&self.dir), first_seq, last_seq, &entries)?;
        let part = Arc::new(Part::open(&path)?);
        manifest.next_part_id += 1;
        manifest.sealed_seq = last_seq;
        manifest.parts.push(PartEntry {
            id,
            stats,
            level: 0,
        });
        self.publish(manifest, vec![part], &[])?;
        self.tail.retire(last_seq);
        self.metrics.parts_sealed.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .events_sealed
            .fetch_add(tail.len() as u64, Ordering::Relaxed);
        let mut files = self.dedup_files.lock().expect("dedup files lock");
        files.push(dedup_file);
        let window = self.config.dedup_window_ms as i64;
        if let Err(e) = dedup::files::maintain(
            &dedup::files::dir(&self.dir),
            &mut files,
            self.clock.now().millis() - window,
            dedup::slack(window),
        ) {
            // Nothing is lost: the files are only merged or trimmed later.
            tracing::warn!(error = %e, "dedup file upkeep failed; will retry");
        }
        Ok(tail.len())
    }

    /// Makes `manifest` durable and live; `added` are its new parts (in manifest order at
    /// the end), `removed` the part ids it dropped.
    fn publish(&self, manifest: Manifest, added: Vec<Arc<Part>>, removed: &[u64]) -> Result<()> {
        manifest.store(&self.dir)?;
        let mut live = self.live.write().expect("live lock");
        let mut parts: Vec<Arc<Part>> = Vec::with_capacity(manifest.parts.len());
        let mut added = added.into_iter();
        for entry in &manifest.parts {
            let file = entry.file_name();
            match live
                .parts
                .iter()
                .find(|p| p.path().file_name().and_then(|f| f.to_str()) == Some(file.as_str()))
            {
                Some(p) => parts.push(p.clone()),
                None => parts.push(added.next().expect("a new part for each new entry")),
            }
        }
        *live = Arc::new(Live { manifest, parts });
        drop(live);
        for id in removed {
            let path = parts_dir(&self.dir).join(part_file_name(*id));
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not delete a compacted part");
            }
        }
        Ok(())
    }

    /// Picks parts to merge: the smallest size tier holding at least `compact_fanin` parts.
    fn compaction_candidates(&self, manifest: &Manifest) -> Vec<PartEntry> {
        let fanin = self.config.compact_fanin.max(2);
        let base = self.config.max_seal_rows.max(1) as f64;
        let mut tiers: HashMap<u32, Vec<PartEntry>> = HashMap::new();
        for entry in &manifest.parts {
            if entry.stats.rows as usize >= self.config.max_part_rows {
                continue;
            }
            let tier = ((entry.stats.rows as f64 / base).max(1.0).ln() / (fanin as f64).ln())
                .floor() as u32;
            tiers.entry(tier).or_default().push(entry.clone());
        }
        let mut keys: Vec<_> = tiers.keys().copied().collect();
        keys.sort();
        for k in keys {
            let mut group = tiers.remove(&k).expect("key exists");
            if group.len() >= fanin {
                group.sort_by_key(|e| e.stats.rows);
                let mut chosen = Vec::new();
                let mut rows = 0u64;
                for e in group {
                    if chosen.len() == fanin * 2
                        || rows + e.stats.rows > self.config.max_part_rows as u64
                    {
                        break;
                    }
                    rows += e.stats.rows;
                    chosen.push(e);
                }
                if chosen.len() >= 2 {
                    return chosen;
                }
            }
        }
        Vec::new()
    }

    /// Merges parts when a size tier has filled up. Returns the number of parts merged.
    pub(crate) fn compact_once(&self, force_all: bool) -> Result<usize> {
        let _guard = self.maintenance.lock().expect("maintenance lock");
        let live = self.live.read().expect("live lock").clone();
        let chosen: Vec<PartEntry> = if force_all {
            if live.manifest.parts.len() < 2 {
                return Ok(0);
            }
            live.manifest.parts.clone()
        } else {
            self.compaction_candidates(&live.manifest)
        };
        self.rewrite(&live, chosen, 1, &HashSet::new())
    }

    /// Rewrites one live part written before the value column existed, so that readers
    /// stop computing the column from its bodies. Returns parts rewritten (0 or 1).
    pub(crate) fn upgrade_once(&self) -> Result<usize> {
        let _guard = self.maintenance.lock().expect("maintenance lock");
        let live = self.live.read().expect("live lock").clone();
        let Some(old) = live.parts.iter().find(|p| !p.has_values()) else {
            return Ok(0);
        };
        let chosen = live.entry_of(old);
        self.rewrite(&live, chosen, 0, &HashSet::new())
    }

    /// Merges `chosen` into one new part `level_up` levels above the highest of them,
    /// without the rows of the stored persons `dropped`, and publishes it in their place (or
    /// nothing, when no row is left). Returns parts replaced.
    fn rewrite(
        &self,
        live: &Live,
        chosen: Vec<PartEntry>,
        level_up: u32,
        dropped: &HashSet<u64>,
    ) -> Result<usize> {
        if chosen.is_empty() {
            return Ok(0);
        }
        let inputs: Vec<Arc<Part>> = chosen
            .iter()
            .map(|e| {
                let file = e.file_name();
                live.parts
                    .iter()
                    .find(|p| p.path().file_name().and_then(|f| f.to_str()) == Some(file.as_str()))
                    .cloned()
                    .expect("manifest and live parts agree")
            })
            .collect();
        let canonical = {
            let mut conn = self.reader()?;
            let tx = conn.transaction()?;
            load_canonical(&tx)?
        };
        let mut manifest = live.manifest.clone();
        let id = manifest.next_part_id;
        let path = parts_dir(&self.dir).join(part_file_name(id));
        let stats = merge_parts(&inputs, &canonical, dropped, &path)?;
        let removed: Vec<u64> = chosen.iter().map(|e| e.id).collect();
        manifest.parts.retain(|e| !removed.contains(&e.id));
        manifest.next_part_id += 1;
        let mut added = Vec::new();
        if stats.rows == 0 {
            // Every row was dropped: the inputs go, nothing replaces them.
            std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        } else {
            sync_dir(&parts_dir(&self.dir))?;
            added.push(Arc::new(Part::open(&path)?));
            let level = chosen.iter().map(|e| e.level).max().unwrap_or(0) + level_up;
            manifest.parts.push(PartEntry { id, stats, level });
        }
        self.publish(manifest, added, &removed)?;
        self.metrics.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(removed.len())
    }

    /// Records a deletion request through the writer (ordered with appends), then deletes
    /// the persons' derived rows. Returns the job's id.
    pub(crate) fn request_deletion(
        &self,
        request: privacy::DeletionRequest,
        now: Timestamp,
    ) -> Result<i64> {
        let op = PrivacyOp::Delete {
            request,
            now: now.millis(),
        };
        let PrivacyDone::Deleted(recorded) = self.privacy(op)? else {
            unreachable!("a deletion is answered with its record")
        };
        // Derived rows written before the request go now (later writes filter the persons
        // out); the job deletes again in case a derived job was under way.
        let rows = crate::derived::delete_persons(&self.dir, &recorded.persons)?;
        privacy::add_derived(&db::open_rw(&self.db_path)?, recorded.id, rows)?;
        Ok(recorded.id)
    }

    /// Takes an id off the suppression list; whether it was on it.
    pub(crate) fn unsuppress(
        &self,
        kind: crate::identity::IdKind,
        value: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let op = PrivacyOp::Unsuppress {
            kind,
            value: value.to_string(),
            actor: actor.to_string(),
            now: now.millis(),
        };
        match self.privacy(op)? {
            PrivacyDone::Unsuppressed(was) => Ok(was),
            PrivacyDone::Deleted(_) => unreachable!("an unsuppression is answered with a flag"),
        }
    }

    fn privacy(&self, op: PrivacyOp) -> Result<PrivacyDone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Privacy { op, reply })
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.blocking_recv().unwrap_or(Err(StoreError::ShuttingDown))
    }

    /// One deletion job.
    pub(crate) fn deletion(&self, id: i64) -> Result<privacy::Deletion> {
        privacy::deletion(&self.reader()?, id)
    }

    /// Every deletion job, newest first.
    pub(crate) fn deletions(&self) -> Result<Vec<privacy::Deletion>> {
        privacy::deletions(&self.reader()?)
    }

    /// The audit trail, newest first.
    pub(crate) fn audit(
        &self,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<privacy::AuditRow>> {
        privacy::audit_rows(&self.reader()?, limit, before)
    }

    /// Every person ever deleted (derived writes leave them out).
    pub(crate) fn all_deleted(&self) -> Result<HashSet<u64>> {
        privacy::all_deleted(&self.reader()?)
    }

    /// Runs the unfinished deletion jobs, oldest first, until `stop` is set. A job that
    /// fails is marked `failed` (it runs again when the project is next opened). Returns
    /// the jobs finished.
    pub(crate) fn run_deletions(&self, stop: &std::sync::atomic::AtomicBool) -> Result<usize> {
        let _guard = self.deletions.lock().expect("deletions lock");
        let jobs = privacy::unfinished(&self.reader()?)?;
        let mut finished = 0;
        for (id, sealed_through) in jobs {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let outcome = self.run_deletion(id, sealed_through, stop);
            let mut conn = db::open_rw(&self.db_path)?;
            let now = self.clock.now().millis();
            match outcome {
                Ok(false) => {}
                Ok(true) => {
                    privacy::finish(&mut conn, id, now, None)?;
                    tracing::info!(project = %self.info.name, deletion = id, "deletion done");
                    finished += 1;
                }
                Err(e) => {
                    tracing::warn!(project = %self.info.name, deletion = id, error = %e, "deletion failed");
                    privacy::finish(&mut conn, id, now, Some(&e.to_string()))?;
                }
            }
        }
        Ok(finished)
    }

    /// One deletion job: seal the tail through `sealed_through`, rewrite every part holding
    /// rows of the persons, delete their derived rows. Each step is idempotent. Returns false
    /// when `stop` interrupted it.
    fn run_deletion(
        &self,
        id: i64,
        sealed_through: u64,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<bool> {
        let conn = db::open_rw(&self.db_path)?;
        privacy::mark_running(&conn, id, self.clock.now().millis())?;
        let persons = privacy::job_persons(&conn, id)?;
        let dropped: HashSet<u64> = persons.iter().copied().collect();
        // 1. Every event of the persons is at or below `sealed_through`: seal that far.
        if self.tail_holds(sealed_through) {
            self.roll()?;
            while self.tail_holds(sealed_through) && self.seal_once()? > 0 {}
            if self.tail_holds(sealed_through) {
                return Err(StoreError::Unavailable(format!(
                    "the tail through seq {sealed_through} could not be sealed"
                )));
            }
        }
        // 2. Count their rows once (a resumed job keeps the first count).
        let rows = self
            .live
            .read()
            .expect("live lock")
            .parts
            .iter()
            .map(|p| rows_of(p, &dropped))
            .sum();
        privacy::set_events(&conn, id, rows)?;
        // 3. Rewrite the parts holding them, one at a time.
        while self.rewrite_without(&dropped)? {
            if stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
        }
        // 4. Derived rows (again: a derived job may have been under way at the request).
        let derived = crate::derived::delete_persons(&self.dir, &persons)?;
        privacy::add_derived(&conn, id, derived)?;
        // 5. Copy the WAL into the database file so deleted rows leave it (best effort: a
        // reader may hold it; the next checkpoint does it then).
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(true)
    }

    /// Whether a tail segment still holds rows at or below `seq` that are not sealed.
    fn tail_holds(&self, seq: u64) -> bool {
        let sealed = self.manifest().sealed_seq;
        self.tail
            .segments()
            .iter()
            .any(|s| s.rows > 0 && s.first_seq <= seq && s.last_seq > sealed)
    }

    /// Rewrites one live part holding rows of the stored persons `dropped` without them.
    /// Returns whether there was one.
    fn rewrite_without(&self, dropped: &HashSet<u64>) -> Result<bool> {
        let _guard = self.maintenance.lock().expect("maintenance lock");
        let live = self.live.read().expect("live lock").clone();
        let Some(part) = live.parts.iter().find(|p| rows_of(p, dropped) > 0) else {
            return Ok(false);
        };
        let chosen = live.entry_of(part);
        self.rewrite(&live, chosen, 0, dropped)?;
        Ok(true)
    }

    /// One round of background upkeep: run deletion jobs, seal what is due, compact, prune
    /// the dedup window; stops between steps once `stop` is set.
    pub(crate) fn maintain(&self, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
        if let Err(e) = self.run_deletions(stop) {
            tracing::warn!(project = %self.info.name, error = %e, "deletion jobs not run; will retry");
        }
        let now = self.clock.now();
        // The writer rolls a segment when it holds `seal_rows`; a quieter project's open
        // segment is rolled here once it is `seal_interval` old.
        let open_is_old = self.tail.segments().iter().any(|s| {
            !s.closed
                && s.rows > 0
                && now.millis() - s.opened_at >= self.config.seal_interval_ms as i64
        });
        if open_is_old {
            let _ = self.tx.send(Command::Roll { reply: None });
        }
        let stopping = || stop.load(Ordering::SeqCst);
        while !stopping() && self.seal_once()? > 0 {}
        while !stopping() && self.compact_once(false)? > 0 {}
        // Parts of the format before the value column, one per round.
        if !stopping() {
            self.upgrade_once()?;
        }
        // Copy committed WAL pages into the database file here rather than in the writer.
        let conn = Connection::open(&self.db_path)?;
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        let window = self.config.dedup_window_ms as i64;
        let _ = self.tx.send(Command::PruneDedup {
            before: now.millis() - window,
            slack: dedup::slack(window),
        });
        Ok(())
    }

    /// The canonical person a user id (`kind` 0) or anonymous id (1) resolves to, or a
    /// person id (merged persons answer with the person they were merged into).
    /// The canonical person of each user id (None for ids nobody has), on one connection.
    pub(crate) fn persons_of_users(&self, users: &[String]) -> Result<Vec<Option<u64>>> {
        let conn = self.reader()?;
        let mut find =
            conn.prepare("SELECT person FROM identities WHERE kind = 0 AND value = ?1")?;
        let mut merged = conn.prepare("SELECT merged_into FROM persons WHERE id = ?1")?;
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let person: Option<i64> = find.query_row(params![u], |r| r.get(0)).optional()?;
            out.push(match person {
                None => None,
                Some(p) => {
                    let into: Option<i64> = merged
                        .query_row(params![p], |r| r.get(0))
                        .optional()?
                        .flatten();
                    Some(into.unwrap_or(p) as u64)
                }
            });
        }
        Ok(out)
    }

    pub(crate) fn find_person(
        &self,
        user: Option<&str>,
        anonymous: Option<&str>,
        id: Option<u64>,
    ) -> Result<Option<u64>> {
        let conn = self.reader()?;
        let found: Option<i64> = match (user, anonymous, id) {
            (Some(v), _, _) | (None, Some(v), _) => conn
                .query_row(
                    "SELECT person FROM identities WHERE kind = ?1 AND value = ?2",
                    params![i64::from(user.is_none()), v],
                    |r| r.get(0),
                )
                .optional()?,
            (None, None, Some(id)) => conn
                .query_row(
                    "SELECT id FROM persons WHERE id = ?1",
                    params![id as i64],
                    |r| r.get(0),
                )
                .optional()?,
            (None, None, None) => None,
        };
        let Some(person) = found else {
            return Ok(None);
        };
        let merged: Option<i64> = conn.query_row(
            "SELECT merged_into FROM persons WHERE id = ?1",
            params![person],
            |r| r.get(0),
        )?;
        Ok(Some(merged.unwrap_or(person) as u64))
    }

    /// One canonical person's profile.
    pub(crate) fn profile(&self, person: u64) -> Result<Option<Profile>> {
        let conn = self.reader()?;
        let row = conn
            .query_row(
                "SELECT identified, traits, created_at, updated_at FROM persons
                 WHERE id = ?1 AND merged_into IS NULL",
                params![person as i64],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? != 0,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((identified, traits, created_at, updated_at)) = row else {
            return Ok(None);
        };
        let mut stmt = conn
            .prepare("SELECT kind, value FROM identities WHERE person = ?1 ORDER BY kind, value")?;
        let mut rows = stmt.query(params![person as i64])?;
        let (mut user_ids, mut anonymous_ids) = (Vec::new(), Vec::new());
        while let Some(r) = rows.next()? {
            if r.get::<_, i64>(0)? == 0 {
                user_ids.push(r.get(1)?);
            } else {
                anonymous_ids.push(r.get(1)?);
            }
        }
        Ok(Some(Profile {
            person: PersonId(person),
            identified,
            user_ids,
            anonymous_ids,
            traits: serde_json::from_str(&traits).unwrap_or_default(),
            created_at: Timestamp(created_at),
            updated_at: Timestamp(updated_at),
        }))
    }

    pub(crate) fn for_each_profile(&self, mut f: impl FnMut(Profile) -> Result<()>) -> Result<()> {
        let conn = self.reader()?;
        let mut ids: HashMap<u64, (Vec<String>, Vec<String>)> = HashMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT kind, value, person FROM identities ORDER BY person, kind, value",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let kind: i64 = r.get(0)?;
                let entry = ids.entry(r.get::<_, i64>(2)? as u64).or_default();
                if kind == 0 {
                    entry.0.push(r.get(1)?)
                } else {
                    entry.1.push(r.get(1)?)
                }
            }
        }
        let mut stmt = conn.prepare(
            "SELECT id, identified, traits, created_at, updated_at FROM persons WHERE merged_into IS NULL ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let person = r.get::<_, i64>(0)? as u64;
            let (user_ids, anonymous_ids) = ids.remove(&person).unwrap_or_default();
            let traits: String = r.get(2)?;
            f(Profile {
                person: PersonId(person),
                identified: r.get::<_, i64>(1)? != 0,
                user_ids,
                anonymous_ids,
                traits: serde_json::from_str(&traits).unwrap_or_default(),
                created_at: Timestamp(r.get(3)?),
                updated_at: Timestamp(r.get(4)?),
            })?;
        }
        Ok(())
    }

    /// Calls `f(person, traits JSON)` for every canonical person, or, given `persons`, for
    /// each of them (`None` for a person merged into another or not known).
    pub(crate) fn trait_keys(&self, sample: usize) -> Result<Vec<(String, usize)>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare(
            "SELECT traits FROM persons WHERE merged_into IS NULL ORDER BY id DESC LIMIT ?1",
        )?;
        let mut rows = stmt.query(params![sample.min(i64::MAX as usize) as i64])?;
        let mut counts: HashMap<String, usize> = HashMap::new();
        while let Some(r) = rows.next()? {
            let text = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            let Ok(serde_json::Value::Object(traits)) = serde_json::from_str(text) else {
                continue;
            };
            for (k, v) in &traits {
                *counts.entry(k.clone()).or_default() += 1;
                if let serde_json::Value::Object(inner) = v {
                    for k2 in inner.keys() {
                        *counts.entry(format!("{k}.{k2}")).or_default() += 1;
                    }
                }
            }
        }
        let mut keys: Vec<(String, usize)> = counts.into_iter().collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(keys)
    }

    pub(crate) fn for_each_traits(
        &self,
        persons: Option<&[u64]>,
        f: &mut dyn FnMut(u64, Option<&str>) -> Result<()>,
    ) -> Result<()> {
        let conn = self.reader()?;
        match persons {
            None => {
                let mut stmt = conn.prepare(
                    "SELECT id, traits FROM persons WHERE merged_into IS NULL ORDER BY id",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let text = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
                    f(r.get::<_, i64>(0)? as u64, Some(text))?;
                }
            }
            Some(persons) => {
                let mut stmt = conn
                    .prepare("SELECT traits FROM persons WHERE id = ?1 AND merged_into IS NULL")?;
                for &p in persons {
                    let text: Option<String> =
                        stmt.query_row(params![p as i64], |r| r.get(0)).optional()?;
                    f(p, text.as_deref())?;
                }
            }
        }
        Ok(())
    }

    /// The latest trait changes of some persons, newest first.
    pub(crate) fn trait_history(&self, persons: &[u64], limit: usize) -> Result<Vec<TraitChange>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare(
            "SELECT id, person, at, key, value, op FROM trait_history WHERE person = ?1
             ORDER BY id DESC LIMIT ?2",
        )?;
        let mut out = Vec::new();
        for &p in persons {
            let rows = stmt.query_map(params![p as i64, limit as i64], |r| {
                let value: String = r.get(4)?;
                Ok(TraitChange {
                    id: r.get(0)?,
                    person: r.get::<_, i64>(1)? as u64,
                    at: Timestamp(r.get(2)?),
                    key: r.get(3)?,
                    value: serde_json::from_str(&value).unwrap_or(serde_json::Value::Null),
                    op: r.get(5)?,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.id));
        out.truncate(limit);
        Ok(out)
    }

    pub(crate) fn warnings(&self, limit: usize, before: Option<i64>) -> Result<Vec<WarningRow>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare(
            "SELECT id, at, severity, code, message, field, raw FROM warnings
             WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![before.unwrap_or(i64::MAX), limit as i64], |r| {
            Ok(WarningRow {
                id: r.get(0)?,
                at: Timestamp(r.get(1)?),
                severity: r.get(2)?,
                code: r.get(3)?,
                message: r.get(4)?,
                field: r.get(5)?,
                raw: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

fn load_canonical(conn: &Connection) -> Result<HashMap<u64, u64>> {
    db::merged_persons(conn)
}

fn load_names(conn: &Connection) -> Result<Vec<String>> {
    let mut names = vec![String::new()];
    let mut stmt = conn.prepare("SELECT id, name FROM names ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id = r.get::<_, i64>(0)? as usize;
        if names.len() <= id {
            names.resize(id + 1, String::new());
        }
        names[id] = r.get(1)?;
    }
    Ok(names)
}

fn remove_orphans(dir: &Path, manifest: &Manifest) -> Result<()> {
    let live: HashSet<String> = manifest.parts.iter().map(|e| e.file_name()).collect();
    let pdir = parts_dir(dir);
    let entries = std::fs::read_dir(&pdir).map_err(|e| StoreError::io(&pdir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(&pdir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !live.contains(&name) {
            tracing::info!(file = %name, "removing a part not named by the manifest");
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// One input of a merge: a part's rows in order, skipping persons that were merged away
/// since the part was written (those go through `moved`).
struct Cursor<'a> {
    part: &'a Part,
    row: usize,
    person_idx: usize,
    block: usize,
    bodies: Vec<Vec<u8>>,
    skip: &'a HashSet<u64>,
}

impl Cursor<'_> {
    fn body(&mut self, row: usize) -> Result<Vec<u8>> {
        let b = row / self.part.block_rows();
        if b != self.block || self.bodies.is_empty() {
            self.bodies = self.part.block_bodies(b)?;
            self.block = b;
        }
        Ok(std::mem::take(
            &mut self.bodies[row % self.part.block_rows()],
        ))
    }

    /// The next row (person, ts, seq, row index) not owned by a moved person.
    fn peek(&mut self) -> Option<(u64, i64, u64, usize)> {
        let offsets = self.part.person_offsets();
        let persons = self.part.persons();
        while self.row < self.part.rows() {
            while offsets[self.person_idx + 1] as usize <= self.row {
                self.person_idx += 1;
            }
            let person = persons[self.person_idx];
            if self.skip.contains(&person) {
                self.row = offsets[self.person_idx + 1] as usize;
                continue;
            }
            return Some((
                person,
                self.part.ts()[self.row],
                self.part.seqs()[self.row],
                self.row,
            ));
        }
        None
    }
}

/// A row whose person was merged away: (canonical person, ts, seq, name, kind, value, body).
type MovedRow = (u64, i64, u64, u32, u8, f64, Vec<u8>);

/// Merges parts into one new part at `path`, resolving persons to their canonical ids and
/// leaving out the rows of the stored persons `dropped` (deleted persons).
fn merge_parts(
    inputs: &[Arc<Part>],
    canonical: &HashMap<u64, u64>,
    dropped: &HashSet<u64>,
    path: &Path,
) -> Result<crate::part::PartStats> {
    // Rows of persons merged away since their part was written must move to their canonical
    // person's place; there are few, so collect and sort them apart.
    let skip: HashSet<u64> = inputs
        .iter()
        .flat_map(|p| p.persons().iter().copied())
        .filter(|p| canonical.contains_key(p) || dropped.contains(p))
        .collect();
    let mut moved: Vec<MovedRow> = Vec::new();
    for part in inputs {
        let offsets = part.person_offsets();
        let mut block: Option<(usize, Vec<Vec<u8>>)> = None;
        for (i, p) in part.persons().iter().enumerate() {
            if dropped.contains(p) {
                continue;
            }
            if let Some(to) = canonical.get(p) {
                for row in offsets[i] as usize..offsets[i + 1] as usize {
                    let b = row / part.block_rows();
                    if block.as_ref().map(|(bb, _)| *bb) != Some(b) {
                        block = Some((b, part.block_bodies(b)?));
                    }
                    let body = block.as_mut().expect("loaded").1[row % part.block_rows()].clone();
                    moved.push((
                        *to,
                        part.ts()[row],
                        part.seqs()[row],
                        part.names()[row],
                        part.kinds()[row],
                        part.values()[row],
                        body,
                    ));
                }
            }
        }
    }
    moved.sort_by_key(|m| (m.0, m.1, m.2));
    let mut cursors: Vec<Cursor<'_>> = inputs
        .iter()
        .map(|p| Cursor {
            part: p,
            row: 0,
            person_idx: 0,
            block: 0,
            bodies: Vec::new(),
            skip: &skip,
        })
        .collect();
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some((person, ts, seq, _)) = c.peek() {
            heap.push(Reverse((person, ts, seq, i)));
        }
    }
    let mut writer = PartWriter::create(path)?;
    let mut moved = moved.into_iter().peekable();
    let result = (|| -> Result<()> {
        loop {
            let next_heap = heap.peek().map(|Reverse(k)| *k);
            let next_moved = moved.peek().map(|m| (m.0, m.1, m.2));
            match (next_heap, next_moved) {
                (None, None) => break,
                (Some(h), m) if m.is_none_or(|m| (h.0, h.1, h.2) < m) => {
                    heap.pop();
                    let c = &mut cursors[h.3];
                    let row = c.row;
                    let body = c.body(row)?;
                    writer.push(PartRow {
                        person: h.0,
                        ts: h.1,
                        name: c.part.names()[row],
                        kind: c.part.kinds()[row],
                        seq: h.2,
                        value: c.part.values()[row],
                        body: &body,
                    })?;
                    c.row += 1;
                    if let Some((person, ts, seq, _)) = c.peek() {
                        heap.push(Reverse((person, ts, seq, h.3)));
                    }
                }
                _ => {
                    let m = moved.next().expect("peeked");
                    writer.push(PartRow {
                        person: m.0,
                        ts: m.1,
                        name: m.3,
                        kind: m.4,
                        seq: m.2,
                        value: m.5,
                        body: &m.6,
                    })?;
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => writer.finish(),
        Err(e) => {
            writer.abandon();
            Err(e)
        }
    }
}

/// Appends batches one after another, keeping up to `depth` of them queued so the caller's
/// work (parsing, generating) overlaps the writer's commits.
pub struct AppendPipeline<'a> {
    store: &'a dyn crate::EventStore,
    project: lodestar_core::ProjectId,
    depth: usize,
    queued: std::collections::VecDeque<AppendTicket>,
    total: AppendOutcome,
}

impl<'a> AppendPipeline<'a> {
    /// A pipeline into `project` with up to `depth` batches queued (at least 1).
    pub fn new(
        store: &'a dyn crate::EventStore,
        project: lodestar_core::ProjectId,
        depth: usize,
    ) -> Self {
        AppendPipeline {
            store,
            project,
            depth: depth.max(1),
            queued: std::collections::VecDeque::new(),
            total: AppendOutcome::default(),
        }
    }

    /// Queues a batch, first waiting for the oldest one if `depth` are queued.
    pub fn push(&mut self, batch: AppendBatch) -> Result<()> {
        if self.queued.len() >= self.depth {
            self.wait_oldest()?;
        }
        self.queued
            .push_back(self.store.append(self.project, batch)?);
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<()> {
        if let Some(ticket) = self.queued.pop_front() {
            let o = ticket.wait_blocking()?;
            self.total.stored += o.stored;
            self.total.duplicates += o.duplicates;
            self.total.rejected += o.rejected;
            self.total.warnings += o.warnings;
            self.total.suppressed += o.suppressed;
        }
        Ok(())
    }

    /// What is durable so far.
    pub fn outcome(&self) -> AppendOutcome {
        self.total
    }

    /// Waits for every queued batch; returns the totals.
    pub fn finish(mut self) -> Result<AppendOutcome> {
        while !self.queued.is_empty() {
            self.wait_oldest()?;
        }
        Ok(self.total)
    }
}
