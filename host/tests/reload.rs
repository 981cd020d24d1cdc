//! Hot reload of a real `synchost run`: config edits picked up while it
//! syncs, bad edits rejected with the running version serving on, and a
//! plugin replaced in the middle of a long sync without a record lost or
//! written twice.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TABLE: &str = "CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, phone TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    record_status TEXT NOT NULL DEFAULT 'active', origin TEXT UNIQUE);";

fn config(plugin: &str, branch_dsn: &str, fields: &str, batch: u32) -> String {
    format!(
        r#"
[plugins.table]
path = "table.wasm"

[endpoints.hq]
plugin = "{plugin}"
grants.sql.db = {{ dsn = "sqlite:hq.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[endpoints.branch]
plugin = "{plugin}"
grants.sql.db = {{ dsn = "{branch_dsn}" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[pipelines.p]
left = {{ endpoint = "hq", entity = "contacts" }}
right = {{ endpoint = "branch", entity = "contacts" }}
conflict = "left-wins"
schedule = "1s"
batch_size = {batch}
fields = {fields}
"#
    )
}

struct Host {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Host {
    fn new(hq_rows: u32) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let host = Host { dir, child: None };
        host.db("hq.sqlite").execute_batch(TABLE).unwrap();
        host.db("branch.sqlite").execute_batch(TABLE).unwrap();
        host.db("hq.sqlite")
            .execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {hq_rows})
                 INSERT INTO contacts (name, phone) SELECT 'hq ' || i, '030 ' || i FROM n;"
            ))
            .unwrap();
        std::fs::write(host.path("table.wasm"), synchost::bundled::bytes("sql-table").unwrap()).unwrap();
        host
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self, name: &str) -> rusqlite::Connection {
        let connection = rusqlite::Connection::open(self.path(name)).unwrap();
        connection.busy_timeout(Duration::from_secs(10)).unwrap();
        connection
    }

    fn count(&self, name: &str, sql: &str) -> i64 {
        self.db(name).query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Saves a file the way editors do: a temporary file renamed over it.
    fn save(&self, name: &str, bytes: &[u8]) -> Instant {
        let temporary = self.path(&format!(".{name}.tmp"));
        std::fs::write(&temporary, bytes).unwrap();
        std::fs::rename(&temporary, self.path(name)).unwrap();
        Instant::now()
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.path("host.log")).unwrap();
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_synchost"))
                .current_dir(self.dir.path())
                .arg("run")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    fn synchost(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_synchost")).current_dir(self.dir.path()).args(args).output().unwrap();
        (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("host.log")).unwrap_or_default()
    }

    /// Waits for `done`, failing with the host's log after `limit`.
    fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}\n--- host log ---\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The reloads recorded after the one with id `after`: (id, outcome, summary, detail).
    fn reloads_after(&self, after: i64) -> Vec<(i64, String, String, String)> {
        let path = self.path("synchost-data/state.sqlite");
        if !path.exists() {
            return Vec::new();
        }
        let connection = rusqlite::Connection::open(path).unwrap();
        connection.busy_timeout(Duration::from_secs(10)).unwrap();
        let Ok(mut statement) = connection.prepare("SELECT id, outcome, summary, coalesce(detail, '') FROM reloads WHERE id > ?1 ORDER BY id") else {
            return Vec::new();
        };
        statement.query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().collect::<Result<_, _>>().unwrap()
    }

    fn last_reload_id(&self) -> i64 {
        self.reloads_after(0).last().map_or(0, |r| r.0)
    }

    /// Waits for the next reload outcome after `after`, and returns it.
    fn next_reload(&self, after: i64, limit: Duration) -> (i64, String, String, String) {
        let mut found = None;
        self.wait_for("a reload outcome", limit, || {
            found = self.reloads_after(after).into_iter().next();
            found.is_some()
        });
        found.unwrap()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
            let started = Instant::now();
            while child.try_wait().unwrap().is_none() {
                assert!(started.elapsed() < Duration::from_secs(30), "the host did not stop on SIGTERM\n{}", self.log());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The same component with a custom section added: a new build of the plugin, as far as any host can tell.
fn rebuilt(component: &[u8], note: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let name = b"synchost-test-build";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0); // a custom section
    leb(payload.len(), &mut bytes);
    bytes.extend_from_slice(&payload);
    bytes
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|line| line.contains(needle)).unwrap() + 1
}

const BRANCH: &str = "sqlite:branch.sqlite";

// Covers: H5, T4
#[test]
fn config_edits_are_picked_up_while_it_runs_and_bad_ones_leave_the_running_version_serving() {
    let mut host = Host::new(20);
    std::fs::write(host.path("synchost.toml"), config("sql-table", BRANCH, "{ name = {} }", 50)).unwrap();
    host.start();
    host.wait_for("the first sync", Duration::from_secs(60), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 20);
    assert_eq!(host.count("branch.sqlite", "SELECT count(*) FROM contacts WHERE phone IS NOT NULL"), 0, "phone is not synced yet");
    let loaded = host.reloads_after(0);
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].1, "loaded");

    // A field added to the map: picked up within 2 s, the next run uses it.
    let before = host.last_reload_id();
    let saved = host.save("synchost.toml", config("sql-table", BRANCH, "{ name = {}, phone = {} }", 50).as_bytes());
    let applied = host.next_reload(before, Duration::from_secs(30));
    let latency = saved.elapsed();
    assert_eq!(applied.1, "applied", "{applied:?}");
    assert_eq!(applied.2, "pipeline p changed; 0 pipelines unchanged");
    assert!(latency < Duration::from_secs(2) + Duration::from_millis(500), "picked up after {latency:?}");
    host.db("hq.sqlite").execute("UPDATE contacts SET phone = '+49 30 1', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1", []).unwrap();
    host.wait_for("the new field map in use", Duration::from_secs(30), || {
        host.count("branch.sqlite", "SELECT count(*) FROM contacts WHERE name = 'hq 1' AND phone = '+49 30 1'") == 1
    });

    // A syntax error: rejected with its line and column; the old config keeps syncing.
    let good = config("sql-table", BRANCH, "{ name = {}, phone = {} }", 50);
    let before = host.last_reload_id();
    let broken = good.replace("fields = { name = {}, phone = {} }", "fields = { name = {}, phone = {}");
    host.save("synchost.toml", broken.as_bytes());
    let rejected = host.next_reload(before, Duration::from_secs(30));
    assert_eq!(rejected.1, "rejected", "{rejected:?}");
    let line = line_of(&broken, "fields =");
    assert!(rejected.3.contains(&format!("synchost.toml:{line}:")), "the place of the error, line {line}: {}", rejected.3);
    host.db("hq.sqlite").execute("UPDATE contacts SET name = 'edited after the bad save', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 2", []).unwrap();
    host.wait_for("a row edited after the bad save", Duration::from_secs(30), || {
        host.count("branch.sqlite", "SELECT count(*) FROM contacts WHERE name = 'edited after the bad save' AND phone = '030 2'") == 1
    });

    // An unknown field: rejected, naming it and its place.
    let before = host.last_reload_id();
    let unknown = format!("{good}colour = \"blue\"\n");
    host.save("synchost.toml", unknown.as_bytes());
    let rejected = host.next_reload(before, Duration::from_secs(30));
    assert_eq!(rejected.1, "rejected", "{rejected:?}");
    let line = line_of(&unknown, "colour");
    assert!(rejected.3.contains("colour") && rejected.3.contains(&format!("synchost.toml:{line}:")), "line {line}: {}", rejected.3);

    // A DSN changed to a file that cannot be opened: rejected, naming the endpoint and the fix.
    let before = host.last_reload_id();
    host.save("synchost.toml", config("sql-table", "sqlite:no-such-folder/branch.sqlite", "{ name = {}, phone = {} }", 50).as_bytes());
    let rejected = host.next_reload(before, Duration::from_secs(30));
    assert_eq!(rejected.1, "rejected", "{rejected:?}");
    assert!(rejected.3.contains("endpoint `branch`"), "{}", rejected.3);
    assert!(rejected.3.contains("\"hint\":\""), "with a fix: {}", rejected.3);
    let (ok, status) = host.synchost(&["status"]);
    assert!(ok, "{status}");
    assert!(status.contains("config: revision") && status.contains("last reload: rejected"), "{status}");
    host.db("hq.sqlite").execute("UPDATE contacts SET phone = 'still syncing', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 3", []).unwrap();
    host.wait_for("a row edited after the bad DSN", Duration::from_secs(30), || {
        host.count("branch.sqlite", "SELECT count(*) FROM contacts WHERE phone = 'still syncing'") == 1
    });

    // Put right, and asked for by command: applied, and the command says so.
    std::fs::write(host.path("synchost.toml"), &good).unwrap();
    let (ok, text) = host.synchost(&["reload"]);
    assert!(ok, "{text}");
    assert!(text.contains("applied") || text.contains("unchanged"), "{text}");
    let (ok, text) = host.synchost(&["reloads"]);
    assert!(ok && text.contains("rejected") && text.contains("fix:"), "{text}");
    host.stop();
    assert_eq!(host.count("branch.sqlite", "SELECT count(*) FROM contacts"), 20, "nothing created twice");
}

