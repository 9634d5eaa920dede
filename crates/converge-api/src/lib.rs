//! Converge's HTTP surface: the router, the Ruma extractor, thin handlers, the
//! cross-cutting middleware and the one mapping from errors to Matrix error responses.
//! This is the only crate (with the binary) that knows axum.

pub mod admin;
pub mod client;
pub mod error;
mod extract;
mod federation;
mod gateways;
pub mod media;
pub mod metrics;
pub mod ops;
mod ruma;
pub mod state;
pub mod web;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use tower_http::catch_panic::CatchPanicLayer;

pub use self::extract::{Authed, JsonBody};
pub use self::ruma::{RouterExt, Ruma, RumaResponse};
use crate::error::{ApiError, Error};
use crate::state::AppState;

/// Builds the whole client-facing application. Tests drive this in-process.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(client::routes())
        .merge(admin::routes())
        .merge(federation::routes())
        .merge(media::routes())
        .merge(ops::routes())
        .merge(gateways::routes(&state))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .fallback(web::fallback)
        .method_not_allowed_fallback(|| async { ApiError(Error::MethodNotAllowed) })
        .layer(CatchPanicLayer::custom(|_| {
            ApiError(Error::internal("a request handler panicked")).into_response()
        }))
        .layer(middleware::from_fn(cors))
        .with_state(state)
}

/// CORS as the spec's "Web Browser Clients" section asks: every response allows any
/// origin, and `OPTIONS` on any path is answered directly.
async fn cors(request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization"),
    );
    response
}

/// Counts requests and their latency per route template and status.
async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .record(&method, &route, response.status(), started.elapsed());
    response
}
