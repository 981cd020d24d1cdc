//! P2: the person who decides a change, not the service account, is who the
//! other system's history shows. A rejection noted in a Redmine issue's
//! journal is made in the approver's name when Redmine knows them (the
//! endpoint's key is an administrator's), and by the service account,
//! naming them, when it does not.

use synchost_tests::redmine::Redmine;

use crate::project_plan::{issue, issues, run, setup, Setup};

/// Changes the furniture issue's subject in Redmine and returns the approval it waits in.
async fn proposed(engine: &synchost::engine::Engine, redmine: &Redmine, furniture: i64, subject: &str) -> (i64, i64) {
    redmine.put(&format!("/issues/{furniture}.json"), serde_json::json!({"issue": {"subject": subject}})).await;
    run(engine).await;
    let queue = engine.state.approvals(Some("work"), false).unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    (queue[0].id, queue[0].revision)
}

/// The author of the journal entry whose note contains `text`.
async fn author_of_note(redmine: &Redmine, furniture: i64, text: &str) -> i64 {
    let journal = redmine.get(&format!("/issues/{furniture}.json?include=journals")).await;
    let entries = journal["issue"]["journals"].as_array().unwrap();
    let entry = entries.iter().find(|j| j["notes"].as_str().is_some_and(|n| n.contains(text))).unwrap_or_else(|| panic!("no note with {text:?} in {entries:?}"));
    entry["user"]["id"].as_i64().unwrap()
}

// Covers: P2
#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_is_noted_in_redmine_in_the_approvers_name_when_redmine_knows_them() {
    let Setup { scene: _scene, engine, redmine, project, .. } = setup().await;
    run(&engine).await;
    run(&engine).await;
    let furniture = issue(&issues(&redmine, &project).await, "Furniture delivery")["id"].as_i64().unwrap();
    let project_id = redmine.get(&format!("/projects/{project}.json")).await["project"]["id"].as_i64().unwrap();
    let service_account = redmine.get("/users/current.json").await["user"]["id"].as_i64().unwrap();

    // A plan owner with a Redmine account of the same login, deciding from the command line.
    let (owner, login, _) = redmine.user().await;
    redmine.member(project_id, owner, "Manager").await;
    let (id, revision) = proposed(&engine, &redmine, furniture, "Furniture delivery and assembly").await;
    engine.decide_approval(id, Some(revision), false, &format!("{login} (command line)"), Some("assembly is a separate task")).await.unwrap();
    assert_eq!(author_of_note(&redmine, furniture, "assembly is a separate task").await, owner, "the journal shows the approver");

    // Someone Redmine does not know: noted by the service account, naming them.
    let (id, revision) = proposed(&engine, &redmine, furniture, "Furniture delivery, assembly included").await;
    engine.decide_approval(id, Some(revision), false, "pm", Some("still a separate task")).await.unwrap();
    assert_eq!(author_of_note(&redmine, furniture, "still a separate task").await, service_account);
    let journal = redmine.get(&format!("/issues/{furniture}.json?include=journals")).await;
    let note = journal["issue"]["journals"].as_array().unwrap().iter().filter_map(|j| j["notes"].as_str()).find(|n| n.contains("still a separate task")).unwrap().to_owned();
    assert!(note.contains("rejected by pm"), "{note}");
}