// Covers: H5, H6
#[test]
fn a_plugin_replaced_in_the_middle_of_a_long_sync_loses_and_duplicates_nothing() {
    const ROWS: i64 = 40_000;
    let mut host = Host::new(ROWS as u32);
    std::fs::write(host.path("synchost.toml"), config("table", BRANCH, "{ name = {}, phone = {} }", 40)).unwrap();
    host.start();
    host.wait_for("the sync under way", Duration::from_secs(120), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") > 0);
    let before = host.last_reload_id();
    host.save("table.wasm", &rebuilt(synchost::bundled::bytes("sql-table").unwrap(), "2"));
    let applied = host.next_reload(before, Duration::from_secs(120));
    assert_eq!(applied.1, "applied", "{applied:?}\n{}", host.log());
    assert!(applied.2.contains("plugin table changed") && applied.2.contains("pipeline p changed"), "{}", applied.2);
    let copied_at_swap = host.count("branch.sqlite", "SELECT count(*) FROM contacts");
    assert!(copied_at_swap < ROWS, "the swap came in the middle of the sync ({copied_at_swap} of {ROWS} copied)");

    host.wait_for("the whole table", Duration::from_secs(300), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == ROWS);
    // Nothing more arrives afterwards, and each row is there once, as it is at the head office.
    std::thread::sleep(Duration::from_secs(2));
    host.stop();
    assert_eq!(host.count("branch.sqlite", "SELECT count(*) FROM contacts"), ROWS);
    assert_eq!(host.count("branch.sqlite", "SELECT count(DISTINCT name) FROM contacts"), ROWS);
    let hq = host.path("hq.sqlite");
    let connection = host.db("branch.sqlite");
    connection.execute("ATTACH ?1 AS hq", [hq.to_str().unwrap()]).unwrap();
    let differing: i64 = connection
        .query_row("SELECT count(*) FROM contacts b LEFT JOIN hq.contacts h ON h.name = b.name AND h.phone = b.phone WHERE h.id IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(differing, 0);
    // The swap was between batches: the run on the old build stopped early, the next went on from its cursor.
    let state = rusqlite::Connection::open(host.path("synchost-data/state.sqlite")).unwrap();
    let runs: Vec<(String, i64)> = state
        .prepare("SELECT status, created FROM runs WHERE pipeline = 'p' ORDER BY run_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(runs.iter().map(|r| r.1).sum::<i64>(), ROWS, "each row created once: {runs:?}");
    assert!(runs.iter().filter(|r| r.1 > 0).count() >= 2, "the sync was split by the swap: {runs:?}");
    assert!(host.log().contains("Stopped between batches"), "{}", host.log());
}
