//! The write path: one thread per project owns the SQLite write connection and the tail
//! log, and commits appends in groups.
//!
//! Requests queue on a channel. The thread takes everything queued (up to a cap), applies
//! it (dedup, identities, names), commits the SQLite transaction, then appends the group's
//! events to the tail log with one write and one `fdatasync`. Only then is each request
//! answered. So concurrent requests share their syncs (group commit), and a request is
//! never answered `Ok` before its events are durable.
//!
//! Invariant: if anything of a group fails (disk full, fsync error), every request of the
//! group is answered [`StoreError::Unavailable`], the dedup entries it added are forgotten,
//! the log is cut back to its durable prefix, and the SQLite connection is dropped and
//! reopened before the next group (its caches rebuilt from the database).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use lodestar_core::{Clock, Message};

use crate::db;
use crate::dedup::{self, DedupIndex};
use crate::error::{Result, StoreError};
use crate::identity::{self, IdKind, Prepared, Resolver};
use crate::metrics::StoreMetrics;
use crate::privacy::{self, DeletionRequest, Recorded, Suppressed};
use crate::tail::{Appender, Record};

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
    /// Messages dropped because they carry a suppressed id (acknowledged, not stored).
    pub suppressed: usize,
}

/// An [`AppendBatch`] with its messages prepared on the caller's thread.
#[derive(Debug)]
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

/// The answer to an append, with its batch handed back so that its memory is freed on the
/// caller's thread rather than the writer's.
pub(crate) type AppendReply = (Result<AppendOutcome>, Option<PreparedBatch>);

pub(crate) enum Command {
    Append {
        batch: PreparedBatch,
        reply: oneshot::Sender<AppendReply>,
    },
    /// Close the open tail segment (if it holds rows) so sealing can take it.
    Roll {
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    /// Forget dedup entries first seen before `before` (ms), rewriting in-memory segments
    /// only when they hold entries more than `slack` (ms) older.
    PruneDedup { before: i64, slack: i64 },
    /// Answered once every command queued before it is committed.
    Barrier { reply: oneshot::Sender<Result<()>> },
    /// A deletion request or an unsuppression: applied alone, in its own transaction,
    /// after every command queued before it.
    Privacy {
        op: PrivacyOp,
        reply: oneshot::Sender<Result<PrivacyDone>>,
    },
}

/// What a [`Command::Privacy`] does.
pub(crate) enum PrivacyOp {
    /// Records a deletion request (see `privacy`), as of `now` (ms).
    Delete { request: DeletionRequest, now: i64 },
    /// Takes an id off the suppression list.
    Unsuppress {
        kind: IdKind,
        value: String,
        actor: String,
        now: i64,
    },
}

/// The answer to a [`Command::Privacy`].
pub(crate) enum PrivacyDone {
    /// The deletion was recorded.
    Deleted(Recorded),
    /// Whether the id was suppressed.
    Unsuppressed(bool),
}

/// Most messages applied in one group.
const MAX_GROUP_MESSAGES: usize = 50_000;

pub(crate) struct Writer {
    path: PathBuf,
    conn: Option<Connection>,
    log: Appender,
    next_seq: u64,
    /// Roll the open segment once it holds this many rows.
    seal_rows: u64,
    names: HashMap<String, u32, identity::Hasher>,
    resolver: Resolver,
    dedup: DedupIndex,
    /// Hashes added to `dedup` by the group being applied; forgotten if it fails.
    pending: Vec<u128>,
    /// A commit failed since the connection was opened: see [`Writer::reopen`].
    after_failure: bool,
    /// Hashes of suppressed ids: messages carrying one are dropped.
    suppressed: Suppressed,
    clock: Arc<dyn Clock>,
    metrics: Arc<StoreMetrics>,
}

impl Writer {
    /// A writer appending to `log` from seq `next_seq`, with the dedup index recovered.
    pub(crate) fn new(
        path: PathBuf,
        log: Appender,
        next_seq: u64,
        dedup: DedupIndex,
        seal_rows: usize,
        clock: Arc<dyn Clock>,
        metrics: Arc<StoreMetrics>,
    ) -> Result<Writer> {
        let mut w = Writer {
            path,
            conn: None,
            log,
            next_seq,
            seal_rows: seal_rows.max(1) as u64,
            names: HashMap::default(),
            resolver: Resolver::default(),
            dedup,
            pending: Vec::new(),
            after_failure: false,
            suppressed: Suppressed::default(),
            clock,
            metrics,
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
            // anything is acknowledged again, copy the whole WAL into the database file and
            // fsync it. Until that succeeds, the store stays unavailable.
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
        self.suppressed = privacy::load_suppressed(&conn)?;
        self.conn = Some(conn);
        Ok(())
    }

    /// Runs until every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        // A privacy command taken while gathering a group waits for the group to commit.
        let mut held: Option<Command> = None;
        while let Some(first) = held.take().or_else(|| rx.blocking_recv()) {
            if let Command::Privacy { op, reply } = first {
                let _ = reply.send(self.apply_privacy(op));
                continue;
            }
            let mut group = vec![first];
            let mut messages = group_size(&group[0]);
            while messages < MAX_GROUP_MESSAGES {
                match rx.try_recv() {
                    Ok(cmd @ Command::Privacy { .. }) => {
                        held = Some(cmd);
                        break;
                    }
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
                        Command::Append { reply, batch } => {
                            let outcome = outcomes.next().expect("one outcome per append");
                            self.metrics.record_outcome(&outcome);
                            let _ = reply.send((Ok(outcome), Some(batch)));
                        }
                        Command::Barrier { reply } => {
                            let _ = reply.send(Ok(()));
                        }
                        Command::Roll { reply } => {
                            let rolled = self.log.roll();
                            if let Some(reply) = reply {
                                let _ = reply.send(rolled);
                            }
                        }
                        Command::PruneDedup { .. } | Command::Privacy { .. } => {}
                    }
                }
                if self.log.rows() >= self.seal_rows
                    && let Err(e) = self.log.roll()
                {
                    tracing::warn!(error = %e, "could not roll the tail segment; will retry");
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
                        Command::Append { reply, batch } => {
                            let _ = reply
                                .send((Err(StoreError::Unavailable(reason.clone())), Some(batch)));
                        }
                        Command::Barrier { reply }
                        | Command::Roll {
                            reply: Some(reply), ..
                        } => {
                            let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                        }
                        Command::Roll { reply: None }
                        | Command::PruneDedup { .. }
                        | Command::Privacy { .. } => {}
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

    /// Applies a group: identities, traits, names and warnings in one SQLite transaction
    /// (committed first, fsync'd only if it changed anything), then the events in one
    /// tail-log write and fdatasync. A crash between the two leaves persons without the
    /// events of an unacknowledged request: harmless, the retry resolves to them again.
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
        let mut outcomes = Vec::new();
        self.log.discard();
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
                        if privacy::is_suppressed(&self.suppressed, msg) {
                            outcome.suppressed += 1;
                            continue;
                        }
                        let hash = u128::from_le_bytes(msg.hash);
                        if !self.dedup.insert(hash, now) {
                            outcome.duplicates += 1;
                            continue;
                        }
                        self.pending.push(hash);
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
                        self.log.push(&Record {
                            seq: next_seq,
                            person: person.0,
                            ts: msg.ts,
                            name: name_id,
                            kind: msg.kind.code(),
                            entry: dedup::entry(hash, now),
                            body: &msg.body,
                        });
                        next_seq += 1;
                        outcome.stored += 1;
                    }
                    outcomes.push(outcome);
                }
                Command::PruneDedup { before, slack } => self.dedup.expire(*before, *slack),
                Command::Roll { .. } | Command::Barrier { .. } | Command::Privacy { .. } => {}
            }
        }
        tx.commit()?;
        self.log.commit(now)?;
        self.next_seq = next_seq;
        self.names.extend(new_names);
        Ok(outcomes)
    }
}

