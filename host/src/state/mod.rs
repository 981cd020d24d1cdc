//! Durable state in SQLite: links, base values, cursors, runs, history, failed
//! items, the conflict and approval queues, the event log, health and the scheduler's heartbeat.
//!
//! One database file per host (`<data_dir>/state.sqlite`), WAL mode, versioned
//! migrations. The engine changes state only through [`Commit`], applied in one
//! transaction, so a crash leaves either all of a batch's effects or none.
//! [`lease`]: one writer per state store.

mod approvals;
mod intents;
pub mod lease;
mod migrations;
mod queries;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

pub use approvals::{ApprovalRow, Queued};
pub use intents::IntentState;
pub use queries::{ConflictRow, EventRow, FailedRow, HealthRow, HeartbeatRow, HistoryRow, LinkRow, RunRow};

use crate::config::Side;
use crate::secrets::redacted;
use crate::runtime::bindings::Value;

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("state database {path} was written by a newer synchost (schema {found}, this one knows {known})")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state database {path} is damaged: {problem}; restore it from a backup, or move it aside to start over (links and history are then rebuilt by matching)")]
    Damaged { path: PathBuf, problem: String },
    #[error("cannot create the data folder {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
}

/// The current time as stored: RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A value as stored in `base`: a JSON array `[type, value]`. Arrays (unlike
/// objects) are replaced whole by `json_patch`, which merges base updates.
pub fn encode(value: &Value) -> serde_json::Value {
    use serde_json::json;
    match value {
        Value::Null => json!(["null"]),
        Value::Boolean(b) => json!(["boolean", b]),
        Value::Integer(i) => json!(["integer", i]),
        // JSON has no NaN or infinities: they are kept as text.
        Value::Float(f) if !f.is_finite() => json!(["float", f.to_string()]),
        Value::Float(f) => json!(["float", f]),
        Value::Decimal(s) => json!(["decimal", s]),
        Value::Text(s) => json!(["text", s]),
        Value::Date(s) => json!(["date", s]),
        Value::Timestamp(s) => json!(["timestamp", s]),
        Value::Bytes(b) => json!(["bytes", hex::encode(b)]),
        Value::Json(s) => json!(["json", s]),
    }
}

/// A stored value, if it is one this host writes.
fn decode_known(stored: &serde_json::Value) -> Option<Value> {
    let [tag, value] = stored.as_array()?.as_slice() else {
        return (stored.as_array()?.as_slice() == [serde_json::json!("null")]).then_some(Value::Null);
    };
    let text = || value.as_str().map(str::to_owned);
    Some(match tag.as_str()? {
        "boolean" => Value::Boolean(value.as_bool()?),
        "integer" => Value::Integer(value.as_i64()?),
        "float" => Value::Float(value.as_f64().or_else(|| value.as_str()?.parse().ok())?),
        "decimal" => Value::Decimal(text()?),
        "text" => Value::Text(text()?),
        "date" => Value::Date(text()?),
        "timestamp" => Value::Timestamp(text()?),
        "bytes" => Value::Bytes(hex::decode(text()?).ok()?),
        "json" => Value::Json(text()?),
        _ => return None,
    })
}

