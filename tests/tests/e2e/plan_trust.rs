//! A plan and Redmine issues that never silently disagree: assignments
//! written both ways (and checked with MPXJ), Redmine's roll-ups of parent
//! issues never taken for the team's changes.

use serde_json::json;

use super::project_plan::{issue, issues, mpxj_task, plan_text, read_with_mpxj, run, setup, Setup};

/// Approves the one queued change and returns what was done.
async fn approve_the_one_queued(engine: &synchost::engine::Engine, expect: &str) -> String {
    let queue = engine.state.approvals(Some("work"), false).unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(queue[0].summary.contains(expect), "{}", queue[0].summary);
    engine.decide_approval(queue[0].id, Some(queue[0].revision), true, "pm", None).await.unwrap()
}

// Covers: P2, P7, P12
#[tokio::test(flavor = "multi_thread")]
async fn an_approved_assignee_reaches_the_plan_and_an_unassignment_reaches_redmine() {
    let Setup { scene, engine, redmine, project, alice, bob, .. } = setup().await;
    run(&engine).await;
    run(&engine).await;
    let published = issues(&redmine, &project).await;
    let furniture = issue(&published, "Furniture delivery")["id"].as_i64().unwrap();
    let cabling = issue(&published, "Network cabling")["id"].as_i64().unwrap();
    let servers = issue(&published, "Move the servers")["id"].as_i64().unwrap();
    assert!(issue(&published, "Furniture delivery")["assigned_to"].is_null());

    // The team assigns an unassigned task: approved, the plan gets an assignment.
    redmine.put(&format!("/issues/{furniture}.json"), json!({"issue": {"assigned_to_id": alice}})).await;
    run(&engine).await;
    let outcome = approve_the_one_queued(&engine, "resource_id").await;
    assert!(outcome.contains("written to the left record"), "{outcome}");
    let read = read_with_mpxj(&scene);
    assert_eq!(mpxj_task(&read, "Furniture delivery")["resources"], json!(["Alice Smith"]), "{read}");

    // The team gives a task to someone else: the plan's assignment follows.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"assigned_to_id": bob}})).await;
    run(&engine).await;
    approve_the_one_queued(&engine, "resource_id").await;
    let read = read_with_mpxj(&scene);
    assert_eq!(mpxj_task(&read, "Network cabling")["resources"], json!(["Bob Jones"]), "{read}");
    assert_eq!(mpxj_task(&read, "Furniture delivery")["resources"], json!(["Alice Smith"]));

    // The team takes the assignee off: the plan's assignment goes.
    redmine.put(&format!("/issues/{furniture}.json"), json!({"issue": {"assigned_to_id": ""}})).await;
    run(&engine).await;
    approve_the_one_queued(&engine, "resource_id").await;
    let read = read_with_mpxj(&scene);
    assert_eq!(mpxj_task(&read, "Furniture delivery")["resources"], json!([]), "{read}");

    // The planner takes the resource off a task: Redmine's issue is unassigned.
    let text = plan_text(&scene);
    let start = text.find("<TaskUID>4</TaskUID>").unwrap();
    let open = text[..start].rfind("<Assignment>").unwrap();
    let close = start + text[start..].find("</Assignment>").unwrap() + "</Assignment>".len();
    std::fs::write(scene.path("plans/office-move.xml"), format!("{}{}", &text[..open], text[close..].trim_start_matches(|c: char| c.is_whitespace()))).unwrap();
    let report = run(&engine).await;
    assert_eq!(report.counts.failed, 0, "{:?}", engine.state.failed(Some("work")).unwrap());
    let held = redmine.get(&format!("/issues/{servers}.json")).await;
    assert!(held["issue"]["assigned_to"].is_null(), "unassigned in Redmine: {held}");
    // Nothing comes back: both sides agree.
    let report = run(&engine).await;
    assert_eq!((report.counts.updated, report.counts.queued, report.counts.failed), (0, 0, 0));
}

