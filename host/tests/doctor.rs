//! The timesheet seed's fifth case at the doctor's level (T6): after a
//! restore, the host's user may no longer write a database file a pipeline
//! writes to. `synchost doctor` names the file, the user and the fix.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{table_endpoint, Host};

const CONFIG: &str = r#"
[pipelines.p]
left = { endpoint = "hq", entity = "contacts" }
right = { endpoint = "branch", entity = "contacts" }
create = "left-to-right"
fields = { name = { direction = "left-to-right" } }
"#;

/// Everything under `dir` readable and writable by anyone, `dir` included.
fn open_to_all(dir: &std::path::Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            open_to_all(&path);
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
}

// Covers: T6, T2
#[test]
fn doctor_names_a_database_file_the_hosts_user_can_no_longer_write() {
    let host = Host::new(2);
    std::fs::write(host.path("synchost.toml"), format!("{}{}{CONFIG}", table_endpoint("hq", "sql-table", "sqlite:hq.sqlite"), table_endpoint("branch", "sql-table", "sqlite:branch.sqlite"))).unwrap();
    let (ok, text) = host.synchost(&["sync"]);
    assert!(ok, "{text}");
    let (_, text) = host.synchost(&["doctor"]);
    assert!(text.contains("ok    branch               may contacts read+write") && !text.contains("read-only"), "{text}");

    // The restore left branch.sqlite read-only for the host's user.
    open_to_all(host.dir.path());
    std::fs::set_permissions(host.path("branch.sqlite"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let mut doctor = Command::new(env!("CARGO_BIN_EXE_synchost"));
    // Permissions do not bind root: run as an unprivileged user then.
    if rustix::process::geteuid().is_root() {
        doctor = Command::new("setpriv");
        doctor.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", env!("CARGO_BIN_EXE_synchost")]).env("USER", "nobody");
    }
    let output = doctor.current_dir(host.dir.path()).arg("doctor").output().expect("setpriv (util-linux) runs the doctor as another user");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{text}");
    let user = if rustix::process::geteuid().is_root() { "nobody".to_owned() } else { std::env::var("USER").unwrap_or_default() };
    assert!(text.contains("FAIL  branch"), "{text}");
    assert!(text.contains("branch.sqlite ([endpoints.branch.grants.sql.db]) is read-only for this host's user") && text.contains(&format!("({user})")), "{text}");
    assert!(text.contains(&format!("fix: give {user} write permission on")) && text.contains("chmod u+w"), "{text}");
    assert!(!text.contains("hq.sqlite ([endpoints.hq"), "hq is only read: {text}");
}
