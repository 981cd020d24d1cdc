//! `synchost demo`: the embedded default. Creates two sample CRM databases
//! (head office and branch) and a config, then walks through what the host does
//! with them: check, read with a cursor, a change picked up, mapping and
//! validation with hints, idempotent writes, a soft delete.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::output::records_table;
use super::{check, load_catalog, CommandError};
use crate::runtime::bindings::{Change, ChangeKind, Direction, Mapped, Outcome, Record};

const CONFIG: &str = r#"# synchost demo: the CRM of a head office and of a branch, as SQLite files.
# Try: synchost --config synchost.toml check
#      synchost --config synchost.toml read hq-crm contacts

[host]
data_dir = "state"

# The head office CRM: table `contacts`, changes tracked by `updated_at`,
# deletes kept as tombstones in `record_status`.
[endpoints.hq-crm]
plugin = "sql-table"

[endpoints.hq-crm.settings]
connection = "crm"

[endpoints.hq-crm.settings.entities.contacts]
updated_at = "updated_at"
soft_delete = { column = "record_status" }

[endpoints.hq-crm.grants.sql.crm]
dsn = "sqlite:hq.sqlite"

# The branch CRM: its own table and column names, its own numbering.
[endpoints.branch-crm]
plugin = "sql-table"

[endpoints.branch-crm.settings]
connection = "crm"

[endpoints.branch-crm.settings.entities.contacts]
table = "clients"
key = "client_no"
updated_at = "changed_at"
origin = "hq_ref"

[endpoints.branch-crm.grants.sql.crm]
dsn = "sqlite:branch.sqlite"

# Field mapping and validation between the two.
[mappers.hq-to-branch]
plugin = "crm-mapper"

[mappers.hq-to-branch.settings]
renames = { first_name = "given_name", last_name = "family_name", phone = "phone_number", status = "state", customer_since = "since" }
phones = ["phone"]
default_country_code = "49"
emails = ["email"]
dates = ["customer_since"]
derived = { display_name = "{last_name}, {first_name}" }
required = ["email"]

[mappers.hq-to-branch.settings.lookups.status]
A = "active"
L = "lead"
X = "closed"
"#;

const HQ_SCHEMA: &str = "
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    status TEXT NOT NULL DEFAULT 'L',
    customer_since TEXT,
    updated_at TEXT NOT NULL,
    record_status TEXT NOT NULL DEFAULT 'active'
);
INSERT INTO contacts (first_name, last_name, email, phone, status, customer_since, updated_at) VALUES
    ('Ada', 'Lovelace', ' Ada@Example.COM ', '030 1234567', 'A', '01.03.2024', '2026-11-01T09:00:00.000Z'),
    ('Grace', 'Hopper', 'grace@example.com', '+49 (89) 555-0100', 'A', '2023/07/15', '2026-11-01T09:00:00.000Z'),
    ('Alan', 'Turing', 'alan(at)example.org', '0049 40 7654321', 'L', '12.10.2025', '2026-11-01T09:05:00.000Z'),
    ('Edsger', 'Dijkstra', 'edsger@example.nl', '+31 20 555 0199', 'X', NULL, '2026-11-01T09:07:00.000Z'),
    ('Barbara', 'Liskov', NULL, '+1 617 555 0123', 'A', '2022-01-10', '2026-11-01T09:08:00.000Z');
";

const BRANCH_SCHEMA: &str = "
CREATE TABLE clients (
    client_no INTEGER PRIMARY KEY AUTOINCREMENT,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    display_name TEXT,
    email TEXT,
    phone_number TEXT,
    state TEXT,
    since DATE,
    changed_at TEXT,
    hq_ref TEXT UNIQUE
);
-- The branch numbers its clients from 1000: ids are never copied between systems.
INSERT INTO sqlite_sequence (name, seq) VALUES ('clients', 999);
";

fn step(title: &str) {
    println!("\n== {title}\n");
}

fn fresh_database(path: &Path, schema: &str) -> Result<(), CommandError> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).map_err(|e| CommandError::Other(e.into()))?;
        }
    }
    let connection = Connection::open(path).map_err(|e| CommandError::Other(e.into()))?;
    connection.execute_batch(schema).map_err(|e| CommandError::Other(e.into()))
}

fn sql(path: &Path, statement: &str) -> Result<(), CommandError> {
    let connection = Connection::open(path).map_err(|e| CommandError::Other(e.into()))?;
    connection.execute_batch(statement).map_err(|e| CommandError::Other(e.into()))
}

