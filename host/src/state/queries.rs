//! Reads for people (status, history, queues) and the small writes of health,
//! heartbeat and admin actions.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{decode_text, now, State, StateError, StoredId, PIPE};

/// The columns of a [`LinkRow`], ids as text.
const LINK_ROW_COLUMNS: &str = "link_id, CAST(left_id AS TEXT), CAST(right_id AS TEXT), state, coalesce(updated_at, '')";
use crate::config::Side;
use crate::secrets::redacted;
use crate::model::Value;

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: i64,
    pub pipeline: String,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub counts: super::RunCounts,
    pub error: Option<String>,
    pub hint: Option<String>,
}

/// A history row's record as a person calls it: the row's own label, or the
/// latest one an entry of the same record has.
const LABEL: &str = "coalesce(h.label,
    (SELECT h2.label FROM history h2 WHERE h2.pipeline = h.pipeline AND h2.left_id = h.left_id AND h2.label IS NOT NULL ORDER BY h2.id DESC LIMIT 1),
    (SELECT h2.label FROM history h2 WHERE h2.pipeline = h.pipeline AND h2.right_id = h.right_id AND h2.label IS NOT NULL ORDER BY h2.id DESC LIMIT 1))";

#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub run_id: Option<i64>,
    pub at: String,
    pub left_id: Option<String>,
    pub right_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub origin: Option<String>,
    pub fields: serde_json::Value,
    pub rule: String,
    pub message: Option<String>,
    /// What a person calls the record (its name, title, subject ...), as
    /// this entry or the record's latest entry names it.
    pub label: Option<String>,
    /// For one entry of a batch of creates: how many records it created.
    pub records: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedRow {
    pub id: i64,
    pub pipeline: String,
    pub side: String,
    pub source_id: String,
    pub attempts: i64,
    pub first_failed_at: String,
    pub last_failed_at: String,
    pub code: String,
    pub reason: String,
    pub hint: Option<String>,
    pub retryable: bool,
    /// What a person calls the record, if known.
    pub label: Option<String>,
}

fn value_as_json<S: serde::Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&value.to_json(), serializer)
}

#[derive(Debug, Clone, Serialize)]
pub struct ConflictRow {
    pub id: i64,
    pub pipeline: String,
    pub link_id: i64,
    pub left_id: String,
    pub right_id: String,
    pub field: String,
    #[serde(serialize_with = "value_as_json")]
    pub left_value: Value,
    #[serde(serialize_with = "value_as_json")]
    pub right_value: Value,
    pub detected_at: String,
    pub status: String,
    pub resolution: Option<String>,
    pub resolved_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub level: String,
    pub pipeline: Option<String>,
    pub run_id: Option<i64>,
    pub message: String,
    pub hint: Option<String>,
    /// How many times it happened in a row, and when last.
    pub repeats: i64,
    pub last_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthRow {
    pub pipeline: String,
    pub state: String,
    pub reason: Option<String>,
    pub hint: Option<String>,
    pub since: String,
    pub paused_by: Option<String>,
    pub last_run_at: Option<String>,
    pub last_success_at: Option<String>,
    pub consecutive_failures: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatRow {
    pub pid: i64,
    pub host: String,
    pub started_at: String,
    pub beat_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkRow {
    pub link_id: i64,
    pub left_id: String,
    pub right_id: String,
    pub state: String,
    pub updated_at: String,
}

const EVENT_COLUMNS: &str = "id, at, level, pipeline, run_id, message, hint, repeats, last_at";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        at: r.get(1)?,
        level: r.get(2)?,
        pipeline: r.get(3)?,
        run_id: r.get(4)?,
        message: r.get(5)?,
        hint: r.get(6)?,
        repeats: r.get(7)?,
        last_at: r.get(8)?,
    })
}

