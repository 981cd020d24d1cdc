//! Two real hosts, each with its own state and its own SQLite CRM, that meet
//! only through message files in a crossed folder pair (D1-D11, C4).

use std::path::{Path, PathBuf};
use std::process::Command;

const TABLE: &str = "CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, phone TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    record_status TEXT NOT NULL DEFAULT 'active', origin TEXT UNIQUE);";

/// Two offices: `hq` (the parent) and `branch` (the child), and the exchange folders between them.
struct Offices {
    dir: tempfile::TempDir,
}

fn config(me: &str, peer: &str, side: &str, kind: &str) -> String {
    format!(
        r#"[host]
name = "{me}"
[host.admin]
enabled = false

[endpoints.crm]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:crm.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[replicas.office]
kind = "{kind}"
side = "{side}"
peer = "{peer}"
secret = "${{OFFICE_SECRET}}"
folders = {{ upload = "../exchange/{me}-to-{peer}", download = "../exchange/{peer}-to-{me}" }}
schedule = "1s"

[pipelines.contacts]
schedule = "1s"
left = {{ endpoint = "crm", entity = "contacts" }}
right = {{ endpoint = "office", entity = "contacts" }}
fields = {{ name = {{}}, phone = {{}} }}
"#
    )
}

impl Offices {
    fn new(kind: &str) -> Offices {
        let offices = Offices { dir: tempfile::tempdir().unwrap() };
        for (me, peer, side) in [("hq", "branch", "parent"), ("branch", "hq", "child")] {
            std::fs::create_dir_all(offices.path(me)).unwrap();
            std::fs::write(offices.path(me).join("synchost.toml"), config(me, peer, side, kind)).unwrap();
            offices.sql(me, TABLE);
        }
        offices
    }

    fn path(&self, office: &str) -> PathBuf {
        self.dir.path().join(office)
    }

    fn sql(&self, office: &str, sql: &str) {
        let db = rusqlite::Connection::open(self.path(office).join("crm.sqlite")).unwrap();
        db.execute_batch(sql).unwrap();
    }

