//! Deterministic message ids for imported rows (the rule is stated in [`crate::import`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use lodestar_core::JsonMap;
use serde_json::Value;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// Makes the ids of orders: a function of the event name and the order id only.
///
/// Hashes `"lodestar-order\0"`, the event name's length (8 bytes, little-endian), the
/// event name, then the order id, in one buffer reused from row to row.
pub(crate) struct OrderIds {
    buffer: Vec<u8>,
    prefix_len: usize,
}

impl OrderIds {
    pub(crate) fn new(event: &str) -> Self {
        let mut buffer = Vec::with_capacity(64 + event.len());
        buffer.extend_from_slice(b"lodestar-order\0");
        buffer.extend_from_slice(&(event.len() as u64).to_le_bytes());
        buffer.extend_from_slice(event.as_bytes());
        let prefix_len = buffer.len();
        OrderIds { buffer, prefix_len }
    }

    /// The message id of the order `order_id`.
    pub(crate) fn id(&mut self, order_id: &str) -> String {
        self.buffer.truncate(self.prefix_len);
        self.buffer.extend_from_slice(order_id.as_bytes());
        hex_id("ord", xxh3_128(&self.buffer))
    }
}

/// The id of the `occurrence`-th (from 0) row of a file with content hash `content`.
pub(crate) fn content_message_id(prefix: &str, content: u128, occurrence: u32) -> String {
    let id = if occurrence == 0 {
        content
    } else {
        let mut bytes = [0u8; 20];
        bytes[..16].copy_from_slice(&content.to_le_bytes());
        bytes[16..].copy_from_slice(&occurrence.to_le_bytes());
        xxh3_128(&bytes)
    };
    hex_id(prefix, id)
}

/// `prefix-` and 32 lowercase hex digits.
fn hex_id(prefix: &str, id: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(prefix.len() + 33);
    out.push_str(prefix);
    out.push('-');
    for shift in (0..32).rev() {
        out.push(char::from(HEX[((id >> (shift * 4)) & 0xf) as usize]));
    }
    out
}

/// Counts how often each content hash was seen so far in one file.
///
/// Keyed by the low 64 bits of the 128-bit hash, to halve the memory (about 17 bytes a
/// distinct row). Two different contents that share those bits share a counter, which
/// only makes one of their occurrence numbers start above 0: their ids stay distinct
/// (they differ in the full hash) and the same file still maps to the same ids.
#[derive(Debug, Default)]
pub(crate) struct Occurrences {
    seen: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
}

impl Occurrences {
    /// How many times `content` was seen before; counts this time.
    pub(crate) fn next(&mut self, content: u128) -> u32 {
        let count = self.seen.entry(content as u64).or_insert(0);
        let before = *count;
        *count = count.saturating_add(1);
        before
    }
}

/// A hasher for keys that are hashes already.
#[derive(Debug, Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The hash of a row's normalised content: the event name, customer id, time and every
/// property, keys in sorted order (the map is ordered), numbers by value. So a row
/// hashes the same whatever the order of its columns and however its amount was written
/// (`1,234.50` and `1234.5` are one amount).
pub(crate) fn row_content_hash(
    event: &str,
    user_id: &str,
    timestamp: i64,
    properties: &JsonMap,
) -> u128 {
    let mut h = Xxh3::new();
    h.update(b"lodestar-row\0");
    hash_text(&mut h, event);
    hash_text(&mut h, user_id);
    h.update(&timestamp.to_le_bytes());
    for (key, value) in properties {
        hash_text(&mut h, key);
        hash_value(&mut h, value);
    }
    h.digest128()
}

/// Text with its length before it, so no two sequences of texts hash alike by accident.
fn hash_text(h: &mut Xxh3, text: &str) {
    h.update(&(text.len() as u64).to_le_bytes());
    h.update(text.as_bytes());
}

fn hash_value(h: &mut Xxh3, value: &Value) {
    match value {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.update(b"#");
            match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => h.update(&(i as f64).to_bits().to_le_bytes()),
                (None, Some(f)) => h.update(&f.to_bits().to_le_bytes()),
                (None, None) => h.update(n.to_string().as_bytes()),
            }
        }
        Value::String(s) => {
            h.update(b"s");
            hash_text(h, s);
        }
        Value::Array(items) => {
            h.update(b"[");
            for item in items {
                hash_value(h, item);
            }
            h.update(b"]");
        }
        Value::Object(map) => {
            h.update(b"{");
            for (key, item) in map {
                hash_text(h, key);
                hash_value(h, item);
            }
            h.update(b"}");
        }
    }
}

/// An [`std::io::Write`] that feeds a hash, to hash a value's JSON without building it.
pub(crate) struct HashWriter(pub(crate) Xxh3);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let order = |event: &str, id: &str| OrderIds::new(event).id(id);
        let mut orders = OrderIds::new("Order Completed");
        assert_eq!(orders.id("A1"), order("Order Completed", "A1"));
        assert_eq!(orders.id("A1"), orders.id("A1"));
        assert_ne!(orders.id("A1"), orders.id("A2"));
        assert_ne!(order("Order Completed", "A1"), order("Refund", "A1"));
        assert_ne!(order("a\0b", "c"), order("a", "b\0c"));
        assert_eq!(hex_id("x", 0xab), format!("x-{:032x}", 0xab));
        assert_eq!(hex_id("x", u128::MAX), format!("x-{:032x}", u128::MAX));
        let mut seen = Occurrences::default();
        let first = content_message_id("row", 7, seen.next(7));
        let second = content_message_id("row", 7, seen.next(7));
        assert_ne!(first, second);
        assert_eq!(seen.next(8), 0);
        assert!(first.len() <= 40);
    }

    #[test]
    fn content_hash_reads_numbers_by_value() {
        let mut a = JsonMap::new();
        a.insert("revenue".into(), serde_json::json!(12));
        let mut b = JsonMap::new();
        b.insert("revenue".into(), serde_json::json!(12.0));
        assert_eq!(
            row_content_hash("e", "u", 1, &a),
            row_content_hash("e", "u", 1, &b)
        );
        b.insert("revenue".into(), serde_json::json!("12"));
        assert_ne!(
            row_content_hash("e", "u", 1, &a),
            row_content_hash("e", "u", 1, &b)
        );
    }
}
