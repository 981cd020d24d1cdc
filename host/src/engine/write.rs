//! Writing a batch to its target: a crash is isolated to the change it
//! happens on, the connector's outcomes are checked before they become links,
//! and a create is made at most once.
//!
//! A create is noted as an intent (`written`) before it is sent; the note
//! goes in the commit that stores its outcome. A create whose earlier sending
//! left its intent behind (the host stopped, the call timed out or crashed,
//! the connector answered `outcome-unknown`) may or may not have been made:
//! it is sent again marked `repeated` when the target finds records by their
//! origin, and otherwise becomes a failed item for a person to check. Never a
//! second blind create.

use std::collections::BTreeSet;

use super::{isolable, isolate, outcomes, Ctx, Engine, Pending, RunError};
use crate::config::Side;
use crate::model::{Change, ChangeKind, Outcome, Problem};
use crate::runtime::CallError;
use crate::state::Commit;

/// The code a connector gives a change it sent but got no answer for.
pub const OUTCOME_UNKNOWN: &str = "outcome-unknown";
/// The code of a failed item for a create that may have been made, on a
/// target that cannot find it by origin.
pub const CREATE_OUTCOME_UNKNOWN: &str = "create-outcome-unknown";

/// How a create whose earlier sending has no known outcome goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncertain {
    /// Sent again, marked repeated: the target finds what the first one made.
    SendRepeated,
    /// Not sent again: a failed item tells a person what to check.
    HoldForCheck,
}

/// The way on for an uncertain create, by what the target can do. Pure.
pub fn uncertain_create(finds_by_origin: bool) -> Uncertain {
    if finds_by_origin { Uncertain::SendRepeated } else { Uncertain::HoldForCheck }
}

/// Whether a failed item with this code is resubmitted only when a person
/// names it (never by a blanket retry or the scheduler). Pure.
pub fn needs_a_person(code: &str) -> bool {
    code == CREATE_OUTCOME_UNKNOWN
}

/// A change with nothing in it, in the place of one lent to a plugin call.
fn placeholder() -> Change {
    Change { origin: String::new(), target_id: None, expected_version: None, kind: ChangeKind::Upsert, repeated: false, fields: Vec::new(), on_behalf_of: None }
}

fn is_create(change: &Change) -> bool {
    change.target_id.is_none() && change.kind == ChangeKind::Upsert
}

/// The problem of a failed item for a create that is not sent again.
fn create_outcome_unknown(ctx: &Ctx<'_>, target: Side, change: &Change, why: &str) -> Problem {
    let endpoint = ctx.instance(target).name();
    let pipeline = ctx.name;
    Problem {
        code: CREATE_OUTCOME_UNKNOWN.into(),
        message: format!(
            "{why}; whether `{endpoint}` made the new record is not known, and `{endpoint}` cannot look records up by their origin ({})",
            change.origin
        ),
        hint: Some(format!(
            "look in `{endpoint}` for the record: if it is there, link the two with `synchost links link {pipeline} LEFT_ID RIGHT_ID`; if it is not, retry this item by its number (`synchost failed list {pipeline}`, then `synchost failed retry {pipeline} NUMBER`); a retry of every failed item leaves it alone"
        )),
        retryable: false,
    }
}

/// A connector's `outcome-unknown` answer, turned into what the engine does
/// with it. Other outcomes pass unchanged.
fn settle(ctx: &Ctx<'_>, target: Side, change: &Change, outcome: Outcome) -> Outcome {
    let Outcome::Rejected(problem) = outcome else { return outcome };
    if problem.code != OUTCOME_UNKNOWN {
        return Outcome::Rejected(problem);
    }
    if is_create(change) && uncertain_create(ctx.def(target).finds_by_origin) == Uncertain::HoldForCheck {
        return Outcome::Rejected(create_outcome_unknown(ctx, target, change, &problem.message));
    }
    // Sent again later (an update is the same the second time; a create is
    // marked repeated): the item waits for its backoff like any passing failure.
    Outcome::Rejected(Problem { retryable: true, ..problem })
}

/// Whether a failed write call certainly applied nothing: the connector
/// refused the batch as a whole (its contract), or the plugin never started.
fn nothing_applied(error: &RunError) -> bool {
    match error {
        RunError::Call(CallError::Problem { problem, .. }) => problem.code != "broken-contract",
        RunError::Call(CallError::Instantiate { .. }) => true,
        _ => false,
    }
}

fn crashed(ctx: &Ctx<'_>, error: CallError) -> Outcome {
    tracing::warn!(pipeline = ctx.name, "Connector failed on a change: {error}");
    Outcome::Rejected(Problem { code: "plugin-crashed".into(), message: error.to_string(), hint: error.hint(), retryable: false })
}

