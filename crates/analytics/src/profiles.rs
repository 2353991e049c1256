//! Profiles as segments read them (用户画像表): every canonical person, the trait keys that
//! questions name (typed columns, loaded on demand), the newest model scores, and the members
//! of saved segments. A server keeps one per project in memory and brings it up to date with
//! the persons whose traits or events changed ([`ProfileTable::refresh`]), so that a segment
//! over ten million profiles tests traits by array lookups instead of parsing JSON.

use std::collections::HashMap;

use lodestar_core::JsonMap;
use std::sync::{Arc, Mutex};

use lodestar_store::{ProjectInfo, Snapshot, Store};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::SnapshotSource;
use crate::computed::{self, Computed};
use crate::error::Result;
use crate::filter::property;
use crate::segment::{PersonFacts, SCORES};

/// A trait's value for one person, compactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell {
    /// Absent or null.
    Absent,
    /// true / false.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A text, by its id in the column's dictionary.
    Str(u32),
    /// An array or object, by its index in the column's side list.
    Other(u32),
}

/// One trait (a dotted name reaches into objects) for every person of the table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Column {
    pub(crate) cells: Vec<Cell>,
    pub(crate) strings: Vec<String>,
    string_ids: HashMap<String, u32>,
    pub(crate) others: Vec<Value>,
}

impl Column {
    fn cell(&mut self, v: Option<&Value>) -> Cell {
        match v {
            None | Some(Value::Null) => Cell::Absent,
            Some(Value::Bool(b)) => Cell::Bool(*b),
            Some(Value::Number(n)) => n.as_f64().map_or(Cell::Absent, Cell::Num),
            Some(Value::String(s)) => match self.string_ids.get(s) {
                Some(&id) => Cell::Str(id),
                None => {
                    let id = self.strings.len() as u32;
                    self.strings.push(s.clone());
                    self.string_ids.insert(s.clone(), id);
                    Cell::Str(id)
                }
            },
            Some(other) => {
                self.others.push(other.clone());
                Cell::Other(self.others.len() as u32 - 1)
            }
        }
    }

    fn set(&mut self, at: usize, v: Option<&Value>) {
        let c = self.cell(v);
        if at == self.cells.len() {
            self.cells.push(c);
        } else {
            self.cells[at] = c;
        }
    }

    /// The value at a position, as JSON (numbers as floats).
    pub(crate) fn value(&self, at: usize) -> Option<Value> {
        match self.cells.get(at).copied().unwrap_or(Cell::Absent) {
            Cell::Absent => None,
            Cell::Bool(b) => Some(Value::Bool(b)),
            Cell::Num(n) => Some(serde_json::json!(n)),
            Cell::Str(i) => Some(Value::String(self.strings[i as usize].clone())),
            Cell::Other(i) => Some(self.others[i as usize].clone()),
        }
    }
}

/// Every canonical person with their profile facts, by position.
#[derive(Debug, Clone, Default)]
pub struct ProfileTable {
    /// Person ids, ascending (a person merged away since stays, not live).
    persons: Vec<u64>,
    live: Vec<bool>,
    /// Position + 1 by person id (0: not in the table).
    slots: Vec<u32>,
    columns: HashMap<String, Column>,
    /// Per score of [`SCORES`], per position; NaN when the person has none.
    scores: Vec<Vec<f64>>,
    /// Members of saved segments, sorted.
    memberships: HashMap<i64, Vec<u64>>,
    /// Computed attributes: definitions, values by name, and per position the instant each
    /// value changes without new events.
    computed_defs: Vec<Computed>,
    computed: HashMap<String, Column>,
    computed_expires: HashMap<String, Vec<i64>>,
    /// The `now` the computed values hold at.
    computed_at: i64,
}

impl ProfileTable {
    /// Every canonical person of the project, with the trait columns `keys` and the newest
    /// model scores.
    pub fn load(store: &Store, project: &ProjectInfo, keys: &[String]) -> Result<ProfileTable> {
        let mut table = ProfileTable::default();
        let mut picker = Picker::new(keys);
        let mut cols: Vec<Column> = keys.iter().map(|_| Column::default()).collect();
        store.for_each_traits(project.id, None, &mut |person, text| {
            let at = table.persons.len();
            table.persons.push(person);
            table.live.push(true);
            let picked = picker.pick(text.unwrap_or("{}"));
            for (c, v) in cols.iter_mut().zip(picked) {
                c.set(at, v.as_ref());
            }
            Ok(())
        })?;
        table.columns = keys.iter().cloned().zip(cols).collect();
        table.index();
        table.load_scores(store, project)?;
        Ok(table)
    }

