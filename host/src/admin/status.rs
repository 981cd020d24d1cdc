//! A host's status as one view: the scheduler, the config serving, and per
//! pipeline its health, last run, queues and the items that need a person,
//! each with its fix (T2, C10). `synchost status` prints it; the admin API
//! serves it.

use serde_json::json;

use crate::config::LoadedConfig;
use crate::state::lease::{self, Holder};
use crate::state::reloads::ReloadRow;
use crate::state::{ApprovalRow, ConflictRow, FailedRow, HeartbeatRow, State, StateError};

/// Everything `status` shows.
pub struct StatusView {
    /// `synchost run` holds the writer lease.
    pub scheduler_running: bool,
    /// Who writes now, if anyone.
    pub writer: Option<Holder>,
    pub heartbeat: Option<HeartbeatRow>,
    /// The config serving, and the last reload (which may have been refused).
    pub serving: Option<ReloadRow>,
    pub last_reload: Option<ReloadRow>,
    pub failed: Vec<FailedRow>,
    pub conflicts: Vec<ConflictRow>,
    pub approvals: Vec<ApprovalRow>,
    /// One object per pipeline (the `pipelines` of `status --json`).
    pub pipelines: Vec<serde_json::Value>,
    /// One object per replica: its role, what it keeps, its last activity (D10).
    pub replicas: Vec<serde_json::Value>,
    /// One object per lockable scope: the lock and the changes it holds back (L2).
    pub scopes: Vec<serde_json::Value>,
}

impl StatusView {
    /// The view as `status --json` and `GET /api/v1/status` give it.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "scheduler": { "running": self.scheduler_running, "writer": self.writer, "heartbeat": self.heartbeat },
            "config": {
                "revision": self.serving.as_ref().map(|r| &r.revision),
                "loaded_at": self.serving.as_ref().map(|r| &r.at),
                "last_reload": self.last_reload,
            },
            "pipelines": self.pipelines,
            "replicas": self.replicas,
            "scopes": self.scopes,
        })
    }
}

