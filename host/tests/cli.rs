//! The `synchost` binary as an admin uses it.

use std::path::Path;
use std::process::{Command, Output};

fn synchost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchost")).current_dir(dir).args(args).output().expect("synchost runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const CONFIG: &str = r#"
[endpoints.crm]
plugin = "sql-table"
grants.sql.main = { dsn = "sqlite:crm.sqlite" }

[endpoints.crm.settings]
connection = "main"
entities.contacts = { updated_at = "updated_at" }
"#;

fn crm_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("crm.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, phone TEXT, updated_at TEXT NOT NULL);
         INSERT INTO contacts VALUES (1, 'Ada', '030 1', '2026-01-01T00:00:00Z'), (2, 'Grace', '089 2', '2026-01-01T00:00:00Z');",
    )
    .unwrap();
    std::fs::write(dir.path().join("synchost.toml"), CONFIG).unwrap();
    dir
}

// Covers: C1, C7, H1
#[test]
fn read_prints_records_and_a_cursor_that_returns_only_changes() {
    let dir = crm_folder();
    let first = synchost(dir.path(), &["read", "crm", "contacts", "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let json: serde_json::Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(json["records"].as_array().unwrap().len(), 2);
    assert_eq!(json["records"][0]["fields"]["name"], "Ada");
    let cursor = json["cursor"].as_str().unwrap().to_owned();

    let db = rusqlite::Connection::open(dir.path().join("crm.sqlite")).unwrap();
    db.execute("UPDATE contacts SET phone = '030 9', updated_at = '2026-01-02T00:00:00Z' WHERE id = 1", []).unwrap();

    let next = synchost(dir.path(), &["read", "crm", "contacts", "--since", &cursor]);
    assert!(next.status.success(), "{}", stderr(&next));
    let text = stdout(&next);
    assert!(text.contains("030 9") && !text.contains("Grace"), "{text}");
    assert!(text.contains("1 record(s)"), "{text}");
    assert!(text.contains("next: synchost read crm contacts --since"), "{text}");
}

// Covers: H6, T4
#[test]
fn check_reports_every_config_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[endpoints.crm]\nplugin = \"sql-tabel\"\n\n[endpoints.other]\nplugin = \"sql-table\"\nlimits = { memory = \"lots\" }\n",
    )
    .unwrap();
    let output = synchost(dir.path(), &["check", "bad.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("--> bad.toml:2:10"), "{text}");
    assert!(text.contains("--> bad.toml:6:"), "{text}");
    assert!(text.contains("2 errors in the config"), "{text}");
}

// Covers: T4, T6
#[test]
fn check_probes_connections_and_names_what_to_fix() {
    let dir = crm_folder();
    let ok = synchost(dir.path(), &["check"]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("contacts (2 fields, change feed)"), "{}", stdout(&ok));

    std::fs::remove_file(dir.path().join("crm.sqlite")).unwrap();
    let failed = synchost(dir.path(), &["check"]);
    assert_eq!(failed.status.code(), Some(1));
    let text = stdout(&failed);
    assert!(text.contains("FAIL  crm sql:main") && text.contains("does not exist"), "{text}");
    assert!(text.contains("fix: check the dsn in [endpoints.crm.grants.sql.main]"), "{text}");
}

// Covers: H2
#[test]
fn plugin_inspect_shows_version_kind_and_entities() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crm-mapper.wasm");
    std::fs::write(&file, synchost::bundled::bytes("crm-mapper").unwrap()).unwrap();
    let output = synchost(dir.path(), &["plugin", "inspect", "crm-mapper.wasm"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("plugin API:  0.5.0 (compatible: the current API)"), "{text}");
    assert!(text.contains("kind:        mapper"), "{text}");

    let file = dir.path().join("sql-table.wasm");
    std::fs::write(&file, synchost::bundled::bytes("sql-table").unwrap()).unwrap();
    let text = stdout(&synchost(dir.path(), &["plugin", "inspect", "sql-table.wasm"]));
    assert!(text.contains("kind:        connector"), "{text}");
    assert!(text.contains("entities:    depend on the endpoint's settings"), "{text}");
}

// Covers: C1, C2, C5, C6, C7, C8, C9, H6, P7, P12
#[test]
fn the_demo_runs_on_its_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let output = synchost(dir.path(), &["demo"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("everything is ready"), "{text}");
    // Use case 1: contacts one way, mapped; an invalid one is a failed item with its fix.
    assert!(text.contains("1000       Lovelace, Ada  ada@example.com    +49301234567  active  2024-03-01"), "{text}");
    assert!(text.contains("fix: write it as name@example.com"), "{text}");
    // Use case 2: payments one way, status the other.
    assert!(text.contains("paid_amount: ∅ -> 499") && text.contains("status: new -> shipped"), "{text}");
    // Use case 3 and the policies: one numbering in three CRMs, conflicts decided, a tombstone everywhere.
    assert_eq!(text.matches("INV-3001    Barbara Liskov").count(), 3, "{text}");
    assert!(text.contains("amount: conflict, policy left-wins (left wins)"), "{text}");
    assert!(text.contains("status: conflict, policy last-writer-wins (right wins)"), "{text}");
    assert!(text.contains("conflict #1 on invoices-branch `note`"), "{text}");
    assert_eq!(text.matches("INV-3001    deleted").count(), 3, "{text}");

    // The admin commands answer from state, in the demo folder.
    let demo = dir.path().join("synchost-demo");
    let status = stdout(&synchost(&demo, &["status"]));
    assert!(status.contains("scheduler: NOT RUNNING"), "{status}");
    assert!(status.contains("invoices:") && status.contains("master data:"), "{status}");
    assert!(status.contains("1 failed items, 0 open conflicts"), "{status}");
    let history = stdout(&synchost(&demo, &["history", "invoices-branch", "left:1"]));
    assert!(history.contains(r#"amount: "1100" -> "1250""#), "{history}");
    let conflicts = stdout(&synchost(&demo, &["conflicts", "list"]));
    assert!(conflicts.contains("field `note`: left net 30, agreed by phone | right customer asks for net 60"), "{conflicts}");
    let resolved = synchost(&demo, &["conflicts", "resolve", "1", "--take", "right", "--by", "carol"]);
    assert!(resolved.status.success(), "{}", stderr(&resolved));
    let hq = rusqlite::Connection::open(demo.join("hq.sqlite")).unwrap();
    let note: String = hq.query_row("SELECT note FROM invoices WHERE invoice_no = 'INV-1001'", [], |r| r.get(0)).unwrap();
    assert_eq!(note, "customer asks for net 60");
    let failed = stdout(&synchost(&demo, &["failed", "list"]));
    assert!(failed.contains("left record 3") && failed.contains("fix: write it as name@example.com"), "{failed}");
    let messages = stdout(&synchost(&demo, &["messages"]));
    assert!(messages.contains("conflict 1 resolved by carol: took the right side"), "{messages}");
    let dry = stdout(&synchost(&demo, &["sync", "--dry-run"]));
    assert!(dry.contains("dry run, nothing changed"), "{dry}");

    // Links are 1:1 and only an admin removes one; the history says so.
    let links = stdout(&synchost(&demo, &["links", "list", "orders"]));
    assert_eq!(links.lines().count(), 2, "{links}");
    let unlinked = synchost(&demo, &["links", "unlink", "orders", "1"]);
    assert!(unlinked.status.success(), "{}", stderr(&unlinked));
    assert_eq!(stdout(&synchost(&demo, &["links", "list", "orders"])).lines().count(), 1);
    let history = stdout(&synchost(&demo, &["history", "orders", "left:1"]));
    assert!(history.contains("unlink") && history.contains("unlinked by an admin"), "{history}");
}

#[test]
fn the_checked_in_config_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/synchost.schema.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == synchost::schema::config_schema_json(),
        "schemas/synchost.schema.json is out of date; renew it with:\n    cargo run -- schema > schemas/synchost.schema.json"
    );
}

// Covers: C10, T3, H6
#[test]
fn status_shows_whether_the_scheduler_runs_one_writer_at_a_time_and_pause_is_an_admins_act() {
    let dir = crm_folder();
    std::fs::write(
        dir.path().join("synchost.toml"),
        format!(
            "{CONFIG}\n[host.admin]\nenabled = false\n\n[endpoints.copy]\nplugin = \"sql-table\"\ngrants.sql.main = {{ dsn = \"sqlite:copy.sqlite\" }}\nsettings = {{ connection = \"main\", entities.contacts = {{ updated_at = \"updated_at\" }} }}\n\n[pipelines.p]\ncategory = \"crm\"\nleft = {{ endpoint = \"crm\", entity = \"contacts\" }}\nright = {{ endpoint = \"copy\", entity = \"contacts\" }}\nschedule = \"1s\"\nfields = {{ name = {{}}, phone = {{}} }}\n"
        ),
    )
    .unwrap();
    rusqlite::Connection::open(dir.path().join("copy.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, phone TEXT, updated_at TEXT)")
        .unwrap();
    let before = stdout(&synchost(dir.path(), &["status"]));
    assert!(before.contains("scheduler: NOT RUNNING (never started)"), "{before}");

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_synchost")).current_dir(dir.path()).arg("run").spawn().unwrap();
    let started = std::time::Instant::now();
    let mut status = String::new();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        status = stdout(&synchost(dir.path(), &["status"]));
        if status.contains("scheduler: running") && status.contains("last run ok") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(status.contains("scheduler: running") && status.contains("last run ok"), "{status}");
    let copied: i64 = rusqlite::Connection::open(dir.path().join("copy.sqlite")).unwrap().query_row("SELECT count(*) FROM contacts", [], |r| r.get(0)).unwrap();
    assert_eq!(copied, 2);

    // One writer per state store: a second `run`, and (this host serves no
    // admin API to send them to) a `sync` and a `failed retry` refuse and
    // name the running host; a dry run works beside it.
    for args in [&["run"][..], &["sync"], &["sync", "p"], &["failed", "retry", "p"]] {
        let refused = synchost(dir.path(), args);
        assert!(!refused.status.success(), "`synchost {}` beside a running host", args.join(" "));
        let text = stderr(&refused);
        assert!(text.contains(&format!("`synchost run` (pid {}", daemon.id())), "{text}");
        assert!(text.contains("only one writer at a time") && text.contains("fix:"), "{text}");
    }
    let dry = synchost(dir.path(), &["sync", "p", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));

    let paused = synchost(dir.path(), &["pause", "p", "--by", "alice"]);
    assert!(paused.status.success(), "{}", stderr(&paused));
    let status = stdout(&synchost(dir.path(), &["status"]));
    assert!(status.contains("paused by alice"), "{status}");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    // Killed with SIGKILL: status knows at once, and the next writer may start.
    let status = stdout(&synchost(dir.path(), &["status"]));
    assert!(status.contains("scheduler: NOT RUNNING"), "{status}");
    let status = stdout(&synchost(dir.path(), &["status", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(json["pipelines"][0]["state"], "paused");
    assert_eq!(json["scheduler"]["running"], false);
    let retry = synchost(dir.path(), &["failed", "retry", "p"]);
    assert!(retry.status.success(), "{}", stderr(&retry));
}

// Covers: C1, T4
#[test]
fn the_users_database_keeps_its_journal_mode_and_output_suits_a_pipe() {
    let dir = crm_folder();
    let journal = |dir: &Path| -> String {
        let db = rusqlite::Connection::open(dir.join("crm.sqlite")).unwrap();
        db.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(journal(dir.path()), "delete");
    let read = synchost(dir.path(), &["read", "crm", "contacts"]);
    assert!(read.status.success(), "{}", stderr(&read));
    assert_eq!(journal(dir.path()), "delete", "synchost never switches a user's database to WAL");

    // On a pipe: no colour codes in the log, and a reader that stops early
    // (`| head -1`) ends the command quietly.
    assert!(!stderr(&read).contains('\u{1b}'), "{}", stderr(&read));
    let mut child = Command::new(env!("CARGO_BIN_EXE_synchost"))
        .current_dir(dir.path())
        .args(["schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "a closed pipe is not an error: {:?}", output.status);
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

/// A copy of the CRM's contacts whose new and changed records wait for
/// approval, synced every second by `synchost run`.
fn approval_pipeline(dir: &Path) {
    std::fs::write(
        dir.join("synchost.toml"),
        format!(
            "{CONFIG}\n[host.admin]\nlisten = \"127.0.0.1:0\"\n\n[endpoints.copy]\nplugin = \"sql-table\"\ngrants.sql.main = {{ dsn = \"sqlite:copy.sqlite\" }}\nsettings = {{ connection = \"main\", entities.contacts = {{ updated_at = \"updated_at\", origin = \"origin\" }} }}\n\n[pipelines.p]\nleft = {{ endpoint = \"crm\", entity = \"contacts\" }}\nright = {{ endpoint = \"copy\", entity = \"contacts\" }}\nschedule = \"1s\"\nfields = {{ name = {{}}, phone = {{}} }}\napproval = {{ direction = \"left-to-right\" }}\n"
        ),
    )
    .unwrap();
    rusqlite::Connection::open(dir.join("copy.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, phone TEXT, updated_at TEXT, origin TEXT UNIQUE)")
        .unwrap();
}

/// Waits up to a minute for `done`, naming what it waited for if in vain.
fn wait_for(what: &str, done: &dyn Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "waited in vain for {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

// Covers: P2, H6
#[test]
fn an_approval_given_while_the_host_runs_is_carried_out_once_by_the_host() {
    let dir = crm_folder();
    approval_pipeline(dir.path());
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_synchost")).current_dir(dir.path()).arg("run").spawn().unwrap();
    let pending = || stdout(&synchost(dir.path(), &["approvals", "list", "--json"]));
    wait_for("two changes waiting for approval", &|| {
        serde_json::from_str::<serde_json::Value>(&pending()).is_ok_and(|j| j.as_array().is_some_and(|a| a.len() == 2))
    });
    // The team edits the record after the approver looked: the approval is
    // revised, and a decision on what the approver saw is refused.
    let db = rusqlite::Connection::open(dir.path().join("crm.sqlite")).unwrap();
    db.execute("UPDATE contacts SET name = 'Ada L.', updated_at = '2026-01-05T00:00:00Z' WHERE id = 1", []).unwrap();
    wait_for("the approval revised", &|| stdout(&synchost(dir.path(), &["approvals", "list"])).contains("#1@2"));
    // Named the way the team knows it, beside its id.
    let list = stdout(&synchost(dir.path(), &["approvals", "list"]));
    assert!(list.contains("left record 1 \"Ada L.\": "), "{list}");
    for (seen, says) in [("1", "was revised since it was first queued"), ("1@1", "changed after revision 1")] {
        let refused = synchost(dir.path(), &["approvals", "approve", seen, "--by", "pm"]);
        assert!(!refused.status.success(), "approving {seen}");
        let text = stderr(&refused);
        assert!(text.contains(says) && text.contains("approvals show 1") && text.contains("`1@2`"), "{text}");
    }
    let approved = synchost(dir.path(), &["approvals", "approve", "1@2", "--by", "pm"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    let text = stdout(&approved);
    // Through the running host's admin API: the host carries it out.
    assert!(text.contains("approval 1 approved by pm (command line); pipeline p carries it out now"), "{text}");
    // Approving again is refused: the decision was claimed once.
    let again = synchost(dir.path(), &["approvals", "approve", "1@2", "--by", "pm"]);
    assert!(!again.status.success() && stderr(&again).contains("already decided"), "{}", stderr(&again));
    let copied = || -> i64 {
        rusqlite::Connection::open(dir.path().join("copy.sqlite")).unwrap().query_row("SELECT count(*) FROM contacts", [], |r| r.get(0)).unwrap()
    };
    wait_for("the approved record in the copy", &|| copied() == 1);
    let name: String = rusqlite::Connection::open(dir.path().join("copy.sqlite")).unwrap().query_row("SELECT name FROM contacts", [], |r| r.get(0)).unwrap();
    assert_eq!(name, "Ada L.", "the revision approved is the one written");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(copied(), 1, "carried out exactly once; the other change still waits");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

// Covers: P2, P4, H6
#[test]
fn twenty_approvals_given_from_the_cli_while_the_host_runs_are_each_carried_out_once() {
    let dir = crm_folder();
    let crm = rusqlite::Connection::open(dir.path().join("crm.sqlite")).unwrap();
    crm.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
         INSERT INTO contacts SELECT i, 'Contact ' || i, '0' || i, '2026-01-01T00:00:00Z' FROM n;",
    )
    .unwrap();
    approval_pipeline(dir.path());
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_synchost")).current_dir(dir.path()).arg("run").spawn().unwrap();
    let pending = || -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&stdout(&synchost(dir.path(), &["approvals", "list", "--json"])))
            .ok()
            .and_then(|j| j.as_array().cloned())
            .unwrap_or_default()
    };
    wait_for("twenty changes waiting for approval", &|| pending().len() == 20);
    for approval in pending() {
        let id = format!("{}@{}", approval["id"], approval["revision"]);
        let approved = synchost(dir.path(), &["approvals", "approve", &id, "--by", "pm"]);
        assert!(approved.status.success(), "{id}: {}", stderr(&approved));
    }
    let copied = || -> Vec<String> {
        let db = rusqlite::Connection::open(dir.path().join("copy.sqlite")).unwrap();
        let mut rows = db.prepare("SELECT name FROM contacts ORDER BY name").unwrap();
        rows.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    wait_for("the twenty approved records in the copy", &|| copied().len() >= 20);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let names = copied();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!((names.len(), unique.len()), (20, 20), "each decision carried out once: {names:?}");
    let all = stdout(&synchost(dir.path(), &["approvals", "list", "--all", "--json"]));
    let all: Vec<serde_json::Value> = serde_json::from_str(&all).unwrap();
    assert_eq!(all.iter().filter(|a| a["status"] == "approved" && !a["applied_at"].is_null()).count(), 20, "{all:#?}");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

// Covers: T4, T6, H6
#[test]
fn check_finds_a_damaged_database_and_settings_that_never_apply() {
    let dir = crm_folder();
    // A pipeline whose field sets a policy its one-way direction never uses.
    let config = std::fs::read_to_string(dir.path().join("synchost.toml")).unwrap();
    std::fs::write(
        dir.path().join("synchost.toml"),
        format!(
            "{config}\n[endpoints.copy]\nplugin = \"sql-table\"\ngrants.sql.main = {{ dsn = \"sqlite:copy.sqlite\" }}\nsettings = {{ connection = \"main\", entities.contacts = {{ updated_at = \"updated_at\" }} }}\n\n[pipelines.p]\nleft = {{ endpoint = \"crm\", entity = \"contacts\" }}\nright = {{ endpoint = \"copy\", entity = \"contacts\" }}\nfields = {{ name = {{ direction = \"left-to-right\", conflict = \"right-wins\" }} }}\n"
        ),
    )
    .unwrap();
    rusqlite::Connection::open(dir.path().join("copy.sqlite"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, phone TEXT, updated_at TEXT); CREATE INDEX by_name ON contacts (name);
             WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 2000) INSERT INTO contacts (name, updated_at) SELECT 'n' || v, '2026' FROM s;",
        )
        .unwrap();
    let ok = synchost(dir.path(), &["check"]);
    let text = stdout(&ok);
    assert!(text.contains("opens and is intact"), "{text}");
    assert!(text.contains("warn  p") && text.contains("conflict = \"right-wins\" never applies"), "{text}");
    // The copy has no origin column: a create cut short could not be found again.
    assert!(text.contains("new left records are created in copy.contacts, which cannot find a record by its origin"), "{text}");

    // A page of the index damaged by something else: `check` says so.
    let path = dir.path().join("copy.sqlite");
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    let last = bytes.len() / page - 1;
    for byte in &mut bytes[last * page + 8..last * page + 400] {
        *byte = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    let damaged = synchost(dir.path(), &["check"]);
    assert_eq!(damaged.status.code(), Some(1));
    let text = stdout(&damaged);
    assert!(text.contains("FAIL  copy sql:main") && text.contains("is damaged"), "{text}");
    assert!(text.contains("restore the file from a backup"), "{text}");
}

// Covers: C8, T2
#[test]
fn status_lists_a_record_deleted_on_one_side_only_with_the_way_to_settle_it() {
    let dir = tempfile::tempdir().unwrap();
    let table = "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL, record_status TEXT NOT NULL DEFAULT 'active', origin TEXT UNIQUE)";
    for name in ["hq.sqlite", "branch.sqlite"] {
        rusqlite::Connection::open(dir.path().join(name)).unwrap().execute_batch(table).unwrap();
    }
    let entity = r#"{ updated_at = "updated_at", soft_delete = { column = "record_status" }, origin = "origin" }"#;
    std::fs::write(
        dir.path().join("synchost.toml"),
        format!(
            "[endpoints.hq]\nplugin = \"sql-table\"\ngrants.sql.db = {{ dsn = \"sqlite:hq.sqlite\" }}\nsettings = {{ connection = \"db\", entities = {{ contacts = {entity} }} }}\n\n\
             [endpoints.branch]\nplugin = \"sql-table\"\ngrants.sql.db = {{ dsn = \"sqlite:branch.sqlite\" }}\nsettings = {{ connection = \"db\", entities = {{ contacts = {entity} }} }}\n\n\
             [pipelines.p]\nleft = {{ endpoint = \"hq\", entity = \"contacts\" }}\nright = {{ endpoint = \"branch\", entity = \"contacts\" }}\nconflict = \"right-wins\"\ndeletes = \"ignore\"\nfields = {{ name = {{}} }}\n"
        ),
    )
    .unwrap();
    let sql = |db: &str, statement: &str| rusqlite::Connection::open(dir.path().join(db)).unwrap().execute_batch(statement).unwrap();
    sql("hq.sqlite", "INSERT INTO contacts (name, updated_at) VALUES ('Ada', '2026-01-01T00:00:00Z')");
    assert!(synchost(dir.path(), &["sync"]).status.success());
    sql("hq.sqlite", "UPDATE contacts SET record_status = 'deleted', updated_at = '2026-01-02T00:00:00Z'");
    sql("branch.sqlite", "UPDATE contacts SET name = 'Ada edited', updated_at = '2026-01-03T00:00:00Z'");
    assert!(synchost(dir.path(), &["sync"]).status.success());
    let status = stdout(&synchost(dir.path(), &["status"]));
    assert!(status.contains("half-deleted right left:1 right:1: deleted on the left side only"), "{status}");
    assert!(status.contains("fix: to bring it back on the left side: `synchost links unlink p 1` then `synchost sync p`"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&synchost(dir.path(), &["status", "--json"]))).unwrap();
    assert_eq!(json["pipelines"][0]["items"][0]["result"], "half-deleted");
    // The conflict queue shows it too, with the same way to settle it.
    let queue = stdout(&synchost(dir.path(), &["conflicts", "list"]));
    assert!(queue.contains("half-deleted p") && queue.contains("left 1 / right 1: deleted on the left side only"), "{queue}");
    assert!(queue.contains("fix: to bring it back on the left side: `synchost links unlink p 1`"), "{queue}");
    // The fix, followed literally, brings the record back on the left side.
    assert!(synchost(dir.path(), &["links", "unlink", "p", "1"]).status.success());
    let synced = synchost(dir.path(), &["sync", "p"]);
    assert!(synced.status.success(), "{}", stderr(&synced));
    let hq: Vec<String> = {
        let db = rusqlite::Connection::open(dir.path().join("hq.sqlite")).unwrap();
        let mut s = db.prepare("SELECT name || '|' || record_status FROM contacts ORDER BY id").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(hq, ["Ada|deleted", "Ada edited|active"], "{}", stdout(&synced));
    assert!(!stdout(&synchost(dir.path(), &["status"])).contains("half-deleted"));
    assert!(!stdout(&synchost(dir.path(), &["conflicts", "list"])).contains("half-deleted"));
}

// Covers: H3, T4
#[test]
fn check_reports_every_mistake_of_a_table_and_of_a_plugins_settings_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join("a.sqlite")).unwrap().execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT)").unwrap();
    let config = r#"[endpoints.a]
plugin = "sql-table"
grants.sql.db = { dsn = "sqlite:a.sqlite" }
settings = { connection = "db", entities = { t = { colour = "red" } } }

[pipelines.customers]
left = { endpoint = "a", entity = "t" }
right = { endpoint = "a", entity = "u" }
conflcit = "left-wins"
batch_size = "many"
fields = { name = {} }
"#;
    std::fs::write(dir.path().join("synchost.toml"), config).unwrap();
    let typos = synchost(dir.path(), &["check"]);
    let text = format!("{}{}", stdout(&typos), stderr(&typos));
    // Both mistakes of the one table, in the order of the file, each with its place.
    let conflict = text.find("unknown field `conflcit`").unwrap_or_else(|| panic!("{text}"));
    let batch = text.find("invalid type: string \"many\"").unwrap_or_else(|| panic!("{text}"));
    assert!(conflict < batch, "{text}");
    assert!(text.contains("synchost.toml:9:1") && text.contains("synchost.toml:10:14"), "{text}");
    assert!(text.contains("2 errors in the config"), "{text}");

    // With the table right, the plugin's complaint about its settings points at the key.
    std::fs::write(dir.path().join("synchost.toml"), config.replace("conflcit", "conflict").replace("\"many\"", "10")).unwrap();
    let settings = synchost(dir.path(), &["check"]);
    let text = stdout(&settings);
    assert!(text.contains("unknown field `colour`"), "{text}");
    assert!(text.contains("at synchost.toml:4:52"), "{text}");
}

// Covers: T2, T5
#[test]
fn commands_that_only_read_state_need_no_secrets_and_the_others_name_the_missing_one() {
    let dir = crm_folder();
    let config = std::fs::read_to_string(dir.path().join("synchost.toml")).unwrap();
    std::fs::write(
        dir.path().join("synchost.toml"),
        format!(
            "{config}\n[endpoints.tracker]\nplugin = \"redmine\"\ngrants.http.allow = [\"http://127.0.0.1:9\"]\nsettings = {{ url = \"http://127.0.0.1:9\", api_key = \"${{SYNCHOST_TEST_UNSET_KEY}}\" }}\n"
        ),
    )
    .unwrap();
    for command in [&["status"][..], &["messages"], &["failed", "list"], &["conflicts", "list"], &["approvals", "list"], &["history", "p", "left:1"]] {
        let output = synchost(dir.path(), command);
        assert!(output.status.success(), "{command:?} needs no secret: {}", stderr(&output));
    }
    let refused = synchost(dir.path(), &["check"]);
    assert!(!refused.status.success());
    let text = stderr(&refused);
    assert!(text.contains("api_key takes its value from the environment variable SYNCHOST_TEST_UNSET_KEY, which is not set"), "{text}");
}

// Covers: H6, T2
#[test]
fn a_big_sync_prints_a_summary_not_every_record() {
    let dir = crm_folder();
    let db = rusqlite::Connection::open(dir.path().join("crm.sqlite")).unwrap();
    db.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
         INSERT INTO contacts SELECT i, 'c' || i, NULL, '2026-01-01T00:00:00Z' FROM n;",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("synchost.toml"),
        format!(
            "{CONFIG}\n[endpoints.copy]\nplugin = \"sql-table\"\ngrants.sql.main = {{ dsn = \"sqlite:copy.sqlite\" }}\nsettings = {{ connection = \"main\", entities.contacts = {{ updated_at = \"updated_at\", origin = \"origin\" }} }}\n\n[pipelines.p]\nleft = {{ endpoint = \"crm\", entity = \"contacts\" }}\nright = {{ endpoint = \"copy\", entity = \"contacts\" }}\nfields = {{ name = {{}}, phone = {{}} }}\n"
        ),
    )
    .unwrap();
    rusqlite::Connection::open(dir.path().join("copy.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, phone TEXT, updated_at TEXT, origin TEXT UNIQUE)")
        .unwrap();
    let synced = synchost(dir.path(), &["sync", "p"]);
    assert!(synced.status.success(), "{}", stderr(&synced));
    let out = stdout(&synced);
    assert_eq!(out.matches("  create ").count(), 20, "the first 20 decisions: {out}");
    assert!(out.contains("... and 1480 more (`synchost history p` has every one), `--all` for the first 1000"), "{out}");
    assert!(out.contains("p: read 1500 left, ") && out.contains("; 1500 created, 0 updated"), "{out}");
    assert!(out.len() < 8_000, "a summary, not a line per record: {} bytes", out.len());
    // The history has one entry per batch of creates, and finds each record's.
    let history = stdout(&synchost(dir.path(), &["history", "p", "--limit", "2000"]));
    assert_eq!(history.matches("create   500 records, left -> right").count(), 3, "batches of 500: {history}");
    let one = stdout(&synchost(dir.path(), &["history", "p", "left:1200"]));
    assert_eq!(one.matches("create   500 records").count(), 1, "the batch it was created in: {one}");
}