    /// A table of the given persons' facts (tests, small inputs), with the trait columns
    /// `keys`.
    pub fn from_facts(facts: &HashMap<u64, PersonFacts>, keys: &[String]) -> ProfileTable {
        let mut ids: Vec<u64> = facts.keys().copied().collect();
        ids.sort_unstable();
        let mut table = ProfileTable {
            live: vec![true; ids.len()],
            persons: ids,
            ..ProfileTable::default()
        };
        for key in keys {
            let mut col = Column::default();
            for (at, p) in table.persons.iter().enumerate() {
                col.set(at, property(&facts[p].traits, key));
            }
            table.columns.insert(key.clone(), col);
        }
        table.scores = SCORES
            .iter()
            .map(|name| {
                table
                    .persons
                    .iter()
                    .map(|p| {
                        facts[p]
                            .scores
                            .get(*name)
                            .and_then(Value::as_f64)
                            .unwrap_or(f64::NAN)
                    })
                    .collect()
            })
            .collect();
        table.index();
        table
    }

    fn index(&mut self) {
        let end = self.persons.last().map_or(0, |&p| p as usize + 1);
        self.slots = vec![0; end];
        for (at, &p) in self.persons.iter().enumerate() {
            if self.live[at] {
                self.slots[p as usize] = at as u32 + 1;
            }
        }
    }

    /// The position of a person, if the table holds them.
    pub(crate) fn slot(&self, person: u64) -> Option<usize> {
        match self.slots.get(person as usize) {
            Some(&s) if s > 0 => Some(s as usize - 1),
            _ => None,
        }
    }

    /// Live persons.
    pub fn len(&self) -> usize {
        self.live.iter().filter(|&&l| l).count()
    }

    /// Whether it holds no one.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of positions (live or not).
    pub(crate) fn positions_len(&self) -> usize {
        self.persons.len()
    }

    /// Whether a position is live, and its person.
    pub(crate) fn at(&self, at: usize) -> Option<u64> {
        self.live[at].then(|| self.persons[at])
    }

    /// The column of a computed attribute, when defined.
    pub(crate) fn computed(&self, name: &str) -> Option<&Column> {
        self.computed.get(name)
    }

    /// Brings the computed attributes to `now`: all of them when the definitions changed (or
    /// time went back); else those of the `touched` persons (new events) and of the persons
    /// whose values expired (an event left a window).
    pub fn update_computed(
        &mut self,
        source: &SnapshotSource<'_>,
        defs: &[Computed],
        touched: &[u64],
        now: i64,
        threads: usize,
    ) -> Result<()> {
        let n = self.persons.len();
        let full = defs != self.computed_defs.as_slice() || now < self.computed_at;
        let due: Option<Vec<u64>> = if full {
            None
        } else {
            let mut due: Vec<u64> = touched.to_vec();
            for expires in self.computed_expires.values() {
                for (at, &e) in expires.iter().enumerate() {
                    if e <= now && self.live[at] {
                        due.push(self.persons[at]);
                    }
                }
            }
            due.sort_unstable();
            due.dedup();
            Some(due)
        };
        if defs.is_empty() || due.as_ref().is_some_and(Vec::is_empty) {
            self.computed_defs = defs.to_vec();
            self.computed_at = now;
            if defs.is_empty() {
                self.computed.clear();
                self.computed_expires.clear();
            }
            return Ok(());
        }
        let values = match &due {
            None => computed::compute_all(source, defs, now, threads)?,
            Some(due) => {
                computed::compute_all(&source.restricted(due.clone()), defs, now, threads)?
            }
        };
        for (def, by_person) in defs.iter().zip(values) {
            let empty = computed::empty_value(def);
            let column = self.computed.entry(def.name.clone()).or_default();
            let expires = self.computed_expires.entry(def.name.clone()).or_default();
            if full {
                *column = Column::default();
                column.cells = vec![Cell::Absent; n];
                *expires = vec![i64::MAX; n];
                for at in 0..n {
                    column.set(at, empty.as_ref());
                }
            }
            column.cells.resize(n, Cell::Absent);
            expires.resize(n, i64::MAX);
            if let Some(due) = &due {
                // Persons looked at without events now hold the empty value.
                for &p in due {
                    if let Some(at) = self.slots.get(p as usize).filter(|&&s| s > 0) {
                        let at = *at as usize - 1;
                        column.set(at, empty.as_ref());
                        expires[at] = i64::MAX;
                    }
                }
            }
            for (person, value, until) in by_person {
                if let Some(&s) = self.slots.get(person as usize)
                    && s > 0
                {
                    column.set(s as usize - 1, value.as_ref());
                    expires[s as usize - 1] = until;
                }
            }
        }
        self.computed_defs = defs.to_vec();
        self.computed_at = now;
        Ok(())
    }

