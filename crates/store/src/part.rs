//! Immutable columnar parts: the sealed, sorted, compressed home of events.
//!
//! A part holds the events of one project sorted by (person, timestamp, seq). Its hot
//! columns (persons, per-person row offsets, timestamps, event-name ids, kinds, seqs) are
//! stored raw and little-endian at 8-byte aligned offsets, so a reader maps the file and
//! scans them in place with no decoding. The full message bodies (JSON) sit in
//! zstd-compressed blocks of `block_rows` rows, read only by exports and property filters.
//!
//! File layout (format 1):
//! ```text
//! "LSPART01"                         magic
//! body blocks                        each: u32 raw length, zstd frame of (u32 len, bytes)*
//! sections, 8-byte aligned           block_offsets u64×(B+1), persons u64×P,
//!                                    person_offsets u32×(P+1), ts i64×N, name u32×N,
//!                                    kind u8×N, seq u64×N, value f64×N
//! footer                             JSON: counts, ranges, section offsets and CRC32s
//! trailer (24 bytes)                 u64 footer length, u32 footer CRC32, u32 0, "LSPEND01"
//! ```
//! The `value` section (each event's [`lodestar_core::event_value`], NaN for none) came after
//! the others; a part written without it gets the column computed from its bodies when first
//! asked for, and compaction rewrites it with the section.
//!
//! Invariant: a part file is written to a temporary name, fsync'd, then renamed; it is never
//! modified afterwards. Only the manifest says which parts are live.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

const MAGIC: &[u8; 8] = b"LSPART01";
const END_MAGIC: &[u8; 8] = b"LSPEND01";
const TRAILER_LEN: usize = 24;
/// The part format this code writes and reads.
pub const PART_FORMAT: u32 = 1;
/// Rows per compressed body block.
pub const DEFAULT_BLOCK_ROWS: u32 = 2048;
/// Level 1: on event JSON in 1 MB blocks it is both faster and (measured) no larger than 3.
const ZSTD_LEVEL: i32 = 1;

/// What a part holds, as recorded in its footer and in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartStats {
    /// Number of events.
    pub rows: u64,
    /// Number of distinct persons.
    pub persons: u64,
    /// Earliest event time (ms).
    pub min_ts: i64,
    /// Latest event time (ms).
    pub max_ts: i64,
    /// Smallest write sequence number.
    pub min_seq: u64,
    /// Largest write sequence number.
    pub max_seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Section {
    name: String,
    offset: u64,
    len: u64,
    crc32: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Footer {
    format: u32,
    block_rows: u32,
    stats: PartStats,
    sections: Vec<Section>,
}

/// One event as it goes into a part.
#[derive(Debug, Clone, Copy)]
pub struct PartRow<'a> {
    /// Canonical person id.
    pub person: u64,
    /// Event time (ms).
    pub ts: i64,
    /// Event-name id from the project's name dictionary.
    pub name: u32,
    /// [`lodestar_core::MessageKind::code`].
    pub kind: u8,
    /// Write sequence number.
    pub seq: u64,
    /// The event's value ([`lodestar_core::event_value`] of the body), NaN for none.
    pub value: f64,
    /// The message body (JSON).
    pub body: &'a [u8],
}

