//! The desktop timesheet and a real Redmine, over real HTTP, through the real
//! host and the bundled `desktop-timesheet` and `redmine` plugins. Each test
//! makes its own Redmine project (the endpoint is scoped to it) and its own
//! desktop database.

use serde_json::json;
use synchost::engine::{Engine, Mode};
use synchost_tests::redmine::{unique, Redmine};
use synchost_tests::Scene;

struct Setup {
    scene: Scene,
    engine: Engine,
    redmine: Redmine,
    /// The test's own Redmine project: (id, identifier).
    project: (i64, String),
}

async fn setup() -> Setup {
    let redmine = Redmine::connect().await;
    let project = redmine.project(&unique("Timesheets"), None).await;
    let scene = Scene::new();
    scene.database("desktop.sqlite", "");
    let engine = scene.engine(&redmine.timesheet_config(&redmine.url, &redmine.key, &project.1, 5));
    Setup { scene, engine, redmine, project }
}

async fn sync(engine: &Engine, pipelines: &[&str]) {
    for pipeline in pipelines {
        let report = engine.run(pipeline, "test", Mode::Apply).await.unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        assert_eq!(report.counts.failed, 0, "{pipeline}: {:?}", report.plan);
    }
}

const ALL: &[&str] = &["users", "activities", "projects", "tasks", "entries"];

fn desktop_id(scene: &Scene, sql: &str) -> i64 {
    scene.query_one("desktop.sqlite", sql)
}

// Covers: T1, H1
#[tokio::test(flavor = "multi_thread")]
async fn master_data_projects_tasks_and_entries_flow_both_ways() {
    let Setup { scene, engine, redmine, project } = setup().await;
    // Redmine side: a subproject with an issue and a time entry.
    let (web, web_identifier) = redmine.project("Web shop", Some(project.0)).await;
    let design = redmine.activity("Design").await;
    let issue = redmine.post("/issues.json", json!({"issue": {"project_id": web, "subject": "Checkout page"}})).await;
    let issue = issue["issue"]["id"].as_i64().unwrap();
    redmine
        .post("/time_entries.json", json!({"time_entry": {"project_id": web, "issue_id": issue, "hours": 1.25, "spent_on": "2026-11-02", "activity_id": design, "comments": "from the web"}}))
        .await;
    sync(&engine, ALL).await;

    // Master data came from Redmine, matched or created by name.
    assert!(desktop_id(&scene, "SELECT count(*) FROM activities WHERE name = 'Design'") == 1);
    assert!(desktop_id(&scene, "SELECT count(*) FROM users WHERE login = 'admin'") == 1);
    // The web entry is on the desktop, its references translated to desktop ids.
    let rows = scene.rows(
        "desktop.sqlite",
        "SELECT p.name, t.name, a.name, u.login, e.work_date, e.hours, e.comment FROM timesheet_entries e
         JOIN projects p ON p.id = e.project_id JOIN tasks t ON t.id = e.task_id
         JOIN activities a ON a.id = e.activity_id JOIN users u ON u.id = e.user_id",
    );
    assert_eq!(rows, vec!["Web shop|Checkout page|Design|admin|2026-11-02|1.25|from the web"]);
    let code: String = scene.query_one("desktop.sqlite", "SELECT code FROM projects WHERE name = 'Web shop'");
    assert_eq!(code, web_identifier);

    // Desktop side: a new project, a task in it and an entry on that task.
    scene.sql(
        "desktop.sqlite",
        "INSERT INTO projects (name, description) VALUES ('Mobile app', 'iOS and Android');
         INSERT INTO tasks (project_id, name) SELECT id, 'Login screen' FROM projects WHERE name = 'Mobile app';
         INSERT INTO timesheet_entries (user_id, project_id, task_id, activity_id, work_date, hours, comment)
           SELECT (SELECT id FROM users WHERE login = 'admin'), t.project_id, t.id, (SELECT id FROM activities WHERE name = 'Design'), '2026-11-03', 2.5, 'from the desktop'
           FROM tasks t WHERE t.name = 'Login screen';",
    );
    sync(&engine, ALL).await;
    let entries = redmine.time_entries(&project.1).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let desktop_entry = entries.iter().find(|e| e["comments"] == "from the desktop").expect("the desktop entry is in Redmine");
    assert_eq!(desktop_entry["project"]["name"], "Mobile app");
    assert_eq!(desktop_entry["activity"]["id"], design);
    assert_eq!(desktop_entry["hours"], 2.5);
    let issue_id = desktop_entry["issue"]["id"].as_i64().expect("linked to the task's issue");
    let task_issue = redmine.get(&format!("/issues/{issue_id}.json")).await;
    assert_eq!(task_issue["issue"]["subject"], "Login screen");

    // Edits flow both ways: hours on the desktop, comments in Redmine.
    let desktop_entry_id = desktop_entry["id"].as_i64().unwrap();
    scene.sql("desktop.sqlite", "UPDATE timesheet_entries SET hours = 3 WHERE comment = 'from the desktop'");
    let web_entry_id = entries.iter().find(|e| e["comments"] == "from the web").unwrap()["id"].as_i64().unwrap();
    redmine.put(&format!("/time_entries/{web_entry_id}.json"), json!({"time_entry": {"comments": "from the web, corrected"}})).await;
    sync(&engine, &["entries"]).await;
    let entry = redmine.get(&format!("/time_entries/{desktop_entry_id}.json")).await;
    assert_eq!(entry["time_entry"]["hours"], 3.0);
    assert_eq!(desktop_id(&scene, "SELECT count(*) FROM timesheet_entries WHERE comment = 'from the web, corrected'"), 1);

    // A delete on the desktop (a tombstone, by the desktop's trigger) deletes it in Redmine.
    scene.sql("desktop.sqlite", "DELETE FROM timesheet_entries WHERE comment = 'from the desktop'");
    sync(&engine, &["entries"]).await;
    let (status, _) = redmine.request("GET", &format!("/time_entries/{desktop_entry_id}.json"), &redmine.key, None).await;
    assert_eq!(status, 404);
    // Nothing was copied twice.
    assert_eq!(redmine.time_entries(&project.1).await.len(), 1);
    assert_eq!(desktop_id(&scene, "SELECT count(*) FROM timesheet_entries WHERE status = 'active'"), 1);
}

