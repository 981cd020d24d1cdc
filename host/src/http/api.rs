//! `/api/v1`: the admin views and actions as JSON. Reads come from the
//! state; actions go to the running pipelines (a run now, a decision
//! carried out in the pipeline's turn, between its runs), and each is
//! recorded with the user who asked.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::{AdminContext, ApiError, Caller};
use crate::config::Side;
use crate::engine::{Engine, Mode, Resolution, RunError};
use crate::state::users::Permission::{Administer, Approve, Operate, Read};

type Answer = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> Answer {
    Ok(Json(value).into_response())
}

pub fn router() -> Router<AdminContext> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/status", get(status))
        .route("/api/v1/pipelines/{pipeline}/runs", get(runs))
        .route("/api/v1/pipelines/{pipeline}/history", get(history))
        .route("/api/v1/pipelines/{pipeline}/links", get(links))
        .route("/api/v1/pipelines/{pipeline}/pause", post(pause))
        .route("/api/v1/pipelines/{pipeline}/resume", post(resume))
        .route("/api/v1/pipelines/{pipeline}/sync", post(sync_now))
        .route("/api/v1/pipelines/{pipeline}/dry-run", post(dry_run))
        .route("/api/v1/pipelines/{pipeline}/trace", post(trace))
        .route("/api/v1/failed", get(failed))
        .route("/api/v1/pipelines/{pipeline}/failed/retry", post(retry))
        .route("/api/v1/conflicts", get(conflicts))
        .route("/api/v1/conflicts/{id}/resolve", post(resolve))
        .route("/api/v1/approvals", get(approvals))
        .route("/api/v1/approvals/{id}", get(approval))
        .route("/api/v1/approvals/{id}/approve", post(approve))
        .route("/api/v1/approvals/{id}/reject", post(reject))
        .route("/api/v1/events", get(events))
        .route("/api/v1/events/stream", get(event_stream))
        .route("/api/v1/identities", get(identities))
        .route("/api/v1/identities/rebind", post(rebind))
        .route("/api/v1/reloads", get(reloads))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/packages", get(packages))
        .route("/api/v1/openapi.json", get(openapi))
}

/// The pipeline, if the serving config has it.
fn pipeline(engine: &Engine, name: &str) -> Result<(), ApiError> {
    engine
        .pipeline(name)
        .map(|_| ())
        .map_err(|_| ApiError::not_found(format!("there is no pipeline named `{name}`")).fix("GET /api/v1/status lists the pipelines"))
}

/// Carries `work` out in the pipeline's turn (never during one of its
/// runs). It answers when done, or 202 if the run in progress takes longer:
/// the work is then done as soon as that run ends.
async fn in_turn<F, Fut>(context: &AdminContext, pipeline: &str, work: F) -> Answer
where
    F: FnOnce(Arc<Engine>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<String, RunError>> + Send + 'static,
{
    let turn = context.control.turn(pipeline);
    let serving = context.serving.clone();
    let task = tokio::spawn(async move {
        let _turn = turn.lock_owned().await;
        let engine = serving.borrow().engine.clone();
        work(engine).await
    });
    match tokio::time::timeout(Duration::from_secs(10), task).await {
        Ok(Ok(Ok(message))) => ok(json!({ "done": true, "message": message })),
        Ok(Ok(Err(error))) => Err(error.into()),
        Ok(Err(panicked)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", panicked.to_string())),
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "done": false, "message": "waiting for the pipeline's run in progress; carried out as soon as it ends" })),
        )
            .into_response()),
    }
}

async fn openapi(caller: Caller) -> Answer {
    caller.must(Read, None)?;
    ok(super::routes::openapi())
}

async fn me(caller: Caller) -> Answer {
    ok(&caller.0)
}

async fn status(caller: Caller, State(context): State<AdminContext>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    let view = crate::admin::status::view(&engine.config, &engine.state)?;
    let mut out = view.to_json();
    out["ready"] = json!(context.control.probed());
    ok(out)
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<u32>,
}

async fn runs(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>, Query(query): Query<Limit>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    pipeline(&engine, &name)?;
    ok(engine.state.runs(&name, query.limit.unwrap_or(20).min(1000))?)
}

#[derive(Deserialize)]
struct HistoryQuery {
    record: Option<String>,
    limit: Option<u32>,
}

