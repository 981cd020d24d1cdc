//! Identity (T5): an endpoint that now answers as another system, or a state
//! that another host runs, stops its pipelines before anything is read or
//! written; `doctor` says how to confirm it, and `endpoints rebind` does.

mod common;

use common::{table_endpoint, Host};

fn config(branch: &str, host_name: Option<&str>) -> String {
    let host = host_name.map(|name| format!("[host]\nname = \"{name}\"\n")).unwrap_or_default();
    format!(
        "{host}[plugins.table]\npath = \"table.wasm\"\n{}{}\n[pipelines.p]\nleft = {{ endpoint = \"hq\", entity = \"contacts\" }}\nright = {{ endpoint = \"branch\", entity = \"contacts\" }}\nfields = {{ name = {{}}, phone = {{}} }}\n",
        table_endpoint("hq", "table", "sqlite:hq.sqlite"),
        table_endpoint("branch", "table", &format!("sqlite:{branch}")),
    )
}

fn branch_rows(host: &Host, file: &str) -> i64 {
    host.count(file, "SELECT count(*) FROM contacts")
}

// Covers: T5, T2
#[test]
fn a_moved_or_replaced_database_stops_its_pipeline_until_an_admin_confirms_it() {
    let host = Host::new(3);
    std::fs::write(host.path("synchost.toml"), config("branch.sqlite", None)).unwrap();
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok, "{text}");
    assert_eq!(branch_rows(&host, "branch.sqlite"), 3);
    let (ok, text) = host.synchost(&["endpoints", "list"]);
    assert!(ok, "{text}");
    assert!(text.contains("endpoint `branch`") && text.contains("as recorded at"), "identities are recorded at the first sync: {text}");

    // The branch database moved to another folder, and the config with it.
    std::fs::create_dir(host.path("moved")).unwrap();
    std::fs::rename(host.path("branch.sqlite"), host.path("moved/branch.sqlite")).unwrap();
    std::fs::write(host.path("synchost.toml"), config("moved/branch.sqlite", None)).unwrap();
    host.db("hq.sqlite").execute("INSERT INTO contacts (name, phone) VALUES ('hq 4', '030 4')", []).unwrap();
    let (ok, text) = host.synchost(&["sync"]);
    assert!(!ok, "a moved endpoint must stop the run: {text}");
    assert!(text.contains("endpoint `branch` now reaches sqlite:") && text.contains("moved/branch.sqlite"), "{text}");
    assert!(text.contains("synchost endpoints rebind branch"), "{text}");
    assert_eq!(branch_rows(&host, "moved/branch.sqlite"), 3, "nothing was written");
    let (ok, text) = host.synchost(&["status"]);
    assert!(ok && text.contains("endpoint `branch` now reaches"), "status shows why: {text}");
    let (ok, text) = host.synchost(&["doctor"]);
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL  endpoint `branch`") && text.contains("fix: if it is the same system at a new address, confirm it: `synchost endpoints rebind branch`"), "{text}");

    let (ok, text) = host.synchost(&["endpoints", "rebind", "branch", "--by", "ada"]);
    assert!(ok, "{text}");
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok, "{text}");
    assert_eq!(branch_rows(&host, "moved/branch.sqlite"), 4, "the record waiting went over after the rebind");
    let (_, text) = host.synchost(&["endpoints", "list"]);
    assert!(text.contains("as confirmed by ada"), "{text}");
    let (_, text) = host.synchost(&["messages"]);
    assert!(text.contains("endpoint `branch` confirmed by ada"), "the rebind is in the event log: {text}");

    // The hq file replaced by a copy at the same path (a restore).
    std::fs::copy(host.path("hq.sqlite"), host.path("hq.copy")).unwrap();
    std::fs::rename(host.path("hq.copy"), host.path("hq.sqlite")).unwrap();
    let (ok, text) = host.synchost(&["sync"]);
    assert!(!ok, "{text}");
    assert!(text.contains("is not the database its records were synced with"), "{text}");
    assert!(text.contains("synchost endpoints rebind hq"), "{text}");
    let (ok, text) = host.synchost(&["endpoints", "rebind", "hq"]);
    assert!(ok, "{text}");
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok, "{text}");

    // A name that is no endpoint.
    let (ok, text) = host.synchost(&["endpoints", "rebind", "nowhere"]);
    assert!(!ok && text.contains("there is no endpoint named `nowhere`") && text.contains("synchost endpoints list"), "{text}");
}

// Covers: T5
#[test]
fn a_state_run_by_another_host_stops_every_pipeline_until_the_move_is_confirmed() {
    let mut host = Host::new(2);
    std::fs::write(host.path("synchost.toml"), config("branch.sqlite", Some("office-1"))).unwrap();
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok, "{text}");

    // The data folder now runs on another machine.
    std::fs::write(host.path("synchost.toml"), config("branch.sqlite", Some("office-2"))).unwrap();
    host.db("hq.sqlite").execute("INSERT INTO contacts (name) VALUES ('hq 3')", []).unwrap();
    host.start();
    host.wait_for("the pipeline stopped with the reason", std::time::Duration::from_secs(60), || {
        host.synchost(&["status"]).1.contains("last run by host `office-1`, and host `office-2` runs it now")
    });
    assert_eq!(branch_rows(&host, "branch.sqlite"), 2, "nothing synced");
    let (ok, text) = host.synchost(&["doctor"]);
    assert!(!ok && text.contains("synchost endpoints rebind --host"), "{text}");

    let (ok, text) = host.synchost(&["endpoints", "rebind", "--host"]);
    assert!(ok, "{text}");
    host.wait_for("the pipeline synced after the confirmation", std::time::Duration::from_secs(60), || branch_rows(&host, "branch.sqlite") == 3);
    host.stop();
}
