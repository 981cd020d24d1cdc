//! The engine's throughput: an initial sync of N rows (default 1,000,000)
//! SQLite -> SQLite through the crm-mapper plugin with all state kept (links,
//! base values, history), then an incremental run with 10 changed rows, against
//! a plain copy of the same rows (read + the same mapping compiled natively +
//! upsert, no state) measured in the same process.
//!
//! Run: `cargo bench -p synchost --bench sync` (`SYNCHOST_BENCH_ROWS=100000` for a quick one).

use std::sync::Arc;
use std::time::Instant;

/// The allocator the `synchost` binary runs with, for both sides of the comparison.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use rusqlite::Connection;
use synchost::catalog::Catalog;
use synchost::config::LoadedConfig;
use synchost::engine::{Engine, Mode};
use synchost::state::State;
use synchost_plugin_sdk::{Direction, Mapped, Record, Value};

const SOURCE: &str = "CREATE TABLE contacts (
    id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT, phone TEXT, status TEXT,
    customer_since TEXT, city TEXT, company TEXT, notes TEXT,
    updated_at TEXT NOT NULL, record_status TEXT NOT NULL DEFAULT 'active', origin TEXT UNIQUE);
CREATE INDEX contacts_changes ON contacts (updated_at, id);";

const TARGET: &str = "CREATE TABLE clients (
    id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, display_name TEXT, email TEXT, phone TEXT, status TEXT,
    customer_since DATE, city TEXT, company TEXT, notes TEXT,
    updated_at TEXT, record_status TEXT NOT NULL DEFAULT 'active', origin TEXT UNIQUE);
CREATE INDEX clients_changes ON clients (updated_at, id);";

const RULES: &str = r#"{ "phones": ["phone"], "default_country_code": "49", "emails": ["email"], "dates": ["customer_since"],
  "derived": { "display_name": "{last_name}, {first_name}" }, "required": ["email"],
  "lookups": { "status": { "A": "active", "L": "lead", "X": "closed" } } }"#;

