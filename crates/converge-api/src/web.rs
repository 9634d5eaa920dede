//! Converge Web at `/`: the app's embedded files (`converge-web`), with the app's page for
//! any other path that is not an API's, so the app's own routes (`/rooms/…`, `/admin`, …)
//! load it. API prefixes keep the Matrix error for unknown endpoints.
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles only from the
//! server's own files (WebAssembly allowed, for the crypto), connections only to the server
//! itself, no framing; and the usual `nosniff` and `no-referrer`.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use converge_web::Asset;
use http::{HeaderValue, Method, StatusCode, header};

use crate::error::{ApiError, Error};

/// The app's Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; media-src 'self' blob:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths that belong to the APIs, never to the app.
const API_PREFIXES: [&str; 3] = ["/_matrix/", "/_converge/", "/.well-known/"];

/// What the router answers when no route matched.
pub async fn fallback(request: Request) -> Response {
    let path = request.uri().path();
    let is_api = API_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix) || path == prefix.trim_end_matches('/'));
    if is_api || !matches!(*request.method(), Method::GET | Method::HEAD) {
        return ApiError(Error::Unrecognized).into_response();
    }
    let gzip_ok = accepts_gzip(&request);
    if let Some(asset) = converge_web::get(path) {
        return serve(asset, gzip_ok);
    }
    if path.starts_with("/assets/") {
        // A hashed file that is not there: an old page asking for a replaced build.
        return with_headers(
            (StatusCode::NOT_FOUND, "not found").into_response(),
            "text/plain; charset=utf-8",
        );
    }
    match converge_web::index() {
        Some(index) => serve(index, gzip_ok),
        None => with_headers(
            (
                StatusCode::NOT_FOUND,
                "Converge Web was not built into this binary (web/dist was missing at build \
                 time). Matrix clients work as usual.",
            )
                .into_response(),
            "text/plain; charset=utf-8",
        ),
    }
}

fn accepts_gzip(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn serve(asset: &'static Asset, gzip_ok: bool) -> Response {
    let (body, gzipped) = match asset.gzip {
        Some(gzip) if gzip_ok => (gzip, true),
        _ => (asset.body, false),
    };
    let mut response = with_headers(Response::new(Body::from(body)), asset.content_type);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if asset.immutable() {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    if asset.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

fn with_headers(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
