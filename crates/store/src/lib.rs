//! The embedded event and profile store.
//!
//! Every project has a folder with an append-only log of recent events (the *tail*), an
//! SQLite database (persons, identities, event names, ingestion warnings), sorted dedup
//! files, and a set of immutable columnar *parts* sorted by (person, time), listed in an
//! atomically replaced manifest. Appends are durable when acknowledged; a background thread seals the tail into
//! parts and merges parts; readers take a [`Snapshot`] of parts plus tail. See
//! `ARCHITECTURE.md` for the invariants.
//!
//! This crate knows nothing of HTTP or of any wire format; it stores
//! [`lodestar_core::Message`]s. The [`EventStore`] trait is the boundary another backend
//! (ClickHouse + PostgreSQL) would implement.

mod catalog;
mod config;
mod db;
mod dedup;
mod derived;
mod error;
mod identity;
mod manifest;
mod metrics;
mod migrate;
pub mod part;
mod privacy;
mod project;
mod read;
mod tail;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use lodestar_core::{Clock, Message, PersonId, ProjectId, Timestamp};

pub use catalog::{ProjectInfo, ProjectSettings, check_project_name};
pub use config::StoreConfig;
pub use derived::{
    Membership, ModelFitRow, PersonScore, SegmentEventRow, SegmentRow, StageChangeRow,
};
pub use error::{Result, StoreError};
pub use identity::IdKind;
pub use manifest::{Manifest, PartEntry};
pub use metrics::{Histogram, LATENCY_BUCKETS, StoreMetrics};
pub use privacy::{AuditRow, Deletion, DeletionRequest, DeletionStatus, PersonRef};
pub use project::{AppendPipeline, AppendTicket, Profile, TraitChange, WarningRow};
pub use read::{Run, RunOffsets, Snapshot, TailRows};
pub use writer::{AppendBatch, AppendOutcome, Quarantined};

use catalog::Catalog;
use project::Project;

/// What any Lodestar storage backend offers the rest of the system.
pub trait EventStore: Send + Sync + 'static {
    /// Creates a project and returns it with its write key (shown only this once).
    fn create_project(&self, name: &str) -> Result<(ProjectInfo, String)>;
    /// All projects.
    fn projects(&self) -> Result<Vec<ProjectInfo>>;
    /// The project with this name.
    fn project(&self, name: &str) -> Result<ProjectInfo>;
    /// The project this write key belongs to.
    fn authenticate(&self, write_key: &str) -> Option<ProjectInfo>;
    /// Queues a batch; the ticket resolves once it is durable (or failed).
    fn append(&self, project: ProjectId, batch: AppendBatch) -> Result<AppendTicket>;
    /// Visits every event with its canonical person and write sequence number.
    fn for_each_event(
        &self,
        project: ProjectId,
        f: &mut dyn FnMut(PersonId, u64, Message) -> Result<()>,
    ) -> Result<()>;
    /// Visits every (canonical) person's profile.
    fn for_each_profile(
        &self,
        project: ProjectId,
        f: &mut dyn FnMut(Profile) -> Result<()>,
    ) -> Result<()>;
    /// The latest ingestion warnings and rejections, newest first, with ids below `before`.
    fn warnings(
        &self,
        project: ProjectId,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<WarningRow>>;
    /// Waits until every append queued so far is durable.
    fn flush(&self, project: ProjectId) -> Result<()>;
    /// Deletes a person (and every person merged into it): at once out of every read and
    /// lookup, their ids suppressed when asked; their stored rows removed by a background
    /// job. Returns the job's id; [`StoreError::UnknownPerson`] if nobody has that id.
    fn request_deletion(
        &self,
        project: ProjectId,
        request: DeletionRequest,
        now: Timestamp,
    ) -> Result<i64>;
    /// A deletion job's status and counts.
    fn deletion(&self, project: ProjectId, id: i64) -> Result<Deletion>;
    /// Every deletion job, newest first.
    fn deletions(&self, project: ProjectId) -> Result<Vec<Deletion>>;
    /// The audit trail of deletions and suppressions, newest first, ids below `before`.
    fn audit(&self, project: ProjectId, limit: usize, before: Option<i64>)
    -> Result<Vec<AuditRow>>;
}

