//! Plugin packages through the real CLI and a real `synchost run`: a vendor
//! makes a key, packs and signs; an admin installs, pins, upgrades, rolls
//! back and removes while the host syncs; every bad package is refused with
//! its own message.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{rebuilt, run_in, table_endpoint, Host};
use synchost::packages::archive;

const MANIFEST: &str = r#"[package]
name = "acme-table"
version = "VERSION"
kind = "connector"
api = "^0.5"
description = "SQLite tables, from ACME"
publisher = "PUBLISHER"

[capabilities]
sql = ["sqlite"]
HTTP
"#;

fn manifest(version: &str, publisher: &str, http: &str) -> String {
    MANIFEST.replace("VERSION", version).replace("PUBLISHER", publisher).replace("HTTP", http)
}

/// The vendor's side: a crate folder with a manifest and a built component; packed (and signed with `key`).
fn make_package(host: &Host, version: &str, publisher: &str, http: &str, build: &str, key: Option<&str>) -> String {
    let folder = host.path(&format!("vendor-{version}-{publisher}-{build}"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("synchost-package.toml"), manifest(version, publisher, http)).unwrap();
    std::fs::write(folder.join("plugin.wasm"), rebuilt(synchost::bundled::bytes("sql-table").unwrap(), build)).unwrap();
    let file = format!("acme-table-{version}-{publisher}-{build}.synchost-package");
    let folder_name = folder.file_name().unwrap().to_str().unwrap().to_owned();
    let (ok, text) = host.synchost(&["package", "pack", &folder_name, "--wasm", &format!("{folder_name}/plugin.wasm"), "--out", &file]);
    assert!(ok, "{text}");
    if let Some(key) = key {
        let (ok, text) = host.synchost(&["package", "sign", &file, "--key", key]);
        assert!(ok, "{text}");
    }
    file
}

fn keygen(host: &Host, publisher: &str, out: &str) -> String {
    let (ok, text) = host.synchost(&["package", "keygen", "--publisher", publisher, "--out", out]);
    assert!(ok, "{text}");
    std::fs::read_to_string(host.path(&format!("{out}.public-key"))).unwrap().trim().to_owned()
}

/// Rewrites one file inside a package file, as an attacker would.
fn tamper(host: &Host, file: &str, entry: &str, change: impl FnOnce(Vec<u8>) -> Vec<u8>) -> String {
    let mut files: BTreeMap<String, Vec<u8>> = archive::unpack(&std::fs::read(host.path(file)).unwrap()).unwrap();
    let bytes = files.remove(entry).unwrap();
    files.insert(entry.to_owned(), change(bytes));
    let tampered = format!("tampered-{entry}-{file}");
    std::fs::write(host.path(&tampered), archive::pack(&files).unwrap()).unwrap();
    tampered
}

fn config(trusted: &str, hq_plugin: &str, branch_plugin: &str, branch_grants: &str) -> String {
    format!(
        r#"
[host.trusted_publishers]
acme = "{trusted}"
{}{}{branch_grants}
[pipelines.p]
left = {{ endpoint = "hq", entity = "contacts" }}
right = {{ endpoint = "branch", entity = "contacts" }}
conflict = "left-wins"
schedule = "1s"
fields = {{ name = {{}}, phone = {{}} }}
"#,
        table_endpoint("hq", hq_plugin, "sqlite:hq.sqlite"),
        table_endpoint("branch", branch_plugin, "sqlite:branch.sqlite"),
    )
}

fn refused(host: &Host, args: &[&str], expected: &[&str]) {
    let (ok, text) = host.synchost(args);
    assert!(!ok, "{args:?} must be refused: {text}");
    for part in expected {
        assert!(text.contains(part), "{args:?}: expected `{part}` in:\n{text}");
    }
    assert!(text.contains("= fix:"), "{args:?}: a refusal says what to do:\n{text}");
}

// Covers: H4, H5, H7
#[test]
fn a_signed_package_is_installed_upgraded_pinned_rolled_back_and_removed_while_the_host_runs() {
    let mut host = Host::new(20);
    let acme = keygen(&host, "acme", "keys/acme");
    std::fs::write(host.path("synchost.toml"), config(&acme, "acme-table", "acme-table", "")).unwrap();

    let v1 = make_package(&host, "1.0.0", "acme", "", "1", Some("keys/acme.secret-key"));
    let (ok, text) = host.synchost(&["package", "install", &v1]);
    assert!(ok && text.contains("installed acme-table 1.0.0, signed by `acme`"), "{text}");
    let (ok, text) = host.synchost(&["package", "install", &v1]);
    assert!(ok && text.contains("already installed with this content"), "installing the same again changes nothing: {text}");

    host.start();
    host.wait_for("the first sync through the package", Duration::from_secs(60), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 20);
    let (ok, text) = host.synchost(&["package", "list"]);
    assert!(ok && text.contains("acme-table") && text.contains("1.0.0") && text.contains("signed"), "{text}");

    // An upgrade that asks for nothing more: active at once, the host reloads it.
    let before = host.last_reload_id();
    let v11 = make_package(&host, "1.1.0", "acme", "", "2", Some("keys/acme.secret-key"));
    let (ok, text) = host.synchost(&["package", "upgrade", &v11]);
    assert!(ok && text.contains("upgraded acme-table from 1.0.0 to 1.1.0"), "{text}");
    let applied = host.next_reload(before, Duration::from_secs(60));
    assert_eq!(applied.1, "applied", "{applied:?}");
    assert!(applied.2.contains("plugin acme-table changed") && applied.2.contains("endpoint hq changed"), "{}", applied.2);
    host.db("hq.sqlite").execute("UPDATE contacts SET phone = 'after the upgrade', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1", []).unwrap();
    host.wait_for("a change synced on 1.1.0", Duration::from_secs(30), || host.count("branch.sqlite", "SELECT count(*) FROM contacts WHERE phone = 'after the upgrade'") == 1);

    // An upgrade that asks for more waits for the admin.
    let v12 = make_package(&host, "1.2.0", "acme", "http = [\"https://*.acme.example\"]", "3", Some("keys/acme.secret-key"));
    let (ok, text) = host.synchost(&["package", "upgrade", &v12]);
    assert!(ok && text.contains("NOT active") && text.contains("HTTP https://*.acme.example"), "{text}");
    let (_, info) = host.synchost(&["package", "info", "acme-table"]);
    assert!(info.contains("1.1.0 (active)") && info.contains("1.2.0 (waiting for `package accept`)"), "{info}");

    // A pin keeps one endpoint on 1.0 while the other follows the active version.
    let before = host.last_reload_id();
    host.save("synchost.toml", config(&acme, "acme-table@1.0", "acme-table", "").as_bytes());
    let applied = host.next_reload(before, Duration::from_secs(60));
    assert_eq!(applied.1, "applied", "{applied:?}");
    assert!(applied.2.contains("endpoint hq changed") && !applied.2.contains("endpoint branch"), "{}", applied.2);

    // Accepted: 1.2.0 serves the unpinned endpoint; rolled back: 1.1.0 again.
    let before = host.last_reload_id();
    let (ok, text) = host.synchost(&["package", "accept", "acme-table@1.2.0"]);
    assert!(ok, "{text}");
    let applied = host.next_reload(before, Duration::from_secs(60));
    assert!(applied.2.contains("endpoint branch changed") && !applied.2.contains("endpoint hq"), "{applied:?}");
    let before = host.last_reload_id();
    let (ok, text) = host.synchost(&["package", "rollback", "acme-table"]);
    assert!(ok && text.contains("1.1.0 is active again (was 1.2.0"), "{text}");
    let applied = host.next_reload(before, Duration::from_secs(60));
    assert_eq!(applied.1, "applied", "{applied:?}");
    host.db("branch.sqlite").execute("UPDATE contacts SET name = 'after the rollback', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 2", []).unwrap();
    host.wait_for("a change synced after the rollback", Duration::from_secs(30), || host.count("hq.sqlite", "SELECT count(*) FROM contacts WHERE name = 'after the rollback'") == 1);

    // Removing: not the active version, not a package in use; an unused version goes.
    refused(&host, &["package", "remove", "acme-table@1.1.0"], &["is the active version"]);
    refused(&host, &["package", "remove", "acme-table"], &["in use by [endpoints.branch], [endpoints.hq]"]);
    let (ok, text) = host.synchost(&["package", "remove", "acme-table@1.2.0"]);
    assert!(ok, "{text}");
    let (ok, text) = host.synchost(&["package", "verify"]);
    assert!(ok && text.contains("acme-table 1.0.0: ok, signed") && text.contains("acme-table 1.1.0: ok, signed"), "{text}");
    host.stop();
    assert_eq!(host.count("branch.sqlite", "SELECT count(*) FROM contacts"), 20, "nothing created twice across the swaps");

    // Tampering with the store after install is caught.
    let installed = host.path("synchost-data/packages/acme-table/1.1.0/plugin.wasm");
    std::fs::write(&installed, rebuilt(synchost::bundled::bytes("sql-table").unwrap(), "evil")).unwrap();
    refused(&host, &["package", "verify"], &["acme-table 1.1.0: FAILED", "plugin.wasm"]);
    let (ok, text) = host.synchost(&["check"]);
    assert!(!ok && text.contains("has changed since it was installed"), "{text}");
}

// Covers: H4, H2
#[test]
fn every_bad_package_is_refused_with_its_own_message() {
    let host = Host::new(1);
    let acme = keygen(&host, "acme", "keys/acme");
    keygen(&host, "acme", "keys/impostor");
    keygen(&host, "globex", "keys/globex");
    std::fs::write(host.path("synchost.toml"), config(&acme, "sql-table", "sql-table", "")).unwrap();
    let run = |file: &str, expected: &[&str]| refused(&host, &["package", "install", file], expected);

    let signed = make_package(&host, "1.0.0", "acme", "", "1", Some("keys/acme.secret-key"));
    run(&tamper(&host, &signed, "plugin.wasm", |bytes| rebuilt(&bytes, "x")), &["digest mismatch: `plugin.wasm`"]);
    run(
        &tamper(&host, &signed, "synchost-package.toml", |bytes| String::from_utf8(bytes).unwrap().replace("from ACME", "from ACME, patched").into_bytes()),
        &["signature does not match its manifest"],
    );
    run(&make_package(&host, "1.0.0", "acme", "", "2", Some("keys/impostor.secret-key")), &["not with the key trusted for publisher `acme`"]);
    run(&make_package(&host, "1.0.0", "globex", "", "3", Some("keys/globex.secret-key")), &["publisher `globex` is not in [host.trusted_publishers]"]);
    let unsigned = make_package(&host, "1.0.0", "acme", "", "4", None);
    run(&unsigned, &["not signed", "--allow-unsigned"]);
    // An API range this host does not run: made by hand, digests and signature right.
    let future = tamper(&host, &signed, "synchost-package.toml", |bytes| String::from_utf8(bytes).unwrap().replace("^0.5", "^0.9").into_bytes());
    let (ok, text) = host.synchost(&["package", "sign", &future, "--key", "keys/acme.secret-key"]);
    assert!(ok, "{text}");
    run(&future, &["needs plugin API ^0.9", "this host runs plugin API 0.5.x or 0.4.x or 0.3.x"]);
    refused(&host, &["package", "sign", &signed, "--key", "keys/globex.secret-key"], &["key of publisher `globex`", "publisher is `acme`"]);
    std::fs::write(host.path("garbage.synchost-package"), b"not a package").unwrap();
    run("garbage.synchost-package", &["not a synchost package"]);

    // Unsigned with consent; the same name and version with other content is refused.
    let (ok, text) = host.synchost(&["package", "install", &unsigned, "--allow-unsigned"]);
    assert!(ok && text.contains("UNSIGNED"), "{text}");
    let other = make_package(&host, "1.0.0", "acme", "", "5", Some("keys/acme.secret-key"));
    refused(&host, &["package", "upgrade", &other], &["acme-table 1.0.0 is already installed with other content"]);
    let (_, list) = host.synchost(&["package", "list"]);
    assert!(list.contains("UNSIGNED"), "{list}");

    // Grants beyond what the package asks for: the endpoint does not load.
    std::fs::write(
        host.path("synchost.toml"),
        config(&acme, "acme-table", "acme-table", "grants.http.allow = [\"https://tracker.example\"]\n"),
    )
    .unwrap();
    let (ok, text) = host.synchost(&["check"]);
    assert!(!ok, "{text}");
    assert!(text.contains("[endpoints.branch] grants more than package acme-table 1.0.0 asks for: HTTP origin `https://tracker.example`"), "{text}");
    // A pin no installed version matches.
    std::fs::write(host.path("synchost.toml"), config(&acme, "acme-table@2", "acme-table", "")).unwrap();
    let (ok, text) = host.synchost(&["check"]);
    assert!(!ok && text.contains("no installed version of `acme-table` is 2"), "{text}");
}

// Covers: H4, C2
#[test]
fn a_scaffolded_connector_builds_tests_packs_installs_and_syncs() {
    let host = Host::new(0);
    let synchost = env!("CARGO_BIN_EXE_synchost");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (name, kind) in [("acme-shout", "mapper"), ("acme-notes", "connector")] {
        run_in(host.dir.path(), synchost, &["package", "new", name, "--kind", kind, "--publisher", "acme"]);
        let crate_dir = host.path(name);
        let tests = run_in(&crate_dir, &cargo, &["test"]);
        assert!(tests.contains("test result: ok. 2 passed") || tests.contains("test result: ok. 1 passed"), "{tests}");
        let packed = run_in(&crate_dir, synchost, &["package", "pack"]);
        assert!(packed.contains(&format!("packed {name} 0.1.0 ({kind}, plugin API")), "{packed}");
    }
    let acme = keygen(&host, "acme", "acme");
    std::fs::write(host.path("synchost.toml"), format!("[host.trusted_publishers]\nacme = \"{acme}\"\n")).unwrap();
    let package = "acme-notes/acme-notes-0.1.0.synchost-package";
    let (ok, text) = host.synchost(&["package", "sign", package, "--key", "acme.secret-key"]);
    assert!(ok, "{text}");
    let (ok, text) = host.synchost(&["package", "install", package]);
    assert!(ok, "{text}");

    // Two notes tables kept in sync through the scaffolded connector.
    let notes = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT,
                 updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));";
    host.db("a.sqlite").execute_batch(notes).unwrap();
    host.db("b.sqlite").execute_batch(notes).unwrap();
    host.db("a.sqlite").execute_batch("INSERT INTO notes (title, body) VALUES ('first', 'one'), ('second', NULL);").unwrap();
    std::fs::write(
        host.path("synchost.toml"),
        format!(
            r#"[host.trusted_publishers]
acme = "{acme}"

[endpoints.a]
plugin = "acme-notes"
grants.sql.db = {{ dsn = "sqlite:a.sqlite" }}
settings = {{ connection = "db" }}

[endpoints.b]
plugin = "acme-notes"
grants.sql.db = {{ dsn = "sqlite:b.sqlite" }}
settings = {{ connection = "db" }}

[pipelines.notes]
left = {{ endpoint = "a", entity = "notes" }}
right = {{ endpoint = "b", entity = "notes" }}
conflict = "manual"
fields = {{ title = {{}}, body = {{}} }}
"#
        ),
    )
    .unwrap();
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok, "{text}");
    assert_eq!(host.count("b.sqlite", "SELECT count(*) FROM notes WHERE title IN ('first', 'second')"), 2);
    host.db("b.sqlite").execute("UPDATE notes SET body = 'edited on b', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE title = 'second'", []).unwrap();
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok, "{text}");
    assert_eq!(host.count("a.sqlite", "SELECT count(*) FROM notes WHERE body = 'edited on b'"), 1, "{text}");
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok && text.contains("0 created, 0 updated"), "nothing left to do: {text}");

    shadow_of_a_mapper_release_shows_exactly_the_records_it_would_change(&host);
}

