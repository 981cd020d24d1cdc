//! Plugin API 0.3 (frozen): records carry their field names; mapping and
//! validation are two calls. Besides the conversions to the model, the 0.3
//! imports are here: each converts its arguments to the current version's
//! types, calls the one implementation in `services`, and converts the
//! answer back, so a grant, a budget or a limit holds the same whichever
//! version a plugin speaks.

use super::list;
use crate::model;
use crate::services::HostState;

world_bindings!("../schemas/wit/since_v0.3.0/plugin.wit");

mod v3 {
    pub use super::connector::exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Outcome, ReadBatch};
    pub use super::connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Problem, Record, Value};
    pub use super::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};
}

model_conversions!(v3);

impl From<v3::ReadBatch> for model::ReadBatch {
    fn from(b: v3::ReadBatch) -> Self {
        model::ReadBatch { records: list(b.records), cursor: b.cursor, has_more: b.has_more, total: None }
    }
}

/// API 0.3 changes carry their field names.
pub fn changes(changes: &[model::Change]) -> Vec<v3::Change> {
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


// The 0.3 imports, delegating to the current services.
use self::connector::synchost::plugin as old;
delegate_imports!();
