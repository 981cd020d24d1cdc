//! Deletes in systems that leave no trace of them: a record removed outright
//! (no tombstone) never appears in a change feed, so its counterpart would be
//! kept forever. After a run's passes, the linked records of such a side are
//! looked up by id (`fetch` leaves out ids it does not know); each one gone
//! goes through the engine as a delete, and the pipeline's delete policy
//! decides what happens on the other side. The lookup costs a fetch of every
//! linked id of the side, so it runs at most every `deletes_check` of the
//! pipeline.

use std::time::Instant;

use super::{Ctx, Engine, RunError, RunReport};
use crate::config::{DeletePolicy, Side};
use crate::runtime::bindings::Record;

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
            if !deletes_leave_no_trace(ctx.def(side).soft_delete, ctx.config.deletes) || !self.presence_due(ctx, side) {
                continue;
            }
            let linked = self.state.live_linked_ids(ctx.name, side)?;
            for chunk in linked.chunks(CHUNK) {
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
            self.presence_checked.lock().unwrap_or_else(|e| e.into_inner()).insert((ctx.name.to_owned(), side), Instant::now());
        }
        Ok(())
    }

    fn presence_due(&self, ctx: &Ctx<'_>, side: Side) -> bool {
        let checked = self.presence_checked.lock().unwrap_or_else(|e| e.into_inner());
        checked.get(&(ctx.name.to_owned(), side)).is_none_or(|at| at.elapsed() >= ctx.config.deletes_check.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sides_without_tombstones_are_looked_up() {
        assert!(deletes_leave_no_trace(false, DeletePolicy::Hard));
        assert!(deletes_leave_no_trace(false, DeletePolicy::Soft));
        assert!(!deletes_leave_no_trace(true, DeletePolicy::Hard), "tombstones come through the feed");
        assert!(!deletes_leave_no_trace(false, DeletePolicy::Ignore), "nothing would be done with them");
    }
}
