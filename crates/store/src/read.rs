//! Reading: a consistent snapshot of a project's events (live parts plus the unsealed tail)
//! with person ids resolved to their canonical persons.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use lodestar_core::{Message, PersonId};

use crate::error::{Result, StoreError};
use crate::part::Part;

/// The unsealed tail, as columns sorted by (canonical person, ts, seq).
#[derive(Debug, Default)]
pub struct TailRows {
    /// Canonical person per row.
    pub persons: Vec<u64>,
    /// Event time per row.
    pub ts: Vec<i64>,
    /// Event-name id per row.
    pub names: Vec<u32>,
    /// Kind code per row.
    pub kinds: Vec<u8>,
    /// Write sequence number per row.
    pub seqs: Vec<u64>,
    /// Event value per row ([`lodestar_core::event_value`]), NaN for none.
    pub values: Vec<f64>,
    /// Message body (JSON) per row.
    pub bodies: Vec<Vec<u8>>,
    /// Dedup entry per row (see `dedup::entry`).
    pub(crate) entries: Vec<u128>,
}

impl TailRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Drops the rows of `persons` (none when it is empty).
    pub(crate) fn drop_persons(&mut self, persons: &HashSet<u64>) {
        if persons.is_empty() || !self.persons.iter().any(|p| persons.contains(p)) {
            return;
        }
        let keep: Vec<bool> = self.persons.iter().map(|p| !persons.contains(p)).collect();
        fn retain<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        retain(&mut self.persons, &keep);
        retain(&mut self.ts, &keep);
        retain(&mut self.names, &keep);
        retain(&mut self.kinds, &keep);
        retain(&mut self.seqs, &keep);
        retain(&mut self.values, &keep);
        retain(&mut self.bodies, &keep);
        if !self.entries.is_empty() {
            retain(&mut self.entries, &keep);
        }
    }

    /// Sorts rows by (person, ts, seq).
    pub(crate) fn sort(&mut self) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by_key(|&i| (self.persons[i], self.ts[i], self.seqs[i]));
        let take = |v: &Vec<u64>| order.iter().map(|&i| v[i]).collect::<Vec<_>>();
        self.persons = take(&self.persons);
        self.seqs = take(&self.seqs);
        self.ts = order.iter().map(|&i| self.ts[i]).collect();
        self.names = order.iter().map(|&i| self.names[i]).collect();
        self.kinds = order.iter().map(|&i| self.kinds[i]).collect();
        self.values = order.iter().map(|&i| self.values[i]).collect();
        if !self.entries.is_empty() {
            self.entries = order.iter().map(|&i| self.entries[i]).collect();
        }
        let mut bodies: Vec<Option<Vec<u8>>> = std::mem::take(&mut self.bodies)
            .into_iter()
            .map(Some)
            .collect();
        self.bodies = order
            .iter()
            .map(|&i| bodies[i].take().expect("each row once"))
            .collect();
    }
}

/// Hot columns of one sorted run of events (a part or the tail), for scans.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// Person per row, as stored; resolve with [`Snapshot::canonical`]. For parts this is
    /// expanded from the per-person offsets on demand; see [`Run::person_ranges`].
    pub person_ids: &'a [u64],
    /// Row ranges per person (`offsets[i]..offsets[i + 1]` belong to `person_ids[i]`).
    pub person_offsets: RunOffsets<'a>,
    /// Event time per row.
    pub ts: &'a [i64],
    /// Event-name id per row.
    pub names: &'a [u32],
    /// Kind code per row.
    pub kinds: &'a [u8],
    /// Write sequence number per row (orders events with equal times).
    pub seqs: &'a [u64],
    /// Event value per row, NaN for none.
    pub values: &'a [f64],
}

/// Person row ranges of a run: parts store them, the tail has one person per row.
#[derive(Debug, Clone, Copy)]
pub enum RunOffsets<'a> {
    /// `person_ids[i]` owns rows `offsets[i]..offsets[i + 1]`.
    Ranges(&'a [u32]),
    /// `person_ids[i]` owns row `i` alone (rows of one person are adjacent).
    PerRow,
}

impl Run<'_> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.ts.len()
    }

    /// The person stored for row `i` (resolve it with [`Snapshot::canonical`]).
    pub fn stored_person(&self, i: usize) -> u64 {
        match self.person_offsets {
            RunOffsets::Ranges(offsets) => {
                self.person_ids[offsets.partition_point(|&o| o as usize <= i) - 1]
            }
            RunOffsets::PerRow => self.person_ids[i],
        }
    }

    /// Calls `f(person, row_start, row_end)` for each person block, in order.
    pub fn person_ranges(&self, mut f: impl FnMut(u64, usize, usize)) {
        match self.person_offsets {
            RunOffsets::Ranges(offsets) => {
                for (i, p) in self.person_ids.iter().enumerate() {
                    f(*p, offsets[i] as usize, offsets[i + 1] as usize);
                }
            }
            RunOffsets::PerRow => {
                let mut start = 0;
                while start < self.person_ids.len() {
                    let p = self.person_ids[start];
                    let mut end = start + 1;
                    while end < self.person_ids.len() && self.person_ids[end] == p {
                        end += 1;
                    }
                    f(p, start, end);
                    start = end;
                }
            }
        }
    }
}

