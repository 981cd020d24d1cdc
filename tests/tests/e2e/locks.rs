//! Kinds of data, scope locks and undo between a real plan file and a real
//! Redmine (L1-L5): the planner locks the project while re-planning it, the
//! team's changes wait, and a run can be taken back.

use serde_json::json;
use synchost::engine::{Actor, Engine, UndoDirection};

use super::project_plan::{edit_task, issue, issues, plan_text, run, setup_with, Setup};

const SCOPE: &str = r#"
[scopes.office-move]
pipelines = ["work"]
editor = { endpoint = "plan", user = "hana" }
unlock = ["lee"]
"#;

/// The example's pipeline with kinds of data and notes instead of approvals.
fn categorised(config: String) -> String {
    let config = config
        .replace("conflict = \"left-wins\"\n", "data = \"plan\"\nnotes = { left = \"notes\", right = \"notes\" }\n")
        .replace("approval = { direction = \"right-to-left\", note_field = \"notes\" }\n", "")
        .replace("percent_complete = { right = \"done_ratio\" }", "percent_complete = { right = \"done_ratio\", data = \"actuals\" }");
    assert!(config.contains("data = \"plan\"") && config.contains("data = \"actuals\"") && !config.contains("approval ="), "the example config changed: {config}");
    config
}

fn with_scope(config: String) -> String {
    format!("{}{SCOPE}", categorised(config))
}

fn with_scope_no_auto_lock(config: String) -> String {
    format!("{}{SCOPE}auto_lock = false\n", categorised(config))
}

fn with_scope_short_idle(config: String) -> String {
    format!("{}{SCOPE}idle_timeout = \"2s\"\n", categorised(config))
}

/// Publishes the plan: the flagged tasks become issues (level by level).
async fn publish(engine: &Engine) {
    run(engine).await;
    run(engine).await;
}

async fn journal_notes(redmine: &synchost_tests::redmine::Redmine, id: i64) -> Vec<String> {
    let journal = redmine.get(&format!("/issues/{id}.json?include=journals")).await;
    journal["issue"]["journals"].as_array().unwrap().iter().filter_map(|j| j["notes"].as_str()).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

// Covers: L1
#[tokio::test(flavor = "multi_thread")]
async fn plan_data_goes_to_the_first_writer_with_a_warning_and_actuals_to_the_last_silently() {
    let Setup { scene, engine, redmine, project, .. } = setup_with(true, categorised).await;
    publish(&engine).await;
    let published = issues(&redmine, &project).await;
    let cabling = issue(&published, "Network cabling")["id"].as_i64().unwrap();

    // Plan data, both sides at once: the plan (the first writer: a file keeps
    // no change times, so it counts as first) wins; Redmine is told to refresh.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"estimated_hours": 30}})).await;
    edit_task(&scene, "Network cabling", "<Work>PT24H0M0S</Work>", "<Work>PT28H0M0S</Work>");
    let report = run(&engine).await;
    assert_eq!(report.counts.conflicts, 1, "{:?}", report.plan);
    let after = redmine.get(&format!("/issues/{cabling}.json")).await;
    assert_eq!(after["issue"]["estimated_hours"], 28.0);
    let notes = journal_notes(&redmine, cabling).await;
    assert!(notes.iter().any(|n| n.contains("was rejected") && n.contains("must refresh")), "the losing side sees the warning: {notes:?}");
    let events = engine.state.events(None, 100).unwrap();
    assert!(events.iter().any(|e| e.level == "warn" && e.message.contains("Network cabling") && e.message.contains("must refresh")), "{events:?}");

    // Actuals, both sides at once: the last writer wins, and nobody is warned.
    let before = journal_notes(&redmine, cabling).await.len();
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"done_ratio": 40}})).await;
    edit_task(&scene, "Network cabling", "<PercentComplete>0</PercentComplete>", "<PercentComplete>30</PercentComplete>");
    run(&engine).await;
    let after = redmine.get(&format!("/issues/{cabling}.json")).await;
    assert_eq!(after["issue"]["done_ratio"], 30);
    assert!(plan_text(&scene).contains("<PercentComplete>30</PercentComplete>"));
    assert_eq!(journal_notes(&redmine, cabling).await.len(), before, "actuals lose silently");
}

