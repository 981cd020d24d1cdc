//! A source record without a counterpart: the create on the other side.

use std::collections::BTreeMap;

use super::super::{side_ids, BatchPlan, Ctx, Pending};
use super::label_of;
use crate::config::Side;
use crate::model::{Change, ChangeKind, Field, Record, Value};
use crate::state::HistoryEntry;

/// A new source record: create it on the target.
pub(in crate::engine) fn plan_create(ctx: &Ctx<'_>, source: Side, record: &Record, values: &BTreeMap<String, Value>, plan: &mut BatchPlan) {
    let target = source.other();
    let mut fields = Vec::new();
    let mut base_source = Vec::new();
    let mut base_target = Vec::new();
    for (left, rule) in ctx.rules() {
        if let Some(raw) = record.get(ctx.config.name_on(source, left)) {
            base_source.push((ctx.config.name_on(source, left).to_owned(), raw.clone()));
        }
        if !rule.direction.allows(source) {
            continue;
        }
        if let Some(value) = values.get(left) {
            let name = ctx.config.name_on(target, left).to_owned();
            fields.push(Field { name: name.clone(), value: value.clone() });
            base_target.push((name, value.clone()));
            // Two sets of books start equal: the mirror field gets the value too.
            if let Some(mirror_field) = ctx.config.books_mirror(left, target) {
                fields.push(Field { name: mirror_field.to_owned(), value: value.clone() });
            }
        }
    }
    // A record created on a side with a scope is in it.
    for (field, value) in &ctx.side(target).scope {
        if !fields.iter().any(|f: &Field| &f.name == field) {
            fields.push(Field { name: field.clone(), value: value.to_value() });
        }
    }
    // Fields the create does not write start empty on the target: reading the new
    // record back must not look like a change made there.
    for (left, _) in ctx.rules() {
        let name = ctx.config.name_on(target, left);
        if !base_target.iter().any(|(n, _)| n == name) {
            base_target.push((name.to_owned(), Value::Null));
        }
    }
    let (left_id, right_id) = side_ids(source, &record.id, None);
    let created = fields.iter().map(|f| (f.name.clone(), None, f.value.clone())).collect();
    plan.pending.push(Pending {
        label: label_of(record),
        source_id: record.id.clone(),
        source_version: record.version.clone(),
        link: None,
        change: Change {
            origin: ctx.origin(source, record),
            target_id: None,
            expected_version: None,
            kind: ChangeKind::Upsert,
            repeated: false,
            on_behalf_of: None,
            fields,
        },
        history: HistoryEntry {
            left_id,
            right_id,
            action: "create",
            target: Some(target),
            origin: Some(source),
            fields: created,
            rule: format!("new on the {source} side"),
            message: None,
            label: None,
        },
        base_source,
        base_target,
        link_state: None,
        target_in_sync: true,
    });
}