/// A stored value; anything unreadable (only a newer host writes such) reads as null.
pub fn decode(stored: &serde_json::Value) -> Value {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    match stored.as_array().map(Vec::as_slice) {
        Some([tag, value]) => match tag.as_str() {
            Some("boolean") => Value::Boolean(value.as_bool().unwrap_or_default()),
            Some("integer") => Value::Integer(value.as_i64().unwrap_or_default()),
            Some("float") => Value::Float(value.as_f64().or_else(|| value.as_str()?.parse().ok()).unwrap_or_default()),
            Some("decimal") => Value::Decimal(text(value)),
            Some("text") => Value::Text(text(value)),
            Some("date") => Value::Date(text(value)),
            Some("timestamp") => Value::Timestamp(text(value)),
            Some("bytes") => Value::Bytes(hex::decode(text(value)).unwrap_or_default()),
            Some("json") => Value::Json(text(value)),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

fn encode_text(value: &Value) -> String {
    encode(value).to_string()
}

fn decode_text(text: &str) -> Value {
    serde_json::from_str(text).map(|v| decode(&v)).unwrap_or(Value::Null)
}

/// The link between a left and a right record.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub link_id: i64,
    pub left_id: String,
    pub right_id: String,
    pub left_version: Option<String>,
    pub right_version: Option<String>,
    pub state: String,
    /// Each side's record's birth mark, once seen (see `Record::born`).
    pub left_born: Option<String>,
    pub right_born: Option<String>,
}

impl Link {
    /// The birth mark of the side's record, once seen.
    pub fn born_on(&self, side: Side) -> Option<&str> {
        match side {
            Side::Left => self.left_born.as_deref(),
            Side::Right => self.right_born.as_deref(),
        }
    }

    /// The same link with the side's record id replaced.
    pub fn with_id_on(mut self, side: Side, id: String) -> Link {
        match side {
            Side::Left => self.left_id = id,
            Side::Right => self.right_id = id,
        }
        self
    }

    pub fn id_on(&self, side: Side) -> &str {
        match side {
            Side::Left => &self.left_id,
            Side::Right => &self.right_id,
        }
    }

    /// The record's version when the engine last wrote or synced it.
    pub fn version_on(&self, side: Side) -> Option<&str> {
        match side {
            Side::Left => self.left_version.as_deref(),
            Side::Right => self.right_version.as_deref(),
        }
    }
}

/// The base values of one link: each side's fields in its own names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Base {
    pub left: BTreeMap<String, Value>,
    pub right: BTreeMap<String, Value>,
}

impl Base {
    pub fn side(&self, side: Side) -> &BTreeMap<String, Value> {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }
}

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
}

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

/// The state database.
pub struct State {
    path: PathBuf,
    connection: Mutex<Connection>,
    /// The folder of a scratch copy (a dry run's), removed with it; declared
    /// after the connection, so the file is closed first.
    scratch: Option<tempfile::TempDir>,
}