// Covers: T1
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_edited_on_both_sides_is_settled_by_last_writer_wins() {
    let Setup { scene, engine, redmine, project } = setup().await;
    let development = redmine.activity("Development").await;
    let entry = redmine
        .post("/time_entries.json", json!({"time_entry": {"project_id": project.0, "hours": 1, "spent_on": "2026-11-04", "activity_id": development, "comments": "pairing"}}))
        .await;
    let entry = entry["time_entry"]["id"].as_i64().unwrap();
    sync(&engine, ALL).await;
    // The desktop edits first, Redmine a second later: Redmine's value is the later one.
    scene.sql("desktop.sqlite", "UPDATE timesheet_entries SET hours = 2 WHERE comment = 'pairing'");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    redmine.put(&format!("/time_entries/{entry}.json"), json!({"time_entry": {"hours": 4}})).await;
    let report = engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert!(report.counts.conflicts >= 1, "{:?}", report.plan);
    let hours: f64 = scene.query_one("desktop.sqlite", "SELECT hours FROM timesheet_entries WHERE comment = 'pairing'");
    assert_eq!(hours, 4.0);
    let current = redmine.get(&format!("/time_entries/{entry}.json")).await;
    assert_eq!(current["time_entry"]["hours"], 4.0);
}

// Covers: T1, T2
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_without_a_counterpart_project_fails_with_a_hint_and_goes_through_once_the_project_is_synced() {
    let Setup { scene, engine, redmine, project } = setup().await;
    sync(&engine, &["users", "activities", "projects"]).await;
    scene.sql(
        "desktop.sqlite",
        "INSERT INTO projects (name) VALUES ('Not yet in Redmine');
         INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours, comment)
           SELECT (SELECT id FROM users WHERE login = 'admin'), (SELECT id FROM projects WHERE name = 'Not yet in Redmine'),
                  (SELECT min(id) FROM activities), '2026-11-05', 1.5, 'waiting for its project';",
    );
    let report = engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.failed, 1);
    let failed = engine.state.failed(Some("entries")).unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].reason.contains("project_id"), "{}", failed[0].reason);
    let hint = failed[0].hint.clone().unwrap_or_default();
    assert!(hint.contains("pipeline `projects`"), "{hint}");
    assert!(redmine.time_entries(&project.1).await.is_empty());

    // The project is synced; the failed entry goes through when resubmitted.
    let links_before = engine.state.link_count("projects").unwrap();
    sync(&engine, &["projects"]).await;
    assert!(engine.state.link_count("projects").unwrap() > links_before);
    assert_eq!(engine.referencing("projects"), vec!["entries".to_owned(), "tasks".to_owned()]);
    engine.resubmit_failed("entries", None, "test").await.unwrap();
    assert!(engine.state.failed(Some("entries")).unwrap().is_empty());
    let entries = redmine.time_entries(&project.1).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["project"]["name"], "Not yet in Redmine");
}

