//! `synchost demo`: the embedded default. Creates three CRM databases (a head
//! office, a branch and a shop) as SQLite files and a config, then shows what
//! the host does with them: contacts one way with mapping and validation,
//! orders with payments flowing one way and status the other, one invoices
//! table with one numbering across all three, conflicting edits resolved by
//! policy, a soft delete propagating, a record failing validation with its hint.

use crate::cli::output::{say};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::admin::{open_engine, print_entry};
use super::{check, CommandError};
use crate::engine::{Engine, Mode};

const CONFIG: &str = r#"# synchost demo: the CRMs of a head office, a branch and a shop, as SQLite files.
# Keep them in sync:   synchost run        (edit the .sqlite files with sqlite3 meanwhile)
# Look around:         synchost status | history PIPELINE | conflicts list | failed list | messages

[host]
data_dir = "state"

# --- the three CRM instances -------------------------------------------------
[endpoints.hq]
plugin = "sql-table"
grants.sql.crm = { dsn = "sqlite:hq.sqlite" }

[endpoints.hq.settings]
connection = "crm"
entities.contacts = { updated_at = "updated_at", soft_delete = { column = "record_status" }, origin = "sync_origin" }
entities.orders = { updated_at = "updated_at", soft_delete = { column = "record_status" }, origin = "sync_origin" }
entities.invoices = { updated_at = "updated_at", soft_delete = { column = "record_status" }, origin = "sync_origin" }

[endpoints.branch]
plugin = "sql-table"
grants.sql.crm = { dsn = "sqlite:branch.sqlite" }

[endpoints.branch.settings]
connection = "crm"
entities.clients = { key = "client_no", updated_at = "changed_at", origin = "hq_ref" }
entities.orders = { updated_at = "updated_at", soft_delete = { column = "record_status" }, origin = "sync_origin" }
entities.invoices = { updated_at = "updated_at", soft_delete = { column = "record_status" }, origin = "sync_origin" }

[endpoints.shop]
plugin = "sql-table"
grants.sql.crm = { dsn = "sqlite:shop.sqlite" }

[endpoints.shop.settings]
connection = "crm"
entities.invoices = { updated_at = "updated_at", soft_delete = { column = "record_status" }, origin = "sync_origin" }

# --- mapping and validation of contacts ------------------------------------------
[mappers.contact-rules]
plugin = "crm-mapper"

[mappers.contact-rules.settings]
phones = ["phone"]
default_country_code = "49"
emails = ["email"]
dates = ["customer_since"]
derived = { display_name = "{last_name}, {first_name}" }
required = ["email"]
lookups = { status = { A = "active", L = "lead", X = "closed" } }

# --- use case 1: contact fields one way, head office -> branch -------------------
[pipelines.contacts]
category = "master data"
left = { endpoint = "hq", entity = "contacts" }
right = { endpoint = "branch", entity = "clients" }
mapper = "contact-rules"
create = "left-to-right"
schedule = "10s"

[pipelines.contacts.fields]
first_name = { right = "given_name", direction = "left-to-right" }
last_name = { right = "family_name", direction = "left-to-right" }
display_name = { direction = "left-to-right" }
email = { direction = "left-to-right" }
phone = { right = "phone_number", direction = "left-to-right" }
status = { right = "state", direction = "left-to-right" }
customer_since = { right = "since", direction = "left-to-right" }

# --- use case 2: orders, payments head office -> branch, status branch -> head office
[pipelines.orders]
category = "orders"
left = { endpoint = "hq", entity = "orders" }
right = { endpoint = "branch", entity = "orders" }
schedule = "10s"

[pipelines.orders.fields]
order_no = {}
customer = {}
item = {}
paid_amount = { direction = "left-to-right" }
paid_at = { direction = "left-to-right" }
status = { direction = "right-to-left" }

