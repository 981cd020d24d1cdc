//! The admin HTTP API that `synchost run` serves (loopback by default,
//! `[host.admin] listen`; HTTPS with `[host.admin.tls]`): JSON under `/api/v1`, each request authenticated
//! by a bearer token of a user (`synchost users`, `synchost tokens`), each
//! action checked against the user's role; errors in one shape with the fix.
//!
//! - [`routes`]: the table of every route: method, path, who may call it;
//!   the OpenAPI document is made from it.
//! - [`api`]: the `/api/v1` handlers over the admin views and the running engine.
//! - [`replicas`]: `/api/v1/replicas`: what `synchost replicas` sees and does.
//! - [`locks`]: `/api/v1/scopes` and undo/redo of runs: scope locks and what they hold back.
//! - [`exchange`]: the passive end of a replica's HTTP link, with the link's password.
//! - [`metrics`]: `/metrics` (Prometheus text format), `/healthz`, `/readyz`.
//! - [`tls`]: HTTPS when `[host.admin.tls]` names a certificate, and the
//!   command line's trust in exactly that certificate.
//! - `dashboard.html`: the web dashboard at `/`, over the same API.

pub mod api;
pub mod exchange;
pub mod locks;
pub mod replicas;
pub mod metrics;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::sync::watch;

use crate::daemon::{Control, Serving};
use crate::engine::Engine;
use crate::state::users::{Permission, User};

/// What every handler reaches: the version serving and the pipelines' control.
#[derive(Clone)]
pub struct AdminContext {
    pub serving: watch::Receiver<Arc<Serving>>,
    pub control: Arc<Control>,
}

impl AdminContext {
    /// The engine serving now.
    pub fn engine(&self) -> Arc<Engine> {
        self.serving.borrow().engine.clone()
    }
}

/// An error as every route reports it: `{"error": {"code", "message", "fix"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fix: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), fix: None }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": crate::secrets::redacted(&self.message), "fix": self.fix } });
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::state::StateError> for ApiError {
    fn from(error: crate::state::StateError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "state", error.to_string()).fix("check that the data folder is writable and the disk not full")
    }
}

impl From<crate::engine::RunError> for ApiError {
    fn from(error: crate::engine::RunError) -> Self {
        let status = match &error {
            crate::engine::RunError::UnknownPipeline(_) => StatusCode::NOT_FOUND,
            crate::engine::RunError::Setup { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            crate::engine::RunError::Forbidden { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_GATEWAY,
        };
        let fix = error.hint();
        ApiError { status, code: "run", message: error.to_string(), fix }
    }
}

/// The authenticated user of a request.
pub struct Caller(pub User);

impl Caller {
    /// Refuses unless the user may do `permission` (on `pipeline`).
    pub fn must(&self, permission: Permission, pipeline: Option<&str>) -> Result<(), ApiError> {
        if self.0.may(permission, pipeline) {
            return Ok(());
        }
        let what = match permission {
            Permission::Read => "read",
            Permission::Operate => "operate pipelines (pause, resume, sync, retry, resolve)",
            Permission::Approve => "approve or reject changes",
            Permission::Administer => "administer the host",
        };
        let scope = pipeline.map(|p| format!(" on pipeline `{p}`")).unwrap_or_default();
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("user `{}` ({}) may not {what}{scope}", self.0.name, self.0.role.as_str()))
            .fix("ask an admin for a user with that role: `synchost users add NAME --role ROLE`"))
    }
}

impl FromRequestParts<AdminContext> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, context: &AdminContext) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).fix("send `Authorization: Bearer TOKEN`; an admin makes tokens with `synchost tokens create USER`")
        };
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("this request has no bearer token"))?;
        let state = context.engine().state.clone();
        let token = token.trim().to_owned();
        // SQLite is synchronous: look the token up off the async threads.
        let user = tokio::task::spawn_blocking(move || state.authenticate(&token))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
        let mut user = user.ok_or_else(|| unauthorized("the token is not valid (unknown or revoked)"))?;
        // The host's own command line acts for the person who runs it.
        if user.name == LOCAL_USER
            && let Some(person) = parts.headers.get(crate::cli::remote::ACTING_FOR).and_then(|v| v.to_str().ok())
        {
            user.name = format!("{person}{}", crate::state::users::VIA_COMMAND_LINE);
        }
        Ok(Caller(user))
    }
}

/// The user of this host's own command line (`synchost sync`, `failed
/// retry` ... while the host runs).
pub const LOCAL_USER: &str = "command-line";

/// Makes a fresh token for this host's command line, in
/// `<data_dir>/admin.token` (owner only), and ends the earlier ones.
pub fn issue_local_token(state: &crate::state::State, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if state.user(LOCAL_USER)?.is_none() {
        state.add_user(LOCAL_USER, crate::state::users::Role::Admin, None)?;
    }
    for earlier in state.tokens()?.into_iter().filter(|t| t.user == LOCAL_USER && t.revoked_at.is_none()) {
        state.revoke_token(earlier.id)?;
    }
    let (_, token) = state.create_token(LOCAL_USER, Some("this host's command line"))?;
    let path = data_dir.join(crate::cli::remote::TOKEN_FILE);
    let temporary = data_dir.join(".admin.token.new");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    file.write_all(token.as_bytes())?;
    std::fs::rename(&temporary, &path)?;
    Ok(())
}

/// The whole admin service.
pub fn router(context: AdminContext) -> axum::Router {
    api::router()
        .merge(metrics::router())
        .merge(exchange::router())
        .merge(replicas::router())
        .merge(locks::router())
        // The dashboard: one page, in the binary; it signs in with a token and uses the API.
        .route("/", axum::routing::get(|| async { axum::response::Html(include_str!("dashboard.html")) }))
        .with_state(context)
}

/// Serves the admin API on `listen` until `shutdown`. Returns the address
/// it serves on, or why it cannot (the port taken, say): syncing goes on
/// without the API then, and the reason is in the log and the event log.
pub async fn start(
    listen: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    context: AdminContext,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let app = router(context);
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let served = match tls {
        None => tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped).await }),
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?;
            tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped).await })
        }
    };
    tokio::spawn(async move {
        if let Ok(Err(error)) = served.await {
            tracing::error!("The admin API stopped: {error}");
        }
    });
    Ok(address)
}
