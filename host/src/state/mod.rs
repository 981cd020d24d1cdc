//! Durable state in SQLite: links, base values, cursors, runs, history, failed
//! items, the conflict and approval queues, the event log, health and the scheduler's heartbeat.
//!
//! One database file per host (`<data_dir>/state.sqlite`), WAL mode, versioned
//! migrations. The engine changes state only through [`Commit`], applied in one
//! transaction, so a crash leaves either all of a batch's effects or none.
//!
//! - `base`: base values as per-field digests, in a blob per link.
//! - `commit`: a batch's effects, applied in one transaction.
//! - `migrations`: the versioned layout steps.
//! - `queries`: reads for people and the small writes of admin actions.
//! - `intents`, `approvals`: creates in flight, and the approval queue.
//! - [`reloads`]: the configs a running host loaded; a pipeline's state renamed or forgotten.
//! - [`users`]: the admin API's users, their roles and their tokens.
//! - [`lease`]: one writer per state store.
//! - [`locks`]: scope locks, the changes they hold back, undone runs.

mod approvals;
pub mod base;
mod commit;
mod identities;
mod intents;
pub mod lease;
pub mod locks;
mod migrations;
mod queries;
pub mod reloads;
pub mod users;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

pub use approvals::{ApprovalRow, Queued};
pub use base::{Base, SideBase};
pub use commit::{Commit, ConflictEntry, FailedItem, HistoryEntry, LinkRef, LinkWrite, BATCHED_CREATES};
pub use queries::{ConflictRow, EventRow, FailedRow, HealthRow, HeartbeatRow, HistoryRow, LinkRow, RunRow};
pub use identities::RecordedIdentity;

use crate::config::Side;
use crate::secrets::redacted;
use crate::model::Value;

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

/// A record id as a link stores it: a whole number in its plain form as an
/// integer (a few bytes, in the row and in both indexes), anything else
/// (`042`, `C-7`, an id kept for a record gone) as text. Read back with
/// `CAST(... AS TEXT)`, so both come back as the id they were.
pub struct StoredId<'a>(pub &'a str);

impl StoredId<'_> {
    fn number(&self) -> Option<i64> {
        self.0.parse::<i64>().ok().filter(|n| n.to_string() == self.0)
    }
}

impl rusqlite::ToSql for StoredId<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match self.number() {
            Some(n) => rusqlite::types::ToSqlOutput::from(n),
            None => rusqlite::types::ToSqlOutput::from(self.0),
        })
    }
}

/// Ids as a JSON array for `json_each`, each as [`StoredId`] binds it.
fn stored_ids(ids: &[String]) -> String {
    let values: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| match StoredId(id).number() {
            Some(n) => n.into(),
            None => id.as_str().into(),
        })
        .collect();
    serde_json::Value::Array(values).to_string()
}

/// A pipeline's number in the links table, for a statement's first parameter.
pub(crate) const PIPE: &str = "(SELECT pipe FROM pipelines WHERE name = ?1)";

/// The link between a left and a right record.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub link_id: i64,
    pub left_id: String,
    pub right_id: String,
    /// Digests of each record's version when last synced (`base::version_digest`).
    pub left_version: Option<i64>,
    pub right_version: Option<i64>,
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

    /// Whether the record is at the version the engine last wrote or synced
    /// (by its digest): then it holds nothing new.
    pub fn synced_at(&self, side: Side, version: &str) -> bool {
        let synced = match side {
            Side::Left => self.left_version,
            Side::Right => self.right_version,
        };
        synced == Some(base::version_digest(version))
    }
}

