//! Plugin API 0.5 (current): as 0.4, and a connector tells which system
//! answers (`identity`), and a change names the person it is made for
//! (`on-behalf-of`).

use super::{layout, list, slots};
use crate::model;

world_bindings!("../schemas/wit/plugin.wit");

mod v5 {
    pub use super::connector::exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Outcome, ReadBatch};
    pub use super::connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Page, Problem, Record, Row, Value};
    pub use super::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};
}

model_conversions!(v5);
paged_conversions!(v5);

/// Changes with their values in the slots of one list of field names.
pub fn changes(changes: &[model::Change]) -> (Vec<String>, Vec<v5::Change>) {
    let fields = layout(changes.iter().map(|c| c.fields.as_slice()));
    let changes = changes
        .iter()
        .map(|c| v5::Change {
            origin: c.origin.clone(),
            target_id: c.target_id.clone(),
            expected_version: c.expected_version.clone(),
            kind: c.kind.into(),
            values: slots(&fields, &c.fields),
            repeated: c.repeated,
            on_behalf_of: c.on_behalf_of.clone(),
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
        assert_eq!(page.rows[1].values, vec![Some(v5::Value::Text("Bob".into())), None, Some(v5::Value::Null)]);
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
            on_behalf_of: None,
        };
        let (fields, changes) =
            changes(&[change(&[("a", model::Value::Integer(1))]), change(&[("b", model::Value::Integer(2)), ("a", model::Value::Integer(3))])]);
        assert_eq!(fields, vec!["a", "b"]);
        assert_eq!(changes[0].values, vec![Some(v5::Value::Integer(1)), None]);
        assert_eq!(changes[1].values, vec![Some(v5::Value::Integer(3)), Some(v5::Value::Integer(2))]);
    }
}