async fn history(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>, Query(query): Query<HistoryQuery>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    pipeline(&engine, &name)?;
    ok(engine.state.history(&name, query.record.as_deref(), query.limit.unwrap_or(50).min(1000))?)
}

#[derive(Deserialize)]
struct Page {
    after: Option<i64>,
    limit: Option<u32>,
}

async fn links(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>, Query(query): Query<Page>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    pipeline(&engine, &name)?;
    ok(engine.state.links_after(&name, query.after.unwrap_or(0), query.limit.unwrap_or(100).min(1000))?)
}

async fn pause(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>) -> Answer {
    set_paused(caller, context, name, true).await
}

async fn resume(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>) -> Answer {
    set_paused(caller, context, name, false).await
}

async fn set_paused(caller: Caller, context: AdminContext, name: String, paused: bool) -> Answer {
    caller.must(Operate, Some(&name))?;
    let engine = context.engine();
    pipeline(&engine, &name)?;
    let by = caller.0.name.as_str();
    engine.state.set_paused(&name, paused.then_some(by))?;
    let message = if paused { format!("{name} paused by {by}") } else { format!("{name} resumed by {by}") };
    engine.state.event("info", Some(&name), None, &message, None)?;
    if !paused {
        context.control.wake(&name);
    }
    ok(json!({ "message": message }))
}

async fn sync_now(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>) -> Answer {
    caller.must(Operate, Some(&name))?;
    let engine = context.engine();
    pipeline(&engine, &name)?;
    if engine.state.health(&name)?.is_some_and(|h| h.state == "paused") {
        return Err(ApiError::new(StatusCode::CONFLICT, "paused", format!("{name} is paused")).fix(format!("resume it first: POST /api/v1/pipelines/{name}/resume")));
    }
    engine.state.event("info", Some(&name), None, &format!("sync of {name} asked for by {}", caller.0.name), None)?;
    context.control.wake(&name);
    Ok((StatusCode::ACCEPTED, Json(json!({ "message": format!("{name} runs now (after a run in progress); GET /api/v1/pipelines/{name}/runs shows it") }))).into_response())
}

async fn dry_run(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>) -> Answer {
    caller.must(Operate, Some(&name))?;
    let engine = context.engine();
    pipeline(&engine, &name)?;
    let report = engine.run(&name, "dry-run", Mode::DryRun).await?;
    let plan: Vec<serde_json::Value> = report
        .plan
        .iter()
        .map(|entry| {
            json!({
                "action": entry.action,
                "left_id": entry.left_id,
                "right_id": entry.right_id,
                "target": entry.target.map(|side| side.to_string()),
                "label": entry.label,
                "fields": entry.fields.iter().map(|(field, before, after)| json!({ "field": field, "before": before.as_ref().map(crate::model::Value::to_json), "after": after.to_json() })).collect::<Vec<_>>(),
                "rule": entry.rule,
                "message": entry.message,
            })
        })
        .collect();
    ok(json!({ "counts": report.counts, "plan": plan, "omitted": report.omitted }))
}

#[derive(Deserialize, Default)]
struct Trace {
    /// How long; default 10, at most a day; 0 stops.
    minutes: Option<u64>,
}

async fn trace(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>, body: Option<Json<Trace>>) -> Answer {
    caller.must(Operate, Some(&name))?;
    let engine = context.engine();
    pipeline(&engine, &name)?;
    let minutes = body.map(|Json(t)| t).unwrap_or_default().minutes.unwrap_or(10).min(24 * 60);
    crate::logging::trace_pipeline(&name, Duration::from_secs(minutes * 60)).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "log", e))?;
    let message = match minutes {
        0 => format!("verbose tracing of {name} stopped by {}", caller.0.name),
        n => format!("{name} traced verbosely for {n} minute(s), asked for by {}", caller.0.name),
    };
    engine.state.event("info", Some(&name), None, &message, None)?;
    ok(json!({ "message": message }))
}

#[derive(Deserialize)]
struct Filter {
    pipeline: Option<String>,
    all: Option<bool>,
}

async fn failed(caller: Caller, State(context): State<AdminContext>, Query(filter): Query<Filter>) -> Answer {
    caller.must(Read, None)?;
    ok(context.engine().state.failed(filter.pipeline.as_deref())?)
}

