//! A replica's exchange store (`<data_dir>/replicas/NAME.sqlite`): the
//! other host's records as its messages said (`mirror`, read by the
//! `replica` connector), this host's changes for it until they are
//! acknowledged (`outbox`, written by the connector), the messages sent,
//! where each side stands (`meta`), and the activity log (D10).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::message::MessageChange;
use super::roles::Role;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- The other host's records; `seq` orders the imports (the connector's change feed).
CREATE TABLE IF NOT EXISTS mirror (
    entity TEXT NOT NULL, key TEXT NOT NULL, fields TEXT NOT NULL, version TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (entity, key)
);
CREATE INDEX IF NOT EXISTS mirror_feed ON mirror (entity, seq);
-- This host's changes for the other, numbered for good (AUTOINCREMENT), kept until acknowledged.
CREATE TABLE IF NOT EXISTS outbox (
    number INTEGER PRIMARY KEY AUTOINCREMENT, entity TEXT NOT NULL, key TEXT NOT NULL,
    kind TEXT NOT NULL, fields TEXT NOT NULL, origin TEXT NOT NULL
);
-- Per field of a record, this host's last change of it (an outbox number),
-- kept after the change is let go: a change of the other host made before
-- it had seen that number is concurrent with it.
CREATE TABLE IF NOT EXISTS local_fields (
    entity TEXT NOT NULL, key TEXT NOT NULL, field TEXT NOT NULL, number INTEGER NOT NULL,
    PRIMARY KEY (entity, key, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent (
    number INTEGER PRIMARY KEY, kind TEXT NOT NULL, swap INTEGER NOT NULL,
    first_change INTEGER NOT NULL, last_change INTEGER NOT NULL, file TEXT, at TEXT NOT NULL, acknowledged_at TEXT
);
CREATE TABLE IF NOT EXISTS activity (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, level TEXT NOT NULL, action TEXT NOT NULL, message TEXT NOT NULL, fix TEXT
);
";

/// Where each side stands, kept in `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The number of the last message this host exported.
    LastSent,
    /// The number of the last message of the other host imported.
    LastReceived,
    /// The last change of the other host applied here.
    LastApplied,
    /// This host's changes the other has acknowledged, through this number.
    Acknowledged,
    /// This host's changes marked received without an acknowledgement (D9).
    Verbal,
    /// The last feed position given to an imported record.
    Feed,
    /// The last message of the other host this host has acknowledged.
    AcknowledgedReceived,
    /// The last data message of the other host imported (acknowledgements
    /// are not acknowledged in turn).
    LastDataReceived,
    /// The last acknowledgement of the other host imported. Numbered with
    /// its data messages, and kept apart: an acknowledgement overtaking a
    /// data message on the way must not make it look imported.
    LastAckReceived,
    /// 1 while the HTTP link is down (its first failure was logged).
    LinkDown,
    /// When the HTTP link last worked (Unix seconds).
    LinkUp,
}

impl Mark {
    fn key(self) -> &'static str {
        match self {
            Mark::LastSent => "last_sent",
            Mark::LastReceived => "last_received",
            Mark::LastApplied => "last_applied",
            Mark::Acknowledged => "acknowledged",
            Mark::Verbal => "verbal",
            Mark::Feed => "feed",
            Mark::AcknowledgedReceived => "acknowledged_received",
            Mark::LastDataReceived => "last_data_received",
            Mark::LastAckReceived => "last_ack_received",
            Mark::LinkDown => "link_down",
            Mark::LinkUp => "link_up",
        }
    }
}

/// One line of the activity log.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub at: String,
    pub level: String,
    pub action: String,
    pub message: String,
    pub fix: Option<String>,
}

/// A message this host exported.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub number: u64,
    pub kind: String,
    pub swap: bool,
    pub first_change: u64,
    pub last_change: u64,
    pub at: String,
    pub acknowledged_at: Option<String>,
}

/// Whose value of a field both hosts changed is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// This host's: the other host takes it from this host's change.
    Ours,
    /// The other host's: this host's pipelines apply it.
    Theirs,
    /// The pipeline's policy names no host (`manual`, by time, mirror): the
    /// later import is applied, and the activity log says how to settle it.
    Unsettled,
}