fn config() -> String {
    let rules: toml::Table = serde_json::from_str(RULES).unwrap();
    format!(
        r#"
[endpoints.source]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:source.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[endpoints.target]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:target.sqlite" }}
settings = {{ connection = "db", entities = {{ clients = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[mappers.rules]
plugin = "crm-mapper"
settings = {rules}

[pipelines.p]
left = {{ endpoint = "source", entity = "contacts" }}
right = {{ endpoint = "target", entity = "clients" }}
mapper = "rules"
conflict = "left-wins"
batch_size = 1000
fields = {{ first_name = {{}}, last_name = {{}}, display_name = {{ direction = "left-to-right" }}, email = {{}}, phone = {{}}, status = {{}}, customer_since = {{}}, city = {{}}, company = {{}}, notes = {{}} }}
"#,
        rules = toml::Value::Table(rules)
    )
}

fn fill(path: &std::path::Path, rows: u64) {
    let connection = Connection::open(path).unwrap();
    connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").unwrap();
    connection.execute_batch(SOURCE).unwrap();
    connection
        .execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO contacts (id, first_name, last_name, email, phone, status, customer_since, city, company, notes, updated_at)
             SELECT i, 'First' || i, 'Last' || i, '  Person' || i || '@Example.COM ', '030 ' || printf('%07d', i),
                    CASE i % 3 WHEN 0 THEN 'A' WHEN 1 THEN 'L' ELSE 'X' END,
                    printf('%02d.%02d.20%02d', 1 + i % 28, 1 + i % 12, i % 30), 'Berlin', 'Company ' || i || ' GmbH',
                    'Met at the trade fair; wants a quote for the annual plan.', '2026-01-01T00:00:00.000Z'
             FROM n;"
        ))
        .unwrap();
}

/// The baseline: read, map with the same rules natively, upsert; no state.
fn plain_copy(dir: &std::path::Path) -> u64 {
    let source = Connection::open(dir.join("source.sqlite")).unwrap();
    let mut target = Connection::open(dir.join("copy.sqlite")).unwrap();
    target.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").unwrap();
    target.execute_batch(TARGET).unwrap();
    let rules = crm_mapper::CrmRules::new(serde_json::from_str(RULES).unwrap());
    let mut read = source
        .prepare("SELECT id, first_name, last_name, email, phone, status, customer_since, city, company, notes FROM contacts ORDER BY id")
        .unwrap();
    let names = ["first_name", "last_name", "email", "phone", "status", "customer_since", "city", "company", "notes"];
    let mut rows = read.query([]).unwrap();
    let mut copied = 0u64;
    let mut transaction = target.transaction().unwrap();
    while let Some(row) = rows.next().unwrap() {
        let id: i64 = row.get(0).unwrap();
        let mut record = Record::new(id.to_string());
        for (i, name) in names.iter().enumerate() {
            record.set(name, Value::Text(row.get(i + 1).unwrap()));
        }
        let Mapped::Ok(record) = rules.map_record(Direction::LeftToRight, record) else { continue };
        if !rules.violations(Direction::LeftToRight, &record).is_empty() {
            continue;
        }
        let value = |name: &str| record.get(name).map(Value::to_display_string);
        transaction
            .prepare_cached(
                "INSERT INTO clients (first_name, last_name, display_name, email, phone, status, customer_since, city, company, notes, origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (origin) DO UPDATE SET first_name = excluded.first_name, email = excluded.email",
            )
            .unwrap()
            .execute(rusqlite::params![
                value("first_name"), value("last_name"), value("display_name"), value("email"), value("phone"),
                value("status"), value("customer_since"), value("city"), value("company"), value("notes"), id.to_string()
            ])
            .unwrap();
        copied += 1;
        if copied % 1000 == 0 {
            transaction.commit().unwrap();
            transaction = target.transaction().unwrap();
        }
    }
    transaction.commit().unwrap();
    copied
}

fn main() {
    // As the `synchost` binary does, for both sides of the comparison.
    synchost::process::without_transparent_huge_pages();
    let rows: u64 = std::env::var("SYNCHOST_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    fill(&dir.path().join("source.sqlite"), rows);
    Connection::open(dir.path().join("target.sqlite")).unwrap().execute_batch(TARGET).unwrap();

    let started = Instant::now();
    let copied = plain_copy(dir.path());
    let copy_seconds = started.elapsed().as_secs_f64();

    let config_path = dir.path().join("synchost.toml");
    std::fs::write(&config_path, config()).unwrap();
    let config = LoadedConfig::load(&config_path).unwrap();
    let catalog = Catalog::load(&config).unwrap();
    let state = State::open(&config.state_path()).unwrap();
    let engine = Engine::new(Arc::new(config), Arc::new(catalog), Arc::new(state));
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    let started = Instant::now();
    let report = tokio.block_on(engine.run("p", "bench", Mode::Apply)).unwrap();
    let initial_seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.counts.created, rows);

    let source = Connection::open(dir.path().join("source.sqlite")).unwrap();
    source
        .execute_batch(&format!(
            "UPDATE contacts SET phone = '089 1234567', updated_at = '2026-06-01T00:00:00.000Z' WHERE id % {} = 0 AND id <= {}",
            rows / 10,
            rows
        ))
        .unwrap();
    let started = Instant::now();
    let incremental = tokio.block_on(engine.run("p", "bench", Mode::Apply)).unwrap();
    let incremental_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(incremental.counts.updated, 10);

    println!("rows: {rows}");
    println!("plain copy (read + native map + upsert, no state): {copy_seconds:.2} s, {:.0} records/s ({copied} copied)", rows as f64 / copy_seconds);
    println!(
        "synchost initial sync (crm-mapper plugin, links, base, history): {initial_seconds:.2} s, {:.0} records/s",
        rows as f64 / initial_seconds
    );
    println!("ratio synchost / plain copy: {:.2}x the time", initial_seconds / copy_seconds);
    println!("synchost incremental run, 10 changed rows: {incremental_ms:.1} ms");
}
