//! Hot reload of a real `synchost run`: config edits picked up while it
//! syncs, bad edits rejected with the running version serving on, and a
//! plugin replaced in the middle of a long sync without a record lost or
//! written twice.

mod common;

use std::time::Duration;

use common::{rebuilt, table_endpoint, Host};

fn config(plugin: &str, branch_dsn: &str, fields: &str, batch: u32) -> String {
    format!(
        r#"
[plugins.table]
path = "table.wasm"
{}{}
[pipelines.p]
left = {{ endpoint = "hq", entity = "contacts" }}
right = {{ endpoint = "branch", entity = "contacts" }}
conflict = "left-wins"
schedule = "1s"
batch_size = {batch}
fields = {fields}
"#,
        table_endpoint("hq", plugin, "sqlite:hq.sqlite"),
        table_endpoint("branch", plugin, branch_dsn)
    )
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
