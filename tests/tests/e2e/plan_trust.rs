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
