//! The admin HTTP API of a real `synchost run`: tokens, each role's allowed
//! and refused actions, actions carried out by the running pipelines,
//! metrics that move as a sync runs, and the OpenAPI document up to date.

mod common;

use std::time::Duration;

use common::{table_endpoint, Host};
use serde_json::{json, Value};

const OPENAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/admin-api.openapi.json");

fn config() -> String {
    format!(
        r#"
[host.admin]
listen = "127.0.0.1:0"
{}{}
[pipelines.p]
left = {{ endpoint = "hq", entity = "contacts" }}
right = {{ endpoint = "branch", entity = "contacts" }}
schedule = "1h"
fields = {{ name = {{}}, phone = {{}} }}
approval = {{ direction = "left-to-right" }}
"#,
        table_endpoint("hq", "sql-table", "sqlite:hq.sqlite"),
        table_endpoint("branch", "sql-table", "sqlite:branch.sqlite"),
    )
}

struct Api {
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.runtime.block_on(async {
            let mut request = self.client.request(method.parse().unwrap(), format!("{}{path}", self.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.header("content-type", "application/json").body(body.to_string());
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }
}

fn token(host: &Host, user: &str, role: &str, pipelines: &[&str]) -> String {
    let mut args = vec!["users", "add", user, "--role", role];
    for pipeline in pipelines {
        args.extend(["--pipeline", pipeline]);
    }
    let (ok, text) = host.synchost(&args);
    assert!(ok, "{text}");
    let (ok, text) = host.synchost(&["tokens", "create", user, "--label", "test"]);
    assert!(ok, "{text}");
    text.lines().find(|l| l.starts_with("synchost_")).unwrap_or_else(|| panic!("no token in: {text}")).to_owned()
}

fn start(host: &mut Host) -> Api {
    host.start();
    let address = host.path("synchost-data/admin.address");
    host.wait_for("the admin API's address", Duration::from_secs(60), || address.exists());
    let base = format!("http://{}", std::fs::read_to_string(&address).unwrap().trim());
    let api = Api { base, client: reqwest::Client::new(), runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap() };
    host.wait_for("/readyz", Duration::from_secs(60), || api.call("GET", "/readyz", None, None).0 == 200);
    api
}

fn approvals(api: &Api, token: &str) -> Vec<Value> {
    api.call("GET", "/api/v1/approvals", Some(token), None).1.as_array().cloned().unwrap_or_default()
}

// Covers: T2, C10, P2
#[test]
fn each_role_does_what_it_may_through_the_running_host_and_nothing_else() {
    let mut host = Host::new(3);
    std::fs::write(host.path("synchost.toml"), config()).unwrap();
    let viewer = token(&host, "vera", "viewer", &[]);
    let operator = token(&host, "otto", "operator", &[]);
    let approver = token(&host, "alan", "approver", &["p"]);
    let other_approver = token(&host, "olga", "approver", &["elsewhere"]);
    let admin = token(&host, "root", "admin", &[]);
    let api = start(&mut host);

    // Who may come in.
    assert_eq!(api.call("GET", "/healthz", None, None).0, 200);
    let (status, body) = api.call("GET", "/api/v1/status", None, None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["error"]["fix"].as_str().unwrap().contains("synchost tokens create"), "{body}");
    assert_eq!(api.call("GET", "/api/v1/status", Some("synchost_0000"), None).0, 401);
    let (status, me) = api.call("GET", "/api/v1/me", Some(&approver), None);
    assert_eq!((status, me["name"].as_str(), me["role"].as_str()), (200, Some("alan"), Some("approver")));

    // A viewer reads, and may not act.
    let (status, view) = api.call("GET", "/api/v1/status", Some(&viewer), None);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["pipelines"][0]["pipeline"], "p");
    assert_eq!(view["scheduler"]["running"], true);
    let (status, body) = api.call("POST", "/api/v1/pipelines/p/pause", Some(&viewer), None);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("user `vera` (viewer) may not operate"), "{body}");

    // The first run parked the three creates for approval.
    host.wait_for("three changes waiting", Duration::from_secs(30), || approvals(&api, &viewer).len() == 3);
    let waiting = approvals(&api, &viewer);
    let id = |n: usize| waiting[n]["id"].as_i64().unwrap();

    // An approver of another pipeline, and an operator, may not decide.
    assert_eq!(api.call("POST", &format!("/api/v1/approvals/{}/approve", id(0)), Some(&other_approver), None).0, 403);
    assert_eq!(api.call("POST", &format!("/api/v1/approvals/{}/approve", id(0)), Some(&operator), None).0, 403);
    // The approver decides; the running host carries it out at once.
    let (status, body) = api.call("POST", &format!("/api/v1/approvals/{}/approve", id(0)), Some(&approver), Some(json!({ "comment": "fine" })));
    assert_eq!(status, 200, "{body}");
    let (status, body) = api.call("POST", &format!("/api/v1/approvals/{}/reject", id(1)), Some(&approver), None);
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("comment-required")), "{body}");
    let (status, body) = api.call("POST", &format!("/api/v1/approvals/{}/reject", id(1)), Some(&approver), Some(json!({ "comment": "not this one" })));
    assert_eq!(status, 200, "{body}");
    host.wait_for("the approved create written", Duration::from_secs(30), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 1);
    let (_, decided) = api.call("GET", &format!("/api/v1/approvals/{}", id(1)), Some(&viewer), None);
    assert_eq!((decided["status"].as_str(), decided["decided_by"].as_str(), decided["comment"].as_str()), (Some("rejected"), Some("alan"), Some("not this one")), "{decided}");

    // The operator pauses, cannot sync a paused pipeline, resumes, syncs now.
    let (status, body) = api.call("POST", "/api/v1/pipelines/p/pause", Some(&operator), None);
    assert_eq!(status, 200, "{body}");
    let (_, view) = api.call("GET", "/api/v1/status", Some(&viewer), None);
    assert_eq!(view["pipelines"][0]["state"], "paused");
    assert!(view["pipelines"][0]["summary"].as_str().unwrap().contains("paused by otto"), "{view}");
    assert_eq!(api.call("POST", "/api/v1/pipelines/p/sync", Some(&operator), None).0, 409);
    assert_eq!(api.call("POST", "/api/v1/pipelines/p/resume", Some(&operator), None).0, 200);
    let runs_before = api.call("GET", "/api/v1/pipelines/p/runs", Some(&viewer), None).1.as_array().unwrap().len();
    host.db("hq.sqlite").execute("UPDATE contacts SET phone = '030 999', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 3", []).unwrap();
    let (status, body) = api.call("POST", "/api/v1/pipelines/p/sync", Some(&operator), None);
    assert_eq!(status, 202, "{body}");
    host.wait_for("a run asked for through the API", Duration::from_secs(30), || {
        api.call("GET", "/api/v1/pipelines/p/runs", Some(&viewer), None).1.as_array().unwrap().len() > runs_before
    });
    assert_eq!(api.call("GET", "/api/v1/pipelines/p/nothing", Some(&viewer), None).0, 404);
    let (status, body) = api.call("GET", "/api/v1/pipelines/q/runs", Some(&viewer), None);
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not-found")), "{body}");

    // Revoked: refused from the next request on.
    let (ok, list) = host.synchost(&["tokens", "list"]);
    assert!(ok && list.contains("otto") && !list.contains(&operator), "tokens are never listed: {list}");
    let otto_id = list.lines().find(|l| l.contains("otto")).unwrap().split_whitespace().next().unwrap().to_owned();
    let (ok, text) = host.synchost(&["tokens", "revoke", &otto_id]);
    assert!(ok, "{text}");
    assert_eq!(api.call("POST", "/api/v1/pipelines/p/pause", Some(&operator), None).0, 401);

    // Only an admin reloads; the outcome is in the reloads.
    assert_eq!(api.call("POST", "/api/v1/reload", Some(&approver), None).0, 403);
    let reloads_before = host.last_reload_id();
    assert_eq!(api.call("POST", "/api/v1/reload", Some(&admin), None).0, 202);
    let (_, outcome, _, _) = host.next_reload(reloads_before, Duration::from_secs(30));
    assert_eq!(outcome, "unchanged");

    // Every writing action is in the event log with who did it.
    let (_, events) = api.call("GET", "/api/v1/events", Some(&viewer), None);
    let messages: Vec<&str> = events.as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
    for expected in ["p paused by otto", "p resumed by otto", "sync of p asked for by otto", "reload asked for by root"] {
        assert!(messages.contains(&expected), "`{expected}` in {messages:?}");
    }
    host.stop();
}

