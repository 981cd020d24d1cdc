//! The current API's `page` and `change`, as views that borrow the engine's
//! records and changes: lowered into a plugin's memory straight from the
//! model, where the generated (owning) types would first copy every value
//! of a batch on the host. Only what the host sends has a view; what a
//! plugin returns is lifted into the generated types and moved into the
//! model.
//!
//! wasmtime checks these types against the plugin's own WIT when the
//! function is looked up ([`export_func`]), by names and shapes, so a
//! field out of order here fails the call with a type error, never a
//! misread value.

use wasmtime::component::{ComponentType, Func, Instance, Lower};
use wasmtime::AsContextMut;

use super::slots;
use crate::model;

/// `types.value`, borrowed.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(variant)]
pub enum ValueRef<'a> {
    #[component(name = "null")]
    Null,
    #[component(name = "boolean")]
    Boolean(bool),
    #[component(name = "integer")]
    Integer(i64),
    #[component(name = "float")]
    Float(f64),
    #[component(name = "decimal")]
    Decimal(&'a str),
    #[component(name = "text")]
    Text(&'a str),
    #[component(name = "date")]
    Date(&'a str),
    #[component(name = "timestamp")]
    Timestamp(&'a str),
    #[component(name = "bytes")]
    Bytes(&'a [u8]),
    #[component(name = "json")]
    Json(&'a str),
}

impl<'a> From<&'a model::Value> for ValueRef<'a> {
    fn from(value: &'a model::Value) -> Self {
        use model::Value as V;
        match value {
            V::Null => ValueRef::Null,
            V::Boolean(b) => ValueRef::Boolean(*b),
            V::Integer(i) => ValueRef::Integer(*i),
            V::Float(f) => ValueRef::Float(*f),
            V::Decimal(s) => ValueRef::Decimal(s),
            V::Text(s) => ValueRef::Text(s),
            V::Date(s) => ValueRef::Date(s),
            V::Timestamp(s) => ValueRef::Timestamp(s),
            V::Bytes(b) => ValueRef::Bytes(b),
            V::Json(s) => ValueRef::Json(s),
        }
    }
}

/// `types.row`, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct RowRef<'a> {
    id: &'a str,
    version: Option<&'a str>,
    deleted: bool,
    born: Option<&'a str>,
    values: Vec<Option<ValueRef<'a>>>,
}

/// `types.page`, borrowed: the records' values in the slots of `fields`.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct PageRef<'a> {
    fields: Vec<String>,
    rows: Vec<RowRef<'a>>,
}

/// `connector.change-kind`.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(enum)]
#[repr(u8)]
pub enum ChangeKindRef {
    #[component(name = "upsert")]
    Upsert,
    #[component(name = "delete")]
    Delete,
}

/// `connector.change`, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct ChangeRef<'a> {
    origin: &'a str,
    #[component(name = "target-id")]
    target_id: Option<&'a str>,
    #[component(name = "expected-version")]
    expected_version: Option<&'a str>,
    kind: ChangeKindRef,
    values: Vec<Option<ValueRef<'a>>>,
    repeated: bool,
    #[component(name = "on-behalf-of")]
    on_behalf_of: Option<&'a str>,
}

/// Records as one page, borrowing their values.
pub fn page(records: &[model::Record]) -> PageRef<'_> {
    let fields = super::layout(records.iter().map(|r| r.fields.as_slice()));
    let rows = records
        .iter()
        .map(|r| RowRef {
            id: &r.id,
            version: r.version.as_deref(),
            deleted: r.deleted,
            born: r.born.as_deref(),
            values: slots(&fields, &r.fields, ValueRef::from),
        })
        .collect();
    PageRef { fields, rows }
}

