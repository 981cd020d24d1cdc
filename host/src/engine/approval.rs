//! The approval stage (P2): changes flowing in a pipeline's approval
//! direction are parked in the queue instead of written; a person approves or
//! rejects each; the engine then carries the decision out at the end of the
//! pipeline's next run (or at once, from the CLI): an approved change is
//! written as the engine would have written it, a rejection is noted on the
//! source record (who, which values, why) and those values are not proposed
//! again.

use serde::{Deserialize, Serialize};

use super::plan::{link_write, record_outcome};
use super::{BatchPlan, Ctx, Engine, Mode, Pending, RunError, RunReport};
use crate::config::Side;
use crate::model::{Change, ChangeKind, Field, Outcome, Record, Value};
use crate::state::{decode, encode, ApprovalRow, Commit, HistoryEntry, Queued};

/// A parked change: everything `record_outcome` needs once it is written.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Parked {
    source_version: Option<String>,
    link_id: Option<i64>,
    origin: String,
    target_id: Option<String>,
    expected_version: Option<String>,
    delete: bool,
    fields: Vec<(String, serde_json::Value)>,
    base_source: Vec<(String, serde_json::Value)>,
    base_target: Vec<(String, serde_json::Value)>,
    pub history: ParkedHistory,
    link_state: Option<String>,
    target_in_sync: bool,
    /// For a change that puts back approved values (`reverts`): the approved
    /// values (source names), written to the source again if it is rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore: Vec<(String, serde_json::Value)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ParkedHistory {
    left_id: Option<String>,
    right_id: Option<String>,
    action: String,
    /// Target names: (field, old value, new value).
    pub fields: Vec<(String, Option<serde_json::Value>, serde_json::Value)>,
    rule: String,
    message: Option<String>,
}

fn values(list: &[(String, crate::model::Value)]) -> Vec<(String, serde_json::Value)> {
    list.iter().map(|(n, v)| (n.clone(), encode(v))).collect()
}

fn decoded(list: &[(String, serde_json::Value)]) -> Vec<(String, crate::model::Value)> {
    list.iter().map(|(n, v)| (n.clone(), decode(v))).collect()
}

/// One field of a parked change, as a person compares it.
#[derive(Debug, Clone, Serialize)]
pub struct FieldChange {
    /// The field, in the target's names.
    pub field: String,
    /// The value on the target now; `None` for a new record.
    pub before: Option<serde_json::Value>,
    pub after: serde_json::Value,
}

/// The values a waiting change replaces and writes, field by field.
pub fn field_changes(row: &ApprovalRow) -> Vec<FieldChange> {
    let Ok(parked) = serde_json::from_str::<Parked>(&row.change) else { return Vec::new() };
    parked
        .history
        .fields
        .iter()
        .map(|(field, before, after)| FieldChange { field: field.clone(), before: before.as_ref().map(|v| decode(v).to_json()), after: decode(after).to_json() })
        .collect()
}

/// History actions are static names; a parked one maps back to its name.
fn action(name: &str) -> &'static str {
    match name {
        "create" => "create",
        "delete" => "delete",
        _ => "update",
    }
}

impl Parked {
    pub(super) fn from_pending(pending: &Pending) -> Parked {
        let h = &pending.history;
        Parked {
            source_version: pending.source_version.clone(),
            link_id: pending.link.as_ref().map(|l| l.link_id),
            origin: pending.change.origin.clone(),
            target_id: pending.change.target_id.clone(),
            expected_version: pending.change.expected_version.clone(),
            delete: pending.change.kind == ChangeKind::Delete,
            fields: pending.change.fields.iter().map(|f| (f.name.clone(), encode(&f.value))).collect(),
            base_source: values(&pending.base_source),
            base_target: values(&pending.base_target),
            history: ParkedHistory {
                left_id: h.left_id.clone(),
                right_id: h.right_id.clone(),
                action: h.action.to_owned(),
                fields: h.fields.iter().map(|(n, old, new)| (n.clone(), old.as_ref().map(encode), encode(new))).collect(),
                rule: h.rule.clone(),
                message: h.message.clone(),
            },
            link_state: pending.link_state.map(str::to_owned),
            target_in_sync: pending.target_in_sync,
            restore: Vec::new(),
        }
    }

