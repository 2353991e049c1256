//! Where kernels read events: one person at a time, each person's events in time order.
//!
//! [`PersonSource`] is the only thing a kernel sees. [`SnapshotSource`] implements it over a
//! store [`Snapshot`]: the parts and the tail are each sorted by (stored person, time), so a
//! person's events are a few contiguous slices, one per run; they are merged by time only
//! when more than one run holds the person. Persons merged into another (an anonymous visitor
//! who later identified) are read under their canonical person. [`VecSource`] holds events
//! in memory, for tests and for small inputs.
//!
//! Sharding: a source splits its persons into `shards` disjoint sets so kernels can run one
//! thread per shard and add up their partial results.

use std::collections::HashMap;
use std::sync::Arc;

use lodestar_core::PersonId;
use lodestar_store::{Run, RunOffsets, Snapshot};

/// One person's events, in time order; events with equal times in the order they were
/// written (write sequence).
#[derive(Debug, Clone, Copy, Default)]
pub struct Events<'a> {
    /// Event time per event (ms since the Unix epoch, UTC).
    pub ts: &'a [i64],
    /// Event-name id per event (an index into [`PersonSource::names`]).
    pub names: &'a [u32],
    /// The event's value per event (its `revenue`, `value`, … property; see
    /// `lodestar_core::event_value`), NaN when it has none. Empty unless the kernel asked
    /// for values ([`PersonSource::for_each_person_with_values`]).
    pub values: &'a [f64],
}

impl<'a> Events<'a> {
    /// Events `a..b`.
    pub fn slice(&self, a: usize, b: usize) -> Events<'a> {
        Events {
            ts: &self.ts[a..b],
            names: &self.names[a..b],
            values: if self.values.is_empty() {
                &[]
            } else {
                &self.values[a..b]
            },
        }
    }

    /// The events within `[from, to)`.
    pub fn within(&self, from: i64, to: i64) -> Events<'a> {
        // Usually every event is inside: two comparisons instead of two binary searches.
        if self.ts.first().is_some_and(|&t| t >= from) && self.ts.last().is_some_and(|&t| t < to) {
            return *self;
        }
        let a = self.ts.partition_point(|&t| t < from);
        let b = self.ts.partition_point(|&t| t < to);
        self.slice(a, b)
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

/// Per person, (time, value) rows in time order.
pub type RowsWhere = HashMap<u64, Vec<(i64, serde_json::Value)>>;

/// A set of persons with their events, readable in shards.
pub trait PersonSource: Sync {
    /// The event-name dictionary.
    fn names(&self) -> &[String];

    /// Calls `f` once for every person of shard `shard` (of `shards`) that has events. Every
    /// person belongs to exactly one shard. With `values`, [`Events::values`] holds each
    /// event's value; without, it may be empty (a source then skips copying them).
    fn visit(
        &self,
        shard: usize,
        shards: usize,
        values: bool,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    );

    /// [`PersonSource::visit`] for kernels that read times and names only
    /// ([`Events::values`] may be empty).
    fn for_each_person(
        &self,
        shard: usize,
        shards: usize,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    ) {
        self.visit(shard, shards, false, f);
    }

    /// For kernels that do not depend on event order across a person's calls (sums, counts,
    /// maxima): calls `f` one or more times per person, consecutively, each time with some
    /// of the person's events (each call's in time order) and their values, so that a
    /// source can skip merging a person's slices into one sequence.
    fn for_each_person_unordered(
        &self,
        shard: usize,
        shards: usize,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    ) {
        self.visit(shard, shards, true, f);
    }

    /// [`PersonSource::visit`] with each event's value.
    fn for_each_person_with_values(
        &self,
        shard: usize,
        shards: usize,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    ) {
        self.visit(shard, shards, true, f);
    }

    /// Per person, the (time, what `f` makes of the properties) of the events named `event`
    /// (any when `None`) within `[from, to)` for which `f` answers, in time order. Sources
    /// that hold no properties answer with an error.
    fn rows_where(
        &self,
        event: Option<u32>,
        from: i64,
        to: i64,
        threads: usize,
        f: &(dyn Fn(&lodestar_core::JsonMap) -> Option<serde_json::Value> + Sync),
    ) -> crate::Result<RowsWhere> {
        let _ = (event, from, to, threads, f);
        Err(crate::AnalyticsError::invalid(
            "where",
            "this source holds no event properties",
        ))
    }

