//! Deletes in systems that leave no trace of them: a record removed outright
//! (no tombstone) never appears in a change feed, so its counterpart would be
//! kept forever. After a run's passes, the linked records of such a side are
//! looked up by id (`fetch` leaves out ids it does not know); each one gone
//! goes through the engine as a delete, and the pipeline's delete policy
//! decides what happens on the other side. The lookup costs a fetch of every
//! linked id of the side, so it runs at most every `deletes_check` of the
//! pipeline.

use super::{BatchPlan, Ctx, Engine, Pending, RunError, RunReport};
use crate::config::{DeletePolicy, Side};
use crate::model::{Outcome, Record};
use crate::state::HistoryEntry;

/// Ids per fetch.
const CHUNK: usize = 500;

/// Whether a side's deletes can only be found by looking records up: its
/// entity keeps no tombstones, and deletes are not ignored anyway. Pure.
pub fn deletes_leave_no_trace(soft_delete: bool, deletes: DeletePolicy) -> bool {
    !soft_delete && deletes != DeletePolicy::Ignore
}

impl Engine {
    /// Looks up the linked records of each side whose deletes leave no trace,
    /// when the pipeline's `deletes_check` has passed, and plans a delete for
    /// each that is gone.
    pub(super) async fn find_vanished(&self, ctx: &Ctx<'_>, report: &mut RunReport) -> Result<(), RunError> {
        for side in [Side::Left, Side::Right] {
            if !deletes_leave_no_trace(ctx.def(side).soft_delete, ctx.config.deletes) || !self.presence_due(ctx, side)? {
                continue;
            }
            // Links this run made were just written or read: their records are there.
            let mut after = 0;
            loop {
                let (last, chunk) = self.state.live_linked_ids(ctx.name, side, ctx.run_id, after, CHUNK as u32)?;
                if chunk.is_empty() {
                    break;
                }
                after = last;
                let chunk = chunk.as_slice();
                let present: std::collections::HashSet<String> = ctx.fetch(side, chunk).await?.into_iter().filter(|r| !r.deleted).map(|r| r.id).collect();
                let gone: Vec<Record> = chunk
                    .iter()
                    .filter(|id| !present.contains(*id))
                    .map(|id| Record { id: id.clone(), version: None, deleted: true, fields: Vec::new(), born: None })
                    .collect();
                if gone.is_empty() {
                    continue;
                }
                tracing::info!(pipeline = ctx.name, side = side.as_str(), count = gone.len(), "Linked records deleted outright");
                let plan = self.plan_batch(ctx, side, &gone).await?;
                self.finish_batch(ctx, side, plan, report).await?;
            }
            if ctx.overlay.is_none() {
                self.state.note_presence_check(ctx.name, side)?;
            }
        }
        Ok(())
    }

    /// Whether `deletes_check` has passed since the last look-up (by any
    /// process: the time is kept in the state).
    fn presence_due(&self, ctx: &Ctx<'_>, side: Side) -> Result<bool, RunError> {
        let last = self.state.presence_checked_at(ctx.name, side)?;
        let every = chrono::Duration::from_std(ctx.config.deletes_check.0).unwrap_or(chrono::Duration::MAX);
        Ok(last.is_none_or(|at| chrono::Utc::now() - at >= every))
    }
}

/// A history entry saying why a linked record's change went nowhere.
/// Whether an update found its target deleted meanwhile (between the read
/// and the write), where the edit wins over the delete and the record can
/// be made anew there: a delete and an edit at once, as `plan_delete` settles
/// them when it sees both. Pure.
pub(super) fn gone_while_written(ctx: &Ctx<'_>, source: Side, pending: &Pending, outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Rejected(problem) if problem.code == "not-found")
        && pending.link.is_some()
        && pending.change.target_id.is_some()
        && pending.change.kind == crate::model::ChangeKind::Upsert
        && super::plan::can_make_anew(ctx, source)
}

/// The edited record is made anew on the side that deleted it: unlinked,
/// and driven through the next run as a new record.
pub(super) fn made_anew(source: Side, pending: Pending, plan: &mut BatchPlan) {
    let target = source.other();
    let link = pending.link.expect("checked by gone_while_written");
    plan.counts.conflicts += 1;
    plan.commit.history.push(HistoryEntry {
        action: "conflict",
        target: None,
        fields: Vec::new(),
        rule: format!("the {source} edit wins over the {target} delete"),
        message: Some(format!("the {target} record {} was deleted while this change was written; the record is made anew on the {target} side", link.id_on(target))),
        ..pending.history
    });
    super::plan::make_anew(&mut plan.commit, link.link_id, source, pending.source_id);
}

/// The id a link keeps for a record that is gone while a new record took
/// its id: never an id of the system, so never looked up. Pure.
pub(super) fn retired_id(id: &str, born: &str) -> String {
    format!("{id} (gone, born {born})")
}

/// Whether an id is one kept for a record that is gone (`retired_id`). Pure.
pub(super) fn is_retired_id(id: &str) -> bool {
    id.ends_with(')') && id.contains(" (gone, born ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_retired_id_is_told_from_every_id_a_system_gives() {
        let kept = retired_id("6063", "2026-12-01T23:49:01Z");
        assert!(is_retired_id(&kept));
        assert!(!is_retired_id("6063") && !is_retired_id("a (b)") && !is_retired_id("entries/right/6063"));
    }

    use super::*;

    #[test]
    fn only_sides_without_tombstones_are_looked_up() {
        assert!(deletes_leave_no_trace(false, DeletePolicy::Hard));
        assert!(deletes_leave_no_trace(false, DeletePolicy::Soft));
        assert!(!deletes_leave_no_trace(true, DeletePolicy::Hard), "tombstones come through the feed");
        assert!(!deletes_leave_no_trace(false, DeletePolicy::Ignore), "nothing would be done with them");
    }
}
