//! Time entries per second between the desktop timesheet and a real Redmine,
//! through synchost (the bundled `desktop-timesheet` and `redmine` plugins,
//! the `entries` pipeline of `examples/timesheet`, all state kept), against a
//! plain HTTP loop doing the same work with `reqwest` and `rusqlite` in the
//! same process: POST each entry, or page the project's entries and insert
//! them. The ratio is synchost's overhead over Redmine's own speed.
//!
//! Needs a running Redmine (`scripts/redmine start`).
//! Run: `cargo bench -p synchost-tests --bench redmine`
//! (`SYNCHOST_BENCH_ENTRIES=1000` for more entries; default 300).

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Value};
use synchost::engine::{Engine, Mode};
use synchost_tests::redmine::{unique, Redmine};
use synchost_tests::Scene;

/// Where Debian's Redmine logs each request (`Started GET ...`); used to
/// count the requests each side made, when readable.
const REDMINE_LOG: &str = "/var/log/redmine/default/production.log";

const DESKTOP_SCHEMA: &str = include_str!("../../plugins/desktop-timesheet/src/schema.sql");

/// Requests Redmine has logged so far (None when its log is not readable).
fn requests_logged() -> Option<usize> {
    let log = std::fs::read(REDMINE_LOG).ok()?;
    Some(log.windows(9).filter(|w| w == b"] Started").count())
}

struct Phase {
    seconds: f64,
    requests: Option<usize>,
}

async fn measure<F: std::future::Future<Output = ()>>(work: F) -> Phase {
    let before = requests_logged();
    let started = Instant::now();
    work.await;
    let seconds = started.elapsed().as_secs_f64();
    let requests = before.zip(requests_logged()).map(|(before, after)| after - before);
    Phase { seconds, requests }
}

/// A desktop database with its master data and projects synced from Redmine.
async fn desktop_for(redmine: &Redmine, project: &str, batch_size: u32) -> (Scene, Engine) {
    let scene = Scene::new();
    scene.database("desktop.sqlite", "");
    let engine = scene.engine(&redmine.timesheet_config(&redmine.url, &redmine.key, project, batch_size));
    for pipeline in ["users", "activities", "projects"] {
        let report = engine.run(pipeline, "bench", Mode::Apply).await.unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        assert_eq!(report.counts.failed, 0, "{pipeline}: {:?}", report.plan);
    }
    (scene, engine)
}

async fn run_entries(engine: &Engine) -> synchost::engine::RunReport {
    engine.run("entries", "bench", Mode::Apply).await.unwrap_or_else(|e| panic!("entries: {e}"))
}

/// The baseline out: each desktop row POSTed as a Redmine time entry, the
/// answer (with the new id) read.
async fn post_each(client: &reqwest::Client, redmine: &Redmine, desktop: &rusqlite::Connection, project: i64, ids: &Ids) -> usize {
    let rows: Vec<(String, f64, String)> = desktop
        .prepare("SELECT work_date, hours, comment FROM timesheet_entries WHERE status = 'active' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (spent_on, hours, comments) in &rows {
        let body = json!({"time_entry": {"project_id": project, "user_id": ids.user, "activity_id": ids.activity, "spent_on": spent_on, "hours": hours, "comments": comments}});
        let response = client.post(format!("{}/time_entries.json", redmine.url)).header("X-Redmine-API-Key", &redmine.key).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        // The new entry's id is what a sync keeps to link it: read the answer.
        let created: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{created}");
        assert!(created["time_entry"]["id"].is_i64(), "{created}");
    }
    rows.len()
}

/// The baseline for updates: a PUT of new hours for each entry.
async fn put_each(client: &reqwest::Client, redmine: &Redmine, ids: &[i64]) -> usize {
    for id in ids {
        let body = json!({"time_entry": {"hours": 1.5}});
        let response = client.put(format!("{}/time_entries/{id}.json", redmine.url)).header("X-Redmine-API-Key", &redmine.key).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        assert!((200..300).contains(&status), "{status}: {}", response.text().await.unwrap_or_default());
    }
    ids.len()
}