    /// The trait column of a key, when loaded.
    pub(crate) fn column(&self, key: &str) -> Option<&Column> {
        self.columns.get(key)
    }

    /// A score (one of [`SCORES`]) at a position, NaN for none.
    pub(crate) fn score(&self, which: usize, at: Option<usize>) -> f64 {
        at.and_then(|at| self.scores.get(which).and_then(|s| s.get(at)).copied())
            .unwrap_or(f64::NAN)
    }

    /// The members of a saved segment, sorted, when known.
    pub(crate) fn members(&self, segment: i64) -> Option<&[u64]> {
        self.memberships.get(&segment).map(Vec::as_slice)
    }

    /// Sets the members of saved segments (for `in_segment` conditions).
    pub fn set_memberships(&mut self, memberships: HashMap<i64, Vec<u64>>) {
        self.memberships = memberships;
    }

    /// Adds the trait columns of `keys` not loaded yet (one pass over the profiles).
    pub fn ensure_columns(
        &mut self,
        store: &Store,
        project: &ProjectInfo,
        keys: &[String],
    ) -> Result<()> {
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !self.columns.contains_key(*k))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut picker = Picker::new(&missing);
        let mut cols: Vec<Column> = missing
            .iter()
            .map(|_| Column {
                cells: vec![Cell::Absent; self.persons.len()],
                ..Column::default()
            })
            .collect();
        // One pass over every profile (a person the table does not hold yet gets every column
        // when they join).
        let slots = &self.slots;
        store.for_each_traits(project.id, None, &mut |person, text| {
            if let (Some(text), Some(&s)) = (text, slots.get(person as usize))
                && s > 0
            {
                let picked = picker.pick(text);
                for (c, v) in cols.iter_mut().zip(picked) {
                    c.set(s as usize - 1, v.as_ref());
                }
            }
            Ok(())
        })?;
        self.columns.extend(missing.into_iter().zip(cols));
        Ok(())
    }

    /// Re-reads the given persons' traits (new persons join; persons merged into another
    /// leave).
    pub fn refresh(&mut self, store: &Store, project: &ProjectInfo, persons: &[u64]) -> Result<()> {
        let keys: Vec<String> = self.columns.keys().cloned().collect();
        let mut picker = Picker::new(&keys);
        let mut sorted = persons.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut rows: Vec<(u64, Option<Vec<Option<Value>>>)> = Vec::with_capacity(sorted.len());
        store.for_each_traits(project.id, Some(&sorted), &mut |person, text| {
            rows.push((person, text.map(|t| picker.pick(t))));
            Ok(())
        })?;
        let mut added = false;
        for (person, picked) in rows {
            let at = match (self.slot(person), picked.is_some()) {
                (Some(at), true) => at,
                (Some(at), false) => {
                    self.live[at] = false;
                    self.slots[person as usize] = 0;
                    continue;
                }
                (None, false) => continue,
                (None, true) => {
                    self.persons.push(person);
                    self.live.push(true);
                    added = true;
                    self.persons.len() - 1
                }
            };
            for (key, v) in keys.iter().zip(picked.expect("matched above")) {
                if let Some(col) = self.columns.get_mut(key) {
                    col.cells.resize(self.persons.len(), Cell::Absent);
                    col.set(at, v.as_ref());
                }
            }
        }
        if added {
            let n = self.persons.len();
            for col in self.columns.values_mut() {
                col.cells.resize(n, Cell::Absent);
            }
            for s in &mut self.scores {
                s.resize(n, f64::NAN);
            }
            if self.persons.is_sorted() {
                self.index();
            } else {
                // Ids are handed out in order, so this is rare (a reused id).
                self.reorder();
            }
        }
        Ok(())
    }

    /// Takes persons out (deleted ones).
    pub fn forget(&mut self, persons: impl IntoIterator<Item = u64>) {
        for p in persons {
            if let Some(at) = self.slot(p) {
                self.live[at] = false;
                self.slots[p as usize] = 0;
            }
        }
    }

    /// Keeps positions sorted by person after an out-of-order insert (rare).
    fn reorder(&mut self) {
        let mut order: Vec<usize> = (0..self.persons.len()).collect();
        order.sort_by_key(|&i| self.persons[i]);
        self.persons = order.iter().map(|&i| self.persons[i]).collect();
        self.live = order.iter().map(|&i| self.live[i]).collect();
        for col in self.columns.values_mut() {
            col.cells = order.iter().map(|&i| col.cells[i]).collect();
        }
        for s in &mut self.scores {
            *s = order.iter().map(|&i| s[i]).collect();
        }
        self.index();
    }

    /// Reloads the newest customer-value and churn scores.
    pub fn load_scores(&mut self, store: &Store, project: &ProjectInfo) -> Result<()> {
        let n = self.persons.len();
        let mut scores = vec![vec![f64::NAN; n]; SCORES.len()];
        for s in store.latest_scores(project.id)? {
            let Some(at) = self.slot(s.person) else {
                continue;
            };
            for (i, v) in [
                s.clv,
                s.p_alive,
                s.expected_purchases,
                s.p_purchase,
                s.churn_risk,
            ]
            .into_iter()
            .enumerate()
            {
                if let Some(v) = v {
                    scores[i][at] = v;
                }
            }
        }
        self.scores = scores;
        Ok(())
    }

    /// A person's facts as maps (for a profile view or a test).
    pub fn facts(&self, person: u64) -> Option<PersonFacts> {
        let at = self.slot(person)?;
        let mut traits = JsonMap::new();
        for (k, c) in &self.columns {
            if let Some(v) = c.value(at) {
                traits.insert(k.clone(), v);
            }
        }
        for (k, c) in &self.computed {
            if let Some(v) = c.value(at) {
                traits.insert(format!("computed.{k}"), v);
            }
        }
        let mut scores = JsonMap::new();
        for (i, name) in SCORES.iter().enumerate() {
            let v = self.score(i, Some(at));
            if !v.is_nan() {
                scores.insert((*name).into(), serde_json::json!(v));
            }
        }
        Some(PersonFacts { traits, scores })
    }
}

