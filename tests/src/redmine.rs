//! A real Redmine for the tests: found through `SYNCHOST_REDMINE_URL` and
//! `SYNCHOST_REDMINE_API_KEY`, or the file `scripts/redmine start` writes.
//! Tests make their own projects and users through the REST API (with unique
//! names), so they neither depend on nor disturb each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

/// A Redmine server and its administrator's API key.
#[derive(Clone)]
pub struct Redmine {
    pub url: String,
    pub key: String,
    client: reqwest::Client,
    /// Redmine on SQLite serves one writer at a time and answers 500 to the
    /// rest: the tests take turns, each holding this while it runs.
    _turn: std::sync::Arc<tokio::sync::OwnedMutexGuard<()>>,
}

fn turns() -> std::sync::Arc<tokio::sync::Mutex<()>> {
    static TURNS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    TURNS.get_or_init(Default::default).clone()
}

fn settings_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/redmine-server.env")
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{}-{}", std::process::id(), nanos % 1_000_000_000, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A day no other test (or recent run) logs time on: Redmine refuses more
/// than 999 hours for one user on one day, and a test Redmine keeps what
/// earlier runs logged.
pub fn unique_day() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let days = (seconds / 7 + u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)) * 13) % 3650;
    time_from_days(days as i64)
}

/// `YYYY-MM-DD`, `days` after 2020-01-01.
fn time_from_days(days: i64) -> String {
    let mut date = (2020i64, 1u32, 1u32);
    for _ in 0..days {
        let (y, m, d) = date;
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let length = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(m - 1) as usize];
        date = if d < length { (y, m, d + 1) } else if m < 12 { (y, m + 1, 1) } else { (y + 1, 1, 1) };
    }
    format!("{:04}-{:02}-{:02}", date.0, date.1, date.2)
}