/// The scaffolded mapper, released twice: 0.2.0 changes one rule (it trims
/// the text it upper-cases). Installed held back, a shadow run names exactly
/// the records whose mapping the new rule changes, and writes nothing.
fn shadow_of_a_mapper_release_shows_exactly_the_records_it_would_change(host: &Host) {
    let synchost = env!("CARGO_BIN_EXE_synchost");
    let crate_dir = host.path("acme-shout");
    for version in ["0.1.0", "0.2.0"] {
        if version == "0.2.0" {
            let source = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
            let changed = source.replace(".map(str::to_uppercase)", ".map(|text| text.trim().to_uppercase())");
            assert_ne!(source, changed, "the template's rule is where the test changes it");
            std::fs::write(crate_dir.join("src/lib.rs"), changed).unwrap();
            let manifest = std::fs::read_to_string(crate_dir.join("synchost-package.toml")).unwrap();
            std::fs::write(crate_dir.join("synchost-package.toml"), manifest.replace("version = \"0.1.0\"", "version = \"0.2.0\"")).unwrap();
            run_in(&crate_dir, synchost, &["package", "pack"]);
        }
        let package = format!("acme-shout/acme-shout-{version}.synchost-package");
        let (ok, text) = host.synchost(&["package", "sign", &package, "--key", "acme.secret-key"]);
        assert!(ok, "{text}");
        let (ok, text) = host.synchost(&if version == "0.1.0" { vec!["package", "install", &package] } else { vec!["package", "upgrade", &package, "--inactive"] });
        assert!(ok, "{text}");
        if version == "0.2.0" {
            assert!(text.contains("NOT active (--inactive)") && text.contains("package shadow"), "{text}");
        }
    }

    // Notes through the 0.1.0 mapper: two titles with spaces around them.
    host.db("a.sqlite")
        .execute_batch("INSERT INTO notes (title, body) VALUES (' padded ', 'x'), ('plain', 'y'), ('  both ends  ', 'z'), ('inner space', 'w');")
        .unwrap();
    let config = std::fs::read_to_string(host.path("synchost.toml")).unwrap();
    let config = config.replace("conflict = \"manual\"", "conflict = \"manual\"\nmapper = \"shout\"")
        + "\n[mappers.shout]\nplugin = \"acme-shout\"\nsettings = { uppercase = [\"title\"] }\n";
    std::fs::write(host.path("synchost.toml"), config).unwrap();
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok && text.contains("4 created"), "{text}");
    assert_eq!(host.count("b.sqlite", "SELECT count(*) FROM notes WHERE title IN (' PADDED ', '  BOTH ENDS  ', 'PLAIN', 'INNER SPACE')"), 4);

    let dump = |db: &str| -> Vec<String> {
        let connection = host.db(db);
        let mut statement = connection.prepare("SELECT id || '|' || title || '|' || coalesce(body, '') || '|' || updated_at FROM notes ORDER BY id").unwrap();
        statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let before = (dump("a.sqlite"), dump("b.sqlite"), host.count("synchost-data/state.sqlite", "SELECT count(*) FROM runs"));

    let (ok, text) = host.synchost(&["package", "shadow", "shout", "acme-shout@0.2.0", "--json"]);
    assert!(ok, "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let differing = |what: &str| -> BTreeMap<String, Vec<String>> {
        let pass = report["passes"].as_array().unwrap().iter().find(|p| p["what"] == what).unwrap_or_else(|| panic!("no pass `{what}`: {text}"));
        assert_eq!(pass["compared"], 6, "{what}: every linked note: {pass}");
        pass["differing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r["differences"].as_array().unwrap().iter().map(|d| format!("{}: {} -> {}", d["name"], d["active"], d["candidate"])).collect()))
            .collect()
    };
    let id_of = |db: &str, title: &str| host.count(db, &format!("SELECT id FROM notes WHERE title = '{title}'")).to_string();
    let expected = |db: &str, padded: &str, both: &str| {
        BTreeMap::from([
            (id_of(db, padded), vec![r#""title": " PADDED " -> "PADDED""#.to_owned()]),
            (id_of(db, both), vec![r#""title": "  BOTH ENDS  " -> "BOTH ENDS""#.to_owned()]),
        ])
    };
    assert_eq!(differing("map left -> right"), expected("a.sqlite", " padded ", "  both ends  "), "{text}");
    assert_eq!(differing("map right -> left"), expected("b.sqlite", " PADDED ", "  BOTH ENDS  "), "{text}");
    let after = (dump("a.sqlite"), dump("b.sqlite"), host.count("synchost-data/state.sqlite", "SELECT count(*) FROM runs"));
    assert_eq!(before, after, "a shadow run writes nothing");

    // The text form, for a person.
    let (ok, text) = host.synchost(&["package", "shadow", "shout", "acme-shout@0.2.0"]);
    assert!(ok, "{text}");
    assert!(text.contains("shadow of acme-shout 0.2.0 as `shout` (active: acme-shout 0.1.0)"), "{text}");
    assert!(text.contains("pipeline `notes`, map left -> right: 6 records, 2 differ"), "{text}");
    assert!(text.contains("4 of 12 records compared differ"), "{text}");
    // A connector shadowed by its own active release: fetch and read agree.
    let (ok, text) = host.synchost(&["package", "shadow", "b", "acme-notes@0.1.0"]);
    assert!(ok, "{text}");
    assert!(text.contains("fetch right records synced last: 6 records, none differ"), "{text}");
    assert!(text.contains("read right from the pipeline's stored position"), "{text}");
    // Mistakes an admin makes.
    let (ok, text) = host.synchost(&["package", "shadow", "shout", "acme-shout@0.3.0"]);
    assert!(!ok && text.contains("no installed version of `acme-shout` is 0.3.0"), "{text}");
    let (ok, text) = host.synchost(&["package", "shadow", "shout", "acme-shout"]);
    assert!(!ok && text.contains("NAME@VERSION"), "{text}");
    let (ok, text) = host.synchost(&["package", "shadow", "nobody", "acme-shout@0.2.0"]);
    assert!(!ok && text.contains("no endpoint or mapper named `nobody`"), "{text}");
}
