//! `/metrics` (Prometheus/OpenMetrics text), `/healthz` and `/readyz`.
//!
//! The counters of what happened since the process started are in
//! [`crate::metrics`]; the gauges of how things stand now (health, queues,
//! seconds since the last success, the state's size) are read from the
//! state at each scrape.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{AdminContext, ApiError, Caller};
use crate::metrics::PipelineLabels;
use crate::state::users::Permission;

/// The metrics as text: the counters, and gauges read from the state now.
pub fn render(context: &AdminContext) -> Result<String, ApiError> {
    let engine = context.engine();
    let mut registry = Registry::with_prefix("synchost");
    crate::metrics::register_counters(&mut registry);

    let view = crate::admin::status::view(&engine.config, &engine.state)?;
    let healthy = Family::<PipelineLabels, Gauge>::default();
    let failed_items = Family::<PipelineLabels, Gauge>::default();
    let open_conflicts = Family::<PipelineLabels, Gauge>::default();
    let waiting = Family::<PipelineLabels, Gauge>::default();
    let since_success = Family::<PipelineLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let now = chrono::Utc::now();
    for row in &view.pipelines {
        let labels = PipelineLabels { pipeline: row["pipeline"].as_str().unwrap_or_default().to_owned() };
        let ok = row["state"] == "ok" && row["stalled"] != true;
        healthy.get_or_create(&labels).set(i64::from(ok));
        failed_items.get_or_create(&labels).set(row["failed_items"].as_i64().unwrap_or(0));
        open_conflicts.get_or_create(&labels).set(row["open_conflicts"].as_i64().unwrap_or(0));
        waiting.get_or_create(&labels).set(row["waiting_for_approval"].as_i64().unwrap_or(0));
        if let Some(at) = row["last_success_at"].as_str().and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok()) {
            since_success.get_or_create(&labels).set((now - at.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0);
        }
    }
    registry.register("pipeline_healthy", "1 when the pipeline is ok and not stalled", healthy);
    registry.register("failed_items", "Failed items waiting", failed_items);
    registry.register("open_conflicts", "Conflicts waiting for a person", open_conflicts);
    registry.register("approvals_waiting", "Changes waiting for approval", waiting);
    registry.register("seconds_since_last_success", "Seconds since the pipeline's last successful run", since_success);
    let state_bytes = Gauge::<i64>::default();
    state_bytes.set(std::fs::metadata(engine.state.path()).map_or(0, |m| m.len() as i64));
    registry.register("state_bytes", "Size of the state database file", state_bytes);
    let ready = Gauge::<i64>::default();
    ready.set(i64::from(context.control.probed()));
    registry.register("ready", "1 once every endpoint has been probed", ready);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(text)
}

async fn metrics(caller: Caller, State(context): State<AdminContext>) -> Result<Response, ApiError> {
    caller.must(Permission::Read, None)?;
    let text = render(&context)?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

async fn ready(State(context): State<AdminContext>) -> Response {
    if context.control.probed() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "probing endpoints\n").into_response()
    }
}

pub fn router() -> Router<AdminContext> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}
