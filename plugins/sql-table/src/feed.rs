//! The change feed's cursor, and the window behind it that each read looks
//! at again.
//!
//! A read returns the rows after the cursor's (stamp, key). Two kinds of row
//! can sort behind it and would never be read: a row committed late by a
//! transaction that stamped it before the rows already read, and, with stamps
//! of whole seconds, a row with a smaller key edited within the same second
//! as the last row read. So each read also looks at the rows behind the
//! cursor whose stamp lies within `overlap_ms` of it, and returns those it has
//! not returned before at their present version: the cursor remembers the
//! (stamp, key, version) of what it returned within that window.
//!
//! The window rests on one assumption: a write commits within `overlap_ms`
//! of the stamp it gives (the transaction's length and the writers' clock
//! skew). So once the table holds a stamp `overlap_ms` later than a row's,
//! nothing can be committed any more with the row's stamp or an earlier one:
//! the rows behind it are settled. Each read notes the newest stamp in the
//! table before it reads, and the window behind the next cursor starts no
//! earlier than `overlap_ms` before that. A read that catches up with the
//! table's writes finds the window as before; the pages of a big first read
//! (and of the echo of synchost's own batch writes, read well after they were
//! stamped) look at nothing behind them again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use synchost_plugin_sdk::{Record, Value};

use crate::clock;
use crate::settings::StampFormat;

/// At most this many rows are remembered; when more share the window, it
/// shrinks to the part remembered (a bulk load, where late rows are rare).
pub const REMEMBERED: usize = 1000;

/// Where a read continues: the last row's `updated_at` and key (change feed),
/// or its key alone (full scan). Kept as the raw column values.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
pub struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<serde_json::Value>,
    pub k: serde_json::Value,
    /// Rows returned within the window: (stamp, key, version), by (stamp, key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<(serde_json::Value, serde_json::Value, String)>,
    /// The newest stamp in the table before the read that made this cursor:
    /// rows `overlap_ms` or more behind it are settled (see above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<serde_json::Value>,
}

pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Boolean(b) => (*b).into(),
        other => other.to_display_string().into(),
    }
}

