//! The write path: one thread per project owns the SQLite write connection and commits
//! appends in groups.
//!
//! Requests queue on a bounded channel. The thread takes everything queued (up to a cap),
//! applies it in one transaction and commits; SQLite fsyncs the WAL on `COMMIT`. Only then
//! is each request answered. So concurrent requests share one fsync (group commit), and a
//! request is never answered `Ok` before its events are durable.
//!
//! Invariant: if the transaction or its commit fails (disk full, fsync error), every
//! request of the group is answered [`StoreError::Unavailable`], the connection is dropped
//! and reopened before the next group, and in-memory caches are rebuilt from the database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use lodestar_core::{Clock, Message};

use crate::db;
use crate::dedup::DedupIndex;
use crate::error::{Result, StoreError};
use crate::identity::{self, Prepared, Resolver};
use crate::metrics::StoreMetrics;

/// An item that could not be stored as an event, kept with the reason (the quarantine), or a
/// warning about an item that was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Stable code (`missing_id`, `invalid_timestamp`, …).
    pub code: String,
    /// Human-readable reason.
    pub message: String,
    /// Where in the request (`batch[3].userId`).
    pub field: String,
    /// The item as received (JSON text, possibly truncated).
    pub raw: String,
}

/// What one request hands to the store.
#[derive(Debug, Default, Clone)]
pub struct AppendBatch {
    /// Valid messages to store.
    pub messages: Vec<Message>,
    /// Items rejected by the decoder: kept in the quarantine.
    pub rejected: Vec<Quarantined>,
    /// Warnings about stored items (a blocked id dropped, a timestamp clamped).
    pub warnings: Vec<Quarantined>,
}

/// What happened to a batch, once durable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Messages stored.
    pub stored: usize,
    /// Messages skipped as already seen (same `messageId` within the dedup window).
    pub duplicates: usize,
    /// Items put in the quarantine.
    pub rejected: usize,
    /// Warnings recorded (decoder warnings plus identity warnings).
    pub warnings: usize,
}

/// An [`AppendBatch`] with its messages prepared on the caller's thread.
pub(crate) struct PreparedBatch {
    pub(crate) rows: Vec<Prepared>,
    pub(crate) rejected: Vec<Quarantined>,
    pub(crate) warnings: Vec<Quarantined>,
}

impl PreparedBatch {
    pub(crate) fn new(batch: AppendBatch) -> PreparedBatch {
        PreparedBatch {
            rows: batch.messages.into_iter().map(Prepared::new).collect(),
            rejected: batch.rejected,
            warnings: batch.warnings,
        }
    }
}

pub(crate) enum Command {
    Append {
        batch: PreparedBatch,
        reply: oneshot::Sender<Result<AppendOutcome>>,
    },
    /// Delete tail rows already sealed into parts (`seq <= upto`).
    TruncateTail { upto: u64 },
    /// Forget dedup entries first seen before `before` (ms).
    PruneDedup { before: i64 },
    /// Answered once every command queued before it is committed.
    Barrier { reply: oneshot::Sender<Result<()>> },
}

/// Most sealed tail rows deleted by one transaction that also holds appends …
const TRUNCATE_SLICE: u64 = 20_000;
/// … and by one that holds none (the writer is idle).
const IDLE_TRUNCATE_SLICE: u64 = 1_000_000;

/// Most messages applied in one transaction.
const MAX_GROUP_MESSAGES: usize = 50_000;

