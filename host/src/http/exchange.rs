//! The passive end of a replica's HTTP link (C3): the active host lists,
//! fetches and removes the messages waiting for it, and puts its own, all
//! under `/api/v1/replicas/NAME/exchange`, with the link's password as its
//! bearer token (not a user's). Only message names of the pair cross, and a
//! message put is kept whole or not at all.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use super::{AdminContext, ApiError};
use crate::replicas::link::{acceptable_name, keep};
use crate::replicas::{folder, LinkRole, Replica};

/// The largest message the passive host takes.
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

pub fn router() -> Router<AdminContext> {
    Router::new()
        .route("/api/v1/replicas/{name}/exchange", get(list))
        .route("/api/v1/replicas/{name}/exchange/{file}", get(fetch).put(receive).delete(remove))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE))
}

/// The replica's folders and names, once the caller gave the link's password.
struct Passive {
    outgoing: std::path::PathBuf,
    incoming: std::path::PathBuf,
    name: String,
    me: String,
    peer: String,
}

fn passive(context: &AdminContext, name: &str, headers: &HeaderMap) -> Result<Passive, ApiError> {
    let engine = context.engine();
    let replica = Replica::open(&engine.config, name).map_err(|e| ApiError::not_found(e.message).fix(e.fix))?;
    let Some(link) = replica.config.http.as_ref().filter(|l| l.role == LinkRole::Passive) else {
        return Err(ApiError::not_found(format!("this host is not the passive end of replica `{name}`'s HTTP link"))
            .fix(format!("set [replicas.{name}.http] role = \"passive\" on this host, or connect to the other host")));
    };
    let given = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    let expected = crate::config::resolve_secret(&link.password);
    // Digests compared, so the time taken says nothing about the password.
    if expected.is_empty() || Sha256::digest(given.as_bytes()) != Sha256::digest(expected.as_bytes()) {
        let _ = engine.state.event("warn", None, None, &format!("replica `{name}`: a request over the link with a wrong password was refused"), Some("set the same [replicas.NAME.http] password on both hosts"));
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the link's password is wrong").fix("set the same [replicas.NAME.http] password on both hosts"));
    }
    // The passive end shows when the active one last reached it.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let _ = replica.store.set_mark(crate::replicas::store::Mark::LinkUp, now);
    let (outgoing, incoming) = replica.folders.clone().expect("an HTTP link has folders of its own");
    Ok(Passive { outgoing, incoming, name: name.to_owned(), me: replica.me.clone(), peer: replica.config.peer.clone() })
}

fn io_error(error: std::io::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", error.to_string()).fix("check that the data folder is writable and the disk not full")
}

async fn list(State(context): State<AdminContext>, Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let passive = passive(&context, &name, &headers)?;
    let waiting = folder::waiting(&passive.outgoing, &passive.name, &passive.me).map_err(io_error)?;
    let names: Vec<String> = waiting.iter().filter_map(|p| p.file_name()?.to_str().map(str::to_owned)).collect();
    Ok(Json(serde_json::json!({ "messages": names })).into_response())
}

async fn fetch(State(context): State<AdminContext>, Path((name, file)): Path<(String, String)>, headers: HeaderMap) -> Result<Response, ApiError> {
    let passive = passive(&context, &name, &headers)?;
    if !acceptable_name(&file, &passive.name, &passive.me) {
        return Err(ApiError::not_found(format!("no message `{file}` waits here")));
    }
    match std::fs::read(passive.outgoing.join(&file)) {
        Ok(bytes) => Ok(([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found(format!("no message `{file}` waits here"))),
        Err(error) => Err(io_error(error)),
    }
}

async fn remove(State(context): State<AdminContext>, Path((name, file)): Path<(String, String)>, headers: HeaderMap) -> Result<Response, ApiError> {
    let passive = passive(&context, &name, &headers)?;
    if !acceptable_name(&file, &passive.name, &passive.me) {
        return Err(ApiError::not_found(format!("no message `{file}` waits here")));
    }
    match std::fs::remove_file(passive.outgoing.join(&file)) {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(error) => Err(io_error(error)),
    }
}

async fn receive(State(context): State<AdminContext>, Path((name, file)): Path<(String, String)>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let passive = passive(&context, &name, &headers)?;
    if !acceptable_name(&file, &passive.name, &passive.peer) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad-name", format!("`{file}` is not a message name of `{}` for this host", passive.peer))
            .fix("put messages under the names `synchost replicas export` gives them"));
    }
    keep(&passive.incoming, &file, &body).map_err(io_error)?;
    Ok(StatusCode::CREATED.into_response())
}
