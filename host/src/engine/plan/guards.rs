//! Guards a record must pass before anything is planned for it: frozen
//! fields, the pipeline's scope, the configured checks; and the failed item
//! a record that breaks one becomes.

use super::super::{side_ids, BatchPlan, Ctx};
use super::label_of;
use crate::config::Side;
use crate::model::{Record, Value, Violation};
use crate::state::{Base, FailedItem, HistoryEntry, Link};

/// Frozen fields (`frozen = true`) a linked record changed since the last sync.
pub(in crate::engine) fn frozen_changes(ctx: &Ctx<'_>, source: Side, record: &Record, base: &Base) -> Vec<Violation> {
    let base = base.side(source);
    ctx.rules()
        .filter(|(_, rule)| rule.frozen)
        .filter_map(|(left, _)| {
            let name = ctx.config.name_on(source, left);
            let now = record.get(name)?;
            if !base.has(name) || base.holds(name, now) {
                return None;
            }
            let (change, before) = match base.value(name) {
                Some(before) => (format!("{} -> {}", before.to_text(), now.to_text()), before.to_text()),
                None => (format!("now {}", now.to_text()), "the value it had when it was linked".to_owned()),
            };
            Some(Violation {
                field: Some(left.to_owned()),
                message: format!("`{name}` cannot change once the record is linked ({change})"),
                hint: Some(format!("set `{name}` back to {before} on the {source} side; to change it, unlink the record and sync it anew")),
            })
        })
        .collect()
}

/// The scope values a linked record no longer has: it may not leave the
/// pipeline's scope (a published task stays published).
pub(in crate::engine) fn scope_left(ctx: &Ctx<'_>, source: Side, record: &Record) -> Vec<Violation> {
    ctx.side(source)
        .scope
        .iter()
        .filter(|(field, wanted)| !record.get(field).is_some_and(|value| wanted.matches(value)))
        .map(|(field, wanted)| {
            let now = record.get(field).map_or_else(|| "∅".to_owned(), Value::to_text);
            let wanted = wanted.to_value().to_text();
            Violation {
                field: Some(field.clone()),
                message: format!("`{field}` is {now}, but the record is linked and stays in the pipeline's scope (where {field} = {wanted})"),
                hint: Some(format!(
                    "set `{field}` back to {wanted} on the {source} side; to stop syncing the record, unlink it (`synchost links unlink {} {}`)",
                    ctx.name, record.id
                )),
            }
        })
        .collect()
}

/// The side's `checks` a record breaks.
pub(in crate::engine) fn broken_checks(ctx: &Ctx<'_>, source: Side, record: &Record) -> Vec<Violation> {
    ctx.side(source)
        .checks
        .iter()
        .filter_map(|(field, check)| {
            let message = check.broken_by(field, record.get(field))?;
            Some(Violation { field: Some(field.clone()), message, hint: Some(check.hint.clone()) })
        })
        .collect()
}

pub(in crate::engine) fn fail_invalid(source: Side, record: &Record, link: Option<&Link>, violations: Vec<Violation>, plan: &mut BatchPlan) {
    let reason = violations
        .iter()
        .map(|v| match &v.field {
            Some(field) => format!("{field}: {}", v.message),
            None => v.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let hint = violations.iter().filter_map(|v| v.hint.clone()).collect::<Vec<_>>().join("; ");
    let (left_id, right_id) = side_ids(source, &record.id, link.map(|l| l.id_on(source.other())));
    plan.commit.history.push(HistoryEntry {
        left_id,
        right_id,
        action: "fail",
        target: Some(source.other()),
        origin: Some(source),
        fields: Vec::new(),
        rule: "validation".into(),
        message: Some(format!("{reason} (fix: {hint})")),
        label: label_of(record),
    });
    plan.commit.failed.push(FailedItem {
        label: label_of(record),
        side: source,
        source_id: record.id.clone(),
        code: "invalid".into(),
        reason,
        hint: (!hint.is_empty()).then_some(hint),
        retryable: false,
    });
    plan.counts.failed += 1;
}