pub fn from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => n.as_i64().map(Value::Integer).unwrap_or(Value::Float(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

/// Stamps compare as the column orders them: numbers as numbers, text as text.
fn order(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.as_str().unwrap_or_default().cmp(b.as_str().unwrap_or_default()),
    }
}

/// Whether stamp `a` comes after stamp `b`.
fn later(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    order(a, b) == std::cmp::Ordering::Greater
}

impl Cursor {
    /// The stamp from which the window behind this cursor starts; none when
    /// there is no window (no overlap, no stamp, or one it cannot read).
    pub fn window_start(&self, format: StampFormat, overlap_ms: u64) -> Option<Value> {
        let last = self.u.as_ref().filter(|u| !u.is_null())?;
        if overlap_ms == 0 {
            return None;
        }
        let start = if self.seen.len() >= REMEMBERED {
            self.seen.first().map(|(u, _, _)| from_json(u))
        } else {
            clock::earlier(&from_json(last), format, overlap_ms)
        }?;
        let settled = self.newest.as_ref().and_then(|newest| clock::earlier(&from_json(newest), format, overlap_ms));
        match settled {
            // Everything behind the cursor is settled: no window.
            Some(settled) if later(&to_json(&settled), last) => None,
            Some(settled) if later(&to_json(&settled), &to_json(&start)) => Some(settled),
            _ => Some(start),
        }
    }

    /// What the cursor returned within its window: key -> version, to tell
    /// which rows read behind it are new (looked up once per row read).
    pub fn seen_versions(&self) -> HashMap<String, &str> {
        self.seen.iter().map(|(_, k, v)| (k.to_string(), v.as_str())).collect()
    }

    /// The cursor after a read that returned `late` rows from behind it and
    /// `fresh` rows after it, each as (stamp, key, record); `newest` is the
    /// newest stamp the table held before the read.
    pub fn advance(
        &self,
        late: &[(Value, Value, &Record)],
        fresh: &[(Value, Value, &Record)],
        newest: Option<&Value>,
        format: StampFormat,
        overlap_ms: u64,
    ) -> Cursor {
        let (u, k) = match fresh.last() {
            Some((u, k, _)) => (Some(to_json(u)), to_json(k)),
            None => (self.u.clone(), self.k.clone()),
        };
        // The newest stamp never goes back (the row that had it may be deleted).
        let newest = match (self.newest.clone(), newest.filter(|n| !n.is_null()).map(to_json)) {
            (Some(before), Some(now)) => Some(if later(&now, &before) { now } else { before }),
            (before, now) => now.or(before),
        };
        let mut next = Cursor { u, k, seen: Vec::new(), newest };
        let Some(start) = next.window_start(format, overlap_ms).map(|v| to_json(&v)) else { return next };
        // The rows just returned replace what was remembered of them (the
        // last return of a key counts).
        let mut returned: Vec<(serde_json::Value, serde_json::Value, Option<&String>)> = Vec::with_capacity(late.len() + fresh.len());
        let mut last: HashMap<String, usize> = HashMap::with_capacity(late.len() + fresh.len());
        for (u, k, record) in late.iter().chain(fresh) {
            let k = to_json(k);
            last.insert(k.to_string(), returned.len());
            returned.push((to_json(u), k, record.version.as_ref()));
        }
        let mut seen: Vec<(serde_json::Value, serde_json::Value, String)> =
            self.seen.iter().filter(|(_, key, _)| !last.contains_key(&key.to_string())).cloned().collect();
        for (index, (u, k, version)) in returned.into_iter().enumerate() {
            if let (Some(version), true) = (version, last.get(&k.to_string()) == Some(&index)) {
                seen.push((u, k, version.clone()));
            }
        }
        seen.retain(|(u, _, _)| order(u, &start) != std::cmp::Ordering::Less);
        seen.sort_by(|a, b| order(&a.0, &b.0).then_with(|| order(&a.1, &b.1)));
        let excess = seen.len().saturating_sub(REMEMBERED);
        seen.drain(..excess);
        next.seen = seen;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, version: &str) -> Record {
        Record { id: id.into(), version: Some(version.into()), deleted: false, fields: Vec::new(), born: None }
    }

    #[test]
    fn the_cursor_remembers_what_it_returned_within_the_window() {
        let (a, b) = (record("3", "100/aa"), record("5", "100/bb"));
        let start = Cursor::default();
        let fresh = [(Value::Integer(100), Value::Integer(3), &a), (Value::Integer(100), Value::Integer(5), &b)];
        let cursor = start.advance(&[], &fresh, None, StampFormat::UnixSeconds, 2000);
        assert_eq!(cursor.u, Some(serde_json::Value::from(100)));
        assert_eq!(cursor.k, serde_json::Value::from(5));
        let seen = cursor.seen_versions();
        assert_eq!(seen.get("3"), Some(&"100/aa"));
        assert_ne!(seen.get("3"), Some(&"100/cc"), "an edit in the same second is new");
        assert_eq!(cursor.window_start(StampFormat::UnixSeconds, 2000), Some(Value::Integer(98)));
        // Later rows push the old ones out of the window.
        let c = record("1", "200/dd");
        let later = cursor.advance(&[], &[(Value::Integer(200), Value::Integer(1), &c)], None, StampFormat::UnixSeconds, 2000);
        assert_eq!(later.seen.len(), 1);
        // No overlap: no window, nothing remembered.
        assert!(start.advance(&[], &fresh, None, StampFormat::UnixSeconds, 0).seen.is_empty());
    }

    #[test]
    fn rows_settled_behind_the_newest_stamp_leave_no_window() {
        let (a, b) = (record("3", "100/aa"), record("5", "100/bb"));
        let fresh = [(Value::Integer(100), Value::Integer(3), &a), (Value::Integer(100), Value::Integer(5), &b)];
        // The table held a stamp of 500 before the read: rows at 100 are settled.
        let cursor = Cursor::default().advance(&[], &fresh, Some(&Value::Integer(500)), StampFormat::UnixSeconds, 2000);
        assert_eq!(cursor.window_start(StampFormat::UnixSeconds, 2000), None);
        assert!(cursor.seen.is_empty(), "nothing settled is remembered: {:?}", cursor.seen);
        // Newest within the overlap of the cursor: the window starts at the later bound.
        let cursor = Cursor::default().advance(&[], &fresh, Some(&Value::Integer(101)), StampFormat::UnixSeconds, 2000);
        assert_eq!(cursor.window_start(StampFormat::UnixSeconds, 2000), Some(Value::Integer(99)));
        assert_eq!(cursor.seen.len(), 2);
        // The newest stamp never goes back, though the table's may (its row deleted).
        let again = cursor.advance(&[], &[], Some(&Value::Integer(50)), StampFormat::UnixSeconds, 2000);
        assert_eq!(again.newest, Some(serde_json::Value::from(101)));
        // A cursor made before the newest stamp was noted keeps its whole window.
        let old: Cursor = serde_json::from_str(r#"{"u":100,"k":5,"seen":[[100,3,"100/aa"]]}"#).unwrap();
        assert_eq!(old.window_start(StampFormat::UnixSeconds, 2000), Some(Value::Integer(98)));
    }

    #[test]
    fn a_full_window_shrinks_to_what_it_remembers() {
        let records: Vec<Record> = (0..REMEMBERED + 10).map(|i| record(&i.to_string(), "v")).collect();
        let fresh: Vec<(Value, Value, &Record)> =
            records.iter().enumerate().map(|(i, r)| (Value::Integer(1_000 + i as i64), Value::Integer(i as i64), r)).collect();
        let cursor = Cursor::default().advance(&[], &fresh, None, StampFormat::UnixMillis, 60_000);
        assert_eq!(cursor.seen.len(), REMEMBERED);
        assert_eq!(cursor.window_start(StampFormat::UnixMillis, 60_000), Some(Value::Integer(1_010)));
    }
}