/// The state database.
pub struct State {
    path: PathBuf,
    connection: Mutex<Connection>,
    /// Base shapes met so far and each pipeline's field pairs (`base`);
    /// locked only while the connection is.
    shapes: Mutex<base::Shapes>,
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
            // Foreign keys are on once the migrations ran: a migration that
            // builds a table anew must not cascade the old one's drop.
            // A checkpoint once the log holds 64 MB rather than 4 MB (the
            // default): a big first load touches the same index pages batch
            // after batch, and each is copied into the database once per
            // checkpoint, not once per batch (at a million rows the commits
            // took 16 s with the default, 10 s with this). While the host
            // runs, the log keeps up to 64 MB beside the store; it is folded
            // in and removed when the store is closed.
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -32000; PRAGMA wal_autocheckpoint = 16384; PRAGMA foreign_keys = OFF;")
            .map_err(open_error)?;
        let found: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = migrations::MIGRATIONS.len() as i64;
        if found > known {
            return Err(StateError::TooNew { path: path.to_owned(), found, known });
        }
        for (index, (_, step)) in migrations::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let transaction = connection.transaction()?;
            match step {
                migrations::Step::Sql(sql) => transaction.execute_batch(sql)?,
                migrations::Step::Code(migrate) => migrate(&transaction)?,
            }
            transaction.pragma_update(None, "user_version", index as i64 + 1)?;
            transaction.commit()?;
        }
        connection.execute_batch("PRAGMA foreign_keys = ON;").map_err(open_error)?;
        Ok(State { path: path.to_owned(), connection: Mutex::new(connection), shapes: Mutex::default(), scratch: None })
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

    /// The links of these record ids on one side, in one look-up.
    pub fn links_by_ids(&self, pipeline: &str, side: Side, ids: &[String]) -> Result<HashMap<String, Link>, StateError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let column = match side {
            Side::Left => "left_id",
            Side::Right => "right_id",
        };
        self.with(|c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {LINK_COLUMNS} FROM links WHERE pipe = {PIPE} AND {column} IN (SELECT value FROM json_each(?2))"
            ))?;
            let rows = statement.query_map(params![pipeline, stored_ids(ids)], link_from_row)?;
            let mut found = HashMap::with_capacity(ids.len());
            for link in rows {
                let link = link?;
                found.insert(link.id_on(side).to_owned(), link);
            }
            Ok(found)
        })
    }

    /// Registers the pipeline's synced fields as (left name, right name): the
    /// base of its links is laid out by them (see `base`).
    /// `kept`: the fields (left names) whose values the base keeps too.
    pub fn register_fields(&self, pipeline: &str, pairs: Vec<(String, String)>, kept: Vec<String>) {
        self.shapes.lock().unwrap_or_else(|e| e.into_inner()).register(pipeline, pairs, kept);
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
            c.execute(&format!("UPDATE links SET {column} = ?2, updated_at = ?3 WHERE link_id = ?1"), params![link_id, StoredId(kept_id), now()])?;
            Ok(())
        })
    }

    /// The base values of these links, in one look-up.
    pub fn base_of(&self, link_ids: &[i64]) -> Result<HashMap<i64, Base>, StateError> {
        if link_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = serde_json::to_string(link_ids).expect("numbers serialize");
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let mut shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        let connection: &mut Connection = &mut connection;
        let stored: Vec<(i64, Option<Vec<u8>>)> = {
            let mut statement = connection.prepare_cached("SELECT link_id, base FROM links WHERE link_id IN (SELECT value FROM json_each(?1))")?;
            let rows = statement.query_map([ids], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut found: HashMap<i64, Base> = HashMap::with_capacity(link_ids.len());
        for (id, blob) in stored {
            // An unreadable base is an error, never an empty base: a policy
            // would then overwrite a side.
            let base = shapes
                .decode(connection, blob.as_deref().unwrap_or_default())
                .map_err(|problem| StateError::Damaged { path: self.path.clone(), problem: format!("the base of link {id} {problem}") })?;
            found.insert(id, base);
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
                 deleted = ?8, conflicts = ?9, failed = ?10, error = ?11, hint = ?12, queued = ?13, held = ?14 WHERE run_id = ?1",
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
                    counts.held,
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
    /// Changes held back by a scope lock.
    pub held: u64,
}

/// The columns [`link_from_row`] reads, ids as text.
pub(crate) const LINK_COLUMNS: &str =
    "link_id, CAST(left_id AS TEXT), CAST(right_id AS TEXT), left_version, right_version, state, left_born, right_born";

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
    fn a_store_in_the_earlier_layout_keeps_its_links_base_and_history() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("state.sqlite");
        {
            // The layout before lean links, as an older synchost left it.
            let mut connection = Connection::open(&path).unwrap();
            let before = migrations::MIGRATIONS.iter().position(|(name, _)| name.starts_with("lean links")).unwrap();
            for (index, (_, step)) in migrations::MIGRATIONS[..before].iter().enumerate() {
                let transaction = connection.transaction().unwrap();
                let migrations::Step::Sql(sql) = step else { panic!("only SQL steps before") };
                transaction.execute_batch(sql).unwrap();
                transaction.pragma_update(None, "user_version", index as i64 + 1).unwrap();
                transaction.commit().unwrap();
            }
            connection
                .execute_batch(
                    r#"INSERT INTO links (link_id, pipeline, left_id, right_id, left_version, right_version, state, created_run, updated_at)
                       VALUES (7, 'p', '42', 'C-7', 'v1', 'v2', 'active', 1, '2026-11-01T00:00:00Z'),
                              (8, 'p', '042', '9', NULL, NULL, 'left-deleted', 1, '2026-11-01T00:00:00Z');
                       INSERT INTO base VALUES (7, 'left', '{"name": ["text", "Ada"], "score": ["integer", 3]}'),
                                               (7, 'right', '{"full_name": ["text", "Ada"]}');
                       INSERT INTO conflicts (pipeline, link_id, field, left_value, right_value, detected_at) VALUES ('p', 7, 'name', '["text","A"]', '["text","B"]', 'now');
                       INSERT INTO history (pipeline, at, left_id, right_id, action, rule) VALUES ('p', 'now', '42', 'C-7', 'update', 'direction both');"#,
                )
                .unwrap();
        }
        let state = State::open(&path).unwrap();
        let links = state.links_by_ids("p", Side::Left, &["42".into(), "042".into()]).unwrap();
        assert_eq!((links["42"].link_id, links["42"].right_id.as_str()), (7, "C-7"));
        assert!(links["42"].synced_at(Side::Left, "v1") && !links["42"].synced_at(Side::Left, "v2"));
        assert_eq!((links["042"].link_id, links["042"].state.as_str()), (8, "left-deleted"), "042 is not 42");
        let base = &state.base_of(&[7]).unwrap()[&7];
        assert!(base.left.holds("name", &Value::Text("Ada".into())) && base.left.holds("score", &Value::Integer(3)));
        assert!(base.right.holds("full_name", &Value::Text("Ada".into())) && !base.right.has("name"));
        assert_eq!(state.conflicts(Some("p"), true).unwrap()[0].right_id, "C-7", "conflicts keep their link");
        let history = state.history("p", Some("left:42"), 10).unwrap();
        assert_eq!(history[0].label.as_deref(), Some("Ada"), "the label the base gave is kept in the history");
        assert_eq!(state.link_count("p").unwrap(), 2);
    }

    #[test]
    fn links_are_read_a_page_at_a_time() {
        let folder = tempfile::tempdir().unwrap();
        let state = State::open(&folder.path().join("state.sqlite")).unwrap();
        let links = (1..=7)
            .map(|n| LinkWrite {
                link: LinkRef::New { left_id: n.to_string(), right_id: format!("r{n}") },
                left_version: None,
                right_version: None,
                state: None,
                base: vec![(Side::Left, "name".into(), Value::Text(format!("n{n}")))],
            })
            .collect();
        state.apply("p", Some(1), &Commit { links, ..Commit::default() }).unwrap();
        let mut after = 0;
        let mut pages = Vec::new();
        loop {
            let page = state.links_after("p", after, 3).unwrap();
            let Some(last) = page.last() else { break };
            after = last.link_id;
            pages.push(page.iter().map(|l| l.left_id.clone()).collect::<Vec<_>>().join(","));
        }
        assert_eq!(pages, ["1,2,3", "4,5,6", "7"]);
        let (last, ids) = state.live_linked_ids("p", Side::Right, None, 0, 5).unwrap();
        assert_eq!(ids, ["r1", "r2", "r3", "r4", "r5"]);
        assert_eq!(state.live_linked_ids("p", Side::Right, None, last, 5).unwrap().1, ["r6", "r7"]);
        assert!(state.live_linked_ids("p", Side::Right, Some(1), 0, 5).unwrap().1.is_empty(), "made in run 1: not before it");
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
