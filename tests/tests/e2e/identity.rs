//! The timesheet seed's fourth case (T5): the web side moved to another
//! machine name. Here the real Redmine is reached under another name: the
//! host stops its pipelines before anything is read or written, says how to
//! confirm, and after `endpoints rebind` the entry waiting goes over.

use synchost::engine::identity::Subject;
use synchost::engine::{Mode, RunError};
use synchost_tests::redmine::{unique, unique_day, Redmine};

// Covers: T5, T2
#[tokio::test(flavor = "multi_thread")]
async fn a_redmine_reached_under_another_name_stops_its_pipelines_until_it_is_confirmed() {
    let redmine = Redmine::connect().await;
    let project = redmine.project(&unique("Moved"), None).await;
    assert!(redmine.url.contains("127.0.0.1"), "the test Redmine listens on loopback: {}", redmine.url);
    let sheets = redmine.timesheets(&redmine.url, &project.1, 20).await;
    let day = unique_day();
    sheets.add_entries(1, "before the move", &day, 1.0);
    sheets.engine.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!(redmine.time_entries(&project.1).await.len(), 1);

    // The same Redmine, now under the machine's other name.
    let moved_config = sheets.config.replace("127.0.0.1", "localhost");
    let moved = sheets.scene.engine(&moved_config);
    sheets.add_entries(1, "after the move", &day, 2.0);
    for pipeline in ["users", "projects", "entries"] {
        match moved.run(pipeline, "test", Mode::Apply).await {
            Err(RunError::Identity { message, hint }) => {
                assert!(message.contains("endpoint `redmine` now reaches http://localhost:"), "{message}");
                assert!(message.contains("synced with http://127.0.0.1:"), "{message}");
                assert!(hint.contains("synchost endpoints rebind redmine"), "{hint}");
            }
            other => panic!("{pipeline}: the run must stop on the identity mismatch, got {:?}", other.map(|r| r.counts)),
        }
    }
    assert_eq!(redmine.time_entries(&project.1).await.len(), 1, "nothing was written to the moved Redmine");
    let health = moved.state.health("entries").unwrap().unwrap();
    assert!(health.reason.as_deref().unwrap_or("").contains("now reaches http://localhost:"), "status shows why: {health:?}");

    // What doctor and `endpoints list` show.
    let findings = moved.identity_findings().await.unwrap();
    let finding = findings.iter().find(|f| f.subject == "endpoint `redmine`").unwrap();
    let (_, fix) = finding.mismatch.as_ref().expect("a mismatch");
    assert!(fix.contains("synchost endpoints rebind redmine"), "{fix}");
    assert!(findings.iter().find(|f| f.subject == "endpoint `desktop`").unwrap().mismatch.is_none(), "the desktop side did not move");

    // Confirmed: the entry waiting goes over.
    moved.rebind(Subject::Endpoint("redmine"), "ada").await.unwrap();
    let report = moved.run("entries", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.created, 1, "{:?}", report.counts);
    let entries = redmine.time_entries(&project.1).await;
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().any(|e| e["comments"] == "after the move 1"), "{entries:?}");

    // At the same address, another project answers (the scope changed): what
    // the connector says about its system tells it apart.
    let other = redmine.project(&unique("Other"), None).await;
    let rescoped = sheets.scene.engine(&moved_config.replace(&format!("project = \"{}\"", project.1), &format!("project = \"{}\"", other.1)));
    match rescoped.run("entries", "test", Mode::Apply).await {
        Err(RunError::Identity { message, hint }) => {
            assert!(message.contains("endpoint `redmine` answers as another system (redmine project"), "{message}");
            assert!(hint.contains("synchost endpoints rebind redmine"), "{hint}");
        }
        other => panic!("another project must stop the run, got {:?}", other.map(|r| r.counts)),
    }
}