    /// What the change does, for the person deciding.
    pub(super) fn summary(&self) -> String {
        let changes: Vec<String> = self
            .history
            .fields
            .iter()
            .map(|(name, old, new)| match old {
                Some(old) => format!("{name}: {} -> {}", decode(old).to_text(), decode(new).to_text()),
                None => format!("{name} = {}", decode(new).to_text()),
            })
            .collect();
        match self.history.action.as_str() {
            "create" => format!("new record: {}", changes.join(", ")),
            "delete" => "delete the record".to_owned(),
            _ => changes.join(", "),
        }
    }

    fn into_pending(self, source: Side, link: Option<crate::state::Link>, source_id: String) -> Pending {
        Pending {
            label: None,
            source_id,
            source_version: self.source_version,
            link,
            change: Change {
                origin: self.origin,
                target_id: self.target_id,
                expected_version: self.expected_version,
                kind: if self.delete { ChangeKind::Delete } else { ChangeKind::Upsert },
                fields: self.fields.iter().map(|(n, v)| Field { name: n.clone(), value: decode(v) }).collect(),
                repeated: false,
                on_behalf_of: None,
            },
            history: HistoryEntry {
                left_id: self.history.left_id,
                right_id: self.history.right_id,
                action: action(&self.history.action),
                target: Some(source.other()),
                origin: Some(source),
                fields: self.history.fields.iter().map(|(n, old, new)| (n.clone(), old.as_ref().map(decode), decode(new))).collect(),
                rule: self.history.rule,
                message: self.history.message,
                label: None,
            },
            base_source: decoded(&self.base_source),
            base_target: decoded(&self.base_target),
            link_state: match self.link_state.as_deref() {
                Some("left-deleted") => Some("left-deleted"),
                Some("right-deleted") => Some("right-deleted"),
                Some("deleted") => Some("deleted"),
                _ => None,
            },
            target_in_sync: self.target_in_sync,
        }
    }
}

/// A write of `fields` to the record an approval's change came from (a
/// rejection's note, approved values written back).
fn change_of_source(pipeline: &str, row: &ApprovalRow, fields: Vec<Field>) -> Change {
    Change {
        origin: format!("{pipeline}/approval/{}", row.id),
        target_id: Some(row.source_id.clone()),
        expected_version: None,
        kind: ChangeKind::Upsert,
        repeated: false,
        // Made in the name of whoever decided, where the connector can (P2).
        on_behalf_of: row.decided_by.as_deref().map(|by| crate::state::users::person(by).to_owned()),
        fields,
    }
}

/// ` "Network cabling"`: the record's name as the approval knows it.
fn named(row: &ApprovalRow) -> String {
    row.label.as_deref().map(|l| format!(" {l:?}")).unwrap_or_default()
}

/// Whether the target record still holds, in every field a parked change
/// sets, the value it held when the change was parked. Pure.
fn untouched_since_parked(fields: &[(String, Option<Value>, Value)], current: &Record) -> bool {
    let or_null = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
    fields.iter().all(|(name, before, _)| or_null(current.get(name)) == or_null(before.as_ref()))
}

/// Splits a change of a linked record into the part written at once (the
/// fields exempt from approval, by their target and source names) and the
/// part that waits. Pure.
pub(super) fn split_exempt(pending: Pending, target_names: &[String], source_names: &[String]) -> (Option<Pending>, Option<Pending>) {
    if target_names.is_empty() || pending.link.is_none() || pending.change.kind == ChangeKind::Delete {
        return (None, Some(pending));
    }
    let exempt = |name: &str| target_names.iter().any(|t| t == name);
    let (now_fields, waiting_fields): (Vec<Field>, Vec<Field>) = pending.change.fields.iter().cloned().partition(|f| exempt(&f.name));
    match (now_fields.is_empty(), waiting_fields.is_empty()) {
        (true, _) => return (None, Some(pending)),
        (false, true) => return (Some(pending), None),
        _ => {}
    }
    let mut now = pending.clone();
    let mut waits = pending;
    now.change.fields = now_fields;
    waits.change.fields = waiting_fields;
    now.history.fields.retain(|(name, _, _)| exempt(name));
    waits.history.fields.retain(|(name, _, _)| !exempt(name));
    now.base_target.retain(|(name, _)| exempt(name));
    waits.base_target.retain(|(name, _)| !exempt(name));
    now.base_source.retain(|(name, _)| source_names.contains(name));
    waits.base_source.retain(|(name, _)| !source_names.contains(name));
    (Some(now), Some(waits))
}

