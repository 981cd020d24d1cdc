//! The configs a running host loaded, and a pipeline's state under another
//! name or none: what a reload, `pipelines forget` and `pipelines rename` keep.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now, State, StateError};

/// How a config load or reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadOutcome {
    /// The config the host started with.
    Loaded,
    /// A new config is serving.
    Applied,
    /// The new config was refused; the one before keeps serving.
    Rejected,
    /// Files were touched, nothing in them changed.
    Unchanged,
}

impl ReloadOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Loaded => "loaded",
            ReloadOutcome::Applied => "applied",
            ReloadOutcome::Rejected => "rejected",
            ReloadOutcome::Unchanged => "unchanged",
        }
    }
}

impl ToSql for ReloadOutcome {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for ReloadOutcome {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "loaded" => Ok(ReloadOutcome::Loaded),
            "applied" => Ok(ReloadOutcome::Applied),
            "rejected" => Ok(ReloadOutcome::Rejected),
            "unchanged" => Ok(ReloadOutcome::Unchanged),
            other => Err(FromSqlError::Other(format!("unknown reload outcome `{other}`").into())),
        }
    }
}

/// What made the host read its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadTrigger {
    /// `synchost run` started.
    Start,
    /// The config file or a plugin file changed.
    File,
    /// SIGHUP, which `synchost reload` sends.
    Signal,
}

impl ReloadTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Start => "start",
            ReloadTrigger::File => "file",
            ReloadTrigger::Signal => "signal",
        }
    }
}

/// One load or reload, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadRow {
    pub id: i64,
    pub at: String,
    pub trigger: String,
    pub outcome: ReloadOutcome,
    /// The revision serving after it.
    pub revision: String,
    pub summary: String,
    /// The diff (applied), or the reasons with their fixes (rejected).
    pub detail: Option<serde_json::Value>,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReloadRow> {
    let detail: Option<String> = r.get(6)?;
    Ok(ReloadRow {
        id: r.get(0)?,
        at: r.get(1)?,
        trigger: r.get(2)?,
        outcome: r.get(3)?,
        revision: r.get(4)?,
        summary: r.get(5)?,
        detail: detail.and_then(|text| serde_json::from_str(&text).ok()),
    })
}

const COLUMNS: &str = "id, at, trigger, outcome, revision, summary, detail";

/// Every table that holds a pipeline's state by its name.
const BY_NAME: &[&str] = &["cursors", "runs", "history", "failed_items", "conflicts", "events", "health", "intents", "approvals", "presence_checks"];

/// Why a pipeline's state could not be renamed.
#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    #[error("no pipeline named `{0}` has state here")]
    NoState(String),
    #[error("`{0}` already has state of its own")]
    Taken(String),
    #[error("{0}")]
    State(#[from] StateError),
}