/// The embedded store: SQLite plus columnar parts under one data folder.
pub struct Store {
    config: StoreConfig,
    clock: Arc<dyn Clock>,
    catalog: Mutex<Catalog>,
    projects: RwLock<HashMap<ProjectId, Arc<Project>>>,
    metrics: Arc<StoreMetrics>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The maintenance thread, joined by [`Store::shutdown`].
    maintenance: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held (exclusively locked) while the store is open: one process owns a data folder.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.config.data_dir)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `config.data_dir`, and starts its background
    /// maintenance unless `maintenance_interval_ms` is 0.
    pub fn open(config: StoreConfig, clock: Arc<dyn Clock>) -> Result<Arc<Store>> {
        std::fs::create_dir_all(config.data_dir.join("projects"))
            .map_err(|e| StoreError::io(&config.data_dir, e))?;
        let lock_path = config.data_dir.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io(&lock_path, e))?;
        lock.try_lock()
            .map_err(|_| StoreError::Locked(config.data_dir.clone()))?;
        let catalog = Catalog::open(&config.data_dir)?;
        let store = Arc::new(Store {
            config: config.clone(),
            clock,
            catalog: Mutex::new(catalog),
            projects: RwLock::new(HashMap::new()),
            metrics: Arc::new(StoreMetrics::default()),
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            maintenance: Mutex::new(None),
            _lock: lock,
        });
        let infos = store.catalog.lock().expect("catalog lock").all();
        for info in infos {
            store.open_project(info)?;
        }
        if config.maintenance_interval_ms > 0 {
            let weak = Arc::downgrade(&store);
            let stop = store.stop.clone();
            let interval = std::time::Duration::from_millis(config.maintenance_interval_ms);
            let handle = std::thread::Builder::new()
                .name("maintenance".into())
                .spawn(move || maintenance_loop(weak, stop, interval))
                .map_err(|e| StoreError::io(&config.data_dir, e))?;
            *store.maintenance.lock().expect("maintenance handle lock") = Some(handle);
        }
        Ok(store)
    }

    /// Creates a project in the catalog of `data_dir` without opening the store, so it works
    /// while a server owns the folder (the server picks the project up on first use).
    pub fn create_project_in(
        data_dir: &std::path::Path,
        name: &str,
        now: Timestamp,
    ) -> Result<(ProjectInfo, String)> {
        std::fs::create_dir_all(data_dir.join("projects"))
            .map_err(|e| StoreError::io(data_dir, e))?;
        Catalog::open(data_dir)?.create(name, now)
    }

    /// Lists the projects in the catalog of `data_dir` without opening the store.
    pub fn projects_in(data_dir: &std::path::Path) -> Result<Vec<ProjectInfo>> {
        if !data_dir.join("catalog.db").exists() {
            return Ok(Vec::new());
        }
        Ok(Catalog::open(data_dir)?.all())
    }

    /// Gives a project a new write key and returns it (shown only this once). The old key is
    /// refused from the next request on; events it wrote stay as they are.
    pub fn rotate_key(&self, name: &str) -> Result<(ProjectInfo, String)> {
        self.catalog.lock().expect("catalog lock").rotate_key(name)
    }

    /// [`Store::rotate_key`] in the catalog of `data_dir` without opening the store, so it
    /// works while a server owns the folder: the server refuses the old key from its next
    /// request on (it notices the catalog changed before each key lookup).
    pub fn rotate_key_in(data_dir: &std::path::Path, name: &str) -> Result<(ProjectInfo, String)> {
        if !data_dir.join("catalog.db").exists() {
            return Err(StoreError::UnknownProject(name.to_string()));
        }
        Catalog::open(data_dir)?.rotate_key(name)
    }

    /// Records a day's lifecycle stage changes, (person, from, to), in the project's derived
    /// stream; idempotent per person and day. Returns rows added.
    pub fn record_stage_changes(
        &self,
        project: ProjectId,
        day: &str,
        at: Timestamp,
        changes: &[(u64, Option<String>, String)],
    ) -> Result<usize> {
        let mut kept = Vec::new();
        let changes = self.without_deleted(project, changes, |c| c.0, &mut kept)?;
        derived::record_stage_changes(&self.project_dir(project), day, at, changes)
    }

    /// The last day whose stage changes were recorded.
    pub fn stages_through(&self, project: ProjectId) -> Result<Option<String>> {
        derived::stages_through(&self.project_dir(project))
    }

    /// Up to `limit` stage changes with ids above `after`, in order.
    pub fn stage_changes(
        &self,
        project: ProjectId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StageChangeRow>> {
        derived::stage_changes(&self.project_dir(project), after, limit)
    }

    /// Looks a person up by a user id, an anonymous id or a person id (give one): their
    /// canonical person's profile, or `None` when nobody has that id.
    pub fn find_profile(
        &self,
        project: ProjectId,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        person: Option<u64>,
    ) -> Result<Option<Profile>> {
        let p = self.handle(project)?;
        match p.find_person(user_id, anonymous_id, person)? {
            Some(id) => p.profile(id),
            None => Ok(None),
        }
    }

    /// The trait keys of the newest `sample` persons (top level, and one level into objects
    /// as `a.b`), with how many of them have each, most common first: what a segment builder
    /// offers to pick from.
    pub fn trait_keys(&self, project: ProjectId, sample: usize) -> Result<Vec<(String, usize)>> {
        self.handle(project)?.trait_keys(sample)
    }

    /// Calls `f(person, traits as JSON text)` for every canonical person in id order, or,
    /// given `persons`, for each of them (`None` for a person merged into another or unknown).
    /// Cheaper than [`EventStore::for_each_profile`]: no identities, no parsing.
    pub fn for_each_traits(
        &self,
        project: ProjectId,
        persons: Option<&[u64]>,
        f: &mut dyn FnMut(u64, Option<&str>) -> Result<()>,
    ) -> Result<()> {
        self.handle(project)?.for_each_traits(persons, f)
    }

    /// The latest `limit` trait changes (`$set`, `$set_once`) recorded under some persons
    /// (a person and those merged into them), newest first.
    pub fn trait_history(
        &self,
        project: ProjectId,
        persons: &[u64],
        limit: usize,
    ) -> Result<Vec<TraitChange>> {
        self.handle(project)?.trait_history(persons, limit)
    }

    /// Marks a segment as a rule-based tag (its name shows on its members' profiles), or
    /// not; false when there is no such segment.
    pub fn set_segment_tag(&self, project: ProjectId, segment: i64, tag: bool) -> Result<bool> {
        derived::set_tag(&self.project_dir(project), segment, tag)
    }

    /// The segments some persons (a person and those merged into them) are in.
    pub fn memberships(&self, project: ProjectId, persons: &[u64]) -> Result<Vec<Membership>> {
        derived::memberships(&self.project_dir(project), persons)
    }

    /// The latest `limit` segment entries and exits of some persons (a person and those
    /// merged into them), newest first.
    pub fn person_segment_events(
        &self,
        project: ProjectId,
        persons: &[u64],
        limit: usize,
    ) -> Result<Vec<SegmentEventRow>> {
        derived::person_segment_events(&self.project_dir(project), persons, limit)
    }

    /// The canonical person of each user id (None for ids nobody has).
    pub fn persons_of_users(
        &self,
        project: ProjectId,
        users: &[String],
    ) -> Result<Vec<Option<u64>>> {
        self.handle(project)?.persons_of_users(users)
    }

    /// Keeps a fitted model and every buyer's scores; returns its version (id).
    pub fn record_model_fit(
        &self,
        project: ProjectId,
        fit: &ModelFitRow,
        scores: &[PersonScore],
    ) -> Result<i64> {
        let mut kept = Vec::new();
        let scores = self.without_deleted(project, scores, |s| s.person, &mut kept)?;
        derived::record_model_fit(&self.project_dir(project), fit, scores)
    }

    /// A project's fitted models, newest first.
    pub fn model_fits(&self, project: ProjectId) -> Result<Vec<ModelFitRow>> {
        derived::model_fits(&self.project_dir(project))
    }

    /// Saves a segment (dynamic: `definition` is its condition tree; static: its persons);
    /// returns its id.
    pub fn create_segment(
        &self,
        project: ProjectId,
        name: &str,
        dynamic: bool,
        definition: &serde_json::Value,
        at: Timestamp,
    ) -> Result<i64> {
        derived::create_segment(&self.project_dir(project), name, dynamic, definition, at)
    }

    /// Every saved segment with its size.
    pub fn segments(&self, project: ProjectId) -> Result<Vec<SegmentRow>> {
        derived::segments(&self.project_dir(project))
    }

    /// Brings a segment's membership to `members` (ascending, distinct), recording each entry
    /// and exit once. Returns (entered, exited).
    pub fn update_segment_members(
        &self,
        project: ProjectId,
        segment: i64,
        members: &[u64],
        at: Timestamp,
    ) -> Result<(u64, u64)> {
        let mut kept = Vec::new();
        let members = self.without_deleted(project, members, |p| *p, &mut kept)?;
        derived::update_members(&self.project_dir(project), segment, None, members, at)
    }

    /// [`Store::update_segment_members`] among the persons of `scope` (ascending) only:
    /// `members` are those of them in the segment now; the others keep their membership.
    pub fn update_segment_members_among(
        &self,
        project: ProjectId,
        segment: i64,
        scope: &[u64],
        members: &[u64],
        at: Timestamp,
    ) -> Result<(u64, u64)> {
        let mut kept = Vec::new();
        let members = self.without_deleted(project, members, |p| *p, &mut kept)?;
        derived::update_members(
            &self.project_dir(project),
            segment,
            Some(scope),
            members,
            at,
        )
    }

    /// A segment's members above `after`, ascending.
    pub fn segment_members(
        &self,
        project: ProjectId,
        segment: i64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<u64>> {
        derived::segment_members(&self.project_dir(project), segment, after, limit)
    }

    /// Segment entries and exits with ids above `after`, in order.
    pub fn segment_events(
        &self,
        project: ProjectId,
        segment: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SegmentEventRow>> {
        derived::segment_events(&self.project_dir(project), segment, after, limit)
    }

    /// Every person's scores from the newest customer-value fit and the newest churn fit.
    pub fn latest_scores(&self, project: ProjectId) -> Result<Vec<PersonScore>> {
        derived::latest_scores(&self.project_dir(project))
    }

    /// A person's scores from every fit, newest first.
    pub fn person_scores(&self, project: ProjectId, person: u64) -> Result<Vec<PersonScore>> {
        derived::person_scores(&self.project_dir(project), person)
    }

    /// A project's settings.
    pub fn project_settings(&self, project: ProjectId) -> Result<ProjectSettings> {
        self.catalog.lock().expect("catalog lock").settings(project)
    }

    /// Replaces a project's settings (the caller checks them).
    pub fn set_project_settings(&self, project: ProjectId, s: &ProjectSettings) -> Result<()> {
        self.catalog
            .lock()
            .expect("catalog lock")
            .set_settings(project, s)
    }

    /// Reads a project's settings from the catalog of `data_dir` without opening the store,
    /// so it works while a server owns the folder.
    pub fn project_settings_in(data_dir: &std::path::Path, name: &str) -> Result<ProjectSettings> {
        let mut catalog = Catalog::open(data_dir)?;
        let id = catalog.by_name(name)?.id;
        catalog.settings(id)
    }

    /// Replaces a project's settings in the catalog of `data_dir` without opening the store;
    /// a running server reads them on its next query.
    pub fn set_project_settings_in(
        data_dir: &std::path::Path,
        name: &str,
        s: &ProjectSettings,
    ) -> Result<()> {
        let mut catalog = Catalog::open(data_dir)?;
        let id = catalog.by_name(name)?.id;
        catalog.set_settings(id, s)
    }

    fn open_project(&self, info: ProjectInfo) -> Result<Arc<Project>> {
        if let Some(p) = self.projects.read().expect("projects lock").get(&info.id) {
            return Ok(p.clone());
        }
        let mut projects = self.projects.write().expect("projects lock");
        if let Some(p) = projects.get(&info.id) {
            return Ok(p.clone());
        }
        let dir = self.project_dir(info.id);
        let project = Arc::new(Project::open(
            info.clone(),
            dir,
            self.config.clone(),
            self.clock.clone(),
            self.metrics.clone(),
        )?);
        projects.insert(info.id, project.clone());
        Ok(project)
    }

    fn project_dir(&self, id: ProjectId) -> PathBuf {
        self.config.data_dir.join("projects").join(id.0.to_string())
    }

    fn handle(&self, id: ProjectId) -> Result<Arc<Project>> {
        if let Some(p) = self.projects.read().expect("projects lock").get(&id) {
            return Ok(p.clone());
        }
        // Created by another process since we opened.
        let mut catalog = self.catalog.lock().expect("catalog lock");
        catalog.reload()?;
        let info = catalog
            .all()
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| StoreError::UnknownProject(id.to_string()))?;
        drop(catalog);
        self.open_project(info)
    }

    /// The store's counters.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// The settings it runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// A consistent snapshot of a project's events.
    pub fn snapshot(&self, project: ProjectId) -> Result<Snapshot> {
        self.handle(project)?.snapshot()
    }

    /// Seals every unsealed row of a project now. Returns rows sealed.
    pub fn seal_now(&self, project: ProjectId) -> Result<usize> {
        let p = self.handle(project)?;
        p.roll()?;
        let mut total = 0;
        loop {
            let n = p.seal_once()?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Merges parts of a project: all of them when `all`, else as the tier policy says.
    /// Returns the number of parts merged.
    pub fn compact_now(&self, project: ProjectId, all: bool) -> Result<usize> {
        self.handle(project)?.compact_once(all)
    }

    /// Rewrites every live part of a project written before the value column existed (the
    /// maintenance thread does one a round). Returns parts rewritten.
    pub fn upgrade_parts_now(&self, project: ProjectId) -> Result<usize> {
        let p = self.handle(project)?;
        let mut total = 0;
        while p.upgrade_once()? > 0 {
            total += 1;
        }
        Ok(total)
    }

    /// `rows` without those of deleted persons (a derived job that read the store before a
    /// deletion must not bring the person back): `rows` itself when none is, else the kept
    /// rows, in `kept`.
    fn without_deleted<'a, T: Clone>(
        &self,
        project: ProjectId,
        rows: &'a [T],
        person: impl Fn(&T) -> u64,
        kept: &'a mut Vec<T>,
    ) -> Result<&'a [T]> {
        let deleted = self.handle(project)?.all_deleted()?;
        if deleted.is_empty() || !rows.iter().any(|r| deleted.contains(&person(r))) {
            return Ok(rows);
        }
        kept.extend(
            rows.iter()
                .filter(|r| !deleted.contains(&person(r)))
                .cloned(),
        );
        Ok(kept)
    }

    /// Every person ever deleted from a project (stored ids).
    pub fn deleted_persons(&self, project: ProjectId) -> Result<std::collections::HashSet<u64>> {
        self.handle(project)?.all_deleted()
    }

    /// Runs a project's unfinished deletion jobs now (the maintenance thread runs them
    /// too). Returns the jobs finished.
    pub fn run_deletions_now(&self, project: ProjectId) -> Result<usize> {
        self.handle(project)?
            .run_deletions(&std::sync::atomic::AtomicBool::new(false))
    }

    /// Takes an id off a project's suppression list (recorded in the audit trail); whether
    /// it was on it. Messages with the id are stored again from then on.
    pub fn unsuppress(
        &self,
        project: ProjectId,
        kind: IdKind,
        value: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool> {
        self.handle(project)?.unsuppress(kind, value, actor, now)
    }

    /// The live manifest of a project.
    pub fn manifest(&self, project: ProjectId) -> Result<Manifest> {
        Ok(self.handle(project)?.manifest())
    }

    /// Bytes on disk of a project (database, its WAL, parts).
    pub fn disk_usage(&self, project: ProjectId) -> Result<u64> {
        let p = self.handle(project)?;
        Ok(dir_size(p.dir()))
    }

    /// Stops background maintenance, waiting for the step under way (a seal or a merge) to
    /// finish so that no half-written part is left behind. Queued appends still complete.
    pub fn shutdown(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let handle = self
            .maintenance
            .lock()
            .expect("maintenance handle lock")
            .take();
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }

    /// The current time of the store's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Nice value of the maintenance thread: sealing and compaction yield the CPU to the
/// writer and the request handlers when both cores are busy, and catch up when they are not.
const MAINTENANCE_NICE: i32 = 10;

fn lower_thread_priority(nice: i32) {
    #[allow(
        unsafe_code,
        reason = "plain syscalls on the calling thread, no memory involved"
    )]
    // SAFETY: gettid and setpriority take and return integers only.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc != 0 {
        tracing::debug!("could not lower the maintenance thread's priority");
    }
}