// Covers: T4, T6
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_api_key_and_a_missing_permission_are_named() {
    let redmine = Redmine::connect().await;
    let project = redmine.project(&unique("Permissions"), None).await;

    // A key Redmine does not know.
    let scene = Scene::new();
    scene.database("desktop.sqlite", "");
    let engine = scene.engine(&redmine.timesheet_config(&redmine.url, "0123456789abcdef0123456789abcdef01234567", &project.1, 5));
    let probes = engine.probe_endpoints().await;
    let probe = probes.iter().find(|p| p.endpoint == "redmine").unwrap();
    assert_eq!(probe.problems.len(), 1, "{:?}", probe.problems);
    assert!(probe.problems[0].message.contains("refused the API key"), "{}", probe.problems[0].message);
    assert!(probe.problems[0].hint.as_deref().unwrap_or("").contains("api_key"));
    let error = engine.run("projects", "test", Mode::Apply).await.unwrap_err();
    assert!(error.to_string().contains("refused the API key"), "{error}");
    assert!(error.to_string().contains("reading projects (checking the API key first)"), "the entity read is named: {error}");

    // A member whose role may view but not log time.
    let (user, _, key) = redmine.user().await;
    redmine.member(project.0, user, "Observer").await;
    let scene = Scene::new();
    scene.database("desktop.sqlite", "");
    let observer = redmine.timesheet_config(&redmine.url, &key, &project.1, 5);
    // It cannot see the origin field by name: not an administrator, no entry yet.
    let engine = scene.engine(&observer);
    let problems = engine.probe_endpoints().await.into_iter().find(|p| p.endpoint == "redmine").unwrap().problems;
    let origin = problems.iter().find(|p| p.code == "unknown-origin-field").unwrap_or_else(|| panic!("{problems:?}"));
    assert!(origin.hint.as_deref().unwrap_or("").contains("give its id instead"), "{origin:?}");
    // By id it can.
    let ids = redmine.get("/custom_fields.json").await;
    let id_of = |kind: &str| ids["custom_fields"].as_array().unwrap().iter().find(|f| f["name"] == "synchost origin" && f["customized_type"] == kind).unwrap()["id"].clone();
    let observer = observer.replace(
        "origin_field = \"synchost origin\"",
        &format!("origin_field = {{ time_entries = {}, issues = {} }}", id_of("time_entry"), id_of("issue")),
    );
    let engine = scene.engine(&observer);
    let probes = engine.probe_endpoints().await;
    let problems = &probes.iter().find(|p| p.endpoint == "redmine").unwrap().problems;
    assert!(!problems.iter().any(|p| p.code.contains("origin")), "{problems:?}");
    let log_time = problems.iter().find(|p| p.message.contains("`log_time`")).unwrap_or_else(|| panic!("log_time not named: {problems:?}"));
    assert_eq!(log_time.code, "missing-permission");
    assert!(log_time.message.contains("may not log time"), "{}", log_time.message);
    assert!(log_time.hint.as_deref().unwrap_or("").contains("Roles and permissions"));
    assert!(problems.iter().any(|p| p.message.contains("may not list users")), "{problems:?}");
    // A write the permission is missing for fails that entry, naming the permission.
    let admin_engine = scene.engine(&redmine.timesheet_config(&redmine.url, &redmine.key, &project.1, 5));
    sync(&admin_engine, &["users", "activities", "projects"]).await;
    scene.sql(
        "desktop.sqlite",
        "INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours)
         SELECT (SELECT id FROM users WHERE login = 'admin'), (SELECT min(id) FROM projects), (SELECT min(id) FROM activities), '2026-11-06', 1;",
    );
    let report = engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.failed, 1);
    let failed = engine.state.failed(Some("entries")).unwrap();
    assert_eq!(failed[0].code, "missing-permission");
    assert!(failed[0].reason.contains("log time"), "{}", failed[0].reason);
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn the_redmine_plugin_reaches_no_host_but_the_granted_redmine() {
    let redmine = Redmine::connect().await;
    let project = redmine.project(&unique("Sandbox"), None).await;
    let scene = Scene::new();
    scene.database("desktop.sqlite", "");
    // Settings point the plugin at another host than the one granted.
    let port = redmine.url.rsplit(':').next().unwrap();
    let elsewhere = format!("http://127.0.0.2:{port}");
    let engine = scene.engine(&redmine.timesheet_config(&elsewhere, &redmine.key, &project.1, 5));
    let error = engine.run("projects", "test", Mode::Apply).await.unwrap_err();
    assert!(error.to_string().contains("may not send HTTP requests to 127.0.0.2"), "{error}");
    assert!(error.hint().unwrap_or_default().contains("grants.http"), "{:?}", error.hint());
}