impl Engine {
    /// Parks a batch's changes from `source` in the approval queue, when the
    /// pipeline requires approval for them; they leave the batch's writes.
    pub(super) fn park_for_approval(&self, ctx: &Ctx<'_>, source: Side, plan: &mut BatchPlan) -> Result<(), RunError> {
        let Some(approval) = ctx.config.approval.as_ref().filter(|a| a.applies_to(source)) else {
            return Ok(());
        };
        let target_names: Vec<String> = approval.exempt.iter().map(|f| ctx.config.name_on(source.other(), f).to_owned()).collect();
        let source_names: Vec<String> = approval.exempt.iter().map(|f| ctx.config.name_on(source, f).to_owned()).collect();
        let mut written_at_once = Vec::new();
        for pending in std::mem::take(&mut plan.pending) {
            let (now, waits) = split_exempt(pending, &target_names, &source_names);
            written_at_once.extend(now);
            let Some(mut pending) = waits else { continue };
            let parked = Parked::from_pending(&pending);
            let summary = parked.summary();
            let change = serde_json::to_string(&parked).expect("a parked change serialises");
            let queued = self.state.queue_approval(ctx.name, source, &pending.source_id, pending.change.target_id.as_deref(), &summary, &change, pending.label.as_deref())?;
            if matches!(queued, Queued::New(_) | Queued::Replaced(_)) {
                plan.counts.queued += 1;
            }
            let message = match queued {
                Queued::New(id) => format!("waits for approval (approvals show {id})"),
                Queued::Replaced(id) => format!("replaces the change waiting for approval ({id})"),
                Queued::AlreadyRejected(id) => format!("was rejected before ({id}); not proposed again"),
                Queued::AlreadyApproved(id) => format!("is approved ({id}) and waits to be written"),
            };
            pending.history.action = "queue";
            pending.history.message = Some(message);
            plan.commit.history.push(pending.history);
        }
        plan.pending = written_at_once;
        Ok(())
    }

    /// Records a person's decision on a queued change and carries it out at
    /// once; returns what was done.
    pub async fn decide_approval(&self, id: i64, revision: Option<i64>, approve: bool, by: &str, comment: Option<&str>) -> Result<String, RunError> {
        let pipeline = self.record_decision(id, revision, approve, by, comment)?;
        let ctx = self.context(&pipeline, Mode::Apply).await?;
        let mut report = RunReport::default();
        self.carry_out_decisions(&ctx, &mut report).await?;
        // No host runs (it would carry the decision out itself): what waited
        // for a record this approval linked goes now, not at the next resubmission.
        for dependent in self.referencing(&pipeline) {
            if self.take_resubmit_request(&dependent) {
                self.resubmit_failed(&dependent, None, "approval linked").await?;
            }
        }
        let row = self.state.approval(id)?.expect("the approval exists");
        Ok(row.outcome.unwrap_or_else(|| "carried out on the pipeline's next run".to_owned()))
    }

    /// Records a decision (claimed once: a decided approval is not decided
    /// again) without carrying it out; the pipeline's next run does that.
    /// Returns the approval's pipeline.
    ///
    /// `revision` is the one the person saw; without it, only an approval
    /// never revised may be decided, so nobody approves a change they have
    /// not seen.
    pub fn record_decision(&self, id: i64, revision: Option<i64>, approve: bool, by: &str, comment: Option<&str>) -> Result<String, RunError> {
        let row = self.state.approval(id)?.ok_or_else(|| RunError::Setup {
            message: format!("there is no approval {id}"),
            hint: "list the queue with `synchost approvals list`".into(),
        })?;
        if row.status == "pending" && revision.unwrap_or(1) != row.revision {
            let seen = match revision {
                Some(seen) => format!("changed after revision {seen}"),
                None => "was revised since it was first queued".into(),
            };
            return Err(RunError::Setup {
                message: format!("approval {id} {seen}: it is at revision {} now ({})", row.revision, row.summary),
                hint: format!("look at it again with `synchost approvals show {id}`, then decide `{id}@{}`", row.revision),
            });
        }
        if row.status == "withdrawn" {
            return Err(RunError::Setup {
                message: format!("approval {id} was {}", row.outcome.as_deref().unwrap_or("withdrawn")),
                hint: "nothing is left to decide; list the pending ones with `synchost approvals list`".into(),
            });
        }
        if !self.state.decide_approval(id, row.revision, approve, by, comment)? {
            return Err(RunError::Setup {
                message: format!("approval {id} was already decided ({} by {})", row.status, row.decided_by.unwrap_or_default()),
                hint: "list the pending ones with `synchost approvals list`".into(),
            });
        }
        let verb = if approve { "approved" } else { "rejected" };
        let comment_text = comment.map(|c| format!(" ({c})")).unwrap_or_default();
        self.state.event("info", Some(&row.pipeline), None, &format!("approval {id} {verb} by {by}: {}{comment_text}", row.summary), None)?;
        Ok(row.pipeline)
    }

