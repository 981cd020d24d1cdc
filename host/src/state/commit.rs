//! A batch's effects on the state, applied in one transaction: links (with
//! their base), conflicts, history (a batch of creates as one entry), failed
//! items, intents, birth marks and the cursor.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, OptionalExtension, Transaction};

use super::{base, encode_text, now, Base, State, StateError, StoredId, PIPE};
use crate::config::Side;
use crate::model::Value;
use crate::secrets::redacted;

/// A link that exists or is made by this commit.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkRef {
    Existing(i64),
    New { left_id: String, right_id: String },
}

/// Changes to one link: versions, state and base values.
#[derive(Debug, Clone)]
pub struct LinkWrite {
    pub link: LinkRef,
    pub left_version: Option<Option<String>>,
    pub right_version: Option<Option<String>>,
    pub state: Option<&'static str>,
    pub base: Vec<(Side, String, Value)>,
}

/// One line of history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub left_id: Option<String>,
    pub right_id: Option<String>,
    pub action: &'static str,
    pub target: Option<Side>,
    pub origin: Option<Side>,
    /// field (target's name) -> (old value, new value)
    pub fields: Vec<(String, Option<Value>, Value)>,
    pub rule: String,
    pub message: Option<String>,
    /// What a person calls the record (its name, title, subject), if known.
    pub label: Option<String>,
}

/// A batch that creates more records than this keeps one history entry for
/// them all (how many, which links), not an entry with every value of each:
/// an initial load's history stays small. `history left:ID` still finds
/// the batch a record was created in.
pub const BATCHED_CREATES: usize = 100;

/// An item that could not be synced, with the reason and the fix.
#[derive(Debug, Clone)]
pub struct FailedItem {
    pub side: Side,
    pub source_id: String,
    pub code: String,
    pub reason: String,
    pub hint: Option<String>,
    pub retryable: bool,
    /// What a person calls the record (its name, title or subject), if known.
    pub label: Option<String>,
}

/// A field changed on both sides, parked for an admin.
#[derive(Debug, Clone)]
pub struct ConflictEntry {
    pub link: LinkRef,
    pub field: String,
    pub left_value: Value,
    pub right_value: Value,
}

/// Everything one processed batch changes in state, applied in one transaction.
#[derive(Debug, Default)]
pub struct Commit {
    pub cursor: Option<(Side, Option<String>)>,
    pub links: Vec<LinkWrite>,
    pub history: Vec<HistoryEntry>,
    pub failed: Vec<FailedItem>,
    pub cleared_failures: Vec<(Side, String)>,
    pub conflicts: Vec<ConflictEntry>,
    pub resolved_conflicts: Vec<(i64, String, String)>,
    pub unlinks: Vec<i64>,
    /// Creates now committed: their intents are done.
    pub finished_intents: Vec<(Side, String)>,
    /// Records to drive through the engine at the start of the next run.
    pub queued_intents: Vec<(Side, String)>,
    /// Birth marks first seen: (side, record id, mark), kept on its link.
    pub births: Vec<(Side, String, String)>,
    /// Links whose record on one side is gone while a new record took its id:
    /// (link, side, the id the link keeps instead), applied before new links.
    pub retired: Vec<(i64, Side, String)>,
    /// Source records deleted while a change of theirs waited for approval:
    /// the pending approval is withdrawn.
    pub withdrawn_approvals: Vec<(Side, String)>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.cursor.is_none()
            && self.links.is_empty()
            && self.history.is_empty()
            && self.failed.is_empty()
            && self.cleared_failures.is_empty()
            && self.conflicts.is_empty()
            && self.resolved_conflicts.is_empty()
            && self.unlinks.is_empty()
            && self.finished_intents.is_empty()
            && self.queued_intents.is_empty()
            && self.births.is_empty()
            && self.retired.is_empty()
            && self.withdrawn_approvals.is_empty()
    }
}

impl State {
    /// Applies one batch's changes in one transaction.
    pub fn apply(&self, pipeline: &str, run_id: Option<i64>, commit: &Commit) -> Result<(), StateError> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let mut shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        let result = (|| {
            let transaction = connection.transaction()?;
            apply_commit(&transaction, &mut shapes, pipeline, run_id, commit)?;
            transaction.commit()
        })();
        if result.is_err() {
            // Shapes it stored were rolled back with it.
            shapes.forget_stored();
        }
        Ok(result?)
    }
}