    /// The same source kept to `persons` (sorted), when it can be.
    fn restricted_to<'s>(&'s self, persons: Vec<u64>) -> Option<Box<dyn PersonSource + 's>> {
        let _ = persons;
        None
    }

    /// Per person, the times of the events named `event` within `[from, to)` whose
    /// properties satisfy every condition of `conds`.
    fn times_where(
        &self,
        event: u32,
        conds: &[crate::filter::Condition],
        from: i64,
        to: i64,
        threads: usize,
    ) -> crate::Result<HashMap<u64, Vec<i64>>> {
        let rows = self.rows_where(Some(event), from, to, threads, &|props| {
            conds
                .iter()
                .all(|c| c.holds(props))
                .then_some(serde_json::Value::Null)
        })?;
        Ok(rows
            .into_iter()
            .map(|(p, r)| (p, r.into_iter().map(|(t, _)| t).collect()))
            .collect())
    }

    /// Per person, the (time, value) of property `property` on the events named `event` (any
    /// when `None`) within `[from, to)` (null when absent).
    fn property_values(
        &self,
        event: Option<u32>,
        property: &str,
        from: i64,
        to: i64,
        threads: usize,
    ) -> crate::Result<RowsWhere> {
        self.rows_where(event, from, to, threads, &|props| {
            Some(
                crate::filter::property(props, property)
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            )
        })
    }

    /// The id of an event name, if any event has it.
    fn name_id(&self, name: &str) -> Option<u32> {
        self.names()
            .iter()
            .position(|n| n == name)
            .map(|i| i as u32)
    }
}

/// Persons and their events held in memory.
#[derive(Debug, Clone, Default)]
pub struct VecSource {
    names: Vec<String>,
    /// Per person, sorted by person: (person, ts, name, value), each person's events in
    /// time order.
    persons: Vec<PersonRows>,
    /// Per person (as `persons`), each event's properties, when given.
    properties: Option<Vec<Vec<lodestar_core::JsonMap>>>,
}

type PersonRows = (u64, Vec<i64>, Vec<u32>, Vec<f64>);

impl VecSource {
    /// Builds a source from (person, time, event name) rows in any order. Rows of one person
    /// with equal times keep their given order.
    pub fn new<'a>(rows: impl IntoIterator<Item = (u64, i64, &'a str)>) -> VecSource {
        VecSource::with_values(rows.into_iter().map(|(p, t, n)| (p, t, n, f64::NAN)))
    }

    /// Builds a source from (person, time, event name, value) rows in any order; NaN is "no
    /// value". Rows of one person with equal times keep their given order.
    pub fn with_values<'a>(rows: impl IntoIterator<Item = (u64, i64, &'a str, f64)>) -> VecSource {
        let mut source = VecSource::with_properties(
            rows.into_iter()
                .map(|(p, t, n, v)| (p, t, n, v, lodestar_core::JsonMap::new())),
        );
        source.properties = None;
        source
    }

    /// Builds a source from (person, time, event name, value, properties) rows in any
    /// order; NaN is "no value". Rows of one person with equal times keep their given order.
    pub fn with_properties<'a>(
        rows: impl IntoIterator<Item = (u64, i64, &'a str, f64, lodestar_core::JsonMap)>,
    ) -> VecSource {
        let mut names: Vec<String> = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut by_person: HashMap<u64, Vec<(i64, u32, f64, lodestar_core::JsonMap)>> =
            HashMap::new();
        for (person, ts, name, value, props) in rows {
            let id = *ids.entry(name.to_string()).or_insert_with(|| {
                names.push(name.to_string());
                names.len() as u32 - 1
            });
            by_person
                .entry(person)
                .or_default()
                .push((ts, id, value, props));
        }
        let mut by_person: Vec<_> = by_person.into_iter().collect();
        by_person.sort_by_key(|p| p.0);
        let mut persons = Vec::with_capacity(by_person.len());
        let mut properties = Vec::with_capacity(by_person.len());
        for (p, mut ev) in by_person {
            ev.sort_by_key(|e| e.0);
            persons.push((
                p,
                ev.iter().map(|e| e.0).collect(),
                ev.iter().map(|e| e.1).collect(),
                ev.iter().map(|e| e.2).collect(),
            ));
            properties.push(ev.into_iter().map(|e| e.3).collect());
        }
        VecSource {
            names,
            persons,
            properties: Some(properties),
        }
    }
}