/// The status of the host whose config and state these are.
pub fn view(config: &LoadedConfig, state: &State) -> Result<StatusView, StateError> {
    let heartbeat = state.heartbeat()?;
    let now = chrono::Utc::now();
    let age = |at: &str| chrono::DateTime::parse_from_rfc3339(at).ok().map(|t| (now - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default());
    // The lease is the truth: it goes with the process, at once.
    let writer = lease::holder(&config.data_dir());
    let scheduler_alive = writer.as_ref().is_some_and(|w| w.command == "run");
    let failed = state.failed(None)?;
    let conflicts = state.conflicts(None, true)?;
    let approvals = state.approvals(None, false)?;

    let mut rows = Vec::new();
    for (name, pipeline) in &config.config.pipelines {
        let health = state.health(name.as_str())?;
        let last = state.runs(name.as_str(), 1)?.pop();
        let period = pipeline.schedule.period();
        let stalled_limit = period * pipeline.retry.stalled_after;
        let since_success = health.as_ref().and_then(|h| h.last_success_at.as_deref()).and_then(age);
        let stalled = scheduler_alive && health.as_ref().is_some_and(|h| h.state != "paused") && since_success.is_none_or(|a| a > stalled_limit);
        let state_text = match &health {
            None => "never run".to_owned(),
            Some(h) if h.state == "paused" => format!("paused by {} at {}", h.paused_by.as_deref().unwrap_or("?"), h.since),
            Some(h) if h.state == "degraded" => format!("degraded since {}: {}", h.since, h.reason.as_deref().unwrap_or("")),
            Some(_) => "ok".to_owned(),
        };
        let scope = config.config.scopes.iter().find(|(_, s)| s.pipelines.contains(name)).map(|(n, _)| n.as_str());
        let lock = match scope {
            Some(scope) => state.scope_lock(scope)?,
            None => None,
        };
        let held = state.held_changes(None, Some(name.as_str()))?;
        rows.push(json!({
            "pipeline": name.as_str(),
            "scope": scope,
            "locked_by": lock.as_ref().map(|l| json!({ "holder": l.holder, "since": l.since, "endpoint": l.endpoint, "how": l.how })),
            "category": pipeline.category.clone().unwrap_or_else(|| "uncategorised".into()),
            "state": health.as_ref().map(|h| h.state.clone()).unwrap_or_else(|| "never-run".into()),
            "summary": state_text,
            "stalled": stalled,
            "hint": health.as_ref().and_then(|h| h.hint.clone()),
            "schedule": pipeline.schedule.to_string(),
            "last_run": last.as_ref().map(|r| json!({
                "run_id": r.run_id, "at": r.started_at, "status": r.status, "counts": r.counts, "error": r.error,
            })),
            "last_success_at": health.as_ref().and_then(|h| h.last_success_at.clone()),
            "failed_items": failed.iter().filter(|f| f.pipeline == name.as_str()).count(),
            "items": failed.iter().filter(|f| f.pipeline == name.as_str()).map(|f| json!({
                "id": f.id, "side": f.side, "record": f.source_id, "label": f.label, "result": "failed", "since": f.first_failed_at,
                "last_attempt": f.last_failed_at, "attempts": f.attempts, "error": f.code, "detail": f.reason,
                "fix": f.hint, "retried_automatically": f.retryable,
            })).chain(conflicts.iter().filter(|c| c.pipeline == name.as_str()).map(|c| json!({
                "id": c.id, "side": "both", "record": format!("left:{} right:{}", c.left_id, c.right_id), "result": "conflict",
                "since": c.detected_at, "error": "conflict", "detail": format!("`{}` changed on both sides", c.field),
                "fix": format!("pick a side: `synchost conflicts resolve {} --take left|right` (or --value VALUE)", c.id),
            }))).chain(state.half_deleted_links(name.as_str())?.iter().map(|l| {
                let (deleted, kept, fix) = half_deleted(name.as_str(), pipeline.create, l);
                json!({
                    "id": l.link_id, "side": kept, "record": format!("left:{} right:{}", l.left_id, l.right_id), "result": "half-deleted",
                    "since": l.updated_at, "error": format!("deleted on the {deleted} side only"),
                    "detail": format!("the {kept} record is kept; its edits do not sync"),
                    "fix": fix,
                })
            })).chain(held.iter().map(|h| json!({
                "id": h.id, "side": h.side, "record": h.source_id, "label": h.label, "result": "held", "since": h.held_at,
                "error": "held by a scope lock", "detail": format!("{} (scope `{}` locked by {})", h.summary, h.scope, h.holder),
                "fix": format!("goes through when {} releases scope `{}` (or it is forced open: `synchost locks release {}`)", h.holder, h.scope, h.scope),
            }))).collect::<Vec<_>>(),
            "open_conflicts": conflicts.iter().filter(|c| c.pipeline == name.as_str()).count(),
            "waiting_for_approval": approvals.iter().filter(|a| a.pipeline == name.as_str()).count(),
            "links": state.link_count(name.as_str())?,
        }));
    }
    let serving = state.serving_config()?;
    let last_reload = state.reloads(1)?.pop();
    let replicas = config
        .config
        .replicas
        .keys()
        .map(|name| match crate::replicas::Replica::open(config, name.as_str()).and_then(|r| r.view()) {
            Ok(view) => view,
            Err(error) => json!({ "replica": name.as_str(), "error": error.message, "fix": error.fix }),
        })
        .collect();
    let scopes = scopes_view(config, state)?;
    Ok(StatusView { scheduler_running: scheduler_alive, writer, heartbeat, serving, last_reload, failed, conflicts, approvals, pipelines: rows, replicas, scopes })
}

/// Each scope: its pipelines, editor, the lock (holder, since, last change), the changes held back.
pub fn scopes_view(config: &LoadedConfig, state: &State) -> Result<Vec<serde_json::Value>, StateError> {
    let mut views = Vec::new();
    for (name, scope) in &config.config.scopes {
        views.push(json!({
            "scope": name.as_str(),
            "pipelines": scope.pipelines.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "editor": scope.editor.as_ref().map(|e| json!({ "endpoint": e.endpoint.as_str(), "user": e.user })),
            "auto_lock": scope.auto_lock,
            "idle_timeout": humantime::format_duration(scope.idle_timeout.0).to_string(),
            "lock": state.scope_lock(name.as_str())?,
            "held": state.held_changes(Some(name.as_str()), None)?,
        }));
    }
    Ok(views)
}

/// A link deleted on one side only: which side, which kept, and the fix.
pub fn half_deleted(pipeline: &str, create: crate::config::Flow, link: &crate::state::LinkRow) -> (&'static str, &'static str, String) {
    use crate::config::Side;
    let (deleted, kept, kept_id, kept_side) =
        if link.state == "left-deleted" { ("left", "right", &link.right_id, Side::Right) } else { ("right", "left", &link.left_id, Side::Left) };
    let fix = if create.allows(kept_side) {
        format!("to bring it back on the {deleted} side: `synchost links unlink {pipeline} {kept_id}` then `synchost sync {pipeline}`; to remove it everywhere, delete it on the {kept} side")
    } else {
        format!(
            "the {kept} side may not create records on the {deleted} side ([pipelines.{pipeline}] create): to remove it everywhere, delete it on the {kept} side; to bring it back, allow creates from the {kept} side, then `synchost links unlink {pipeline} {kept_id}` and `synchost sync {pipeline}`"
        )
    };
    (deleted, kept, fix)
}