fn damaged(link_id: i64, problem: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(format!("the base of link {link_id} {problem}")),
    )
}

/// The link's id; a new link is inserted with its versions, state and base.
fn write_link(transaction: &Transaction<'_>, shapes: &mut base::Shapes, pipeline: &str, run_id: Option<i64>, write: &LinkWrite, at: &str) -> rusqlite::Result<i64> {
    let digest = |version: &Option<Option<String>>| version.clone().flatten().as_deref().map(base::version_digest);
    match &write.link {
        LinkRef::Existing(id) => {
            let blob = if write.base.is_empty() {
                None
            } else {
                let stored: Option<Vec<u8>> =
                    transaction.prepare_cached("SELECT base FROM links WHERE link_id = ?1")?.query_row([id], |r| r.get(0)).optional()?.flatten();
                let mut base = shapes.decode(transaction, stored.as_deref().unwrap_or_default()).map_err(|p| damaged(*id, p))?;
                for (side, name, value) in &write.base {
                    base.side_mut(*side).set(name, value, shapes.keep_values(pipeline, *side, name));
                }
                Some(shapes.encode(transaction, pipeline, &base)?)
            };
            if write.left_version.is_some() || write.right_version.is_some() || write.state.is_some() || blob.is_some() {
                transaction
                    .prepare_cached(
                        "UPDATE links SET
                            left_version = CASE WHEN ?2 THEN ?3 ELSE left_version END,
                            right_version = CASE WHEN ?4 THEN ?5 ELSE right_version END,
                            state = coalesce(?6, state),
                            updated_at = CASE WHEN ?6 IS NULL THEN updated_at ELSE ?7 END,
                            base = coalesce(?8, base)
                         WHERE link_id = ?1",
                    )?
                    .execute(params![
                        id,
                        write.left_version.is_some(),
                        digest(&write.left_version),
                        write.right_version.is_some(),
                        digest(&write.right_version),
                        write.state,
                        at,
                        blob
                    ])?;
            }
            Ok(*id)
        }
        LinkRef::New { left_id, right_id } => {
            let mut base = Base::default();
            for (side, name, value) in &write.base {
                base.side_mut(*side).set(name, value, shapes.keep_values(pipeline, *side, name));
            }
            let blob = shapes.encode(transaction, pipeline, &base)?;
            let values = params![pipeline, StoredId(left_id), StoredId(right_id), digest(&write.left_version), digest(&write.right_version), write.state, run_id, blob];
            // Most links are new: a plain insert, its id the row's (an insert
            // that returns rows makes SQLite buffer them in a table of its own).
            let inserted = transaction
                .prepare_cached(&format!(
                    "INSERT INTO links (pipe, left_id, right_id, left_version, right_version, state, created_run, base)
                     VALUES ({PIPE}, ?2, ?3, ?4, ?5, coalesce(?6, 'active'), ?7, ?8) ON CONFLICT DO NOTHING"
                ))?
                .execute(values)?;
            if inserted == 1 {
                return Ok(transaction.last_insert_rowid());
            }
            // A redo after a crash may meet the link made the first time: the same
            // pair is updated, a different partner is refused.
            let mut statement = transaction.prepare_cached(&format!(
                "INSERT INTO links (pipe, left_id, right_id, left_version, right_version, state, created_run, base)
                 VALUES ({PIPE}, ?2, ?3, ?4, ?5, coalesce(?6, 'active'), ?7, ?8)
                 ON CONFLICT (pipe, left_id) DO UPDATE SET left_version = excluded.left_version,
                    right_version = excluded.right_version, base = excluded.base
                    WHERE right_id = excluded.right_id
                 RETURNING link_id"
            ))?;
            let id: Option<i64> = statement
                .query_row(values, |r| r.get(0))
                .optional()?;
            id.ok_or_else(|| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
                    Some(format!("left record {left_id} of {pipeline} is already linked to another right record than {right_id}")),
                )
            })
        }
    }
}

fn resolve_link(transaction: &Transaction<'_>, shapes: &mut base::Shapes, pipeline: &str, run_id: Option<i64>, link: &LinkRef) -> rusqlite::Result<i64> {
    let write = LinkWrite { link: link.clone(), left_version: None, right_version: None, state: None, base: Vec::new() };
    write_link(transaction, shapes, pipeline, run_id, &write, &now())
}

