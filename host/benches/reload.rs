//! Hot reload: how long from a saved file to the new version serving, and
//! how long a pipeline a reload changes stands still at the swap.
//!
//! The real daemon (`synchost::daemon::run`) runs in this process on two
//! SQLite files. Each round changes the config (a field map edit) or the
//! plugin file (a new build of `sql-table`, which must be compiled) while a
//! long sync is under way, and reads from state: when the reload was applied
//! (against when the file was saved), when the run on the old version ended
//! and when the run on the new version began.
//!
//! Run: `cargo bench -p synchost --bench reload` (`SYNCHOST_BENCH_ROUNDS` rounds, default 5).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TABLE: &str = "CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, phone TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    record_status TEXT NOT NULL DEFAULT 'active', origin TEXT UNIQUE);";

const ROWS: u32 = 30_000;

fn config(fields: &str) -> String {
    format!(
        r#"
[plugins.table]
path = "table.wasm"

[endpoints.hq]
plugin = "table"
grants.sql.db = {{ dsn = "sqlite:hq.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[endpoints.branch]
plugin = "table"
grants.sql.db = {{ dsn = "sqlite:branch.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[pipelines.p]
left = {{ endpoint = "hq", entity = "contacts" }}
right = {{ endpoint = "branch", entity = "contacts" }}
schedule = "1s"
batch_size = 100
fields = {fields}
"#
    )
}

/// A new build of a component, as far as a host can tell: a custom section added.
fn rebuilt(component: &[u8], round: usize) -> Vec<u8> {
    let name = b"synchost-bench-build";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(round.to_string().as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0);
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    bytes
}

fn save(path: &Path, bytes: &[u8]) -> DateTime<Utc> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
    Utc::now()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

struct Round {
    /// Saved -> applied.
    latency: Duration,
    /// The run on the old version ended -> the run on the new one began.
    paused: Duration,
}

/// One round: a fresh pair of tables, the daemon, a change while it syncs.
async fn round(index: usize, plugin_change: bool) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for name in ["hq.sqlite", "branch.sqlite"] {
        Connection::open(dir.join(name)).unwrap().execute_batch(TABLE).unwrap();
    }
    Connection::open(dir.join("hq.sqlite"))
        .unwrap()
        .execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             INSERT INTO contacts (name, phone) SELECT 'hq ' || i, '030 ' || i FROM n;"
        ))
        .unwrap();
    let component = synchost::bundled::bytes("sql-table").unwrap();
    std::fs::write(dir.join("table.wasm"), component).unwrap();
    let config_path = dir.join("synchost.toml");
    std::fs::write(&config_path, config("{ name = {} }")).unwrap();

    let loaded = synchost::config::LoadedConfig::load(&config_path).unwrap();
    let catalog = synchost::catalog::Catalog::load(&loaded).unwrap();
    let state = Arc::new(synchost::state::State::open(&loaded.state_path()).unwrap());
    let engine = Arc::new(synchost::engine::Engine::new(Arc::new(loaded), Arc::new(catalog), state.clone()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let daemon = tokio::spawn(synchost::daemon::run(engine, stopped));

    let copied = || Connection::open(dir.join("branch.sqlite")).unwrap().query_row("SELECT count(*) FROM contacts", [], |r| r.get::<_, i64>(0)).unwrap();
    while copied() < 1000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let saved = if plugin_change {
        save(&dir.join("table.wasm"), &rebuilt(component, index))
    } else {
        save(&config_path, config("{ name = {}, phone = {} }").as_bytes())
    };
    let started = Instant::now();
    let applied = loop {
        let applied = state.reloads(1).unwrap().into_iter().find(|r| r.outcome == synchost::state::reloads::ReloadOutcome::Applied);
        if let Some(applied) = applied {
            break applied;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no reload applied");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The run on the new version has begun once a run starts after the reload.
    let (ended, began) = loop {
        let runs = state.runs("p", 10).unwrap();
        let next = runs.iter().find(|r| at(&r.started_at) >= at(&applied.at));
        let retired = runs.iter().find(|r| at(&r.started_at) < at(&applied.at) && r.finished_at.is_some());
        if let (Some(next), Some(retired)) = (next, retired) {
            break (at(retired.finished_at.as_deref().unwrap()), at(&next.started_at));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let _ = stop.send(true);
    daemon.await.unwrap().unwrap();
    Round { latency: (at(&applied.at) - saved).to_std().unwrap_or_default(), paused: (began - ended).to_std().unwrap_or_default() }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("SYNCHOST_BENCH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    for (what, plugin_change) in [("field map edited", false), ("plugin replaced (compiled on reload)", true)] {
        let results: Vec<Round> = (0..rounds).map(|index| runtime.block_on(round(index, plugin_change))).collect();
        let latencies: Vec<Duration> = results.iter().map(|r| r.latency).collect();
        let pauses: Vec<Duration> = results.iter().map(|r| r.paused).collect();
        println!(
            "{what}: saved -> serving median {:?} (min {:?}, max {:?}; 1 s of it is the debounce); pipeline paused at the swap median {:?} (max {:?}), {rounds} rounds",
            median(latencies.clone()),
            latencies.iter().min().unwrap(),
            latencies.iter().max().unwrap(),
            median(pauses.clone()),
            pauses.iter().max().unwrap(),
        );
    }
}
