//! The deduplication index: which `messageId`s a project has seen within the dedup window.
//!
//! An *entry* is one 128-bit value: the top 96 bits of `xxh3_128(messageId)` and, in the low
//! 32 bits, the second it was first seen. Sorting entries sorts by hash, and every entry
//! carries its own age, so merged sets can still be expired entry by entry.
//!
//! Persisted in two places, and nowhere else: each unsealed event's tail-log record carries
//! its entry, and sealing writes the entries of the sealed rows to a sorted dedup file
//! ([`files`]). On open the index is the union of both. In memory it is a small hash map
//! of recent entries plus a few sorted, immutable segments (16 bytes an entry), each with a
//! radix table over the top hash bits so a lookup touches a few cache lines.
//!
//! Entries live at least the window and at most an eighth of it longer: expiry rewrites a
//! segment only once its oldest entry is that much past the window.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The low bits of an entry that hold the time (seconds).
const TIME_BITS: u32 = 32;
const KEY_MASK: u128 = !((1u128 << TIME_BITS) - 1);

/// The entry of `hash` seen at `at_ms`.
pub(crate) fn entry(hash: u128, at_ms: i64) -> u128 {
    (hash & KEY_MASK) | seconds(at_ms) as u128
}

/// The hash part of an entry.
pub(crate) fn key(entry: u128) -> u128 {
    entry & KEY_MASK
}

/// The second an entry was seen.
pub(crate) fn seen(entry: u128) -> u32 {
    entry as u32
}

/// Unix seconds of a millisecond time, clamped to what an entry holds (until 2106).
pub(crate) fn seconds(at_ms: i64) -> u32 {
    (at_ms.div_euclid(1000)).clamp(0, u32::MAX as i64) as u32
}

/// How far past the window an entry may live before its segment is rewritten.
pub(crate) fn slack(window_ms: i64) -> i64 {
    (window_ms / 8).max(1000)
}

/// The keys are uniformly random already: use their top bits as the hash.
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
        self.0 = (n >> 64) as u64;
    }
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassThrough")
    }
}

type FastMap = HashMap<u128, u32, BuildHasherDefault<PassThrough>>;

/// Entries the live map holds before it is sorted into a segment.
const LIVE_LIMIT: usize = 1 << 20;
/// Segments kept before the smallest are merged.
const MAX_SEGMENTS: usize = 4;

/// Sorted entries with a radix table: `radix[b]..radix[b + 1]` are the entries whose top
/// `bits` bits are `b`.
#[derive(Debug)]
struct Segment {
    entries: Vec<u128>,
    radix: Vec<u32>,
    bits: u32,
    oldest: u32,
}

impl Segment {
    fn new(entries: Vec<u128>) -> Segment {
        debug_assert!(entries.is_sorted());
        // About 8 entries (two cache lines) a bucket, at most 2^24 buckets (64 MiB of table,
        // half a byte an entry): a lookup costs about two cache misses a segment.
        let bits = (entries.len() / 8).max(1).ilog2().min(24);
        let buckets = 1usize << bits;
        let mut radix = vec![0u32; buckets + 1];
        let mut b = 0usize;
        for (i, &e) in entries.iter().enumerate() {
            let eb = bucket(e, bits);
            while b < eb {
                b += 1;
                radix[b] = i as u32;
            }
        }
        while b < buckets {
            b += 1;
            radix[b] = entries.len() as u32;
        }
        let oldest = entries.iter().map(|&e| seen(e)).min().unwrap_or(u32::MAX);
        Segment {
            entries,
            radix,
            bits,
            oldest,
        }
    }

    fn contains(&self, key: u128) -> bool {
        let b = bucket(key, self.bits);
        let slice = &self.entries[self.radix[b] as usize..self.radix[b + 1] as usize];
        let i = slice.partition_point(|&e| e < key);
        i < slice.len() && self::key(slice[i]) == key
    }
}