#[derive(Deserialize, Default)]
struct Retry {
    ids: Option<Vec<i64>>,
}

async fn retry(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>, body: Option<Json<Retry>>) -> Answer {
    caller.must(Operate, Some(&name))?;
    pipeline(&context.engine(), &name)?;
    let ids = body.map(|Json(retry)| retry).unwrap_or_default().ids;
    let by = caller.0.name.clone();
    let pipeline = name.clone();
    in_turn(&context, &name, move |engine| async move {
        let report = engine.resubmit_failed(&pipeline, ids.as_deref(), &format!("retry by {by}")).await?;
        let c = report.counts;
        Ok(format!("retried: {} created, {} updated, {} deleted, {} still failing", c.created, c.updated, c.deleted, c.failed))
    })
    .await
}

async fn conflicts(caller: Caller, State(context): State<AdminContext>, Query(filter): Query<Filter>) -> Answer {
    caller.must(Read, None)?;
    ok(context.engine().state.conflicts(filter.pipeline.as_deref(), !filter.all.unwrap_or(false))?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolve {
    take: Option<String>,
    value: Option<serde_json::Value>,
}

async fn resolve(caller: Caller, State(context): State<AdminContext>, Path(id): Path<i64>, Json(body): Json<Resolve>) -> Answer {
    let engine = context.engine();
    let conflict = engine.state.conflict(id)?.ok_or_else(|| ApiError::not_found(format!("there is no conflict {id}")))?;
    caller.must(Operate, Some(&conflict.pipeline))?;
    let resolution = match (body.take.as_deref(), body.value) {
        (Some(side), None) => Resolution::Take(
            Side::parse(side).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad-request", format!("take `{side}`: say left or right")))?,
        ),
        (None, Some(value)) => Resolution::Value(crate::model::Value::from_json(&value)),
        _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad-request", "send {\"take\": \"left\"|\"right\"} or {\"value\": VALUE}")),
    };
    let by = caller.0.name.clone();
    in_turn(&context, &conflict.pipeline, move |engine| async move { engine.resolve_conflict(id, resolution, &by).await }).await
}

async fn approvals(caller: Caller, State(context): State<AdminContext>, Query(filter): Query<Filter>) -> Answer {
    caller.must(Read, None)?;
    ok(context.engine().state.approvals(filter.pipeline.as_deref(), filter.all.unwrap_or(false))?)
}

async fn approval(caller: Caller, State(context): State<AdminContext>, Path(id): Path<i64>) -> Answer {
    caller.must(Read, None)?;
    let row = context.engine().state.approval(id)?.ok_or_else(|| ApiError::not_found(format!("there is no approval {id}")))?;
    let mut shown = serde_json::to_value(&row).expect("an approval serializes");
    shown["values"] = json!(crate::engine::approval::field_changes(&row));
    ok(shown)
}

#[derive(Deserialize, Default)]
struct Decision {
    comment: Option<String>,
    /// The revision the person saw; a newer change is not decided blindly.
    revision: Option<i64>,
}

async fn approve(caller: Caller, State(context): State<AdminContext>, Path(id): Path<i64>, body: Option<Json<Decision>>) -> Answer {
    decide(caller, context, id, true, body.map(|Json(d)| d).unwrap_or_default()).await
}

async fn reject(caller: Caller, State(context): State<AdminContext>, Path(id): Path<i64>, body: Option<Json<Decision>>) -> Answer {
    let decision = body.map(|Json(d)| d).unwrap_or_default();
    if decision.comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "comment-required", "a rejection needs a comment").fix("send {\"comment\": \"why\"}"));
    }
    decide(caller, context, id, false, decision).await
}

async fn decide(caller: Caller, context: AdminContext, id: i64, approve: bool, decision: Decision) -> Answer {
    let engine = context.engine();
    let row = engine.state.approval(id)?.ok_or_else(|| ApiError::not_found(format!("there is no approval {id}")))?;
    caller.must(Approve, Some(&row.pipeline))?;
    let pipeline = engine.record_decision(id, decision.revision, approve, &caller.0.name, decision.comment.as_deref())?;
    // The pipeline carries it out on its next run: now.
    context.control.wake(&pipeline);
    let verb = if approve { "approved" } else { "rejected" };
    ok(json!({ "message": format!("approval {id} {verb} by {}; pipeline {pipeline} carries it out now", caller.0.name) }))
}