pub async fn run(dir: &Path) -> Result<(), CommandError> {
    std::fs::create_dir_all(dir).map_err(|e| CommandError::Other(e.into()))?;
    let (hq, branch, config_path) = (dir.join("hq.sqlite"), dir.join("branch.sqlite"), dir.join("synchost.toml"));
    fresh_database(&hq, HQ_SCHEMA)?;
    fresh_database(&branch, BRANCH_SCHEMA)?;
    std::fs::write(&config_path, CONFIG).map_err(|e| CommandError::Other(e.into()))?;
    println!("synchost demo in {}: two CRM databases (hq.sqlite, branch.sqlite) and synchost.toml", dir.display());

    step("1. Check the config, the plugins and every connection");
    check::run(&config_path).await?;
    let (_, catalog) = load_catalog(&config_path)?;
    let hq_crm = catalog.instance("hq-crm").map_err(CommandError::Failure)?;
    let branch_crm = catalog.instance("branch-crm").map_err(CommandError::Failure)?;
    let mapper = catalog.instance("hq-to-branch").map_err(CommandError::Failure)?;

    step("2. Read the head office's contacts through the sql-table plugin");
    let first = hq_crm.read("contacts", None, 100).await.map_err(CommandError::Call)?;
    println!("{}", records_table(&first.records));
    let cursor = first.cursor.clone().unwrap_or_default();
    println!("\ncursor: {cursor}");

    step("3. Someone edits Grace's phone at the head office; the next read from the cursor returns only that change");
    sql(&hq, "UPDATE contacts SET phone = '089 5550111', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE first_name = 'Grace'")?;
    let changed = hq_crm.read("contacts", Some(&cursor), 100).await.map_err(CommandError::Call)?;
    println!("{}", records_table(&changed.records));
    let cursor = changed.cursor.clone().unwrap_or(cursor);

    step("4. Map the contacts to the branch's fields and validate them (crm-mapper plugin)");
    let latest: Vec<Record> = first
        .records
        .into_iter()
        .map(|r| changed.records.iter().find(|c| c.id == r.id).cloned().unwrap_or(r))
        .collect();
    let mapped = mapper.map(Direction::LeftToRight, &latest).await.map_err(CommandError::Call)?;
    let candidates: Vec<(String, Record)> = latest
        .iter()
        .zip(mapped)
        .filter_map(|(source, result)| match result {
            Mapped::Ok(record) => Some((source.id.clone(), record)),
            Mapped::Invalid(violations) => {
                println!("contact {}: cannot be mapped", source.id);
                for v in violations {
                    println!("    {}: {}\n      fix: {}", v.field.unwrap_or_default(), v.message, v.hint.unwrap_or_default());
                }
                None
            }
        })
        .collect();
    let records: Vec<Record> = candidates.iter().map(|(_, r)| r.clone()).collect();
    let violations = mapper.validate(Direction::LeftToRight, &records).await.map_err(CommandError::Call)?;
    let mut valid = Vec::new();
    for ((source_id, record), found) in candidates.into_iter().zip(violations) {
        if found.is_empty() {
            println!("contact {source_id}: ok -> {}", record.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "));
            valid.push((source_id, record));
        } else {
            println!("contact {source_id}: fails validation");
            for v in found {
                println!("    {}: {}\n      fix: {}", v.field.unwrap_or_default(), v.message, v.hint.unwrap_or_default());
            }
        }
    }

    step("5. Write the valid contacts to the branch; writing them again changes nothing (idempotent by origin)");
    let changes: Vec<Change> = valid
        .iter()
        .map(|(source_id, record)| Change {
            origin: format!("hq-crm/contacts/{source_id}"),
            target_id: None,
            expected_version: None,
            kind: ChangeKind::Upsert,
            fields: record.fields.clone(),
        })
        .collect();
    for attempt in ["first write ", "second write"] {
        let outcomes = branch_crm.write("contacts", &changes).await.map_err(CommandError::Call)?;
        let summary: Vec<String> = valid
            .iter()
            .zip(&outcomes)
            .map(|((source_id, _), outcome)| match outcome {
                Outcome::Applied(applied) => format!("hq {source_id} -> branch {}", applied.id),
                Outcome::Rejected(problem) => format!("hq {source_id} rejected: {}", problem.message),
                Outcome::Conflict(_) => format!("hq {source_id} conflict"),
            })
            .collect();
        println!("{attempt}: {}", summary.join(", "));
    }
    let branch_rows = branch_crm.read("contacts", None, 100).await.map_err(CommandError::Call)?;
    println!("\n{}", records_table(&branch_rows.records));

    step("6. Edsger's contact is deleted at the head office: the read returns a tombstone");
    sql(&hq, "UPDATE contacts SET record_status = 'deleted', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE first_name = 'Edsger'")?;
    let deleted = hq_crm.read("contacts", Some(&cursor), 100).await.map_err(CommandError::Call)?;
    println!("{}", records_table(&deleted.records));

    println!(
        "\nDone. Explore further with:\n  synchost --config {0} check\n  synchost --config {0} read hq-crm contacts --json\n  synchost --config {0} read branch-crm contacts",
        config_path.display()
    );
    Ok(())
}