// Covers: C10
#[test]
fn metrics_move_as_a_sync_runs_and_parse_as_prometheus_text() {
    let mut host = Host::new(4);
    std::fs::write(host.path("synchost.toml"), config().replace("approval = { direction = \"left-to-right\" }\n", "")).unwrap();
    let viewer = token(&host, "vera", "viewer", &[]);
    let api = start(&mut host);
    host.wait_for("the first run", Duration::from_secs(30), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 4);
    let sample = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        let (status, body) = api.call("GET", "/metrics", Some(&viewer), None);
        assert_eq!(status, 200, "{body}");
        let text = body.as_str().unwrap().to_owned();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("{e}: {text}"));
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    host.wait_for("the run counted", Duration::from_secs(10), || {
        sample("synchost_records_written_total", &[("pipeline", "p"), ("action", "created")]) == Some(4.0)
    });
    assert_eq!(sample("synchost_pipeline_healthy", &[("pipeline", "p")]), Some(1.0));
    assert_eq!(sample("synchost_ready", &[]), Some(1.0));
    assert!(sample("synchost_plugin_calls_total", &[("plugin", "sql-table"), ("function", "write")]).unwrap() >= 1.0);
    assert!(sample("synchost_state_bytes", &[]).unwrap() > 0.0);
    let runs = sample("synchost_runs_total", &[("pipeline", "p"), ("outcome", "ok")]).unwrap();
    assert_eq!(api.call("POST", "/api/v1/pipelines/p/sync", Some(&viewer), None).0, 403);
    let admin = token(&host, "root", "admin", &[]);
    host.db("hq.sqlite").execute("INSERT INTO contacts (name, phone) VALUES ('new', '1')", []).unwrap();
    assert_eq!(api.call("POST", "/api/v1/pipelines/p/sync", Some(&admin), None).0, 202);
    host.wait_for("the counters moved", Duration::from_secs(30), || {
        sample("synchost_records_written_total", &[("pipeline", "p"), ("action", "created")]) == Some(5.0)
    });
    assert!(sample("synchost_runs_total", &[("pipeline", "p"), ("outcome", "ok")]).unwrap() > runs);
    assert_eq!(api.call("GET", "/metrics", None, None).0, 401, "metrics need a token");
    host.stop();
}