/// Changes with their values in the slots of one list of field names, borrowed.
pub fn changes(changes: &[model::Change]) -> (Vec<String>, Vec<ChangeRef<'_>>) {
    let fields = super::layout(changes.iter().map(|c| c.fields.as_slice()));
    let changes = changes
        .iter()
        .map(|c| ChangeRef {
            origin: &c.origin,
            target_id: c.target_id.as_deref(),
            expected_version: c.expected_version.as_deref(),
            kind: match c.kind {
                model::ChangeKind::Upsert => ChangeKindRef::Upsert,
                model::ChangeKind::Delete => ChangeKindRef::Delete,
            },
            values: slots(&fields, &c.fields, ValueRef::from),
            repeated: c.repeated,
            on_behalf_of: c.on_behalf_of.as_deref(),
        })
        .collect();
    (fields, changes)
}

/// A function the plugin exports from `interface` (e.g.
/// `synchost:plugin/connector@0.5.0`), by name.
pub fn export_func(instance: &Instance, mut store: impl AsContextMut, interface: &str, function: &str) -> wasmtime::Result<Func> {
    let missing = || wasmtime::format_err!("the plugin exports no `{function}` in `{interface}`");
    let interface_index = instance.get_export_index(store.as_context_mut(), None, interface).ok_or_else(missing)?;
    let function_index = instance.get_export_index(store.as_context_mut(), Some(&interface_index), function).ok_or_else(missing)?;
    instance.get_func(store, function_index).ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(fields: &[(&str, model::Value)]) -> model::Change {
        model::Change {
            origin: "o".into(),
            target_id: Some("t".into()),
            expected_version: None,
            kind: model::ChangeKind::Upsert,
            fields: fields.iter().map(|(n, v)| model::Field { name: (*n).into(), value: v.clone() }).collect(),
            repeated: false,
            on_behalf_of: Some("ada".into()),
        }
    }

    #[test]
    fn changes_name_their_fields_once_and_borrow_every_value() {
        let batch = [
            change(&[("a", model::Value::Text("one".into()))]),
            change(&[("b", model::Value::Integer(2)), ("a", model::Value::Null)]),
        ];
        let (fields, changes) = changes(&batch);
        assert_eq!(fields, vec!["a", "b"]);
        assert!(matches!(changes[0].values[..], [Some(ValueRef::Text("one")), None]));
        assert!(matches!(changes[1].values[..], [Some(ValueRef::Null), Some(ValueRef::Integer(2))]));
        assert_eq!(changes[1].target_id, Some("t"));
        assert_eq!(changes[1].on_behalf_of, Some("ada"));
        // Borrowed, not copied: the text is the change's own.
        let Some(ValueRef::Text(text)) = changes[0].values[0] else { unreachable!() };
        let model::Value::Text(own) = &batch[0].fields[0].value else { unreachable!() };
        assert!(std::ptr::eq(text, own.as_str()));
    }

    #[test]
    fn a_page_keeps_each_record_and_tells_a_missing_field_from_a_null() {
        let record = |id: &str, fields: &[(&str, model::Value)]| model::Record {
            id: id.into(),
            version: Some("v1".into()),
            deleted: false,
            fields: fields.iter().map(|(n, v)| model::Field { name: (*n).into(), value: v.clone() }).collect(),
            born: None,
        };
        let records = [
            record("1", &[("name", model::Value::Text("Ada".into())), ("age", model::Value::Integer(36))]),
            // Other order, one field missing, one more, and a null that is not a missing field.
            record("2", &[("email", model::Value::Null), ("name", model::Value::Text("Bob".into()))]),
        ];
        let page = page(&records);
        assert_eq!(page.fields, vec!["name", "age", "email"]);
        assert!(matches!(page.rows[0].values[..], [Some(ValueRef::Text("Ada")), Some(ValueRef::Integer(36)), None]));
        assert!(matches!(page.rows[1].values[..], [Some(ValueRef::Text("Bob")), None, Some(ValueRef::Null)]));
        assert_eq!((page.rows[1].id, page.rows[1].version), ("2", Some("v1")));
    }
}
