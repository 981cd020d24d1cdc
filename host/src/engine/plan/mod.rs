//! Deciding what one source record means for the other side: a create, an
//! update field by field (flows, accepted values, conflicts and their
//! policies), a delete, or a failed item; and turning a write's outcome into
//! the state to commit. Pure functions over the run's context and the batch's plan.
//!
//! - `guards`: frozen fields, scope, checks; the failed item of a record that breaks one.
//! - `create`, `update`, `delete`: the change each kind of source record makes.
//! - `outcome`: a write's outcome turned into links, history and counts.

mod create;
mod delete;
mod guards;
mod outcome;
mod update;

pub(super) use create::plan_create;
pub(super) use delete::{can_make_anew, make_anew, plan_delete};
pub(super) use guards::{broken_checks, fail_invalid, frozen_changes, scope_left};
pub(super) use outcome::{link_write, record_outcome};
pub(super) use update::plan_update;

use super::Ctx;
use crate::config::{Flow, Side};
use crate::model::{Change, ChangeKind, Field, Record, Value};
use crate::state::HistoryEntry;

/// What a person calls a record: its name, title, subject or comment (the
/// first of these it has, shortened), for messages that name it. Pure.
pub(super) fn label_of(record: &Record) -> Option<String> {
    const NAMING: [&str; 7] = ["name", "title", "subject", "summary", "comments", "comment", "login"];
    let text = NAMING.iter().find_map(|name| match record.get(name) {
        Some(Value::Text(text)) if !text.trim().is_empty() => Some(text),
        _ => None,
    })?;
    let text = text.trim();
    Some(match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    })
}

/// A change of a linked record's counterpart, guarded by the version it was read at.
fn change_of(ctx: &Ctx<'_>, source: Side, record: &Record, counterpart: &Record, kind: ChangeKind, fields: Vec<Field>) -> Change {
    Change {
        origin: ctx.origin(source, record),
        target_id: Some(counterpart.id.clone()),
        expected_version: counterpart.version.clone(),
        kind,
        repeated: false,
        on_behalf_of: None,
        fields,
    }
}

/// A history entry for a conflict decided without a write here (other
/// notes without a write take its shape under their own action).
fn conflict_entry(left_id: &Option<String>, right_id: &Option<String>, source: Side, rule: String, message: String) -> HistoryEntry {
    HistoryEntry { left_id: left_id.clone(), right_id: right_id.clone(), action: "conflict", target: None, origin: Some(source), fields: Vec::new(), rule, message: Some(message), label: None }
}

fn flow_name(flow: Flow) -> &'static str {
    match flow {
        Flow::Both => "both",
        Flow::LeftToRight => "left-to-right",
        Flow::RightToLeft => "right-to-left",
        Flow::Off => "off",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[(&str, &str)]) -> Record {
        Record {
            id: "7".into(),
            version: None,
            deleted: false,
            born: None,
            fields: fields.iter().map(|(n, v)| Field { name: (*n).into(), value: Value::Text((*v).into()) }).collect(),
        }
    }

    #[test]
    fn a_record_is_named_by_its_name_title_or_subject() {
        assert_eq!(label_of(&record(&[("phone", "030"), ("subject", "Network cabling")])).as_deref(), Some("Network cabling"));
        assert_eq!(label_of(&record(&[("name", "  "), ("title", "Move")])).as_deref(), Some("Move"), "an empty name names nothing");
        assert_eq!(label_of(&record(&[("phone", "030")])), None);
        let long = "x".repeat(80);
        assert_eq!(label_of(&record(&[("name", &long)])).unwrap().chars().count(), 61);
    }
}