impl Engine {
    /// Writes a batch's planned changes, one outcome per change in order. The
    /// intents of creates whose outcome is now known are finished in `commit`.
    pub(super) async fn write_pending(&self, ctx: &Ctx<'_>, source: Side, pending: &mut [Pending], commit: &mut Commit) -> Result<Vec<Outcome>, RunError> {
        let target = source.other();
        let creates: Vec<String> = pending.iter().filter(|p| p.link.is_none()).map(|p| p.source_id.clone()).collect();
        let repeated: BTreeSet<String> = if creates.is_empty() { BTreeSet::new() } else { self.state.add_intents(ctx.name, source, &creates)? };
        let mut outcomes: Vec<Option<Outcome>> = pending.iter().map(|_| None).collect();
        let mut send = Vec::with_capacity(pending.len());
        for (index, planned) in pending.iter_mut().enumerate() {
            if planned.link.is_none() && repeated.contains(&planned.source_id) {
                match uncertain_create(ctx.def(target).finds_by_origin) {
                    Uncertain::SendRepeated => planned.change.repeated = true,
                    Uncertain::HoldForCheck => {
                        let why = "an earlier write of this new record was cut short (the host stopped, or the write timed out)";
                        outcomes[index] = Some(Outcome::Rejected(create_outcome_unknown(ctx, target, &planned.change, why)));
                        continue;
                    }
                }
            }
            send.push(index);
        }
        if !send.is_empty() {
            // Lent to the call and given back: the pending changes are not copied.
            let changes: Vec<Change> = send.iter().map(|&i| std::mem::replace(&mut pending[i].change, placeholder())).collect();
            let written = self.write_checked(ctx, target, &changes).await;
            for (&i, change) in send.iter().zip(changes) {
                pending[i].change = change;
            }
            let written = match written {
                Ok(written) => written,
                Err(error) => {
                    // Not made: they go through the engine again at the next
                    // run's start, as first tries. Any other failure leaves
                    // them `written`: their outcome is not known.
                    if nothing_applied(&error) {
                        let fresh: Vec<String> = creates.iter().filter(|id| !repeated.contains(*id)).cloned().collect();
                        self.state.requeue_intents(ctx.name, source, &fresh)?;
                    }
                    return Err(error);
                }
            };
            for (index, outcome) in send.into_iter().zip(written) {
                outcomes[index] = Some(settle(ctx, target, &pending[index].change, outcome));
            }
        }
        let outcomes: Vec<Outcome> = outcomes.into_iter().map(|o| o.expect("every change has an outcome")).collect();
        for (planned, outcome) in pending.iter().zip(&outcomes) {
            let unknown = matches!(outcome, Outcome::Rejected(problem) if problem.code == OUTCOME_UNKNOWN);
            if planned.link.is_none() && !unknown {
                commit.finished_intents.push((source, planned.source_id.clone()));
            }
        }
        Ok(outcomes)
    }

    /// Writes a batch (isolating a crash to its change) and checks the
    /// outcomes before they become links.
    pub(crate) async fn write_checked(&self, ctx: &Ctx<'_>, target: Side, changes: &[Change]) -> Result<Vec<Outcome>, RunError> {
        // Birth marks have whole seconds (Redmine's): a record born from a
        // second before the write on was made by it.
        let started = chrono::Utc::now().timestamp_millis() - 1000;
        let written = write_isolating(ctx, target, changes).await?;
        let created: Vec<String> = outcomes::created_ids(changes, &written).into_iter().map(str::to_owned).collect();
        let mut linked = if created.is_empty() { Default::default() } else { self.state.links_by_ids(ctx.name, target, &created)? };
        if !linked.is_empty() {
            self.retire_links_to_reused_ids(ctx, target, started, &mut linked).await?;
        }
        let linked = linked.into_keys().collect();
        let checked = outcomes::checked(ctx.instance(target).name(), changes, written, &linked);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let count = |kind: fn(&Outcome) -> bool| checked.iter().filter(|o| kind(o)).count();
            tracing::debug!(
                target_side = target.as_str(),
                changes = changes.len(),
                applied = count(|o| matches!(o, Outcome::Applied(_))),
                rejected = count(|o| matches!(o, Outcome::Rejected(_))),
                conflicts = count(|o| matches!(o, Outcome::Conflict(_))),
                "Wrote a batch"
            );
        }
        Ok(checked)
    }

    /// A new record under an id a link still holds: if the record there now
    /// has another birth mark than the one linked (or, where the link never
    /// saw one, was born during this write), the target gave a deleted
    /// record's id to the new one (Redmine does), and the link is to a
    /// record that is gone. The link keeps another id for it (found missing,
    /// its delete goes through the policy at the next look-up of deletes, or
    /// when its other record changes) and the new record may take the id.
    async fn retire_links_to_reused_ids(&self, ctx: &Ctx<'_>, target: Side, started: i64, linked: &mut std::collections::HashMap<String, crate::state::Link>) -> Result<(), RunError> {
        let ids: Vec<String> = linked.keys().cloned().collect();
        let Ok(now) = ctx.fetch(target, &ids).await else { return Ok(()) };
        for record in now {
            let (Some(born), Some(link)) = (&record.born, linked.get(&record.id)) else { continue };
            if let Some(gone_born) = reused(link.born_on(target), born, started) {
                // Unknown birth marks are told apart by their link.
                let gone_born = if gone_born == UNKNOWN { format!("unknown, link {}", link.link_id) } else { gone_born };
                self.state.keep_gone_id(link.link_id, target, &super::presence::retired_id(&record.id, &gone_born))?;
                linked.remove(&record.id);
            }
        }
        Ok(())
    }
}

