//! Deciding what one source record means for the other side: a create, an
//! update field by field (flows, accepted values, conflicts and their
//! policies), a delete, or a failed item; and turning a write's outcome into
//! the state to commit. Pure functions over the run's context and the batch's plan.

use std::collections::BTreeMap;

use super::policy::{self, Decision};
use super::{side_ids, BatchPlan, Ctx, Pending};
use crate::config::{ConflictPolicy, DataCategory, DeletePolicy, Flow, Side};
use crate::model::{Change, ChangeKind, Field, Outcome, Record, Value, Violation};
use crate::state::{Base, Commit, ConflictEntry, FailedItem, HistoryEntry, Link, LinkRef, LinkWrite, RunCounts};

/// Frozen fields (`frozen = true`) a linked record changed since the last sync.
pub(super) fn frozen_changes(ctx: &Ctx<'_>, source: Side, record: &Record, base: &Base) -> Vec<Violation> {
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
pub(super) fn scope_left(ctx: &Ctx<'_>, source: Side, record: &Record) -> Vec<Violation> {
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
pub(super) fn broken_checks(ctx: &Ctx<'_>, source: Side, record: &Record) -> Vec<Violation> {
    ctx.side(source)
        .checks
        .iter()
        .filter_map(|(field, check)| {
            let message = check.broken_by(field, record.get(field))?;
            Some(Violation { field: Some(field.clone()), message, hint: Some(check.hint.clone()) })
        })
        .collect()
}

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

pub(super) fn fail_invalid(source: Side, record: &Record, link: Option<&Link>, violations: Vec<Violation>, plan: &mut BatchPlan) {
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

/// A new source record: create it on the target.
pub(super) fn plan_create(ctx: &Ctx<'_>, source: Side, record: &Record, values: &BTreeMap<String, Value>, plan: &mut BatchPlan) {
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

/// A linked source record changed: per field, flow, accept, or resolve a conflict.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_update(
    ctx: &Ctx<'_>,
    source: Side,
    record: &Record,
    link: &Link,
    base: &Base,
    counterpart: &Record,
    values: &BTreeMap<String, Value>,
    plan: &mut BatchPlan,
) {
    let target = source.other();
    let (base_s, base_t) = (base.side(source), base.side(target));
    let any_source_change = ctx.rules().any(|(left, _)| {
        let name = ctx.config.name_on(source, left);
        record.get(name).is_some_and(|v| !base_s.holds(name, v))
    });
    let target_in_sync = ctx.rules().all(|(left, _)| {
        let name = ctx.config.name_on(target, left);
        counterpart.get(name).is_none_or(|v| base_t.holds(name, v))
    });
    let mut writes: Vec<(String, Option<Value>, Value)> = Vec::new();
    let mut base_source = Vec::new();
    let mut base_target = Vec::new();
    let mut rules_used: Vec<String> = Vec::new();
    // Conflicts the other side won: (rule, message), recorded without a write here.
    let mut lost: Vec<(String, String)> = Vec::new();
    let mut warning: Option<String> = None;

    for (left, rule) in ctx.rules() {
        let (s_name, t_name) = (ctx.config.name_on(source, left), ctx.config.name_on(target, left));
        let raw = record.get(s_name);
        // Derived fields (the mapper makes them, the source has none) change with the record.
        let source_changed = match raw {
            Some(value) => !base_s.holds(s_name, value),
            None => any_source_change && values.contains_key(left),
        };
        if !source_changed {
            continue;
        }
        if !rule.direction.allows(source) {
            // The source may hold its own value of a field that flows the other way.
            if let Some(value) = raw {
                base_source.push((s_name.to_owned(), value.clone()));
            }
            continue;
        }
        let Some(new_value) = values.get(left) else { continue };
        if let Some(mirror_field) = ctx.config.books_mirror(left, target) {
            // Two sets of books: the target keeps its own value of the field;
            // the source's value goes to the target's mirror field.
            raw.inspect(|v| base_source.push((s_name.to_owned(), (*v).clone())));
            let current_mirror = counterpart.get(mirror_field);
            if current_mirror != Some(new_value) {
                writes.push((mirror_field.to_owned(), current_mirror.cloned(), new_value.clone()));
                rules_used.push(format!("{mirror_field}: two sets of books (the {target} side keeps its own {t_name})"));
            }
            continue;
        }
        let Some(current) = counterpart.get(t_name) else {
            // The target's connector leaves the field out of this record: it
            // is derived there (Redmine works a parent issue's dates out from
            // its subtasks) and takes no value of its own.
            raw.inspect(|v| base_source.push((s_name.to_owned(), (*v).clone())));
            continue;
        };
        let current = Some(current);
        let target_changed = !base_t.same(t_name, current);
        if current == Some(new_value) {
            // Already equal (e.g. both sides made the same edit): only the base moves.
            raw.inspect(|v| base_source.push((s_name.to_owned(), (*v).clone())));
            base_target.push((t_name.to_owned(), new_value.clone()));
            continue;
        }
        if !(target_changed && rule.direction == Flow::Both) {
            raw.inspect(|v| base_source.push((s_name.to_owned(), (*v).clone())));
            writes.push((t_name.to_owned(), current.cloned(), new_value.clone()));
            base_target.push((t_name.to_owned(), new_value.clone()));
            rules_used.push(format!("{t_name}: direction {}", flow_name(rule.direction)));
            continue;
        }
        // Changed on both sides since base: a conflict for the field's policy.
        let policy = ctx.config.policy_of(left);
        let (left_version, right_version) = match source {
            Side::Left => (record.version.as_deref(), counterpart.version.as_deref()),
            Side::Right => (counterpart.version.as_deref(), record.version.as_deref()),
        };
        let current_value = current.cloned().unwrap_or(Value::Null);
        let (left_value, right_value) = match source {
            Side::Left => (new_value.clone(), current_value.clone()),
            Side::Right => (current_value.clone(), new_value.clone()),
        };
        plan.counts.conflicts += 1;
        // While a scope is locked, a conflict of plan data goes to the holder (L2).
        let lock = ctx.holder_wins(source, left).or_else(|| ctx.holder_overrules(source, left).filter(|l| l.holder_side.is_some()));
        let decision = match &lock {
            Some(lock) => Decision::Wins(lock.holder_side.unwrap_or(source)),
            None => policy::decide(policy, left_version, right_version),
        };
        match decision {
            Decision::Wins(winner) if winner == source => {
                raw.inspect(|v| base_source.push((s_name.to_owned(), (*v).clone())));
                writes.push((t_name.to_owned(), current.cloned(), new_value.clone()));
                base_target.push((t_name.to_owned(), new_value.clone()));
                if let Some(lock) = &lock {
                    rules_used.push(format!("{t_name}: conflict, {} ({source} wins)", lock.describe()));
                    warning = Some(format!("the {target} change to {t_name} was not applied: {}; the {target} side must refresh", lock.describe()));
                } else {
                    rules_used.push(format!("{t_name}: conflict, policy {} ({source} wins)", policy.as_str()));
                }
                if lock.is_none() && policy == ConflictPolicy::FirstWriterWins && ctx.config.category_of(left) != Some(DataCategory::Actuals) {
                    warning = Some(format!(
                        "the {target} change to {t_name} was rejected: the {source} side changed it first; the {target} side must refresh"
                    ));
                }
            }
            Decision::Wins(winner) => {
                // The winner's value flows when the other side's changes are
                // processed; the conflict is counted there.
                plan.counts.conflicts -= 1;
                lost.push((
                    // Listed here for this side's history, counted once, where it is decided.
                    format!("{t_name}: lost the conflict, policy {}", policy.as_str()),
                    format!(
                        "`{left}` changed on both sides; the {winner} value {} replaces the {source} value {}{}",
                        current_value.to_text(),
                        new_value.to_text(),
                        if policy == ConflictPolicy::FirstWriterWins {
                            format!("; the {source} change was rejected because the {winner} side changed it first: the {source} side must refresh")
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
            Decision::KeepBoth => {
                raw.inspect(|v| base_source.push((s_name.to_owned(), (*v).clone())));
                base_target.push((t_name.to_owned(), current_value.clone()));
                if let Some(mirror_field) = ctx.config.mirror_field(left, target) {
                    writes.push((mirror_field.to_owned(), counterpart.get(mirror_field).cloned(), new_value.clone()));
                }
                if let Some(mirror_field) = ctx.config.mirror_field(left, source).map(str::to_owned) {
                    let (left_id, right_id) = side_ids(source, &record.id, Some(&counterpart.id));
                    plan.reverse.push((
                        Change {
                            origin: ctx.origin(target, counterpart),
                            target_id: Some(record.id.clone()),
                            expected_version: None,
                            kind: ChangeKind::Upsert,
                            repeated: false,
                            on_behalf_of: None,
                            fields: vec![Field { name: mirror_field.clone(), value: current_value.clone() }],
                        },
                        HistoryEntry {
                            left_id,
                            right_id,
                            action: "update",
                            target: Some(source),
                            origin: Some(target),
                            fields: vec![(mirror_field.clone(), record.get(&mirror_field).cloned(), current_value.clone())],
                            rule: format!("{s_name}: conflict, policy mirror (the {target} value kept in {mirror_field})"),
                            message: None,
                            label: None,
                        },
                    ));
                }
                rules_used.push(format!("{t_name}: conflict, policy mirror (each side keeps its value)"));
            }
            Decision::Park => {
                let key = (link.link_id, left.to_owned());
                let first_time = ctx.parked.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone());
                if !first_time {
                    plan.counts.conflicts -= 1;
                    continue;
                }
                plan.commit.conflicts.push(ConflictEntry {
                    link: LinkRef::Existing(link.link_id),
                    field: left.to_owned(),
                    left_value,
                    right_value,
                });
                if ctx.open.contains(&key) {
                    // Still waiting for an admin: keep its values current, say nothing new.
                    plan.counts.conflicts -= 1;
                    continue;
                }
                let (left_id, right_id) = side_ids(source, &record.id, Some(&counterpart.id));
                plan.commit.history.push(HistoryEntry {
                    left_id,
                    right_id,
                    action: "conflict",
                    target: None,
                    origin: Some(source),
                    fields: vec![(left.to_owned(), Some(current_value), new_value.clone())],
                    rule: "policy manual".into(),
                    message: Some(format!("`{left}` changed on both sides; parked until an admin resolves it (`synchost conflicts list`)")),
                    label: None,
                });
            }
        }
    }

    let (left_id, right_id) = side_ids(source, &record.id, Some(&counterpart.id));
    for (rule, message) in lost {
        plan.commit.history.push(conflict_entry(&left_id, &right_id, source, rule, message));
    }
    if let Some(warning) = &warning {
        // The losing side is told where its connector takes notes (L1).
        if let Some(field) = ctx.config.notes.on(target) {
            writes.push((field.to_owned(), None, Value::Text(format!("synchost: {warning}."))));
        }
        plan.warnings.push(format!("{}: {warning}", label_of(record).unwrap_or_else(|| record.id.clone())));
    }
    if writes.is_empty() {
        if !base_source.is_empty() || !base_target.is_empty() {
            plan.commit.links.push(link_write(link.link_id, source, record.version.clone(), None, base_source, base_target));
        } else if !any_source_change && record.version.is_some() {
            // A new version with nothing new in the synced fields (a column
            // that is not synced changed): remembered, so that the record is
            // passed over until it changes again.
            plan.commit.links.push(link_write(link.link_id, source, record.version.clone(), None, Vec::new(), Vec::new()));
        }
        plan.commit.cleared_failures.push((source, record.id.clone()));
        return;
    }
    plan.pending.push(Pending {
        label: label_of(record),
        source_id: record.id.clone(),
        source_version: record.version.clone(),
        link: Some(link.clone()),
        change: change_of(ctx, source, record, counterpart, ChangeKind::Upsert, writes.iter().map(|(name, _, value)| Field { name: name.clone(), value: value.clone() }).collect()),
        history: HistoryEntry {
            left_id,
            right_id,
            action: "update",
            target: Some(target),
            origin: Some(source),
            fields: writes,
            rule: rules_used.join("; "),
            message: warning,
            label: None,
        },
        base_source,
        base_target,
        link_state: None,
        target_in_sync,
    });
}

/// A linked source record was deleted: propagate by the delete policy; an
/// edit on the other side since base makes it a conflict.
pub(super) fn plan_delete(ctx: &Ctx<'_>, source: Side, record: &Record, link: &Link, base: &Base, counterpart: Option<&Record>, plan: &mut BatchPlan) {
    let target = source.other();
    let (left_id, right_id) = side_ids(source, &record.id, Some(link.id_on(target)));
    let source_deleted_state = source.deleted_state();
    let note = |action: &'static str, rule: String, message: String, state: &'static str, plan: &mut BatchPlan| {
        plan.commit.history.push(HistoryEntry {
            left_id: left_id.clone(),
            right_id: right_id.clone(),
            action,
            target: None,
            origin: Some(source),
            fields: Vec::new(),
            rule,
            message: Some(message),
            label: None,
        });
        plan.commit.links.push(LinkWrite { link: LinkRef::Existing(link.link_id), left_version: None, right_version: None, state: Some(state), base: Vec::new() });
    };
    let Some(counterpart) = counterpart.filter(|c| !c.deleted) else {
        note("delete", "deleted on both sides".into(), "deleted on both sides".into(), "deleted", plan);
        return;
    };
    let base_t = base.side(target);
    let edited: Vec<&str> = ctx
        .rules()
        .map(|(left, _)| ctx.config.name_on(target, left))
        .filter(|name| !base_t.same(name, counterpart.get(name)))
        .collect();
    // A delete that won over an edit says so in its entry (the conflict is counted).
    let mut won_conflict: Option<String> = None;
    if !edited.is_empty() {
        let policy = ctx.config.record_policy();
        let (lv, rv) = match source {
            Side::Left => (record.version.as_deref(), counterpart.version.as_deref()),
            Side::Right => (counterpart.version.as_deref(), record.version.as_deref()),
        };
        plan.counts.conflicts += 1;
        // A delete seen only as a record missing has no time: the edit, made
        // after the last sync, is the later one.
        let decision = match (policy::change_time(record.version.as_deref()), policy) {
            (None, ConflictPolicy::LastWriterWins | ConflictPolicy::FirstWriterWins) => Decision::Wins(target),
            _ => policy::decide(policy, lv, rv),
        };
        match decision {
            Decision::Wins(winner) if winner == source => {
                won_conflict = Some(format!(
                    "record: conflict, policy {} (the {source} delete wins over the {target} edit of {})",
                    policy.as_str(),
                    edited.join(", ")
                ));
            }
            Decision::Park => {
                plan.commit.conflicts.push(ConflictEntry {
                    link: LinkRef::Existing(link.link_id),
                    field: "*".into(),
                    left_value: if source == Side::Left { Value::Text("deleted".into()) } else { Value::Text("edited".into()) },
                    right_value: if source == Side::Right { Value::Text("deleted".into()) } else { Value::Text("edited".into()) },
                });
                note(
                    "conflict",
                    "policy manual".into(),
                    format!("deleted on the {source} side while {} changed on the {target} side; parked for an admin", edited.join(", ")),
                    "active",
                    plan,
                );
                return;
            }
            _ if can_make_anew(ctx, target) => {
                plan.commit.history.push(conflict_entry(
                    &left_id,
                    &right_id,
                    source,
                    format!("policy {} (the {target} edit wins over the {source} delete)", policy.as_str()),
                    format!(
                        "deleted on the {source} side while {} changed on the {target} side; the {target} record is kept and made anew on the {source} side",
                        edited.join(", ")
                    ),
                ));
                make_anew(&mut plan.commit, link.link_id, target, counterpart.id.clone());
                return;
            }
            _ => {
                note(
                    "conflict",
                    format!("policy {}", policy.as_str()),
                    format!(
                        "deleted on the {source} side while {} changed on the {target} side; the {target} record is kept, the {source} record stays deleted (it cannot be made anew there: {})",
                        edited.join(", "),
                        if ctx.config.deletes == DeletePolicy::Ignore { "deletes = \"ignore\"".to_owned() } else { format!("create = \"{}\"", flow_name(ctx.config.create)) }
                    ),
                    source_deleted_state,
                    plan,
                );
                return;
            }
        }
    }
    let propagate = match ctx.config.deletes {
        DeletePolicy::Ignore => Err("deletes = \"ignore\"".to_owned()),
        DeletePolicy::Soft if !ctx.def(target).soft_delete || !ctx.def(source).soft_delete => Err(format!(
            "deletes propagate as tombstones only when both sides have soft delete; the {target} entity has {}; set deletes = \"hard\" to remove its rows",
            if ctx.def(target).soft_delete { "it" } else { "none" }
        )),
        _ => Ok(()),
    };
    let rule = |rule: String| match &won_conflict {
        Some(conflict) => format!("{rule}; {conflict}"),
        None => rule,
    };
    if let Err(reason) = propagate {
        note("skip", rule("delete policy".into()), format!("deleted on the {source} side, not propagated: {reason}"), source_deleted_state, plan);
        return;
    }
    plan.pending.push(Pending {
        label: label_of(record),
        source_id: record.id.clone(),
        source_version: record.version.clone(),
        link: Some(link.clone()),
        change: change_of(ctx, source, record, counterpart, ChangeKind::Delete, Vec::new()),
        history: HistoryEntry {
            left_id,
            right_id,
            action: "delete",
            target: Some(target),
            origin: Some(source),
            fields: Vec::new(),
            rule: rule(format!("deletes {}", match ctx.config.deletes { DeletePolicy::Hard => "hard", _ => "soft" })),
            message: None,
            label: None,
        },
        base_source: Vec::new(),
        base_target: Vec::new(),
        link_state: Some("deleted"),
        target_in_sync: true,
    });
}

/// Whether a record of `kept` whose edit won over the other side's delete
/// can be made anew there: deletes are not ignored, and `kept` may create.
pub(super) fn can_make_anew(ctx: &Ctx<'_>, kept: Side) -> bool {
    ctx.config.deletes != DeletePolicy::Ignore && ctx.config.create.allows(kept)
}

/// The edit won over a delete: the kept record is unlinked and driven
/// through the engine again at the end of this run, as a new record, so the
/// two sides hold the same again.
pub(super) fn make_anew(commit: &mut Commit, link_id: i64, kept: Side, kept_id: String) {
    commit.unlinks.push(link_id);
    commit.queued_intents.push((kept, kept_id));
}

/// A history entry for a conflict decided without a write here.
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

pub(super) fn link_write(
    link_id: i64,
    source: Side,
    source_version: Option<String>,
    target_version: Option<Option<String>>,
    base_source: Vec<(String, Value)>,
    base_target: Vec<(String, Value)>,
) -> LinkWrite {
    let target = source.other();
    let (left_version, right_version) = match source {
        Side::Left => (Some(source_version), target_version),
        Side::Right => (target_version, Some(source_version)),
    };
    LinkWrite {
        link: LinkRef::Existing(link_id),
        left_version,
        right_version,
        state: None,
        base: base_source
            .into_iter()
            .map(|(f, v)| (source, f, v))
            .chain(base_target.into_iter().map(|(f, v)| (target, f, v)))
            .collect(),
    }
}

/// Turns a write's outcome (or, in a dry run, its plan) into state changes.
pub(super) fn record_outcome(commit: &mut Commit, counts: &mut RunCounts, source: Side, pending: Pending, outcome: Outcome) {
    let target = source.other();
    let Pending { source_id, source_version, link, mut history, base_source, base_target, link_state, target_in_sync, label, .. } = pending;
    history.label = label.clone();
    match outcome {
        Outcome::Applied(applied) => {
            match history.action {
                "create" => counts.created += 1,
                "delete" => counts.deleted += 1,
                _ => counts.updated += 1,
            }
            let link_ref = match &link {
                Some(link) => LinkRef::Existing(link.link_id),
                None => {
                    let (left_id, right_id) = match source {
                        Side::Left => (source_id.clone(), applied.id.clone()),
                        Side::Right => (applied.id.clone(), source_id.clone()),
                    };
                    match target {
                        Side::Left => history.left_id = Some(applied.id.clone()),
                        Side::Right => history.right_id = Some(applied.id.clone()),
                    }
                    LinkRef::New { left_id, right_id }
                }
            };
            let target_version = if target_in_sync { applied.version.clone() } else { None };
            let mut write = link_write(0, source, source_version, Some(target_version), base_source, base_target);
            write.link = link_ref;
            write.state = link_state;
            commit.links.push(write);
            commit.history.push(history);
            commit.cleared_failures.push((source, source_id));
        }
        Outcome::Rejected(problem) => {
            counts.failed += 1;
            history.action = "fail";
            history.message = Some(match &problem.hint {
                Some(hint) => format!("{}: {} (fix: {hint})", problem.code, problem.message),
                None => format!("{}: {}", problem.code, problem.message),
            });
            commit.history.push(history);
            commit.failed.push(FailedItem {
                label: label.clone(),
                side: source,
                source_id,
                code: problem.code,
                reason: problem.message,
                hint: problem.hint,
                retryable: problem.retryable,
            });
        }
        Outcome::Conflict(current) => {
            counts.failed += 1;
            history.action = "fail";
            let reason = format!(
                "the {target} record {} changed while this change was written (now version {})",
                current.id,
                current.version.as_deref().unwrap_or("unknown")
            );
            history.message = Some(reason.clone());
            commit.history.push(history);
            commit.failed.push(FailedItem {
                label: label.clone(),
                side: source,
                source_id,
                code: "changed-meanwhile".into(),
                reason,
                hint: Some("nothing to do: the item is resubmitted and merged with the newer version".into()),
                retryable: true,
            });
        }
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