/// Writes one part. Rows must be pushed in (person, ts, seq) order.
pub struct PartWriter {
    out: BufWriter<File>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    pos: u64,
    block_rows: u32,
    block: Vec<u8>,
    block_len: u32,
    block_offsets: Vec<u64>,
    persons: Vec<u64>,
    person_offsets: Vec<u32>,
    ts: Vec<i64>,
    names: Vec<u32>,
    kinds: Vec<u8>,
    seqs: Vec<u64>,
    values: Vec<f64>,
    /// Off only in tests, to make a part as written before the `value` section existed.
    write_values: bool,
    last: Option<(u64, i64, u64)>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl PartWriter {
    /// Starts a part that will be published at `final_path` by [`PartWriter::finish`].
    pub fn create(final_path: &Path) -> Result<PartWriter> {
        let tmp_path = final_path.with_extension("tmp");
        let file = File::create(&tmp_path).map_err(|e| StoreError::io(&tmp_path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC)
            .map_err(|e| StoreError::io(&tmp_path, e))?;
        let compressor =
            zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| StoreError::io(&tmp_path, e))?;
        Ok(PartWriter {
            out,
            tmp_path,
            final_path: final_path.to_path_buf(),
            pos: MAGIC.len() as u64,
            block_rows: DEFAULT_BLOCK_ROWS,
            block: Vec::with_capacity(1 << 20),
            block_len: 0,
            block_offsets: vec![MAGIC.len() as u64],
            persons: Vec::new(),
            person_offsets: Vec::new(),
            ts: Vec::new(),
            names: Vec::new(),
            kinds: Vec::new(),
            seqs: Vec::new(),
            values: Vec::new(),
            write_values: true,
            last: None,
            compressor,
        })
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.ts.len()
    }

    /// Appends one row. Errors if rows arrive out of (person, ts, seq) order.
    pub fn push(&mut self, row: PartRow<'_>) -> Result<()> {
        let key = (row.person, row.ts, row.seq);
        if let Some(last) = self.last
            && key <= last
        {
            {
                return Err(StoreError::corrupt(
                    &self.tmp_path,
                    format!("part rows out of order: {key:?} after {last:?}"),
                ));
            }
        }
        if self.last.map(|l| l.0) != Some(row.person) {
            self.persons.push(row.person);
            self.person_offsets.push(self.ts.len() as u32);
        }
        self.last = Some(key);
        self.ts.push(row.ts);
        self.names.push(row.name);
        self.kinds.push(row.kind);
        self.seqs.push(row.seq);
        self.values.push(row.value);
        self.block
            .extend_from_slice(&(row.body.len() as u32).to_le_bytes());
        self.block.extend_from_slice(row.body);
        self.block_len += 1;
        if self.block_len == self.block_rows {
            self.flush_block()?;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| StoreError::io(&self.tmp_path, e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.block_len == 0 {
            return Ok(());
        }
        let raw_len = self.block.len() as u32;
        let compressed = self
            .compressor
            .compress(&self.block)
            .map_err(|e| StoreError::io(&self.tmp_path, e))?;
        self.write(&raw_len.to_le_bytes())?;
        self.write(&compressed)?;
        self.block_offsets.push(self.pos);
        self.block.clear();
        self.block_len = 0;
        Ok(())
    }

    fn section(&mut self, name: &str, bytes: &[u8], sections: &mut Vec<Section>) -> Result<()> {
        let pad = (8 - (self.pos % 8)) % 8;
        self.write(&[0u8; 8][..pad as usize])?;
        sections.push(Section {
            name: name.to_string(),
            offset: self.pos,
            len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        });
        self.write(bytes)
    }

    /// Writes the columns, footer and trailer, fsyncs the file, and renames it into place.
    /// Returns the part's statistics. The caller must fsync the folder before the part is
    /// referenced from a manifest.
    pub fn finish(mut self) -> Result<PartStats> {
        self.flush_block()?;
        let rows = self.ts.len() as u64;
        self.person_offsets.push(rows as u32);
        let stats = PartStats {
            rows,
            persons: self.persons.len() as u64,
            min_ts: self.ts.iter().copied().min().unwrap_or(0),
            max_ts: self.ts.iter().copied().max().unwrap_or(0),
            min_seq: self.seqs.iter().copied().min().unwrap_or(0),
            max_seq: self.seqs.iter().copied().max().unwrap_or(0),
        };
        let mut sections = Vec::new();
        let block_offsets = std::mem::take(&mut self.block_offsets);
        self.section(
            "block_offsets",
            bytemuck::cast_slice(&block_offsets),
            &mut sections,
        )?;
        let persons = std::mem::take(&mut self.persons);
        self.section("persons", bytemuck::cast_slice(&persons), &mut sections)?;
        let offsets = std::mem::take(&mut self.person_offsets);
        self.section(
            "person_offsets",
            bytemuck::cast_slice(&offsets),
            &mut sections,
        )?;
        let ts = std::mem::take(&mut self.ts);
        self.section("ts", bytemuck::cast_slice(&ts), &mut sections)?;
        let names = std::mem::take(&mut self.names);
        self.section("name", bytemuck::cast_slice(&names), &mut sections)?;
        let kinds = std::mem::take(&mut self.kinds);
        self.section("kind", &kinds, &mut sections)?;
        let seqs = std::mem::take(&mut self.seqs);
        self.section("seq", bytemuck::cast_slice(&seqs), &mut sections)?;
        let values = std::mem::take(&mut self.values);
        if self.write_values {
            self.section("value", bytemuck::cast_slice(&values), &mut sections)?;
        }
        let footer = Footer {
            format: PART_FORMAT,
            block_rows: self.block_rows,
            stats: stats.clone(),
            sections,
        };
        let footer_bytes = serde_json::to_vec(&footer).expect("footer serializes");
        self.write(&footer_bytes)?;
        let mut trailer = Vec::with_capacity(TRAILER_LEN);
        trailer.extend_from_slice(&(footer_bytes.len() as u64).to_le_bytes());
        trailer.extend_from_slice(&crc32fast::hash(&footer_bytes).to_le_bytes());
        trailer.extend_from_slice(&0u32.to_le_bytes());
        trailer.extend_from_slice(END_MAGIC);
        self.write(&trailer)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| StoreError::io(&self.tmp_path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| StoreError::io(&self.tmp_path, e))?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| StoreError::io(&self.final_path, e))?;
        Ok(stats)
    }

    /// Abandons the part, removing its temporary file.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp_path);
    }
}

/// A sealed part, mapped read-only.
pub struct Part {
    path: PathBuf,
    map: Mmap,
    footer: Footer,
    ranges: [(usize, usize); 8],
    /// The `value` column of a part written without one, computed on first use.
    computed_values: std::sync::OnceLock<Vec<f64>>,
}

const SECTION_NAMES: [&str; 8] = [
    "block_offsets",
    "persons",
    "person_offsets",
    "ts",
    "name",
    "kind",
    "seq",
    "value",
];
/// Sections a part may lack (written before they existed), by index in [`SECTION_NAMES`].
const OPTIONAL_SECTION: usize = 7;

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("path", &self.path)
            .field("stats", &self.footer.stats)
            .finish()
    }
}