impl PersonSource for VecSource {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn restricted_to<'s>(&'s self, persons: Vec<u64>) -> Option<Box<dyn PersonSource + 's>> {
        let keep = |i: &usize| persons.binary_search(&self.persons[*i].0).is_ok();
        let kept: Vec<usize> = (0..self.persons.len()).filter(keep).collect();
        Some(Box::new(VecSource {
            names: self.names.clone(),
            persons: kept.iter().map(|&i| self.persons[i].clone()).collect(),
            properties: self
                .properties
                .as_ref()
                .map(|props| kept.iter().map(|&i| props[i].clone()).collect()),
        }))
    }

    fn visit(
        &self,
        shard: usize,
        shards: usize,
        _values: bool,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    ) {
        for (i, (p, ts, names, values)) in self.persons.iter().enumerate() {
            if i % shards.max(1) == shard {
                f(PersonId(*p), Events { ts, names, values });
            }
        }
    }

    fn rows_where(
        &self,
        event: Option<u32>,
        from: i64,
        to: i64,
        _threads: usize,
        f: &(dyn Fn(&lodestar_core::JsonMap) -> Option<serde_json::Value> + Sync),
    ) -> crate::Result<RowsWhere> {
        let Some(properties) = &self.properties else {
            return Err(crate::AnalyticsError::invalid(
                "where",
                "this source holds no event properties",
            ));
        };
        let mut out = RowsWhere::new();
        for ((p, ts, names, _), props) in self.persons.iter().zip(properties) {
            for i in 0..ts.len() {
                if event.is_none_or(|e| names[i] == e)
                    && ts[i] >= from
                    && ts[i] < to
                    && let Some(v) = f(&props[i])
                {
                    out.entry(*p).or_default().push((ts[i], v));
                }
            }
        }
        Ok(out)
    }
}

/// An event as the snapshot reader sorts it: (time, write sequence, name id, value).
type Row = (i64, u64, u32, f64);

/// Sorts rows into (time, seq) order: equal times in write order.
fn sort_rows(rows: &mut [Row]) {
    rows.sort_unstable_by_key(|r| (r.0, r.1));
}

/// The events of a store snapshot, per canonical person.
pub struct SnapshotSource<'a> {
    snapshot: &'a Snapshot,
    runs: Vec<Run<'a>>,
    /// Rows (time, seq, name) of persons merged into another, gathered under the canonical
    /// person; sorted by that person.
    extra: Arc<Vec<(u64, Vec<Row>)>>,
    /// Stored ids of persons merged into another, sorted.
    merged_from: Arc<Vec<u64>>,
    /// One past the largest person id stored or canonical.
    person_end: u64,
    /// Per run, the rows event filters dropped (a bitset; none when nothing was dropped).
    masks: Arc<Vec<Option<Vec<u64>>>>,
    /// When persons are filtered: the canonical persons kept, sorted.
    allowed: Option<Vec<u64>>,
}

impl std::fmt::Debug for SnapshotSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSource")
            .field("runs", &self.runs.len())
            .field("merged_persons", &self.extra.len())
            .finish()
    }
}

