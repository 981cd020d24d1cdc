//! A linked record that changed: the update field by field, with each
//! field's flow, accepted values, conflicts and their policies.

use std::collections::BTreeMap;

use super::super::policy::{self, Decision};
use super::super::{side_ids, BatchPlan, Ctx, Pending};
use super::outcome::link_write;
use super::{change_of, conflict_entry, flow_name, label_of};
use crate::config::{ConflictPolicy, DataCategory, Flow, Side};
use crate::model::{Change, ChangeKind, Field, Record, Value};
use crate::state::{Base, ConflictEntry, HistoryEntry, Link, LinkRef};

/// What an update decides for one record, field by field.
#[derive(Default)]
struct Decisions {
    /// (target field, its current value, the value to write).
    writes: Vec<(String, Option<Value>, Value)>,
    base_source: Vec<(String, Value)>,
    base_target: Vec<(String, Value)>,
    rules_used: Vec<String>,
    /// Conflicts the other side won: (rule, message), recorded without a write here.
    lost: Vec<(String, String)>,
    warning: Option<String>,
}

impl Decisions {
    /// The source's value of a field becomes its base on the source side.
    fn keep_source_base(&mut self, s_name: &str, raw: Option<&Value>) {
        if let Some(value) = raw {
            self.base_source.push((s_name.to_owned(), value.clone()));
        }
    }
}

/// The linked record being updated and its counterpart on the other side.
struct Update<'a, 'c> {
    ctx: &'a Ctx<'c>,
    source: Side,
    record: &'a Record,
    link: &'a Link,
    counterpart: &'a Record,
}

/// A field changed on both sides since the base.
struct Conflicted<'a> {
    left: &'a str,
    s_name: &'a str,
    t_name: &'a str,
    raw: Option<&'a Value>,
    current: &'a Value,
    new_value: &'a Value,
}

/// A linked source record changed: per field, flow, accept, or resolve a conflict.
#[allow(clippy::too_many_arguments)]
pub(in crate::engine) fn plan_update(
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
    let update = Update { ctx, source, record, link, counterpart };
    let mut d = Decisions::default();

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
            d.keep_source_base(s_name, raw);
            continue;
        }
        let Some(new_value) = values.get(left) else { continue };
        if let Some(mirror_field) = ctx.config.books_mirror(left, target) {
            // Two sets of books: the target keeps its own value of the field;
            // the source's value goes to the target's mirror field.
            d.keep_source_base(s_name, raw);
            let current_mirror = counterpart.get(mirror_field);
            if current_mirror != Some(new_value) {
                d.writes.push((mirror_field.to_owned(), current_mirror.cloned(), new_value.clone()));
                d.rules_used.push(format!("{mirror_field}: two sets of books (the {target} side keeps its own {t_name})"));
            }
            continue;
        }
        let Some(current) = counterpart.get(t_name) else {
            // The target's connector leaves the field out of this record: it
            // is derived there (Redmine works a parent issue's dates out from
            // its subtasks) and takes no value of its own.
            d.keep_source_base(s_name, raw);
            continue;
        };
        if current == new_value {
            // Already equal (e.g. both sides made the same edit): only the base moves.
            d.keep_source_base(s_name, raw);
            d.base_target.push((t_name.to_owned(), new_value.clone()));
            continue;
        }
        let target_changed = !base_t.same(t_name, Some(current));
        if !(target_changed && rule.direction == Flow::Both) {
            d.keep_source_base(s_name, raw);
            d.writes.push((t_name.to_owned(), Some(current.clone()), new_value.clone()));
            d.base_target.push((t_name.to_owned(), new_value.clone()));
            d.rules_used.push(format!("{t_name}: direction {}", flow_name(rule.direction)));
            continue;
        }
        let field = Conflicted { left, s_name, t_name, raw, current, new_value };
        decide_conflict(&update, &field, &mut d, plan);
    }
    finish_update(&update, any_source_change, target_in_sync, d, plan);
}

/// A field changed on both sides since base: settled by a scope lock's
/// holder, else by the field's conflict policy.
fn decide_conflict(u: &Update<'_, '_>, f: &Conflicted<'_>, d: &mut Decisions, plan: &mut BatchPlan) {
    let (ctx, source, target) = (u.ctx, u.source, u.source.other());
    let policy = ctx.config.policy_of(f.left);
    let (left_version, right_version) = match source {
        Side::Left => (u.record.version.as_deref(), u.counterpart.version.as_deref()),
        Side::Right => (u.counterpart.version.as_deref(), u.record.version.as_deref()),
    };
    plan.counts.conflicts += 1;
    // While a scope is locked, a conflict of plan data goes to the holder (L2).
    let lock = ctx.holder_wins(source, f.left).or_else(|| ctx.holder_overrules(source, f.left).filter(|l| l.holder_side.is_some()));
    let decision = match &lock {
        Some(lock) => Decision::Wins(lock.holder_side.unwrap_or(source)),
        None => policy::decide(policy, left_version, right_version),
    };
    let t_name = f.t_name;
    match decision {
        Decision::Wins(winner) if winner == source => {
            d.keep_source_base(f.s_name, f.raw);
            d.writes.push((t_name.to_owned(), Some(f.current.clone()), f.new_value.clone()));
            d.base_target.push((t_name.to_owned(), f.new_value.clone()));
            if let Some(lock) = &lock {
                d.rules_used.push(format!("{t_name}: conflict, {} ({source} wins)", lock.describe()));
                d.warning = Some(format!("the {target} change to {t_name} was not applied: {}; the {target} side must refresh", lock.describe()));
            } else {
                d.rules_used.push(format!("{t_name}: conflict, policy {} ({source} wins)", policy.as_str()));
            }
            if lock.is_none() && policy == ConflictPolicy::FirstWriterWins && ctx.config.category_of(f.left) != Some(DataCategory::Actuals) {
                d.warning = Some(format!("the {target} change to {t_name} was rejected: the {source} side changed it first; the {target} side must refresh"));
            }
        }
        Decision::Wins(winner) => {
            // The winner's value flows when the other side's changes are
            // processed; the conflict is counted there.
            plan.counts.conflicts -= 1;
            let rejected = if policy == ConflictPolicy::FirstWriterWins {
                format!("; the {source} change was rejected because the {winner} side changed it first: the {source} side must refresh")
            } else {
                String::new()
            };
            d.lost.push((
                // Listed here for this side's history, counted once, where it is decided.
                format!("{t_name}: lost the conflict, policy {}", policy.as_str()),
                format!(
                    "`{}` changed on both sides; the {winner} value {} replaces the {source} value {}{rejected}",
                    f.left,
                    f.current.to_text(),
                    f.new_value.to_text(),
                ),
            ));
        }
        Decision::KeepBoth => keep_both(u, f, d, plan),
        Decision::Park => park(u, f, plan),
    }
}

