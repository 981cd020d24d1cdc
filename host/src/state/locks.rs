//! Scope locks (L2-L4), the changes they hold back, and undone runs (L5).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now, State, StateError};
use crate::config::Side;

/// A locked scope.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LockRow {
    pub scope: String,
    pub holder: String,
    /// The endpoint whose changes are the holder's.
    pub endpoint: String,
    pub since: String,
    pub last_activity: String,
    /// How it was taken.
    pub how: LockHow,
}

/// How a lock was taken.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LockHow {
    /// A person locked it (the API, the command line).
    Lock,
    /// The editor's endpoint started changing the scope while nobody held it.
    AutoLock,
}

impl LockHow {
    pub fn as_str(self) -> &'static str {
        match self {
            LockHow::Lock => "lock",
            LockHow::AutoLock => "auto-lock",
        }
    }

    fn parse(text: &str) -> LockHow {
        if text == "auto-lock" {
            LockHow::AutoLock
        } else {
            LockHow::Lock
        }
    }
}

/// What the lock log records.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LockAction {
    Lock,
    AutoLock,
    Release,
    IdleRelease,
    ForcedUnlock,
    Refused,
}

impl LockAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LockAction::Lock => "lock",
            LockAction::AutoLock => "auto-lock",
            LockAction::Release => "release",
            LockAction::IdleRelease => "idle-release",
            LockAction::ForcedUnlock => "forced-unlock",
            LockAction::Refused => "refused",
        }
    }
}

/// One line of the lock log.
#[derive(Debug, Clone, Serialize)]
pub struct LockLogRow {
    pub id: i64,
    pub scope: String,
    pub at: String,
    pub action: String,
    pub holder: Option<String>,
    pub by: String,
    pub why: String,
}

/// A change held back by a lock.
#[derive(Debug, Clone, Serialize)]
pub struct HeldRow {
    pub id: i64,
    pub scope: String,
    pub pipeline: String,
    pub side: String,
    pub source_id: String,
    pub target_id: Option<String>,
    pub summary: String,
    #[serde(skip)]
    pub change: String,
    pub holder: String,
    pub held_at: String,
    pub label: Option<String>,
}

/// Whether a held change is new, or replaces one held for the same record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    New(i64),
    Replaced(i64),
}

/// Whether a run was undone or made again.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UndoState {
    Undone,
    Redone,
}

impl UndoState {
    fn as_str(self) -> &'static str {
        match self {
            UndoState::Undone => "undone",
            UndoState::Redone => "redone",
        }
    }
}

fn lock_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LockRow> {
    Ok(LockRow {
        scope: r.get(0)?,
        holder: r.get(1)?,
        endpoint: r.get(2)?,
        since: r.get(3)?,
        last_activity: r.get(4)?,
        how: LockHow::parse(&r.get::<_, String>(5)?),
    })
}

const HELD_COLUMNS: &str = "id, scope, pipeline, side, source_id, target_id, summary, change, holder, held_at, label";

fn held_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HeldRow> {
    Ok(HeldRow {
        id: r.get(0)?,
        scope: r.get(1)?,
        pipeline: r.get(2)?,
        side: r.get(3)?,
        source_id: r.get(4)?,
        target_id: r.get(5)?,
        summary: r.get(6)?,
        change: r.get(7)?,
        holder: r.get(8)?,
        held_at: r.get(9)?,
        label: r.get(10)?,
    })
}

impl State {
    /// The lock on a scope, if one is held.
    pub fn scope_lock(&self, scope: &str) -> Result<Option<LockRow>, StateError> {
        self.with(|c| {
            c.query_row("SELECT scope, holder, endpoint, since, last_activity, how FROM scope_locks WHERE scope = ?1", [scope], lock_row)
                .optional()
        })
    }