impl<'a> SnapshotSource<'a> {
    /// Reads `snapshot`.
    pub fn new(snapshot: &'a Snapshot) -> SnapshotSource<'a> {
        SnapshotSource::build(snapshot, Vec::new(), None)
    }

    /// Reads `snapshot` keeping only the events the event conditions of `filters` keep and,
    /// when `persons` is given, only those canonical persons (sorted or not). Event bodies
    /// are read with `threads` threads.
    pub fn filtered(
        snapshot: &'a Snapshot,
        filters: &crate::filter::Filters,
        persons: Option<Vec<u64>>,
        threads: usize,
    ) -> crate::Result<SnapshotSource<'a>> {
        filters.check()?;
        let masks = if filters.events.is_empty() {
            Vec::new()
        } else {
            crate::filter::event_masks(snapshot, &filters.events, threads)?
        };
        let allowed = persons.map(|mut p| {
            p.sort_unstable();
            p.dedup();
            p
        });
        Ok(SnapshotSource::build(snapshot, masks, allowed))
    }

    fn build(
        snapshot: &'a Snapshot,
        masks: Vec<Option<Vec<u64>>>,
        allowed: Option<Vec<u64>>,
    ) -> SnapshotSource<'a> {
        let runs = snapshot.runs();
        let mask = |r: usize| masks.get(r).and_then(Option::as_ref);
        let mut extra: HashMap<u64, Vec<Row>> = HashMap::new();
        let merged = snapshot.merged_persons();
        let mut from: Vec<u64> = merged.keys().copied().collect();
        from.sort_unstable();
        for (r, run) in runs.iter().enumerate() {
            // One sequential walk of the run's persons against the sorted merged ids.
            let mut cursor = Cursor { run, at: 0 };
            let mut next = 0usize;
            while let (Some(p), Some(&want)) = (cursor.peek(), from.get(next)) {
                if p < want {
                    cursor.at += gallop(&run.person_ids[cursor.at..], want);
                    continue;
                }
                if p > want {
                    next += gallop(&from[next..], p);
                    continue;
                }
                let (start, end) = cursor.take();
                let rows = extra.entry(merged[&want]).or_default();
                rows.extend(
                    (start..end)
                        .filter(|&i| mask(r).is_none_or(|m| !crate::filter::bit(m, i)))
                        .map(|i| (run.ts[i], run.seqs[i], run.names[i], run.values[i])),
                );
                next += 1;
            }
        }
        let mut extra: Vec<(u64, Vec<Row>)> = extra.into_iter().collect();
        for (_, rows) in &mut extra {
            sort_rows(rows);
        }
        extra.sort_unstable_by_key(|e| e.0);
        let mut person_end = extra.last().map_or(0, |e| e.0 + 1);
        for run in &runs {
            if let Some(p) = run.person_ids.last() {
                person_end = person_end.max(p + 1);
            }
        }
        SnapshotSource {
            snapshot,
            runs,
            extra: Arc::new(extra),
            merged_from: Arc::new(from),
            person_end,
            masks: Arc::new(masks),
            allowed,
        }
    }

    /// The same source limited to `persons` (canonical ids) among those it keeps.
    pub(crate) fn restricted(&self, mut persons: Vec<u64>) -> SnapshotSource<'a> {
        persons.sort_unstable();
        persons.dedup();
        persons.retain(|&p| self.kept(p));
        SnapshotSource {
            snapshot: self.snapshot,
            runs: self.runs.clone(),
            extra: Arc::clone(&self.extra),
            merged_from: Arc::clone(&self.merged_from),
            person_end: self.person_end,
            masks: Arc::clone(&self.masks),
            allowed: Some(persons),
        }
    }

    /// The snapshot read.
    pub(crate) fn snapshot(&self) -> &'a Snapshot {
        self.snapshot
    }

    /// Whether the event filters dropped row `i` of run `r`.
    pub(crate) fn dropped(&self, r: usize, i: usize) -> bool {
        self.mask(r).is_some_and(|m| crate::filter::bit(m, i))
    }

    fn mask(&self, run: usize) -> Option<&[u64]> {
        self.masks.get(run).and_then(|m| m.as_deref())
    }

    /// Whether the filters drop any of rows `s..e` of run `r`.
    fn masked(&self, r: usize, s: usize, e: usize) -> bool {
        self.mask(r)
            .is_some_and(|m| crate::filter::any_bit(m, s, e))
    }

    /// Whether the person filter keeps canonical person `person` (never a person being
    /// deleted: their rows may still be in the snapshot's parts).
    pub(crate) fn kept(&self, person: u64) -> bool {
        !self.snapshot.is_deleted(person)
            && self
                .allowed
                .as_ref()
                .is_none_or(|a| a.binary_search(&person).is_ok())
    }
}

