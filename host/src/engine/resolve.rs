//! What an admin does about items the engine could not decide: resolve a
//! parked conflict, resubmit failed items.

use std::collections::HashMap;

use super::{Ctx, Engine, Mode, RunError, RunReport};
use crate::config::Side;
use crate::model::{Change, ChangeKind, Field, Outcome, Record, Value};
use crate::state::{Commit, FailedRow, HistoryEntry, LinkRef, LinkWrite};

/// An admin's answer to a conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Keep this side's value (for a delete against an edit: this side's state).
    Take(Side),
    /// Set this value on both sides.
    Value(Value),
}

impl Engine {
    async fn one(&self, ctx: &Ctx<'_>, side: Side, id: &str) -> Result<Option<Record>, RunError> {
        Ok(ctx.fetch(side, &[id.to_owned()]).await?.pop())
    }

    /// Resolves a parked conflict: writes the chosen value where it differs,
    /// moves the base, closes the conflict, and records who decided.
    pub async fn resolve_conflict(&self, id: i64, resolution: Resolution, by: &str) -> Result<String, RunError> {
        let conflict = self.state.conflict(id)?.ok_or_else(|| RunError::Setup {
            message: format!("there is no conflict {id}"),
            hint: "list them with `synchost conflicts list`".into(),
        })?;
        if conflict.status != "open" {
            return Err(RunError::Setup {
                message: format!("conflict {id} was already resolved ({})", conflict.resolution.unwrap_or_default()),
                hint: "list the open ones with `synchost conflicts list`".into(),
            });
        }
        let ctx = self.context(&conflict.pipeline, Mode::Apply).await?;
        let left = self.one(&ctx, Side::Left, &conflict.left_id).await?;
        let right = self.one(&ctx, Side::Right, &conflict.right_id).await?;
        let mut commit = Commit::default();
        let mut written = Vec::new();

        if conflict.field == "*" {
            // A delete against an edit: keep the record, or delete it on both sides.
            let deleted_side = if conflict.left_value == Value::Text("deleted".into()) { Side::Left } else { Side::Right };
            let keep = match &resolution {
                Resolution::Take(side) => *side != deleted_side,
                Resolution::Value(_) => {
                    return Err(RunError::Setup {
                        message: format!("conflict {id} is a delete against an edit; it has no value to set"),
                        hint: "answer with --take left or --take right".into(),
                    })
                }
            };
            let state = if keep {
                deleted_side.deleted_state()
            } else {
                let edited = deleted_side.other();
                let target_id = match edited {
                    Side::Left => &conflict.left_id,
                    Side::Right => &conflict.right_id,
                };
                let change = Change {
                    origin: format!("{}/conflict/{id}", conflict.pipeline),
                    target_id: Some(target_id.clone()),
                    expected_version: None,
                    kind: ChangeKind::Delete,
                    repeated: false,
                    on_behalf_of: None,
                    fields: Vec::new(),
                };
                self.write_one(&ctx, edited, change).await?;
                written.push(format!("deleted the {edited} record"));
                "deleted"
            };
            commit.links.push(LinkWrite { link: LinkRef::Existing(conflict.link_id), left_version: None, right_version: None, state: Some(state), base: Vec::new() });
        } else {
            let field = conflict.field.as_str();
            let names = [(Side::Left, field.to_owned(), left.as_ref()), (Side::Right, ctx.config.right_name(field).to_owned(), right.as_ref())];
            let chosen = match &resolution {
                Resolution::Value(value) => value.clone(),
                Resolution::Take(side) => {
                    let (_, name, record) = &names[if *side == Side::Left { 0 } else { 1 }];
                    // Without the record there is no value to take: writing
                    // NULL to the other side would lose its value.
                    let Some(record) = record else {
                        let id = if *side == Side::Left { &conflict.left_id } else { &conflict.right_id };
                        return Err(RunError::Setup {
                            message: format!("the {side} record {id} of conflict {} cannot be read any more (deleted, or its system is down)", conflict.id),
                            hint: format!(
                                "check the {side} record; if it is gone, take the other side (`--take {}`) or set a value (`--value ...`)",
                                side.other()
                            ),
                        });
                    };
                    record.get(name).cloned().unwrap_or(Value::Null)
                }
            };
            let mut base = Vec::new();
            for (side, name, record) in &names {
                let Some(record) = record else { continue };
                if record.get(name) != Some(&chosen) {
                    let change = Change {
                        origin: format!("{}/conflict/{id}", conflict.pipeline),
                        target_id: Some(record.id.clone()),
                        expected_version: None,
                        kind: ChangeKind::Upsert,
                        repeated: false,
                        on_behalf_of: None,
                        fields: vec![Field { name: name.clone(), value: chosen.clone() }],
                    };
                    self.write_one(&ctx, *side, change).await?;
                    written.push(format!("set {side} {name}"));
                }
                base.push((*side, name.clone(), chosen.clone()));
            }
            commit.links.push(LinkWrite { link: LinkRef::Existing(conflict.link_id), left_version: None, right_version: None, state: None, base });
        }
        let answer = match &resolution {
            Resolution::Take(side) => format!("took the {side} side"),
            Resolution::Value(value) => format!("set {}", value.to_text()),
        };
        commit.resolved_conflicts.push((id, answer.clone(), by.to_owned()));
        commit.history.push(HistoryEntry {
            left_id: Some(conflict.left_id.clone()),
            right_id: Some(conflict.right_id.clone()),
            action: "resolve",
            target: None,
            origin: None,
            fields: Vec::new(),
            rule: format!("admin {by}"),
            message: Some(format!("conflict {id} on `{}`: {answer}{}", conflict.field, if written.is_empty() { String::new() } else { format!(" ({})", written.join(", ")) })),
            label: None,
        });
        self.state.apply(&conflict.pipeline, None, &commit)?;
        self.state.event("info", Some(&conflict.pipeline), None, &format!("conflict {id} resolved by {by}: {answer}"), None)?;
        Ok(answer)
    }