/// A second Redmine server on the same database, that the test may stop.
struct OwnServer {
    child: Option<std::process::Child>,
    port: u16,
}

impl OwnServer {
    fn start(port: u16) -> OwnServer {
        use std::os::unix::process::CommandExt;
        let dir = std::env::var("SYNCHOST_REDMINE_DIR").unwrap_or_else(|_| "/usr/share/redmine".into());
        let pid_file = std::env::temp_dir().join(format!("synchost-redmine-{port}.pid"));
        let _ = std::fs::remove_file(&pid_file);
        let child = std::process::Command::new("ruby")
            .args(["bin/rails", "server", "-u", "puma", "-b", "127.0.0.1", "-p", &port.to_string(), "-P"])
            .arg(&pid_file)
            .current_dir(&dir)
            .env("RAILS_ENV", "production")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a Redmine server in {dir}: {e} (run `scripts/redmine start` first)"));
        OwnServer { child: Some(child), port }
    }

    async fn wait_until_up(&self) {
        for _ in 0..240 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        panic!("the Redmine server on port {} did not come up within 120 s", self.port);
    }

    /// Stops the server at once, like a crash (its process group: rails and puma).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// Covers: T1, T3
#[tokio::test(flavor = "multi_thread")]
async fn redmine_stopped_in_the_middle_of_a_run_degrades_the_pipeline_which_resumes_without_loss_or_duplicates() {
    let redmine = Redmine::connect().await;
    let project = redmine.project(&unique("Outage"), None).await;
    let port = 3300 + (std::process::id() % 500) as u16 + 100;
    let mut server = OwnServer::start(port);
    server.wait_until_up().await;
    let scene = Scene::new();
    scene.database("desktop.sqlite", "");
    let url = format!("http://127.0.0.1:{port}");
    let text = redmine.timesheet_config(&url, &redmine.key, &project.1, 5).replace(&format!("allow = [\"{}\"]", redmine.origin()), &format!("allow = [\"{url}\"]"));
    let engine = std::sync::Arc::new(scene.engine(&text));
    sync(&engine, &["users", "activities", "projects"]).await;
    scene.sql(
        "desktop.sqlite",
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
             INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours, comment)
             SELECT (SELECT id FROM users WHERE login = 'admin'), (SELECT min(id) FROM projects), (SELECT min(id) FROM activities), '{}', 0.25, 'entry ' || i FROM n;",
            synchost_tests::redmine::unique_day()
        ),
    );
    // Stop Redmine once some entries are in (a run that ends early, say on a
    // busy answer, is started again: the engine goes on where it stopped).
    let run = loop {
        let run = tokio::spawn({
            let engine = engine.clone();
            async move { engine.run("entries", "test", Mode::Apply).await }
        });
        // Progress is watched in the engine's state: asking Redmine would wait
        // on its database while the other server writes, and come too late.
        while engine.state.link_count("entries").unwrap() < 5 && !run.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if !run.is_finished() {
            break run;
        }
        let outcome = run.await.unwrap();
        assert!(outcome.is_err(), "the run finished before Redmine could be stopped: {:?}", outcome.map(|r| r.counts));
    };
    server.kill();
    let outcome = run.await.unwrap();
    assert!(outcome.is_err(), "the run should fail when Redmine stops mid-run");
    let health = engine.state.health("entries").unwrap().unwrap();
    assert_eq!(health.state, "degraded");
    let written = redmine.time_entries(&project.1).await.len();
    assert!((5..60).contains(&written), "{written} entries written before the stop");

    // Redmine comes back: the pipeline resumes and finishes.
    let server = OwnServer::start(port);
    server.wait_until_up().await;
    let report = engine.run("entries", "test", Mode::Apply).await.expect("runs again once Redmine is back");
    assert_eq!(report.counts.failed, 0);
    engine.resubmit_failed("entries", None, "test").await.unwrap();
    assert_eq!(engine.state.health("entries").unwrap().unwrap().state, "ok");
    assert!(engine.state.failed(Some("entries")).unwrap().is_empty());
    let entries = redmine.time_entries(&project.1).await;
    let mut comments: Vec<String> = entries.iter().map(|e| e["comments"].as_str().unwrap_or("").to_owned()).collect();
    comments.sort();
    comments.dedup();
    assert_eq!(entries.len(), 60, "each entry exactly once in Redmine");
    assert_eq!(comments.len(), 60);
    assert_eq!(engine.state.link_count("entries").unwrap(), 60);
}

