//! Matching records that exist on both sides before they were ever synced, so
//! that the first sync of two populated systems links them instead of copying
//! each side's records to the other.

use std::collections::HashMap;

use super::{side_ids, Ctx, Engine, Mode, RunError, RunReport};
use crate::config::Side;
use crate::model::{Record, Value};
use crate::state::{Commit, HistoryEntry, LinkRef, LinkWrite};

/// A record's match key: its match fields' values, trimmed and lower-cased;
/// `None` when one of them is empty (an empty value identifies nothing).
fn match_key(ctx: &Ctx<'_>, side: Side, record: &Record) -> Option<Vec<String>> {
    ctx.config
        .match_on
        .iter()
        .map(|field| {
            let value = record.get(ctx.config.name_on(side, field))?;
            let text = match value {
                Value::Null => return None,
                other => other.to_text().trim().to_lowercase(),
            };
            (!text.is_empty()).then_some(text)
        })
        .collect()
}

impl Engine {
    /// Links two records an admin says are one (a create whose outcome was
    /// lost, a pair `match_on` could not tell): both must exist and neither
    /// be linked. Like a match, the pair has no base: the next run compares
    /// them, and each field that differs goes to the pipeline's policy.
    pub async fn link_by_hand(&self, name: &str, left_id: &str, right_id: &str) -> Result<(), RunError> {
        let ctx = self.context(name, Mode::Apply).await?;
        for (side, id) in [(Side::Left, left_id), (Side::Right, right_id)] {
            if self.state.links_by_ids(name, side, &[id.to_owned()])?.contains_key(id) {
                return Err(RunError::Setup {
                    message: format!("the {side} record {id} of pipeline {name} is linked already"),
                    hint: format!("unlink it first (`synchost links unlink {name} {id}`) if it belongs to the other record"),
                });
            }
            let found = ctx.fetch(side, &[id.to_owned()]).await?;
            if !found.iter().any(|r| r.id == id && !r.deleted) {
                return Err(RunError::Setup {
                    message: format!("`{}` has no {} record {id}", ctx.instance(side).name(), ctx.entity(side)),
                    hint: format!("check the {side} id (`synchost failed list {name}` names the record that waits)"),
                });
            }
        }
        let mut commit = Commit::default();
        commit.links.push(LinkWrite {
            link: LinkRef::New { left_id: left_id.to_owned(), right_id: right_id.to_owned() },
            left_version: None,
            right_version: None,
            state: None,
            base: Vec::new(),
        });
        commit.history.push(HistoryEntry {
            left_id: Some(left_id.to_owned()),
            right_id: Some(right_id.to_owned()),
            action: "link",
            target: None,
            origin: None,
            fields: Vec::new(),
            rule: "linked by an admin".into(),
            message: Some("compared on the next run: each field that differs goes to the pipeline's conflict policy".into()),
            label: None,
        });
        for (side, id) in [(Side::Left, left_id), (Side::Right, right_id)] {
            commit.cleared_failures.push((side, id.to_owned()));
            commit.finished_intents.push((side, id.to_owned()));
        }
        commit.queued_intents.push((Side::Left, left_id.to_owned()));
        self.state.apply(name, None, &commit)?;
        Ok(())
    }

    /// Every live record of one side, read from the start.
    async fn read_all(&self, ctx: &Ctx<'_>, side: Side) -> Result<Vec<Record>, RunError> {
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let batch = ctx.read(side, cursor.as_deref()).await?;
            let done = !batch.has_more || batch.records.is_empty();
            records.extend(batch.records.into_iter().filter(|r| !r.deleted));
            cursor = batch.cursor;
            if done {
                return Ok(records);
            }
        }
    }

    /// Links unlinked records with equal match keys on both sides. A key held
    /// by more than one record on a side is ambiguous: those records are left
    /// unmatched (and synced as new), with a warning in the event log.
    pub(super) async fn match_existing(&self, ctx: &Ctx<'_>, report: &mut RunReport) -> Result<(), RunError> {
        let mut keyed: [HashMap<Vec<String>, Vec<String>>; 2] = [HashMap::new(), HashMap::new()];
        for (index, side) in [Side::Left, Side::Right].into_iter().enumerate() {
            let records = self.read_all(ctx, side).await?;
            let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
            let linked = self.state.links_by_ids(ctx.name, side, &ids)?;
            for record in records.iter().filter(|r| !linked.contains_key(&r.id)) {
                if let Some(key) = match_key(ctx, side, record) {
                    keyed[index].entry(key).or_default().push(record.id.clone());
                }
            }
        }
        let [left, right] = keyed;
        let mut commit = Commit::default();
        let mut ambiguous = 0;
        for (key, left_ids) in &left {
            let Some(right_ids) = right.get(key) else { continue };
            if left_ids.len() != 1 || right_ids.len() != 1 {
                ambiguous += 1;
                continue;
            }
            let (left_id, right_id) = (left_ids[0].clone(), right_ids[0].clone());
            // No base: every field that differs is a conflict for the policy to settle.
            commit.links.push(LinkWrite {
                link: LinkRef::New { left_id: left_id.clone(), right_id: right_id.clone() },
                left_version: None,
                right_version: None,
                state: None,
                base: Vec::new(),
            });
            let (l, r) = side_ids(Side::Left, &left_id, Some(&right_id));
            commit.history.push(HistoryEntry {
                left_id: l,
                right_id: r,
                action: "link",
                target: None,
                origin: None,
                fields: Vec::new(),
                rule: format!("matched on {}", ctx.config.match_on.join(", ")),
                message: Some(format!("existed on both sides ({})", key.join(", "))),
                label: None,
            });
        }
        if ambiguous > 0 {
            let message = format!(
                "{ambiguous} match key(s) of {} are held by more than one record on a side; those records are synced as new",
                ctx.config.match_on.join(", ")
            );
            tracing::warn!(pipeline = ctx.name, "{message}");
            {
                self.state.event("warn", Some(ctx.name), ctx.run_id, &message, Some("make the match fields unique, or link such records by hand"))?;
            }
        }
        if !commit.is_empty() {
            self.state.apply(ctx.name, ctx.run_id, &commit)?;
        }
        report.note(commit.history);
        Ok(())
    }
}