    /// `name|phone` of every live contact, by name.
    fn contacts(&self, office: &str) -> Vec<String> {
        let db = rusqlite::Connection::open(self.path(office).join("crm.sqlite")).unwrap();
        let mut statement = db.prepare("SELECT name, coalesce(phone, '') FROM contacts WHERE record_status = 'active' ORDER BY name").unwrap();
        statement.query_map([], |r| Ok(format!("{}|{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?))).unwrap().map(Result::unwrap).collect()
    }

    fn synchost(&self, office: &str, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_synchost"))
            .current_dir(self.path(office))
            .args(args)
            .env("OFFICE_SECRET", "swordfish")
            .output()
            .unwrap();
        (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    /// Runs a command that must succeed, and returns its output.
    fn ok(&self, office: &str, args: &[&str]) -> String {
        let (ok, text) = self.synchost(office, args);
        assert!(ok, "{office}: synchost {args:?} failed:\n{text}");
        text
    }

    /// Runs a command that must fail, and returns its output.
    fn refused(&self, office: &str, args: &[&str]) -> String {
        let (ok, text) = self.synchost(office, args);
        assert!(!ok, "{office}: synchost {args:?} must be refused:\n{text}");
        text
    }

    /// The message files waiting for `office`.
    fn waiting_for(&self, office: &str) -> Vec<PathBuf> {
        let from = if office == "hq" { "branch-to-hq" } else { "hq-to-branch" };
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("exchange").join(from))
            .map(|entries| entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "synchost")).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Loses the messages waiting for `office` (a CD that never arrived).
    fn lose(&self, office: &str) -> Vec<Vec<u8>> {
        self.waiting_for(office).into_iter().map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            std::fs::remove_file(p).unwrap();
            bytes
        }).collect()
    }

    /// Changes kept to resend, from `replicas status --json`.
    fn kept(&self, office: &str) -> u64 {
        let status: serde_json::Value = serde_json::from_str(&self.ok(office, &["replicas", "status", "office", "--json"])).unwrap();
        status["kept_changes"].as_u64().unwrap()
    }

    fn store_size(&self, office: &str) -> u64 {
        let status: serde_json::Value = serde_json::from_str(&self.ok(office, &["replicas", "status", "office", "--json"])).unwrap();
        status["kept_bytes"].as_u64().unwrap()
    }
}

fn add(offices: &Offices, office: &str, name: &str, phone: &str) {
    offices.sql(office, &format!("INSERT INTO contacts (name, phone) VALUES ('{name}', '{phone}')"));
}

fn edit(offices: &Offices, office: &str, name: &str, phone: &str) {
    offices.sql(office, &format!("UPDATE contacts SET phone = '{phone}', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 second') WHERE name = '{name}'"));
}

// Covers: D1, D2, D3, D11, C4, C9
#[test]
fn changes_travel_as_files_one_ack_acknowledges_several_messages_and_only_it_lets_go_of_what_was_kept() {
    let offices = Offices::new("two-way");
    add(&offices, "hq", "Ada", "030 1");
    add(&offices, "hq", "Grace", "089 2");
    offices.ok("hq", &["replicas", "export", "office"]);
    add(&offices, "hq", "Linus", "040 3");
    offices.ok("hq", &["replicas", "export", "office"]);
    edit(&offices, "hq", "Ada", "030 9");
    let third = offices.ok("hq", &["replicas", "export", "office"]);
    // Each message holds every change not acknowledged (D2): the third holds all four.
    assert!(third.contains("data message 3 with 4 change(s)"), "{third}");
    let kept = offices.kept("hq");
    assert_eq!(kept, 4);
    let size_before = offices.store_size("hq");

    let imported = offices.ok("branch", &["replicas", "import", "office"]);
    // Each change is applied once: the third message's first three were applied from the first two.
    assert!(imported.contains("data message 1: 2 change(s)") && imported.contains("data message 2: 1 change(s)") && imported.contains("data message 3: 1 change(s)"), "{imported}");
    assert_eq!(offices.contacts("branch"), ["Ada|030 9", "Grace|089 2", "Linus|040 3"]);
    assert!(offices.waiting_for("branch").is_empty(), "imported files are taken away");
    // The branch's records point at hq's by origin; no id of hq's system is the branch's id.
    assert_eq!(offices.kept("hq"), 4, "nothing goes before an acknowledgement is imported (D11)");

    // One acknowledgement for the three messages (D3).
    offices.ok("branch", &["replicas", "ack", "office"]);
    let acked = offices.ok("hq", &["replicas", "import", "office"]);
    assert!(acked.contains("acknowledgement 1: 4 change(s) kept for resending let go"), "{acked}");
    assert_eq!(offices.kept("hq"), 0);
    assert!(offices.store_size("hq") < size_before, "the store does not grow without bound");
    let status = offices.ok("hq", &["replicas", "status", "office"]);
    assert!(status.contains("sent data 3 (1..4) at") && status.contains("acknowledged"), "{status}");
    // What crossed is in the activity log and the event log (D10).
    let log = offices.ok("hq", &["replicas", "log", "office"]);
    assert!(log.contains("data message 3 exported: 4 change(s), 1..4") && log.contains("acknowledgement 1 imported"), "{log}");
    let events = offices.ok("hq", &["messages"]);
    assert!(events.contains("replica `office`: acknowledgement 1"), "{events}");
    // `status` shows the replica, and needs no secret.
    let status = Command::new(env!("CARGO_BIN_EXE_synchost")).current_dir(offices.path("hq")).arg("status").env_remove("OFFICE_SECRET").output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("office") && text.contains("two-way with `branch`, this host sends; 0 change(s) kept for resending"), "{text}");
    assert!(text.contains("last: ") && text.contains("acknowledgement 1 imported"), "{text}");
}

// Covers: D2, D6
#[test]
fn a_lost_message_is_made_good_by_the_next_and_a_lost_ack_by_the_next_ack() {
    let offices = Offices::new("two-way");
    add(&offices, "hq", "Ada", "030 1");
    offices.ok("hq", &["replicas", "export", "office"]);
    offices.lose("branch");
    add(&offices, "hq", "Grace", "089 2");
    offices.ok("hq", &["replicas", "export", "office"]);
    offices.ok("branch", &["replicas", "import", "office"]);
    assert_eq!(offices.contacts("branch"), ["Ada|030 1", "Grace|089 2"], "the second message held the first's changes");

    // The acknowledgement is lost: hq sends everything again; nothing is applied twice.
    offices.ok("branch", &["replicas", "ack", "office"]);
    offices.lose("hq");
    edit(&offices, "hq", "Grace", "089 7");
    let resent = offices.ok("hq", &["replicas", "resend", "office"]);
    assert!(resent.contains("data message (sent again) 3"), "{resent}");
    let imported = offices.ok("branch", &["replicas", "import", "office"]);
    assert!(imported.contains("data message 3: 1 change(s)"), "only the new change is applied: {imported}");
    assert_eq!(offices.contacts("branch"), ["Ada|030 1", "Grace|089 7"]);
    offices.ok("branch", &["replicas", "ack", "office"]);
    offices.ok("hq", &["replicas", "import", "office"]);
    assert_eq!(offices.kept("hq"), 0);
}

// Covers: D4, D6, D7, D8
#[test]
fn roles_swap_with_or_without_data_and_a_lost_swap_is_sent_again() {
    let offices = Offices::new("two-way");
    add(&offices, "hq", "Ada", "030 1");
    offices.ok("hq", &["replicas", "export", "office"]);
    offices.ok("branch", &["replicas", "import", "office"]);
    // The branch may not send yet.
    let refused = offices.refused("branch", &["replicas", "export", "office"]);
    assert!(refused.contains("this host is the receiver") && refused.contains("--swap"), "{refused}");
    offices.ok("branch", &["replicas", "ack", "office"]);
    offices.ok("hq", &["replicas", "import", "office"]);

    // A swap with no data (D8), lost on the way: both are receivers (D6).
    let swap = offices.ok("hq", &["replicas", "export", "office", "--swap"]);
    assert!(swap.contains("0 change(s)") && swap.contains("this host now receives"), "{swap}");
    offices.lose("branch");
    offices.refused("hq", &["replicas", "export", "office"]);
    offices.refused("branch", &["replicas", "export", "office"]);
    // The side that swapped sends it again.
    let again = offices.ok("hq", &["replicas", "resend", "office"]);
    assert!(again.contains("written to"), "{again}");
    let imported = offices.ok("branch", &["replicas", "import", "office"]);
    assert!(imported.contains("this host now sends"), "{imported}");

    // The new sender acknowledges the swap by sending changes (D7).
    edit(&offices, "branch", "Ada", "030 5");
    offices.ok("branch", &["replicas", "export", "office"]);
    let at_hq = offices.ok("hq", &["replicas", "import", "office"]);
    assert!(at_hq.contains("1 change(s) of `branch`"), "{at_hq}");
    assert_eq!(offices.contacts("hq"), ["Ada|030 5"]);
    assert_eq!(offices.kept("hq"), 0, "the swap message was acknowledged by the branch's changes");
    // Or by an acknowledgement of its own, after the next swap.
    offices.ok("branch", &["replicas", "export", "office", "--swap"]);
    offices.ok("hq", &["replicas", "import", "office"]);
    offices.ok("hq", &["replicas", "ack", "office"]);
    offices.ok("branch", &["replicas", "import", "office"]);
    assert_eq!(offices.kept("branch"), 0);
}

// Covers: D9, D10, D11
#[test]
fn after_a_verbal_acknowledgement_only_newer_changes_go_and_messages_are_imported_in_order() {
    let offices = Offices::new("two-way");
    add(&offices, "hq", "Ada", "030 1");
    offices.ok("hq", &["replicas", "export", "office"]);
    let first = offices.lose("branch");
    offices.ok("hq", &["replicas", "mark-received", "office"]);
    add(&offices, "hq", "Grace", "089 2");
    let second = offices.ok("hq", &["replicas", "export", "office"]);
    assert!(second.contains("with 1 change(s)"), "only the newer change: {second}");
    assert_eq!(offices.kept("hq"), 2, "marked received is not acknowledged: both are kept");

    // Out of order: the second before the first.
    let refused = offices.refused("branch", &["replicas", "import", "office"]);
    assert!(refused.contains("changes 1..1 were never imported here"), "{refused}");
    assert!(refused.contains("import the other host's earlier messages first, in order"), "{refused}");
    assert_eq!(offices.contacts("branch"), Vec::<String>::new(), "nothing applied");
    let log = offices.ok("branch", &["replicas", "log", "office"]);
    assert!(log.contains("error import") && log.contains("fix: import the other host's earlier messages first"), "{log}");
    assert!(offices.ok("branch", &["messages"]).contains("were never imported here"), "in the event log too");

    // In order: the first (brought back), then the second.
    let folder = offices.dir.path().join("exchange/hq-to-branch");
    std::fs::write(folder.join("office-hq-000001.data.synchost"), &first[0]).unwrap();
    offices.ok("branch", &["replicas", "import", "office"]);
    assert_eq!(offices.contacts("branch"), ["Ada|030 1", "Grace|089 2"]);
    offices.ok("branch", &["replicas", "ack", "office"]);
    offices.ok("hq", &["replicas", "import", "office"]);
    assert_eq!(offices.kept("hq"), 0, "only the acknowledgement lets go");
}

// Covers: D5
#[test]
fn a_one_way_replica_sends_from_the_parent_and_a_check_out_from_the_child_without_acks() {
    let one_way = Offices::new("one-way");
    add(&one_way, "hq", "Ada", "030 1");
    one_way.ok("hq", &["replicas", "export", "office"]);
    one_way.ok("branch", &["replicas", "import", "office"]);
    assert_eq!(one_way.contacts("branch"), ["Ada|030 1"]);
    let refused = one_way.refused("branch", &["replicas", "export", "office"]);
    assert!(refused.contains("only the parent sends"), "{refused}");
    one_way.refused("hq", &["replicas", "export", "office", "--swap"]);
    one_way.ok("branch", &["replicas", "ack", "office"]);
    one_way.ok("hq", &["replicas", "import", "office"]);
    assert_eq!(one_way.kept("hq"), 0);

    let check_out = Offices::new("check-out");
    add(&check_out, "branch", "Grace", "089 2");
    check_out.refused("hq", &["replicas", "export", "office"]);
    check_out.ok("branch", &["replicas", "export", "office"]);
    assert_eq!(check_out.kept("branch"), 0, "a check-out lets go of what it sent at once");
    check_out.ok("hq", &["replicas", "import", "office"]);
    assert_eq!(check_out.contacts("hq"), ["Grace|089 2"]);
    let no_ack = check_out.refused("hq", &["replicas", "ack", "office"]);
    assert!(no_ack.contains("uses no acknowledgements"), "{no_ack}");
}

fn set_aside(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".refused")).collect();
    names.sort();
    names
}

