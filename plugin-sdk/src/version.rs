//! Record versions. A version tells the host whether a record changed since
//! it last synced it (the echo of its own write reads back at the version the
//! write returned). A change time alone cannot tell two edits within one tick
//! of a clock apart (a person's edit in the same second as synchost's write,
//! with second-resolution stamps); a digest of the values can. So a version is
//! `CHANGE-TIME/DIGEST`, or only the digest where a system keeps no change time.

use crate::{Field, Value};

/// A digest of a record's values and whether it is deleted: FNV-1a over
/// each field's name, then its value's type and bytes, stable across builds
/// and platforms (as Rust's `DefaultHasher` is not). 16 hex digits.
pub fn digest(fields: &[Field], deleted: bool) -> String {
    digest_of(fields.iter().map(|f| (f.name.as_str(), &f.value)), deleted)
}

/// [`digest`] over (name, value) pairs held elsewhere: a connector can tell a
/// row's version before it makes a record of it.
pub fn digest_of<'a>(fields: impl IntoIterator<Item = (&'a str, &'a Value)>, deleted: bool) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |bytes: &[u8]| {
        for byte in bytes.iter().chain(std::iter::once(&0)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, value) in fields {
        add(name.as_bytes());
        // The value's type, then its bytes: the text "1" is not the integer 1.
        let number: [u8; 8];
        let (kind, bytes): (&[u8], &[u8]) = match value {
            Value::Null => (b"n", b""),
            Value::Boolean(b) => (if *b { b"b1" } else { b"b0" }, b""),
            Value::Integer(i) => {
                number = i.to_le_bytes();
                (b"i", &number)
            }
            Value::Float(f) => {
                number = f.to_bits().to_le_bytes();
                (b"f", &number)
            }
            Value::Decimal(text) => (b"d", text.as_bytes()),
            Value::Text(text) => (b"t", text.as_bytes()),
            Value::Date(text) => (b"D", text.as_bytes()),
            Value::Timestamp(text) => (b"T", text.as_bytes()),
            Value::Json(text) => (b"j", text.as_bytes()),
            Value::Bytes(bytes) => (b"x", bytes),
        };
        add(kind);
        add(bytes);
    }
    if deleted {
        add(b"deleted");
    }
    format!("{hash:016x}")
}

/// A version from a change time (RFC 3339 or Unix time, as text) and the
/// values: `CHANGE-TIME/DIGEST`.
pub fn version(change_time: &str, fields: &[Field], deleted: bool) -> String {
    version_of(change_time, fields.iter().map(|f| (f.name.as_str(), &f.value)), deleted)
}

/// [`version`] over (name, value) pairs held elsewhere.
pub fn version_of<'a>(change_time: &str, fields: impl IntoIterator<Item = (&'a str, &'a Value)>, deleted: bool) -> String {
    format!("{change_time}/{}", digest_of(fields, deleted))
}

/// The change time of a version made by [`version`] (a version without a
/// digest is all change time).
pub fn change_time(version: &str) -> &str {
    version.rsplit_once('/').map_or(version, |(time, _)| time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_in_the_same_second_makes_another_version() {
        let before = [Field::new("phone", "030 1")];
        let after = [Field::new("phone", "030 2")];
        assert_ne!(version("1767225600", &before, false), version("1767225600", &after, false));
        assert_ne!(version("1767225600", &before, false), version("1767225600", &before, true), "a delete is a change");
        assert_eq!(version("1767225600", &before, false), version("1767225600", &[Field::new("phone", "030 1")], false));
        assert_ne!(digest(&[Field::new("a", Value::Integer(1))], false), digest(&[Field::new("a", Value::Float(1.0))], false));
    }

    #[test]
    fn the_change_time_is_read_back() {
        assert_eq!(change_time(&version("2026-12-01T10:00:00.000Z", &[], false)), "2026-12-01T10:00:00.000Z");
        assert_eq!(change_time("1767225600"), "1767225600");
    }
}