fn apply_commit(transaction: &Transaction<'_>, shapes: &mut base::Shapes, pipeline: &str, run_id: Option<i64>, commit: &Commit) -> rusqlite::Result<()> {
    let at = now();
    transaction.prepare_cached("INSERT OR IGNORE INTO pipelines (name) VALUES (?1)")?.execute([pipeline])?;
    // First, so that a new record may take the id: the link of a record gone
    // keeps another id, and is half-deleted until its delete is settled.
    for (link_id, side, kept_id) in &commit.retired {
        let (column, state) = match side {
            Side::Left => ("left_id", "left-deleted"),
            Side::Right => ("right_id", "right-deleted"),
        };
        transaction.execute(&format!("UPDATE links SET {column} = ?2, state = ?3, updated_at = ?4 WHERE link_id = ?1"), params![link_id, StoredId(kept_id), state, at])?;
    }
    // The links this commit makes, by their pair: a batch of creates' history entry names them.
    let mut made: HashMap<(&str, &str), i64> = HashMap::new();
    for write in &commit.links {
        let link_id = write_link(transaction, shapes, pipeline, run_id, write, &at)?;
        if let LinkRef::New { left_id, right_id } = &write.link {
            made.insert((left_id.as_str(), right_id.as_str()), link_id);
        }
    }
    for conflict in &commit.conflicts {
        let link_id = resolve_link(transaction, shapes, pipeline, run_id, &conflict.link)?;
        transaction.execute(
            "INSERT INTO conflicts (pipeline, link_id, field, left_value, right_value, detected_run, detected_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (pipeline, link_id, field) WHERE status = 'open'
             DO UPDATE SET left_value = excluded.left_value, right_value = excluded.right_value, detected_run = excluded.detected_run",
            params![pipeline, link_id, conflict.field, encode_text(&conflict.left_value), encode_text(&conflict.right_value), run_id, at],
        )?;
    }
    for (id, resolution, by) in &commit.resolved_conflicts {
        transaction.execute(
            "UPDATE conflicts SET status = 'resolved', resolution = ?2, resolved_by = ?3, resolved_at = ?4 WHERE id = ?1",
            params![id, resolution, by, at],
        )?;
    }
    write_history(transaction, pipeline, run_id, &at, &commit.history, &made)?;
    for item in &commit.failed {
        transaction.prepare_cached(
            "INSERT INTO failed_items (pipeline, side, source_id, attempts, first_failed_at, last_failed_at, code, reason, hint, retryable, label)
             VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (pipeline, side, source_id) DO UPDATE SET attempts = attempts + 1, last_failed_at = excluded.last_failed_at,
                code = excluded.code, reason = excluded.reason, hint = excluded.hint, retryable = excluded.retryable,
                label = coalesce(excluded.label, label)",
        )?
        .execute(params![
            pipeline,
            item.side.as_str(),
            item.source_id,
            at,
            redacted(&item.code),
            redacted(&item.reason),
            item.hint.as_deref().map(redacted),
            item.retryable,
            item.label.as_deref().map(redacted)
        ])?;
    }
    for side in [Side::Left, Side::Right] {
        // A record that failed again in this same commit stays failed.
        let cleared: Vec<&str> = commit
            .cleared_failures
            .iter()
            .filter(|(s, id)| *s == side && !commit.failed.iter().any(|f| f.side == side && &f.source_id == id))
            .map(|(_, id)| id.as_str())
            .collect();
        if !cleared.is_empty() {
            transaction
                .prepare_cached("DELETE FROM failed_items WHERE pipeline = ?1 AND side = ?2 AND source_id IN (SELECT value FROM json_each(?3))")?
                .execute(params![pipeline, side.as_str(), serde_json::to_string(&cleared).expect("strings serialize")])?;
        }
        let finished: Vec<&str> = commit.finished_intents.iter().filter(|(s, _)| *s == side).map(|(_, id)| id.as_str()).collect();
        if !finished.is_empty() {
            transaction
                .prepare_cached("DELETE FROM intents WHERE pipeline = ?1 AND side = ?2 AND source_id IN (SELECT value FROM json_each(?3))")?
                .execute(params![pipeline, side.as_str(), serde_json::to_string(&finished).expect("strings serialize")])?;
        }
    }
    for (side, source_id) in &commit.queued_intents {
        transaction
            .prepare_cached("INSERT OR IGNORE INTO intents (pipeline, side, source_id, at, state) VALUES (?1, ?2, ?3, ?4, 'queued')")?
            .execute(params![pipeline, side.as_str(), source_id, at])?;
    }
    for link_id in &commit.unlinks {
        transaction.execute("DELETE FROM links WHERE link_id = ?1", [link_id])?;
    }
    for (side, source_id) in &commit.withdrawn_approvals {
        transaction.execute(
            "UPDATE approvals SET status = 'withdrawn', decided_at = ?4, applied_at = ?4,
             outcome = 'withdrawn: the source record was deleted while the change waited'
             WHERE pipeline = ?1 AND side = ?2 AND source_id = ?3 AND status = 'pending'",
            params![pipeline, side.as_str(), source_id, at],
        )?;
    }
    for (side, record_id, born) in &commit.births {
        let (id_column, born_column) = match side {
            Side::Left => ("left_id", "left_born"),
            Side::Right => ("right_id", "right_born"),
        };
        transaction
            .prepare_cached(&format!("UPDATE links SET {born_column} = ?3 WHERE pipe = {PIPE} AND {id_column} = ?2 AND {born_column} IS NULL"))?
            .execute(params![pipeline, StoredId(record_id), born])?;
    }
    if let Some((side, cursor)) = &commit.cursor {
        transaction.execute(
            "INSERT INTO cursors (pipeline, side, cursor, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (pipeline, side) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            params![pipeline, side.as_str(), cursor, at],
        )?;
    }
    Ok(())
}

