//! The HTTP connector a vendor scaffolds with `synchost package new --kind
//! connector --http`, packed, installed and run by a real `synchost` against
//! a real HTTP service (the ticket tracker of `examples/tickets-service`):
//! credentials from `${VAR}`, the probe, both directions, a ticket the
//! service refuses failing alone, edits on either side.

mod common;

use common::{run_in, Host};
use tickets_service::{Service, TicketInput, Tokens};

const LOCAL: &str = "CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, status TEXT, assignee TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), origin TEXT UNIQUE);";

fn config(address: &str) -> String {
    format!(
        r#"
[endpoints.desk]
plugin = "acme-tickets"
grants.http.allow = ["http://{address}"]
settings = {{ url = "http://{address}", token = "${{TICKETS_TOKEN}}" }}

[endpoints.local]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:local.sqlite" }}
settings = {{ connection = "db", entities = {{ tickets = {{ updated_at = "updated_at", origin = "origin" }} }} }}

[pipelines.tickets]
left = {{ endpoint = "desk", entity = "tickets" }}
right = {{ endpoint = "local", entity = "tickets" }}
conflict = "manual"
fields = {{ title = {{}}, status = {{}}, assignee = {{}} }}
"#
    )
}

fn ticket(title: &str, assignee: &str) -> TicketInput {
    TicketInput { title: Some(title.into()), assignee: Some(Some(assignee.into())), ..TicketInput::default() }
}

// Covers: H4, C2, C8, T4
#[test]
fn a_scaffolded_http_connector_keeps_a_ticket_tracker_and_a_table_in_sync() {
    let host = Host::new(0);
    let service = Service::new(Tokens { read_write: vec!["rw-s3cret".into()], read_only: vec!["ro-s3cret".into()] });
    service.create(ticket("Printer jams", "ada")).unwrap();
    service.create(ticket("VPN drops", "grace")).unwrap();
    let address = service.spawn().to_string();

    // The vendor: scaffold, unit tests, the service's origin in the manifest, pack.
    let synchost = env!("CARGO_BIN_EXE_synchost");
    run_in(host.dir.path(), synchost, &["package", "new", "acme-tickets", "--kind", "connector", "--http", "--publisher", "acme"]);
    let crate_dir = host.path("acme-tickets");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tests = run_in(&crate_dir, &cargo, &["test"]);
    assert!(tests.contains("test result: ok. 4 passed"), "{tests}");
    let manifest = std::fs::read_to_string(crate_dir.join("synchost-package.toml")).unwrap();
    std::fs::write(crate_dir.join("synchost-package.toml"), manifest.replace("127.0.0.1:8765", &address)).unwrap();
    run_in(&crate_dir, synchost, &["package", "pack"]);
    std::fs::write(host.path("synchost.toml"), config(&address)).unwrap();
    let (ok, text) = host.synchost(&["package", "install", "acme-tickets/acme-tickets-0.1.0.synchost-package", "--allow-unsigned"]);
    assert!(ok, "{text}");

    // The admin: the token comes from the environment.
    host.db("local.sqlite").execute_batch(LOCAL).unwrap();
    let (ok, text) = host.synchost_with(&["check"], &[("TICKETS_TOKEN", "wrong-s3cret")]);
    assert!(!ok && text.contains("the service refused the token in `token` (HTTP 401"), "{text}");
    assert!(!text.contains("wrong-s3cret"), "a credential is never shown: {text}");
    let (ok, text) = host.synchost_with(&["check"], &[("TICKETS_TOKEN", "ro-s3cret")]);
    assert!(!ok && text.contains("the token in `token` may only read tickets"), "{text}");
    let (ok, text) = host.synchost(&["check"]);
    assert!(!ok && text.contains("TICKETS_TOKEN"), "an unset variable is named: {text}");
    let token = [("TICKETS_TOKEN", "rw-s3cret")];
    let (ok, text) = host.synchost_with(&["check"], &token);
    assert!(ok, "{text}");

    // The tracker's tickets arrive in the table.
    let (ok, text) = host.synchost_with(&["sync"], &token);
    assert!(ok && text.contains("2 created"), "{text}");
    assert_eq!(host.count("local.sqlite", "SELECT count(*) FROM tickets WHERE title = 'Printer jams' AND assignee = 'ada' AND status = 'open'"), 1);

    // Three new rows; the service refuses the one without a title, and only that one fails.
    host.db("local.sqlite")
        .execute_batch("INSERT INTO tickets (title, status, assignee) VALUES ('Screen flickers', 'open', 'edsger'), ('', 'open', 'ada'), ('Mouse lost', 'done', NULL);")
        .unwrap();
    let (ok, text) = host.synchost_with(&["sync"], &token);
    assert!(ok && text.contains("2 created") && text.contains("1 failed"), "{text}");
    let created: Vec<_> = service.tickets().into_iter().filter(|t| t.origin.is_some()).map(|t| (t.title, t.status, t.assignee)).collect();
    assert_eq!(created, [("Screen flickers".to_owned(), "open".to_owned(), Some("edsger".to_owned())), ("Mouse lost".into(), "done".into(), None)]);
    let (_, failed) = host.synchost(&["failed", "list"]);
    assert!(failed.contains("the service refused it: a ticket needs a title"), "{failed}");

    // An edit on each side crosses over.
    service.edit(1, TicketInput { status: Some("in-progress".into()), ..TicketInput::default() }).unwrap();
    host.db("local.sqlite")
        .execute("UPDATE tickets SET assignee = 'grace', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE title = 'Screen flickers'", [])
        .unwrap();
    let (ok, text) = host.synchost_with(&["sync"], &token);
    assert!(ok && text.contains("2 updated"), "{text}");
    assert_eq!(host.count("local.sqlite", "SELECT count(*) FROM tickets WHERE title = 'Printer jams' AND status = 'in-progress'"), 1);
    assert!(service.tickets().iter().any(|t| t.title == "Screen flickers" && t.assignee.as_deref() == Some("grace")));
    let (ok, text) = host.synchost_with(&["sync"], &token);
    assert!(ok && text.contains("0 created, 0 updated"), "nothing left to do: {text}");
}