// Covers: T2
#[test]
fn the_openapi_document_is_served_checked_in_and_names_every_route() {
    let mut host = Host::new(0);
    std::fs::write(host.path("synchost.toml"), config()).unwrap();
    let admin = token(&host, "root", "admin", &[]);
    let api = start(&mut host);
    let (status, served) = api.call("GET", "/api/v1/openapi.json", Some(&admin), None);
    assert_eq!(status, 200);
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(OPENAPI).unwrap()).unwrap();
    assert_eq!(served, checked_in, "schemas/admin-api.openapi.json is out of date: `synchost schema admin-api > schemas/admin-api.openapi.json`");
    assert_eq!(served["openapi"], "3.1.0");
    // Each documented route is served (the router's own 404 and 405 have no JSON body).
    for (path, operations) in served["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            if path.ends_with("/stream") || path.ends_with("/reload") {
                continue;
            }
            let concrete = path.replace("{pipeline}", "p").replace("{id}", "1");
            let (status, body) = api.call(&method.to_uppercase(), &concrete, Some(&admin), Some(json!({ "comment": "x" })));
            let routed = !matches!(status, 404 | 405) || body.get("error").is_some();
            assert!(routed, "{method} {path}: {status} {body}");
        }
    }
    host.stop();
}

// Covers: T2, P2
#[test]
fn the_command_line_acts_through_the_running_host() {
    let mut host = Host::new(2);
    std::fs::write(host.path("synchost.toml"), config()).unwrap();
    let viewer = token(&host, "vera", "viewer", &[]);
    let api = start(&mut host);
    // The host's own token is for the data folder's owner only.
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(host.path("synchost-data/admin.token")).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "admin.token is readable by its owner only");

    host.wait_for("two changes waiting", Duration::from_secs(30), || approvals(&api, &viewer).len() == 2);
    let first = approvals(&api, &viewer)[0]["id"].as_i64().unwrap().to_string();
    let (ok, text) = host.synchost(&["approvals", "approve", &first, "--by", "ada"]);
    assert!(ok && text.contains(&format!("approval {first} approved by ada (command line)")), "{text}");
    host.wait_for("the approved create written", Duration::from_secs(30), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 1);

    // A sync asked for on the command line is run by the host, and waited for.
    host.db("hq.sqlite").execute("INSERT INTO contacts (name, phone) VALUES ('third', '3')", []).unwrap();
    let (ok, text) = host.synchost(&["sync", "p"]);
    assert!(ok && text.contains("by the running host") && text.contains("1 waiting for approval"), "{text}");

    // Verbose tracing of one pipeline, on and off, without a restart (P12).
    assert!(!host.log().contains("Read a page"), "debug lines only when asked for");
    let (ok, text) = host.synchost(&["trace", "p", "--minutes", "5"]);
    assert!(ok && text.contains("p traced verbosely for 5 minute(s)"), "{text}");
    let (ok, text) = host.synchost(&["sync", "p"]);
    assert!(ok, "{text}");
    assert!(host.log().contains("Read a page"), "{}", host.log());
    let (ok, text) = host.synchost(&["trace", "p", "--minutes", "0"]);
    assert!(ok && text.contains("verbose tracing of p stopped"), "{text}");
    let traced = host.log().matches("Read a page").count();
    let (ok, text) = host.synchost(&["sync", "p"]);
    assert!(ok, "{text}");
    assert_eq!(host.log().matches("Read a page").count(), traced, "tracing stopped");

    let (ok, text) = host.synchost(&["pause", "p", "--by", "ada"]);
    assert!(ok && text.contains("p paused by ada (command line)"), "{text}");
    let (ok, text) = host.synchost(&["sync", "p"]);
    assert!(!ok && text.contains("p is paused") && text.contains("resume it first"), "{text}");
    let (ok, text) = host.synchost(&["resume", "p"]);
    assert!(ok && text.contains("p resumed by"), "{text}");

    // A conflict resolved on the command line, carried out by the host between runs.
    host.db("hq.sqlite").execute("UPDATE contacts SET phone = 'hq', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1", []).unwrap();
    host.db("branch.sqlite").execute("UPDATE contacts SET phone = 'branch', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", []).unwrap();
    let (ok, text) = host.synchost(&["sync", "p"]);
    assert!(ok, "{text}");
    let (_, conflicts) = api.call("GET", "/api/v1/conflicts", Some(&viewer), None);
    let conflict = conflicts[0]["id"].as_i64().unwrap_or_else(|| panic!("a conflict: {conflicts}")).to_string();
    let (ok, text) = host.synchost(&["conflicts", "resolve", &conflict, "--take", "right", "--by", "ada"]);
    assert!(ok && text.contains("by the running host"), "{text}");
    let (_, resolved) = api.call("GET", "/api/v1/conflicts?all=true", Some(&viewer), None);
    assert_eq!(resolved[0]["resolved_by"], "ada (command line)", "{resolved}");
    host.stop();
}