impl Part {
    /// Opens and maps a part, checking its trailer, footer and section bounds (not the
    /// section checksums: see [`Part::verify`]).
    pub fn open(path: &Path) -> Result<Part> {
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        // SAFETY: part files are immutable once renamed into place (module invariant), and
        // the store never truncates or rewrites them while they are mapped.
        #[allow(unsafe_code, reason = "read-only map of an immutable file")]
        let map = unsafe { Mmap::map(&file) }.map_err(|e| StoreError::io(path, e))?;
        let bad = |reason: &str| StoreError::corrupt(path, reason.to_string());
        if map.len() < MAGIC.len() + TRAILER_LEN || &map[..8] != MAGIC {
            return Err(bad("not a lodestar part (bad magic)"));
        }
        let trailer = &map[map.len() - TRAILER_LEN..];
        if &trailer[16..24] != END_MAGIC {
            return Err(bad("truncated part (bad end magic)"));
        }
        let footer_len = u64::from_le_bytes(trailer[0..8].try_into().expect("8 bytes")) as usize;
        let footer_crc = u32::from_le_bytes(trailer[8..12].try_into().expect("4 bytes"));
        let footer_end = map.len() - TRAILER_LEN;
        if footer_len > footer_end - MAGIC.len() {
            return Err(bad("footer length out of bounds"));
        }
        let footer_bytes = &map[footer_end - footer_len..footer_end];
        if crc32fast::hash(footer_bytes) != footer_crc {
            return Err(bad("footer checksum mismatch"));
        }
        let footer: Footer =
            serde_json::from_slice(footer_bytes).map_err(|e| bad(&format!("footer: {e}")))?;
        if footer.format != PART_FORMAT {
            return Err(bad(&format!("unsupported part format {}", footer.format)));
        }
        let mut ranges = [(0usize, 0usize); 8];
        for (i, name) in SECTION_NAMES.iter().enumerate() {
            let found = footer.sections.iter().find(|s| s.name == *name);
            let Some(s) = found else {
                if i == OPTIONAL_SECTION {
                    continue;
                }
                return Err(bad(&format!("missing section {name}")));
            };
            let (start, len) = (s.offset as usize, s.len as usize);
            if start % 8 != 0 || start.checked_add(len).is_none_or(|end| end > footer_end) {
                return Err(bad(&format!("section {name} out of bounds")));
            }
            ranges[i] = (start, start + len);
        }
        let part = Part {
            path: path.to_path_buf(),
            map,
            footer,
            ranges,
            computed_values: std::sync::OnceLock::new(),
        };
        let rows = part.footer.stats.rows as usize;
        let persons = part.footer.stats.persons as usize;
        let ok = part.ts().len() == rows
            && part.names().len() == rows
            && part.kinds().len() == rows
            && part.seqs().len() == rows
            && (!part.has_values() || part.values().len() == rows)
            && part.persons().len() == persons
            && part.person_offsets().len() == persons + 1
            && part.person_offsets().last().copied() == Some(rows as u32)
            && part.block_offsets().len() == rows.div_ceil(part.footer.block_rows as usize) + 1;
        if !ok {
            return Err(bad("column lengths disagree with the footer"));
        }
        Ok(part)
    }