fn maintenance_loop(
    store: std::sync::Weak<Store>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    interval: std::time::Duration,
) {
    lower_thread_priority(MAINTENANCE_NICE);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(interval);
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(store) = store.upgrade() else { return };
        let projects: Vec<Arc<Project>> = store
            .projects
            .read()
            .expect("projects lock")
            .values()
            .cloned()
            .collect();
        for p in projects {
            if let Err(e) = p.maintain(&stop) {
                tracing::warn!(project = %p.info.name, error = %e, "maintenance failed; will retry");
            }
        }
    }
}

impl EventStore for Store {
    fn create_project(&self, name: &str) -> Result<(ProjectInfo, String)> {
        let (info, key) = self
            .catalog
            .lock()
            .expect("catalog lock")
            .create(name, self.clock.now())?;
        self.open_project(info.clone())?;
        Ok((info, key))
    }

    fn projects(&self) -> Result<Vec<ProjectInfo>> {
        let mut catalog = self.catalog.lock().expect("catalog lock");
        catalog.reload()?;
        Ok(catalog.all())
    }

    fn project(&self, name: &str) -> Result<ProjectInfo> {
        self.catalog.lock().expect("catalog lock").by_name(name)
    }

    fn authenticate(&self, write_key: &str) -> Option<ProjectInfo> {
        self.catalog.lock().expect("catalog lock").by_key(write_key)
    }

