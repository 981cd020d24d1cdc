//! Random edits on both sides of the timesheet pipeline (desktop entries and
//! Redmine time entries: creates, updates, deletes, edits of one entry on
//! both sides at once) while the host's scheduler runs, as `synchost run`
//! does; then both sides must hold the same entries, none twice, every
//! delete propagated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use synchost_tests::redmine::{unique, unique_day, Redmine, Timesheets};

/// A small deterministic generator (the run is repeatable from its seed).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn desktop(path: &std::path::Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    connection
}

/// Live entries by comment: hours and date.
fn desktop_entries(path: &std::path::Path) -> Vec<(String, f64, String)> {
    let connection = desktop(path);
    let mut statement = connection.prepare("SELECT comment, hours, work_date FROM timesheet_entries WHERE status <> 'deleted' ORDER BY comment").unwrap();
    statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

async fn redmine_entries(redmine: &Redmine, project: &str) -> Vec<(String, f64, String)> {
    let mut entries: Vec<(String, f64, String)> = redmine
        .time_entries(project)
        .await
        .iter()
        .map(|e| (e["comments"].as_str().unwrap_or_default().to_owned(), e["hours"].as_f64().unwrap(), e["spent_on"].as_str().unwrap().to_owned()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

fn twice(entries: &[(String, f64, String)]) -> Vec<&str> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (comment, _, _) in entries {
        *count.entry(comment).or_default() += 1;
    }
    count.into_iter().filter(|(_, n)| *n > 1).map(|(c, _)| c).collect()
}

// Covers: T1, T2, C1, C2, C8
#[tokio::test(flavor = "multi_thread")]
async fn random_edits_on_both_sides_while_the_host_runs_converge_without_loss_or_duplicates() {
    let redmine = Redmine::connect().await;
    let (project_id, project) = redmine.project(&unique("Random"), None).await;
    let config = redmine
        .timesheet_config(&redmine.url, &redmine.key, &project, 10)
        .replace("[pipelines.entries]\ncategory = \"timesheets\"", "[pipelines.entries]\ncategory = \"timesheets\"\nschedule = \"1s\"\ndeletes_check = \"2s\"");
    let Timesheets { scene, config, engine } = Redmine::timesheets_from(config).await;
    drop(engine);
    let day = unique_day();
    let activity = redmine.activity("Development").await;
    let db = scene.path("desktop.sqlite");

    let engine = Arc::new(scene.engine(&config));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let host = tokio::spawn(synchost::daemon::run(engine.clone(), stopped));

    // Another seed to explore: SYNCHOST_RANDOM_SEED=N.
    let seed = std::env::var("SYNCHOST_RANDOM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2026);
    let mut dice = Dice(seed);
    let (mut made, mut deleted_desktop, mut deleted_redmine) = (0, 0, 0);
    for step in 0..80 {
        let comment = format!("step {step}");
        match dice.below(6) {
            0 => {
                desktop(&db)
                    .execute(
                        "INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours, comment)
                         SELECT (SELECT id FROM users WHERE login = 'admin'), (SELECT min(id) FROM projects), (SELECT min(id) FROM activities), ?1, ?2, ?3",
                        rusqlite::params![day, 1 + dice.below(4), comment],
                    )
                    .unwrap();
                made += 1;
            }
            1 => {
                let body = json!({"time_entry": {"project_id": project_id, "hours": 1 + dice.below(4), "activity_id": activity, "spent_on": day, "comments": comment}});
                redmine.post("/time_entries.json", body).await;
                made += 1;
            }
            2 => {
                let connection = desktop(&db);
                let ids: Vec<i64> = connection
                    .prepare("SELECT id FROM timesheet_entries WHERE status <> 'deleted' ORDER BY id")
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                if !ids.is_empty() {
                    let id = ids[dice.below(ids.len())];
                    connection.execute("UPDATE timesheet_entries SET hours = ?1, comment = ?2 WHERE id = ?3", rusqlite::params![5 + dice.below(3), comment, id]).unwrap();
                }
            }
            3 => {
                let entries = redmine.time_entries(&project).await;
                if !entries.is_empty() {
                    let id = &entries[dice.below(entries.len())]["id"];
                    // (The host may have deleted it a moment ago: a 404 is part of the game.)
                    let body = json!({"time_entry": {"hours": 5 + dice.below(3), "comments": comment}});
                    let (status, answer) = redmine.request("PUT", &format!("/time_entries/{id}.json"), &redmine.key, Some(body)).await;
                    assert!(status < 300 || status == 404, "PUT {id}: {status} {answer}");
                }
            }
            4 => {
                let connection = desktop(&db);
                let ids: Vec<i64> =
                    connection.prepare("SELECT id FROM timesheet_entries WHERE status <> 'deleted'").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
                if ids.len() > 3 {
                    connection.execute("DELETE FROM timesheet_entries WHERE id = ?1", [ids[dice.below(ids.len())]]).unwrap();
                    deleted_desktop += 1;
                }
            }
            _ => {
                let entries = redmine.time_entries(&project).await;
                if entries.len() > 3 {
                    let id = &entries[dice.below(entries.len())]["id"];
                    let (status, answer) = redmine.request("DELETE", &format!("/time_entries/{id}.json"), &redmine.key, None).await;
                    assert!(status < 300 || status == 404, "DELETE {id}: {status} {answer}");
                    deleted_redmine += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50 + 50 * dice.below(5) as u64)).await;
    }

    // The edits stop; the host settles everything within a few runs. An item
    // that failed for a passing reason (its record changed while it was
    // written) is resubmitted on its backoff, which may come after the data
    // already agrees: settled means both.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut left, mut right) = (desktop_entries(&db), redmine_entries(&redmine, &project).await);
    let failed_left = |engine: &synchost::engine::Engine| !engine.state.failed(Some("entries")).unwrap().is_empty();
    while (left != right || failed_left(&engine)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        left = desktop_entries(&db);
        right = redmine_entries(&redmine, &project).await;
    }
    stop.send(true).unwrap();
    host.await.unwrap().unwrap();
    eprintln!("seed {seed}: {made} created, {deleted_desktop} deleted on the desktop, {deleted_redmine} in Redmine; {} entries on each side at the end", left.len());
    assert!(twice(&left).is_empty() && twice(&right).is_empty(), "duplicates: desktop {:?}, Redmine {:?}", twice(&left), twice(&right));
    if left != right {
        // What happened to the records that differ, for the one reading the failure.
        let entries = redmine.time_entries(&project).await;
        let differing: Vec<String> = right.iter().filter(|e| !left.contains(e)).filter_map(|(comment, _, _)| entries.iter().find(|e| e["comments"] == comment.as_str())).map(|e| format!("right:{}", e["id"])).collect();
        for event in engine.state.events(None, 30).unwrap() {
            eprintln!("event: {event:?}");
        }
        let rows = desktop(&db)
            .prepare("SELECT id, comment FROM timesheet_entries WHERE status <> 'deleted'")
            .unwrap()
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>();
        let differing_left = left.iter().filter(|e| !right.contains(e)).filter_map(|(comment, _, _)| rows.iter().find(|(_, c)| c == comment)).map(|(id, _)| format!("left:{id}"));
        let differing: Vec<String> = differing.into_iter().chain(differing_left).collect();
        for record in differing {
            for row in engine.state.history("entries", Some(&record), 50).unwrap().iter().rev() {
                eprintln!("{record}: {} {} left {:?} right {:?} [{}] {:?} {}", row.at, row.action, row.left_id, row.right_id, row.rule, row.message, row.fields);
            }
        }
    }
    assert_eq!(left, right, "both sides hold the same entries");
    assert!(deleted_desktop + deleted_redmine > 0 && made > 10, "the run exercised creates and deletes");
    let failed = engine.state.failed(Some("entries")).unwrap();
    assert!(failed.is_empty(), "{failed:?}");
}