/// Writes a commit's history: an entry per decision, except that a batch of
/// more than [`BATCHED_CREATES`] creates is one entry (see there).
fn write_history(
    transaction: &Transaction<'_>,
    pipeline: &str,
    run_id: Option<i64>,
    at: &str,
    entries: &[HistoryEntry],
    made: &HashMap<(&str, &str), i64>,
) -> rusqlite::Result<()> {
    let mut history = transaction.prepare_cached(
        "INSERT INTO history (run_id, pipeline, at, left_id, right_id, action, target, origin, fields, rule, message, label, records, first_link, last_link)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    let created = |e: &&HistoryEntry| e.action == "create" && e.target.is_some();
    let batched = entries.iter().filter(created).count() > BATCHED_CREATES;
    // Batched creates, by (target, rule): (count, first link, last link).
    let mut batches: BTreeMap<(Side, &str), (i64, i64, i64)> = BTreeMap::new();
    for entry in entries {
        if batched && created(&entry) {
            let link = made.get(&(entry.left_id.as_deref().unwrap_or_default(), entry.right_id.as_deref().unwrap_or_default())).copied();
            let batch = batches.entry((entry.target.unwrap_or(Side::Right), entry.rule.as_str())).or_insert((0, i64::MAX, i64::MIN));
            batch.0 += 1;
            if let Some(link) = link {
                batch.1 = batch.1.min(link);
                batch.2 = batch.2.max(link);
            }
            continue;
        }
        let fields: serde_json::Map<String, serde_json::Value> = entry
            .fields
            .iter()
            .map(|(name, from, to)| (name.clone(), serde_json::json!({ "from": from.as_ref().map(Value::to_json), "to": to.to_json() })))
            .collect();
        history.execute(params![
            run_id,
            pipeline,
            at,
            entry.left_id,
            entry.right_id,
            entry.action,
            entry.target.map(Side::as_str),
            entry.origin.map(Side::as_str),
            serde_json::Value::Object(fields).to_string(),
            entry.rule,
            entry.message.as_deref().map(redacted),
            entry.label.as_deref().map(redacted),
            None::<i64>,
            None::<i64>,
            None::<i64>,
        ])?;
    }
    for ((target, rule), (count, first, last)) in batches {
        let (first, last) = if first <= last { (Some(first), Some(last)) } else { (None, None) };
        history.execute(params![
            run_id,
            pipeline,
            at,
            None::<String>,
            None::<String>,
            "create",
            target.as_str(),
            target.other().as_str(),
            "{}",
            rule,
            format!("{count} records created in one batch; their values are not kept in the history"),
            None::<String>,
            count,
            first,
            last,
        ])?;
    }
    Ok(())
}