// Covers: T2, P12
#[tokio::test(flavor = "multi_thread")]
async fn time_logged_for_a_user_who_is_not_a_member_fails_naming_the_person_and_the_project() {
    let Setup { scene, engine, redmine, project } = setup().await;
    let (_, login, _) = redmine.user().await;
    sync(&engine, &["users", "activities", "projects"]).await;
    scene.sql(
        "desktop.sqlite",
        &format!(
            "INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours, comment)
             SELECT (SELECT id FROM users WHERE login = '{login}'), (SELECT min(id) FROM projects), (SELECT min(id) FROM activities), '2026-11-14', 1, 'not a member';"
        ),
    );
    let report = engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.failed, 1);
    let failed = engine.state.failed(Some("entries")).unwrap();
    let reason = &failed[0].reason;
    assert!(reason.contains(&format!("`{login}`")) && reason.contains("is not a member of project") && reason.contains(&format!("`{}`", project.1)), "{reason}");
    assert!(failed[0].hint.as_deref().unwrap_or("").contains("Settings > Members"), "{:?}", failed[0].hint);
    // Named the way a person knows it, beside its id.
    assert_eq!(failed[0].label.as_deref(), Some("not a member"));
}

fn change_of_issue(id: &str, field: &str, value: synchost::model::Value) -> synchost::model::Change {
    synchost::model::Change {
        origin: format!("test/left/{id}"),
        target_id: Some(id.to_owned()),
        expected_version: None,
        kind: synchost::model::ChangeKind::Upsert,
        fields: vec![synchost::model::Field { name: field.into(), value }],
        repeated: false,
        on_behalf_of: None,
    }
}

// Covers: P1, P3, T2
#[tokio::test(flavor = "multi_thread")]
async fn an_unassignment_reaches_redmine_and_a_value_redmine_ignores_is_not_reported_written() {
    use synchost::model::{Outcome, Value};
    let Setup { scene, redmine, project, .. } = setup().await;
    let catalog = scene.load(&redmine.timesheet_config(&redmine.url, &redmine.key, &project.1, 5));
    let tracker = synchost_tests::instance(&catalog, "redmine");
    let issue = |subject: &str, extra: serde_json::Value| {
        let mut body = json!({"project_id": project.0, "subject": subject, "start_date": "2026-11-02", "due_date": "2026-11-06"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let assigned = redmine.post("/issues.json", json!({"issue": issue("Cabling", json!({"assigned_to_id": 1}))})).await["issue"]["id"].to_string();
    let outcomes = tracker.write("issues", &[change_of_issue(&assigned, "assigned_to_id", Value::Null)]).await.unwrap();
    assert!(matches!(outcomes[0], Outcome::Applied(_)), "{outcomes:?}");
    let held = redmine.get(&format!("/issues/{assigned}.json")).await;
    assert!(held["issue"]["assigned_to"].is_null(), "unassigned in Redmine: {held}");

    // A parent's dates are derived from its subtasks: Redmine ignores a new one.
    let parent = redmine.post("/issues.json", json!({"issue": issue("Move", json!({}))})).await["issue"]["id"].to_string();
    redmine.post("/issues.json", json!({"issue": issue("Pack", json!({"parent_issue_id": parent.parse::<i64>().unwrap()}))})).await;
    let outcomes = tracker.write("issues", &[change_of_issue(&parent, "start_date", Value::Date("2026-10-01".into()))]).await.unwrap();
    let Outcome::Rejected(problem) = &outcomes[0] else { panic!("a value Redmine would not keep must not be reported written: {outcomes:?}") };
    assert_eq!(problem.code, "derived");
    assert!(problem.message.contains("derives its start_date from its subtasks"), "{}", problem.message);
    assert!(problem.hint.as_deref().unwrap_or("").contains("Parent tasks attributes"), "{:?}", problem.hint);
}
