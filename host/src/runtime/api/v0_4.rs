//! Plugin API 0.4 (current): records cross the boundary as pages that name
//! their fields once; a mapper maps and validates in one call.

use super::list;
use crate::model;

/// The `connector-plugin` world.
pub mod connector {
    wasmtime::component::bindgen!({
        world: "connector-plugin",
        path: "../schemas/wit/plugin.wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq],
    });
}

/// The `mapper-plugin` world.
pub mod mapper {
    wasmtime::component::bindgen!({
        world: "mapper-plugin",
        path: "../schemas/wit/plugin.wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "synchost:plugin/types": super::connector::synchost::plugin::types,
            "synchost:plugin/log": super::connector::synchost::plugin::log,
            "synchost:plugin/context": super::connector::synchost::plugin::context,
        },
    });
}

mod v4 {
    pub use super::connector::exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Outcome, ReadBatch};
    pub use super::connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Page, Problem, Record, Row, Value};
    pub use super::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};
}

model_conversions!(v4);

impl From<v4::ReadBatch> for model::ReadBatch {
    fn from(b: v4::ReadBatch) -> Self {
        model::ReadBatch { records: records_of(b.records), cursor: b.cursor, has_more: b.has_more, total: b.total }
    }
}

/// The records of a page, each with its fields named.
pub fn records_of(page: v4::Page) -> Vec<model::Record> {
    let names = page.fields;
    page.rows
        .into_iter()
        .map(|row| model::Record {
            fields: names
                .iter()
                .zip(row.values)
                .filter_map(|(name, value)| value.map(|value| model::Field { name: name.clone(), value: value.into() }))
                .collect(),
            id: row.id,
            version: row.version,
            deleted: row.deleted,
            born: row.born,
        })
        .collect()
}

/// The field names of records or changes, in order of first use: most
/// batches have one layout, so a record's fields are looked up from where
/// the last one was found.
fn layout<'a>(field_lists: impl Iterator<Item = &'a [model::Field]>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for fields in field_lists {
        for (i, field) in fields.iter().enumerate() {
            if names.get(i).is_some_and(|n| *n == field.name) || names.iter().any(|n| *n == field.name) {
                continue;
            }
            names.push(field.name.clone());
        }
    }
    names
}

/// One record's values in the slots of `names`.
fn slots(names: &[String], fields: &[model::Field]) -> Vec<Option<v4::Value>> {
    let mut values: Vec<Option<v4::Value>> = vec![None; names.len()];
    for (i, field) in fields.iter().enumerate() {
        let slot = if names.get(i).is_some_and(|n| *n == field.name) { Some(i) } else { names.iter().position(|n| *n == field.name) };
        if let Some(slot) = slot {
            values[slot] = Some(field.value.clone().into());
        }
    }
    values
}

/// Records as one page.
pub fn page_of(records: &[model::Record]) -> v4::Page {
    let fields = layout(records.iter().map(|r| r.fields.as_slice()));
    let rows = records
        .iter()
        .map(|r| v4::Row { id: r.id.clone(), version: r.version.clone(), deleted: r.deleted, born: r.born.clone(), values: slots(&fields, &r.fields) })
        .collect();
    v4::Page { fields, rows }
}

/// Changes with their values in the slots of one list of field names.
pub fn changes(changes: &[model::Change]) -> (Vec<String>, Vec<v4::Change>) {
    let fields = layout(changes.iter().map(|c| c.fields.as_slice()));
    let changes = changes
        .iter()
        .map(|c| v4::Change {
            origin: c.origin.clone(),
            target_id: c.target_id.clone(),
            expected_version: c.expected_version.clone(),
            kind: c.kind.into(),
            values: slots(&fields, &c.fields),
            repeated: c.repeated,
        })
        .collect();
    (fields, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, fields: &[(&str, model::Value)]) -> model::Record {
        model::Record {
            id: id.into(),
            version: Some("v1".into()),
            deleted: false,
            fields: fields.iter().map(|(n, v)| model::Field { name: (*n).into(), value: v.clone() }).collect(),
            born: None,
        }
    }

    #[test]
    fn records_of_different_layouts_go_through_a_page_unchanged() {
        let records = vec![
            record("1", &[("name", model::Value::Text("Ada".into())), ("age", model::Value::Integer(36))]),
            // Other order, one field missing, one more, and a null that is not a missing field.
            record("2", &[("email", model::Value::Null), ("name", model::Value::Text("Bob".into()))]),
            record("3", &[]),
        ];
        let page = page_of(&records);
        assert_eq!(page.fields, vec!["name", "age", "email"]);
        assert_eq!(page.rows[1].values, vec![Some(v4::Value::Text("Bob".into())), None, Some(v4::Value::Null)]);
        let back = records_of(page);
        // The fields come back in the page's order.
        assert_eq!(back[0], records[0]);
        assert_eq!(back[1].get("email"), Some(&model::Value::Null));
        assert_eq!(back[1].get("name"), records[1].get("name"));
        assert_eq!(back[1].fields.len(), 2);
        assert_eq!(back[2], records[2]);
    }

    #[test]
    fn changes_name_their_fields_once() {
        let change = |fields: &[(&str, model::Value)]| model::Change {
            origin: "o".into(),
            target_id: None,
            expected_version: None,
            kind: model::ChangeKind::Upsert,
            fields: fields.iter().map(|(n, v)| model::Field { name: (*n).into(), value: v.clone() }).collect(),
            repeated: false,
        };
        let (fields, changes) =
            changes(&[change(&[("a", model::Value::Integer(1))]), change(&[("b", model::Value::Integer(2)), ("a", model::Value::Integer(3))])]);
        assert_eq!(fields, vec!["a", "b"]);
        assert_eq!(changes[0].values, vec![Some(v4::Value::Integer(1)), None]);
        assert_eq!(changes[1].values, vec![Some(v4::Value::Integer(3)), Some(v4::Value::Integer(2))]);
    }
}