# --- use case 3: one invoices table, one numbering, across all three -----------
# The head office is the hub: branch and shop each sync with it.
[pipelines.invoices-branch]
category = "invoices"
left = { endpoint = "hq", entity = "invoices" }
right = { endpoint = "branch", entity = "invoices" }
conflict = "last-writer-wins"
schedule = "10s"

[pipelines.invoices-branch.fields]
invoice_no = {}
customer = {}
amount = { conflict = "left-wins" }
note = { conflict = "manual" }
status = {}

[pipelines.invoices-shop]
category = "invoices"
left = { endpoint = "hq", entity = "invoices" }
right = { endpoint = "shop", entity = "invoices" }
conflict = "last-writer-wins"
schedule = "10s"

[pipelines.invoices-shop.fields]
invoice_no = {}
customer = {}
amount = { conflict = "left-wins" }
note = { conflict = "manual" }
status = {}
"#;

const STAMP: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

fn common_tables() -> String {
    format!(
        "
CREATE TABLE orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_no TEXT, customer TEXT, item TEXT,
    paid_amount DECIMAL(10,2), paid_at DATE, status TEXT,
    updated_at TEXT NOT NULL DEFAULT ({STAMP}), record_status TEXT NOT NULL DEFAULT 'active', sync_origin TEXT UNIQUE);
CREATE TABLE invoices (
    id INTEGER PRIMARY KEY AUTOINCREMENT, invoice_no TEXT UNIQUE, customer TEXT, amount DECIMAL(10,2), note TEXT, status TEXT,
    updated_at TEXT NOT NULL DEFAULT ({STAMP}), record_status TEXT NOT NULL DEFAULT 'active', sync_origin TEXT UNIQUE);
"
    )
}

fn hq_schema() -> String {
    format!(
        "
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, first_name TEXT NOT NULL, last_name TEXT NOT NULL, email TEXT, phone TEXT,
    status TEXT NOT NULL DEFAULT 'L', customer_since TEXT,
    updated_at TEXT NOT NULL DEFAULT ({STAMP}), record_status TEXT NOT NULL DEFAULT 'active', sync_origin TEXT UNIQUE);
{}
INSERT INTO contacts (first_name, last_name, email, phone, status, customer_since) VALUES
    ('Ada', 'Lovelace', ' Ada@Example.COM ', '030 1234567', 'A', '01.03.2024'),
    ('Grace', 'Hopper', 'grace@example.com', '+49 (89) 555-0100', 'A', '2023/07/15'),
    ('Alan', 'Turing', 'alan(at)example.org', '0049 40 7654321', 'L', '12.10.2025');
INSERT INTO orders (order_no, customer, item, paid_amount, status) VALUES
    ('O-1', 'Ada Lovelace', 'Analytical engine', NULL, 'new'),
    ('O-2', 'Grace Hopper', 'Compiler licence', NULL, 'new');
-- The head office numbers invoices 1000-1999, the branch 2000-2999, the shop 3000-3999.
INSERT INTO invoices (invoice_no, customer, amount, note, status) VALUES
    ('INV-1001', 'Ada Lovelace', 1200.00, 'net 30', 'open'),
    ('INV-1002', 'Grace Hopper', 350.00, NULL, 'open');
",
        common_tables()
    )
}

fn branch_schema() -> String {
    format!(
        "
-- The branch's own contact table: other names, its own numbering from 1000.
CREATE TABLE clients (
    client_no INTEGER PRIMARY KEY AUTOINCREMENT, given_name TEXT NOT NULL, family_name TEXT NOT NULL, display_name TEXT,
    email TEXT, phone_number TEXT, state TEXT, since DATE, changed_at TEXT, hq_ref TEXT UNIQUE);
INSERT INTO sqlite_sequence (name, seq) VALUES ('clients', 999);
{}
INSERT INTO invoices (invoice_no, customer, amount, status) VALUES ('INV-2001', 'Edsger Dijkstra', 90.00, 'open');
",
        common_tables()
    )
}

