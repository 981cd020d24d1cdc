//! Intents: records to drive through the engine again at the start of the
//! next run, because a create was sent without its outcome being committed
//! (a crash, a timeout) or because they were queued for it.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};

use super::{now, State, StateError};
use crate::config::Side;

impl State {
    /// Records creates about to be written, before they are written. Returns
    /// those that were written before without a committed outcome: sent again,
    /// they may make a second record unless the target finds them by origin.
    pub fn add_intents(&self, pipeline: &str, side: Side, source_ids: &[String]) -> Result<BTreeSet<String>, StateError> {
        let ids = serde_json::to_string(source_ids).expect("strings serialize");
        self.with(|c| {
            let transaction = c.transaction()?;
            let repeated: BTreeSet<String> = transaction
                .prepare_cached(
                    "SELECT source_id FROM intents WHERE pipeline = ?1 AND side = ?2 AND state = 'written'
                     AND source_id IN (SELECT value FROM json_each(?3))",
                )?
                .query_map(params![pipeline, side.as_str(), ids], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            transaction
                .prepare_cached(
                    "INSERT INTO intents (pipeline, side, source_id, at, state) SELECT ?1, ?2, value, ?4, 'written' FROM json_each(?3) WHERE true
                     ON CONFLICT (pipeline, side, source_id) DO UPDATE SET state = 'written', at = excluded.at",
                )?
                .execute(params![pipeline, side.as_str(), ids, now()])?;
            transaction.commit()?;
            Ok(repeated)
        })
    }

    /// Marks creates as not sent after all (the target refused their batch
    /// as a whole before it applied anything): the next run drives them again
    /// as first tries.
    pub fn requeue_intents(&self, pipeline: &str, side: Side, source_ids: &[String]) -> Result<(), StateError> {
        self.with(|c| {
            c.prepare_cached("UPDATE intents SET state = 'queued' WHERE pipeline = ?1 AND side = ?2 AND source_id IN (SELECT value FROM json_each(?3))")?
                .execute(params![pipeline, side.as_str(), serde_json::to_string(source_ids).unwrap_or_default()])?;
            Ok(())
        })
    }

    /// When the linked records of a pipeline's side were last looked up for
    /// deletes that leave no trace.
    pub fn presence_checked_at(&self, pipeline: &str, side: Side) -> Result<Option<chrono::DateTime<chrono::Utc>>, StateError> {
        let at: Option<String> = self.with(|c| {
            c.query_row("SELECT at FROM presence_checks WHERE pipeline = ?1 AND side = ?2", params![pipeline, side.as_str()], |r| r.get(0)).optional()
        })?;
        Ok(at.and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok()).map(|at| at.with_timezone(&chrono::Utc)))
    }

    pub fn note_presence_check(&self, pipeline: &str, side: Side) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO presence_checks (pipeline, side, at) VALUES (?1, ?2, ?3) ON CONFLICT (pipeline, side) DO UPDATE SET at = excluded.at",
                params![pipeline, side.as_str(), now()],
            )?;
            Ok(())
        })
    }

    /// Records waiting to go through the engine again at the start of the next
    /// run: creates a crash left unfinished, and queued ones (`only_queued`:
    /// just those).
    pub fn intents(&self, pipeline: &str, only_queued: bool) -> Result<Vec<(Side, String)>, StateError> {
        self.with(|c| {
            let mut statement =
                c.prepare("SELECT side, source_id FROM intents WHERE pipeline = ?1 AND (?2 = 0 OR state = 'queued') ORDER BY side, source_id")?;
            statement
                .query_map(params![pipeline, only_queued], |r| Ok((Side::parse(&r.get::<_, String>(0)?).unwrap_or(Side::Left), r.get(1)?)))?
                .collect()
        })
    }
}
