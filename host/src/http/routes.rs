//! Every route of the admin API, with who may call it: the one list the
//! OpenAPI document (`schemas/admin-api.openapi.json`) is made from, and the
//! tests walk.

use crate::state::users::Permission;

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    /// In OpenAPI's and axum's form: `/api/v1/pipelines/{pipeline}/runs`.
    pub path: &'static str,
    /// What the caller must be allowed; `None`: no token needed.
    pub permission: Option<Permission>,
    pub summary: &'static str,
    /// Query parameters it reads.
    pub query: &'static [&'static str],
    /// The JSON body it takes, as `field: meaning` lines, if any.
    pub body: Option<&'static str>,
}

const fn route(method: &'static str, path: &'static str, permission: Option<Permission>, summary: &'static str) -> Route {
    Route { method, path, permission, summary, query: &[], body: None }
}

use Permission::{Administer, Approve, Operate, Read};

pub const ROUTES: &[Route] = &[
    route("get", "/", None, "The web dashboard (it signs in with a token)."),
    route("get", "/healthz", None, "The process answers."),
    route("get", "/readyz", None, "200 once every endpoint of every pipeline has been probed; 503 before."),
    route("get", "/metrics", Some(Read), "Metrics in the Prometheus text format."),
    route("get", "/api/v1/me", Some(Read), "The caller: user name, role, pipelines."),
    route("get", "/api/v1/status", Some(Read), "The scheduler, the config serving, and per pipeline its health, last run, queues and items needing a person."),
    Route { query: &["limit"], ..route("get", "/api/v1/pipelines/{pipeline}/runs", Some(Read), "A pipeline's runs, newest first.") },
    Route { query: &["record", "limit"], ..route("get", "/api/v1/pipelines/{pipeline}/history", Some(Read), "A pipeline's history, or one record's (`record=left:ID` or `right:ID`).") },
    Route { query: &["after", "limit"], ..route("get", "/api/v1/pipelines/{pipeline}/links", Some(Read), "A pipeline's links, a page at a time.") },
    route("post", "/api/v1/pipelines/{pipeline}/pause", Some(Operate), "Pause a pipeline; it runs again after `resume`."),
    route("post", "/api/v1/pipelines/{pipeline}/resume", Some(Operate), "Resume a paused pipeline."),
    route("post", "/api/v1/pipelines/{pipeline}/sync", Some(Operate), "Run a pipeline now (after the run in progress)."),
    route("post", "/api/v1/pipelines/{pipeline}/dry-run", Some(Operate), "What a run would do now, writing nothing."),
    Route {
        body: Some("minutes: how long (default 10, at most 1440; 0 stops)"),
        ..route("post", "/api/v1/pipelines/{pipeline}/trace", Some(Operate), "Log the pipeline's runs at debug level for a while, without a restart.")
    },
    Route { query: &["pipeline"], ..route("get", "/api/v1/failed", Some(Read), "Failed items, each with its reason and fix.") },
    Route {
        body: Some("ids: the failed items to retry (all of the pipeline's when absent)"),
        ..route("post", "/api/v1/pipelines/{pipeline}/failed/retry", Some(Operate), "Retry failed items now.")
    },
    Route { query: &["pipeline", "all"], ..route("get", "/api/v1/conflicts", Some(Read), "Open conflicts (`all=true`: resolved ones too).") },
    Route {
        body: Some("take: \"left\" or \"right\"; or value: the value to keep on both sides"),
        ..route("post", "/api/v1/conflicts/{id}/resolve", Some(Operate), "Resolve a conflict.")
    },
    Route { query: &["pipeline", "all"], ..route("get", "/api/v1/approvals", Some(Read), "Changes waiting for approval (`all=true`: decided ones too).") },
    route("get", "/api/v1/approvals/{id}", Some(Read), "One approval, with the values before and after."),
    Route { body: Some("comment: a note kept with the decision (optional)"), ..route("post", "/api/v1/approvals/{id}/approve", Some(Approve), "Approve a change; it is written on the pipeline's next run, started now.") },
    Route { body: Some("comment: why (required)"), ..route("post", "/api/v1/approvals/{id}/reject", Some(Approve), "Reject a change, with a comment.") },
    Route { query: &["since", "limit"], ..route("get", "/api/v1/events", Some(Read), "The event log, oldest first.") },
    route("get", "/api/v1/events/stream", Some(Read), "The event log as it grows (server-sent events)."),
    route("get", "/api/v1/identities", Some(Read), "What each endpoint is and which host runs the state, as recorded and now, with any mismatch and its fix."),
    Route {
        body: Some("endpoint: the endpoint to confirm; or host: true to confirm this host"),
        ..route("post", "/api/v1/identities/rebind", Some(Administer), "Confirm an endpoint's (or the host's) identity as it is now: the pipelines it stopped sync again.")
    },
    Route { query: &["limit"], ..route("get", "/api/v1/reloads", Some(Read), "Config loads and reloads with their outcomes.") },
    route("post", "/api/v1/reload", Some(Administer), "Reload the config now (as SIGHUP does)."),
    route("get", "/api/v1/packages", Some(Read), "Installed plugin packages."),
    route("get", "/api/v1/replicas", Some(Read), "Each replica: kind, the other host, this host's role, messages sent and received, changes kept for resending, the link, the last activity."),
    Route { query: &["limit"], ..route("get", "/api/v1/replicas/{name}/log", Some(Read), "A replica's activity log: exports, imports, acknowledgements, swaps, refusals with what to do.") },
    Route { body: Some("swap: true to give the sending role to the other host"), ..route("post", "/api/v1/replicas/{name}/export", Some(Operate), "Export a data-change message (every change not acknowledged) and send it on.") },
    route("post", "/api/v1/replicas/{name}/import", Some(Operate), "Import the other host's messages waiting (fetched first over FTP or HTTP); the replica's pipelines run at once."),
    route("post", "/api/v1/replicas/{name}/ack", Some(Operate), "Export an acknowledgement of every message received, and send it on."),
    route("post", "/api/v1/replicas/{name}/resend", Some(Operate), "Send every change not acknowledged again (also a lost role swap)."),
    Route { body: Some("through: the message number (default: the last one sent)"), ..route("post", "/api/v1/replicas/{name}/mark-received", Some(Operate), "A verbal acknowledgement: later messages hold only newer changes.") },
    route("get", "/api/v1/replicas/{name}/exchange", None, "The passive end of a replica's HTTP link: the messages waiting for the active host. Bearer: the link's password, not a user's token."),
    route("get", "/api/v1/replicas/{name}/exchange/{file}", None, "A message waiting for the active host (its bytes). Bearer: the link's password."),
    route("delete", "/api/v1/replicas/{name}/exchange/{file}", None, "Takes away a message the active host holds now. Bearer: the link's password."),
    route("put", "/api/v1/replicas/{name}/exchange/{file}", None, "A message of the active host (its bytes), kept whole or not at all. Bearer: the link's password."),
    route("get", "/api/v1/scopes", Some(Read), "Each lockable scope: its pipelines, editor, the lock (holder, since, last change, how taken) and the changes held back."),
    Route { query: &["limit"], ..route("get", "/api/v1/scopes/{scope}/log", Some(Read), "A scope's locks, releases, forced unlocks and refusals, with who and why, newest first.") },
    Route {
        body: Some("endpoint: the endpoint the caller edits through (default: the scope's editor's)"),
        ..route("post", "/api/v1/scopes/{scope}/lock", Some(Operate), "Lock a scope for the caller (open it for editing): others' changes to its plan data are held back until it is released.")
    },
    Route {
        body: Some("why: kept in the lock log (optional)"),
        ..route("post", "/api/v1/scopes/{scope}/unlock", Some(Operate), "Release a scope's lock: the holder's own, or forced by an admin or a user the scope's `unlock` names. Held changes go through at once.")
    },
    Route {
        body: Some("dry_run: true to only see what would change"),
        ..route("post", "/api/v1/runs/{run}/undo", Some(Operate), "Restore the values a run replaced, where nobody changed them since, and carry them to the other side. The holder of the scope's lock, or an admin.")
    },
    Route { body: Some("dry_run: true to only see what would change"), ..route("post", "/api/v1/runs/{run}/redo", Some(Operate), "Write an undone run's values again, where nobody changed them since the undo.") },
    route("get", "/api/v1/openapi.json", Some(Read), "This document."),
];

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi() -> serde_json::Value {
    let error = serde_json::json!({
        "description": "an error, with what to do about it",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    });
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let mut parameters: Vec<serde_json::Value> = route
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| serde_json::json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        parameters.extend(route.query.iter().map(|name| serde_json::json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } })));
        let who = match route.permission {
            None => "No token needed.".to_owned(),
            Some(Read) => "Any user.".to_owned(),
            Some(Operate) => "Roles operator and admin (an operator of some pipelines: on those).".to_owned(),
            Some(Approve) => "Roles approver and admin (an approver of some pipelines: on those).".to_owned(),
            Some(Administer) => "Role admin.".to_owned(),
        };
        let mut operation = serde_json::json!({
            "summary": route.summary,
            "description": who,
            "parameters": parameters,
            "responses": {
                "200": { "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } },
                "401": error, "403": error, "404": error,
            },
        });
        if route.permission.is_none() {
            operation["security"] = serde_json::json!([]);
        }
        if let Some(body) = route.body {
            operation["requestBody"] = serde_json::json!({
                "description": body,
                "content": { "application/json": { "schema": { "type": "object" } } },
            });
        }
        paths.entry(route.path).or_insert_with(|| serde_json::json!({}))[route.method] = operation;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "synchost admin API",
            "version": "1",
            "description": "Served by `synchost run` ([host.admin] listen). Every request but /healthz and /readyz carries `Authorization: Bearer TOKEN` (`synchost tokens create USER`)."
        },
        "paths": paths,
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "fix": { "type": ["string", "null"] } }
                    } }
                }
            }
        }
    })
}