// Covers: P2, P3
#[tokio::test(flavor = "multi_thread")]
async fn redmines_roll_ups_of_a_parent_issue_are_never_queued_as_the_teams_changes() {
    let Setup { scene: _scene, engine, redmine, project, .. } = setup().await;
    run(&engine).await;
    run(&engine).await;
    let published = issues(&redmine, &project).await;
    let parent = issue(&published, "New office ready");
    let cabling = issue(&published, "Network cabling")["id"].as_i64().unwrap();
    let (due, ratio) = (parent["due_date"].clone(), parent["done_ratio"].clone());

    // The team moves a subtask past its parent's finish and reports progress:
    // Redmine moves the parent's due date and done ratio with it.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"due_date": "2026-12-20", "done_ratio": 60}})).await;
    let rolled = issue(&issues(&redmine, &project).await, "New office ready").clone();
    assert_ne!((rolled["due_date"].clone(), rolled["done_ratio"].clone()), (due, ratio), "Redmine derives a parent's dates and done ratio: {rolled}");

    run(&engine).await;
    let queue = engine.state.approvals(Some("work"), false).unwrap();
    assert_eq!(queue.len(), 1, "only the team's own change waits: {queue:?}");
    assert!(queue[0].label.as_deref().is_some_and(|l| l.contains("Network cabling")), "{queue:?}");
    engine.decide_approval(queue[0].id, Some(queue[0].revision), false, "pm", Some("keep the date")).await.unwrap();
    // Rejected, nothing comes back; the parent is never proposed.
    run(&engine).await;
    run(&engine).await;
    assert!(engine.state.approvals(Some("work"), false).unwrap().is_empty());
    assert!(engine.state.approvals(Some("work"), true).unwrap().iter().all(|a| !a.summary.contains("New office ready")));
    assert!(engine.state.failed(Some("work")).unwrap().is_empty(), "{:?}", engine.state.failed(Some("work")).unwrap());
}

/// The planner's save: task 5's name marked with `marker`, read and saved
/// as an editor does, in place (`atomic` false) or through a file of its own
/// renamed over the plan.
fn planner_saves(path: &std::path::Path, marker: &str, atomic: bool) {
    let text = loop {
        // For the instant synchronisation swaps the file, the name is free.
        match std::fs::read_to_string(path) {
            Ok(text) => break text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    };
    let start = text.find("<Name>Sign the lease extension").unwrap();
    let end = start + text[start..].find("</Name>").unwrap();
    let saved = format!("{}<Name>Sign the lease extension ({marker}){}", &text[..start], &text[end..]);
    if atomic {
        let own = path.with_file_name("~office-move.xml.tmp");
        std::fs::write(&own, saved).unwrap();
        std::fs::rename(&own, path).unwrap();
    } else {
        std::fs::write(path, saved).unwrap();
    }
}

// Covers: P7, P12
#[tokio::test(flavor = "multi_thread")]
async fn a_planners_save_while_synchronisation_writes_the_plan_is_never_lost() {
    use super::project_plan::{plan_only, rename, PLAN};
    use synchost::model::Outcome;
    let scene = synchost_tests::Scene::new();
    let catalog = plan_only(&scene, false);
    let path = scene.path("plans/office-move.xml");
    std::fs::write(&path, PLAN).unwrap();
    let plan = synchost_tests::instance(&catalog, "plan");
    let (mut kept, mut refused) = (0, 0);
    for round in 0..50u64 {
        let marker = format!("planner save {round}");
        let planner = {
            let (path, marker) = (path.clone(), marker.clone());
            // Saves land before, during and after the write.
            let delay = std::time::Duration::from_micros(round * 7919 % 30_000);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                planner_saves(&path, &marker, round % 2 == 0);
            })
        };
        let outcome = plan.write("tasks", &[rename("2", &format!("Cabling {round}"))]).await;
        planner.join().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&marker), "round {round}: the planner's save was lost ({outcome:?})");
        match outcome {
            Ok(outcomes) => {
                assert!(matches!(outcomes[0], Outcome::Applied(_)), "{outcomes:?}");
                kept += usize::from(text.contains(&format!("<Name>Cabling {round}</Name>")));
            }
            Err(error) => {
                assert!(error.retryable(), "round {round}: {error}");
                refused += 1;
            }
        }
        // Whole, well-formed, nothing left beside it but the lock-free plan.
        plan.read("tasks", None, 100).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    assert!(kept > 0, "synchronisation's writes went through when nobody saved at the same moment");
    eprintln!("50 rounds: {kept} writes kept, {refused} refused for a save at the same moment");
    let names: Vec<String> = std::fs::read_dir(scene.path("plans")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.contains("synchost-") || n.ends_with("synchost-uids")), "{names:?}");
}

