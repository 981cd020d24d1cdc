//! A write's outcome turned into the state to commit: the link with its
//! versions and bases, the history entry, the counts.

use super::super::Pending;
use crate::config::Side;
use crate::model::{Outcome, Value};
use crate::state::{Commit, FailedItem, LinkRef, LinkWrite, RunCounts};

pub(in crate::engine) fn link_write(
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
pub(in crate::engine) fn record_outcome(commit: &mut Commit, counts: &mut RunCounts, source: Side, pending: Pending, outcome: Outcome) {
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