    /// Writes approved changes and notes rejections, for every decision of the
    /// pipeline not carried out yet (the third kind of sync in a run, P1).
    pub(super) async fn carry_out_decisions(&self, ctx: &Ctx<'_>, report: &mut RunReport) -> Result<(), RunError> {
        let Some(approval) = &ctx.config.approval else { return Ok(()) };
        let mut linked_new = false;
        for row in self.state.undone_decisions(ctx.name)? {
            let Some(source) = Side::parse(&row.side) else { continue };
            let parked: Parked = match serde_json::from_str(&row.change) {
                Ok(parked) => parked,
                Err(error) => {
                    self.state.approval_outcome(row.id, true, &format!("not carried out: the queued change cannot be read ({error})"))?;
                    continue;
                }
            };
            let link = self.state.links_by_ids(ctx.name, source, std::slice::from_ref(&row.source_id))?.remove(&row.source_id);
            if row.status == "approved" {
                linked_new |= link.is_none();
                self.write_approved(ctx, source, &row, parked, link, report).await?;
            } else {
                self.note_rejection(ctx, source, &row, &parked, link, approval.note_field.as_deref()).await?;
            }
        }
        if linked_new {
            self.request_resubmit(self.referencing(ctx.name));
        }
        Ok(())
    }

    async fn write_approved(&self, ctx: &Ctx<'_>, source: Side, row: &ApprovalRow, parked: Parked, link: Option<crate::state::Link>, report: &mut RunReport) -> Result<(), RunError> {
        let target = source.other();
        let mut pending = parked.into_pending(source, link, row.source_id.clone());
        pending.history.rule = format!("{}; approved by {}", pending.history.rule, row.decided_by.as_deref().unwrap_or("?"));
        // The target's own history names the approver where its connector can (P2).
        pending.change.on_behalf_of = row.decided_by.as_deref().map(|by| crate::state::users::person(by).to_owned());
        // Written like any change: an approved create is made at most once,
        // even when the host stops between the write and this commit.
        let mut commit = Commit::default();
        let mut outcome = self.write_pending(ctx, source, std::slice::from_mut(&mut pending), &mut commit).await?.pop();
        // The record changed since the change was parked, but none of the
        // fields it sets (our own write of an exempt field, someone's edit of
        // another field): conflicts are per field, so it is written over that.
        if let Some(Outcome::Conflict(current)) = &outcome {
            if untouched_since_parked(&pending.history.fields, current) {
                pending.change.expected_version = current.version.clone();
                outcome = self.write_pending(ctx, source, std::slice::from_mut(&mut pending), &mut commit).await?.pop();
            }
        }
        let (done, message) = match &outcome {
            Some(Outcome::Applied(applied)) => (true, format!("written to the {target} record {}{}", applied.id, named(row))),
            Some(Outcome::Rejected(problem)) if problem.retryable => (false, format!("not written yet ({}); tried again on the next run", problem.message)),
            Some(Outcome::Rejected(problem)) => (true, format!("the {target} side refused it: {} (a failed item now)", problem.message)),
            Some(Outcome::Conflict(_)) => (true, format!("the {target} record changed meanwhile (a failed item now, resubmitted)")),
            None => (false, "the connector returned no outcome; tried again on the next run".to_owned()),
        };
        if let (true, Some(outcome)) = (done, outcome) {
            record_outcome(&mut commit, &mut report.counts, source, pending, outcome);
        }
        // Not done: only the intent of a create that was certainly not made is finished.
        if !commit.is_empty() {
            self.state.apply(ctx.name, ctx.run_id, &commit)?;
        }
        self.state.approval_outcome(row.id, done, &message)?;
        Ok(())
    }