/// A consistent view of a project's events at one moment.
///
/// Persons whose deletion was requested but is not done yet ([`Snapshot::is_deleted`]) are
/// left out of the tail, of [`Snapshot::events`] and of [`Snapshot::for_each_message`];
/// their rows may still be in [`Snapshot::parts`] (and so in [`Snapshot::runs`]) until the
/// deletion job has rewritten them, so a reader of runs skips the persons
/// [`Snapshot::is_deleted`] names.
pub struct Snapshot {
    pub(crate) parts: Vec<Arc<Part>>,
    pub(crate) tail: TailRows,
    pub(crate) canonical: HashMap<u64, u64>,
    pub(crate) names: Vec<String>,
    /// Stored ids of persons being deleted (empty almost always).
    pub(crate) deleting: HashSet<u64>,
    /// Rows of `deleting` persons still in `parts`.
    pub(crate) deleting_rows: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("parts", &self.parts.len())
            .field("tail", &self.tail.len())
            .field("merged_persons", &self.canonical.len())
            .field("deleting", &self.deleting.len())
            .finish()
    }
}

impl Snapshot {
    /// The canonical person of a stored person id.
    pub fn canonical(&self, person: u64) -> u64 {
        self.canonical.get(&person).copied().unwrap_or(person)
    }

    /// Whether a stored (or canonical) person id belongs to a person being deleted, whose
    /// rows readers must skip. Costs one branch when no deletion is under way.
    #[inline]
    pub fn is_deleted(&self, person: u64) -> bool {
        !self.deleting.is_empty() && self.deleting.contains(&person)
    }

    /// Stored ids of the persons being deleted (see [`Snapshot::is_deleted`]).
    pub fn deleted_persons(&self) -> &HashSet<u64> {
        &self.deleting
    }

    /// Persons merged into others: stored id → canonical id.
    pub fn merged_persons(&self) -> &HashMap<u64, u64> {
        &self.canonical
    }

    /// The event-name dictionary: `names()[id]` is the name of id `id`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The id of an event name, if any event has it.
    pub fn name_id(&self, name: &str) -> Option<u32> {
        self.names.iter().position(|n| n == name).map(|i| i as u32)
    }

    /// Total events (without those of persons being deleted).
    pub fn events(&self) -> u64 {
        self.parts.iter().map(|p| p.rows() as u64).sum::<u64>() + self.tail.len() as u64
            - self.deleting_rows
    }

    /// Live parts.
    pub fn parts(&self) -> &[Arc<Part>] {
        &self.parts
    }

    /// The unsealed tail.
    pub fn tail(&self) -> &TailRows {
        &self.tail
    }

    /// The sorted runs (each part, then the tail), as hot columns.
    pub fn runs(&self) -> Vec<Run<'_>> {
        let mut runs: Vec<Run<'_>> = self
            .parts
            .iter()
            .map(|p| Run {
                person_ids: p.persons(),
                person_offsets: RunOffsets::Ranges(p.person_offsets()),
                ts: p.ts(),
                names: p.names(),
                kinds: p.kinds(),
                seqs: p.seqs(),
                values: p.values(),
            })
            .collect();
        if !self.tail.is_empty() {
            runs.push(Run {
                person_ids: &self.tail.persons,
                person_offsets: RunOffsets::PerRow,
                ts: &self.tail.ts,
                names: &self.tail.names,
                kinds: &self.tail.kinds,
                seqs: &self.tail.seqs,
                values: &self.tail.values,
            });
        }
        runs
    }

    /// Calls `f` with every event's canonical person, write sequence number and decoded
    /// message: parts first, then the tail.
    pub fn for_each_message(
        &self,
        mut f: impl FnMut(PersonId, u64, Message) -> Result<()>,
    ) -> Result<()> {
        for part in &self.parts {
            let persons = part.persons();
            let offsets = part.person_offsets();
            let seqs = part.seqs();
            let mut p = 0usize;
            for b in 0..part.blocks() {
                let bodies = part.block_bodies(b)?;
                for (j, body) in bodies.into_iter().enumerate() {
                    let row = b * part.block_rows() + j;
                    while offsets[p + 1] as usize <= row {
                        p += 1;
                    }
                    if self.is_deleted(persons[p]) {
                        continue;
                    }
                    let msg = decode_body(&body, part.path().display().to_string(), seqs[row])?;
                    f(PersonId(self.canonical(persons[p])), seqs[row], msg)?;
                }
            }
        }
        // (The tail holds no row of a person being deleted: see `Project::snapshot`.)
        for i in 0..self.tail.len() {
            let msg = decode_body(&self.tail.bodies[i], "tail".to_string(), self.tail.seqs[i])?;
            f(PersonId(self.tail.persons[i]), self.tail.seqs[i], msg)?;
        }
        Ok(())
    }
}

fn decode_body(body: &[u8], place: String, seq: u64) -> Result<Message> {
    serde_json::from_slice(body)
        .map_err(|e| StoreError::corrupt(place, format!("event seq {seq}: undecodable body: {e}")))
}

/// Rows of `persons` in `part` (found by binary search: parts are sorted by person).
pub(crate) fn rows_of(part: &Part, persons: &HashSet<u64>) -> u64 {
    let (ids, offsets) = (part.persons(), part.person_offsets());
    persons
        .iter()
        .filter_map(|p| ids.binary_search(p).ok())
        .map(|i| u64::from(offsets[i + 1] - offsets[i]))
        .sum()
}
