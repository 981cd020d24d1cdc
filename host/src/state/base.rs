//! Base values, kept lean: what both sides last agreed on, per field, as a
//! 48-bit digest of the value rather than the value itself. A digest is all
//! the comparison needs (is this field where both sides left it?), and a
//! changed value that keeps its digest is a chance of 1 in 2^48 per change.
//! Values a feature shows (conflicts, approvals, history) are kept where
//! that feature keeps them; the base keeps a value only for a field whose
//! old value a message must name (a frozen field: "set it back to X").
//!
//! A link's base is one blob in its row:
//!
//! ```text
//! [format = 1] [shape id, LEB128] [bitmap L] [bitmap R] [bitmap S] [bitmap V] [entries]
//! ```
//!
//! A *shape* is the list of field pairs (left name, right name) the blob's
//! positions stand for, stored once in `base_shapes`: most links of a
//! pipeline share one. Bit `i` of L (R) says the left (right) field of pair
//! `i` has a digest; bit `i` of S says the right digest equals the left one
//! and is not stored again (a field the mapping leaves as it is); bit `i` of
//! V says pair `i` keeps values. Entries follow: every left one in pair
//! order, then the right ones not covered by S; a digest is 6 bytes,
//! little-endian, a value its length (LEB128) and its JSON form.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::config::Side;
use crate::model::Value;

/// A value's digest, 48 bits.
pub type Digest = u64;

const DIGEST_BYTES: usize = 6;
const DIGEST_MASK: u64 = (1 << (8 * DIGEST_BYTES)) - 1;
const FORMAT: u8 = 1;

/// The digest of a value: equal values (as the engine compares them) have
/// equal digests; the type is part of it (the text "1" is not the integer 1).
pub fn digest(value: &Value) -> Digest {
    let tagged = |tag: u64, bytes: &[u8]| xxh3_64_with_seed(bytes, tag);
    let hash = match value {
        Value::Null => tagged(0, &[]),
        Value::Boolean(b) => tagged(1, &[u8::from(*b)]),
        Value::Integer(i) => tagged(2, &i.to_le_bytes()),
        // 0.0 and -0.0 are equal values.
        Value::Float(f) => tagged(3, &(if *f == 0.0 { 0.0f64 } else { *f }).to_bits().to_le_bytes()),
        Value::Decimal(s) => tagged(4, s.as_bytes()),
        Value::Text(s) => tagged(5, s.as_bytes()),
        Value::Date(s) => tagged(6, s.as_bytes()),
        Value::Timestamp(s) => tagged(7, s.as_bytes()),
        Value::Bytes(b) => tagged(8, b),
        Value::Json(s) => tagged(9, s.as_bytes()),
    };
    hash & DIGEST_MASK
}

/// The digest of a record's version, as a link keeps it (32 bits: a version
/// is only compared, to pass over the echo of the engine's own write; a
/// change that keeps its digest is compared field by field a run later, when
/// its record changes again, or at once if a field changed on the other side).
pub fn version_digest(version: &str) -> i64 {
    i64::from(xxh3_64(version.as_bytes()) as u32 as i32)
}

/// A field in the base: its digest, and its value where it is kept.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    digest: Digest,
    value: Option<Value>,
}

/// One side's base: field (that side's name) -> entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideBase(BTreeMap<String, Entry>);

impl SideBase {
    /// Whether the field is in the base with this value.
    pub fn holds(&self, name: &str, value: &Value) -> bool {
        self.0.get(name).is_some_and(|e| e.digest == digest(value))
    }

    /// The field's value, where the base keeps it (see [`Shapes::keep_values`]).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.0.get(name)?.value.as_ref()
    }

    /// Whether the field is as the base has it: the same value, or absent from both.
    pub fn same(&self, name: &str, value: Option<&Value>) -> bool {
        match value {
            Some(value) => self.holds(name, value),
            None => !self.0.contains_key(name),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Sets a field; `keep` keeps its value too.
    pub fn set(&mut self, name: &str, value: &Value, keep: bool) {
        self.0.insert(name.to_owned(), Entry { digest: digest(value), value: keep.then(|| value.clone()) });
    }
}

/// The base of one link: each side's fields in its own names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Base {
    pub left: SideBase,
    pub right: SideBase,
}