    /// Every lock held.
    pub fn scope_locks(&self) -> Result<Vec<LockRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare("SELECT scope, holder, endpoint, since, last_activity, how FROM scope_locks ORDER BY scope")?;
            s.query_map([], lock_row)?.collect()
        })
    }

    /// Takes a scope's lock unless someone holds it; returns the lock held
    /// afterwards (the caller's, or the one in the way). Logged.
    pub fn take_scope_lock(&self, scope: &str, holder: &str, endpoint: &str, how: LockHow, why: &str) -> Result<(bool, LockRow), StateError> {
        self.with(|c| {
            let transaction = c.transaction()?;
            let at = now();
            let taken = transaction.execute(
                "INSERT INTO scope_locks (scope, holder, endpoint, since, last_activity, how) VALUES (?1, ?2, ?3, ?4, ?4, ?5)
                 ON CONFLICT (scope) DO NOTHING",
                params![scope, holder, endpoint, at, how.as_str()],
            )? == 1;
            if taken {
                let action = if how == LockHow::AutoLock { LockAction::AutoLock } else { LockAction::Lock };
                log(&transaction, scope, action, Some(holder), holder, why)?;
            }
            let row = transaction.query_row("SELECT scope, holder, endpoint, since, last_activity, how FROM scope_locks WHERE scope = ?1", [scope], lock_row)?;
            transaction.commit()?;
            Ok((taken, row))
        })
    }

    /// Releases a scope's lock if `holder` still holds it (a release that
    /// raced another is a no-op); logged with who and why.
    pub fn release_scope_lock(&self, scope: &str, holder: &str, action: LockAction, by: &str, why: &str) -> Result<bool, StateError> {
        self.with(|c| {
            let transaction = c.transaction()?;
            let released = transaction.execute("DELETE FROM scope_locks WHERE scope = ?1 AND holder = ?2", params![scope, holder])? == 1;
            if released {
                log(&transaction, scope, action, Some(holder), by, why)?;
            }
            transaction.commit()?;
            Ok(released)
        })
    }

    /// Records a refused lock action (a forced unlock without the permission).
    pub fn log_lock_refusal(&self, scope: &str, holder: Option<&str>, by: &str, why: &str) -> Result<(), StateError> {
        self.with(|c| log(c, scope, LockAction::Refused, holder, by, why))
    }

    /// The holder changed something in the scope: the idle timeout starts again.
    pub fn touch_scope_lock(&self, scope: &str) -> Result<(), StateError> {
        self.with(|c| c.execute("UPDATE scope_locks SET last_activity = ?2 WHERE scope = ?1", params![scope, now()]).map(drop))
    }

    /// The lock log, newest first.
    pub fn lock_log(&self, scope: Option<&str>, limit: u32) -> Result<Vec<LockLogRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare("SELECT id, scope, at, action, holder, by, why FROM lock_log WHERE ?1 IS NULL OR scope = ?1 ORDER BY id DESC LIMIT ?2")?;
            s.query_map(params![scope, limit], |r| {
                Ok(LockLogRow { id: r.get(0)?, scope: r.get(1)?, at: r.get(2)?, action: r.get(3)?, holder: r.get(4)?, by: r.get(5)?, why: r.get(6)? })
            })?
            .collect()
        })
    }

    /// Holds a change back (a newer change of the same record replaces it).
    #[allow(clippy::too_many_arguments)]
    pub fn hold_change(
        &self,
        scope: &str,
        pipeline: &str,
        side: Side,
        source_id: &str,
        target_id: Option<&str>,
        summary: &str,
        change: &str,
        holder: &str,
        label: Option<&str>,
    ) -> Result<Held, StateError> {
        self.with(|c| {
            let transaction = c.transaction()?;
            let existing: Option<i64> = transaction
                .query_row("SELECT id FROM held_changes WHERE pipeline = ?1 AND side = ?2 AND source_id = ?3", params![pipeline, side.as_str(), source_id], |r| r.get(0))
                .optional()?;
            let held = match existing {
                Some(id) => {
                    transaction.execute(
                        "UPDATE held_changes SET summary = ?2, change = ?3, target_id = ?4, label = coalesce(?5, label) WHERE id = ?1",
                        params![id, summary, change, target_id, label],
                    )?;
                    Held::Replaced(id)
                }
                None => {
                    transaction.execute(
                        "INSERT INTO held_changes (scope, pipeline, side, source_id, target_id, summary, change, holder, held_at, label)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![scope, pipeline, side.as_str(), source_id, target_id, summary, change, holder, now(), label],
                    )?;
                    Held::New(transaction.last_insert_rowid())
                }
            };
            transaction.commit()?;
            Ok(held)
        })
    }

    /// Changes held back: of a scope, or of a pipeline.
    pub fn held_changes(&self, scope: Option<&str>, pipeline: Option<&str>) -> Result<Vec<HeldRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {HELD_COLUMNS} FROM held_changes WHERE (?1 IS NULL OR scope = ?1) AND (?2 IS NULL OR pipeline = ?2) ORDER BY id"
            ))?;
            s.query_map(params![scope, pipeline], held_row)?.collect()
        })
    }

    /// A held change was driven through the engine again.
    pub fn drop_held(&self, ids: &[i64]) -> Result<(), StateError> {
        let ids = serde_json::to_string(ids).expect("numbers serialize");
        self.with(|c| c.execute("DELETE FROM held_changes WHERE id IN (SELECT value FROM json_each(?1))", [ids]).map(drop))
    }

    /// Whether a run was undone or made again, if either.
    pub fn undo_state(&self, run_id: i64) -> Result<Option<UndoState>, StateError> {
        self.with(|c| {
            c.query_row("SELECT state FROM run_undos WHERE run_id = ?1", [run_id], |r| r.get::<_, String>(0))
                .optional()
                .map(|state| state.map(|s| if s == "undone" { UndoState::Undone } else { UndoState::Redone }))
        })
    }

    /// Records that a run was undone or made again, by whom, in which run.
    pub fn record_undo(&self, run_id: i64, state: UndoState, by: &str, by_run: Option<i64>) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO run_undos (run_id, state, by, at, by_run) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, by = excluded.by, at = excluded.at, by_run = excluded.by_run",
                params![run_id, state.as_str(), by, now(), by_run],
            )
            .map(drop)
        })
    }

    /// A run's pipeline, if the run exists.
    pub fn run_pipeline(&self, run_id: i64) -> Result<Option<String>, StateError> {
        self.with(|c| c.query_row("SELECT pipeline FROM runs WHERE run_id = ?1", [run_id], |r| r.get(0)).optional())
    }

    /// The entries of one run that wrote values, oldest first.
    pub fn run_writes(&self, run_id: i64) -> Result<Vec<super::HistoryRow>, StateError> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT id, run_id, at, left_id, right_id, action, target, origin, fields, rule, message, label, records FROM history
                 WHERE run_id = ?1 AND target IS NOT NULL ORDER BY id",
            )?;
            s.query_map([run_id], |r| {
                Ok(super::HistoryRow {
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
}

fn log(c: &rusqlite::Connection, scope: &str, action: LockAction, holder: Option<&str>, by: &str, why: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO lock_log (scope, at, action, holder, by, why) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![scope, now(), action.as_str(), holder, by, why],
    )
    .map(drop)
}