const UNKNOWN: &str = "unknown";

/// Whether a record born `born` under a linked id is another record than
/// the one linked (born `linked`, if the link saw it): the birth mark of the
/// one gone, or [`UNKNOWN`]. Pure.
fn reused(linked: Option<&str>, born: &str, write_started: i64) -> Option<String> {
    match linked {
        Some(linked) => (linked != born).then(|| linked.to_owned()),
        None => super::policy::change_time(Some(born)).is_some_and(|at| at >= write_started).then(|| UNKNOWN.to_owned()),
    }
}

/// Writes a batch; if the connector crashes on it (or hits a limit), writes
/// it again in halves so that only the changes it crashes on are rejected
/// (H1). The crash may have come after part of the batch was applied, so
/// what is sent again must be safe to send twice: updates are, a create is
/// marked repeated (or, on a target that cannot find it by origin, not sent
/// again). A timeout is not split: the creates stay uncertain, for the next run.
async fn write_isolating(ctx: &Ctx<'_>, target: Side, changes: &[Change]) -> Result<Vec<Outcome>, RunError> {
    let error = match ctx.write(target, changes).await {
        Ok(outcomes) => return Ok(outcomes),
        Err(error) if isolable(&error) => error,
        Err(error) => return Err(error.into()),
    };
    if let [change] = changes {
        return Ok(vec![match is_create(change) && uncertain_create(ctx.def(target).finds_by_origin) == Uncertain::HoldForCheck {
            true => Outcome::Rejected(create_outcome_unknown(ctx, target, change, &error.to_string())),
            false => crashed(ctx, error),
        }]);
    }
    let mut outcomes: Vec<Option<Outcome>> = changes.iter().map(|_| None).collect();
    let mut again: Vec<(usize, Change)> = Vec::with_capacity(changes.len());
    for (index, change) in changes.iter().enumerate() {
        if !is_create(change) {
            again.push((index, change.clone()));
            continue;
        }
        match uncertain_create(ctx.def(target).finds_by_origin) {
            Uncertain::SendRepeated => again.push((index, Change { repeated: true, ..change.clone() })),
            Uncertain::HoldForCheck => outcomes[index] = Some(Outcome::Rejected(create_outcome_unknown(ctx, target, change, &error.to_string()))),
        }
    }
    let resend: Vec<Change> = again.iter().map(|(_, change)| change.clone()).collect();
    let results = isolate::bisect(resend.len(), isolable, |part| ctx.write(target, &resend[part])).await?;
    for ((index, _), result) in again.into_iter().zip(results) {
        outcomes[index] = Some(result.unwrap_or_else(|error| crashed(ctx, error)));
    }
    Ok(outcomes.into_iter().map(|o| o.expect("every change has an outcome")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_record_under_a_linked_id_is_another_when_born_otherwise_or_during_the_write() {
        let started = chrono::DateTime::parse_from_rfc3339("2026-12-02T00:55:47Z").unwrap().timestamp_millis();
        assert_eq!(reused(Some("2026-12-01T10:00:00Z"), "2026-12-02T00:55:48Z", started).as_deref(), Some("2026-12-01T10:00:00Z"));
        assert_eq!(reused(Some("2026-12-02T00:55:48Z"), "2026-12-02T00:55:48Z", started), None, "the same record");
        assert_eq!(reused(None, "2026-12-02T00:55:48Z", started).as_deref(), Some("unknown"), "born during the write");
        assert_eq!(reused(None, "2026-12-01T10:00:00Z", started), None, "an old record: the connector's mistake, refused");
    }

    use super::*;

    #[test]
    fn an_uncertain_create_is_sent_again_only_where_the_target_finds_it_by_origin() {
        assert_eq!(uncertain_create(true), Uncertain::SendRepeated);
        assert_eq!(uncertain_create(false), Uncertain::HoldForCheck);
    }

    #[test]
    fn only_a_create_that_may_have_been_made_waits_for_a_person() {
        assert!(needs_a_person(CREATE_OUTCOME_UNKNOWN));
        assert!(!needs_a_person(OUTCOME_UNKNOWN));
        assert!(!needs_a_person("invalid"));
    }
}