impl Base {
    pub fn side(&self, side: Side) -> &SideBase {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    pub fn side_mut(&mut self, side: Side) -> &mut SideBase {
        match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }
}

/// A shape's position: the field's left and right names.
type Pair = (Option<String>, Option<String>);

/// The shapes met so far (they never change once stored), and each
/// pipeline's field pairs, which new blobs are laid out by.
#[derive(Default)]
pub struct Shapes {
    by_id: HashMap<i64, Arc<Vec<Pair>>>,
    by_pairs: HashMap<Arc<Vec<Pair>>, i64>,
    pairs: HashMap<String, Vec<(String, String)>>,
    /// Per pipeline, the fields (left names) whose values are kept.
    kept: HashMap<String, Vec<String>>,
    /// Per pipeline, the stored shape of its registered pairs.
    registered_shape: HashMap<String, (i64, Arc<Vec<Pair>>)>,
}

impl Shapes {
    /// The pipeline's synced fields, as (left name, right name).
    /// Registered again by every run: the shape found for them is kept
    /// while they stay the same.
    pub fn register(&mut self, pipeline: &str, pairs: Vec<(String, String)>, kept: Vec<String>) {
        if self.pairs.get(pipeline) == Some(&pairs) && self.kept.get(pipeline) == Some(&kept) {
            return;
        }
        self.pairs.insert(pipeline.to_owned(), pairs);
        self.kept.insert(pipeline.to_owned(), kept);
        self.registered_shape.remove(pipeline);
    }

    /// Whether the pipeline keeps the values of the field (either side's name).
    pub fn keep_values(&self, pipeline: &str, side: Side, name: &str) -> bool {
        let Some(kept) = self.kept.get(pipeline) else { return false };
        let pairs = self.pairs.get(pipeline).map(Vec::as_slice).unwrap_or_default();
        kept.iter().any(|left| match side {
            Side::Left => left == name,
            Side::Right => pairs.iter().any(|(l, r)| l == left && r == name),
        })
    }

    /// Forgets the shapes (kept in memory) after a transaction that may
    /// have stored some was rolled back.
    pub fn forget_stored(&mut self) {
        self.by_id.clear();
        self.by_pairs.clear();
        self.registered_shape.clear();
    }