impl SnapshotSource<'_> {
    /// When a person's slices (run, start, end) follow each other in (time, seq) order —
    /// the usual case, as parts hold successive stretches of time — appends them in that
    /// order and returns true; else leaves the buffers empty and returns false.
    fn concatenate(&self, slices: &mut [(usize, usize, usize)], buf: &mut Buffers) -> bool {
        let key = |&(r, i): &(usize, usize)| (self.runs[r].ts[i], self.runs[r].seqs[i]);
        slices.sort_unstable_by_key(|&(r, s, _)| key(&(r, s)));
        for w in slices.windows(2) {
            let (r0, _, e0) = w[0];
            let (r1, s1, _) = w[1];
            if key(&(r0, e0 - 1)) > key(&(r1, s1)) {
                return false;
            }
        }
        for &(r, s, e) in slices.iter() {
            let run = &self.runs[r];
            buf.ts.extend_from_slice(&run.ts[s..e]);
            buf.names.extend_from_slice(&run.names[s..e]);
            if buf.with_values {
                buf.values.extend_from_slice(&run.values[s..e]);
            }
        }
        true
    }
}

/// How many leading items of sorted `v` are below `x`: exponential then binary search, so a
/// short skip costs a few steps near the start.
fn gallop(v: &[u64], x: u64) -> usize {
    let mut hi = 1;
    while hi < v.len() && v[hi] < x {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(v.len());
    lo + v[lo..hi].partition_point(|&q| q < x)
}

/// A position in one run: the next person block at or after a person id.
struct Cursor<'r, 'a> {
    run: &'r Run<'a>,
    /// Person index (`Ranges`) or row index (`PerRow`).
    at: usize,
}

impl Cursor<'_, '_> {
    fn peek(&self) -> Option<u64> {
        self.run.person_ids.get(self.at).copied()
    }

    /// The current block's rows; advances past it.
    fn take(&mut self) -> (usize, usize) {
        match self.run.person_offsets {
            RunOffsets::Ranges(offsets) => {
                let r = (offsets[self.at] as usize, offsets[self.at + 1] as usize);
                self.at += 1;
                r
            }
            RunOffsets::PerRow => {
                let p = self.run.person_ids[self.at];
                let start = self.at;
                while self.run.person_ids.get(self.at) == Some(&p) {
                    self.at += 1;
                }
                (start, self.at)
            }
        }
    }
}

impl PersonSource for SnapshotSource<'_> {
    fn names(&self) -> &[String] {
        self.snapshot.names()
    }

    fn restricted_to<'s>(&'s self, persons: Vec<u64>) -> Option<Box<dyn PersonSource + 's>> {
        Some(Box::new(self.restricted(persons)))
    }

    fn visit(
        &self,
        shard: usize,
        shards: usize,
        values: bool,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    ) {
        self.walk(shard, shards, values, false, f);
    }

    fn for_each_person_unordered(
        &self,
        shard: usize,
        shards: usize,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    ) {
        self.walk(shard, shards, true, true, f);
    }

    fn rows_where(
        &self,
        event: Option<u32>,
        from: i64,
        to: i64,
        threads: usize,
        f: &(dyn Fn(&lodestar_core::JsonMap) -> Option<serde_json::Value> + Sync),
    ) -> crate::Result<RowsWhere> {
        let runs = &self.runs;
        let found = crate::filter::scan_bodies(
            self.snapshot,
            |r, i| {
                let run = &runs[r];
                event.is_none_or(|e| run.names[i] == e)
                    && run.ts[i] >= from
                    && run.ts[i] < to
                    && !self.dropped(r, i)
                    && (self.allowed.is_none()
                        || self.kept(self.snapshot.canonical(run.stored_person(i))))
            },
            threads,
            |_, _, props| f(props),
        )?;
        let mut out = RowsWhere::new();
        for (r, rows) in found.into_iter().enumerate() {
            let run = &runs[r];
            for (i, v) in rows {
                let person = self.snapshot.canonical(run.stored_person(i));
                out.entry(person).or_default().push((run.ts[i], v));
            }
        }
        for rows in out.values_mut() {
            rows.sort_by_key(|r| r.0);
        }
        Ok(out)
    }
}

