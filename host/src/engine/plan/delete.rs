//! A linked record deleted on its side: the delete on the other, or,
//! where the counterpart changed since, the record made anew.

use super::super::policy::{self, Decision};
use super::super::{side_ids, BatchPlan, Ctx, Pending};
use super::{change_of, conflict_entry, flow_name, label_of};
use crate::config::{ConflictPolicy, DeletePolicy, Side};
use crate::model::{ChangeKind, Record, Value};
use crate::state::{Base, Commit, ConflictEntry, HistoryEntry, Link, LinkRef, LinkWrite};

/// A linked source record was deleted: propagate by the delete policy; an
/// edit on the other side since base makes it a conflict.
pub(in crate::engine) fn plan_delete(ctx: &Ctx<'_>, source: Side, record: &Record, link: &Link, base: &Base, counterpart: Option<&Record>, plan: &mut BatchPlan) {
    let target = source.other();
    let (left_id, right_id) = side_ids(source, &record.id, Some(link.id_on(target)));
    let source_deleted_state = source.deleted_state();
    let note = |action: &'static str, rule: String, message: String, state: &'static str, plan: &mut BatchPlan| {
        plan.commit.history.push(HistoryEntry { action, ..conflict_entry(&left_id, &right_id, source, rule, message) });
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
    let propagate = propagation(ctx.config.deletes, ctx.def(source).soft_delete, ctx.def(target).soft_delete, target);
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

/// Whether a delete reaches the other side under the pipeline's delete
/// policy, given which sides' entities have soft delete; else why not.
fn propagation(deletes: DeletePolicy, source_soft: bool, target_soft: bool, target: Side) -> Result<(), String> {
    match deletes {
        DeletePolicy::Ignore => Err("deletes = \"ignore\"".to_owned()),
        DeletePolicy::Soft if !target_soft || !source_soft => Err(format!(
            "deletes propagate as tombstones only when both sides have soft delete; the {target} entity has {}; set deletes = \"hard\" to remove its rows",
            if target_soft { "it" } else { "none" }
        )),
        _ => Ok(()),
    }
}

/// Whether a record of `kept` whose edit won over the other side's delete
/// can be made anew there: deletes are not ignored, and `kept` may create.
pub(in crate::engine) fn can_make_anew(ctx: &Ctx<'_>, kept: Side) -> bool {
    ctx.config.deletes != DeletePolicy::Ignore && ctx.config.create.allows(kept)
}

/// The edit won over a delete: the kept record is unlinked and driven
/// through the engine again at the end of this run, as a new record, so the
/// two sides hold the same again.
pub(in crate::engine) fn make_anew(commit: &mut Commit, link_id: i64, kept: Side, kept_id: String) {
    commit.unlinks.push(link_id);
    commit.queued_intents.push((kept, kept_id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_propagates_as_a_tombstone_only_between_two_sides_with_soft_delete() {
        assert_eq!(propagation(DeletePolicy::Soft, true, true, Side::Right), Ok(()));
        let refused = propagation(DeletePolicy::Soft, true, false, Side::Right).unwrap_err();
        assert!(refused.contains("the right entity has none") && refused.contains("deletes = \"hard\""), "{refused}");
        assert!(propagation(DeletePolicy::Soft, false, true, Side::Left).unwrap_err().contains("the left entity has it"));
        assert_eq!(propagation(DeletePolicy::Hard, false, false, Side::Left), Ok(()));
        assert_eq!(propagation(DeletePolicy::Ignore, true, true, Side::Left), Err("deletes = \"ignore\"".to_owned()));
    }
}