// Covers: P2, P7, L1
#[tokio::test(flavor = "multi_thread")]
async fn a_save_from_a_copy_older_than_an_approval_is_held_not_sent_to_redmine() {
    let Setup { scene, engine, redmine, project, .. } = setup().await;
    run(&engine).await;
    run(&engine).await;
    let cabling = issue(&issues(&redmine, &project).await, "Network cabling")["id"].as_i64().unwrap();
    let path = scene.path("plans/office-move.xml");
    let due = |issue: &serde_json::Value| issue["issue"]["due_date"].clone();

    // The team moves the due date, the plan's owner approves it; a planner
    // who opened the plan before saves it: the old finish is back in the file.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"due_date": "2026-11-05"}})).await;
    run(&engine).await;
    let stale = plan_text(&scene);
    approve_the_one_queued(&engine, "finish").await;
    assert!(plan_text(&scene).contains("<Finish>2026-11-05T17:00:00</Finish>"));
    std::fs::write(&path, &stale).unwrap();
    let report = run(&engine).await;
    assert_eq!((report.counts.updated, report.counts.queued), (0, 1), "held, not written");
    assert_eq!(due(&redmine.get(&format!("/issues/{cabling}.json")).await), "2026-11-05", "nothing sent to Redmine");
    let queue = engine.state.approvals(Some("work"), false).unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(queue[0].summary.contains("puts back what pm approved") && queue[0].summary.contains("finish: 2026-11-05 -> 2026-11-04"), "{}", queue[0].summary);
    // Held until decided: further runs send nothing.
    run(&engine).await;
    assert_eq!(due(&redmine.get(&format!("/issues/{cabling}.json")).await), "2026-11-05");

    // Rejected: first writer wins, the approved value is in the plan again.
    let outcome = engine.decide_approval(queue[0].id, Some(queue[0].revision), false, "pm", Some("saved from an old copy")).await.unwrap();
    assert!(outcome.contains("written to the left record") && outcome.contains("again"), "{outcome}");
    assert_eq!(mpxj_task(&read_with_mpxj(&scene), "Network cabling")["finish"], "2026-11-05T17:00");
    let report = run(&engine).await;
    assert_eq!((report.counts.updated, report.counts.queued, report.counts.failed), (0, 0, 0));
    assert_eq!(due(&redmine.get(&format!("/issues/{cabling}.json")).await), "2026-11-05");

    // Approved: the planner meant it; the old value goes on to Redmine.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"estimated_hours": 30}})).await;
    run(&engine).await;
    let stale = plan_text(&scene);
    approve_the_one_queued(&engine, "work: 24 -> 30").await;
    std::fs::write(&path, &stale).unwrap();
    run(&engine).await;
    let outcome = approve_the_one_queued(&engine, "work: 30 -> 24").await;
    assert!(outcome.contains("written to the right record"), "{outcome}");
    let held = redmine.get(&format!("/issues/{cabling}.json")).await;
    assert_eq!((held["issue"]["estimated_hours"].as_f64(), due(&held)), (Some(24.0), json!("2026-11-05")));
    let report = run(&engine).await;
    assert_eq!((report.counts.updated, report.counts.queued, report.counts.failed), (0, 0, 0));
}

