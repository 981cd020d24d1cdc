//! A connector to a notes table in a SQLite database the admin grants:
//!
//! ```sql
//! CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT,
//!                     updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
//! ```
//!
//! Changes are read in the order of (updated_at, id), so the cursor never
//! skips or repeats one; a write checks the version the host expects and
//! reports a conflict when the note changed since.

use serde::Deserialize;
use synchost_plugin_sdk::host::{BatchMode, Sql, Statement};
use synchost_plugin_sdk::prelude::*;

#[derive(Deserialize)]
struct Settings {
    /// The granted connection (`[endpoints.X.grants.sql.NAME]`).
    connection: String,
}

pub struct Notes {
    db: Sql,
}

const ENTITY: &str = "notes";
const COLUMNS: &str = "id, title, body, updated_at";

fn note(row: &[Value]) -> Record {
    let mut record = Record::new(row[0].to_display_string()).with("title", row[1].clone()).with("body", row[2].clone());
    record.version = row[3].as_str().map(str::to_owned);
    record
}

fn check_entity(entity: &str) -> Result<(), Error> {
    if entity == ENTITY {
        Ok(())
    } else {
        Err(Error::new("unknown-entity", format!("there is no entity `{entity}`")).with_hint("this connector has one entity: notes"))
    }
}

impl Notes {
    /// The note's current row, if it exists.
    fn current(&self, id: &str) -> Result<Option<Record>, Error> {
        let rows = self.db.query(&format!("SELECT {COLUMNS} FROM notes WHERE id = ?1"), &[Value::Text(id.to_owned())])?;
        Ok(rows.rows.first().map(|row| note(row)))
    }

    fn statement(change: &Change) -> Statement {
        let value = |name: &str| change.fields.iter().find(|f| f.name == name).map(|f| f.value.clone());
        let stamp = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
        match (&change.kind, &change.target_id) {
            (ChangeKind::Delete, Some(id)) => Statement { sql: "DELETE FROM notes WHERE id = ?1".into(), params: vec![Value::Text(id.clone())] },
            (_, Some(id)) => Statement {
                sql: format!("UPDATE notes SET title = coalesce(?2, title), body = CASE WHEN ?4 THEN ?3 ELSE body END, updated_at = {stamp} WHERE id = ?1 RETURNING {COLUMNS}"),
                params: vec![Value::Text(id.clone()), value("title").unwrap_or(Value::Null), value("body").unwrap_or(Value::Null), Value::Boolean(value("body").is_some())],
            },
            (_, None) => Statement {
                sql: format!("INSERT INTO notes (title, body, updated_at) VALUES (?1, ?2, {stamp}) RETURNING {COLUMNS}"),
                params: vec![value("title").unwrap_or(Value::Null), value("body").unwrap_or(Value::Null)],
            },
        }
    }
}

impl Connector for Notes {
    fn new(context: &Context) -> Result<Self, Error> {
        let settings: Settings = context.settings()?;
        Ok(Notes { db: Sql::connection(settings.connection) })
    }

    fn describe(&self) -> Result<Vec<EntityDef>, Error> {
        let field = |name: &str, type_: FieldType, nullable: bool, read_only: bool| FieldDef { name: name.into(), type_, nullable, read_only };
        Ok(vec![EntityDef {
            name: ENTITY.into(),
            key: "id".into(),
            fields: vec![field("id", FieldType::Integer, false, true), field("title", FieldType::Text, false, false), field("body", FieldType::Text, true, false)],
            change_feed: true,
            soft_delete: false,
            writable: true,
            finds_by_origin: false,
        }])
    }

    fn read(&mut self, entity: &str, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Error> {
        check_entity(entity)?;
        // The cursor is the last (updated_at, id) returned: the next page starts after it.
        let (after_time, after_id) = match cursor.as_deref().and_then(|c| c.rsplit_once('|')) {
            Some((time, id)) => (time.to_owned(), id.parse::<i64>().unwrap_or(0)),
            None => (String::new(), 0),
        };
        let rows = self.db.query(
            &format!("SELECT {COLUMNS} FROM notes WHERE (updated_at, id) > (?1, ?2) ORDER BY updated_at, id LIMIT ?3"),
            &[Value::Text(after_time), Value::Integer(after_id), Value::Integer(i64::from(limit))],
        )?;
        let records: Vec<Record> = rows.rows.iter().map(|row| note(row)).collect();
        let next = records.last().map(|last| format!("{}|{}", last.version.clone().unwrap_or_default(), last.id)).or(cursor);
        Ok(ReadBatch { has_more: records.len() as u32 == limit, records, cursor: next })
    }

    fn fetch(&mut self, entity: &str, ids: Vec<String>) -> Result<Vec<Record>, Error> {
        check_entity(entity)?;
        let mut found = Vec::new();
        for id in ids {
            found.extend(self.current(&id)?);
        }
        Ok(found)
    }

    fn write(&mut self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        check_entity(entity)?;
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in &changes {
            // Another writer may have changed the note since the host read it.
            if let (Some(id), Some(expected)) = (&change.target_id, &change.expected_version) {
                match self.current(id)? {
                    Some(now) if now.version.as_ref() != Some(expected) => {
                        outcomes.push(Outcome::Conflict(now.into()));
                        continue;
                    }
                    None if change.kind != ChangeKind::Delete => {
                        outcomes.push(Outcome::Rejected(Error::new("not-found", format!("note {id} does not exist")).into()));
                        continue;
                    }
                    _ => {}
                }
            }
            let mut results = self.db.execute(&[Self::statement(change)], BatchMode::EachAlone)?;
            outcomes.push(match results.remove(0) {
                Ok(executed) => match (executed.returned.first(), &change.target_id) {
                    (Some(row), _) => {
                        let written = note(row);
                        Outcome::Applied(Applied { id: written.id, version: written.version })
                    }
                    (None, Some(id)) => Outcome::Applied(Applied { id: id.clone(), version: None }),
                    (None, None) => Outcome::Rejected(Error::new("not-written", "the insert returned no row").into()),
                },
                Err(error) => Outcome::Rejected(error.into()),
            });
        }
        Ok(outcomes)
    }
}

export_connector!(Notes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_one_writable_entity_with_a_change_feed() {
        let notes = Notes { db: Sql::connection("db") };
        let entities = notes.describe().unwrap();
        assert_eq!(entities.len(), 1);
        assert!(entities[0].writable && entities[0].change_feed);
        assert!(entities[0].fields.iter().any(|f| f.name == "id" && f.read_only));
    }

    #[test]
    fn an_unknown_entity_is_refused_with_the_fix() {
        let error = check_entity("tasks").unwrap_err();
        assert!(error.to_string().contains("tasks"));
    }
}