fn bucket(e: u128, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (e >> (128 - bits)) as usize
    }
}

/// The in-memory index. Not thread-safe; owned by the writer thread.
#[derive(Debug, Default)]
pub(crate) struct DedupIndex {
    live: FastMap,
    /// The oldest second in `live`, if any.
    live_oldest: Option<u32>,
    segments: Vec<Segment>,
}

impl DedupIndex {
    /// Builds the index from persisted entries: sorted runs (dedup files) and loose entries
    /// (the tail log's).
    pub(crate) fn from_parts(runs: Vec<Vec<u128>>, mut loose: Vec<u128>) -> DedupIndex {
        let mut index = DedupIndex::default();
        for run in runs {
            if !run.is_empty() {
                index.segments.push(Segment::new(run));
            }
        }
        loose.sort_unstable();
        loose.dedup();
        if !loose.is_empty() {
            index.segments.push(Segment::new(loose));
        }
        index.merge_down();
        index
    }

    /// Whether a message with `hash` was seen.
    #[cfg(test)]
    pub(crate) fn contains(&self, hash: u128) -> bool {
        let k = key(hash);
        self.live.contains_key(&k) || self.segments.iter().any(|s| s.contains(k))
    }

    /// Records `hash`, seen at `at_ms`. Returns false if it was already there.
    pub(crate) fn insert(&mut self, hash: u128, at_ms: i64) -> bool {
        let k = key(hash);
        if self.segments.iter().any(|s| s.contains(k)) {
            return false;
        }
        let s = seconds(at_ms);
        if self.live.len() == LIVE_LIMIT / 16 {
            // A busy project: size the map once for its limit rather than rehash it as it
            // grows to a million entries.
            self.live.reserve(LIVE_LIMIT - self.live.len());
        }
        match self.live.entry(k) {
            std::collections::hash_map::Entry::Occupied(_) => return false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(s);
            }
        }
        self.live_oldest = Some(self.live_oldest.map_or(s, |o| o.min(s)));
        true
    }

    /// Forgets `hash` (undoing an insert whose write failed). Only entries still in the live
    /// map can be forgotten; call before [`DedupIndex::compact`].
    pub(crate) fn forget(&mut self, hash: u128) {
        self.live.remove(&key(hash));
    }

    /// Moves a full live map into a segment and merges segments. Call after a commit.
    pub(crate) fn compact(&mut self) {
        if self.live.len() < LIVE_LIMIT {
            return;
        }
        let mut entries: Vec<u128> = self.live.drain().map(|(k, s)| k | s as u128).collect();
        self.live_oldest = None;
        entries.sort_unstable();
        self.segments.push(Segment::new(entries));
        self.merge_down();
    }

    fn merge_down(&mut self) {
        while self.segments.len() > MAX_SEGMENTS {
            self.segments
                .sort_by_key(|s| std::cmp::Reverse(s.entries.len()));
            let a = self.segments.pop().expect("more than one");
            let b = self.segments.pop().expect("more than one");
            self.segments
                .push(Segment::new(merge(&a.entries, &b.entries)));
        }
    }

    /// Drops entries first seen before `cutoff_ms`, rewriting only segments whose oldest
    /// entry is more than `slack_ms` past it.
    pub(crate) fn expire(&mut self, cutoff_ms: i64, slack_ms: i64) {
        let cutoff = seconds(cutoff_ms);
        let rewrite_below = seconds(cutoff_ms - slack_ms);
        for s in &mut self.segments {
            if s.oldest < rewrite_below {
                let kept: Vec<u128> = s
                    .entries
                    .iter()
                    .copied()
                    .filter(|&e| seen(e) >= cutoff)
                    .collect();
                *s = Segment::new(kept);
            }
        }
        self.segments.retain(|s| !s.entries.is_empty());
        if self.live_oldest.is_some_and(|o| o < rewrite_below) {
            self.live.retain(|_, s| *s >= cutoff);
            self.live_oldest = self.live.values().copied().min();
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len() + self.segments.iter().map(|s| s.entries.len()).sum::<usize>()
    }
}

