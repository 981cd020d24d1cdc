//! `synchost package new NAME --kind mapper|connector`: a vendor's first
//! plugin crate, complete: it builds for wasm32-wasip2, its unit tests run
//! natively with the SDK's harness, and `synchost package pack` packs it.

use std::path::{Path, PathBuf};

use super::output::say;
use super::CommandError;

/// What to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// A mapper: rules applied to records between two systems.
    Mapper,
    /// A connector to a table in a SQLite database the admin grants.
    Connector,
}

/// Where the SDK is: given, or the one this binary was built beside.
fn sdk_path(sdk: Option<&Path>) -> Result<PathBuf, CommandError> {
    let path = match sdk {
        Some(path) => path.to_owned(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk"),
    };
    std::fs::canonicalize(&path).map_err(|_| {
        CommandError::Reported(format!(
            "the plugin SDK is not at {}\n  = fix: pass --sdk PATH/TO/synchost/plugin-sdk",
            path.display()
        ))
    })
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]   # cdylib: the plugin; rlib: native unit tests

[dependencies]
synchost-plugin-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}

[dev-dependencies]
serde_json = "1"

# A crate of its own, not a member of an enclosing workspace.
[workspace]
"#,
        sdk = sdk.display()
    )
}

fn manifest(name: &str, template: Template, publisher: &str) -> String {
    let (kind, description, capabilities) = match template {
        Template::Mapper => ("mapper", "Upper-cases the fields its settings name", ""),
        Template::Connector => ("connector", "Notes in a SQLite table", "sql = [\"sqlite\"]\n"),
    };
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
kind = "{kind}"
api = "^{api}"
description = "{description}"
publisher = "{publisher}"
component = "plugin.wasm"

# The most an endpoint may grant an instance of this package. An admin's
# grants beyond these are refused; an upgrade that asks for more waits for
# the admin's `synchost package accept`.
[capabilities]
{capabilities}"#,
        api = crate::runtime::metadata::HOST_API_VERSION.rsplit_once('.').map_or("0.4", |(minor, _)| minor),
    )
}

const MAPPER: &str = r#"//! A mapper: upper-cases the fields its settings name.

use serde::Deserialize;
use synchost_plugin_sdk::prelude::*;

#[derive(Deserialize)]
struct Settings {
    /// Fields to upper-case.
    uppercase: Vec<String>,
}

pub struct Upper(Settings);

impl Mapper for Upper {
    fn new(context: &Context) -> Result<Self, Error> {
        Ok(Upper(context.settings()?))
    }

    fn map(&self, _direction: Direction, records: Vec<Record>) -> Result<Vec<Mapped>, Error> {
        Ok(records
            .into_iter()
            .map(|mut record| {
                for name in &self.0.uppercase {
                    if let Some(text) = record.text(name).map(str::to_uppercase) {
                        record.set(name, text);
                    }
                }
                Mapped::Ok(record)
            })
            .collect())
    }

    fn validate(&self, _direction: Direction, records: &[Record]) -> Result<Vec<Vec<Violation>>, Error> {
        Ok(records.iter().map(|_| Vec::new()).collect())
    }
}

export_mapper!(Upper);

#[cfg(test)]
mod tests {
    use super::*;
    use synchost_plugin_sdk::testing::Harness;

    #[test]
    fn upper_cases_the_named_fields_only() {
        Harness::set("shout", serde_json::json!({ "uppercase": ["name"] }));
        let mapper = Upper::new(&Context::current().unwrap()).unwrap();
        let records = vec![Record::new("1").with("name", "Ada").with("city", "London")];
        let mapped = mapper.map(Direction::LeftToRight, records).unwrap();
        let Mapped::Ok(record) = &mapped[0] else { panic!("mapped: {mapped:?}") };
        assert_eq!(record.text("name"), Some("ADA"));
        assert_eq!(record.text("city"), Some("London"));
    }
}
"#;

const CONNECTOR: &str = r#"//! A connector to a notes table in a SQLite database the admin grants:
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
"#;

/// `synchost package new NAME --kind mapper|connector [--dir DIR] [--publisher NAME] [--sdk PATH]`
pub fn new(name: &str, template: Template, dir: Option<&Path>, publisher: &str, sdk: Option<&Path>) -> Result<(), CommandError> {
    crate::packages::manifest::PackageName::try_from(name.to_owned()).map_err(CommandError::Reported)?;
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(CommandError::Reported(format!("{} exists and is not empty\n  = fix: choose another --dir, or another name", dir.display())));
    }
    let sdk = sdk_path(sdk)?;
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CommandError::Reported(format!("cannot create {} ({e})", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| CommandError::Reported(format!("cannot write {} ({e})", path.display())))
    };
    write("Cargo.toml", &cargo_toml(name, &sdk))?;
    write(crate::packages::MANIFEST_FILE, &manifest(name, template, publisher))?;
    write("src/lib.rs", match template {
        Template::Mapper => MAPPER,
        Template::Connector => CONNECTOR,
    })?;
    write(".gitignore", "/target\n*.synchost-package\n*.secret-key\n")?;
    say!("created {} ({}), using the SDK at {}", dir.display(), format!("{template:?}").to_lowercase(), sdk.display());
    say!("next:");
    say!("  cd {}", dir.display());
    say!("  cargo test                              # unit tests, natively");
    say!("  synchost package pack                   # builds for wasm32-wasip2, writes {name}-0.1.0.synchost-package");
    say!("  synchost package keygen --publisher {publisher}");
    say!("  synchost package sign {name}-0.1.0.synchost-package --key {publisher}.secret-key");
    Ok(())
}
