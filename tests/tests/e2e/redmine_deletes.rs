//! Deletes made in Redmine, which removes issues and time entries outright
//! (no tombstone, nothing in a change feed), reach the desktop: the host
//! looks its linked Redmine records up and deletes the counterparts of those
//! gone, by the pipeline's delete policy. Real Redmine, real host.

use synchost::engine::Mode;
use synchost_tests::redmine::{unique, unique_day, Redmine, Timesheets};

// Covers: T1, C1, C8
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_deleted_in_redmine_is_deleted_on_the_desktop() {
    let redmine = Redmine::connect().await;
    let (_, project) = redmine.project(&unique("Deletes"), None).await;
    let config = redmine
        .timesheet_config(&redmine.url, &redmine.key, &project, 20)
        .replace("[pipelines.entries]\ncategory = \"timesheets\"", "[pipelines.entries]\ncategory = \"timesheets\"\ndeletes_check = \"2s\"");
    let sheets = Redmine::timesheets_from(config).await;
    sheets.add_entries(12, "entry", &unique_day(), 1.0);
    let Timesheets { scene, config, engine } = sheets;
    engine.run("entries", "test", Mode::Apply).await.unwrap();
    let entries = redmine.time_entries(&project).await;
    assert_eq!(entries.len(), 12);

    // Someone deletes two entries in Redmine.
    let doomed: Vec<&serde_json::Value> = entries.iter().filter(|e| e["comments"] == "entry 3" || e["comments"] == "entry 7").collect();
    for entry in &doomed {
        redmine.delete(&format!("/time_entries/{}.json", entry["id"])).await;
    }
    // The pipeline looks at most every `deletes_check`, whichever process
    // runs it (a `synchost sync` does not look every linked record up again).
    let engine = scene.engine(&config);
    let report = engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.deleted, 0, "not due yet: {:#?}", report.plan);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let report = engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.deleted, 2, "{:#?}", report.plan);
    let live = scene.rows("desktop.sqlite", "SELECT comment FROM timesheet_entries WHERE status = 'active' ORDER BY id");
    assert_eq!(live.len(), 10);
    assert!(!live.iter().any(|c| c == "entry 3" || c == "entry 7"), "{live:?}");
    let history = engine.state.history("entries", None, 100).unwrap();
    assert!(history.iter().any(|h| h.action == "delete"), "the delete is in the history");
    // Nothing more to do, and the other entries were left alone.
    let quiet = engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!((quiet.counts.created, quiet.counts.updated, quiet.counts.deleted), (0, 0, 0), "{:#?}", quiet.plan);
    assert_eq!(redmine.time_entries(&project).await.len(), 10);
}

// Covers: T1, C8, C9
#[tokio::test(flavor = "multi_thread")]
async fn a_new_entry_under_a_reused_id_is_never_taken_for_the_one_deleted() {
    let redmine = Redmine::connect().await;
    let (project_id, project) = redmine.project(&unique("Reuse"), None).await;
    let Timesheets { scene, engine, .. } = redmine.timesheets(&redmine.url, &project, 20).await;
    scene.sql(
        "desktop.sqlite",
        "INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours, comment)
         SELECT (SELECT id FROM users WHERE login = 'admin'), (SELECT min(id) FROM projects), (SELECT min(id) FROM activities), '2026-11-12', 3, 'site visit';",
    );
    engine.run("entries", "test", Mode::Apply).await.unwrap();
    let entries = redmine.time_entries(&project).await;
    let old_id = entries[0]["id"].as_i64().unwrap();

    // Deleted in Redmine, and a new entry made right after: Redmine gives it
    // the same id. (Its creation time, whole seconds, is what tells the two
    // apart: a second later.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    redmine.delete(&format!("/time_entries/{old_id}.json")).await;
    let activity = entries[0]["activity"]["id"].clone();
    let made = redmine
        .post("/time_entries.json", serde_json::json!({"time_entry": {"project_id": project_id, "hours": 1, "spent_on": "2026-11-13", "activity_id": activity, "comments": "phone call"}}))
        .await;
    assert_eq!(made["time_entry"]["id"].as_i64(), Some(old_id), "this Redmine reuses the id (the case under test)");

    let report = engine.run("entries", "test", Mode::Apply).await.expect("no constraint failure, no wrong fix");
    assert_eq!((report.counts.created, report.counts.deleted, report.counts.updated), (1, 1, 0), "{:#?}", report.plan);
    // The desktop entry is never overwritten by the new one: it is deleted (as
    // it was in Redmine) with its own values, and the new one comes as new.
    let rows = scene.rows("desktop.sqlite", "SELECT comment, hours, work_date, status FROM timesheet_entries ORDER BY id");
    assert_eq!(rows, ["site visit|3|2026-11-12|deleted", "phone call|1|2026-11-13|active"]);
    let quiet = engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!((quiet.counts.created, quiet.counts.updated, quiet.counts.deleted), (0, 0, 0), "{:#?}", quiet.plan);
    assert_eq!(redmine.time_entries(&project).await.len(), 1);
}