impl State {
    /// Opens (creating if needed) and migrates the state database.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Folder { path: dir.to_owned(), source })?;
        }
        let open_error = |source| StateError::Open { path: path.to_owned(), source };
        let mut connection = Connection::open(path).map_err(open_error)?;
        connection
            // FULL: a commit survives a power loss, not only a crash of the host.
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
            .map_err(open_error)?;
        let found: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = migrations::MIGRATIONS.len() as i64;
        if found > known {
            return Err(StateError::TooNew { path: path.to_owned(), found, known });
        }
        for (index, (_, sql)) in migrations::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let transaction = connection.transaction()?;
            transaction.execute_batch(sql)?;
            transaction.pragma_update(None, "user_version", index as i64 + 1)?;
            transaction.commit()?;
        }
        Ok(State { path: path.to_owned(), connection: Mutex::new(connection), scratch: None })
    }

    /// A copy of this store for a dry run to commit to as the real run would,
    /// in a temporary folder that goes when the copy is dropped.
    pub fn scratch_copy(&self) -> Result<State, StateError> {
        let folder = tempfile::Builder::new()
            .prefix("synchost-dry-run-")
            .tempdir()
            .map_err(|source| StateError::Folder { path: std::env::temp_dir(), source })?;
        let path = folder.path().join("state.sqlite");
        self.with(|c| c.execute("VACUUM INTO ?1", [path.to_string_lossy()]).map(|_| ()))?;
        let mut copy = State::open(&path)?;
        // Nothing of it is kept: no need to wait for the disk.
        copy.with(|c| c.execute_batch("PRAGMA synchronous = OFF"))?;
        copy.scratch = Some(folder);
        Ok(copy)
    }

    /// Whether this is a dry run's scratch copy.
    pub fn is_scratch(&self) -> bool {
        self.scratch.is_some()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the whole file (SQLite's `quick_check`): run before the host
    /// starts working and by `synchost check`, so that a damaged store is
    /// reported instead of read as if it were empty.
    pub fn verify(&self) -> Result<(), StateError> {
        let problems: Vec<String> = self.with(|c| {
            let mut statement = c.prepare("PRAGMA quick_check")?;
            let rows = statement.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })?;
        match problems.as_slice() {
            [ok] if ok == "ok" => Ok(()),
            _ => Err(StateError::Damaged { path: self.path.clone(), problem: problems.join("; ") }),
        }
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StateError> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&mut connection)?)
    }

    /// The links of these record ids on one side.
    pub fn links_by_ids(&self, pipeline: &str, side: Side, ids: &[String]) -> Result<HashMap<String, Link>, StateError> {
        let column = match side {
            Side::Left => "left_id",
            Side::Right => "right_id",
        };
        self.with(|c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT link_id, left_id, right_id, left_version, right_version, state, left_born, right_born FROM links WHERE pipeline = ?1 AND {column} = ?2"
            ))?;
            let mut found = HashMap::new();
            for id in ids {
                if let Some(link) = statement.query_row(params![pipeline, id], link_from_row).optional()? {
                    found.insert(id.clone(), link);
                }
            }
            Ok(found)
        })
    }

    /// Gives a link's record on `side` an id kept for a record that is gone
    /// (its id was given to another); the link stays active, so the record
    /// is found missing and its delete decided like any other.
    pub fn keep_gone_id(&self, link_id: i64, side: Side, kept_id: &str) -> Result<(), StateError> {
        let column = match side {
            Side::Left => "left_id",
            Side::Right => "right_id",
        };
        self.with(|c| {
            c.execute(&format!("UPDATE links SET {column} = ?2, updated_at = ?3 WHERE link_id = ?1"), params![link_id, kept_id, now()])?;
            Ok(())
        })
    }

    /// The base values of these links.
    pub fn base_of(&self, link_ids: &[i64]) -> Result<HashMap<i64, Base>, StateError> {
        let stored: Vec<(i64, String, String)> = self.with(|c| {
            let mut statement = c.prepare_cached("SELECT side, fields FROM base WHERE link_id = ?1")?;
            let mut stored = Vec::new();
            for id in link_ids {
                let mut rows = statement.query([id])?;
                while let Some(row) = rows.next()? {
                    stored.push((*id, row.get(0)?, row.get(1)?));
                }
            }
            Ok(stored)
        })?;
        let mut found: HashMap<i64, Base> = link_ids.iter().map(|id| (*id, Base::default())).collect();
        for (id, side, text) in stored {
            // An unreadable base is an error, never an empty base: a policy
            // would then overwrite a side.
            let damaged = |what: String| StateError::Damaged { path: self.path.clone(), problem: format!("the base of link {id} ({side}) {what}") };
            let fields: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| damaged(format!("is not readable: {e}")))?;
            let values = fields
                .iter()
                .map(|(name, value)| match decode_known(value) {
                    Some(decoded) => Ok((name.clone(), decoded)),
                    None => Err(damaged(format!("holds `{name}` = {value}, which no synchost writes"))),
                })
                .collect::<Result<_, _>>()?;
            let base = found.entry(id).or_default();
            match side.as_str() {
                "left" => base.left = values,
                _ => base.right = values,
            }
        }
        Ok(found)
    }

    pub fn cursor(&self, pipeline: &str, side: Side) -> Result<Option<String>, StateError> {
        self.with(|c| {
            c.query_row("SELECT cursor FROM cursors WHERE pipeline = ?1 AND side = ?2", params![pipeline, side.as_str()], |r| r.get(0))
                .optional()
                .map(Option::flatten)
        })
    }

    pub fn begin_run(&self, pipeline: &str, trigger: &str) -> Result<i64, StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (pipeline, trigger, started_at, status) VALUES (?1, ?2, ?3, 'running')",
                params![pipeline, trigger, now()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records the end of a run with its counters.
    pub fn finish_run(&self, run_id: i64, counts: &RunCounts, error: Option<(&str, Option<&str>)>) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET finished_at = ?2, status = ?3, read_left = ?4, read_right = ?5, created = ?6, updated = ?7,
                 deleted = ?8, conflicts = ?9, failed = ?10, error = ?11, hint = ?12, queued = ?13 WHERE run_id = ?1",
                params![
                    run_id,
                    now(),
                    if error.is_some() { "failed" } else { "ok" },
                    counts.read_left,
                    counts.read_right,
                    counts.created,
                    counts.updated,
                    counts.deleted,
                    counts.conflicts,
                    counts.failed,
                    error.map(|e| redacted(e.0)),
                    error.and_then(|e| e.1).map(redacted),
                    counts.queued,
                ],
            )?;
            Ok(())
        })
    }

    /// Writes an event to the event log.
    /// Records an event. The same event as the pipeline's last one (an outage
    /// failing run after run) is counted on that one, with the time and run of
    /// the latest.
    pub fn event(&self, level: &str, pipeline: Option<&str>, run_id: Option<i64>, message: &str, hint: Option<&str>) -> Result<(), StateError> {
        let (message, hint) = (redacted(message), hint.map(redacted));
        self.with(|c| {
            let transaction = c.transaction()?;
            let repeated = transaction.execute(
                "UPDATE events SET repeats = repeats + 1, last_at = ?1, run_id = coalesce(?4, run_id)
                 WHERE id = (SELECT id FROM events WHERE pipeline IS ?3 ORDER BY id DESC LIMIT 1)
                   AND level = ?2 AND message = ?5 AND hint IS ?6",
                params![now(), level, pipeline, run_id, message, hint],
            )?;
            if repeated == 0 {
                transaction.execute(
                    "INSERT INTO events (at, level, pipeline, run_id, message, hint) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![now(), level, pipeline, run_id, message, hint],
                )?;
            }
            transaction.commit()
        })
    }

    /// Applies one batch's changes in one transaction.
    pub fn apply(&self, pipeline: &str, run_id: Option<i64>, commit: &Commit) -> Result<(), StateError> {
        self.with(|c| {
            let transaction = c.transaction()?;
            apply_commit(&transaction, pipeline, run_id, commit)?;
            transaction.commit()
        })
    }
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunCounts {
    pub read_left: u64,
    pub read_right: u64,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub conflicts: u64,
    pub failed: u64,
    /// Changes parked in the approval queue.
    pub queued: u64,
}