    /// A rejection: a note on the source record, and the rejected values
    /// remembered as seen so they are not proposed again.
    async fn note_rejection(&self, ctx: &Ctx<'_>, source: Side, row: &ApprovalRow, parked: &Parked, link: Option<crate::state::Link>, note_field: Option<&str>) -> Result<(), RunError> {
        let by = row.decided_by.as_deref().unwrap_or("?");
        let mut commit = Commit::default();
        let mut outcome = "recorded in synchost (the pipeline has no approval note_field)".to_owned();
        let mut new_version = parked.source_version.clone();
        let mut seen = decoded(&parked.base_source);
        if !parked.restore.is_empty() {
            // First writer wins: the approved values go back to the source.
            let change = change_of_source(ctx.name, row, decoded(&parked.restore).into_iter().map(|(name, value)| Field { name, value }).collect());
            match ctx.write(source, &[change]).await?.pop() {
                Some(Outcome::Applied(applied)) => {
                    new_version = applied.version;
                    seen = decoded(&parked.restore);
                    outcome = format!("the approved values were written to the {source} record {}{} again", row.source_id, named(row));
                }
                Some(Outcome::Rejected(problem)) if problem.retryable => {
                    self.state.approval_outcome(row.id, false, &format!("the approved values are not written back yet ({}); tried again on the next run", problem.message))?;
                    return Ok(());
                }
                other => {
                    let why = match other {
                        Some(Outcome::Rejected(problem)) => problem.message,
                        Some(Outcome::Conflict(_)) => "the record changed again meanwhile".to_owned(),
                        _ => "no outcome".to_owned(),
                    };
                    self.state.approval_outcome(row.id, true, &format!("the approved values could not be written back: {why}; the {source} record keeps its values"))?;
                    return Ok(());
                }
            }
        } else if let Some(field) = note_field {
            let note = format!(
                "synchost: the change {} was rejected by {by} on {}{}",
                row.summary,
                row.decided_at.as_deref().unwrap_or(""),
                row.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
            );
            let change = change_of_source(ctx.name, row, vec![Field { name: field.to_owned(), value: Value::Text(note) }]);
            match ctx.write(source, &[change]).await?.pop() {
                Some(Outcome::Applied(applied)) => {
                    new_version = applied.version;
                    outcome = format!("noted on the {source} record {}{}", row.source_id, named(row));
                }
                Some(Outcome::Rejected(problem)) if problem.retryable => {
                    self.state.approval_outcome(row.id, false, &format!("the note is not written yet ({}); tried again on the next run", problem.message))?;
                    return Ok(());
                }
                Some(Outcome::Rejected(problem)) => outcome = format!("the note could not be written: {}", problem.message),
                _ => {}
            }
        }
        if let Some(link) = link {
            // The source's rejected values (and the note's new version) count as seen.
            commit.links.push(link_write(link.link_id, source, new_version, None, seen, Vec::new()));
        }
        commit.history.push(HistoryEntry {
            left_id: parked.history.left_id.clone(),
            right_id: parked.history.right_id.clone(),
            action: "reject",
            target: None,
            origin: Some(source),
            fields: Vec::new(),
            rule: format!("approval {} rejected by {by}", row.id),
            message: Some(format!("{}{}", row.summary, row.comment.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())),
            label: None,
        });
        self.state.apply(ctx.name, ctx.run_id, &commit)?;
        self.state.approval_outcome(row.id, true, &outcome)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(finish: &str, actual: f64) -> Record {
        let fields = vec![Field { name: "finish".into(), value: Value::Date(finish.into()) }, Field { name: "actual_work".into(), value: Value::Float(actual) }];
        Record { id: "2".into(), version: Some("v2".into()), deleted: false, fields, born: None }
    }

    #[test]
    fn a_parked_change_goes_over_changes_of_other_fields_only() {
        let parked = vec![("finish".to_owned(), Some(Value::Date("2026-11-04".into())), Value::Date("2026-11-05".into()))];
        // Time logged meanwhile (another field): still as it was parked.
        assert!(untouched_since_parked(&parked, &task("2026-11-04", 5.0)));
        // The planner moved the finish meanwhile: a conflict.
        assert!(!untouched_since_parked(&parked, &task("2026-11-06", 0.0)));
        // A field that was empty and is absent counts as empty.
        assert!(untouched_since_parked(&[("notes".to_owned(), None, Value::Text("x".into()))], &task("2026-11-04", 0.0)));
    }
}
