//! The approval queue: changes of a pipeline's approval side that wait for a
//! person's decision before they are written (P2), and what became of them.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now, State, StateError};
use crate::config::Side;

/// One queued change and its decision.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRow {
    pub id: i64,
    pub pipeline: String,
    pub side: String,
    pub source_id: String,
    pub target_id: Option<String>,
    /// What the change does, for a person: `field: old -> new` per field.
    pub summary: String,
    /// The parked change (engine-private JSON).
    #[serde(skip)]
    pub change: String,
    pub status: String,
    pub submitted_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub applied_at: Option<String>,
    /// What carrying out the decision did, or why it could not yet.
    pub outcome: Option<String>,
    /// Goes up each time a newer change replaces the pending one: a
    /// decision is for the revision the person saw.
    pub revision: i64,
    /// What a person calls the record (its name, title or subject), if known.
    pub label: Option<String>,
}

const COLUMNS: &str = "id, pipeline, side, source_id, target_id, summary, change, status, submitted_at, decided_at, decided_by, comment, applied_at, outcome, revision, label";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRow> {
    Ok(ApprovalRow {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        side: r.get(2)?,
        source_id: r.get(3)?,
        target_id: r.get(4)?,
        summary: r.get(5)?,
        change: r.get(6)?,
        status: r.get(7)?,
        submitted_at: r.get(8)?,
        decided_at: r.get(9)?,
        decided_by: r.get(10)?,
        comment: r.get(11)?,
        applied_at: r.get(12)?,
        outcome: r.get(13)?,
        revision: r.get(14)?,
        label: r.get(15)?,
    })
}

/// What queuing a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// A new entry in the queue.
    New(i64),
    /// It replaced the pending entry of the same record (a newer change).
    Replaced(i64),
    /// The same change was rejected before: not queued again.
    AlreadyRejected(i64),
    /// The same change is approved and waits to be written.
    AlreadyApproved(i64),
}

impl State {
    /// Queues a change, or replaces the record's pending one. A change that
    /// proposes what the record's last decision already answered (the same
    /// summary) is not queued again.
    #[allow(clippy::too_many_arguments)]
    pub fn queue_approval(&self, pipeline: &str, side: Side, source_id: &str, target_id: Option<&str>, summary: &str, change: &str, label: Option<&str>) -> Result<Queued, StateError> {
        self.with(|c| {
            let transaction = c.transaction()?;
            let latest: Option<(i64, String, String, Option<String>)> = transaction
                .query_row(
                    "SELECT id, status, summary, applied_at FROM approvals WHERE pipeline = ?1 AND side = ?2 AND source_id = ?3 ORDER BY id DESC LIMIT 1",
                    params![pipeline, side.as_str(), source_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let queued = match latest {
                Some((id, status, _, _)) if status == "pending" => {
                    transaction.execute(
                        "UPDATE approvals SET target_id = ?2, summary = ?3, change = ?4, submitted_at = ?5, label = coalesce(?6, label),
                         revision = revision + CASE WHEN summary = ?3 THEN 0 ELSE 1 END WHERE id = ?1",
                        params![id, target_id, summary, change, now(), label],
                    )?;
                    Queued::Replaced(id)
                }
                Some((id, status, old, _)) if status == "rejected" && old == summary => Queued::AlreadyRejected(id),
                Some((id, status, old, None)) if status == "approved" && old == summary => Queued::AlreadyApproved(id),
                _ => {
                    transaction.execute(
                        "INSERT INTO approvals (pipeline, side, source_id, target_id, summary, change, submitted_at, label) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![pipeline, side.as_str(), source_id, target_id, summary, change, now(), label],
                    )?;
                    Queued::New(transaction.last_insert_rowid())
                }
            };
            transaction.commit()?;
            Ok(queued)
        })
    }

    /// The last approved change from `side`'s record `source_id` that was
    /// written (what a later save may put back).
    pub fn last_applied_approval(&self, pipeline: &str, side: Side, source_id: &str) -> Result<Option<ApprovalRow>, StateError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE pipeline = ?1 AND side = ?2 AND source_id = ?3 AND status = 'approved' AND applied_at IS NOT NULL ORDER BY id DESC LIMIT 1"),
                params![pipeline, side.as_str(), source_id],
                row,
            )
            .optional()
        })
    }

    /// The queue: pending entries, or with `all` every entry (the last submit status of each item).
    pub fn approvals(&self, pipeline: Option<&str>, all: bool) -> Result<Vec<ApprovalRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {COLUMNS} FROM approvals WHERE (?1 IS NULL OR pipeline = ?1) AND (?2 = 1 OR status = 'pending') ORDER BY id"
            ))?;
            s.query_map(params![pipeline, all], row)?.collect()
        })
    }

    pub fn approval(&self, id: i64) -> Result<Option<ApprovalRow>, StateError> {
        self.with(|c| c.query_row(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"), [id], row).optional())
    }

    /// Decided entries whose decision is not carried out yet.
    pub fn undone_decisions(&self, pipeline: &str) -> Result<Vec<ApprovalRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {COLUMNS} FROM approvals WHERE pipeline = ?1 AND status <> 'pending' AND applied_at IS NULL ORDER BY id"
            ))?;
            s.query_map([pipeline], row)?.collect()
        })
    }

    /// The approval still pending for a source record, if there is one.
    pub fn pending_approval(&self, pipeline: &str, side: Side, source_id: &str) -> Result<Option<ApprovalRow>, StateError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE pipeline = ?1 AND side = ?2 AND source_id = ?3 AND status = 'pending'"),
                params![pipeline, side.as_str(), source_id],
                row,
            )
            .optional()
        })
    }

    /// Records a decision on a pending entry at `revision`; false when it is
    /// no longer pending at that revision (decided meanwhile, or replaced).
    pub fn decide_approval(&self, id: i64, revision: i64, approve: bool, by: &str, comment: Option<&str>) -> Result<bool, StateError> {
        self.with(|c| {
            let changed = c.execute(
                "UPDATE approvals SET status = ?2, decided_at = ?3, decided_by = ?4, comment = ?5 WHERE id = ?1 AND status = 'pending' AND revision = ?6",
                params![id, if approve { "approved" } else { "rejected" }, now(), by, comment, revision],
            )?;
            Ok(changed == 1)
        })
    }

    /// Notes what carrying out a decision did; `done` closes it.
    pub fn approval_outcome(&self, id: i64, done: bool, outcome: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE approvals SET outcome = ?2, applied_at = CASE WHEN ?3 THEN ?4 ELSE applied_at END WHERE id = ?1",
                params![id, crate::secrets::redacted(outcome), done, now()],
            )?;
            Ok(())
        })
    }
}