// Covers: D1, D10, H1
#[test]
fn tampered_cut_foreign_copied_and_replayed_files_are_refused_and_nothing_is_applied_twice() {
    let offices = Offices::new("two-way");
    add(&offices, "hq", "Ada", "030 1");
    offices.ok("hq", &["replicas", "export", "office"]);
    let original = std::fs::read(&offices.waiting_for("branch")[0]).unwrap();
    let folder = offices.dir.path().join("exchange/hq-to-branch");
    let path = folder.join("office-hq-000001.data.synchost");

    // A byte changed.
    let mut tampered = original.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x20;
    std::fs::write(&path, &tampered).unwrap();
    let refused = offices.refused("branch", &["replicas", "import", "office"]);
    assert!(refused.contains("its check does not match") && refused.contains("nothing was applied"), "{refused}");
    assert_eq!(set_aside(&folder), ["office-hq-000001.data.synchost.refused"], "set aside, not tried again and again");
    // Cut short.
    std::fs::write(&path, &original[..original.len() - 10]).unwrap();
    assert!(offices.refused("branch", &["replicas", "import", "office"]).contains("its check does not match"));
    std::fs::remove_file(folder.join("office-hq-000001.data.synchost.refused")).unwrap();
    // Not a message at all.
    let stray = offices.dir.path().join("notes.txt");
    std::fs::write(&stray, "hello").unwrap();
    assert!(offices.refused("branch", &["replicas", "import", "office", stray.to_str().unwrap()]).contains("not a synchost replica message"));
    assert_eq!(offices.contacts("branch"), Vec::<String>::new());

    // Made with another secret (another replica's).
    let foreign = Command::new(env!("CARGO_BIN_EXE_synchost"))
        .current_dir(offices.path("hq"))
        .args(["replicas", "resend", "office", "--to", "../foreign.synchost"])
        .env("OFFICE_SECRET", "another secret")
        .output()
        .unwrap();
    assert!(foreign.status.success(), "{}", String::from_utf8_lossy(&foreign.stderr));
    let refused = offices.refused("branch", &["replicas", "import", "office", "../foreign.synchost"]);
    assert!(refused.contains("made with another secret"), "{refused}");

    // The real one, then a copy of it, then it replayed later: applied once.
    std::fs::write(&path, &original).unwrap();
    offices.ok("branch", &["replicas", "import", "office"]);
    std::fs::write(&path, &original).unwrap();
    let copy = offices.ok("branch", &["replicas", "import", "office"]);
    assert!(copy.contains("message 1 was imported before; nothing applied"), "{copy}");
    edit(&offices, "branch", "Ada", "030 4");
    offices.ok("branch", &["sync"]);
    std::fs::write(offices.dir.path().join("replayed.synchost"), &original).unwrap();
    let replayed = offices.ok("branch", &["replicas", "import", "office", "../replayed.synchost"]);
    assert!(replayed.contains("imported before"), "{replayed}");
    assert_eq!(offices.contacts("branch"), ["Ada|030 4"], "the replay did not undo the later edit");

    // A message of another replica pair is refused by name.
    let misdirected = offices.refused("hq", &["replicas", "import", "office", "../replayed.synchost"]);
    assert!(misdirected.contains("not one of replica `office` from `branch` to `hq`"), "{misdirected}");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < std::time::Duration::from_secs(90), "{what}: not within 90 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `synchost run` in an office, stopped (SIGTERM) when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&self.0), rustix::process::Signal::TERM);
        let _ = self.0.wait();
    }
}