/// Merges two sorted entry lists; of two entries with one key, the older is kept.
pub(crate) fn merge(a: &[u128], b: &[u128]) -> Vec<u128> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out.dedup_by(|later, earlier| key(*later) == key(*earlier));
    out
}

pub(crate) mod files {
    //! Dedup files: the entries of sealed rows, sorted, one file per sealed range of write
    //! sequence numbers (`dedup/{first:020}-{last:020}.dd`).
    //!
    //! Layout: magic `LSDD`, format `u32`, entry count `u64`, oldest and newest second
    //! (`u32` each), then the entries (`u128` little-endian, sorted), then a CRC-32 of them.
    //! Written to a temporary file, fsync'd, renamed, folder fsync'd.
    //!
    //! Sealing writes a file before the manifest that covers its range, so after a crash a
    //! file above the manifest's `sealed_seq` is a leftover (its entries are still in the
    //! tail log). Merging writes the union of adjacent files under the covering range before
    //! deleting them, so a file whose range lies within another's is a leftover too.

    use std::io::Write;
    use std::path::{Path, PathBuf};

    use crate::error::{Result, StoreError};
    use crate::manifest::sync_dir;

    const MAGIC: &[u8; 4] = b"LSDD";
    /// The dedup file format this code writes and reads.
    pub(crate) const FORMAT: u32 = 1;
    const HEADER: usize = 24;
    /// Files kept before adjacent ones are merged.
    pub(crate) const MAX_FILES: usize = 8;