    fn shape(&mut self, connection: &Connection, id: i64) -> Result<Arc<Vec<Pair>>, String> {
        if let Some(shape) = self.by_id.get(&id) {
            return Ok(shape.clone());
        }
        let text: Option<String> = connection
            .query_row("SELECT pairs FROM base_shapes WHERE shape_id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| e.to_string())?;
        let text = text.ok_or_else(|| format!("names base shape {id}, which is not stored"))?;
        let pairs: Vec<Pair> = serde_json::from_str(&text).map_err(|e| format!("base shape {id} is not readable: {e}"))?;
        let shape = Arc::new(pairs);
        self.by_id.insert(id, shape.clone());
        self.by_pairs.insert(shape.clone(), id);
        Ok(shape)
    }

    fn id_of(&mut self, connection: &Connection, pairs: Vec<Pair>) -> rusqlite::Result<(i64, Arc<Vec<Pair>>)> {
        let pairs = Arc::new(pairs);
        if let Some(id) = self.by_pairs.get(&pairs) {
            return Ok((*id, pairs));
        }
        let text = serde_json::to_string(&*pairs).expect("names serialize");
        let id: i64 = match connection.query_row("SELECT shape_id FROM base_shapes WHERE pairs = ?1", [&text], |r| r.get(0)).optional()? {
            Some(id) => id,
            None => {
                connection.execute("INSERT INTO base_shapes (pairs) VALUES (?1)", [&text])?;
                connection.last_insert_rowid()
            }
        };
        self.by_id.insert(id, pairs.clone());
        self.by_pairs.insert(pairs.clone(), id);
        Ok((id, pairs))
    }

    /// The blob of a base, laid out by the pipeline's field pairs (and, after
    /// them, any field the pairs do not name).
    pub fn encode(&mut self, connection: &Connection, pipeline: &str, base: &Base) -> rusqlite::Result<Vec<u8>> {
        let (id, shape) = self.shape_for(connection, pipeline, base)?;
        Ok(encode_with(id, &shape, base))
    }

    /// The shape a base is laid out by: the pipeline's pairs when they name
    /// every field it has (the usual case, found without building a list),
    /// else those pairs and then the fields they do not name.
    fn shape_for(&mut self, connection: &Connection, pipeline: &str, base: &Base) -> rusqlite::Result<(i64, Arc<Vec<Pair>>)> {
        let registered = self.pairs.get(pipeline).map(Vec::as_slice).unwrap_or_default();
        let covered = base.left.0.keys().all(|name| registered.iter().any(|(l, _)| l == name))
            && base.right.0.keys().all(|name| registered.iter().any(|(_, r)| r == name));
        if covered && let Some(found) = self.registered_shape.get(pipeline) {
            return Ok(found.clone());
        }
        let mut pairs: Vec<Pair> = Vec::new();
        for (left, right) in self.pairs.get(pipeline).into_iter().flatten() {
            pairs.push((Some(left.clone()), Some(right.clone())));
        }
        let named = |side: Side, name: &str, pairs: &[Pair]| {
            pairs.iter().any(|(l, r)| match side {
                Side::Left => l.as_deref() == Some(name),
                Side::Right => r.as_deref() == Some(name),
            })
        };
        for name in base.left.0.keys() {
            if !named(Side::Left, name, &pairs) {
                pairs.push((Some(name.clone()), None));
            }
        }
        for name in base.right.0.keys() {
            if !named(Side::Right, name, &pairs) {
                pairs.push((None, Some(name.clone())));
            }
        }
        let found = self.id_of(connection, pairs)?;
        if covered {
            self.registered_shape.insert(pipeline.to_owned(), found.clone());
        }
        Ok(found)
    }

    /// A base from its blob; an error says what is wrong with it.
    pub fn decode(&mut self, connection: &Connection, blob: &[u8]) -> Result<Base, String> {
        let mut base = Base::default();
        if blob.is_empty() {
            return Ok(base);
        }
        if blob[0] != FORMAT {
            return Err(format!("is in format {}, which this synchost does not know", blob[0]));
        }
        let (id, mut at) = read_leb128(blob, 1).ok_or("is cut short")?;
        let shape = self.shape(connection, id as i64)?;
        let width = shape.len().div_ceil(8);
        let bitmaps = blob.get(at..at + 4 * width).ok_or("is cut short")?;
        at += 4 * width;
        let bit = |map: usize, i: usize| bitmaps[map * width + i / 8] & (1 << (i % 8)) != 0;
        let mut next = |valued: bool| -> Result<Entry, String> {
            if !valued {
                let bytes = blob.get(at..at + DIGEST_BYTES).ok_or("is cut short")?;
                at += DIGEST_BYTES;
                let mut full = [0u8; 8];
                full[..DIGEST_BYTES].copy_from_slice(bytes);
                return Ok(Entry { digest: u64::from_le_bytes(full), value: None });
            }
            let (length, start) = read_leb128(blob, at).ok_or("is cut short")?;
            let end = start.checked_add(length as usize).filter(|end| *end <= blob.len()).ok_or("is cut short")?;
            at = end;
            let text = std::str::from_utf8(&blob[start..end]).map_err(|_| "holds a value that is not text")?;
            if let Some(digest) = text.strip_prefix('#') {
                return Ok(Entry { digest: digest.parse().map_err(|_| "holds an unreadable digest")?, value: None });
            }
            let stored: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("holds an unreadable value: {e}"))?;
            let value = super::decode(&stored);
            Ok(Entry { digest: digest(&value), value: Some(value) })
        };
        let mut lefts: Vec<Option<Entry>> = Vec::with_capacity(shape.len());
        for (i, (left, _)) in shape.iter().enumerate() {
            let entry = if bit(0, i) { Some(next(bit(3, i))?) } else { None };
            if let (Some(name), Some(entry)) = (left, &entry) {
                base.left.0.insert(name.clone(), entry.clone());
            }
            lefts.push(entry);
        }
        for (i, (_, right)) in shape.iter().enumerate() {
            if !bit(1, i) {
                continue;
            }
            let entry = if bit(2, i) { lefts[i].clone().ok_or("reuses a left entry it does not have")? } else { next(bit(3, i))? };
            if let Some(name) = right {
                base.right.0.insert(name.clone(), entry);
            }
        }
        if at != blob.len() {
            return Err("has bytes after its digests".into());
        }
        Ok(base)
    }
}

/// The blob of a base laid out by a stored shape.
fn encode_with(id: i64, shape: &[Pair], base: &Base) -> Vec<u8> {
    let width = shape.len().div_ceil(8);
    let mut blob = vec![FORMAT];
    leb128(&mut blob, id as u64);
    let start = blob.len();
    blob.resize(start + 4 * width, 0);
    let mut lefts = Vec::with_capacity(shape.len());
    let mut rights = Vec::new();
    for (i, (left, right)) in shape.iter().enumerate() {
        let l = left.as_deref().and_then(|n| base.left.0.get(n));
        let r = right.as_deref().and_then(|n| base.right.0.get(n));
        let valued = l.is_some_and(|e| e.value.is_some()) || r.is_some_and(|e| e.value.is_some());
        if valued {
            blob[start + 3 * width + i / 8] |= 1 << (i % 8);
        }
        if let Some(l) = l {
            blob[start + i / 8] |= 1 << (i % 8);
            lefts.push((l, valued));
        }
        if let Some(r) = r {
            blob[start + width + i / 8] |= 1 << (i % 8);
            if Some(r) == l {
                blob[start + 2 * width + i / 8] |= 1 << (i % 8);
            } else {
                rights.push((r, valued));
            }
        }
    }
    for (entry, valued) in lefts.into_iter().chain(rights) {
        if !valued {
            blob.extend_from_slice(&entry.digest.to_le_bytes()[..DIGEST_BYTES]);
            continue;
        }
        // At a position that keeps values, an entry set without one keeps its digest as text.
        let text = match &entry.value {
            Some(value) => super::encode(value).to_string(),
            None => format!("#{}", entry.digest),
        };
        leb128(&mut blob, text.len() as u64);
        blob.extend_from_slice(text.as_bytes());
    }
    blob
}

fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(bytes: &[u8], mut at: usize) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(at)?;
        at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((n, at));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch("CREATE TABLE base_shapes (shape_id INTEGER PRIMARY KEY, pairs TEXT NOT NULL UNIQUE)").unwrap();
        connection
    }

    #[test]
    fn a_base_is_read_back_as_written_in_a_few_bytes_per_field() {
        let connection = store();
        let mut shapes = Shapes::default();
        let names = ["name", "email", "phone", "amount", "status", "tags", "notes", "address"];
        shapes.register("copy", names.iter().map(|n| ((*n).to_owned(), (*n).to_owned())).collect(), Vec::new());
        let mut base = Base::default();
        for (i, name) in names.iter().enumerate() {
            base.left.set(name, &Value::Text(format!("value {i}")), false);
            base.right.set(name, &Value::Text(format!("value {i}")), false);
        }
        // A field mapped to another value, and one only the right side has.
        base.right.set("status", &Value::Text("ACTIVE".into()), false);
        base.right.set("extra", &Value::Integer(7), false);
        let blob = shapes.encode(&connection, "copy", &base).unwrap();
        assert!(blob.len() <= 3 + 4 * 2 + 10 * DIGEST_BYTES, "{} bytes", blob.len());
        assert_eq!(shapes.decode(&connection, &blob).unwrap(), base);
        // Read by a process that has not seen the shape yet.
        assert_eq!(Shapes::default().decode(&connection, &blob).unwrap(), base);
        assert!(base.right.holds("status", &Value::Text("ACTIVE".into())));
        assert!(!base.left.holds("status", &Value::Text("ACTIVE".into())));
        assert!(base.left.same("extra", None) && !base.right.same("extra", None));
    }

    #[test]
    fn a_damaged_blob_is_an_error_never_an_empty_base() {
        let connection = store();
        let mut shapes = Shapes::default();
        let mut base = Base::default();
        base.left.set("name", &Value::Text("Ada".into()), false);
        let blob = shapes.encode(&connection, "copy", &base).unwrap();
        assert!(shapes.decode(&connection, &blob[..blob.len() - 1]).is_err());
        assert!(shapes.decode(&connection, &[9, 1]).is_err());
        assert!(Shapes::default().decode(&connection, &[FORMAT, 42, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn a_kept_value_is_read_back_whole() {
        let connection = store();
        let mut shapes = Shapes::default();
        shapes.register("p", vec![("status".into(), "stage".into()), ("name".into(), "name".into())], vec!["status".into()]);
        assert!(shapes.keep_values("p", Side::Right, "stage") && !shapes.keep_values("p", Side::Left, "name"));
        let mut base = Base::default();
        base.left.set("status", &Value::Text("lead".into()), true);
        base.right.set("stage", &Value::Text("Lead".into()), true);
        base.left.set("name", &Value::Text("Ada".into()), false);
        let blob = shapes.encode(&connection, "p", &base).unwrap();
        let read = shapes.decode(&connection, &blob).unwrap();
        assert_eq!(read, base);
        assert_eq!(read.left.value("status"), Some(&Value::Text("lead".into())));
        assert_eq!(read.left.value("name"), None);
    }

    #[test]
    fn equal_values_have_equal_digests_and_types_count() {
        assert_eq!(digest(&Value::Float(0.0)), digest(&Value::Float(-0.0)));
        assert_ne!(digest(&Value::Text("1".into())), digest(&Value::Integer(1)));
        assert_ne!(digest(&Value::Null), digest(&Value::Text(String::new())));
        assert!(digest(&Value::Text("x".into())) <= DIGEST_MASK);
    }
}
