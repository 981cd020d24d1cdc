//! Saves that put back what a person approved (the plans category of the
//! scheduling seed: first writer wins, the later writer is told to refresh).
//!
//! A planner who saves a copy of the plan opened before an approval was
//! written puts the old values back. Read as the plan's change, that would
//! undo the team's approved change in the tracker without anyone deciding
//! so. Such a change is held in the approval queue instead, named for what
//! it is: approving it sends the old values on (the planner meant it);
//! rejecting it writes the approved values into the plan again.

use super::approval::Parked;
use super::{BatchPlan, Ctx, Engine, RunError};
use crate::config::Side;
use crate::model::Value;
use crate::state::{decode, encode, Queued};

/// A field a change puts back to its value before an approval.
#[derive(Debug, PartialEq)]
pub struct Reverted {
    pub field: String,
    pub approved: Value,
    pub back_to: Value,
}

/// The fields of `proposed` (source-side names and new values) that go back
/// to the value an approval replaced, with the approval's values
/// (`approved`: name, value before, value approved). Pure.
pub fn reverted(approved: &[(String, Option<Value>, Value)], proposed: &[(String, Value)]) -> Vec<Reverted> {
    approved
        .iter()
        .filter_map(|(field, before, after)| {
            let (_, now) = proposed.iter().find(|(name, _)| name == field)?;
            let before = before.clone().unwrap_or(Value::Null);
            (*now == before && *now != *after).then(|| Reverted { field: field.clone(), approved: after.clone(), back_to: before })
        })
        .collect()
}

impl Engine {
    /// Holds the changes of `source` that put back approved values: each
    /// leaves the batch's writes for the approval queue.
    pub(super) fn hold_reverts_of_approvals(&self, ctx: &Ctx<'_>, source: Side, plan: &mut BatchPlan) -> Result<(), RunError> {
        let approved_side = source.other();
        if !ctx.config.approval.as_ref().is_some_and(|a| a.applies_to(approved_side)) {
            return Ok(());
        }
        let mut kept = Vec::with_capacity(plan.pending.len());
        for mut pending in std::mem::take(&mut plan.pending) {
            let Some(link) = pending.link.as_ref() else {
                kept.push(pending);
                continue;
            };
            let approval_source = link.id_on(approved_side).to_owned();
            let Some(last) = self.state.last_applied_approval(ctx.name, approved_side, &approval_source)? else {
                kept.push(pending);
                continue;
            };
            let Ok(approved) = serde_json::from_str::<Parked>(&last.change) else {
                kept.push(pending);
                continue;
            };
            let approved_fields: Vec<(String, Option<Value>, Value)> =
                approved.history.fields.iter().map(|(n, old, new)| (n.clone(), old.as_ref().map(decode), decode(new))).collect();
            let found = reverted(&approved_fields, &pending.base_source);
            if found.is_empty() {
                kept.push(pending);
                continue;
            }
            let by = last.decided_by.as_deref().unwrap_or("?");
            let when = last.applied_at.as_deref().unwrap_or("").get(..16).unwrap_or("");
            let list: Vec<String> = found.iter().map(|r| format!("{}: {} -> {}", r.field, r.approved.to_text(), r.back_to.to_text())).collect();
            let mut parked = Parked::from_pending(&pending);
            parked.restore = found.iter().map(|r| (r.field.clone(), encode(&r.approved))).collect();
            let summary = format!(
                "puts back what {by} approved on {when} ({}), saved from a copy older than the approval: approve to send it on, reject to write the approved values again",
                list.join(", ")
            );
            let change = serde_json::to_string(&parked).expect("a parked change serialises");
            let queued = self.state.queue_approval(ctx.name, source, &pending.source_id, pending.change.target_id.as_deref(), &summary, &change, pending.label.as_deref())?;
            if matches!(queued, Queued::New(_) | Queued::Replaced(_)) {
                plan.counts.queued += 1;
            }
            let id = match queued {
                Queued::New(id) | Queued::Replaced(id) | Queued::AlreadyRejected(id) | Queued::AlreadyApproved(id) => id,
            };
            pending.history.action = "queue";
            pending.history.message = Some(format!("held (approvals show {id}): it puts back values approved by {by}; the {source} side must refresh"));
            plan.commit.history.push(pending.history);
        }
        plan.pending = kept;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved() -> Vec<(String, Option<Value>, Value)> {
        vec![
            ("finish".into(), Some(Value::Date("2026-11-04".into())), Value::Date("2026-11-05".into())),
            ("resource_id".into(), None, Value::Integer(2)),
        ]
    }

    #[test]
    fn a_value_put_back_to_before_the_approval_is_a_revert() {
        let found = reverted(&approved(), &[("finish".into(), Value::Date("2026-11-04".into())), ("name".into(), Value::Text("x".into()))]);
        assert_eq!(found, vec![Reverted { field: "finish".into(), approved: Value::Date("2026-11-05".into()), back_to: Value::Date("2026-11-04".into()) }]);
        // An assignment the approval added, taken off again.
        assert_eq!(reverted(&approved(), &[("resource_id".into(), Value::Null)]).len(), 1);
    }

    #[test]
    fn a_new_value_or_another_field_is_not_a_revert() {
        assert!(reverted(&approved(), &[("finish".into(), Value::Date("2026-11-09".into()))]).is_empty());
        assert!(reverted(&approved(), &[("name".into(), Value::Text("Cabling".into()))]).is_empty());
        assert!(reverted(&[], &[("finish".into(), Value::Date("2026-11-04".into()))]).is_empty());
    }
}
