//! `desktop-timesheet`: a connector for the local database of the timesheet
//! product's desktop edition, a SQLite file reached through a granted
//! connection. The schema is the desktop edition's own (`schema.sql`): users,
//! activities, projects, tasks and timesheet entries, each with its own ids,
//! change times and tombstones.
//!
//! The connector creates the schema in an empty database (a fresh desktop
//! installation), then reads and writes through the `sql-table` connector with
//! the layout fixed here: change feeds by `updated_at`, soft deletes through
//! `status`, idempotent creates through `sync_origin`.
//!
//! Triggers keep `updated_at` current and turn a `DELETE` into a tombstone, so
//! that edits made outside the desktop application (e.g. with `sqlite3`) are
//! synchronised like its own.

use std::collections::BTreeMap;

use serde::Deserialize;
use sql_table::settings::{EntitySettings, Settings as TableSettings, SoftDelete, StampFormat, TypeName};
use sql_table::SqlTable;
use synchost_plugin_sdk::host::{BatchMode, Sql, Statement};
use synchost_plugin_sdk::prelude::*;
use synchost_plugin_sdk::EntityNeed;

const SCHEMA: &str = include_str!("schema.sql");

/// `[endpoints.NAME.settings]` of a desktop-timesheet endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The granted SQL connection holding the desktop database.
    connection: String,
    /// Create the desktop schema when the database has none. Default true.
    #[serde(default = "yes")]
    create_schema: bool,
}

fn yes() -> bool {
    true
}

/// The entities, their tables and synced columns.
const ENTITIES: &[(&str, &str, &[(&str, TypeName)])] = &[
    ("users", "users", &[("login", TypeName::Text), ("first_name", TypeName::Text), ("last_name", TypeName::Text), ("email", TypeName::Text)]),
    ("activities", "activities", &[("name", TypeName::Text), ("billable", TypeName::Boolean)]),
    ("projects", "projects", &[("code", TypeName::Text), ("name", TypeName::Text), ("description", TypeName::Text)]),
    ("tasks", "tasks", &[("project_id", TypeName::Integer), ("name", TypeName::Text), ("done", TypeName::Boolean)]),
    (
        "entries",
        "timesheet_entries",
        &[
            ("user_id", TypeName::Integer),
            ("project_id", TypeName::Integer),
            ("task_id", TypeName::Integer),
            ("activity_id", TypeName::Integer),
            ("work_date", TypeName::Date),
            ("hours", TypeName::Float),
            ("comment", TypeName::Text),
        ],
    ),
];

fn table_settings(connection: &str) -> TableSettings {
    let entities = ENTITIES
        .iter()
        .map(|(entity, table, fields)| {
            let settings = EntitySettings {
                table: Some((*table).to_owned()),
                key: "id".into(),
                updated_at: Some("updated_at".into()),
                updated_at_format: StampFormat::Rfc3339,
                overlap_ms: 2000,
                soft_delete: Some(SoftDelete { column: "status".into(), deleted: "deleted".into(), active: "active".into() }),
                origin: Some("sync_origin".into()),
                fields: Some(fields.iter().map(|(name, kind)| ((*name).to_owned(), *kind)).collect::<BTreeMap<_, _>>()),
                exclude: Vec::new(),
                writable: true,
            };
            ((*entity).to_owned(), settings)
        })
        .collect();
    TableSettings { connection: connection.to_owned(), entities }
}

/// The statements that make the schema: tables, then per table a trigger that
/// stamps edits and one that keeps deleted rows as tombstones.
fn schema_statements() -> Vec<Statement> {
    let mut statements: Vec<Statement> = SCHEMA
        .split(';')
        .map(|s| s.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n"))
        .filter(|s| !s.trim().is_empty())
        .map(|sql| Statement { sql, params: Vec::new() })
        .collect();
    for (_, table, _) in ENTITIES {
        statements.push(Statement {
            sql: format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_stamp AFTER UPDATE ON {table} FOR EACH ROW \
                 WHEN NEW.updated_at = OLD.updated_at \
                 BEGIN UPDATE {table} SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id; END"
            ),
            params: Vec::new(),
        });
        statements.push(Statement {
            sql: format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_tombstone BEFORE DELETE ON {table} FOR EACH ROW \
                 WHEN OLD.status <> 'deleted' \
                 BEGIN UPDATE {table} SET status = 'deleted' WHERE id = OLD.id; SELECT RAISE(IGNORE); END"
            ),
            params: Vec::new(),
        });
    }
    statements
}

/// The desktop-timesheet connector for one call.
pub struct DesktopTimesheet {
    tables: SqlTable,
}

impl DesktopTimesheet {
    /// Creates the schema if the database has none of it yet.
    fn ensure_schema(sql: &Sql, create: bool) -> Result<(), Error> {
        let rows = sql.query("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'timesheet_entries'", &[])?;
        if matches!(rows.rows.first().and_then(|r| r.first()), Some(Value::Integer(1))) {
            return Ok(());
        }
        if !create {
            return Err(Error::new("no-schema", "the database has no desktop timesheet tables")
                .with_hint("point the connection at the desktop edition's database, or set create_schema = true to start an empty one"));
        }
        log::info("Creating the desktop timesheet schema in an empty database");
        sql.execute(&schema_statements(), BatchMode::AllOrNothing)?;
        Ok(())
    }
}

impl Connector for DesktopTimesheet {
    fn new(context: &Context) -> Result<Self, Error> {
        let settings: Settings = context.settings()?;
        Self::ensure_schema(&Sql::connection(settings.connection.as_str()), settings.create_schema)?;
        Ok(DesktopTimesheet { tables: SqlTable::with_settings(table_settings(&settings.connection))? })
    }

    fn describe(&self) -> Result<Vec<EntityDef>, Error> {
        self.tables.describe()
    }

    fn read(&mut self, entity: &str, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Error> {
        self.tables.read(entity, cursor, limit)
    }

    fn fetch(&mut self, entity: &str, ids: Vec<String>) -> Result<Vec<Record>, Error> {
        self.tables.fetch(entity, ids)
    }

    fn write(&mut self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        self.tables.write(entity, changes)
    }

    fn probe(&mut self, needs: &[EntityNeed]) -> Result<Vec<Problem>, Error> {
        self.tables.probe(needs)
    }
}

export_connector!(DesktopTimesheet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_splits_into_statements_and_covers_every_entity() {
        let statements = schema_statements();
        for (_, table, _) in ENTITIES {
            assert!(statements.iter().any(|s| s.sql.contains(&format!("CREATE TABLE IF NOT EXISTS {table} "))), "{table}");
            assert!(statements.iter().any(|s| s.sql.contains(&format!("{table}_tombstone"))), "{table}");
        }
        assert!(statements.iter().all(|s| !s.sql.contains("--")));
    }
}