fn run(offices: &Offices, office: &str) -> Running {
    let log = std::fs::File::create(offices.dir.path().join(format!("{office}.log"))).unwrap();
    Running(
        Command::new(env!("CARGO_BIN_EXE_synchost"))
            .current_dir(offices.path(office))
            .arg("run")
            .env("OFFICE_SECRET", "swordfish")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

// Covers: D1, D3, D10, D11, C4
#[test]
fn running_hosts_exchange_on_their_schedule_and_log_a_refusal_nobody_watched() {
    let offices = Offices::new("two-way");
    let hq = run(&offices, "hq");
    let branch = run(&offices, "branch");
    add(&offices, "hq", "Ada", "030 1");
    wait_for("Ada at the branch", || offices.contacts("branch") == ["Ada|030 1"]);
    // The branch acknowledged on its own; the head office let go of what it kept.
    wait_for("the acknowledgement at hq", || offices.kept("hq") == 0);
    // Settled, the hosts send nothing more (an acknowledgement is not acknowledged in turn).
    let last_sent = |office: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&offices.ok(office, &["replicas", "status", "office", "--json"])).unwrap()["last_sent"].clone()
    };
    let before = (last_sent("hq"), last_sent("branch"));
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!((last_sent("hq"), last_sent("branch")), before, "quiet hosts exchange no messages");

    // A damaged file arrives while nobody watches: refused, set aside, logged with the fix.
    let folder = offices.dir.path().join("exchange/branch-to-hq");
    std::fs::write(folder.join("office-branch-000099.ack.synchost"), b"SYNCHOST-REPLICA-MESSAGE 1\nnot really a message, though long enough to carry a check at its end").unwrap();
    wait_for("the refusal in the event log", || offices.ok("hq", &["messages"]).contains("its check does not match"));
    assert!(folder.join("office-branch-000099.ack.synchost.refused").exists());
    assert!(offices.ok("hq", &["replicas", "log", "office"]).contains("fix: nothing was applied"));
    edit(&offices, "hq", "Ada", "030 2");
    wait_for("the edit at the branch", || offices.contacts("branch") == ["Ada|030 2"]);
    drop((hq, branch));
}