    async fn write_one(&self, ctx: &Ctx<'_>, side: Side, change: Change) -> Result<(), RunError> {
        match ctx.write(side, &[change]).await?.pop() {
            Some(Outcome::Applied(_)) => Ok(()),
            Some(Outcome::Rejected(problem)) => Err(RunError::Setup {
                message: format!("the {side} side refused the change: {}", problem.message),
                hint: problem.hint.unwrap_or_else(|| "fix the record, then resolve again".into()),
            }),
            Some(Outcome::Conflict(_)) | None => Err(RunError::Setup {
                message: format!("the {side} record changed meanwhile"),
                hint: "resolve again".into(),
            }),
        }
    }

    /// Runs failed items of a pipeline again (all, or these ids): each source
    /// record is fetched anew and goes through the engine as if just changed.
    pub async fn resubmit_failed(&self, pipeline: &str, only: Option<&[i64]>, trigger: &str) -> Result<RunReport, RunError> {
        let items: Vec<_> = self
            .state
            .failed(Some(pipeline))?
            .into_iter()
            .filter(|f| match only {
                Some(ids) => ids.contains(&f.id),
                // A create that may have been made goes again only when a
                // person names it, after checking the target.
                None => !super::write::needs_a_person(&f.code),
            })
            .collect();
        let mut report = RunReport::default();
        if items.is_empty() {
            return Ok(report);
        }
        let mut ctx = self.context(pipeline, Mode::Apply).await?;
        ctx.run_id = Some(self.state.begin_run(pipeline, trigger)?);
        report.run_id = ctx.run_id;
        // In a pipeline whose records refer to each other (a task's parent),
        // a child waits for its parent's link: each round that links records
        // lets the next level down go, so one resubmission settles a hierarchy.
        let hierarchy = self.referencing(pipeline).iter().any(|p| p == pipeline);
        let mut round_items = items.clone();
        let outcome = loop {
            let links_before = self.state.link_count(pipeline)?;
            let mut round = RunReport::default();
            let outcome = self.resubmit_items(&ctx, &round_items, &mut round).await;
            report.counts.created += round.counts.created;
            report.counts.updated += round.counts.updated;
            report.counts.deleted += round.counts.deleted;
            report.counts.conflicts += round.counts.conflicts;
            report.counts.queued += round.counts.queued;
            report.counts.failed = round.counts.failed;
            report.omitted += round.omitted;
            report.note(round.plan);
            if outcome.is_err() || !hierarchy || self.state.link_count(pipeline)? == links_before {
                break outcome;
            }
            let waiting: Vec<String> = round_items.iter().map(|f| f.source_id.clone()).collect();
            round_items = self.state.failed(Some(pipeline))?.into_iter().filter(|f| waiting.contains(&f.source_id)).collect();
            if round_items.is_empty() {
                break outcome;
            }
        };
        let run_id = ctx.run_id.expect("set above");
        let error = outcome.as_ref().err().map(|e| (e.to_string(), e.hint()));
        self.state.finish_run(run_id, &report.counts, error.as_ref().map(|(m, h)| (m.as_str(), h.as_deref())))?;
        self.state.event(
            if error.is_some() { "error" } else { "info" },
            Some(pipeline),
            Some(run_id),
            &format!("resubmitted {} failed item(s): {} still failing", items.len(), report.counts.failed),
            None,
        )?;
        outcome.map(|()| report)
    }

    /// The failed items of a pipeline that failed for a passing reason (the
    /// other side busy or down: `retryable`) and whose backoff has passed:
    /// every run takes them again, so they wait for no hourly resubmission.
    pub(super) fn transient_failures_due(&self, ctx: &Ctx<'_>) -> Result<Vec<FailedRow>, RunError> {
        let now = chrono::Utc::now();
        let retry = &ctx.config.retry;
        Ok(self
            .state
            .failed(Some(ctx.name))?
            .into_iter()
            .filter(|f| f.retryable)
            .filter(|f| {
                chrono::DateTime::parse_from_rfc3339(&f.last_failed_at)
                    .map(|at| at.with_timezone(&chrono::Utc) + retry_wait(f.attempts, retry.backoff.0, retry.max_backoff.0) <= now)
                    .unwrap_or(true)
            })
            .collect())
    }