#[derive(Deserialize)]
struct Since {
    since: Option<String>,
    limit: Option<u32>,
}

async fn events(caller: Caller, State(context): State<AdminContext>, Query(query): Query<Since>) -> Answer {
    caller.must(Read, None)?;
    ok(context.engine().state.events(query.since.as_deref(), query.limit.unwrap_or(200).min(5000))?)
}

/// New events as server-sent events, from the newest there is (or after
/// the `Last-Event-ID` a reconnecting client sends).
async fn event_stream(caller: Caller, State(context): State<AdminContext>, headers: HeaderMap) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.must(Read, None)?;
    let last = match headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
        Some(id) => id,
        None => context.engine().state.last_event_id()?,
    };
    let pages = stream::unfold((context, last), |(context, mut last)| async move {
        loop {
            let state = context.engine().state.clone();
            match state.events_after(last, 100) {
                Ok(rows) if !rows.is_empty() => {
                    last = rows.last().map_or(last, |r| r.id);
                    let events: Vec<Result<Event, Infallible>> = rows
                        .iter()
                        .map(|row| Ok(Event::default().id(row.id.to_string()).event("event").json_data(row).expect("events serialize")))
                        .collect();
                    return Some((stream::iter(events), (context, last)));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!("The event stream cannot read the event log: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Ok(Sse::new(pages.flatten()).keep_alive(KeepAlive::default()))
}

async fn identities(caller: Caller, State(context): State<AdminContext>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    let findings = engine.identity_findings().await?;
    ok(findings.iter().map(crate::engine::identity::Finding::to_json).collect::<Vec<_>>())
}

#[derive(Deserialize)]
struct RebindBody {
    endpoint: Option<String>,
    #[serde(default)]
    host: bool,
}

async fn rebind(caller: Caller, State(context): State<AdminContext>, Json(body): Json<RebindBody>) -> Answer {
    use crate::engine::identity::{RebindError, Subject};
    caller.must(Administer, None)?;
    let engine = context.engine();
    let subject = match (&body.endpoint, body.host) {
        (Some(name), false) => Subject::Endpoint(name),
        (None, true) => Subject::Host,
        _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad-request", "name either an endpoint or the host").fix(r#"send {"endpoint": "NAME"} or {"host": true}"#)),
    };
    let confirmed = engine.rebind(subject, &caller.0.name).await.map_err(|error| match error {
        RebindError::UnknownEndpoint(_) => ApiError::not_found(error.to_string()).fix("GET /api/v1/identities lists the endpoints"),
        RebindError::State(error) => error.into(),
    })?;
    // The pipelines it stopped run again now, not after their backoff.
    for (name, pipeline) in &engine.config.config.pipelines {
        let uses = |endpoint: &str| pipeline.left.endpoint.get_ref().as_str() == endpoint || pipeline.right.endpoint.get_ref().as_str() == endpoint;
        if body.endpoint.as_deref().is_none_or(uses) {
            context.control.wake(name.as_str());
        }
    }
    ok(json!({ "message": format!("{subject} confirmed by {}: {}; its pipelines sync again", caller.0.name, confirmed.summary()) }))
}

async fn reloads(caller: Caller, State(context): State<AdminContext>, Query(query): Query<Limit>) -> Answer {
    caller.must(Read, None)?;
    ok(context.engine().state.reloads(query.limit.unwrap_or(20).min(1000))?)
}

async fn reload(caller: Caller, State(context): State<AdminContext>) -> Answer {
    caller.must(Administer, None)?;
    context.engine().state.event("info", None, None, &format!("reload asked for by {}", caller.0.name), None)?;
    // The same path as SIGHUP and `synchost reload`.
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("cannot signal the host: {e}")))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "message": "reloading; GET /api/v1/reloads has the outcome" }))).into_response())
}

async fn packages(caller: Caller, State(context): State<AdminContext>) -> Answer {
    caller.must(Read, None)?;
    let listed = context
        .engine()
        .config
        .packages()
        .list()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "packages", e.message).fix(e.fix))?;
    ok(listed)
}
