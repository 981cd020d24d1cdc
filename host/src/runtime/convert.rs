//! Between the host's model and each plugin API version's types.
//!
//! API 0.4 sends records as pages (field names once per batch); API 0.3 as
//! records that carry their names. Both become [`crate::model`] records.

use super::bindings::{v0_3, v0_4};
use crate::model;

mod v4 {
    pub use super::v0_4::connector::exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Outcome, ReadBatch};
    pub use super::v0_4::connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Page, Problem, Record, Row, Value};
    pub use super::v0_4::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};
}

mod v3 {
    pub use super::v0_3::connector::exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Outcome, ReadBatch};
    pub use super::v0_3::connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Problem, Record, Value};
    pub use super::v0_3::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};
}

/// `From` both ways between enums whose variants have the same names and payloads.
macro_rules! same_variants {
    ($a:ident :: $ty_a:ident, $b:ident :: $ty_b:ident; tuple: $($tuple:ident),*; unit: $($unit:ident),*) => {
        impl From<$a::$ty_a> for $b::$ty_b {
            fn from(value: $a::$ty_a) -> Self {
                match value {
                    $($a::$ty_a::$tuple(inner) => $b::$ty_b::$tuple(inner),)*
                    $($a::$ty_a::$unit => $b::$ty_b::$unit,)*
                }
            }
        }
        impl From<$b::$ty_b> for $a::$ty_a {
            fn from(value: $b::$ty_b) -> Self {
                match value {
                    $($b::$ty_b::$tuple(inner) => $a::$ty_a::$tuple(inner),)*
                    $($b::$ty_b::$unit => $a::$ty_a::$unit,)*
                }
            }
        }
    };
}

/// `From` both ways between structs with the same fields, each converted with `into`.
macro_rules! same_fields {
    ($a:ident :: $ty_a:ident, $b:ident :: $ty_b:ident; $($field:ident),*) => {
        impl From<$a::$ty_a> for $b::$ty_b {
            fn from(value: $a::$ty_a) -> Self {
                $b::$ty_b { $($field: value.$field.into(),)* }
            }
        }
        impl From<$b::$ty_b> for $a::$ty_a {
            fn from(value: $b::$ty_b) -> Self {
                $a::$ty_a { $($field: value.$field.into(),)* }
            }
        }
    };
}

/// A list converted element by element (a blanket `Into` cannot cover it).
pub fn list<A: Into<B>, B>(values: Vec<A>) -> Vec<B> {
    values.into_iter().map(Into::into).collect()
}

macro_rules! versions {
    ($($v:ident),*) => {$(
        same_variants!($v::Value, model::Value; tuple: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json; unit: Null);
        same_variants!($v::FieldType, model::FieldType; tuple: ; unit: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json);
        same_variants!($v::ChangeKind, model::ChangeKind; tuple: ; unit: Upsert, Delete);
        same_variants!($v::Direction, model::Direction; tuple: ; unit: LeftToRight, RightToLeft);
        same_fields!($v::Problem, model::Problem; code, message, hint, retryable);
        same_fields!($v::Field, model::Field; name, value);
        same_fields!($v::Applied, model::Applied; id, version);
        same_fields!($v::EntityNeed, model::EntityNeed; entity, read, write);

        impl From<$v::Record> for model::Record {
            fn from(r: $v::Record) -> Self {
                model::Record { id: r.id, version: r.version, deleted: r.deleted, fields: list(r.fields), born: r.born }
            }
        }
        impl From<model::Record> for $v::Record {
            fn from(r: model::Record) -> Self {
                $v::Record { id: r.id, version: r.version, deleted: r.deleted, fields: list(r.fields), born: r.born }
            }
        }
        impl From<$v::FieldDef> for model::FieldDef {
            fn from(f: $v::FieldDef) -> Self {
                model::FieldDef { name: f.name, type_: f.type_.into(), nullable: f.nullable, read_only: f.read_only }
            }
        }
        impl From<$v::EntityDef> for model::EntityDef {
            fn from(e: $v::EntityDef) -> Self {
                model::EntityDef {
                    name: e.name,
                    key: e.key,
                    fields: list(e.fields),
                    change_feed: e.change_feed,
                    soft_delete: e.soft_delete,
                    writable: e.writable,
                    finds_by_origin: e.finds_by_origin,
                }
            }
        }
        impl From<$v::Violation> for model::Violation {
            fn from(v: $v::Violation) -> Self {
                model::Violation { field: v.field, message: v.message, hint: v.hint }
            }
        }
        impl From<$v::Mapped> for model::Mapped {
            fn from(m: $v::Mapped) -> Self {
                match m {
                    $v::Mapped::Ok(record) => model::Mapped::Ok(record.into()),
                    $v::Mapped::Invalid(violations) => model::Mapped::Invalid(list(violations)),
                }
            }
        }
        impl From<$v::Outcome> for model::Outcome {
            fn from(o: $v::Outcome) -> Self {
                match o {
                    $v::Outcome::Applied(applied) => model::Outcome::Applied(applied.into()),
                    $v::Outcome::Rejected(problem) => model::Outcome::Rejected(problem.into()),
                    $v::Outcome::Conflict(record) => model::Outcome::Conflict(record.into()),
                }
            }
        }
    )*};
}

versions!(v3, v4);

impl From<v3::ReadBatch> for model::ReadBatch {
    fn from(b: v3::ReadBatch) -> Self {
        model::ReadBatch { records: list(b.records), cursor: b.cursor, has_more: b.has_more, total: None }
    }
}

impl From<v4::ReadBatch> for model::ReadBatch {
    fn from(b: v4::ReadBatch) -> Self {
        model::ReadBatch { records: records_of(b.records), cursor: b.cursor, has_more: b.has_more, total: b.total }
    }
}

/// API 0.3 changes carry their field names.
pub fn changes_v0_3(changes: &[model::Change]) -> Vec<v3::Change> {
    changes
        .iter()
        .map(|c| v3::Change {
            origin: c.origin.clone(),
            target_id: c.target_id.clone(),
            expected_version: c.expected_version.clone(),
            kind: c.kind.into(),
            fields: c.fields.iter().cloned().map(Into::into).collect(),
            repeated: c.repeated,
        })
        .collect()
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
pub fn changes_v0_4(changes: &[model::Change]) -> (Vec<String>, Vec<v4::Change>) {
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
            changes_v0_4(&[change(&[("a", model::Value::Integer(1))]), change(&[("b", model::Value::Integer(2)), ("a", model::Value::Integer(3))])]);
        assert_eq!(fields, vec!["a", "b"]);
        assert_eq!(changes[0].values, vec![Some(v4::Value::Integer(1)), None]);
        assert_eq!(changes[1].values, vec![Some(v4::Value::Integer(3)), Some(v4::Value::Integer(2))]);
    }
}