    /// Checks every section's CRC32.
    pub fn verify(&self) -> Result<()> {
        for (i, name) in SECTION_NAMES.iter().enumerate() {
            let Some(s) = self.footer.sections.iter().find(|s| s.name == *name) else {
                continue; // an optional section this part lacks
            };
            let (a, b) = self.ranges[i];
            if crc32fast::hash(&self.map[a..b]) != s.crc32 {
                return Err(StoreError::corrupt(
                    &self.path,
                    format!("section {name} checksum"),
                ));
            }
        }
        // The body blocks are covered by zstd's own frame checks when read.
        Ok(())
    }

    fn bytes(&self, i: usize) -> &[u8] {
        let (a, b) = self.ranges[i];
        &self.map[a..b]
    }

    /// The file this part lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counts and ranges.
    pub fn stats(&self) -> &PartStats {
        &self.footer.stats
    }

    /// Number of events.
    pub fn rows(&self) -> usize {
        self.footer.stats.rows as usize
    }

    fn block_offsets(&self) -> &[u64] {
        bytemuck::cast_slice(self.bytes(0))
    }

    /// Distinct person ids, ascending (as they were canonical when the part was written).
    pub fn persons(&self) -> &[u64] {
        bytemuck::cast_slice(self.bytes(1))
    }

    /// Row ranges per person: person `i` owns rows `offsets[i]..offsets[i + 1]`.
    pub fn person_offsets(&self) -> &[u32] {
        bytemuck::cast_slice(self.bytes(2))
    }

    /// Event times (ms), per row.
    pub fn ts(&self) -> &[i64] {
        bytemuck::cast_slice(self.bytes(3))
    }

    /// Event-name ids, per row.
    pub fn names(&self) -> &[u32] {
        bytemuck::cast_slice(self.bytes(4))
    }

    /// Message kind codes, per row.
    pub fn kinds(&self) -> &[u8] {
        self.bytes(5)
    }

    /// Write sequence numbers, per row.
    pub fn seqs(&self) -> &[u64] {
        bytemuck::cast_slice(self.bytes(6))
    }

    /// Whether the part has its `value` section (else [`Part::values`] computes it).
    pub fn has_values(&self) -> bool {
        self.ranges[OPTIONAL_SECTION] != (0, 0) || self.rows() == 0
    }