// Covers: T2, T3, T4, T6, C10
#[test]
fn doctor_names_what_stops_syncing_and_the_fix() {
    let mut host = Host::new(2);
    std::fs::write(host.path("synchost.toml"), config().replace("approval = { direction = \"left-to-right\" }\n", "required = [\"phone\"]\n")).unwrap();
    host.db("hq.sqlite").execute("INSERT INTO contacts (name, phone) VALUES ('no phone', NULL)", []).unwrap();
    // Not running: nothing syncs, and doctor says so first.
    let (ok, text) = host.synchost(&["doctor"]);
    assert!(!ok && text.contains("FAIL  scheduler            never started: nothing syncs") && text.contains("fix: start it: `synchost run`"), "{text}");
    assert!(text.contains("FAIL  p                    has never run"), "{text}");

    let api = start(&mut host);
    let viewer = token(&host, "vera", "viewer", &[]);
    host.wait_for("the first run", Duration::from_secs(30), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 2);
    // Part of the data does not sync: the item, its reason and its countermeasure (case 1).
    let (ok, text) = host.synchost(&["doctor"]);
    assert!(!ok, "{text}");
    assert!(text.contains("ok    scheduler            running"), "{text}");
    assert!(text.contains("FAIL  p                    failed left record 3: phone: `phone` is required by pipeline `p` but empty"), "{text}");
    assert!(text.contains("fix: fill in `phone` on the left side"), "{text}");

    // Paused by a person: never silently off (case 2).
    let (ok, _) = host.synchost(&["pause", "p", "--by", "ada"]);
    assert!(ok);
    let (_, text) = host.synchost(&["doctor"]);
    assert!(text.contains("paused by ada") && text.contains("nothing pauses a pipeline by itself") && text.contains("`synchost resume p`"), "{text}");
    let (ok, _) = host.synchost(&["resume", "p"]);
    assert!(ok);

    // The connection settings replaced with ones that do not work (case 3): the
    // reload is refused naming the endpoint, the host runs on, doctor says both.
    let reloads = host.last_reload_id();
    let broken = std::fs::read_to_string(host.path("synchost.toml")).unwrap().replace("sqlite:branch.sqlite", "sqlite:moved/branch.sqlite");
    host.save("synchost.toml", broken.as_bytes());
    let (_, outcome, summary, _) = host.next_reload(reloads, Duration::from_secs(30));
    assert_eq!(outcome, "rejected", "{summary}");
    let (ok, text) = host.synchost(&["doctor"]);
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL  branch sql:db") && text.contains("moved/branch.sqlite") && text.contains("fix: check the dsn in [endpoints.branch.grants.sql.db]"), "{text}");
    assert!(text.contains("FAIL  config") && text.contains("and refused") && text.contains("the host still runs revision"), "{text}");
    let (status, _) = api.call("GET", "/api/v1/status", Some(&viewer), None);
    assert_eq!(status, 200, "the host keeps serving");
    host.stop();
}

