//! What each endpoint was, and which host ran this state, when first synced
//! or last confirmed (T5). The engine decides what an identity is and when
//! two differ (`engine::identity`); this keeps them.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now, State, StateError};

/// An identity as kept.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedIdentity {
    pub subject: String,
    /// JSON, as the engine wrote it.
    pub identity: String,
    pub recorded_at: String,
    /// Who confirmed it; `None`: recorded at the first sync.
    pub confirmed_by: Option<String>,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedIdentity> {
    Ok(RecordedIdentity { subject: r.get(0)?, identity: r.get(1)?, recorded_at: r.get(2)?, confirmed_by: r.get(3)? })
}

impl State {
    pub fn recorded_identity(&self, subject: &str) -> Result<Option<RecordedIdentity>, StateError> {
        self.with(|c| {
            c.query_row("SELECT subject, identity, recorded_at, confirmed_by FROM identities WHERE subject = ?1", [subject], row)
                .optional()
        })
    }

    /// Keeps `identity` as what `subject` is from now on.
    pub fn record_identity(&self, subject: &str, identity: &str, confirmed_by: Option<&str>) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO identities (subject, identity, recorded_at, confirmed_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (subject) DO UPDATE SET identity = excluded.identity, recorded_at = excluded.recorded_at,
                    confirmed_by = COALESCE(excluded.confirmed_by, confirmed_by)",
                params![subject, identity, now(), confirmed_by],
            )
        })?;
        Ok(())
    }
}