const RUN_COLUMNS: &str = "run_id, pipeline, trigger, started_at, finished_at, status, read_left, read_right, created, updated, deleted, conflicts, failed, error, hint, queued, held";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        pipeline: r.get(1)?,
        trigger: r.get(2)?,
        started_at: r.get(3)?,
        finished_at: r.get(4)?,
        status: r.get(5)?,
        counts: super::RunCounts {
            read_left: r.get(6)?,
            read_right: r.get(7)?,
            created: r.get(8)?,
            updated: r.get(9)?,
            deleted: r.get(10)?,
            conflicts: r.get(11)?,
            failed: r.get(12)?,
            queued: r.get(15)?,
            held: r.get(16)?,
        },
        error: r.get(13)?,
        hint: r.get(14)?,
    })
}

const CONFLICT_COLUMNS: &str = "c.id, c.pipeline, c.link_id, CAST(l.left_id AS TEXT), CAST(l.right_id AS TEXT), c.field, c.left_value, c.right_value, c.detected_at, c.status, c.resolution, c.resolved_by";

fn conflict_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConflictRow> {
    Ok(ConflictRow {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        link_id: r.get(2)?,
        left_id: r.get(3)?,
        right_id: r.get(4)?,
        field: r.get(5)?,
        left_value: decode_text(&r.get::<_, String>(6)?),
        right_value: decode_text(&r.get::<_, String>(7)?),
        detected_at: r.get(8)?,
        status: r.get(9)?,
        resolution: r.get(10)?,
        resolved_by: r.get(11)?,
    })
}

const FAILED_COLUMNS: &str = "id, pipeline, side, source_id, attempts, first_failed_at, last_failed_at, code, reason, hint, retryable, label";

fn failed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FailedRow> {
    Ok(FailedRow {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        side: r.get(2)?,
        source_id: r.get(3)?,
        attempts: r.get(4)?,
        first_failed_at: r.get(5)?,
        last_failed_at: r.get(6)?,
        code: r.get(7)?,
        reason: r.get(8)?,
        hint: r.get(9)?,
        retryable: r.get(10)?,
        label: r.get(11)?,
    })
}

