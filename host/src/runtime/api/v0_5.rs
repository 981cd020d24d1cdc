//! Plugin API 0.5 (current): as 0.4, and a connector tells which system
//! answers (`identity`), and a change names the person it is made for
//! (`on-behalf-of`).

use wasmtime::component::Instance;
use wasmtime::Store;

use super::borrowed::{export_func, ChangeRef, PageRef};
use super::list;
use crate::model;
use crate::services::HostState;

world_bindings!("../schemas/wit/plugin.wit");

mod v5 {
    pub use super::connector::exports::synchost::plugin::connector::{Applied, ChangeKind, EntityNeed, Outcome, ReadBatch};
    pub use super::connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Page, Problem, Record, Value};
    pub use super::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};
}

model_conversions!(v5);
paged_conversions!(v5);

const CONNECTOR_INTERFACE: &str = "synchost:plugin/connector@0.5.0";
const MAPPER_INTERFACE: &str = "synchost:plugin/mapper@0.5.0";

type Answer<T> = wasmtime::Result<Result<T, v5::Problem>>;

/// `connector.write`, with the changes lowered from the engine's own.
pub async fn write(instance: Instance, store: &mut Store<HostState>, entity: &str, fields: &[String], changes: &[ChangeRef<'_>]) -> Answer<Vec<v5::Outcome>> {
    let write = export_func(&instance, &mut *store, CONNECTOR_INTERFACE, "write")?;
    let write = write.typed::<(&str, &[String], &[ChangeRef<'_>]), (Result<Vec<v5::Outcome>, v5::Problem>,)>(&*store)?;
    Ok(write.call_async(store, (entity, fields, changes)).await?.0)
}

/// `mapper.map-records`, with the page lowered from the engine's records.
pub async fn map_records(instance: Instance, store: &mut Store<HostState>, direction: model::Direction, page: &PageRef<'_>) -> Answer<Vec<v5::Mapped>> {
    let map = export_func(&instance, &mut *store, MAPPER_INTERFACE, "map-records")?;
    let map = map.typed::<(v5::Direction, &PageRef<'_>), (Result<Vec<v5::Mapped>, v5::Problem>,)>(&*store)?;
    Ok(map.call_async(store, (direction.into(), page)).await?.0)
}

#[cfg(test)]
mod tests {
    use super::connector::synchost::plugin::types::Row;
    use super::*;

    #[test]
    fn a_page_of_records_of_different_layouts_becomes_records_with_named_fields() {
        let text = |s: &str| Some(v5::Value::Text(s.into()));
        let row = |id: &str, values: Vec<Option<v5::Value>>| Row { id: id.into(), version: Some("v1".into()), deleted: false, born: None, values };
        let page = v5::Page {
            fields: vec!["name".into(), "age".into(), "email".into()],
            // A missing field (`none`) is not a null.
            rows: vec![row("1", vec![text("Ada"), Some(v5::Value::Integer(36)), None]), row("2", vec![text("Bob"), None, Some(v5::Value::Null)])],
        };
        let records = records_of(page);
        assert_eq!(records[0].fields.len(), 2);
        assert_eq!(records[0].get("age"), Some(&model::Value::Integer(36)));
        assert_eq!(records[1].get("email"), Some(&model::Value::Null));
        assert_eq!(records[1].get("age"), None);
        assert_eq!(records[1].version.as_deref(), Some("v1"));
    }
}