fn shop_schema() -> String {
    format!(
        "{}
INSERT INTO invoices (invoice_no, customer, amount, status) VALUES ('INV-3001', 'Barbara Liskov', 42.00, 'paid');
",
        common_tables()
    )
}

fn step(title: &str) {
    say!("\n== {title}\n");
}

fn other(error: impl Into<anyhow::Error>) -> CommandError {
    CommandError::Other(error.into())
}

fn fresh_database(path: &Path, schema: &str) -> Result<(), CommandError> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).map_err(other)?;
        }
    }
    Connection::open(path).map_err(other)?.execute_batch(schema).map_err(other)
}

/// Runs SQL on a database as a user of that CRM would.
fn sql(dir: &Path, db: &str, statement: &str) -> Result<(), CommandError> {
    Connection::open(dir.join(db)).map_err(other)?.execute_batch(statement).map_err(other)
}

/// Prints a query's rows as a small table.
fn show(dir: &Path, db: &str, query: &str) -> Result<(), CommandError> {
    let connection = Connection::open(dir.join(db)).map_err(other)?;
    let mut statement = connection.prepare(query).map_err(other)?;
    let columns: Vec<String> = statement.column_names().iter().map(|c| c.to_string()).collect();
    let rows: Vec<Vec<String>> = statement
        .query_map([], |row| {
            Ok((0..columns.len())
                .map(|i| match row.get_ref(i) {
                    Ok(rusqlite::types::ValueRef::Null) | Err(_) => "∅".to_owned(),
                    Ok(rusqlite::types::ValueRef::Integer(n)) => n.to_string(),
                    Ok(rusqlite::types::ValueRef::Real(f)) => format!("{f:.2}"),
                    Ok(rusqlite::types::ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                    Ok(rusqlite::types::ValueRef::Blob(b)) => format!("<{} bytes>", b.len()),
                })
                .collect())
        })
        .map_err(other)?
        .collect::<Result<_, _>>()
        .map_err(other)?;
    say!("  {db}:");
    for line in super::output::text_table(&columns, &rows).lines() {
        say!("    {line}");
    }
    Ok(())
}

async fn sync(engine: &Engine, pipeline: &str) -> Result<(), CommandError> {
    let report = engine.run(pipeline, "demo", Mode::Apply).await.map_err(|e| CommandError::Reported(e.to_string()))?;
    let c = &report.counts;
    say!(
        "{pipeline}: {} created, {} updated, {} deleted, {} conflicts, {} failed",
        c.created, c.updated, c.deleted, c.conflicts, c.failed
    );
    for entry in &report.plan {
        print_entry(entry);
    }
    Ok(())
}

async fn sync_all(engine: &Engine) -> Result<(), CommandError> {
    // Shop invoices reach the branch through the head office, so the hub's two
    // pipelines run twice.
    for pipeline in ["contacts", "orders", "invoices-branch", "invoices-shop", "invoices-branch", "invoices-shop"] {
        sync(engine, pipeline).await?;
    }
    Ok(())
}

pub async fn run(dir: &Path) -> Result<(), CommandError> {
    std::fs::create_dir_all(dir).map_err(other)?;
    let state_dir = dir.join("state");
    if state_dir.exists() {
        std::fs::remove_dir_all(&state_dir).map_err(other)?;
    }
    fresh_database(&dir.join("hq.sqlite"), &hq_schema())?;
    fresh_database(&dir.join("branch.sqlite"), &branch_schema())?;
    fresh_database(&dir.join("shop.sqlite"), &shop_schema())?;
    let config_path = dir.join("synchost.toml");
    std::fs::write(&config_path, CONFIG).map_err(other)?;
    say!("synchost demo in {}: three CRM databases (hq, branch, shop) and synchost.toml", dir.display());

    step("1. Check the config, the plugins and every connection");
    check::run(&config_path).await?;
    let engine = open_engine(&config_path)?;

    step("2. First sync of every pipeline");
    sync_all(&engine).await?;
    say!("\nContacts went one way, mapped: renamed fields, E.164 phones, lower-case emails, ISO dates,");
    say!("status looked up, a derived display name, and the branch's own numbering (1000...). Alan's");
    say!("email failed validation: he is a failed item with the fix, not silently dropped.");
    show(dir, "branch.sqlite", "SELECT client_no, display_name, email, phone_number, state, since, hq_ref FROM clients")?;
    say!("\nOne invoices table with one numbering in all three CRMs; each keeps its own ids:");
    for db in ["hq.sqlite", "branch.sqlite", "shop.sqlite"] {
        show(dir, db, "SELECT id, invoice_no, customer, amount, status FROM invoices ORDER BY invoice_no")?;
    }

    step("3. The head office books a payment; the branch ships the order");
    sql(dir, "hq.sqlite", &format!("UPDATE orders SET paid_amount = 499.00, paid_at = '2026-11-20', updated_at = {STAMP} WHERE order_no = 'O-1'"))?;
    sql(dir, "branch.sqlite", &format!("UPDATE orders SET status = 'shipped', updated_at = {STAMP} WHERE order_no = 'O-1'"))?;
    sync(&engine, "orders").await?;
    say!("\nPayments flow head office -> branch, order status branch -> head office:");
    for db in ["hq.sqlite", "branch.sqlite"] {
        show(dir, db, "SELECT id, order_no, paid_amount, paid_at, status FROM orders ORDER BY order_no")?;
    }

    step("4. Conflicting edits of INV-1001 at the head office and at the branch");
    sql(dir, "hq.sqlite", &format!("UPDATE invoices SET amount = 1250.00, note = 'net 30, agreed by phone', status = 'disputed', updated_at = {STAMP} WHERE invoice_no = 'INV-1001'"))?;
    sql(dir, "branch.sqlite", "UPDATE invoices SET amount = 1100.00, note = 'customer asks for net 60', status = 'reminded', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 second') WHERE invoice_no = 'INV-1001'")?;
    sync(&engine, "invoices-branch").await?;
    say!("\namount: the head office wins (left-wins); status: the later edit wins (last-writer-wins);");
    say!("note: parked for an admin (manual):");
    for db in ["hq.sqlite", "branch.sqlite"] {
        show(dir, db, "SELECT invoice_no, amount, status, note FROM invoices WHERE invoice_no = 'INV-1001'")?;
    }
    for conflict in engine.state.conflicts(None, true).map_err(other)? {
        say!(
            "  conflict #{} on {} `{}`: hq {:?} | branch {:?}",
            conflict.id,
            conflict.pipeline,
            conflict.field,
            conflict.left_value.to_text(),
            conflict.right_value.to_text()
        );
        say!("    resolve with: synchost conflicts resolve {} --take left   (or --take right, or --value TEXT)", conflict.id);
    }

    step("5. The shop deletes INV-3001; the tombstone reaches the head office, then the branch");
    sql(dir, "shop.sqlite", &format!("UPDATE invoices SET record_status = 'deleted', updated_at = {STAMP} WHERE invoice_no = 'INV-3001'"))?;
    sync(&engine, "invoices-shop").await?;
    sync(&engine, "invoices-branch").await?;
    for db in ["hq.sqlite", "branch.sqlite", "shop.sqlite"] {
        show(dir, db, "SELECT invoice_no, record_status FROM invoices WHERE invoice_no = 'INV-3001'")?;
    }

    step("6. What is stuck, and how to fix it");
    for item in engine.state.failed(None).map_err(other)? {
        say!("  {} {} record {}: {}", item.pipeline, item.side, item.source_id, item.reason);
        if let Some(hint) = item.hint {
            say!("    fix: {hint}");
        }
    }

    say!(
        "\nDone. Keep the three CRMs in sync while you edit them (with sqlite3, on any side):\n  cd {} && synchost run\nand watch with `synchost status`, `synchost history invoices-branch`, `synchost messages`.",
        dir.display()
    );
    Ok(())
}
