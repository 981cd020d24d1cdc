//! Records and changes as plugins handle them, and as they cross the
//! boundary: the plugin API sends a batch as a page that names its fields
//! once (`types.page`); a plugin sees each record with its named fields.

use crate::bindings::connector::exports::synchost::plugin::connector as wit;
use crate::bindings::connector::synchost::plugin::types::{Page, Row};
use crate::{ChangeKind, Field, Record, Value};

/// One page of records from [`Connector::read`](crate::Connector::read).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBatch {
    /// The records, in a stable order.
    pub records: Vec<Record>,
    /// Where the next `read` continues; the host persists it once the batch is processed.
    pub cursor: Option<String>,
    /// More records are ready now; the host calls `read` again with `cursor`.
    pub has_more: bool,
}

/// One change to apply to the target system.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The host's reference for this change (the source record's link);
    /// connectors that can store it use it to make creates idempotent.
    pub origin: String,
    /// The target record's own id, when it exists already.
    pub target_id: Option<String>,
    /// Apply only if the target is still at this version; else report a conflict.
    pub expected_version: Option<String>,
    /// Upsert or delete.
    pub kind: ChangeKind,
    /// The fields to set; fields not listed are left as they are.
    pub fields: Vec<Field>,
    /// This create was sent before and its outcome is not known: update the
    /// record with this origin, if the system holds one, instead of making another.
    pub repeated: bool,
    /// The person whose decision this change carries out (the approver of a
    /// change that waited for approval), by their synchost user name: make
    /// the change in their name, or note it, where the system records who
    /// changed what.
    pub on_behalf_of: Option<String>,
}

/// Records as one page: their values are moved, their field names given once.
pub(crate) fn page_of(records: Vec<Record>) -> Page {
    let mut fields: Vec<String> = Vec::new();
    for record in &records {
        for (i, field) in record.fields.iter().enumerate() {
            // Most pages have one layout: the name is where the last record had it.
            if fields.get(i) != Some(&field.name) && !fields.contains(&field.name) {
                fields.push(field.name.clone());
            }
        }
    }
    let rows = records
        .into_iter()
        .map(|record| {
            let mut values: Vec<Option<Value>> = vec![None; fields.len()];
            for (i, field) in record.fields.into_iter().enumerate() {
                let slot = if fields.get(i) == Some(&field.name) { Some(i) } else { fields.iter().position(|n| *n == field.name) };
                if let Some(slot) = slot {
                    values[slot] = Some(field.value);
                }
            }
            Row { id: record.id, version: record.version, deleted: record.deleted, born: record.born, values }
        })
        .collect();
    Page { fields, rows }
}

/// The records of a page, each with its fields named.
pub(crate) fn records_of(page: Page) -> Vec<Record> {
    let names = page.fields;
    page.rows
        .into_iter()
        .map(|row| Record {
            fields: fields_of(&names, row.values),
            id: row.id,
            version: row.version,
            deleted: row.deleted,
            born: row.born,
        })
        .collect()
}

fn fields_of(names: &[String], values: Vec<Option<Value>>) -> Vec<Field> {
    names.iter().zip(values).filter_map(|(name, value)| value.map(|value| Field { name: name.clone(), value })).collect()
}

/// The changes of a `write` call, each with its fields named.
pub(crate) fn changes_of(names: &[String], changes: Vec<wit::Change>) -> Vec<Change> {
    changes
        .into_iter()
        .map(|c| Change {
            fields: fields_of(names, c.values),
            origin: c.origin,
            target_id: c.target_id,
            expected_version: c.expected_version,
            kind: c.kind,
            repeated: c.repeated,
            on_behalf_of: c.on_behalf_of,
        })
        .collect()
}

/// A page to send, with the count of the whole read when the connector knows it.
pub(crate) fn read_batch(batch: ReadBatch, total: Option<u64>) -> wit::ReadBatch {
    wit::ReadBatch { records: page_of(batch.records), cursor: batch.cursor, has_more: batch.has_more, total }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_each_record_and_tells_a_missing_field_from_a_null() {
        let records = vec![
            Record::new("1").with("name", "Ada").with("age", 36i64),
            Record::new("2").with("email", Value::Null).with("name", "Bob"),
        ];
        let page = page_of(records.clone());
        assert_eq!(page.fields, vec!["name", "age", "email"]);
        assert_eq!(page.rows[1].values, vec![Some(Value::Text("Bob".into())), None, Some(Value::Null)]);
        let back = records_of(page);
        assert_eq!(back[0], records[0]);
        assert_eq!(back[1].get("email"), Some(&Value::Null));
        assert_eq!(back[1].get("name"), Some(&Value::Text("Bob".into())));
        assert_eq!(back[1].get("age"), None);
    }
}