// Covers: L2, L4, L5
#[test]
fn scope_locks_and_undo_through_the_api_check_who_may() {
    let mut host = Host::new(3);
    let config = config().replace("approval = { direction = \"left-to-right\" }\n", "") + "\n[scopes.s]\npipelines = [\"p\"]\nauto_lock = false\n";
    std::fs::write(host.path("synchost.toml"), config).unwrap();
    let viewer = token(&host, "vera", "viewer", &[]);
    let holder = token(&host, "otto", "operator", &[]);
    let other = token(&host, "pat", "operator", &[]);
    let admin = token(&host, "root", "admin", &[]);
    let api = start(&mut host);
    host.wait_for("the first run's creates", Duration::from_secs(30), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 3);

    // Undo belongs to the lock holder: nothing locked, an operator is refused.
    let (status, body) = api.call("POST", "/api/v1/runs/1/undo", Some(&holder), Some(json!({ "dry_run": true })));
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("nothing is locked"), "{body}");

    assert_eq!(api.call("POST", "/api/v1/scopes/s/lock", Some(&viewer), None).0, 403);
    let (status, body) = api.call("POST", "/api/v1/scopes/s/lock", Some(&holder), Some(json!({ "endpoint": "hq" })));
    assert_eq!(status, 200, "{body}");
    let (_, scopes) = api.call("GET", "/api/v1/scopes", Some(&viewer), None);
    assert_eq!(scopes[0]["lock"]["holder"], "otto", "{scopes}");
    let (_, view) = api.call("GET", "/api/v1/status", Some(&viewer), None);
    assert_eq!(view["pipelines"][0]["locked_by"]["holder"], "otto", "{view}");
    // Someone else cannot take it, nor force it open; the refusal is logged.
    let (status, body) = api.call("POST", "/api/v1/scopes/s/lock", Some(&other), None);
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("locked by otto"), "{body}");
    let (status, body) = api.call("POST", "/api/v1/scopes/s/unlock", Some(&other), None);
    assert_eq!(status, 403, "{body}");
    // The holder's dry run of an undo; another operator's is refused.
    let (status, plan) = api.call("POST", "/api/v1/runs/1/undo", Some(&holder), Some(json!({ "dry_run": true })));
    assert_eq!((status, plan["dry_run"].as_bool()), (200, Some(true)), "{plan}");
    assert_eq!(api.call("POST", "/api/v1/runs/1/undo", Some(&other), Some(json!({ "dry_run": true }))).0, 403);
    // An admin forces it open, with why.
    let (status, body) = api.call("POST", "/api/v1/scopes/s/unlock", Some(&admin), Some(json!({ "why": "otto is away" })));
    assert_eq!(status, 200, "{body}");
    let (_, log) = api.call("GET", "/api/v1/scopes/s/log", Some(&viewer), None);
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|l| l["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["forced-unlock", "refused", "lock"], "{log}");
    assert_eq!((log[0]["by"].as_str(), log[0]["why"].as_str()), (Some("root"), Some("otto is away")));
}
