//! `/api/v1/replicas`: what the `synchost replicas` commands see and do, for
//! users of the admin API (and the command line while the host runs):
//! where each replica stands, its activity log, and export, import,
//! acknowledge, resend, mark received, each in the running host.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AdminContext, ApiError, Caller};
use crate::engine::Engine;
use crate::replicas::{folder, link, Exported, Imported, Replica, ReplicaError};
use crate::state::users::Permission::{Operate, Read};

type Answer = Result<Response, ApiError>;

pub fn router() -> Router<AdminContext> {
    Router::new()
        .route("/api/v1/replicas", get(list))
        .route("/api/v1/replicas/{name}/log", get(log))
        .route("/api/v1/replicas/{name}/export", post(export))
        .route("/api/v1/replicas/{name}/import", post(import))
        .route("/api/v1/replicas/{name}/ack", post(ack))
        .route("/api/v1/replicas/{name}/resend", post(resend))
        .route("/api/v1/replicas/{name}/mark-received", post(mark_received))
}

fn refused(error: ReplicaError) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "replica", error.message).fix(error.fix)
}

/// Runs `work` on the replica, with its outcome in the event log when it is refused.
fn with_replica<T>(engine: &Engine, name: &str, work: impl FnOnce(&mut Replica<'_>) -> Result<T, ReplicaError>) -> Result<T, ApiError> {
    if !engine.config.config.replicas.keys().any(|n| n.as_str() == name) {
        return Err(ApiError::not_found(format!("there is no replica named `{name}`")).fix("GET /api/v1/replicas lists them"));
    }
    let mut replica = Replica::open(&engine.config, name).map_err(refused)?;
    work(&mut replica).map_err(|error| {
        let _ = engine.state.event("error", None, None, &format!("replica `{name}`: {}", error.message), Some(&error.fix));
        refused(error)
    })
}

/// A round over the replica's remote transport (FTP, the active end of an HTTP link), if it has one.
async fn round(engine: &Engine, name: &str) -> Result<(), ApiError> {
    let Some(remote) = with_replica(engine, name, |r| Ok(link::remote(r)))? else { return Ok(()) };
    let outcome = match remote {
        Ok(remote) => link::round(remote).await,
        Err(error) => Err(error),
    };
    with_replica(engine, name, |r| Ok(link::note(r, &outcome)))?;
    outcome.map(drop).map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "link", e.message).fix(e.fix))
}

/// Writes a message made into the upload folder, sends it on, and says so in the event log.
async fn send(engine: &Engine, name: &str, made: impl FnOnce(&mut Replica<'_>) -> Result<Exported, ReplicaError>, by: &str) -> Answer {
    let written = with_replica(engine, name, |r| {
        let exported = made(r)?;
        let upload = r.folders.as_ref().map(|(upload, _)| upload.clone()).ok_or_else(|| ReplicaError {
            message: format!("replica `{name}` has no folders, FTP server or HTTP link to send through"),
            fix: format!("set [replicas.{name}] folders, ftp or http; or export to a file with the command line's --to"),
        })?;
        let path = folder::deliver(&upload, &exported)
            .map_err(|e| ReplicaError { message: format!("cannot write message {}: {e}", exported.number), fix: "check that the folder exists and is writable".into() })?;
        Ok((exported.number, exported.changes, exported.swap, path))
    })?;
    round(engine, name).await?;
    let (number, changes, swap, path) = written;
    let message = format!("message {number} ({changes} change(s){}) written to {} by {by}", if swap { ", roles swapped" } else { "" }, path.display());
    engine.state.event("info", None, None, &format!("replica `{name}`: {message}"), None)?;
    Ok(Json(json!({ "message": message, "number": number, "changes": changes, "swap": swap })).into_response())
}

async fn list(caller: Caller, State(context): State<AdminContext>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    let views: Vec<serde_json::Value> = engine
        .config
        .config
        .replicas
        .keys()
        .map(|name| Replica::open(&engine.config, name.as_str()).and_then(|r| r.view()).unwrap_or_else(|e| json!({ "replica": name.as_str(), "error": e.message, "fix": e.fix })))
        .collect();
    Ok(Json(views).into_response())
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<u32>,
}

async fn log(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>, Query(query): Query<Limit>) -> Answer {
    caller.must(Read, None)?;
    let engine = context.engine();
    let lines = with_replica(&engine, &name, |r| Ok(r.store.activity(query.limit.unwrap_or(50).min(1000))?))?;
    Ok(Json(lines).into_response())
}

#[derive(Deserialize, Default)]
struct ExportBody {
    #[serde(default)]
    swap: bool,
    through: Option<u64>,
}

async fn export(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>, body: Option<Json<ExportBody>>) -> Answer {
    caller.must(Operate, None)?;
    let swap = body.map(|b| b.0.swap).unwrap_or(false);
    send(&context.engine(), &name, |r| r.export(swap), &caller.0.name).await
}

async fn ack(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>) -> Answer {
    caller.must(Operate, None)?;
    send(&context.engine(), &name, |r| r.acknowledge(), &caller.0.name).await
}

async fn resend(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>) -> Answer {
    caller.must(Operate, None)?;
    send(&context.engine(), &name, |r| r.resend(), &caller.0.name).await
}

async fn mark_received(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>, body: Option<Json<ExportBody>>) -> Answer {
    caller.must(Operate, None)?;
    let through = body.and_then(|b| b.0.through);
    let change = with_replica(&context.engine(), &name, |r| r.mark_received(through))?;
    Ok(Json(json!({ "message": format!("changes through {change} marked received by {}", caller.0.name) })).into_response())
}

async fn import(caller: Caller, State(context): State<AdminContext>, Path(name): Path<String>) -> Answer {
    caller.must(Operate, None)?;
    let engine = context.engine();
    round(&engine, &name).await?;
    let (done, error) = with_replica(&engine, &name, |r| Ok(r.import_waiting()))?;
    let imported: Vec<serde_json::Value> = done.iter().map(|(file, outcome)| json!({ "file": file.display().to_string(), "outcome": format!("{outcome:?}") })).collect();
    // Changes arrived: the replica's pipelines run now, not at their next turn.
    if done.iter().any(|(_, o)| matches!(o, Imported::Data { .. })) {
        for (pipeline, config) in &engine.config.config.pipelines {
            if config.left.endpoint.get_ref().as_str() == name || config.right.endpoint.get_ref().as_str() == name {
                context.control.wake(pipeline.as_str());
            }
        }
    }
    engine.state.event("info", None, None, &format!("replica `{name}`: {} message(s) imported, asked for by {}", done.len(), caller.0.name), None)?;
    match error {
        Some(error) => {
            engine.state.event("error", None, None, &format!("replica `{name}`: {}", error.message), Some(&error.fix))?;
            Err(refused(error))
        }
        None => Ok(Json(json!({ "message": format!("{} message(s) imported", done.len()), "imported": imported })).into_response()),
    }
}