impl SnapshotSource<'_> {
    /// The walk behind [`PersonSource::visit`]; `unordered` gives a person's slices one call
    /// each instead of merging them (when no filter or merged person is involved).
    fn walk(
        &self,
        shard: usize,
        shards: usize,
        values: bool,
        unordered: bool,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    ) {
        let shards = shards.max(1) as u64;
        let mut lo = self.person_end * shard as u64 / shards;
        let mut hi = self.person_end * (shard as u64 + 1) / shards;
        // A source kept to some persons walks only their range (one person's lookup reads
        // one person, not the whole store).
        if let Some(allowed) = &self.allowed {
            let (Some(&first), Some(&last)) = (allowed.first(), allowed.last()) else {
                return;
            };
            lo = lo.max(first);
            hi = hi.min(last + 1);
        }
        let mut cursors: Vec<Cursor<'_, '_>> = self
            .runs
            .iter()
            .map(|run| Cursor {
                run,
                at: run.person_ids.partition_point(|&p| p < lo),
            })
            .collect();
        // Both sorted, walked alongside the persons (which come in ascending order).
        let mut mi = self.merged_from.partition_point(|&p| p < lo);
        let mut ei = self.extra.partition_point(|e| e.0 < lo);
        let mut slices: Vec<(usize, usize, usize)> = Vec::new();
        let mut buf = Buffers {
            with_values: values,
            ..Buffers::default()
        };
        let mut rows: Vec<Row> = Vec::new();
        // Persons kept: jump to each (a gallop per run) instead of stepping through everyone.
        if let Some(allowed) = &self.allowed {
            let from = allowed.partition_point(|&p| p < lo);
            for &person in allowed[from..].iter().take_while(|&&p| p < hi) {
                if self.merged_from.binary_search(&person).is_ok() || !self.kept(person) {
                    continue;
                }
                slices.clear();
                for (i, c) in cursors.iter_mut().enumerate() {
                    c.at += gallop(&c.run.person_ids[c.at..], person);
                    if c.peek() == Some(person) {
                        let (s, e) = c.take();
                        slices.push((i, s, e));
                    }
                }
                let extra = self
                    .extra
                    .binary_search_by_key(&person, |e| e.0)
                    .ok()
                    .map(|i| &self.extra[i].1);
                if slices.is_empty() {
                    if let Some(rows) = extra {
                        emit_rows(person, rows, &mut buf, f);
                    }
                    continue;
                }
                self.emit(
                    person,
                    &mut slices,
                    extra,
                    unordered,
                    &mut buf,
                    &mut rows,
                    f,
                );
            }
            return;
        }
        while let Some(person) = cursors.iter().filter_map(|c| c.peek()).min() {
            if person >= hi {
                break;
            }
            slices.clear();
            for (i, c) in cursors.iter_mut().enumerate() {
                if c.peek() == Some(person) {
                    let (s, e) = c.take();
                    slices.push((i, s, e));
                }
            }
            // Canonical persons before this one whose every event is stored under merged ids.
            while let Some((p, rows)) = self.extra.get(ei).filter(|e| e.0 < person) {
                if self.kept(*p) {
                    emit_rows(*p, rows, &mut buf, f);
                }
                ei += 1;
            }
            while self.merged_from.get(mi).is_some_and(|&p| p < person) {
                mi += 1;
            }
            if self.merged_from.get(mi) == Some(&person) {
                // Read under its canonical person (in `extra`).
                continue;
            }
            let extra = match self.extra.get(ei) {
                Some((p, rows)) if *p == person => {
                    ei += 1;
                    Some(rows)
                }
                _ => None,
            };
            if !self.kept(person) {
                continue;
            }
            self.emit(
                person,
                &mut slices,
                extra,
                unordered,
                &mut buf,
                &mut rows,
                f,
            );
        }
        // Canonical persons after the last stored one whose events are all under merged ids.
        while let Some((p, rows)) = self.extra.get(ei).filter(|e| e.0 < hi) {
            if self.kept(*p) {
                emit_rows(*p, rows, &mut buf, f);
            }
            ei += 1;
        }
    }

    /// Calls `f` with one person's events from their slices (run, start, end) and the rows
    /// gathered from merged persons: each slice as it is when order does not matter or it
    /// is alone, else merged by (time, seq); rows the filters dropped are left out.
    #[allow(clippy::too_many_arguments, reason = "the walk's reusable buffers")]
    fn emit(
        &self,
        person: u64,
        slices: &mut [(usize, usize, usize)],
        extra: Option<&Vec<Row>>,
        unordered: bool,
        buf: &mut Buffers,
        rows: &mut Vec<Row>,
        f: &mut dyn FnMut(PersonId, Events<'_>),
    ) {
        let values = buf.with_values;
        let masked = slices.iter().any(|&(r, s, e)| self.masked(r, s, e));
        if (slices.len() == 1 || unordered) && extra.is_none() && !masked {
            for &(r, s, e) in slices.iter() {
                let run = &self.runs[r];
                f(
                    PersonId(person),
                    Events {
                        ts: &run.ts[s..e],
                        names: &run.names[s..e],
                        values: if values { &run.values[s..e] } else { &[] },
                    },
                );
            }
            return;
        }
        buf.clear();
        if extra.is_none() && !masked && self.concatenate(slices, buf) {
            f(PersonId(person), buf.events());
            return;
        }
        rows.clear();
        for &(r, s, e) in slices.iter() {
            let run = &self.runs[r];
            let mask = self.mask(r);
            rows.extend(
                (s..e)
                    .filter(|&i| mask.is_none_or(|m| !crate::filter::bit(m, i)))
                    .map(|i| (run.ts[i], run.seqs[i], run.names[i], run.values[i])),
            );
        }
        if let Some(extra) = extra {
            rows.extend_from_slice(extra);
        }
        if rows.is_empty() {
            return;
        }
        sort_rows(rows);
        buf.extend(rows);
        f(PersonId(person), buf.events());
    }
}