/// The persons (stored ids and their canonical persons) with events written after `seq`,
/// and the highest sequence number of the snapshot. Parts wholly at or below `seq` are
/// skipped by their footer; the rest are scanned by their sequence column.
pub fn touched_since(snapshot: &Snapshot, seq: u64) -> (Vec<u64>, u64) {
    let mut persons = Vec::new();
    let mut top = seq;
    let runs = snapshot.runs();
    for (r, run) in runs.iter().enumerate() {
        if let Some(part) = snapshot.parts().get(r) {
            top = top.max(part.stats().max_seq);
            if part.stats().max_seq <= seq {
                continue;
            }
        }
        for (i, &s) in run.seqs.iter().enumerate() {
            if s > seq {
                top = top.max(s);
                let stored = run.stored_person(i);
                persons.push(stored);
                persons.push(snapshot.canonical(stored));
            }
        }
    }
    persons.sort_unstable();
    persons.dedup();
    (persons, top)
}

/// The highest write sequence number in a snapshot (0 when empty).
pub fn last_seq(snapshot: &Snapshot) -> u64 {
    let parts = snapshot.parts().iter().map(|p| p.stats().max_seq);
    let tail = snapshot.tail().seqs.iter().copied();
    parts.chain(tail).max().unwrap_or(0)
}

/// One project's table as the cache keeps it.
#[derive(Debug, Default)]
struct Cached {
    table: ProfileTable,
    /// Events through this sequence number are reflected.
    seq: u64,
    /// The newest model version whose scores are loaded.
    fit: Option<i64>,
}

/// Profile tables kept between questions, one per project (a server holds one cache): the
/// first question loads the table; later ones re-read only the persons with events written
/// since (traits change with `identify` and merges, which are events too), the trait columns
/// they add, and the scores when a model was fitted since.
#[derive(Debug, Default)]
pub struct ProfileCache {
    tables: Mutex<HashMap<u32, Arc<Mutex<Cached>>>>,
}