fn link_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        link_id: row.get(0)?,
        left_id: row.get(1)?,
        right_id: row.get(2)?,
        left_version: row.get(3)?,
        right_version: row.get(4)?,
        state: row.get(5)?,
        left_born: row.get(6)?,
        right_born: row.get(7)?,
    })
}

/// The link's id; a new link is inserted with its versions and state.
fn write_link(transaction: &Transaction<'_>, pipeline: &str, run_id: Option<i64>, write: &LinkWrite, at: &str) -> rusqlite::Result<i64> {
    match &write.link {
        LinkRef::Existing(id) => {
            if write.left_version.is_some() || write.right_version.is_some() || write.state.is_some() {
                transaction
                    .prepare_cached(
                        "UPDATE links SET
                            left_version = CASE WHEN ?2 THEN ?3 ELSE left_version END,
                            right_version = CASE WHEN ?4 THEN ?5 ELSE right_version END,
                            state = coalesce(?6, state),
                            updated_at = ?7
                         WHERE link_id = ?1",
                    )?
                    .execute(params![
                        id,
                        write.left_version.is_some(),
                        write.left_version.clone().flatten(),
                        write.right_version.is_some(),
                        write.right_version.clone().flatten(),
                        write.state,
                        at
                    ])?;
            }
            Ok(*id)
        }
        LinkRef::New { left_id, right_id } => {
            // A redo after a crash may meet the link made the first time: the same
            // pair is updated, a different partner is refused.
            let mut statement = transaction.prepare_cached(
                "INSERT INTO links (pipeline, left_id, right_id, left_version, right_version, state, created_run, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, coalesce(?6, 'active'), ?7, ?8)
                 ON CONFLICT (pipeline, left_id) DO UPDATE SET left_version = excluded.left_version,
                    right_version = excluded.right_version, updated_at = excluded.updated_at
                    WHERE right_id = excluded.right_id
                 RETURNING link_id",
            )?;
            let id: Option<i64> = statement
                .query_row(
                    params![
                        pipeline,
                        left_id,
                        right_id,
                        write.left_version.clone().flatten(),
                        write.right_version.clone().flatten(),
                        write.state,
                        run_id,
                        at
                    ],
                    |r| r.get(0),
                )
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

fn resolve_link(transaction: &Transaction<'_>, pipeline: &str, run_id: Option<i64>, link: &LinkRef) -> rusqlite::Result<i64> {
    let write = LinkWrite { link: link.clone(), left_version: None, right_version: None, state: None, base: Vec::new() };
    write_link(transaction, pipeline, run_id, &write, &now())
}

fn apply_commit(transaction: &Transaction<'_>, pipeline: &str, run_id: Option<i64>, commit: &Commit) -> rusqlite::Result<()> {
    let at = now();
    // First, so that a new record may take the id: the link of a record gone
    // keeps another id, and is half-deleted until its delete is settled.
    for (link_id, side, kept_id) in &commit.retired {
        let (column, state) = match side {
            Side::Left => ("left_id", "left-deleted"),
            Side::Right => ("right_id", "right-deleted"),
        };
        transaction.execute(&format!("UPDATE links SET {column} = ?2, state = ?3, updated_at = ?4 WHERE link_id = ?1"), params![link_id, kept_id, state, at])?;
    }
    for write in &commit.links {
        let link_id = write_link(transaction, pipeline, run_id, write, &at)?;
        for side in [Side::Left, Side::Right] {
            let fields: serde_json::Map<String, serde_json::Value> =
                write.base.iter().filter(|(s, _, _)| *s == side).map(|(_, f, v)| (f.clone(), encode(v))).collect();
            if fields.is_empty() {
                continue;
            }
            transaction
                .prepare_cached(
                    "INSERT INTO base (link_id, side, fields) VALUES (?1, ?2, ?3)
                     ON CONFLICT (link_id, side) DO UPDATE SET fields = json_patch(fields, excluded.fields)",
                )?
                .execute(params![link_id, side.as_str(), serde_json::Value::Object(fields).to_string()])?;
        }
    }
    for conflict in &commit.conflicts {
        let link_id = resolve_link(transaction, pipeline, run_id, &conflict.link)?;
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
    let mut history = transaction.prepare_cached(
        "INSERT INTO history (run_id, pipeline, at, left_id, right_id, action, target, origin, fields, rule, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for entry in &commit.history {
        let fields: serde_json::Map<String, serde_json::Value> = entry
            .fields
            .iter()
            .map(|(name, from, to)| {
                (name.clone(), serde_json::json!({ "from": from.as_ref().map(Value::to_json), "to": to.to_json() }))
            })
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
        ])?;
    }
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
            .prepare_cached(&format!("UPDATE links SET {born_column} = ?3 WHERE pipeline = ?1 AND {id_column} = ?2 AND {born_column} IS NULL"))?
            .execute(params![pipeline, record_id, born])?;
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


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_event_again_is_counted_not_repeated() {
        let folder = tempfile::tempdir().unwrap();
        let state = State::open(&folder.path().join("state.sqlite")).unwrap();
        for run in 1..=41 {
            state.event("error", Some("entries"), Some(run), "run failed: cannot connect to 127.0.0.1:3300", Some("start Redmine")).unwrap();
        }
        state.event("error", Some("users"), Some(42), "run failed: cannot connect to 127.0.0.1:3300", Some("start Redmine")).unwrap();
        state.event("info", Some("entries"), Some(43), "run 43: 5 created", None).unwrap();
        state.event("error", Some("entries"), Some(44), "run failed: cannot connect to 127.0.0.1:3300", Some("start Redmine")).unwrap();
        let events = state.events(None, 100).unwrap();
        let shape: Vec<(&str, i64, Option<i64>)> = events.iter().map(|e| (e.pipeline.as_deref().unwrap_or(""), e.repeats, e.run_id)).collect();
        // Counted per pipeline, and only while nothing else happened in between.
        assert_eq!(shape, [("entries", 41, Some(41)), ("users", 1, Some(42)), ("entries", 1, Some(43)), ("entries", 1, Some(44))]);
        assert!(events[0].last_at.is_some());
    }

    #[test]
    fn every_value_is_stored_and_read_back_exactly() {
        for value in [
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(1.5),
            Value::Integer(-7),
            Value::Text("ä".into()),
            Value::Bytes(vec![0, 255]),
            Value::Null,
        ] {
            assert_eq!(decode_text(&encode_text(&value)), value, "{value:?}");
        }
        assert!(matches!(decode_text(&encode_text(&Value::Float(f64::NAN))), Value::Float(f) if f.is_nan()));
    }
}
