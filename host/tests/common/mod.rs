//! What the tests of a real `synchost run` share: a folder with two SQLite
//! tables, the host process, the CLI, and the reloads it records.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TABLE: &str = "CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, phone TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    record_status TEXT NOT NULL DEFAULT 'active', origin TEXT UNIQUE);";

/// An endpoint of a contacts table through `plugin`.
pub fn table_endpoint(name: &str, plugin: &str, dsn: &str) -> String {
    format!(
        r#"
[endpoints.{name}]
plugin = "{plugin}"
grants.sql.db = {{ dsn = "{dsn}" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}
"#
    )
}

pub struct Host {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Host {
    pub fn new(hq_rows: u32) -> Host {
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self, name: &str) -> rusqlite::Connection {
        let connection = rusqlite::Connection::open(self.path(name)).unwrap();
        connection.busy_timeout(Duration::from_secs(10)).unwrap();
        connection
    }

    pub fn count(&self, name: &str, sql: &str) -> i64 {
        self.db(name).query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Saves a file the way editors do: a temporary file renamed over it.
    pub fn save(&self, name: &str, bytes: &[u8]) -> Instant {
        let temporary = self.path(&format!(".{name}.tmp"));
        std::fs::write(&temporary, bytes).unwrap();
        std::fs::rename(&temporary, self.path(name)).unwrap();
        Instant::now()
    }

    pub fn start(&mut self) {
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

    pub fn synchost(&self, args: &[&str]) -> (bool, String) {
        self.synchost_with(args, &[])
    }

    /// The CLI with these environment variables set (credentials the config names as `${VAR}`).
    pub fn synchost_with(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_synchost")).current_dir(self.dir.path()).args(args).envs(env.iter().copied()).output().unwrap();
        (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("host.log")).unwrap_or_default()
    }

    /// Waits for `done`, failing with the host's log after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}\n--- host log ---\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The reloads recorded after the one with id `after`: (id, outcome, summary, detail).
    pub fn reloads_after(&self, after: i64) -> Vec<(i64, String, String, String)> {
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

    pub fn last_reload_id(&self) -> i64 {
        self.reloads_after(0).last().map_or(0, |r| r.0)
    }

    /// Waits for the next reload outcome after `after`, and returns it.
    pub fn next_reload(&self, after: i64, limit: Duration) -> (i64, String, String, String) {
        let mut found = None;
        self.wait_for("a reload outcome", limit, || {
            found = self.reloads_after(after).into_iter().next();
            found.is_some()
        });
        found.unwrap()
    }

    pub fn stop(&mut self) {
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
pub fn rebuilt(component: &[u8], note: &str) -> Vec<u8> {
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


/// Runs a command in `dir` with the scaffolds' shared target folder, asserting success.
pub fn run_in(dir: &std::path::Path, program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} in {}:\n{text}", dir.display());
    text
}