    /// Each event's value ([`lodestar_core::event_value`]), NaN for none, per row. A part
    /// written before the column existed computes it from its bodies on the first call
    /// (a body that cannot be read counts as no value).
    pub fn values(&self) -> &[f64] {
        if self.ranges[OPTIONAL_SECTION] != (0, 0) {
            return bytemuck::cast_slice(self.bytes(OPTIONAL_SECTION));
        }
        self.computed_values.get_or_init(|| {
            let mut values = Vec::with_capacity(self.rows());
            for b in 0..self.blocks() {
                match self.block_bodies(b) {
                    Ok(bodies) => {
                        values.extend(bodies.iter().map(|b| lodestar_core::event_value(b)))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "part body block unreadable; its events get no value");
                        let n = self.block_rows().min(self.rows() - values.len());
                        values.extend(std::iter::repeat_n(f64::NAN, n));
                    }
                }
            }
            values
        })
    }

    /// Rows per body block.
    pub fn block_rows(&self) -> usize {
        self.footer.block_rows as usize
    }

    /// Number of body blocks.
    pub fn blocks(&self) -> usize {
        self.block_offsets().len() - 1
    }

    /// Decompresses body block `b` and returns the bodies of its rows, in row order.
    pub fn block_bodies(&self, b: usize) -> Result<Vec<Vec<u8>>> {
        let offsets = self.block_offsets();
        let (start, end) = (offsets[b] as usize, offsets[b + 1] as usize);
        let bad = |reason: String| StoreError::corrupt(&self.path, reason);
        if end > self.map.len() || start + 4 > end {
            return Err(bad(format!("body block {b} out of bounds")));
        }
        let raw_len =
            u32::from_le_bytes(self.map[start..start + 4].try_into().expect("4")) as usize;
        let raw = zstd::bulk::decompress(&self.map[start + 4..end], raw_len)
            .map_err(|e| bad(format!("body block {b}: {e}")))?;
        let mut bodies = Vec::with_capacity(self.block_rows());
        let mut at = 0usize;
        while at < raw.len() {
            if at + 4 > raw.len() {
                return Err(bad(format!("body block {b} truncated")));
            }
            let len = u32::from_le_bytes(raw[at..at + 4].try_into().expect("4")) as usize;
            at += 4;
            let body = raw
                .get(at..at + len)
                .ok_or_else(|| bad(format!("body block {b} truncated")))?;
            bodies.push(body.to_vec());
            at += len;
        }
        let expected = self.block_rows().min(self.rows() - b * self.block_rows());
        if bodies.len() != expected {
            return Err(bad(format!(
                "body block {b} holds {} rows, not {expected}",
                bodies.len()
            )));
        }
        Ok(bodies)
    }

    /// Bytes on disk.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u64) -> Vec<(u64, i64, u32, u8, u64, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    i / 7,
                    (i % 7) as i64 * 1000,
                    (i % 3) as u32,
                    (i % 6) as u8,
                    i + 1,
                    format!("{{\"i\":{i}}}").into_bytes(),
                )
            })
            .collect()
    }

    #[test]
    fn round_trips_columns_and_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lsp");
        let mut w = PartWriter::create(&path).unwrap();
        let input = rows(5000);
        for (person, ts, name, kind, seq, body) in &input {
            w.push(PartRow {
                person: *person,
                ts: *ts,
                name: *name,
                kind: *kind,
                seq: *seq,
                value: *seq as f64 / 4.0,
                body,
            })
            .unwrap();
        }
        let stats = w.finish().unwrap();
        assert_eq!(stats.rows, 5000);
        let part = Part::open(&path).unwrap();
        part.verify().unwrap();
        assert_eq!(part.persons().len(), 5000usize.div_ceil(7));
        let mut bodies = Vec::new();
        for b in 0..part.blocks() {
            bodies.extend(part.block_bodies(b).unwrap());
        }
        for (i, (person, ts, name, kind, seq, body)) in input.iter().enumerate() {
            let p = part.person_offsets().partition_point(|&o| o as usize <= i) - 1;
            assert_eq!(part.persons()[p], *person);
            assert_eq!(part.ts()[i], *ts);
            assert_eq!(part.names()[i], *name);
            assert_eq!(part.kinds()[i], *kind);
            assert_eq!(part.seqs()[i], *seq);
            assert_eq!(part.values()[i], *seq as f64 / 4.0);
            assert_eq!(&bodies[i], body);
        }
    }

    #[test]
    fn a_part_without_values_computes_them_from_its_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lsp");
        let mut w = PartWriter::create(&path).unwrap();
        w.write_values = false;
        let bodies: Vec<String> = (0..3000)
            .map(|i| match i % 3 {
                0 => format!(r#"{{"properties":{{"revenue":{i}}}}}"#),
                1 => r#"{"properties":{"plan":"pro"}}"#.to_string(),
                _ => format!(r#"{{"properties":{{"score":"{}"}}}}"#, i % 11),
            })
            .collect();
        for (i, body) in bodies.iter().enumerate() {
            w.push(PartRow {
                person: i as u64,
                ts: 0,
                name: 0,
                kind: 0,
                seq: i as u64 + 1,
                value: 999.0, // not written
                body: body.as_bytes(),
            })
            .unwrap();
        }
        w.finish().unwrap();
        let part = Part::open(&path).unwrap();
        part.verify().unwrap();
        assert!(!part.has_values());
        for (i, v) in part.values().iter().enumerate() {
            match i % 3 {
                0 => assert_eq!(*v, i as f64),
                1 => assert!(v.is_nan()),
                _ => assert_eq!(*v, (i % 11) as f64),
            }
        }
    }

    #[test]
    fn refuses_out_of_order_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PartWriter::create(&dir.path().join("p.lsp")).unwrap();
        w.push(PartRow {
            person: 2,
            ts: 0,
            name: 0,
            kind: 0,
            seq: 1,
            value: f64::NAN,
            body: b"{}",
        })
        .unwrap();
        let err = w.push(PartRow {
            person: 1,
            ts: 0,
            name: 0,
            kind: 0,
            seq: 2,
            value: f64::NAN,
            body: b"{}",
        });
        assert!(err.is_err());
    }

    #[test]
    fn detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lsp");
        let mut w = PartWriter::create(&path).unwrap();
        for (person, ts, name, kind, seq, body) in &rows(100) {
            w.push(PartRow {
                person: *person,
                ts: *ts,
                name: *name,
                kind: *kind,
                seq: *seq,
                value: f64::NAN,
                body,
            })
            .unwrap();
        }
        w.finish().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // Truncation is caught on open.
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(Part::open(&path).is_err());
        // A flipped bit inside a column is caught by verify.
        let part_len = bytes.len();
        let ts_at = part_len - TRAILER_LEN - 400;
        bytes[ts_at] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let damaged = Part::open(&path).and_then(|p| p.verify());
        assert!(damaged.is_err());
    }
}
