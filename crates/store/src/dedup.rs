//! The deduplication index: which `messageId`s (as 128-bit xxh3 hashes) a project has seen
//! within the dedup window.
//!
//! Persisted as an append-only log (`dedup_log` in the project database, written in the
//! same transaction as the events it vouches for) and held in memory as a small hash set of
//! recent entries plus a few sorted, immutable segments (16 bytes an entry). Appending to a
//! log instead of inserting into a B-tree keyed by random hashes keeps each commit's writes
//! sequential: a B-tree insert dirties one random page per event.
//!
//! Entries expire with the segment holding them, so an entry lives at least the window and
//! at most a little longer (the window is a lower bound, as it should be).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// The hashes are uniformly random already: use their low bits as the hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

type FastSet = HashSet<u128, BuildHasherDefault<PassThrough>>;

/// Entries the live set holds before it is sorted into a segment.
const LIVE_LIMIT: usize = 1 << 20;
/// Segments kept before the smallest are merged.
const MAX_SEGMENTS: usize = 4;

#[derive(Debug)]
struct Segment {
    hashes: Vec<u128>,
    newest: i64,
}

/// The in-memory index. Not thread-safe; owned by the writer thread.
#[derive(Debug, Default)]
pub(crate) struct DedupIndex {
    live: FastSet,
    live_newest: i64,
    segments: Vec<Segment>,
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassThrough")
    }
}

impl DedupIndex {
    /// Builds the index from persisted entries.
    #[cfg(test)]
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (u128, i64)>) -> DedupIndex {
        let mut hashes = Vec::new();
        let mut newest = i64::MIN;
        for (h, at) in entries {
            hashes.push(h);
            newest = newest.max(at);
        }
        DedupIndex::from_hashes(hashes, newest)
    }

    /// Builds the index from persisted hashes, the newest of which was seen at `newest`.
    pub(crate) fn from_hashes(mut hashes: Vec<u128>, newest: i64) -> DedupIndex {
        hashes.sort_unstable();
        hashes.dedup();
        let mut index = DedupIndex::default();
        if !hashes.is_empty() {
            index.segments.push(Segment { hashes, newest });
        }
        index
    }

    /// Whether `hash` was seen.
    pub(crate) fn contains(&self, hash: u128) -> bool {
        self.live.contains(&hash)
            || self
                .segments
                .iter()
                .any(|s| s.hashes.binary_search(&hash).is_ok())
    }

    /// Records `hash`, seen at `at`. Returns false if it was already there.
    pub(crate) fn insert(&mut self, hash: u128, at: i64) -> bool {
        if self.contains(hash) {
            return false;
        }
        self.live.insert(hash);
        self.live_newest = self.live_newest.max(at);
        true
    }

    /// Forgets `hash` (undoing an insert whose transaction failed). Only entries still in
    /// the live set can be forgotten; call before [`DedupIndex::compact`].
    pub(crate) fn forget(&mut self, hash: u128) {
        self.live.remove(&hash);
    }

    /// Moves a full live set into a segment and merges segments. Call after a commit.
    pub(crate) fn compact(&mut self) {
        if self.live.len() < LIVE_LIMIT {
            return;
        }
        let mut hashes: Vec<u128> = self.live.drain().collect();
        hashes.sort_unstable();
        self.segments.push(Segment {
            hashes,
            newest: self.live_newest,
        });
        self.live_newest = i64::MIN;
        while self.segments.len() > MAX_SEGMENTS {
            self.segments
                .sort_by_key(|s| std::cmp::Reverse(s.hashes.len()));
            let a = self.segments.pop().expect("more than one");
            let b = self.segments.pop().expect("more than one");
            self.segments.push(merge(a, b));
        }
    }

    /// Drops segments whose newest entry is older than `cutoff`.
    pub(crate) fn expire(&mut self, cutoff: i64) {
        self.segments.retain(|s| s.newest >= cutoff);
        if !self.live.is_empty() && self.live_newest < cutoff {
            self.live.clear();
            self.live_newest = i64::MIN;
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len() + self.segments.iter().map(|s| s.hashes.len()).sum::<usize>()
    }
}

fn merge(a: Segment, b: Segment) -> Segment {
    let mut out = Vec::with_capacity(a.hashes.len() + b.hashes.len());
    let (mut i, mut j) = (0, 0);
    while i < a.hashes.len() && j < b.hashes.len() {
        match a.hashes[i].cmp(&b.hashes[j]) {
            std::cmp::Ordering::Less => {
                out.push(a.hashes[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b.hashes[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a.hashes[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a.hashes[i..]);
    out.extend_from_slice(&b.hashes[j..]);
    Segment {
        hashes: out,
        newest: a.newest.max(b.newest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain set: same answers through inserts, forgets, compactions.
        #[test]
        fn agrees_with_a_set(ops in proptest::collection::vec((0u8..4, 0u128..5000), 1..3000)) {
            let mut index = DedupIndex::default();
            let mut naive = std::collections::HashSet::new();
            for (op, h) in ops {
                match op {
                    0 | 1 => prop_assert_eq!(index.insert(h, 1), naive.insert(h)),
                    2 => prop_assert_eq!(index.contains(h), naive.contains(&h)),
                    _ => {
                        // Force small segments to exercise merging.
                        let mut hashes: Vec<u128> = index.live.drain().collect();
                        hashes.sort_unstable();
                        index.segments.push(Segment { hashes, newest: 1 });
                        while index.segments.len() > MAX_SEGMENTS {
                            let a = index.segments.pop().unwrap();
                            let b = index.segments.pop().unwrap();
                            index.segments.push(merge(a, b));
                        }
                    }
                }
            }
            prop_assert_eq!(index.len(), naive.len());
        }
    }

    #[test]
    fn expiry_keeps_at_least_the_window() {
        let mut index = DedupIndex::from_entries([(1, 100), (2, 200)]);
        index.insert(3, 300);
        index.expire(150);
        assert!(
            index.contains(1),
            "a segment lives while its newest entry is in the window"
        );
        index.expire(250);
        assert!(!index.contains(1) && !index.contains(2));
        assert!(index.contains(3));
        index.expire(301);
        assert!(!index.contains(3));
    }

    #[test]
    fn forget_undoes_an_insert() {
        let mut index = DedupIndex::default();
        assert!(index.insert(7, 1));
        index.forget(7);
        assert!(index.insert(7, 1));
        assert!(!index.insert(7, 1));
    }
}