/// The two offices over HTTP: hq is the passive end (its admin API on
/// `port`), the branch the active one, which has no address of its own.
fn http_offices(port: u16) -> Offices {
    let offices = Offices::new("two-way");
    for (me, peer, side) in [("hq", "branch", "parent"), ("branch", "hq", "child")] {
        let folders_line = format!("folders = {{ upload = \"../exchange/{me}-to-{peer}\", download = \"../exchange/{peer}-to-{me}\" }}\n");
        let (admin, link) = if me == "hq" {
            (format!("listen = \"127.0.0.1:{port}\""), "http = { role = \"passive\", password = \"${LINK_PASSWORD}\" }\n".to_owned())
        } else {
            ("enabled = false".to_owned(), format!("http = {{ role = \"active\", url = \"http://127.0.0.1:{port}\", password = \"${{LINK_PASSWORD}}\" }}\n"))
        };
        let text = config(me, peer, side, "two-way").replace(&folders_line, &link).replace("enabled = false", &admin);
        std::fs::write(offices.path(me).join("synchost.toml"), text).unwrap();
    }
    offices
}

fn run_with(offices: &Offices, office: &str, password: &str) -> Running {
    let log = std::fs::File::create(offices.dir.path().join(format!("{office}.log"))).unwrap();
    Running(
        Command::new(env!("CARGO_BIN_EXE_synchost"))
            .current_dir(offices.path(office))
            .arg("run")
            .env("OFFICE_SECRET", "swordfish")
            .env("LINK_PASSWORD", password)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn with_password(offices: &Offices, office: &str, password: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_synchost"))
        .current_dir(offices.path(office))
        .args(args)
        .env("OFFICE_SECRET", "swordfish")
        .env("LINK_PASSWORD", password)
        .output()
        .unwrap();
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

// Covers: C3, C4, D1, D3, D10
#[test]
fn over_http_the_active_host_reaches_the_passive_one_and_a_wrong_password_or_a_host_down_loses_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let offices = http_offices(port);
    let hq = run_with(&offices, "hq", "link-pw");
    wait_for("hq's admin API", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let branch = run_with(&offices, "branch", "link-pw");
    add(&offices, "hq", "Ada", "030 1");
    wait_for("Ada at the branch, over HTTP", || offices.contacts("branch") == ["Ada|030 1"]);
    wait_for("the branch's acknowledgement at hq, over HTTP", || offices.kept("hq") == 0);
    let status: serde_json::Value = serde_json::from_str(&offices.ok("branch", &["replicas", "status", "office", "--json"])).unwrap();
    assert_eq!(status["link"]["role"], "active");
    assert_eq!(status["link"]["up"], true, "{status}");
    assert!(status["link"]["last_success"].is_string(), "{status}");
    let passive: serde_json::Value = serde_json::from_str(&offices.ok("hq", &["replicas", "status", "office", "--json"])).unwrap();
    assert_eq!(passive["link"]["role"], "passive");
    assert!(passive["link"]["last_success"].is_string(), "the passive end shows when the active one last reached it: {passive}");
    drop(branch);

    // A wrong password: refused by hq, said on both hosts; nothing lost.
    add(&offices, "hq", "Grace", "089 2");
    wait_for("Grace exported at hq", || offices.ok("hq", &["replicas", "log", "office"]).contains("exported: 1 change(s), 2..2"));
    let (ok, text) = with_password(&offices, "branch", "guess", &["replicas", "import", "office"]);
    assert!(!ok && text.contains("refused the link's password") && text.contains("set the same [replicas.office.http] password on both hosts"), "{text}");
    assert!(offices.ok("hq", &["messages"]).contains("a request over the link with a wrong password was refused"));
    assert_eq!(offices.contacts("branch"), ["Ada|030 1"]);

    // The passive host down: said with what to do; the message waits there and arrives later.
    drop(hq);
    let (ok, text) = with_password(&offices, "branch", "link-pw", &["replicas", "import", "office"]);
    assert!(!ok && text.contains("cannot be reached") && text.contains("nothing is lost"), "{text}");
    let status: serde_json::Value = serde_json::from_str(&offices.ok("branch", &["replicas", "status", "office", "--json"])).unwrap();
    assert_eq!(status["link"]["up"], false, "{status}");
    let _hq = run_with(&offices, "hq", "link-pw");
    wait_for("hq's admin API again", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let (ok, text) = with_password(&offices, "branch", "link-pw", &["replicas", "import", "office"]);
    assert!(ok, "{text}");
    assert_eq!(offices.contacts("branch"), ["Ada|030 1", "Grace|089 2"]);
    assert!(offices.ok("branch", &["replicas", "log", "office"]).contains("the link to the passive host is up again"));
}

/// A real FTP server (Debian's pure-ftpd) on loopback, with one account, stopped when dropped.
struct FtpServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl FtpServer {
    fn start(port: u16, dir: tempfile::TempDir) -> FtpServer {
        let child = Command::new("pure-ftpd")
            .args(["-S", &format!("127.0.0.1,{port}"), "-l", &format!("puredb:{}", dir.path().join("users.pdb").display()), "-E", "-j", "-p", "40000:40999"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("this test needs pure-ftpd (Debian package pure-ftpd): `scripts/test` installs it, or `apt-get install pure-ftpd`");
        wait_for("the FTP server", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        FtpServer { child, port, dir }
    }

    fn new() -> FtpServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for folder in ["", "to-branch", "to-hq"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
            std::fs::set_permissions(root.join(folder), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        }
        let mut add = Command::new("pure-pw")
            .args(["useradd", "office", "-u", "nobody", "-g", "nogroup", "-d"])
            .arg(&root)
            .arg("-f")
            .arg(dir.path().join("users"))
            .arg("-m")
            .arg("-F")
            .arg(dir.path().join("users.pdb"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("this test needs pure-pw (Debian package pure-ftpd): `scripts/test` installs it");
        use std::io::Write;
        add.stdin.take().unwrap().write_all(b"ftp-pw\nftp-pw\n").unwrap();
        assert!(add.wait().unwrap().success(), "pure-pw useradd failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        FtpServer::start(port, dir)
    }

    fn folder(&self, name: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("root").join(name)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// Stops the server; `restart` brings it back on the same port.
    fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (self.port, dir)
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ftp_offices(port: u16) -> Offices {
    let offices = Offices::new("two-way");
    for (me, peer, side) in [("hq", "branch", "parent"), ("branch", "hq", "child")] {
        let folders_line = format!("folders = {{ upload = \"../exchange/{me}-to-{peer}\", download = \"../exchange/{peer}-to-{me}\" }}\n");
        let ftp = format!("ftp = {{ host = \"127.0.0.1\", port = {port}, user = \"office\", password = \"${{FTP_PASSWORD}}\", upload = \"to-{peer}\", download = \"to-{me}\" }}\n");
        let text = config(me, peer, side, "two-way").replace(&folders_line, &ftp);
        std::fs::write(offices.path(me).join("synchost.toml"), text).unwrap();
    }
    offices
}

fn ftp_run(offices: &Offices, office: &str, password: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_synchost"))
        .current_dir(offices.path(office))
        .args(args)
        .env("OFFICE_SECRET", "swordfish")
        .env("FTP_PASSWORD", password)
        .output()
        .unwrap();
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

// Covers: C4, D1, D3, D10
#[test]
fn through_folders_on_a_real_ftp_server_with_a_wrong_password_or_the_server_down_nothing_is_lost() {
    let server = FtpServer::new();
    let offices = ftp_offices(server.port);
    let ok = |office: &str, args: &[&str]| {
        let (ok, text) = ftp_run(&offices, office, "ftp-pw", args);
        assert!(ok, "{office}: {args:?}:\n{text}");
        text
    };
    add(&offices, "hq", "Ada", "030 1");
    ok("hq", &["replicas", "export", "office"]);
    assert_eq!(server.folder("to-branch"), ["office-hq-000001.data.synchost"], "stored whole under its name on the server");
    ok("branch", &["replicas", "import", "office"]);
    assert_eq!(offices.contacts("branch"), ["Ada|030 1"]);
    assert!(server.folder("to-branch").is_empty(), "taken away once kept");
    ok("branch", &["replicas", "ack", "office"]);
    ok("hq", &["replicas", "import", "office"]);
    assert_eq!(offices.kept("hq"), 0);

    // A wrong password.
    let (refused, text) = ftp_run(&offices, "hq", "guess", &["replicas", "import", "office"]);
    assert!(!refused && text.contains("refused the login `office`") && text.contains("[replicas.office.ftp] user and password"), "{text}");

    // The server down: the message waits here, and goes when it is back.
    let (port, dir) = server.stop();
    edit(&offices, "hq", "Ada", "030 2");
    let (sent, text) = ftp_run(&offices, "hq", "ftp-pw", &["replicas", "export", "office"]);
    assert!(!sent && text.contains("cannot connect") && text.contains("nothing is lost"), "{text}");
    let server = FtpServer::start(port, dir);
    ok("hq", &["replicas", "import", "office"]);
    assert_eq!(server.folder("to-branch").len(), 1, "the message that waited went on the next round");
    ok("branch", &["replicas", "import", "office"]);
    assert_eq!(offices.contacts("branch"), ["Ada|030 2"]);
    assert!(ok("hq", &["replicas", "log", "office"]).contains("up again"));
}

// Covers: D1, D3, D10, T2
#[test]
fn while_a_host_runs_the_replica_commands_go_through_its_admin_api() {
    let offices = Offices::new("two-way");
    let hq_config = std::fs::read_to_string(offices.path("hq").join("synchost.toml")).unwrap();
    let hq_config = hq_config.replace("enabled = false", "listen = \"127.0.0.1:0\"").replacen("schedule = \"1s\"\n", "", 1);
    std::fs::write(offices.path("hq").join("synchost.toml"), hq_config).unwrap();
    let _hq = run(&offices, "hq");
    wait_for("hq's admin API", || offices.path("hq").join("synchost-data/admin.address").exists());
    add(&offices, "hq", "Ada", "030 1");
    wait_for("Ada in hq's outbox", || offices.kept("hq") == 1);
    let exported = offices.ok("hq", &["replicas", "export", "office"]);
    assert!(exported.contains("message 1 (1 change(s)) written to") && exported.contains("(command line)"), "carried out by the running host: {exported}");
    offices.ok("branch", &["replicas", "import", "office"]);
    assert_eq!(offices.contacts("branch"), ["Ada|030 1"]);
    offices.ok("branch", &["replicas", "ack", "office"]);
    let imported = offices.ok("hq", &["replicas", "import", "office"]);
    assert!(imported.contains("1 message(s) imported"), "{imported}");
    assert_eq!(offices.kept("hq"), 0);
    let refused = offices.refused("hq", &["replicas", "mark-received", "office", "--through", "7"]);
    assert!(refused.contains("this host sent no data message 7"), "{refused}");
    assert!(offices.ok("hq", &["messages"]).contains("replica `office`: message 1 (1 change(s)) written to"));
}
