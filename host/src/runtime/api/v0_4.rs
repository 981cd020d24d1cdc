//! Plugin API 0.4 (frozen): records cross the boundary as pages that name
//! their fields once; a mapper maps and validates in one call. Its imports
//! are the current ones under the 0.4 names, delegating to `services`.

use super::{layout, list, slots};
use crate::model;
use crate::services::HostState;

world_bindings!("../schemas/wit/since_v0.4.0/plugin.wit");

mod v4 {
    pub use super::connector::exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Outcome, ReadBatch};
    pub use super::connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Page, Problem, Record, Row, Value};
    pub use super::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};
}

model_conversions!(v4);
paged_conversions!(v4);

/// Changes with their values in the slots of one list of field names (0.4
/// changes name no person: `on_behalf_of` is not sent).
pub fn changes(changes: &[model::Change]) -> (Vec<String>, Vec<v4::Change>) {
    let fields = layout(changes.iter().map(|c| c.fields.as_slice()));
    let changes = changes
        .iter()
        .map(|c| v4::Change {
            origin: c.origin.clone(),
            target_id: c.target_id.clone(),
            expected_version: c.expected_version.clone(),
            kind: c.kind.into(),
            values: slots(&fields, &c.fields, |v| v.clone().into()),
            repeated: c.repeated,
        })
        .collect();
    (fields, changes)
}

/// Records as one page.
pub fn page_of(records: &[model::Record]) -> v4::Page {
    let fields = layout(records.iter().map(|r| r.fields.as_slice()));
    let rows = records
        .iter()
        .map(|r| v4::Row {
            id: r.id.clone(),
            version: r.version.clone(),
            deleted: r.deleted,
            born: r.born.clone(),
            values: slots(&fields, &r.fields, |v| v.clone().into()),
        })
        .collect();
    v4::Page { fields, rows }
}

use self::connector::synchost::plugin as old;
delegate_imports!();