    /// One dedup file, from its name and header.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct DedupFile {
        pub(crate) first: u64,
        pub(crate) last: u64,
        pub(crate) path: PathBuf,
        pub(crate) count: u64,
        pub(crate) oldest: u32,
    }

    /// The dedup folder of a project folder.
    pub(crate) fn dir(project_dir: &Path) -> PathBuf {
        project_dir.join("dedup")
    }

    fn name(first: u64, last: u64) -> String {
        format!("{first:020}-{last:020}.dd")
    }

    fn parse_name(name: &str) -> Option<(u64, u64)> {
        let stem = name.strip_suffix(".dd")?;
        let (a, b) = stem.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    /// Writes `entries` (sorted) as the file of range `first..=last`.
    pub(crate) fn write(dir: &Path, first: u64, last: u64, entries: &[u128]) -> Result<DedupFile> {
        debug_assert!(entries.is_sorted());
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let path = dir.join(name(first, last));
        let tmp = path.with_extension("dd.tmp");
        let oldest = entries
            .iter()
            .map(|&e| super::seen(e))
            .min()
            .unwrap_or(u32::MAX);
        let newest = entries.iter().map(|&e| super::seen(e)).max().unwrap_or(0);
        let mut body = Vec::with_capacity(HEADER + entries.len() * 16 + 4);
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&FORMAT.to_le_bytes());
        body.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        body.extend_from_slice(&oldest.to_le_bytes());
        body.extend_from_slice(&newest.to_le_bytes());
        for e in entries {
            body.extend_from_slice(&e.to_le_bytes());
        }
        let crc = crc32fast::hash(&body[HEADER..]);
        body.extend_from_slice(&crc.to_le_bytes());
        let io = |e| StoreError::io(&tmp, e);
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&body).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        sync_dir(dir)?;
        Ok(DedupFile {
            first,
            last,
            path,
            count: entries.len() as u64,
            oldest,
        })
    }

    /// Reads a file's entries, checking its header and checksum.
    pub(crate) fn read(path: &Path) -> Result<Vec<u128>> {
        let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
        let corrupt = |why: &str| StoreError::corrupt(path, format!("dedup file: {why}"));
        if bytes.len() < HEADER + 4 || &bytes[..4] != MAGIC {
            return Err(corrupt("bad header"));
        }
        let format = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(corrupt(&format!("unsupported format {format}")));
        }
        let count = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let end = HEADER + count * 16;
        if bytes.len() != end + 4 {
            return Err(corrupt("length does not match the entry count"));
        }
        let crc = u32::from_le_bytes(bytes[end..end + 4].try_into().expect("4 bytes"));
        if crc32fast::hash(&bytes[HEADER..end]) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(bytes[HEADER..end]
            .chunks_exact(16)
            .map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
            .collect())
    }

    fn header(path: &Path) -> Result<(u64, u32)> {
        use std::io::Read;
        let mut head = [0u8; HEADER];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .map_err(|e| StoreError::io(path, e))?;
        if &head[..4] != MAGIC {
            return Err(StoreError::corrupt(path, "dedup file: bad header"));
        }
        Ok((
            u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")),
            u32::from_le_bytes(head[16..20].try_into().expect("4 bytes")),
        ))
    }

    /// The live files in range order, after deleting leftovers: temporary files, files above
    /// `sealed_seq`, files within another file's range.
    pub(crate) fn open(dir: &Path, sealed_seq: u64) -> Result<Vec<DedupFile>> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let mut ranges = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            match parse_name(&name) {
                Some((first, last)) if last <= sealed_seq => {
                    ranges.push((first, last, entry.path()))
                }
                _ => {
                    tracing::info!(file = %name, "removing a leftover dedup file");
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        // Widest first among equal starts, so a covering range is seen before what it covers.
        ranges.sort_by_key(|(first, last, _)| (*first, std::cmp::Reverse(*last)));
        let mut files: Vec<DedupFile> = Vec::new();
        for (first, last, path) in ranges {
            if files.last().is_some_and(|f| last <= f.last) {
                tracing::info!(path = %path.display(), "removing a dedup file already merged");
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let (count, oldest) = header(&path)?;
            files.push(DedupFile {
                first,
                last,
                path,
                count,
                oldest,
            });
        }
        Ok(files)
    }

    /// Upkeep after sealing: rewrites files holding entries more than `slack_ms` past the
    /// window (dropping those before `cutoff_ms`), then merges the adjacent pair with the
    /// fewest entries while more than [`MAX_FILES`] remain.
    pub(crate) fn maintain(
        dir: &Path,
        files: &mut Vec<DedupFile>,
        cutoff_ms: i64,
        slack_ms: i64,
    ) -> Result<()> {
        let cutoff = super::seconds(cutoff_ms);
        let rewrite_below = super::seconds(cutoff_ms - slack_ms);
        for f in files.iter_mut() {
            if f.oldest >= rewrite_below {
                continue;
            }
            let kept: Vec<u128> = read(&f.path)?
                .into_iter()
                .filter(|&e| super::seen(e) >= cutoff)
                .collect();
            *f = write(dir, f.first, f.last, &kept)?;
        }
        while files.len() > MAX_FILES {
            let i = (0..files.len() - 1)
                .min_by_key(|&i| files[i].count + files[i + 1].count)
                .expect("at least two files");
            let merged = super::merge(&read(&files[i].path)?, &read(&files[i + 1].path)?);
            let new = write(dir, files[i].first, files[i + 1].last, &merged)?;
            for old in files.splice(i..i + 2, [new]) {
                if let Err(e) = std::fs::remove_file(&old.path) {
                    tracing::warn!(path = %old.path.display(), error = %e, "could not delete a merged dedup file");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(n: u128) -> u128 {
        // Spread small test numbers over the key bits, as real hashes are.
        xxhash_rust::xxh3::xxh3_128(&n.to_le_bytes())
    }

    proptest! {
        /// Against a plain set: same answers through inserts, forgets, compactions.
        #[test]
        fn agrees_with_a_set(ops in proptest::collection::vec((0u8..4, 0u128..5000), 1..3000)) {
            let mut index = DedupIndex::default();
            let mut naive = std::collections::HashSet::new();
            for (op, n) in ops {
                match op {
                    0 | 1 => prop_assert_eq!(index.insert(h(n), 1000), naive.insert(n)),
                    2 => prop_assert_eq!(index.contains(h(n)), naive.contains(&n)),
                    _ => {
                        // Force small segments to exercise merging.
                        let mut entries: Vec<u128> =
                            index.live.drain().map(|(k, s)| k | s as u128).collect();
                        index.live_oldest = None;
                        entries.sort_unstable();
                        index.segments.push(Segment::new(entries));
                        index.merge_down();
                    }
                }
            }
            prop_assert_eq!(index.len(), naive.len());
        }

        /// The radix table finds every entry of a segment and no other.
        #[test]
        fn segment_lookup(ns in proptest::collection::btree_set(0u128..100_000, 0..5000), probe in 0u128..100_000) {
            let mut entries: Vec<u128> = ns.iter().map(|&n| entry(h(n), 5000)).collect();
            entries.sort_unstable();
            let s = Segment::new(entries);
            for &n in &ns {
                prop_assert!(s.contains(key(h(n))));
            }
            prop_assert_eq!(s.contains(key(h(probe))), ns.contains(&probe));
        }
    }

    #[test]
    fn expiry_keeps_at_least_the_window() {
        let mut index =
            DedupIndex::from_parts(vec![], vec![entry(h(1), 100_000), entry(h(2), 200_000)]);
        index.insert(h(3), 300_000);
        index.expire(150_000, 1_000);
        assert!(!index.contains(h(1)), "entries past window + slack go");
        assert!(index.contains(h(2)) && index.contains(h(3)));
        index.expire(250_000, 100_000);
        assert!(
            index.contains(h(2)),
            "within the slack nothing is rewritten"
        );
        index.expire(302_000, 1_000);
        assert!(!index.contains(h(2)) && !index.contains(h(3)));
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn forget_undoes_an_insert() {
        let mut index = DedupIndex::default();
        assert!(index.insert(h(7), 1));
        index.forget(h(7));
        assert!(index.insert(h(7), 1));
        assert!(!index.insert(h(7), 1));
    }

    #[test]
    fn files_round_trip_merge_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        let mut files = Vec::new();
        for f in 0..12u64 {
            let mut entries: Vec<u128> = (0..100u128)
                .map(|n| entry(h(f as u128 * 1000 + n), (f as i64 + 1) * 1_000_000))
                .collect();
            entries.sort_unstable();
            all.extend(entries.iter().copied());
            files.push(files::write(dir.path(), f * 10 + 1, f * 10 + 10, &entries).unwrap());
        }
        files::maintain(dir.path(), &mut files, 0, 1000).unwrap();
        assert_eq!(files.len(), files::MAX_FILES);
        // A crash before the merged inputs were deleted: the covered copies are leftovers.
        std::fs::write(dir.path().join(format!("{:020}-{:020}.dd", 1, 10)), b"junk").unwrap();
        let reopened = files::open(dir.path(), 120).unwrap();
        assert_eq!(reopened, files);
        let mut read: Vec<u128> = reopened
            .iter()
            .flat_map(|f| files::read(&f.path).unwrap())
            .collect();
        read.sort_unstable();
        all.sort_unstable();
        assert_eq!(read, all);
        // Expiry drops files' old entries.
        let mut files = files::open(dir.path(), 120).unwrap();
        files::maintain(dir.path(), &mut files, 6_500_000, 1000).unwrap();
        let kept: usize = files
            .iter()
            .map(|f| files::read(&f.path).unwrap().len())
            .sum();
        assert_eq!(kept, 6 * 100);
        // Above the sealed range: a leftover of a crashed seal.
        let files = files::open(dir.path(), 60).unwrap();
        assert!(!files.is_empty() && files.iter().all(|f| f.last <= 60));
    }
}
