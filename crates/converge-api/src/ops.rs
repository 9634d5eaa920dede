//! Operations endpoints: `GET /_converge/health`, and the Prometheus `/metrics` router
//! served on its own listener.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{StatusCode, header};
use serde_json::json;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_converge/health", get(health))
}

/// The metrics listener's router.
pub fn metrics_routes(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Response {
    let (backend, store_ok) = state.services.store_health().await;
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let (gateways, gateways_ok) = state.gateways.health();
    let mut body = json!({
        "status": if store_ok && gateways_ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "store": { "backend": backend, "ok": store_ok },
        "gateways": gateways,
    });
    // Bridges are the bridges' business: one that is down does not make the server
    // degraded, but it shows.
    if let Ok(appservices) = state.services.appservices.health().await
        && !appservices.is_empty()
    {
        body["appservices"] = appservices.into();
    }
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics_text(&state)
}

/// The server's metrics in the Prometheus text format (also served to admins by the admin
/// API).
pub(crate) fn metrics_text(state: &AppState) -> Response {
    let mut text = state.metrics.render(&state.services.writer_stats());
    crate::metrics::render_gateways(&mut text, &state.gateways.stats());
    crate::metrics::render_appservices(&mut text, &state.services.appservices.metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