/// Calls `f` with rows already in (time, seq) order.
fn emit_rows(
    person: u64,
    rows: &[Row],
    buf: &mut Buffers,
    f: &mut dyn FnMut(PersonId, Events<'_>),
) {
    if rows.is_empty() {
        return;
    }
    buf.clear();
    buf.extend(rows);
    f(PersonId(person), buf.events());
}

/// One person's events gathered from several slices.
#[derive(Default)]
struct Buffers {
    ts: Vec<i64>,
    names: Vec<u32>,
    values: Vec<f64>,
    /// Whether values are gathered (else `values` stays empty).
    with_values: bool,
}

impl Buffers {
    fn clear(&mut self) {
        self.ts.clear();
        self.names.clear();
        self.values.clear();
    }

    fn extend(&mut self, rows: &[Row]) {
        self.ts.extend(rows.iter().map(|r| r.0));
        self.names.extend(rows.iter().map(|r| r.2));
        if self.with_values {
            self.values.extend(rows.iter().map(|r| r.3));
        }
    }

    fn events(&self) -> Events<'_> {
        Events {
            ts: &self.ts,
            names: &self.names,
            values: &self.values,
        }
    }
}

/// Runs `work` on every shard of `source`, one thread a shard, and returns the partial
/// results in shard order.
pub fn run_sharded<T: Send>(
    source: &dyn PersonSource,
    threads: usize,
    work: impl Fn(&dyn PersonSource, usize, usize) -> T + Sync,
) -> Vec<T> {
    let threads = threads.max(1);
    if threads == 1 {
        return vec![work(source, 0, 1)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|shard| {
                let work = &work;
                scope.spawn(move || work(source, shard, threads))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("analysis thread panicked"))
            .collect()
    })
}