impl State {
    pub fn runs(&self, pipeline: &str, limit: u32) -> Result<Vec<RunRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = ?1 ORDER BY run_id DESC LIMIT ?2"))?;
            s.query_map(params![pipeline, limit], run_row)?.collect()
        })
    }

    /// History of a pipeline, newest first; of one record when `record` is
    /// given: `left:ID`, `right:ID`, or an id on either side. A record
    /// created in a batch has that batch's entry (see `BATCHED_CREATES`).
    pub fn history(&self, pipeline: &str, record: Option<&str>, limit: u32) -> Result<Vec<HistoryRow>, StateError> {
        let (left, right) = match record.map(|r| r.split_once(':').unwrap_or(("", r))) {
            None => (None, None),
            Some(("left", id)) => (Some(id), None),
            Some(("right", id)) => (None, Some(id)),
            Some((_, _)) => (record, record),
        };
        self.with(|c| {
            let mut s = c.prepare(
                &format!("SELECT id, run_id, at, left_id, right_id, action, target, origin, fields, rule, message, {LABEL}, records FROM history h
                 WHERE pipeline = ?1 AND ((?2 IS NULL AND ?3 IS NULL) OR left_id = ?2 OR right_id = ?3
                    OR (h.records IS NOT NULL AND EXISTS (SELECT 1 FROM links l WHERE l.pipe = {PIPE}
                        AND l.link_id BETWEEN h.first_link AND h.last_link AND (l.left_id = ?5 OR l.right_id = ?6))))
                 ORDER BY id DESC LIMIT ?4"
            ))?;
            s.query_map(params![pipeline, left, right, limit, left.map(StoredId), right.map(StoredId)], |r| {
                Ok(HistoryRow {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    at: r.get(2)?,
                    left_id: r.get(3)?,
                    right_id: r.get(4)?,
                    action: r.get(5)?,
                    target: r.get(6)?,
                    origin: r.get(7)?,
                    fields: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
                    rule: r.get(9)?,
                    message: r.get(10)?,
                    label: r.get(11)?,
                    records: r.get(12)?,
                })
            })?
            .collect()
        })
    }

    pub fn failed(&self, pipeline: Option<&str>) -> Result<Vec<FailedRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {FAILED_COLUMNS} FROM failed_items WHERE ?1 IS NULL OR pipeline = ?1 ORDER BY pipeline, id"
            ))?;
            s.query_map(params![pipeline], failed_row)?.collect()
        })
    }

    pub fn failed_item(&self, id: i64) -> Result<Option<FailedRow>, StateError> {
        self.with(|c| c.query_row(&format!("SELECT {FAILED_COLUMNS} FROM failed_items WHERE id = ?1"), [id], failed_row).optional())
    }

    pub fn conflicts(&self, pipeline: Option<&str>, open_only: bool) -> Result<Vec<ConflictRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {CONFLICT_COLUMNS} FROM conflicts c JOIN links l USING (link_id)
                 WHERE (?1 IS NULL OR c.pipeline = ?1) AND (?2 = 0 OR c.status = 'open') ORDER BY c.id"
            ))?;
            s.query_map(params![pipeline, open_only], conflict_row)?.collect()
        })
    }

    pub fn conflict(&self, id: i64) -> Result<Option<ConflictRow>, StateError> {
        self.with(|c| {
            c.query_row(&format!("SELECT {CONFLICT_COLUMNS} FROM conflicts c JOIN links l USING (link_id) WHERE c.id = ?1"), [id], conflict_row)
                .optional()
        })
    }

    pub fn links(&self, pipeline: &str, limit: u32) -> Result<Vec<LinkRow>, StateError> {
        self.links_after(pipeline, 0, limit)
    }

    /// The links after `after_link`, in link order: a page at a time.
    pub fn links_after(&self, pipeline: &str, after_link: i64, limit: u32) -> Result<Vec<LinkRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare_cached(&format!("SELECT {LINK_ROW_COLUMNS} FROM links WHERE pipe = {PIPE} AND link_id > ?3 ORDER BY link_id LIMIT ?2"))?;
            s.query_map(params![pipeline, limit, after_link], |r| {
                Ok(LinkRow { link_id: r.get(0)?, left_id: r.get(1)?, right_id: r.get(2)?, state: r.get(3)?, updated_at: r.get(4)? })
            })?
            .collect()
        })
    }

    /// A page of the ids on one side of the links whose records are not
    /// deleted, in link order after `after_link` (a page at a time, so that
    /// memory does not grow with the table): (last link of the page, ids).
    /// With `before_run`, only links made before that run.
    pub fn live_linked_ids(
        &self,
        pipeline: &str,
        side: Side,
        before_run: Option<i64>,
        after_link: i64,
        limit: u32,
    ) -> Result<(i64, Vec<String>), StateError> {
        let column = match side {
            Side::Left => "left_id",
            Side::Right => "right_id",
        };
        self.with(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT link_id, CAST({column} AS TEXT) FROM links WHERE pipe = {PIPE} AND link_id > ?3 AND state = 'active'
                 AND (?2 IS NULL OR created_run IS NULL OR created_run < ?2) ORDER BY link_id LIMIT ?4"
            ))?;
            let rows: Vec<(i64, String)> = s.query_map(params![pipeline, before_run, after_link, limit], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            let last = rows.last().map_or(after_link, |(link, _)| *link);
            Ok((last, rows.into_iter().map(|(_, id)| id).collect()))
        })
    }

    /// The ids on one side of the live links synced most recently, newest
    /// first: the inputs of a shadow run.
    pub fn recent_linked_ids(&self, pipeline: &str, side: Side, limit: u32) -> Result<Vec<String>, StateError> {
        let column = match side {
            Side::Left => "left_id",
            Side::Right => "right_id",
        };
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT CAST({column} AS TEXT) FROM links WHERE pipe = {PIPE} AND state = 'active' ORDER BY updated_at DESC, link_id DESC LIMIT ?2"
            ))?;
            s.query_map(params![pipeline, limit], |r| r.get(0))?.collect()
        })
    }

    /// Links whose record was deleted on one side only: the other side
    /// keeps it, and its edits no longer sync until an admin settles it.
    pub fn half_deleted_links(&self, pipeline: &str) -> Result<Vec<LinkRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {LINK_ROW_COLUMNS} FROM links
                 WHERE pipe = {PIPE} AND state IN ('left-deleted', 'right-deleted') ORDER BY link_id"
            ))?;
            s.query_map([pipeline], |r| {
                Ok(LinkRow { link_id: r.get(0)?, left_id: r.get(1)?, right_id: r.get(2)?, state: r.get(3)?, updated_at: r.get(4)? })
            })?
            .collect()
        })
    }

    pub fn link_count(&self, pipeline: &str) -> Result<i64, StateError> {
        self.with(|c| c.query_row(&format!("SELECT count(*) FROM links WHERE pipe = {PIPE}"), [pipeline], |r| r.get(0)))
    }

    /// The events at or after `since` (RFC 3339), oldest first, at most `limit` of the newest.
    pub fn events(&self, since: Option<&str>, limit: u32) -> Result<Vec<EventRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM events
                 WHERE ?1 IS NULL OR coalesce(last_at, at) >= ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
            ))?;
            s.query_map(params![since, limit], event_row)?.collect()
        })
    }

    /// The events after the one with id `after`, oldest first: what a live
    /// stream sends next. (A repeated event updates its row in place; a
    /// stream shows it when it is first written.)
    pub fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2"))?;
            s.query_map(params![after, limit], event_row)?.collect()
        })
    }

    /// The id of the newest event (0 when there is none).
    pub fn last_event_id(&self) -> Result<i64, StateError> {
        self.with(|c| c.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0)))
    }

    pub fn health(&self, pipeline: &str) -> Result<Option<HealthRow>, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT pipeline, state, reason, hint, since, paused_by, last_run_at, last_success_at, consecutive_failures FROM health WHERE pipeline = ?1",
                [pipeline],
                |r| {
                    Ok(HealthRow {
                        pipeline: r.get(0)?,
                        state: r.get(1)?,
                        reason: r.get(2)?,
                        hint: r.get(3)?,
                        since: r.get(4)?,
                        paused_by: r.get(5)?,
                        last_run_at: r.get(6)?,
                        last_success_at: r.get(7)?,
                        consecutive_failures: r.get(8)?,
                    })
                },
            )
            .optional()
        })
    }

    /// A successful run: the pipeline is `ok` again (unless an admin paused it).
    pub fn record_success(&self, pipeline: &str) -> Result<(), StateError> {
        let at = now();
        self.with(|c| {
            c.execute(
                "INSERT INTO health (pipeline, state, since, last_run_at, last_success_at) VALUES (?1, 'ok', ?2, ?2, ?2)
                 ON CONFLICT (pipeline) DO UPDATE SET
                    state = CASE WHEN state = 'paused' THEN 'paused' ELSE 'ok' END,
                    since = CASE WHEN state = 'ok' OR state = 'paused' THEN since ELSE excluded.since END,
                    reason = CASE WHEN state = 'paused' THEN reason ELSE NULL END,
                    hint = CASE WHEN state = 'paused' THEN hint ELSE NULL END,
                    last_run_at = excluded.last_run_at, last_success_at = excluded.last_success_at, consecutive_failures = 0",
                params![pipeline, at],
            )?;
            Ok(())
        })
    }

    /// A failed run: the pipeline is `degraded` with the reason; it keeps running.
    pub fn record_failure(&self, pipeline: &str, reason: &str, hint: Option<&str>) -> Result<i64, StateError> {
        let at = now();
        self.with(|c| {
            c.execute(
                "INSERT INTO health (pipeline, state, reason, hint, since, last_run_at, consecutive_failures) VALUES (?1, 'degraded', ?2, ?3, ?4, ?4, 1)
                 ON CONFLICT (pipeline) DO UPDATE SET
                    state = CASE WHEN state = 'paused' THEN 'paused' ELSE 'degraded' END,
                    since = CASE WHEN state = 'degraded' OR state = 'paused' THEN since ELSE excluded.since END,
                    reason = excluded.reason, hint = excluded.hint, last_run_at = excluded.last_run_at,
                    consecutive_failures = consecutive_failures + 1",
                params![pipeline, redacted(reason), hint.map(redacted), at],
            )?;
            c.query_row("SELECT consecutive_failures FROM health WHERE pipeline = ?1", [pipeline], |r| r.get(0))
        })
    }

    /// An admin pauses a pipeline; only an admin resumes it (T3).
    pub fn set_paused(&self, pipeline: &str, paused_by: Option<&str>) -> Result<(), StateError> {
        let at = now();
        self.with(|c| {
            match paused_by {
                Some(by) => c.execute(
                    "INSERT INTO health (pipeline, state, since, paused_by) VALUES (?1, 'paused', ?2, ?3)
                     ON CONFLICT (pipeline) DO UPDATE SET state = 'paused', since = excluded.since, paused_by = excluded.paused_by",
                    params![pipeline, at, by],
                )?,
                None => c.execute(
                    "UPDATE health SET state = CASE WHEN consecutive_failures > 0 THEN 'degraded' ELSE 'ok' END, since = ?2, paused_by = NULL
                     WHERE pipeline = ?1 AND state = 'paused'",
                    params![pipeline, at],
                )?,
            };
            Ok(())
        })
    }

    /// The scheduler's heartbeat (C10).
    pub fn beat(&self, pid: u32, host: &str, started_at: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO heartbeat (id, pid, host, started_at, beat_at) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at, beat_at = excluded.beat_at",
                params![pid, host, started_at, now()],
            )?;
            Ok(())
        })
    }

    pub fn heartbeat(&self) -> Result<Option<HeartbeatRow>, StateError> {
        self.with(|c| {
            c.query_row("SELECT pid, host, started_at, beat_at FROM heartbeat WHERE id = 1", [], |r| {
                Ok(HeartbeatRow { pid: r.get(0)?, host: r.get(1)?, started_at: r.get(2)?, beat_at: r.get(3)? })
            })
            .optional()
        })
    }

    /// Removes a link by either side's id; the records stay as they are.
    /// Removes a link; returns the two ids and whether the kept record of a
    /// half-deleted pair was queued for the next run.
    pub fn unlink(&self, pipeline: &str, id: &str) -> Result<Option<(String, String, bool)>, StateError> {
        self.with(|c| {
            let link: Option<(i64, String, String, String)> = c
                .query_row(
                    &format!("SELECT link_id, CAST(left_id AS TEXT), CAST(right_id AS TEXT), state FROM links WHERE pipe = {PIPE} AND (left_id = ?2 OR right_id = ?2)"),
                    params![pipeline, StoredId(id)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((link_id, left, right, state)) = link else { return Ok(None) };
            let transaction = c.transaction()?;
            transaction.execute("DELETE FROM links WHERE link_id = ?1", [link_id])?;
            transaction.execute(
                "INSERT INTO history (pipeline, at, left_id, right_id, action, rule, message) VALUES (?1, ?2, ?3, ?4, 'unlink', 'admin', 'unlinked by an admin')",
                params![pipeline, now(), left, right],
            )?;
            // The record kept when the other side's was deleted or went
            // missing goes through the next run again, to be made anew
            // there; a pair that was in sync is just unlinked.
            let kept: Option<(&str, &String)> = match state.as_str() {
                "left-deleted" => Some(("right", &right)),
                "right-deleted" => Some(("left", &left)),
                _ => None,
            };
            if let Some((side, kept_id)) = kept {
                transaction.execute(
                    "INSERT OR IGNORE INTO intents (pipeline, side, source_id, at, state) VALUES (?1, ?2, ?3, ?4, 'queued')",
                    params![pipeline, side, kept_id, now()],
                )?;
            }
            let queued = kept.is_some();
            transaction.commit()?;
            Ok(Some((left, right, queued)))
        })
    }
}
