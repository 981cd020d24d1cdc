//! Secrets never leave: a secret planted in every place one can be configured
//! (URL userinfo and query, a DSN, `${VAR}` settings, a literal key) does not
//! show in anything a person or a file sees, whatever command runs and
//! however the run fails.

use std::path::Path;
use std::process::{Command, Output};

const USERINFO_SECRET: &str = "userinfo-Pw-71c3";
const QUERY_SECRET: &str = "query-Key-82d4";
const ENV_SECRET: &str = "env-ApiKey-93e5a1";
const LITERAL_SECRET: &str = "literal-Token-a4f6";
const DSN_SECRET: &str = "dsn-Pass-b5a7";

fn synchost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchost"))
        .current_dir(dir)
        .args(args)
        .env("SYNCHOST_TEST_TRACKER_KEY", ENV_SECRET)
        .env("RUST_LOG", "debug,cranelift_codegen=info,wasmtime=info")
        .output()
        .expect("synchost runs")
}

/// A port nothing listens on: the tracker is down.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn config(port: u16) -> String {
    format!(
        r#"
[endpoints.desktop]
plugin = "desktop-timesheet"
grants.sql.timesheets = {{ dsn = "sqlite:desktop.sqlite" }}

[endpoints.desktop.settings]
connection = "timesheets"
create_schema = true

[endpoints.tracker]
plugin = "redmine"
grants.http.allow = ["127.0.0.1:{port}"]
limits.timeout = "5s"

[endpoints.tracker.settings]
url = "http://tracker-user:{USERINFO_SECRET}@127.0.0.1:{port}/?key={QUERY_SECRET}"
api_key = "${{SYNCHOST_TEST_TRACKER_KEY}}"
project = "secrets"

[endpoints.old-tracker]
plugin = "redmine"
grants.http.allow = ["127.0.0.1:{port}"]
settings = {{ url = "http://127.0.0.1:{port}", api_key = "{LITERAL_SECRET}", project = "old" }}

[pipelines.activities]
left = {{ endpoint = "desktop", entity = "activities" }}
right = {{ endpoint = "tracker", entity = "activities" }}
create = "right-to-left"
match_on = ["name"]
conflict = "right-wins"

[pipelines.activities.fields]
name = {{ direction = "right-to-left" }}
"#
    )
}

fn assert_clean(what: &str, text: &str) {
    for secret in [USERINFO_SECRET, QUERY_SECRET, ENV_SECRET, LITERAL_SECRET, DSN_SECRET] {
        assert!(!text.contains(secret), "{what} shows the secret {secret}:\n{text}");
    }
}

// Covers: H1, T4
#[test]
fn a_planted_secret_shows_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("synchost.toml"), config(closed_port())).unwrap();
    // The desktop edition's database, made by its connector on first use.
    rusqlite::Connection::open(root.join("desktop.sqlite")).unwrap();

    let commands: &[&[&str]] = &[
        &["check"],
        &["sync"],
        &["sync", "activities", "--dry-run"],
        &["status"],
        &["status", "--json"],
        &["messages", "--since", "1h"],
        &["failed", "list"],
        &["failed", "list", "--json"],
        &["history", "activities"],
        &["links", "list", "activities"],
        &["conflicts", "list"],
        &["approvals", "list"],
        &["read", "tracker", "activities"],
        &["read", "desktop", "activities", "--json"],
    ];
    let mut failures = 0;
    for args in commands {
        let output = synchost(root, args);
        failures += usize::from(!output.status.success());
        assert_clean(&format!("`synchost {}` stdout", args.join(" ")), &String::from_utf8_lossy(&output.stdout));
        assert_clean(&format!("`synchost {}` stderr", args.join(" ")), &String::from_utf8_lossy(&output.stderr));
    }
    assert!(failures >= 3, "the tracker is down: check, sync and read fail");
    let status = String::from_utf8_lossy(&synchost(root, &["status"]).stdout).into_owned();
    assert!(status.contains("127.0.0.1"), "the failure still names the host: {status}");

    // The state store, every table and every byte of the file.
    let state = root.join("synchost-data/state.sqlite");
    let db = rusqlite::Connection::open(&state).unwrap();
    let events: Vec<String> = db
        .prepare("SELECT message || ' ' || coalesce(hint, '') FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!events.is_empty(), "the failing run left events");
    assert_clean("the event table", &events.join("\n"));
    drop(db);
    for file in std::fs::read_dir(root.join("synchost-data")).unwrap().flatten() {
        if file.path().is_file() {
            let bytes = std::fs::read(file.path()).unwrap();
            assert_clean(&format!("{}", file.path().display()), &String::from_utf8_lossy(&bytes));
        }
    }
}

// Covers: H1, T4
#[test]
fn config_errors_mask_dsns_and_secret_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("synchost.toml"),
        format!(
            r#"
[endpoints.crm]
plugin = "sql-table"
grants.sql.main = {{ dsn = "postgres://app:{DSN_SECRET}@db.example/crm" }}

[endpoints.other]
plugin = "sql-table"
settings = {{ password = "{LITERAL_SECRET}", connection = 7 }} trailing
"#
        ),
    )
    .unwrap();
    for args in [&["check"][..], &["status"], &["sync"]] {
        let output = synchost(root, args);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error"), "{stderr}");
        assert_clean("a config error", &stderr);
    }
    // Fixing the TOML leaves the DSN error, masked but still pointing at its place.
    std::fs::write(
        root.join("synchost.toml"),
        format!(
            r#"
[endpoints.crm]
plugin = "sql-table"
grants.sql.main = {{ dsn = "postgres://app:{DSN_SECRET}@db.example/crm" }}
"#
        ),
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&synchost(root, &["check"]).stderr).into_owned();
    assert!(stderr.contains("postgres://***@db.example/crm"), "{stderr}");
    assert!(stderr.contains("synchost.toml:4"), "{stderr}");
    assert_clean("a DSN error", &stderr);
}
