//! The tail: committed events not yet sealed into parts, as an append-only log of segment
//! files (`tail/{first_seq:020}.log`).
//!
//! The writer thread appends each group's records with one positioned write and one
//! `fdatasync`; only then are the group's requests answered. A segment is *closed* when the
//! writer rolls to a new one (it holds enough rows, or the maintenance thread asks because it
//! is old enough); sealing takes whole closed segments, so a segment is either entirely
//! unsealed or entirely in parts (`last_seq <= manifest.sealed_seq`, and then deleted).
//!
//! Segment layout: magic `LSTL`, format `u32`, first seq `u64`; then records, each
//! `len u32 | crc32 u32 | payload` where the payload is
//! `seq u64 | person u64 | ts i64 | name u32 | kind u8 | dedup entry u128 | body`.
//!
//! Invariants:
//! - Records in the shared [`SegmentMeta::len`] prefix of a segment are durable; nothing is
//!   acknowledged beyond it.
//! - After a failed write or sync, the file is cut back to that prefix and fsync'd before
//!   anything else is appended (a failed `fsync` can leave the pages readable but not on
//!   disk, and a retried batch must not find a ghost of itself).
//! - On open, a record that does not check (a write torn by a crash) ends its segment: the
//!   file is cut there. Such records were never acknowledged.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Result, StoreError};
use crate::manifest::sync_dir;
use crate::read::TailRows;

const MAGIC: &[u8; 4] = b"LSTL";
/// The segment format this code writes and reads.
pub(crate) const FORMAT: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 16;
const RECORD_HEAD: usize = 8;
const FIXED: usize = 8 + 8 + 8 + 4 + 1 + 16;

/// One event in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) seq: u64,
    pub(crate) person: u64,
    pub(crate) ts: i64,
    pub(crate) name: u32,
    pub(crate) kind: u8,
    /// The message's dedup entry (see [`crate::dedup::entry`]).
    pub(crate) entry: u128,
    pub(crate) body: &'a [u8],
}