pub(crate) struct Writer {
    path: PathBuf,
    conn: Option<Connection>,
    next_seq: u64,
    names: HashMap<String, u32, identity::Hasher>,
    resolver: Resolver,
    dedup: DedupIndex,
    /// Hashes added to `dedup` by the group being applied; forgotten if it fails.
    pending: Vec<u128>,
    dedup_window_ms: i64,
    /// Tail rows up to here are sealed and may be deleted …
    truncate_target: u64,
    /// … and rows up to here are (the writer deletes a bounded slice per group, so a large
    /// seal never stalls appends).
    truncated_to: u64,
    /// A commit failed since the connection was opened: see [`Writer::reopen`].
    after_failure: bool,
    clock: Arc<dyn Clock>,
    metrics: Arc<StoreMetrics>,
    /// The manifest's sealed_seq when the writer opened; seq numbers continue above it.
    sealed_floor: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    pub(crate) fn new(
        path: PathBuf,
        dedup_window_ms: i64,
        clock: Arc<dyn Clock>,
        metrics: Arc<StoreMetrics>,
        sealed_floor: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Writer> {
        let mut w = Writer {
            path,
            conn: None,
            next_seq: 1,
            names: HashMap::default(),
            resolver: Resolver::default(),
            dedup: DedupIndex::default(),
            pending: Vec::new(),
            dedup_window_ms,
            truncate_target: 0,
            truncated_to: 0,
            after_failure: false,
            clock,
            metrics,
            sealed_floor,
        };
        w.reopen()?;
        Ok(w)
    }

    fn reopen(&mut self) -> Result<()> {
        self.conn = None;
        let conn = db::open_rw(&self.path)?;
        if self.after_failure {
            // A failed commit may still have left its WAL frames behind (the write went
            // through, the fsync did not), and SQLite would read them as committed. Before
            // anything is acknowledged again (a retry of that batch would be a "duplicate"),
            // copy the whole WAL into the database file and fsync it. Until that succeeds,
            // the store stays unavailable.
            let (busy, _, _): (i64, i64, i64) =
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            if busy != 0 {
                return Err(StoreError::Unavailable(
                    "waiting for a durable checkpoint after a failed commit".into(),
                ));
            }
            self.after_failure = false;
        }
        let last_meta = db::meta_get(&conn, "last_seq")?.unwrap_or(0) as u64;
        let last_tail: i64 =
            conn.query_row("SELECT coalesce(max(seq), 0) FROM tail", [], |r| r.get(0))?;
        let floor = self.sealed_floor.load(std::sync::atomic::Ordering::SeqCst);
        self.next_seq = last_meta.max(last_tail as u64).max(floor) + 1;
        let first_tail: i64 =
            conn.query_row("SELECT coalesce(min(seq), 0) FROM tail", [], |r| r.get(0))?;
        self.truncated_to = (first_tail as u64).saturating_sub(1);
        let mut names = HashMap::default();
        {
            let mut stmt = conn.prepare("SELECT id, name FROM names")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, name) = row?;
                names.insert(name, id as u32);
            }
        }
        self.names = names;
        self.resolver = Resolver::load(&conn)?;
        let cutoff = self.clock.now().millis() - self.dedup_window_ms;
        {
            let mut stmt =
                conn.prepare("SELECT hash, seen_at FROM dedup_log WHERE seen_at >= ?1")?;
            let mut rows = stmt.query(params![cutoff])?;
            // Streamed straight into the index's 16-byte entries (no intermediate tuples):
            // this is the largest allocation of a start-up.
            let (mut hashes, mut newest) = (Vec::new(), i64::MIN);
            while let Some(r) = rows.next()? {
                let bytes = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                let mut h = [0u8; 16];
                let n = bytes.len().min(16);
                h[..n].copy_from_slice(&bytes[..n]);
                hashes.push(u128::from_le_bytes(h));
                newest = newest.max(r.get::<_, i64>(1)?);
            }
            self.dedup = DedupIndex::from_hashes(hashes, newest);
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// Runs until every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            let mut messages = group_size(&group[0]);
            while messages < MAX_GROUP_MESSAGES {
                match rx.try_recv() {
                    Ok(cmd) => {
                        messages += group_size(&cmd);
                        group.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            self.apply_group(group);
        }
        tracing::debug!(path = %self.path.display(), "writer stopped");
    }

    fn apply_group(&mut self, group: Vec<Command>) {
        let started = Instant::now();
        let result = self.try_apply(&group);
        let elapsed = started.elapsed();
        match result {
            Ok(outcomes) => {
                self.pending.clear();
                self.dedup.compact();
                self.metrics.observe_commit(elapsed);
                let mut outcomes = outcomes.into_iter();
                for cmd in group {
                    match cmd {
                        Command::Append { reply, .. } => {
                            let outcome = outcomes.next().expect("one outcome per append");
                            self.metrics.record_outcome(&outcome);
                            let _ = reply.send(Ok(outcome));
                        }
                        Command::Barrier { reply } => {
                            let _ = reply.send(Ok(()));
                        }
                        Command::TruncateTail { .. } | Command::PruneDedup { .. } => {}
                    }
                }
            }
            Err(err) => {
                self.metrics
                    .storage_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(path = %self.path.display(), error = %err, "commit failed; nothing in this group is acknowledged");
                let reason = err.to_string();
                for cmd in group {
                    match cmd {
                        Command::Append { reply, .. } => {
                            let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                        }
                        Command::Barrier { reply } => {
                            let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                        }
                        Command::TruncateTail { .. } | Command::PruneDedup { .. } => {}
                    }
                }
                // Drop the connection; caches may hold ids of rolled-back rows.
                self.conn = None;
                self.after_failure = true;
                for h in self.pending.drain(..) {
                    self.dedup.forget(h);
                }
            }
        }
    }

    fn try_apply(&mut self, group: &[Command]) -> Result<Vec<AppendOutcome>> {
        if self.conn.is_none() {
            self.reopen()
                .map_err(|e| StoreError::Unavailable(format!("reopening database: {e}")))?;
        }
        let now = self.clock.now().millis();
        let mut next_seq = self.next_seq;
        let mut new_names: Vec<(String, u32)> = Vec::new();
        let conn = self.conn.as_mut().expect("opened above");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The two statements every event runs, prepared once per group.
        let mut insert_hash =
            tx.prepare_cached("INSERT INTO dedup_log (hash, seen_at) VALUES (?1, ?2)")?;
        let mut insert_tail = tx.prepare_cached(
            "INSERT INTO tail (seq, person, ts, name, kind, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut outcomes = Vec::new();
        for cmd in group {
            match cmd {
                Command::Append { batch, .. } => {
                    let mut outcome = AppendOutcome::default();
                    for q in &batch.rejected {
                        record(&tx, now, "rejected", q)?;
                        outcome.rejected += 1;
                    }
                    for q in &batch.warnings {
                        record(&tx, now, "warning", q)?;
                        outcome.warnings += 1;
                    }
                    for msg in &batch.rows {
                        let hash = u128::from_le_bytes(msg.hash);
                        if !self.dedup.insert(hash, now) {
                            outcome.duplicates += 1;
                            continue;
                        }
                        self.pending.push(hash);
                        insert_hash.execute(params![&msg.hash[..], now])?;
                        let (person, warnings) = identity::resolve(&mut self.resolver, &tx, msg)?;
                        for w in warnings {
                            record(
                                &tx,
                                now,
                                "warning",
                                &Quarantined {
                                    code: w.code.to_string(),
                                    message: w.message,
                                    field: format!("messageId {}", msg.message_id),
                                    raw: String::new(),
                                },
                            )?;
                            outcome.warnings += 1;
                        }
                        let name = msg.name.as_str();
                        let name_id = match self.names.get(name) {
                            Some(id) => *id,
                            None => match new_names.iter().find(|(n, _)| n == name) {
                                Some((_, id)) => *id,
                                None => {
                                    tx.prepare_cached("INSERT INTO names (name) VALUES (?1)")?
                                        .execute(params![name])?;
                                    let id = tx.last_insert_rowid() as u32;
                                    new_names.push((name.to_string(), id));
                                    id
                                }
                            },
                        };
                        insert_tail.execute(params![
                            next_seq as i64,
                            person.0 as i64,
                            msg.ts,
                            name_id,
                            msg.kind.code(),
                            &msg.body
                        ])?;
                        next_seq += 1;
                        outcome.stored += 1;
                    }
                    outcomes.push(outcome);
                }
                Command::TruncateTail { upto } => {
                    self.truncate_target = self.truncate_target.max(*upto);
                }
                Command::PruneDedup { before } => {
                    self.dedup.expire(*before);
                    // The log is in (about) time order: delete the expired prefix.
                    let boundary: Option<i64> = tx
                        .prepare_cached(
                            "SELECT seq FROM dedup_log WHERE seen_at >= ?1 ORDER BY seq LIMIT 1",
                        )?
                        .query_row(params![*before], |r| r.get(0))
                        .optional()?;
                    let upto = boundary.unwrap_or(i64::MAX);
                    tx.prepare_cached("DELETE FROM dedup_log WHERE seq < ?1")?
                        .execute(params![upto])?;
                }
                Command::Barrier { .. } => {}
            }
        }
        drop((insert_hash, insert_tail));
        if next_seq != self.next_seq {
            db::meta_set(&tx, "last_seq", (next_seq - 1) as i64)?;
        }
        let truncating = self.truncated_to < self.truncate_target;
        // Appends waiting: delete a small slice so they are not held up. Idle: a large one.
        let idle = !group.iter().any(|c| matches!(c, Command::Append { .. }));
        let slice = if idle {
            IDLE_TRUNCATE_SLICE
        } else {
            TRUNCATE_SLICE
        };
        let truncate_to = self.truncate_target.min(self.truncated_to + slice);
        if truncating {
            tx.prepare_cached("DELETE FROM tail WHERE seq <= ?1")?
                .execute(params![truncate_to as i64])?;
        }
        tx.commit()?;
        if truncating {
            self.truncated_to = truncate_to;
        }
        if truncating || idle {
            // Return the pages of sealed rows to the file system (bounded work per group;
            // more when no append is waiting).
            // A failure here loses nothing: the group is committed.
            let pages = if idle { 100_000 } else { 4_000 };
            if let Err(e) = incremental_vacuum(conn, pages) {
                tracing::warn!(error = %e, "incremental vacuum failed");
            }
        }
        self.next_seq = next_seq;
        self.names.extend(new_names);
        Ok(outcomes)
    }
}

/// Returns up to `pages` free pages to the file system. The pragma frees one page per step,
/// so it is stepped to completion (`execute_batch` steps once and would free just one).
fn incremental_vacuum(conn: &Connection, pages: u32) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn group_size(cmd: &Command) -> usize {
    match cmd {
        Command::Append { batch, .. } => batch.rows.len().max(1),
        _ => 1,
    }
}

fn record(tx: &rusqlite::Transaction<'_>, now: i64, severity: &str, q: &Quarantined) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO warnings (at, severity, code, message, field, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![now, severity, q.code, q.message, q.field, q.raw])?;
    Ok(())
}