// Covers: L2, L3, L4
#[tokio::test(flavor = "multi_thread")]
async fn the_holders_changes_apply_the_teams_wait_and_go_through_when_the_lock_goes() {
    let Setup { scene, engine, redmine, project, .. } = setup_with(true, with_scope).await;
    publish(&engine).await;
    // Publishing was the editor's first change: the scope locked itself for her.
    let lock = engine.state.scope_lock("office-move").unwrap().expect("auto-locked");
    assert_eq!((lock.holder.as_str(), lock.endpoint.as_str()), ("hana", "plan"));
    let published = issues(&redmine, &project).await;
    let cabling = issue(&published, "Network cabling")["id"].as_i64().unwrap();
    let servers = issue(&published, "Move the servers")["id"].as_i64().unwrap();

    // The holder re-plans: her change reaches Redmine.
    edit_task(&scene, "Network cabling", "<Finish>2026-11-04T17:00:00</Finish>", "<Finish>2026-11-06T17:00:00</Finish>");
    run(&engine).await;
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["due_date"], "2026-11-06");

    // The team re-estimates a task and reports progress: the estimate (plan
    // data) is held back, with a note in Redmine; the progress (actuals) goes on.
    redmine.put(&format!("/issues/{servers}.json"), json!({"issue": {"estimated_hours": 48, "done_ratio": 20}})).await;
    let report = run(&engine).await;
    assert_eq!(report.counts.held, 1, "{:?}", report.plan);
    let plan = plan_text(&scene);
    assert!(plan.contains("<Work>PT40H0M0S</Work>"), "the held estimate is not in the plan");
    assert!(plan.contains("<PercentComplete>20</PercentComplete>"), "actuals are never locked");
    let held = engine.state.held_changes(Some("office-move"), None).unwrap();
    assert_eq!(held.len(), 1);
    assert!(held[0].summary.contains("work: 40 -> 48"), "{}", held[0].summary);
    let notes = journal_notes(&redmine, servers).await;
    assert!(notes.iter().any(|n| n.contains("is held") && n.contains("locked by hana")), "{notes:?}");
    // Running again holds nothing twice and writes nothing.
    assert_eq!(run(&engine).await.counts.held, 0);

    // The same field on both sides while locked: the holder's value goes out.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"estimated_hours": 26}})).await;
    edit_task(&scene, "Network cabling", "<Work>PT24H0M0S</Work>", "<Work>PT32H0M0S</Work>");
    run(&engine).await;
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["estimated_hours"], 32.0);

    // Someone else may not open her lock; a user the scope names may.
    let refused = engine.release_lock("office-move", "bob", false, None).unwrap_err();
    assert!(refused.to_string().contains("locked by hana"), "{refused}");
    assert!(matches!(refused, synchost::engine::RunError::Forbidden { .. }));
    assert!(engine.state.scope_lock("office-move").unwrap().is_some());
    let opened = engine.release_lock("office-move", "lee", false, Some("hana is on leave")).unwrap();
    assert!(opened.contains("forced open") && opened.contains("1 held change"), "{opened}");
    let log = engine.state.lock_log(Some("office-move"), 10).unwrap();
    assert_eq!(log[0].action, "forced-unlock");
    assert_eq!((log[0].by.as_str(), log[0].why.as_str()), ("lee", "hana is on leave"));
    assert_eq!(log[1].action, "refused");

    // The lock gone, the held estimate reaches the plan.
    run(&engine).await;
    assert!(plan_text(&scene).contains("<Work>PT48H0M0S</Work>"), "{}", plan_text(&scene));
    assert!(engine.state.held_changes(None, None).unwrap().is_empty());
    // The plan changed again: the editor's change locks the scope for her anew.
    edit_task(&scene, "Move the servers", "<Finish>2026-11-13T17:00:00</Finish>", "<Finish>2026-11-16T17:00:00</Finish>");
    run(&engine).await;
    assert_eq!(engine.state.scope_lock("office-move").unwrap().unwrap().how, synchost::state::locks::LockHow::AutoLock);
    // An admin may open anyone's lock.
    engine.release_lock("office-move", "root", true, None).unwrap();
    assert!(engine.state.scope_lock("office-move").unwrap().is_none());
}

// Covers: L2, L4
#[tokio::test(flavor = "multi_thread")]
async fn a_held_change_the_holder_overruled_is_told_to_refresh_when_the_lock_goes() {
    let Setup { scene, engine, redmine, project, .. } = setup_with(true, with_scope).await;
    publish(&engine).await;
    let cabling = issue(&issues(&redmine, &project).await, "Network cabling")["id"].as_i64().unwrap();
    // The team's new subject and estimate are held; then the holder sets the estimate too.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"estimated_hours": 30, "subject": "Network cabling, both floors"}})).await;
    assert_eq!(run(&engine).await.counts.held, 1);
    edit_task(&scene, "Network cabling", "<Work>PT24H0M0S</Work>", "<Work>PT36H0M0S</Work>");
    run(&engine).await;
    engine.release_lock("office-move", "hana", false, None).unwrap();
    run(&engine).await;
    // The subject nobody else touched is applied; the estimate stays the holder's, and Redmine is told.
    let plan = plan_text(&scene);
    assert!(plan.contains("<Name>Network cabling, both floors</Name>"), "{plan}");
    assert!(plan.contains("<Work>PT36H0M0S</Work>"));
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["estimated_hours"], 36.0);
    let notes = journal_notes(&redmine, cabling).await;
    // Told when the holder's value went out over theirs, not again when the lock went.
    assert!(notes.iter().any(|n| n.contains("estimated_hours was not applied") && n.contains("locked by hana") && n.contains("must refresh")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("is held")), "{notes:?}");
}

