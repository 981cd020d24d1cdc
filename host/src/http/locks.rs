//! `/api/v1/scopes` and `/api/v1/runs/{run}/undo|redo`: scope locks, the
//! changes they hold back, and taking runs back (L2-L5), for the dashboard,
//! users of the API and the command line while the host runs.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AdminContext, ApiError, Caller};
use crate::engine::{Actor, Engine, UndoDirection};
use crate::state::users::Permission::{Operate, Read};
use crate::state::users::Role;

type Answer = Result<Response, ApiError>;

pub fn router() -> Router<AdminContext> {
    Router::new()
        .route("/api/v1/scopes", get(list))
        .route("/api/v1/scopes/{scope}/log", get(log))
        .route("/api/v1/scopes/{scope}/lock", post(lock))
        .route("/api/v1/scopes/{scope}/unlock", post(unlock))
        .route("/api/v1/runs/{run}/undo", post(undo))
        .route("/api/v1/runs/{run}/redo", post(redo))
}

fn scope_pipelines(engine: &Engine, scope: &str) -> Result<Vec<String>, ApiError> {
    engine
        .config
        .config
        .scopes
        .iter()
        .find(|(name, _)| name.as_str() == scope)
        .map(|(_, config)| config.pipelines.iter().map(|p| p.to_string()).collect())
        .ok_or_else(|| ApiError::not_found(format!("there is no scope named `{scope}`")).fix("GET /api/v1/scopes lists them"))
}

/// Operating every pipeline of the scope.
fn must_operate(caller: &Caller, pipelines: &[String]) -> Result<(), ApiError> {
    pipelines.iter().try_for_each(|p| caller.must(Operate, Some(p)))
}

async fn list(caller: Caller, State(context): State<AdminContext>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    Ok(Json(crate::admin::status::scopes_view(&engine.config, &engine.state)?).into_response())
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<u32>,
}

async fn log(caller: Caller, State(context): State<AdminContext>, Path(scope): Path<String>, Query(query): Query<Limit>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    scope_pipelines(&engine, &scope)?;
    Ok(Json(engine.state.lock_log(Some(&scope), query.limit.unwrap_or(50).min(1000))?).into_response())
}

#[derive(Deserialize, Default)]
struct LockBody {
    /// The endpoint the caller edits through (default: the scope's editor's).
    endpoint: Option<String>,
    /// Why (kept in the lock log).
    why: Option<String>,
}

async fn lock(caller: Caller, State(context): State<AdminContext>, Path(scope): Path<String>, body: Option<Json<LockBody>>) -> Answer {
    let engine = context.engine();
    must_operate(&caller, &scope_pipelines(&engine, &scope)?)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    let row = engine.take_lock(&scope, &caller.0.name, body.endpoint.as_deref())?;
    Ok(Json(json!({ "message": format!("scope `{scope}` is locked by {} since {}", row.holder, row.since), "lock": row })).into_response())
}

async fn unlock(caller: Caller, State(context): State<AdminContext>, Path(scope): Path<String>, body: Option<Json<LockBody>>) -> Answer {
    let engine = context.engine();
    let pipelines = scope_pipelines(&engine, &scope)?;
    must_operate(&caller, &pipelines)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    let message = engine.release_lock(&scope, &caller.0.name, caller.0.role == Role::Admin, body.why.as_deref())?;
    // The held changes go through now, not at the pipelines' next turns.
    for pipeline in &pipelines {
        context.control.wake(pipeline);
    }
    Ok(Json(json!({ "message": message })).into_response())
}

#[derive(Deserialize, Default)]
struct UndoBody {
    /// Only say what would change.
    #[serde(default)]
    dry_run: bool,
}

async fn undo(caller: Caller, State(context): State<AdminContext>, Path(run): Path<i64>, body: Option<Json<UndoBody>>) -> Answer {
    take_back(caller, context, run, UndoDirection::Undo, body.map(|b| b.0).unwrap_or_default()).await
}

async fn redo(caller: Caller, State(context): State<AdminContext>, Path(run): Path<i64>, body: Option<Json<UndoBody>>) -> Answer {
    take_back(caller, context, run, UndoDirection::Redo, body.map(|b| b.0).unwrap_or_default()).await
}

async fn take_back(caller: Caller, context: AdminContext, run: i64, direction: UndoDirection, body: UndoBody) -> Answer {
    let engine = context.engine();
    let pipeline = engine.state.run_pipeline(run)?.ok_or_else(|| ApiError::not_found(format!("there is no run {run}")).fix("GET /api/v1/pipelines/{pipeline}/runs lists a pipeline's runs"))?;
    caller.must(Operate, Some(&pipeline))?;
    let actor = Actor { name: caller.0.name.clone(), admin: caller.0.role == Role::Admin };
    // In the pipeline's turn: never while one of its runs writes.
    let turn = context.control.turn(&pipeline);
    let _turn = turn.lock_owned().await;
    let engine = context.engine();
    let report = engine.undo_run(run, direction, &actor, body.dry_run).await?;
    Ok(Json(report).into_response())
}