impl State {
    /// Records a load or reload; returns its id.
    pub fn record_reload(&self, trigger: ReloadTrigger, outcome: ReloadOutcome, revision: &str, summary: &str, detail: Option<&serde_json::Value>) -> Result<i64, StateError> {
        let detail = detail.map(|d| crate::secrets::redacted(&d.to_string()));
        self.with(|c| {
            c.execute(
                "INSERT INTO reloads (at, trigger, outcome, revision, summary, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now(), trigger.as_str(), outcome, revision, crate::secrets::redacted(summary), detail],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// The latest loads and reloads, newest first.
    pub fn reloads(&self, limit: u32) -> Result<Vec<ReloadRow>, StateError> {
        self.with(|c| {
            let mut statement = c.prepare(&format!("SELECT {COLUMNS} FROM reloads ORDER BY id DESC LIMIT ?1"))?;
            statement.query_map([limit], row)?.collect()
        })
    }

    /// Loads and reloads after the one with id `after`, oldest first.
    pub fn reloads_after(&self, after: i64) -> Result<Vec<ReloadRow>, StateError> {
        self.with(|c| {
            let mut statement = c.prepare(&format!("SELECT {COLUMNS} FROM reloads WHERE id > ?1 ORDER BY id"))?;
            statement.query_map([after], row)?.collect()
        })
    }

    /// The load or reload that made the config now serving what it is.
    pub fn serving_config(&self) -> Result<Option<ReloadRow>, StateError> {
        self.with(|c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM reloads WHERE outcome IN ('loaded', 'applied') ORDER BY id DESC LIMIT 1"), [], row)
                .optional()
        })
    }

    /// Whether a pipeline has state a sync depends on: links or cursors.
    pub fn pipeline_has_state(&self, pipeline: &str) -> Result<bool, StateError> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM links WHERE pipe = {pipe}) OR EXISTS (SELECT 1 FROM cursors WHERE pipeline = ?1)",
                    pipe = super::PIPE
                ),
                [pipeline],
                |r| r.get(0),
            )
        })
    }

    /// Pipelines with links or cursors, by name.
    pub fn pipelines_with_state(&self) -> Result<Vec<String>, StateError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT name FROM pipelines p WHERE EXISTS (SELECT 1 FROM links l WHERE l.pipe = p.pipe)
                 UNION SELECT pipeline FROM cursors ORDER BY 1",
            )?;
            statement.query_map([], |r| r.get(0))?.collect()
        })
    }

    /// Deletes everything kept for a pipeline; returns how many links went.
    pub fn forget_pipeline(&self, pipeline: &str) -> Result<u64, StateError> {
        self.with(|c| {
            let transaction = c.transaction()?;
            let links = transaction.execute(&format!("DELETE FROM links WHERE pipe = {}", super::PIPE), [pipeline])? as u64;
            transaction.execute("DELETE FROM pipelines WHERE name = ?1", [pipeline])?;
            for table in BY_NAME {
                transaction.execute(&format!("DELETE FROM {table} WHERE pipeline = ?1"), [pipeline])?;
            }
            transaction.commit()?;
            Ok(links)
        })
    }

    /// Gives `old`'s state to `new`, which must have none of its own (a
    /// pause or an event it got as a new pipeline is replaced).
    pub fn rename_pipeline(&self, old: &str, new: &str) -> Result<(), RenameError> {
        if !self.pipeline_has_state(old)? {
            return Err(RenameError::NoState(old.to_owned()));
        }
        if self.pipeline_has_state(new)? {
            return Err(RenameError::Taken(new.to_owned()));
        }
        Ok(self.with(|c| {
            let transaction = c.transaction()?;
            transaction.execute("DELETE FROM pipelines WHERE name = ?1", [new])?;
            transaction.execute("UPDATE pipelines SET name = ?2 WHERE name = ?1", [old, new])?;
            for table in BY_NAME {
                if *table != "events" && *table != "runs" && *table != "history" {
                    transaction.execute(&format!("DELETE FROM {table} WHERE pipeline = ?1"), [new])?;
                }
                transaction.execute(&format!("UPDATE {table} SET pipeline = ?2 WHERE pipeline = ?1"), [old, new])?;
            }
            transaction.commit()
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Side;
    use crate::state::{Commit, LinkRef, LinkWrite};

    fn linked(state: &State, pipeline: &str) {
        let commit = Commit {
            cursor: Some((Side::Left, Some("c1".into()))),
            links: vec![LinkWrite {
                link: LinkRef::New { left_id: "1".into(), right_id: "a".into() },
                left_version: None,
                right_version: None,
                state: None,
                base: Vec::new(),
            }],
            ..Default::default()
        };
        state.apply(pipeline, None, &commit).unwrap();
    }

    #[test]
    fn a_renamed_pipeline_keeps_its_links_and_cursors_and_a_forgotten_one_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.sqlite")).unwrap();
        linked(&state, "old");
        state.event("info", Some("old"), None, "was here", None).unwrap();
        // The new name got a pause as a possible rename: replaced by the old state.
        state.set_paused("new", Some("reload")).unwrap();

        state.rename_pipeline("old", "new").unwrap();
        assert!(!state.pipeline_has_state("old").unwrap());
        assert!(state.pipeline_has_state("new").unwrap());
        assert_eq!(state.cursor("new", Side::Left).unwrap().as_deref(), Some("c1"));
        assert!(state.health("new").unwrap().is_none_or(|h| h.state != "paused"));

        linked(&state, "other");
        assert!(matches!(state.rename_pipeline("other", "new"), Err(RenameError::Taken(_))));
        assert!(matches!(state.rename_pipeline("nothing", "x"), Err(RenameError::NoState(_))));

        assert_eq!(state.forget_pipeline("new").unwrap(), 1);
        assert_eq!(state.pipelines_with_state().unwrap(), vec!["other".to_owned()]);
    }

    #[test]
    fn the_serving_config_is_the_latest_loaded_or_applied() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.sqlite")).unwrap();
        state.record_reload(ReloadTrigger::Start, ReloadOutcome::Loaded, "r1", "3 pipelines", None).unwrap();
        state.record_reload(ReloadTrigger::File, ReloadOutcome::Rejected, "r1", "a syntax error", None).unwrap();
        assert_eq!(state.serving_config().unwrap().unwrap().revision, "r1");
        let id = state.record_reload(ReloadTrigger::Signal, ReloadOutcome::Applied, "r2", "pipeline p changed", None).unwrap();
        assert_eq!(state.serving_config().unwrap().unwrap().id, id);
        assert_eq!(state.reloads(10).unwrap().iter().map(|r| r.outcome).collect::<Vec<_>>(), [ReloadOutcome::Applied, ReloadOutcome::Rejected, ReloadOutcome::Loaded]);
        assert_eq!(state.reloads_after(1).unwrap().len(), 2);
    }
}