/// A field both hosts changed, found on import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrent {
    pub entity: String,
    pub key: String,
    pub field: String,
    pub settled: Settled,
}

pub struct Store {
    connection: Connection,
}

fn now() -> String {
    crate::state::now()
}

impl Store {
    /// Opens (making it if needed) the store at `path`; a new one starts in `role`.
    pub fn open(path: &Path, role: Role) -> rusqlite::Result<Store> {
        if let Some(folder) = path.parent() {
            let _ = std::fs::create_dir_all(folder);
        }
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch(SCHEMA)?;
        // Stores made before changes said what they had seen of the other host.
        let has_seen: bool = connection.query_row("SELECT count(*) FROM pragma_table_info('outbox') WHERE name = 'seen'", [], |r| r.get(0))?;
        if !has_seen {
            match connection.execute_batch("ALTER TABLE outbox ADD COLUMN seen INTEGER") {
                // Another process opening the same store added it first.
                Err(e) if e.to_string().contains("duplicate column") => {}
                other => other?,
            }
        }
        connection.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('role', ?1)", [role.as_str()])?;
        Ok(Store { connection })
    }

    pub fn role(&self) -> rusqlite::Result<Role> {
        let text: String = self.connection.query_row("SELECT value FROM meta WHERE key = 'role'", [], |r| r.get(0))?;
        Ok(Role::parse(&text).unwrap_or(Role::Receiver))
    }

    pub fn set_role(&self, role: Role) -> rusqlite::Result<()> {
        self.connection.execute("UPDATE meta SET value = ?1 WHERE key = 'role'", [role.as_str()]).map(drop)
    }

    pub fn mark(&self, mark: Mark) -> rusqlite::Result<u64> {
        let value: Option<String> = self.connection.query_row("SELECT value FROM meta WHERE key = ?1", [mark.key()], |r| r.get(0)).optional()?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub fn set_mark(&self, mark: Mark, value: u64) -> rusqlite::Result<()> {
        self.connection
            .execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![mark.key(), value.to_string()])
            .map(drop)
    }

    /// The number of this host's last change (0: none yet).
    pub fn last_change(&self) -> rusqlite::Result<u64> {
        let last: Option<i64> = self.connection.query_row("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", [], |r| r.get(0)).optional()?;
        Ok(last.unwrap_or(0).max(0) as u64)
    }

    /// This host's changes after number `after`, in order.
    pub fn changes_after(&self, after: u64) -> rusqlite::Result<Vec<MessageChange>> {
        let mut statement = self.connection.prepare("SELECT number, entity, key, kind, fields, seen FROM outbox WHERE number > ?1 ORDER BY number")?;
        let rows = statement.query_map([after as i64], |r| {
            let fields: String = r.get(4)?;
            Ok(MessageChange {
                number: r.get::<_, i64>(0)? as u64,
                entity: r.get(1)?,
                key: r.get(2)?,
                delete: r.get::<_, String>(3)? == "delete",
                fields: serde_json::from_str(&fields).unwrap_or_default(),
                seen: r.get::<_, Option<i64>>(5)?.map(|n| n.max(0) as u64),
            })
        })?;
        rows.collect()
    }