impl Writer {
    /// Applies a privacy command in its own transaction. Every seq below `next_seq` is in
    /// the log already, so a deletion's `sealed_through` covers every event of its persons.
    fn apply_privacy(&mut self, op: PrivacyOp) -> Result<PrivacyDone> {
        let result = self.try_privacy(op);
        if let Err(e) = &result
            && !matches!(e, StoreError::UnknownPerson)
        {
            tracing::error!(path = %self.path.display(), error = %e, "privacy command failed");
            // Caches may hold what the rolled-back transaction changed.
            self.conn = None;
            self.after_failure = true;
        }
        result
    }

    fn try_privacy(&mut self, op: PrivacyOp) -> Result<PrivacyDone> {
        if self.conn.is_none() {
            self.reopen()
                .map_err(|e| StoreError::Unavailable(format!("reopening database: {e}")))?;
        }
        let conn = self.conn.as_mut().expect("opened above");
        // Overwrite what the deletion frees rather than leave it in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let result = Self::privacy_tx(
            conn,
            &mut self.resolver,
            &mut self.suppressed,
            self.next_seq - 1,
            op,
        );
        conn.pragma_update(None, "secure_delete", "OFF")?;
        result
    }

    fn privacy_tx(
        conn: &mut Connection,
        resolver: &mut Resolver,
        suppressed: &mut Suppressed,
        last_seq: u64,
        op: PrivacyOp,
    ) -> Result<PrivacyDone> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        match op {
            PrivacyOp::Delete { request, now } => {
                let recorded = privacy::record(&tx, &request, now, last_seq)?;
                tx.commit()?;
                resolver.forget(&recorded.persons, &recorded.ids);
                suppressed.extend(recorded.suppressed.iter().copied());
                Ok(PrivacyDone::Deleted(recorded))
            }
            PrivacyOp::Unsuppress {
                kind,
                value,
                actor,
                now,
            } => {
                let removed = privacy::unsuppress(&tx, kind, &value, &actor, now)?;
                tx.commit()?;
                if let Some(h) = removed {
                    suppressed.remove(&h);
                }
                Ok(PrivacyDone::Unsuppressed(removed.is_some()))
            }
        }
    }
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