impl ProfileCache {
    /// Calls `f` with the project's table, brought up to date with `snapshot`, holding the
    /// trait columns `keys` and the members of `segments`.
    #[allow(
        clippy::too_many_arguments,
        reason = "what a question needs of the table"
    )]
    pub fn with_table<T>(
        &self,
        store: &Store,
        project: &ProjectInfo,
        snapshot: &Snapshot,
        keys: &[String],
        segments: &[i64],
        (now, threads): (i64, usize),
        f: impl FnOnce(&ProfileTable) -> T,
    ) -> Result<T> {
        let entry = {
            let mut tables = self.tables.lock().expect("profile cache lock");
            Arc::clone(tables.entry(project.id.0).or_default())
        };
        let mut cached = entry.lock().expect("profile table lock");
        let fit = store.model_fits(project.id)?.iter().map(|f| f.id).max();
        let defs = computed::definitions(&store.project_settings(project.id)?)?;
        // Reading a snapshot costs a pass over merged persons: only when something is computed.
        let computed = |table: &mut ProfileTable, touched: &[u64]| -> Result<()> {
            if defs.is_empty() && table.computed_defs.is_empty() {
                return Ok(());
            }
            table.update_computed(&SnapshotSource::new(snapshot), &defs, touched, now, threads)
        };
        if cached.seq == 0 && cached.table.persons.is_empty() {
            cached.table = ProfileTable::load(store, project, keys)?;
            cached.seq = last_seq(snapshot);
            cached.fit = fit;
            computed(&mut cached.table, &[])?;
        } else {
            let (touched, top) = touched_since(snapshot, cached.seq);
            if !touched.is_empty() {
                cached.table.refresh(store, project, &touched)?;
            }
            computed(&mut cached.table, &touched)?;
            cached.seq = top;
            cached.table.ensure_columns(store, project, keys)?;
            if cached.fit != fit {
                cached.table.load_scores(store, project)?;
                cached.fit = fit;
            }
        }
        cached.table.forget(store.deleted_persons(project.id)?);
        let mut members = HashMap::new();
        for &id in segments {
            members.insert(id, store.segment_members(project.id, id, 0, usize::MAX)?);
        }
        cached.table.set_memberships(members);
        Ok(f(&cached.table))
    }
}

/// Reads only some keys of a traits object: the others are skipped without being built.
struct Picker {
    /// Top-level key → the requested keys (indices) under it, with the rest of their path.
    wanted: HashMap<String, Vec<(usize, Option<String>)>>,
    n: usize,
}

impl Picker {
    fn new(keys: &[String]) -> Picker {
        let mut wanted: HashMap<String, Vec<(usize, Option<String>)>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let (top, rest) = match k.split_once('.') {
                Some((t, r)) => (t.to_string(), Some(r.to_string())),
                None => (k.clone(), None),
            };
            wanted.entry(top).or_default().push((i, rest));
        }
        Picker {
            wanted,
            n: keys.len(),
        }
    }

    /// The values of the keys in `text` (a JSON object; anything else reads as empty).
    fn pick(&mut self, text: &str) -> Vec<Option<Value>> {
        let mut out = vec![None; self.n];
        if self.n == 0 || text == "{}" {
            return out;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        if (PickSeed {
            wanted: &self.wanted,
            out: &mut out,
        })
        .deserialize(&mut de)
        .is_err()
        {
            out.iter_mut().for_each(|v| *v = None);
        }
        out
    }
}

struct PickSeed<'a> {
    wanted: &'a HashMap<String, Vec<(usize, Option<String>)>>,
    out: &'a mut Vec<Option<Value>>,
}

impl<'de> DeserializeSeed<'de> for PickSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PickSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a traits object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.wanted.get(key.as_ref()) {
                Some(targets) => {
                    let v: Value = map.next_value()?;
                    for (i, rest) in targets {
                        self.out[*i] = match rest {
                            None => Some(v.clone()),
                            Some(path) => path.split('.').try_fold(&v, |at, k| at.get(k)).cloned(),
                        };
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_only_the_keys_asked_for() {
        let keys = vec![
            "plan".to_string(),
            "address.city".to_string(),
            "age".to_string(),
        ];
        let mut p = Picker::new(&keys);
        let got =
            p.pick(r#"{"a":[1,{"b":2}],"plan":"pro","address":{"city":"杭州","zip":1},"x":null}"#);
        assert_eq!(
            got,
            vec![Some(json("\"pro\"")), Some(json("\"杭州\"")), None]
        );
        assert_eq!(p.pick("not json"), vec![None, None, None]);
        assert_eq!(p.pick(r#"{"plan":"a\"b"}"#)[0], Some(json(r#""a\"b""#)));
    }

    fn json(t: &str) -> Value {
        serde_json::from_str(t).unwrap()
    }
}