/// The mirror policy: each side keeps its value; each side's mirror field
/// (where it has one) gets the other's.
fn keep_both(u: &Update<'_, '_>, f: &Conflicted<'_>, d: &mut Decisions, plan: &mut BatchPlan) {
    let (ctx, source, target) = (u.ctx, u.source, u.source.other());
    d.keep_source_base(f.s_name, f.raw);
    d.base_target.push((f.t_name.to_owned(), f.current.clone()));
    if let Some(mirror_field) = ctx.config.mirror_field(f.left, target) {
        d.writes.push((mirror_field.to_owned(), u.counterpart.get(mirror_field).cloned(), f.new_value.clone()));
    }
    if let Some(mirror_field) = ctx.config.mirror_field(f.left, source).map(str::to_owned) {
        let (left_id, right_id) = side_ids(source, &u.record.id, Some(&u.counterpart.id));
        plan.reverse.push((
            Change {
                origin: ctx.origin(target, u.counterpart),
                target_id: Some(u.record.id.clone()),
                expected_version: None,
                kind: ChangeKind::Upsert,
                repeated: false,
                on_behalf_of: None,
                fields: vec![Field { name: mirror_field.clone(), value: f.current.clone() }],
            },
            HistoryEntry {
                left_id,
                right_id,
                action: "update",
                target: Some(source),
                origin: Some(target),
                fields: vec![(mirror_field.clone(), u.record.get(&mirror_field).cloned(), f.current.clone())],
                rule: format!("{}: conflict, policy mirror (the {target} value kept in {mirror_field})", f.s_name),
                message: None,
                label: None,
            },
        ));
    }
    d.rules_used.push(format!("{}: conflict, policy mirror (each side keeps its value)", f.t_name));
}

/// The manual policy: the conflict waits for an admin, once per link and field.
fn park(u: &Update<'_, '_>, f: &Conflicted<'_>, plan: &mut BatchPlan) {
    let (ctx, source) = (u.ctx, u.source);
    let key = (u.link.link_id, f.left.to_owned());
    let first_time = ctx.parked.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone());
    if !first_time {
        plan.counts.conflicts -= 1;
        return;
    }
    let (left_value, right_value) = match source {
        Side::Left => (f.new_value.clone(), f.current.clone()),
        Side::Right => (f.current.clone(), f.new_value.clone()),
    };
    plan.commit.conflicts.push(ConflictEntry { link: LinkRef::Existing(u.link.link_id), field: f.left.to_owned(), left_value, right_value });
    if ctx.open.contains(&key) {
        // Still waiting for an admin: keep its values current, say nothing new.
        plan.counts.conflicts -= 1;
        return;
    }
    let (left_id, right_id) = side_ids(source, &u.record.id, Some(&u.counterpart.id));
    plan.commit.history.push(HistoryEntry {
        left_id,
        right_id,
        action: "conflict",
        target: None,
        origin: Some(source),
        fields: vec![(f.left.to_owned(), Some(f.current.clone()), f.new_value.clone())],
        rule: "policy manual".into(),
        message: Some(format!("`{}` changed on both sides; parked until an admin resolves it (`synchost conflicts list`)", f.left)),
        label: None,
    });
}

/// The record's decisions become the batch's: the lost conflicts' history,
/// the warning, and either a write to make or only bases to move.
fn finish_update(u: &Update<'_, '_>, any_source_change: bool, target_in_sync: bool, d: Decisions, plan: &mut BatchPlan) {
    let (ctx, source, target, record) = (u.ctx, u.source, u.source.other(), u.record);
    let Decisions { mut writes, base_source, base_target, rules_used, lost, warning } = d;
    let (left_id, right_id) = side_ids(source, &record.id, Some(&u.counterpart.id));
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
            plan.commit.links.push(link_write(u.link.link_id, source, record.version.clone(), None, base_source, base_target));
        } else if !any_source_change && record.version.is_some() {
            // A new version with nothing new in the synced fields (a column
            // that is not synced changed): remembered, so that the record is
            // passed over until it changes again.
            plan.commit.links.push(link_write(u.link.link_id, source, record.version.clone(), None, Vec::new(), Vec::new()));
        }
        plan.commit.cleared_failures.push((source, record.id.clone()));
        return;
    }
    let fields = writes.iter().map(|(name, _, value)| Field { name: name.clone(), value: value.clone() }).collect();
    plan.pending.push(Pending {
        label: label_of(record),
        source_id: record.id.clone(),
        source_version: record.version.clone(),
        link: Some(u.link.clone()),
        change: change_of(ctx, source, record, u.counterpart, ChangeKind::Upsert, fields),
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