impl Redmine {
    /// The test Redmine; panics with instructions when there is none.
    pub async fn connect() -> Redmine {
        let from_file = std::fs::read_to_string(settings_file()).unwrap_or_default();
        let setting = |name: &str| {
            std::env::var(name).ok().or_else(|| {
                from_file.lines().find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_owned))
            })
        };
        let (Some(url), Some(key)) = (setting("SYNCHOST_REDMINE_URL"), setting("SYNCHOST_REDMINE_API_KEY")) else {
            panic!(
                "this test needs a running Redmine and none is configured: run `scripts/redmine start` \
                 (installs Redmine from Debian packages and starts it on 127.0.0.1:3300), \
                 or set SYNCHOST_REDMINE_URL and SYNCHOST_REDMINE_API_KEY"
            );
        };
        let turn = turns().lock_owned().await;
        let redmine = Redmine { url, key, client: reqwest::Client::new(), _turn: std::sync::Arc::new(turn) };
        if let Err(error) = redmine.client.get(format!("{}/users/current.json", redmine.url)).header("X-Redmine-API-Key", &redmine.key).send().await {
            panic!("this test needs a running Redmine at {}, which does not answer ({error}): run `scripts/redmine start`", redmine.url);
        }
        redmine
    }

    /// The origin to grant in `[endpoints.NAME.grants.http] allow`.
    pub fn origin(&self) -> String {
        self.url.clone()
    }

    pub async fn request(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.url)).header("X-Redmine-API-Key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("Redmine request {path} failed: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (mut status, mut json) = self.request(method, path, &self.key, body.clone()).await;
        // Redmine on SQLite answers 500 while another server holds the
        // database lock (or just died holding it): reads are tried again.
        for _ in 0..20 {
            if status < 500 || method != "GET" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            (status, json) = self.request(method, path, &self.key, body.clone()).await;
        }
        assert!((200..300).contains(&status), "{method} {path}: Redmine answered {status}: {json}");
        json
    }

    pub async fn get(&self, path: &str) -> Value {
        self.ok("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.ok("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) {
        self.ok("PUT", path, Some(body)).await;
    }

    pub async fn delete(&self, path: &str) {
        self.ok("DELETE", path, None).await;
    }

    /// A new project (with time tracking and issues); returns (id, identifier).
    pub async fn project(&self, name: &str, parent: Option<i64>) -> (i64, String) {
        let identifier = unique("t").to_lowercase();
        let created = self.post("/projects.json", json!({"project": {"name": name, "identifier": identifier, "parent_id": parent}})).await;
        (created["project"]["id"].as_i64().unwrap(), identifier)
    }

    /// A new user with a known password; returns (id, login, api key).
    pub async fn user(&self) -> (i64, String, String) {
        let login = unique("u");
        let created = self
            .post("/users.json", json!({"user": {"login": login, "firstname": "Test", "lastname": login, "mail": format!("{login}@example.test"), "password": "synchost-test-1"}}))
            .await;
        let id = created["user"]["id"].as_i64().unwrap();
        let (_, me) = self.request("GET", &format!("/users/{id}.json"), &self.key, None).await;
        let key = match me["user"]["api_key"].as_str() {
            Some(key) => key.to_owned(),
            None => {
                // Redmine makes a user's key on first use with its password.
                let response = self.client.get(format!("{}/my/api_key.json", self.url)).basic_auth(&login, Some("synchost-test-1")).send().await.unwrap();
                let json: Value = response.json().await.unwrap_or(Value::Null);
                json["api_key"]["value"].as_str().or(json["api_key"].as_str()).map(str::to_owned).unwrap_or_default()
            }
        };
        (id, login, key)
    }

    /// Makes a user a member of a project with the role of this name.
    pub async fn member(&self, project: i64, user: i64, role: &str) {
        let roles = self.get("/roles.json").await;
        let role_id = roles["roles"].as_array().unwrap().iter().find(|r| r["name"] == role).unwrap_or_else(|| panic!("Redmine has no role {role}"))["id"].clone();
        self.post(&format!("/projects/{project}/memberships.json"), json!({"membership": {"user_id": user, "role_ids": [role_id]}})).await;
    }

    /// The id of a time entry activity by name.
    pub async fn activity(&self, name: &str) -> i64 {
        let list = self.get("/enumerations/time_entry_activities.json").await;
        list["time_entry_activities"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("no activity {name}"))["id"].as_i64().unwrap()
    }

    /// All time entries of a project (and its subprojects), by id.
    pub async fn time_entries(&self, project: &str) -> Vec<Value> {
        let mut entries = Vec::new();
        loop {
            let page = self.get(&format!("/projects/{project}/time_entries.json?limit=100&offset={}", entries.len())).await;
            let batch = page["time_entries"].as_array().cloned().unwrap_or_default();
            let total = page["total_count"].as_u64().unwrap_or(0) as usize;
            let done = batch.is_empty();
            entries.extend(batch);
            if done || entries.len() >= total {
                break;
            }
        }
        entries.sort_by_key(|e| e["id"].as_i64());
        entries
    }

    /// The timesheet pipelines of `examples/timesheet` (desktop <-> Redmine),
    /// the Redmine endpoint at `url` with `key`, scoped to `project`.
    pub fn timesheet_config(&self, url: &str, key: &str, project: &str, entries_batch_size: u32) -> String {
        format!(
            r#"
[endpoints.desktop]
plugin = "desktop-timesheet"
grants.sql.db = {{ dsn = "sqlite:desktop.sqlite" }}
settings = {{ connection = "db" }}

[endpoints.redmine]
plugin = "redmine"
grants.http.allow = ["{origin}"]
limits.timeout = "120s"
settings = {{ url = "{url}", api_key = "{key}", project = "{project}", timeout_ms = 5000, origin_field = "synchost origin" }}

[pipelines.users]
category = "master data"
left = {{ endpoint = "desktop", entity = "users" }}
right = {{ endpoint = "redmine", entity = "users" }}
create = "right-to-left"
match_on = ["login"]
conflict = "right-wins"
fields = {{ login = {{ direction = "right-to-left" }}, last_name = {{ right = "lastname", direction = "right-to-left" }} }}

[pipelines.activities]
category = "master data"
left = {{ endpoint = "desktop", entity = "activities" }}
right = {{ endpoint = "redmine", entity = "activities" }}
create = "right-to-left"
match_on = ["name"]
conflict = "right-wins"
fields = {{ name = {{ direction = "right-to-left" }} }}

[pipelines.projects]
category = "projects"
left = {{ endpoint = "desktop", entity = "projects" }}
right = {{ endpoint = "redmine", entity = "projects" }}
match_on = ["name"]
conflict = "last-writer-wins"
fields = {{ name = {{}}, description = {{}}, code = {{ right = "identifier", direction = "right-to-left" }} }}

[pipelines.tasks]
category = "projects"
left = {{ endpoint = "desktop", entity = "tasks" }}
right = {{ endpoint = "redmine", entity = "issues" }}
conflict = "last-writer-wins"
deletes = "hard"
fields = {{ project_id = {{ references = "projects" }}, name = {{ right = "subject" }} }}

[pipelines.entries]
category = "timesheets"
left = {{ endpoint = "desktop", entity = "entries" }}
right = {{ endpoint = "redmine", entity = "time_entries" }}
conflict = "last-writer-wins"
deletes = "hard"
batch_size = {entries_batch_size}
required = ["project_id", "activity_id", "work_date", "hours"]

[pipelines.entries.fields]
user_id = {{ references = "users" }}
project_id = {{ references = "projects" }}
task_id = {{ right = "issue_id", references = "tasks" }}
activity_id = {{ references = "activities" }}
work_date = {{ right = "spent_on" }}
hours = {{}}
comment = {{ right = "comments" }}
"#,
            origin = self.origin()
        )
    }
}

/// A fresh desktop database beside this Redmine, with the timesheet config
/// (`timesheet_config`) and its master data (users, activities, projects)
/// synced: what a test of time entries starts from.
pub struct Timesheets {
    pub scene: crate::Scene,
    pub config: String,
    pub engine: synchost::engine::Engine,
}

impl Redmine {
    pub async fn timesheets(&self, url: &str, project: &str, entries_batch_size: u32) -> Timesheets {
        Self::timesheets_from(self.timesheet_config(url, &self.key, project, entries_batch_size)).await
    }

    /// The same from a config of the test's own (say, `timesheet_config` changed).
    pub async fn timesheets_from(config: String) -> Timesheets {
        let scene = crate::Scene::new();
        scene.database("desktop.sqlite", "");
        let engine = scene.engine(&config);
        for pipeline in ["users", "activities", "projects"] {
            engine.run(pipeline, "test", synchost::engine::Mode::Apply).await.unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        }
        Timesheets { scene, config, engine }
    }
}

impl Timesheets {
    /// `count` new desktop entries of the admin in the first project, of
    /// `hours` each on `date`, with the comments `PREFIX 1` .. `PREFIX count`.
    pub fn add_entries(&self, count: u32, prefix: &str, date: &str, hours: f64) {
        self.scene.sql(
            "desktop.sqlite",
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
                 INSERT INTO timesheet_entries (user_id, project_id, activity_id, work_date, hours, comment)
                 SELECT (SELECT id FROM users WHERE login = 'admin'), (SELECT min(id) FROM projects), (SELECT min(id) FROM activities), '{date}', {hours}, '{prefix} ' || i FROM n;"
            ),
        );
    }
}