/// Appends the encoding of `r` to `buf`.
pub(crate) fn encode(buf: &mut Vec<u8>, r: &Record<'_>) {
    let len = FIXED + r.body.len();
    buf.reserve(RECORD_HEAD + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    let crc_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let start = buf.len();
    buf.extend_from_slice(&r.seq.to_le_bytes());
    buf.extend_from_slice(&r.person.to_le_bytes());
    buf.extend_from_slice(&r.ts.to_le_bytes());
    buf.extend_from_slice(&r.name.to_le_bytes());
    buf.push(r.kind);
    buf.extend_from_slice(&r.entry.to_le_bytes());
    buf.extend_from_slice(r.body);
    let crc = crc32fast::hash(&buf[start..]);
    buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes records from `bytes` (a segment without its header) until the end or the first
/// record that does not check. Returns how many bytes were valid.
pub(crate) fn decode(bytes: &[u8], mut f: impl FnMut(Record<'_>)) -> usize {
    let mut at = 0;
    while bytes.len() - at >= RECORD_HEAD {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let start = at + RECORD_HEAD;
        if len < FIXED || bytes.len() - start < len {
            break;
        }
        let p = &bytes[start..start + len];
        if crc32fast::hash(p) != crc {
            break;
        }
        let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().expect("8 bytes"));
        f(Record {
            seq: u64_at(0),
            person: u64_at(8),
            ts: u64_at(16) as i64,
            name: u32::from_le_bytes(p[24..28].try_into().expect("4 bytes")),
            kind: p[28],
            entry: u128::from_le_bytes(p[29..45].try_into().expect("16 bytes")),
            body: &p[FIXED..],
        });
        at = start + len;
    }
    at
}

/// What the rest of the store knows of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    pub(crate) path: PathBuf,
    pub(crate) first_seq: u64,
    /// The last seq in the durable prefix (`first_seq - 1` when empty).
    pub(crate) last_seq: u64,
    pub(crate) rows: u64,
    /// Bytes of the durable prefix, header included.
    pub(crate) len: u64,
    /// The writer has moved on: no more records will be added.
    pub(crate) closed: bool,
    /// When the writer created it (ms, the store's clock).
    pub(crate) opened_at: i64,
}

/// The tail folder of a project folder.
pub(crate) fn dir(project_dir: &Path) -> PathBuf {
    project_dir.join("tail")
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// The segments of one project, shared by the writer (which appends and rolls), sealing
/// (which retires closed segments) and readers.
#[derive(Debug)]
pub(crate) struct Tail {
    dir: PathBuf,
    segments: Mutex<Vec<SegmentMeta>>,
}

/// What opening the tail found.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The highest seq in the log (0 if none).
    pub(crate) last_seq: u64,
    /// The dedup entries of every unsealed record.
    pub(crate) entries: Vec<u128>,
}

impl Tail {
    /// Opens the tail of a project: deletes segments already sealed (`<= sealed_seq`) or
    /// empty, cuts torn records off, and returns the dedup entries of what is left. Every
    /// segment found is closed; the writer starts a new one.
    pub(crate) fn open(dir: PathBuf, sealed_seq: u64) -> Result<(Arc<Tail>, Recovered)> {
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            match name
                .strip_suffix(".log")
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(first) => paths.push((first, entry.path())),
                None => {
                    tracing::info!(file = %name, "removing a leftover file from the tail folder");
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        paths.sort();
        let mut recovered = Recovered::default();
        let mut segments = Vec::new();
        for (first, path) in paths {
            let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
            if bytes.len() < HEADER_LEN as usize
                || &bytes[..4] != MAGIC
                || u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) != first
            {
                // A crash while the segment was being created: it never held a record.
                tracing::info!(path = %path.display(), "removing a tail segment without a valid header");
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let format = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
            if format != FORMAT {
                return Err(StoreError::corrupt(
                    &path,
                    format!("unsupported tail segment format {format}"),
                ));
            }
            let (mut rows, mut last, mut entries) = (0u64, first.saturating_sub(1), Vec::new());
            let valid = decode(&bytes[HEADER_LEN as usize..], |r| {
                rows += 1;
                last = r.seq;
                entries.push(r.entry);
            });
            let len = HEADER_LEN + valid as u64;
            if len < bytes.len() as u64 {
                tracing::warn!(path = %path.display(), kept = len, size = bytes.len(),
                    "cutting a torn write off the end of a tail segment (never acknowledged)");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| StoreError::io(&path, e))?;
                file.set_len(len).map_err(|e| StoreError::io(&path, e))?;
                file.sync_all().map_err(|e| StoreError::io(&path, e))?;
            }
            if rows == 0 || last <= sealed_seq {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            recovered.last_seq = recovered.last_seq.max(last);
            recovered.entries.extend(entries);
            segments.push(SegmentMeta {
                path,
                first_seq: first,
                last_seq: last,
                rows,
                len,
                closed: true,
                opened_at: 0,
            });
        }
        sync_dir(&dir)?;
        Ok((
            Arc::new(Tail {
                dir,
                segments: Mutex::new(segments),
            }),
            recovered,
        ))
    }

    /// The segments now, oldest first.
    pub(crate) fn segments(&self) -> Vec<SegmentMeta> {
        self.segments.lock().expect("tail lock").clone()
    }

    fn update(&self, meta: &SegmentMeta) {
        let mut segments = self.segments.lock().expect("tail lock");
        match segments.iter_mut().find(|s| s.first_seq == meta.first_seq) {
            Some(s) => *s = meta.clone(),
            None => segments.push(meta.clone()),
        }
    }

    /// Forgets and deletes the segments whose rows are all `<= sealed_seq`.
    pub(crate) fn retire(&self, sealed_seq: u64) {
        let retired: Vec<SegmentMeta> = {
            let mut segments = self.segments.lock().expect("tail lock");
            let (gone, kept) = segments
                .drain(..)
                .partition(|s| s.closed && s.last_seq <= sealed_seq);
            *segments = kept;
            gone
        };
        for s in retired {
            if let Err(e) = std::fs::remove_file(&s.path) {
                tracing::warn!(path = %s.path.display(), error = %e, "could not delete a sealed tail segment");
            }
        }
    }
}

/// Reads the durable records of `segments` with `seq > after`, resolving persons through
/// `canonical`, in seq order.
pub(crate) fn read(
    segments: &[SegmentMeta],
    after: u64,
    canonical: &std::collections::HashMap<u64, u64>,
    rows: &mut TailRows,
) -> Result<()> {
    for s in segments {
        if s.last_seq <= after || s.rows == 0 {
            continue;
        }
        let file = File::open(&s.path).map_err(|e| StoreError::io(&s.path, e))?;
        let mut bytes = vec![0u8; (s.len - HEADER_LEN) as usize];
        file.read_exact_at(&mut bytes, HEADER_LEN)
            .map_err(|e| StoreError::io(&s.path, e))?;
        let mut n = 0u64;
        let valid = decode(&bytes, |r| {
            n += 1;
            if r.seq <= after {
                return;
            }
            rows.seqs.push(r.seq);
            rows.persons
                .push(canonical.get(&r.person).copied().unwrap_or(r.person));
            rows.ts.push(r.ts);
            rows.names.push(r.name);
            rows.kinds.push(r.kind);
            rows.entries.push(r.entry);
            rows.values.push(lodestar_core::event_value(r.body));
            rows.bodies.push(r.body.to_vec());
        });
        if valid != bytes.len() || n != s.rows {
            return Err(StoreError::corrupt(
                &s.path,
                format!(
                    "tail segment: {n} of {} durable records readable ({valid} of {} bytes)",
                    s.rows,
                    bytes.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The writer's end of the log: the open segment and the bytes of the group being built.
#[derive(Debug)]
pub(crate) struct Appender {
    tail: Arc<Tail>,
    file: Option<File>,
    meta: Option<SegmentMeta>,
    buf: Vec<u8>,
    buf_rows: u64,
    buf_first: u64,
    buf_last: u64,
    /// A write or sync failed and the file has not yet been cut back to `meta.len`.
    needs_repair: bool,
}

impl Appender {
    pub(crate) fn new(tail: Arc<Tail>) -> Appender {
        Appender {
            tail,
            file: None,
            meta: None,
            buf: Vec::new(),
            buf_rows: 0,
            buf_first: 0,
            buf_last: 0,
            needs_repair: false,
        }
    }

    /// Adds a record to the group being built.
    pub(crate) fn push(&mut self, r: &Record<'_>) {
        if self.buf_rows == 0 {
            self.buf_first = r.seq;
        }
        self.buf_last = r.seq;
        self.buf_rows += 1;
        encode(&mut self.buf, r);
    }

    /// Drops the group being built.
    pub(crate) fn discard(&mut self) {
        self.buf.clear();
        self.buf_rows = 0;
    }

    /// Rows in the open segment, durable ones.
    pub(crate) fn rows(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.rows)
    }

    /// Makes the group durable: one write, one `fdatasync`. On failure nothing of the group
    /// counts, and the file is cut back before the next group.
    pub(crate) fn commit(&mut self, now: i64) -> Result<()> {
        if self.buf_rows == 0 {
            return self.repair();
        }
        let result = self.try_commit(now);
        if result.is_err() {
            self.needs_repair = true;
            // Best effort now; retried before the next group otherwise.
            let _ = self.repair();
        }
        self.discard();
        result
    }

    fn try_commit(&mut self, now: i64) -> Result<()> {
        self.repair()?;
        if self.file.is_none() {
            self.create(now)?;
        }
        let file = self.file.as_ref().expect("created above");
        let meta = self.meta.as_mut().expect("created with the file");
        file.write_all_at(&self.buf, meta.len)
            .map_err(|e| StoreError::io(&meta.path, e))?;
        file.sync_data()
            .map_err(|e| StoreError::io(&meta.path, e))?;
        meta.len += self.buf.len() as u64;
        meta.rows += self.buf_rows;
        meta.last_seq = self.buf_last;
        self.tail.update(meta);
        Ok(())
    }

    fn create(&mut self, now: i64) -> Result<()> {
        let path = segment_path(&self.tail.dir, self.buf_first);
        let io = |e| StoreError::io(&path, e);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io)?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&FORMAT.to_le_bytes());
        header.extend_from_slice(&self.buf_first.to_le_bytes());
        let made = file
            .write_all_at(&header, 0)
            .and_then(|()| file.sync_all())
            .map_err(io)
            .and_then(|()| sync_dir(&self.tail.dir));
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        self.file = Some(file);
        self.meta = Some(SegmentMeta {
            path,
            first_seq: self.buf_first,
            last_seq: self.buf_first - 1,
            rows: 0,
            len: HEADER_LEN,
            closed: false,
            opened_at: now,
        });
        Ok(())
    }

    /// Cuts the open segment back to its durable prefix after a failure.
    fn repair(&mut self) -> Result<()> {
        if !self.needs_repair {
            return Ok(());
        }
        if let (Some(file), Some(meta)) = (&self.file, &self.meta) {
            file.set_len(meta.len)
                .and_then(|()| file.sync_all())
                .map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cutting {} back after a failed write: {e}",
                        meta.path.display()
                    ))
                })?;
        }
        self.needs_repair = false;
        Ok(())
    }

    /// Closes the open segment if it holds rows; the next group starts a new one.
    pub(crate) fn roll(&mut self) -> Result<()> {
        self.repair()?;
        if let Some(mut meta) = self.meta.take_if(|m| m.rows > 0) {
            meta.closed = true;
            self.tail.update(&meta);
            self.file = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Records round-trip, and any cut of the bytes decodes to a prefix of them.
        #[test]
        fn encode_decode_and_torn_prefixes(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut buf = Vec::new();
            let mut ends = vec![0];
            for (i, b) in bodies.iter().enumerate() {
                encode(&mut buf, &Record { seq: i as u64 + 1, person: 7, ts: -3, name: 2, kind: 1, entry: 99 << 40, body: b });
                ends.push(buf.len());
            }
            let mut got = Vec::new();
            prop_assert_eq!(decode(&buf, |r| got.push(r.body.to_vec())), buf.len());
            prop_assert_eq!(&got, &bodies);
            let at = cut.index(buf.len() + 1);
            let mut n = 0;
            let valid = decode(&buf[..at], |_| n += 1);
            prop_assert_eq!(valid, ends[n]);
            prop_assert!(ends[n] <= at && (n == bodies.len() || ends[n + 1] > at));
        }
    }

    #[test]
    fn a_flipped_byte_ends_the_segment() {
        let mut buf = Vec::new();
        for i in 0..3u64 {
            encode(
                &mut buf,
                &Record {
                    seq: i + 1,
                    person: 1,
                    ts: 0,
                    name: 0,
                    kind: 0,
                    entry: 0,
                    body: b"{}",
                },
            );
        }
        let second = buf.len() / 3;
        buf[second + 20] ^= 1;
        let mut seqs = Vec::new();
        assert_eq!(decode(&buf, |r| seqs.push(r.seq)), second);
        assert_eq!(seqs, vec![1]);
    }

    #[test]
    fn open_cuts_torn_records_and_drops_sealed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let tdir = dir.path().join("tail");
        let (tail, rec) = Tail::open(tdir.clone(), 0).unwrap();
        assert_eq!(rec.last_seq, 0);
        let mut app = Appender::new(tail.clone());
        for seq in 1..=3 {
            app.push(&Record {
                seq,
                person: 1,
                ts: seq as i64,
                name: 0,
                kind: 0,
                entry: (seq as u128) << 64,
                body: b"x",
            });
        }
        app.commit(0).unwrap();
        app.roll().unwrap();
        for seq in 4..=5 {
            app.push(&Record {
                seq,
                person: 2,
                ts: 0,
                name: 0,
                kind: 0,
                entry: (seq as u128) << 64,
                body: b"y",
            });
        }
        app.commit(0).unwrap();
        let second = tail.segments()[1].clone();
        // A torn write at the end of the second segment.
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&second.path)
            .unwrap();
        std::io::Write::write_all(&mut &f, &[9, 0, 0, 0, 1, 2]).unwrap();
        drop((app, tail));
        let (tail, rec) = Tail::open(tdir.clone(), 3).unwrap();
        assert_eq!(rec.last_seq, 5);
        assert_eq!(
            rec.entries.len(),
            2,
            "the sealed segment's entries are in a dedup file"
        );
        let segs = tail.segments();
        assert_eq!(segs.len(), 1);
        assert_eq!(std::fs::metadata(&segs[0].path).unwrap().len(), second.len);
        let mut rows = TailRows::default();
        read(&segs, 3, &Default::default(), &mut rows).unwrap();
        assert_eq!(rows.seqs, vec![4, 5]);
        assert!(!tdir.join(format!("{:020}.log", 1)).exists());
    }
}