/// The example's default field set (the seed's): spent time as the plan's
/// actual work and remaining work in a Redmine custom field, both written at
/// once (actuals are not approved), the rest through approval.
fn with_actuals(config: String) -> String {
    config
        .replace(r#""Plan finish" = "date" }"#, r#""Plan finish" = "date", "Remaining work" = "float" }, spent_time_check_s = 0"#)
        .replace(
            r#"approval = { direction = "right-to-left", note_field = "notes" }"#,
            r#"approval = { direction = "right-to-left", note_field = "notes", exempt = ["actual_work", "remaining_work"] }"#,
        )
        + "actual_work = { right = \"total_spent_hours\", direction = \"right-to-left\" }\nremaining_work = { right = \"Remaining work\" }\n"
}

// Covers: P1, P2, P6, T1
#[tokio::test(flavor = "multi_thread")]
async fn spent_time_reaches_the_plans_actual_work_at_once_while_other_changes_wait_for_approval() {
    use super::project_plan::{custom_value, setup_with};
    let Setup { scene, engine, redmine, project, .. } = setup_with(true, with_actuals).await;
    run(&engine).await;
    run(&engine).await;
    let cabling = issue(&issues(&redmine, &project).await, "Network cabling").clone();
    let id = cabling["id"].as_i64().unwrap();
    assert_eq!(custom_value(&cabling, "Remaining work"), "16.0", "the plan's remaining work is published");

    // The team logs 5 hours on the issue (its updated_on does not move),
    // lowers the remaining work and moves the due date.
    let activity = redmine.activity("Development").await;
    redmine.post("/time_entries.json", json!({"time_entry": {"issue_id": id, "hours": 5, "activity_id": activity, "spent_on": "2026-11-02"}})).await;
    redmine.put(&format!("/issues/{id}.json"), json!({"issue": {"due_date": "2026-11-05", "custom_fields": [{"id": custom_id(&cabling, "Remaining work"), "value": "11"}]}})).await;
    let report = run(&engine).await;
    assert_eq!(report.counts.queued, 1);
    let read = read_with_mpxj(&scene);
    let task = mpxj_task(&read, "Network cabling");
    assert_eq!((task["actual_work"].as_f64(), task["remaining_work"].as_f64()), (Some(5.0), Some(11.0)), "actuals at once: {task}");
    assert_eq!(task["finish"], "2026-11-04T17:00", "the due date waits for approval");
    let outcome = approve_the_one_queued(&engine, "finish: 2026-11-04 -> 2026-11-05").await;
    assert!(outcome.contains("\"Network cabling\""), "named as the team knows it: {outcome}");
    // History names the record beside its ids.
    let history = engine.state.history("work", Some(&format!("right:{id}")), 20).unwrap();
    assert!(!history.is_empty() && history.iter().all(|h| h.label.as_deref() == Some("Network cabling")), "{history:?}");
    let task = mpxj_task(&read_with_mpxj(&scene), "Network cabling").clone();
    assert_eq!((task["finish"].as_str(), task["actual_work"].as_f64()), (Some("2026-11-05T17:00"), Some(5.0)), "{task}");

    // More time logged later reaches the plan on the next run.
    redmine.post("/time_entries.json", json!({"time_entry": {"issue_id": id, "hours": 2.5, "activity_id": activity, "spent_on": "2026-11-03"}})).await;
    let report = run(&engine).await;
    assert_eq!((report.counts.queued, report.counts.failed), (0, 0));
    assert_eq!(mpxj_task(&read_with_mpxj(&scene), "Network cabling")["actual_work"].as_f64(), Some(7.5));
    assert!(engine.state.approvals(Some("work"), false).unwrap().is_empty());
}

fn custom_id(issue: &serde_json::Value, name: &str) -> i64 {
    issue["custom_fields"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no custom field {name} in {issue}"))["id"].as_i64().unwrap()
}
