//! A plan owner at the dashboard of a running host that keeps a project plan
//! and a real Redmine in sync: a team's update, approved in the browser,
//! lands in the plan file; another, rejected with a comment, is noted in the
//! Redmine issue's journal with the plan owner's name and the comment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use synchost::engine::Mode;
use synchost_tests::browser::{click, screenshot, shows, sign_in, type_into, Driver};

use crate::project_plan::{issue, issues, plan_text, setup_with, Setup};

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Covers: P1, P2, T2
#[tokio::test(flavor = "multi_thread")]
async fn a_plan_owner_approves_into_the_plan_and_rejects_into_the_redmine_journal_from_the_dashboard() {
    let Setup { scene, engine, redmine, project, .. } =
        setup_with(true, |config| format!("[host.admin]\nlisten = \"127.0.0.1:0\"\n{config}")).await;
    // Published: the plan's flagged tasks are Redmine issues.
    engine.run("work", "test", Mode::Apply).await.unwrap();
    engine.run("work", "test", Mode::Apply).await.unwrap();
    let published = issues(&redmine, &project).await;
    let cabling = issue(&published, "Network cabling")["id"].as_i64().unwrap();
    let furniture = issue(&published, "Furniture delivery")["id"].as_i64().unwrap();
    // The team re-estimates one issue: the change waits for the plan owner.
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"estimated_hours": 30}})).await;
    assert_eq!(engine.run("work", "test", Mode::Apply).await.unwrap().counts.queued, 1);
    engine.state.add_user("paula", synchost::state::users::Role::Approver, None).unwrap();
    let (_, token) = engine.state.create_token("paula", None).unwrap();
    engine.state.add_user("ops", synchost::state::users::Role::Operator, None).unwrap();
    let (_, operator) = engine.state.create_token("ops", None).unwrap();

    // The host runs, with its dashboard.
    let engine = Arc::new(engine);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let host = tokio::spawn(synchost::daemon::run(engine.clone(), stopped));
    let address = engine.config.data_dir().join("admin.address");
    eventually("the admin API", async || address.exists()).await;
    let base = format!("http://{}/", std::fs::read_to_string(&address).unwrap().trim());

    let driver = Driver::start();
    let browser = driver.browser().await;
    sign_in(&browser, &base, &token, "paula · approver").await;
    browser.goto(&format!("{base}#/approvals")).await.unwrap();
    shows(&browser, "Network cabling").await;
    screenshot(&browser, "dashboard-plan-approval").await;
    click(&browser, "button[data-approve]").await;
    shows(&browser, "approved by paula").await;
    eventually("the approved work in the plan", async || plan_text(&scene).contains("<Work>PT30H0M0S</Work>")).await;

    // Another update, read by a run an operator starts (the running host runs it); rejected with a comment.
    redmine.put(&format!("/issues/{furniture}.json"), json!({"issue": {"subject": "Furniture delivery and assembly"}})).await;
    let sync = reqwest::Client::new().post(format!("{base}api/v1/pipelines/work/sync")).bearer_auth(&operator).send().await.unwrap();
    assert_eq!(sync.status().as_u16(), 202);
    eventually("the update waiting", async || !engine.state.approvals(Some("work"), false).unwrap().is_empty()).await;
    // The page shows it by itself (it keeps itself current); a reload shows it at once.
    browser.refresh().await.unwrap();
    shows(&browser, "Furniture delivery and assembly").await;
    type_into(&browser, "textarea[data-comment]", "assembly is a separate task").await;
    click(&browser, "button[data-reject]").await;
    shows(&browser, "rejected by paula").await;
    eventually("the rejection in the Redmine journal", async || {
        let journal = redmine.get(&format!("/issues/{furniture}.json?include=journals")).await;
        journal["issue"]["journals"].as_array().unwrap().iter().filter_map(|j| j["notes"].as_str()).any(|note| {
            note.contains("rejected") && note.contains("paula") && note.contains("assembly is a separate task")
        })
    })
    .await;
    assert!(!plan_text(&scene).contains("Furniture delivery and assembly"), "the plan keeps its name");
    browser.close().await.unwrap();
    stop.send(true).unwrap();
    host.await.unwrap().unwrap();
}