    /// Takes failed items through the engine again: each is fetched anew
    /// from its side; one gone from its side, or now in sync, is done.
    pub(super) async fn resubmit_items(&self, ctx: &Ctx<'_>, items: &[FailedRow], report: &mut RunReport) -> Result<(), RunError> {
        for side in [Side::Left, Side::Right] {
            let ids: Vec<String> = items.iter().filter(|f| f.side == side.as_str()).map(|f| f.source_id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            let records = ctx.fetch(side, &ids).await?;
            let mut plan = self.plan_batch(ctx, side, &records).await?;
            for gone in ids.iter().filter(|id| !records.iter().any(|r| &r.id == *id)) {
                plan.commit.cleared_failures.push((side, gone.clone()));
                let (left_id, right_id) = super::side_ids(side, gone, None);
                plan.commit.history.push(HistoryEntry {
                    left_id,
                    right_id,
                    action: "skip",
                    target: None,
                    origin: Some(side),
                    fields: Vec::new(),
                    rule: "resubmission".into(),
                    message: Some("the failed record no longer exists on its side; dropped from the failed items".into()),
                    label: None,
                });
            }
            // A failed item that now plans nothing (already in sync) is done.
            for record in &records {
                if !plan.commit.failed.iter().any(|f| f.source_id == record.id) {
                    plan.commit.cleared_failures.push((side, record.id.clone()));
                }
            }
            self.finish_batch(ctx, side, plan, report).await?;
        }
        Ok(())
    }
}

/// A linked pair whose two values of a mirrored field differ (P10).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MirrorDifference {
    pub left_id: String,
    pub right_id: String,
    /// The field's left name.
    pub field: String,
    #[serde(skip)]
    pub left_value: Value,
    #[serde(skip)]
    pub right_value: Value,
}

impl Engine {
    /// Every linked pair whose values of a mirrored field (the `mirror`
    /// policy, or a mirror kept `always`) differ: the two sets of books,
    /// where they disagree.
    pub async fn mirror_diff(&self, pipeline: &str) -> Result<Vec<MirrorDifference>, RunError> {
        let ctx = self.context(pipeline, Mode::DryRun).await?;
        let fields: Vec<&str> = ctx
            .rules()
            .filter(|(left, rule)| {
                ctx.config.policy_of(left) == crate::config::ConflictPolicy::Mirror || rule.mirror.as_ref().is_some_and(|m| m.always)
            })
            .map(|(left, _)| left)
            .collect();
        let mut differences = Vec::new();
        if fields.is_empty() {
            return Ok(differences);
        }
        // A page of links at a time: memory does not grow with the table.
        let mut after = 0;
        loop {
            let page = self.state.links_after(pipeline, after, ctx.config.batch_size)?;
            let Some(last) = page.last() else { break };
            after = last.link_id;
            let chunk: Vec<_> = page.into_iter().filter(|l| l.state == "active").collect();
            let left_ids: Vec<String> = chunk.iter().map(|l| l.left_id.clone()).collect();
            let right_ids: Vec<String> = chunk.iter().map(|l| l.right_id.clone()).collect();
            let by_id = |records: Vec<Record>| -> HashMap<String, Record> { records.into_iter().map(|r| (r.id.clone(), r)).collect() };
            let lefts = by_id(ctx.fetch(Side::Left, &left_ids).await?);
            let rights = by_id(ctx.fetch(Side::Right, &right_ids).await?);
            for link in &chunk {
                let (Some(left), Some(right)) = (lefts.get(&link.left_id), rights.get(&link.right_id)) else {
                    continue;
                };
                for field in &fields {
                    let left_value = left.get(field).cloned().unwrap_or(Value::Null);
                    let right_value = right.get(ctx.config.right_name(field)).cloned().unwrap_or(Value::Null);
                    if left_value != right_value {
                        differences.push(MirrorDifference {
                            left_id: link.left_id.clone(),
                            right_id: link.right_id.clone(),
                            field: (*field).to_owned(),
                            left_value,
                            right_value,
                        });
                    }
                }
            }
        }
        Ok(differences)
    }
}

/// How long a record that failed for a passing reason `attempts` times waits
/// before the next try: doubling from `first`, at most `max`. Pure.
pub fn retry_wait(attempts: i64, first: std::time::Duration, max: std::time::Duration) -> chrono::Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let wait = first.saturating_mul(1 << doublings).min(max);
    chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retries_double_up_to_the_cap() {
        let (first, max) = (Duration::from_secs(5), Duration::from_secs(300));
        assert_eq!(retry_wait(1, first, max), chrono::Duration::seconds(5));
        assert_eq!(retry_wait(3, first, max), chrono::Duration::seconds(20));
        assert_eq!(retry_wait(50, first, max), chrono::Duration::seconds(300));
    }
}