    fn append(&self, project: ProjectId, batch: AppendBatch) -> Result<AppendTicket> {
        self.handle(project)?.append(batch)
    }

    fn for_each_event(
        &self,
        project: ProjectId,
        f: &mut dyn FnMut(PersonId, u64, Message) -> Result<()>,
    ) -> Result<()> {
        self.snapshot(project)?.for_each_message(f)
    }

    fn for_each_profile(
        &self,
        project: ProjectId,
        f: &mut dyn FnMut(Profile) -> Result<()>,
    ) -> Result<()> {
        self.handle(project)?.for_each_profile(f)
    }

    fn warnings(
        &self,
        project: ProjectId,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<WarningRow>> {
        self.handle(project)?.warnings(limit, before)
    }

    fn flush(&self, project: ProjectId) -> Result<()> {
        self.handle(project)?.barrier()
    }

    fn request_deletion(
        &self,
        project: ProjectId,
        request: DeletionRequest,
        now: Timestamp,
    ) -> Result<i64> {
        self.handle(project)?.request_deletion(request, now)
    }

    fn deletion(&self, project: ProjectId, id: i64) -> Result<Deletion> {
        self.handle(project)?.deletion(id)
    }

    fn deletions(&self, project: ProjectId) -> Result<Vec<Deletion>> {
        self.handle(project)?.deletions()
    }

    fn audit(
        &self,
        project: ProjectId,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<AuditRow>> {
        self.handle(project)?.audit(limit, before)
    }
}