// Covers: L3
#[tokio::test(flavor = "multi_thread")]
async fn auto_lock_can_be_off() {
    let Setup { scene, engine, redmine, project, .. } = setup_with(true, with_scope_no_auto_lock).await;
    publish(&engine).await;
    assert!(engine.state.scope_lock("office-move").unwrap().is_none(), "auto-lock is off");
    let cabling = issue(&issues(&redmine, &project).await, "Network cabling")["id"].as_i64().unwrap();
    // Nothing locked: the team's estimate goes to the plan at once.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"estimated_hours": 30}})).await;
    run(&engine).await;
    assert!(plan_text(&scene).contains("<Work>PT30H0M0S</Work>"));
}

// Covers: L4
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_holder_loses_the_lock() {
    let Setup { scene: _scene, engine, .. } = setup_with(true, with_scope_short_idle).await;
    publish(&engine).await;
    assert!(engine.state.scope_lock("office-move").unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    run(&engine).await;
    assert!(engine.state.scope_lock("office-move").unwrap().is_none(), "released after the idle timeout");
    let log = engine.state.lock_log(Some("office-move"), 5).unwrap();
    assert_eq!((log[0].action.as_str(), log[0].by.as_str()), ("idle-release", "synchost"));
    assert!(log[0].why.contains("hana changed nothing"), "{}", log[0].why);
}

// Covers: L5
#[tokio::test(flavor = "multi_thread")]
async fn the_holder_undoes_and_redoes_runs_into_redmine_and_into_the_plan() {
    let Setup { scene, engine, redmine, project, .. } = setup_with(true, with_scope_no_auto_lock).await;
    publish(&engine).await;
    let cabling = issue(&issues(&redmine, &project).await, "Network cabling")["id"].as_i64().unwrap();
    let hana = Actor { name: "hana".into(), admin: false };

    // A run into the plan (the team renamed a task), while nothing is locked.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"subject": "Cabling"}})).await;
    let into_plan = run(&engine).await.run_id.unwrap();
    assert!(plan_text(&scene).contains("<Name>Cabling</Name>"));
    // Nothing locked: undo belongs to no one but an admin.
    let refused = engine.undo_run(into_plan, UndoDirection::Undo, &hana, false).await.unwrap_err();
    assert!(refused.to_string().contains("nothing is locked"), "{refused}");

    engine.take_lock("office-move", "hana", None).unwrap();
    // A run into Redmine: the holder re-estimates.
    edit_task(&scene, "Cabling", "<Work>PT24H0M0S</Work>", "<Work>PT32H0M0S</Work>");
    let into_redmine = run(&engine).await.run_id.unwrap();
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["estimated_hours"], 32.0);

    // A dry run says what would change and writes nothing.
    let dry = engine.undo_run(into_redmine, UndoDirection::Undo, &hana, true).await.unwrap();
    assert_eq!(dry.records.len(), 1, "{dry:?}");
    assert_eq!((dry.records[0].fields[0].field.as_str(), &dry.records[0].fields[0].restored), ("estimated_hours", &json!(24.0)));
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["estimated_hours"], 32.0);

    // Undo: Redmine holds the old estimate again, and so does the plan.
    let undone = engine.undo_run(into_redmine, UndoDirection::Undo, &hana, false).await.unwrap();
    assert_eq!(undone.records[0].outcome.as_deref(), Some("restored"), "{undone:?}");
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["estimated_hours"], 24.0);
    assert!(plan_text(&scene).contains("<Work>PT24H0M0S</Work>"));
    let history = engine.state.history("work", Some(&format!("right:{cabling}")), 20).unwrap();
    assert!(history.iter().any(|h| h.action == "undo" && h.rule == format!("undo of run {into_redmine}")), "{history:?}");
    // Twice is refused; redo writes the run's values again, on both sides.
    assert!(engine.undo_run(into_redmine, UndoDirection::Undo, &hana, false).await.unwrap_err().to_string().contains("undone already"));
    engine.undo_run(into_redmine, UndoDirection::Redo, &hana, false).await.unwrap();
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["estimated_hours"], 32.0);
    assert!(plan_text(&scene).contains("<Work>PT32H0M0S</Work>"));

    // The run into the plan, undone by the holder: the task's name comes back on both sides.
    engine.undo_run(into_plan, UndoDirection::Undo, &hana, false).await.unwrap();
    assert!(plan_text(&scene).contains("<Name>Network cabling</Name>"), "{}", plan_text(&scene));
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["subject"], "Network cabling");

    // A value changed since the run is not overwritten: the undo says so.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"estimated_hours": 40}})).await;
    let over = engine.undo_run(into_redmine, UndoDirection::Undo, &hana, false).await.unwrap();
    assert!(over.records[0].fields.is_empty() && over.records[0].refused[0].contains("changed since the run"), "{over:?}");
    assert_eq!(redmine.get(&format!("/issues/{cabling}.json")).await["issue"]["estimated_hours"], 40.0);
    // Someone who does not hold the lock may not; an admin may undo any run.
    let lee = Actor { name: "lee".into(), admin: false };
    assert!(engine.undo_run(into_plan, UndoDirection::Redo, &lee, true).await.unwrap_err().to_string().contains("locked by hana"));
    engine.undo_run(into_plan, UndoDirection::Redo, &Actor { name: "root".into(), admin: true }, true).await.unwrap();
}
