//! Dry runs: the real run, rehearsed. The engine takes its usual course on a
//! scratch copy of the state store (matching stores its links, each batch
//! commits its base and cursor there), and every write to a system is
//! simulated on an overlay of the records it would change, which reads and
//! fetches then show. So the decisions (matches, conflicts, what the other
//! side's pass finds) are those the real run makes, while nothing reaches
//! the systems or the real state.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::Side;
use crate::model::{Applied, Change, ChangeKind, Field, Outcome, Record, Value};

/// A record as a simulated write left it.
#[derive(Debug, Clone)]
struct Written {
    fields: BTreeMap<String, Value>,
    version: String,
    deleted: bool,
}

/// The records a dry run "wrote", per side and id.
#[derive(Debug, Default)]
pub struct Overlay {
    records: Mutex<HashMap<(Side, String), Written>>,
    writes: AtomicU64,
}

impl Overlay {
    /// Records as they would be after the simulated writes.
    pub fn show(&self, side: Side, records: Vec<Record>) -> Vec<Record> {
        let written = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if written.is_empty() {
            return records;
        }
        records
            .into_iter()
            .map(|mut record| {
                if let Some(write) = written.get(&(side, record.id.clone())) {
                    for (name, value) in &write.fields {
                        match record.fields.iter_mut().find(|f| &f.name == name) {
                            Some(field) => field.value = value.clone(),
                            None => record.fields.push(Field { name: name.clone(), value: value.clone() }),
                        }
                    }
                    record.version = Some(write.version.clone());
                    record.deleted = write.deleted;
                }
                record
            })
            .collect()
    }

    /// The outcomes the changes would have, each applied to the overlay. A
    /// new record gets a placeholder id; each write a new version, which is
    /// a change time (so that time-based policies read it as the real one).
    pub fn write(&self, side: Side, changes: &[Change]) -> Vec<Outcome> {
        let mut written = self.records.lock().unwrap_or_else(|e| e.into_inner());
        changes
            .iter()
            .map(|change| {
                let number = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
                let version = format!("{}/dry-run-{number}", chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
                let id = change.target_id.clone().unwrap_or_else(|| format!("(new {number})"));
                let entry = written
                    .entry((side, id.clone()))
                    .or_insert_with(|| Written { fields: BTreeMap::new(), version: version.clone(), deleted: false });
                entry.version = version.clone();
                match change.kind {
                    ChangeKind::Delete => entry.deleted = true,
                    ChangeKind::Upsert => entry.fields.extend(change.fields.iter().map(|f| (f.name.clone(), f.value.clone()))),
                }
                Outcome::Applied(Applied { id, version: Some(version) })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> Record {
        Record { id: id.into(), version: Some("v1".into()), deleted: false, fields: vec![Field { name: "name".into(), value: Value::Text(name.into()) }], born: None }
    }

    #[test]
    fn a_simulated_write_shows_in_what_is_read_after_it() {
        let overlay = Overlay::default();
        let change = Change {
            origin: "p/left/1".into(),
            target_id: Some("7".into()),
            expected_version: Some("v1".into()),
            kind: ChangeKind::Upsert,
            fields: vec![Field { name: "name".into(), value: Value::Text("Ada".into()) }],
            repeated: false,
            on_behalf_of: None,
        };
        let Some(Outcome::Applied(applied)) = overlay.write(Side::Right, std::slice::from_ref(&change)).pop() else { panic!("applied") };
        assert_eq!(applied.id, "7");
        let shown = overlay.show(Side::Right, vec![record("7", "Grace"), record("8", "Alan")]);
        assert_eq!(shown[0].get("name"), Some(&Value::Text("Ada".into())));
        assert_eq!(shown[0].version, applied.version);
        assert_eq!(shown[1].get("name"), Some(&Value::Text("Alan".into())), "other records are as read");
        // The other side is another system.
        assert_eq!(overlay.show(Side::Left, vec![record("7", "Grace")])[0].get("name"), Some(&Value::Text("Grace".into())));
        // A new record gets a placeholder id of its own.
        let create = Change { target_id: None, ..change };
        let ids: Vec<String> = overlay
            .write(Side::Right, &[create.clone(), create])
            .into_iter()
            .map(|o| match o {
                Outcome::Applied(applied) => applied.id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(ids[0].starts_with("(new ") && ids[0] != ids[1], "{ids:?}");
    }
}