    /// Changes kept for resending, and their size in the store (for status).
    pub fn kept(&self) -> rusqlite::Result<(u64, u64)> {
        self.connection.query_row("SELECT count(*), coalesce(sum(length(fields) + length(key) + length(origin)), 0) FROM outbox", [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
    }

    pub fn record_sent(&self, number: u64, kind: &str, swap: bool, first: u64, last: u64, file: &str) -> rusqlite::Result<()> {
        self.connection
            .execute(
                "INSERT OR REPLACE INTO sent (number, kind, swap, first_change, last_change, file, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![number as i64, kind, swap, first as i64, last as i64, file, now()],
            )
            .map(drop)
    }

    pub fn sent(&self, limit: u32) -> rusqlite::Result<Vec<Sent>> {
        let mut statement =
            self.connection.prepare("SELECT number, kind, swap, first_change, last_change, at, acknowledged_at FROM sent ORDER BY number DESC LIMIT ?1")?;
        let rows = statement.query_map([limit], |r| {
            Ok(Sent {
                number: r.get::<_, i64>(0)? as u64,
                kind: r.get(1)?,
                swap: r.get(2)?,
                first_change: r.get::<_, i64>(3)? as u64,
                last_change: r.get::<_, i64>(4)? as u64,
                at: r.get(5)?,
                acknowledged_at: r.get(6)?,
            })
        })?;
        rows.collect()
    }

    /// The last data message sent, if it is not acknowledged yet.
    pub fn unacknowledged_data(&self) -> rusqlite::Result<Option<Sent>> {
        Ok(self.sent(1)?.into_iter().next().filter(|s| s.kind == "data" && s.acknowledged_at.is_none()))
    }

    /// An acknowledgement: this host's changes through `change` and its
    /// messages through `message` are received; what was kept to resend
    /// them goes (D11). Returns how many changes went.
    pub fn acknowledge(&mut self, message: u64, change: u64) -> rusqlite::Result<u64> {
        let transaction = self.connection.transaction()?;
        let pruned = transaction.execute("DELETE FROM outbox WHERE number <= ?1", [change as i64])? as u64;
        transaction.execute("UPDATE sent SET acknowledged_at = ?2 WHERE number <= ?1 AND acknowledged_at IS NULL", params![message as i64, now()])?;
        transaction.execute(
            "INSERT INTO meta (key, value) VALUES ('acknowledged', ?1)
             ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            [change.to_string()],
        )?;
        transaction.commit()?;
        Ok(pruned)
    }

    /// The other host's changes, applied to the mirror in one transaction
    /// with where this host now stands. A field this host changed after what
    /// the change's sender had seen of it is concurrent: `settle` says
    /// whose value the pipelines keep (the same on both hosts when their
    /// policies agree); this host's value stays in the mirror when it wins.
    pub fn apply(
        &mut self,
        changes: &[MessageChange],
        last_applied: u64,
        last_received: u64,
        settle: &dyn Fn(&str, &str) -> Settled,
    ) -> rusqlite::Result<Vec<Concurrent>> {
        let transaction = self.connection.transaction()?;
        let mut concurrent = Vec::new();
        {
            let mut feed: i64 =
                transaction.query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'feed'", [], |r| r.get(0)).optional()?.unwrap_or(0);
            let mut current = transaction.prepare("SELECT fields FROM mirror WHERE entity = ?1 AND key = ?2")?;
            let mut changed_here = transaction.prepare("SELECT field, number FROM local_fields WHERE entity = ?1 AND key = ?2")?;
            let mut upsert = transaction.prepare(
                "INSERT INTO mirror (entity, key, fields, version, deleted, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (entity, key) DO UPDATE SET fields = excluded.fields, version = excluded.version, deleted = excluded.deleted, seq = excluded.seq",
            )?;
            for change in changes {
                let mut incoming = change.fields.clone();
                if let (Some(seen), false) = (change.seen, change.delete) {
                    let local: Vec<(String, i64)> = changed_here.query_map(params![change.entity, change.key], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
                    for (field, number) in local {
                        if number as u64 > seen && incoming.contains_key(&field) {
                            let settled = settle(&change.entity, &field);
                            if settled == Settled::Ours {
                                incoming.remove(&field);
                            }
                            concurrent.push(Concurrent { entity: change.entity.clone(), key: change.key.clone(), field, settled });
                        }
                    }
                    if incoming.is_empty() && !change.fields.is_empty() {
                        continue;
                    }
                }
                let known: Option<String> = current.query_row(params![change.entity, change.key], |r| r.get(0)).optional()?;
                let mut fields: serde_json::Map<String, serde_json::Value> = known.and_then(|k| serde_json::from_str(&k).ok()).unwrap_or_default();
                fields.extend(incoming);
                feed += 1;
                upsert.execute(params![
                    change.entity,
                    change.key,
                    serde_json::Value::Object(fields).to_string(),
                    format!("i{feed}"),
                    change.delete,
                    feed
                ])?;
            }
            for (key, value) in [("feed", feed.to_string()), ("last_applied", last_applied.to_string()), ("last_received", last_received.to_string())] {
                transaction.execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![key, value])?;
            }
        }
        transaction.commit()?;
        Ok(concurrent)
    }

    pub fn log(&self, level: &str, action: &str, message: &str, fix: Option<&str>) -> rusqlite::Result<()> {
        self.connection
            .execute("INSERT INTO activity (at, level, action, message, fix) VALUES (?1, ?2, ?3, ?4, ?5)", params![now(), level, action, message, fix])
            .map(drop)
    }

    /// The activity log, newest last.
    pub fn activity(&self, limit: u32) -> rusqlite::Result<Vec<Activity>> {
        let mut statement = self.connection.prepare("SELECT at, level, action, message, fix FROM (SELECT * FROM activity ORDER BY id DESC LIMIT ?1) ORDER BY id")?;
        let rows = statement.query_map([limit], |r| Ok(Activity { at: r.get(0)?, level: r.get(1)?, action: r.get(2)?, message: r.get(3)?, fix: r.get(4)? }))?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(number: u64, phone: &str, seen: Option<u64>) -> MessageChange {
        let mut fields = serde_json::Map::new();
        fields.insert("phone".into(), serde_json::json!({ "text": phone }));
        fields.insert("name".into(), serde_json::json!({ "text": "Ada" }));
        MessageChange { number, entity: "contacts".into(), key: "hq:1".into(), delete: false, fields, seen }
    }

    /// The store with this host's change of `phone` as the replica connector writes it (change 1).
    fn store_with_local_change() -> (tempfile::TempDir, Store) {
        let folder = tempfile::tempdir().unwrap();
        let mut store = Store::open(&folder.path().join("office.sqlite"), Role::Receiver).unwrap();
        store.apply(&[change(1, "p", Some(0))], 1, 1, &|_, _| Settled::Unsettled).unwrap();
        store
            .connection
            .execute_batch(
                "INSERT INTO outbox (entity, key, kind, fields, origin, seen) VALUES ('contacts', 'hq:1', 'upsert', '{\"phone\":{\"text\":\"mine\"}}', 'o', 1);
                 INSERT INTO local_fields VALUES ('contacts', 'hq:1', 'phone', 1);
                 UPDATE mirror SET fields = json_set(fields, '$.phone', json('{\"text\":\"mine\"}'));",
            )
            .unwrap();
        (folder, store)
    }

    fn phone(store: &Store) -> String {
        store.connection.query_row("SELECT fields ->> '$.phone.text' FROM mirror", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_change_made_before_the_other_host_saw_ours_is_settled_by_the_policy() {
        let (_folder, mut store) = store_with_local_change();
        let found = store.apply(&[change(2, "theirs", Some(0))], 2, 2, &|_, _| Settled::Ours).unwrap();
        assert_eq!(found, vec![Concurrent { entity: "contacts".into(), key: "hq:1".into(), field: "phone".into(), settled: Settled::Ours }]);
        assert_eq!(phone(&store), "mine", "this host's value stays: the other host takes it");

        let (_folder, mut store) = store_with_local_change();
        let found = store.apply(&[change(2, "theirs", Some(0))], 2, 2, &|_, _| Settled::Theirs).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(phone(&store), "theirs");
    }

    #[test]
    fn a_change_made_after_the_other_host_saw_ours_is_not_concurrent() {
        let (_folder, mut store) = store_with_local_change();
        let found = store.apply(&[change(2, "later", Some(1))], 2, 2, &|_, _| Settled::Ours).unwrap();
        assert!(found.is_empty());
        assert_eq!(phone(&store), "later");
        // A message of a host that does not say what it saw is applied as it comes.
        let found = store.apply(&[change(3, "old host", None)], 3, 3, &|_, _| Settled::Ours).unwrap();
        assert!(found.is_empty());
        assert_eq!(phone(&store), "old host");
    }
}