/// The baseline in: the project's time entries paged and inserted into a
/// desktop database, their references looked up by Redmine id.
async fn page_and_insert(client: &reqwest::Client, redmine: &Redmine, project: &str, desktop: &mut rusqlite::Connection, ids: &DesktopIds) -> usize {
    let mut offset = 0;
    let mut copied = 0;
    loop {
        let page: Value = client
            .get(format!("{}/projects/{project}/time_entries.json?limit=100&offset={offset}", redmine.url))
            .header("X-Redmine-API-Key", &redmine.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = page["time_entries"].as_array().cloned().unwrap_or_default();
        let transaction = desktop.transaction().unwrap();
        for entry in &entries {
            transaction
                .prepare_cached(
                    "INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours, comment, sync_origin)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .unwrap()
                .execute(rusqlite::params![
                    ids.users[&entry["user"]["id"].as_i64().unwrap()],
                    ids.project,
                    ids.activities[&entry["activity"]["id"].as_i64().unwrap()],
                    entry["spent_on"].as_str(),
                    entry["hours"].as_f64(),
                    entry["comments"].as_str(),
                    entry["id"].to_string(),
                ])
                .unwrap();
        }
        transaction.commit().unwrap();
        copied += entries.len();
        offset += entries.len();
        if entries.is_empty() || offset as u64 >= page["total_count"].as_u64().unwrap_or(0) {
            return copied;
        }
    }
}

/// Redmine ids the desktop -> Redmine baseline sends.
struct Ids {
    user: i64,
    activity: i64,
}

/// Desktop ids the Redmine -> desktop baseline writes.
struct DesktopIds {
    project: i64,
    users: HashMap<i64, i64>,
    activities: HashMap<i64, i64>,
}

fn report(label: &str, entries: usize, phase: &Phase) {
    let requests = phase.requests.map(|r| format!(", {r} requests ({:.1} per entry)", r as f64 / entries as f64)).unwrap_or_default();
    println!("{label}: {entries} entries in {:.2} s, {:.1} entries/s{requests}", phase.seconds, entries as f64 / phase.seconds);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let entries: usize = std::env::var("SYNCHOST_BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let redmine = Redmine::connect().await;
    let client = reqwest::Client::new();
    let development = redmine.activity("Development").await;
    let admin = redmine.get("/users/current.json").await["user"]["id"].as_i64().unwrap();
    // One project each side writes into, so neither reads the other's entries.
    let (_, synced) = redmine.project(&unique("Bench synchost"), None).await;
    let (plain_id, plain) = redmine.project(&unique("Bench plain"), None).await;

    // Desktop -> Redmine: N entries made on the desktop.
    let (scene, engine) = desktop_for(&redmine, &synced, 500).await;
    scene.sql(
        "desktop.sqlite",
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {entries})
             INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours, comment)
             SELECT (SELECT id FROM users WHERE login = 'admin'), (SELECT id FROM projects WHERE code = '{synced}'),
                    (SELECT id FROM activities WHERE name = 'Development'), printf('2026-10-%02d', 1 + i % 28), 0.25 * (1 + i % 16), 'entry ' || i
             FROM n;"
        ),
    );
    let mut pushed = None;
    let push = measure(async { pushed = Some(run_entries(&engine).await) }).await;
    let pushed = pushed.unwrap();
    assert_eq!((pushed.counts.created, pushed.counts.failed), (entries as u64, 0), "{:?}", pushed.plan);

    let desktop = rusqlite::Connection::open(scene.path("desktop.sqlite")).unwrap();
    let ids = Ids { user: admin, activity: development };
    let mut posted = 0;
    let post = measure(async { posted = post_each(&client, &redmine, &desktop, plain_id, &ids).await }).await;
    assert_eq!(posted, entries);

    // Desktop -> Redmine, updates: every entry's hours changed on the desktop.
    scene.sql("desktop.sqlite", "UPDATE timesheet_entries SET hours = hours + 0.5");
    let mut changed = None;
    let change = measure(async { changed = Some(run_entries(&engine).await) }).await;
    let changed = changed.unwrap();
    assert_eq!((changed.counts.updated, changed.counts.failed), (entries as u64, 0), "{:?}", changed.plan);
    let plain_ids: Vec<i64> = redmine.time_entries(&plain).await.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let mut put = 0;
    let put_phase = measure(async { put = put_each(&client, &redmine, &plain_ids).await }).await;
    assert_eq!(put, entries);

    let idle = measure(async {
        let report = run_entries(&engine).await;
        assert_eq!(report.counts.created + report.counts.updated, 0, "{:?}", report.plan);
    })
    .await;

    // Redmine -> desktop: the N entries the plain loop posted, into a new desktop.
    let (pull_scene, pull_engine) = desktop_for(&redmine, &plain, 500).await;
    let mut pulled = None;
    let pull = measure(async { pulled = Some(run_entries(&pull_engine).await) }).await;
    let pulled = pulled.unwrap();
    assert_eq!((pulled.counts.created, pulled.counts.failed), (entries as u64, 0), "{:?}", pulled.plan);
    let on_desktop: i64 = pull_scene.query_one("desktop.sqlite", "SELECT count(*) FROM timesheet_entries");
    assert_eq!(on_desktop, entries as i64);

    // The plain loop reads the N entries synchost posted, into a desktop of its own.
    let mut plain_desktop = rusqlite::Connection::open(pull_scene.path("plain.sqlite")).unwrap();
    plain_desktop.execute_batch(DESKTOP_SCHEMA).unwrap();
    plain_desktop
        .execute_batch(&format!(
            "INSERT INTO users (login) VALUES ('admin'); INSERT INTO activities (name) VALUES ('Development');
             INSERT INTO projects (name, code) VALUES ('bench', '{synced}');"
        ))
        .unwrap();
    let desktop_ids = DesktopIds { project: 1, users: HashMap::from([(admin, 1)]), activities: HashMap::from([(development, 1)]) };
    let mut copied = 0;
    let page = measure(async { copied = page_and_insert(&client, &redmine, &synced, &mut plain_desktop, &desktop_ids).await }).await;
    assert_eq!(copied, entries);

    println!("Redmine at {}, {entries} time entries each way", redmine.url);
    report("desktop -> Redmine, synchost (entries pipeline)", entries, &push);
    report("desktop -> Redmine, plain loop (POST each)", entries, &post);
    println!("ratio synchost / plain: {:.2}x the time", push.seconds / post.seconds);
    report("desktop -> Redmine updates, synchost (entries pipeline)", entries, &change);
    report("desktop -> Redmine updates, plain loop (PUT each)", entries, &put_phase);
    println!("ratio synchost / plain: {:.2}x the time", change.seconds / put_phase.seconds);
    report("Redmine -> desktop, synchost (entries pipeline)", entries, &pull);
    report("Redmine -> desktop, plain loop (page + insert)", entries, &page);
    println!("ratio synchost / plain: {:.2}x the time", pull.seconds / page.seconds);
    println!(
        "synchost run with nothing changed ({entries} linked entries): {:.0} ms{}",
        idle.seconds * 1000.0,
        idle.requests.map(|r| format!(", {r} requests")).unwrap_or_default()
    );

    for project in [synced, plain] {
        redmine.delete(&format!("/projects/{project}.json")).await;
    }
}
