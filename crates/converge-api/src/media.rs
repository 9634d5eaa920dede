//! The content repository over HTTP: uploads, downloads (authenticated and legacy),
//! thumbnails, URL previews and the media config.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#content-repository>. These
//! endpoints take and give raw bytes, so they use axum extractors rather than Ruma's
//! JSON request types. Every download carries the safety headers from [`safe_headers`].

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::Authed;
use crate::error::{Error, Result};
use crate::state::AppState;
use converge_service::media::{MediaFile, ThumbnailSpec, Upload, inline_allowed};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/media/v3/upload", post(upload))
        .route("/_matrix/media/r0/upload", post(upload))
        .route("/_matrix/media/v1/create", post(create))
        .route(
            "/_matrix/media/v3/upload/{server_name}/{media_id}",
            put(upload_reserved),
        )
        .route("/_matrix/client/v1/media/config", get(config))
        .route("/_matrix/media/v3/config", get(config))
        .route(
            "/_matrix/client/v1/media/download/{server_name}/{media_id}",
            get(download),
        )
        .route(
            "/_matrix/client/v1/media/download/{server_name}/{media_id}/{file_name}",
            get(download),
        )
        .route(
            "/_matrix/media/v3/download/{server_name}/{media_id}",
            get(legacy_download),
        )
        .route(
            "/_matrix/media/v3/download/{server_name}/{media_id}/{file_name}",
            get(legacy_download),
        )
        .route(
            "/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}",
            get(thumbnail),
        )
        .route(
            "/_matrix/media/v3/thumbnail/{server_name}/{media_id}",
            get(legacy_thumbnail),
        )
        .route("/_matrix/client/v1/media/preview_url", get(preview_url))
        .route("/_matrix/media/v3/preview_url", get(preview_url))
}

#[derive(Deserialize)]
struct UploadQuery {
    filename: Option<String>,
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}

/// `POST /_matrix/media/v3/upload`.
async fn upload(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>> {
    let content_type = header_str(&headers, header::CONTENT_TYPE);
    let uri = state
        .services
        .media
        .upload(
            &caller,
            Upload {
                content_type,
                filename: query.filename.as_deref(),
                declared: declared_length(&headers),
            },
            byte_stream(body),
        )
        .await?;
    Ok(Json(json!({ "content_uri": uri })))
}

/// A request body as the media service reads uploads: a stream of chunks, where an
/// error means the client broke off.
fn byte_stream(body: Body) -> converge_service::media::Body {
    use futures_util::TryStreamExt;
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// `POST /_matrix/media/v1/create`.
async fn create(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<serde_json::Value>> {
    let (uri, expires) = state.services.media.create(&caller).await?;
    Ok(Json(
        json!({ "content_uri": uri, "unused_expires_at": expires }),
    ))
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`.
async fn upload_reserved(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>> {
    let content_type = header_str(&headers, header::CONTENT_TYPE);
    state
        .services
        .media
        .upload_reserved(
            &caller,
            &server_name,
            &media_id,
            Upload {
                content_type,
                filename: query.filename.as_deref(),
                declared: declared_length(&headers),
            },
            byte_stream(body),
        )
        .await?;
    Ok(Json(json!({})))
}

/// `GET /_matrix/client/v1/media/config`.
async fn config(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "m.upload.size": state.services.media.max_upload() }))
}

/// `{serverName}/{mediaId}[/{fileName}]` of a download.
#[derive(Deserialize)]
struct MediaPath {
    server_name: String,
    media_id: String,
    file_name: Option<String>,
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`.
async fn download(
    State(state): State<AppState>,
    _: Authed,
    Path(path): Path<MediaPath>,
    headers: HeaderMap,
) -> Result<Response> {
    let file = state
        .services
        .media
        .open(&path.server_name, &path.media_id, false)
        .await?;
    serve(file, path.file_name, &headers).await
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}]`, unauthenticated.
async fn legacy_download(
    State(state): State<AppState>,
    Path(path): Path<MediaPath>,
    headers: HeaderMap,
) -> Result<Response> {
    let file = state
        .services
        .media
        .open(&path.server_name, &path.media_id, true)
        .await?;
    serve(file, path.file_name, &headers).await
}

#[derive(Deserialize)]
struct ThumbnailQuery {
    width: Option<String>,
    height: Option<String>,
    method: Option<String>,
}

fn thumbnail_spec(query: &ThumbnailQuery) -> Result<ThumbnailSpec> {
    let dimension = |value: &Option<String>, name: &str| -> converge_service::Result<i64> {
        let value = value
            .as_deref()
            .ok_or_else(|| Error::MissingParam(format!("{name} is required")))?;
        value
            .parse::<i64>()
            .ok()
            .filter(|v| (1..=10_000).contains(v))
            .ok_or_else(|| {
                Error::InvalidParam(format!("{name} must be a whole number from 1 to 10000"))
            })
    };
    let method = match query.method.as_deref() {
        None => converge_service::media::thumbnail_method("scale"),
        Some(m) => converge_service::media::thumbnail_method(m),
    }
    .ok_or_else(|| Error::InvalidParam("method must be scale or crop".into()))?;
    Ok(ThumbnailSpec {
        width: dimension(&query.width, "width")?,
        height: dimension(&query.height, "height")?,
        method,
    })
}

async fn thumbnail(
    State(state): State<AppState>,
    _: Authed,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<ThumbnailQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let spec = thumbnail_spec(&query)?;
    let file = state
        .services
        .media
        .thumbnail(&server_name, &media_id, spec, false)
        .await?;
    serve(file, None, &headers).await
}

async fn legacy_thumbnail(
    State(state): State<AppState>,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<ThumbnailQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let spec = thumbnail_spec(&query)?;
    let file = state
        .services
        .media
        .thumbnail(&server_name, &media_id, spec, true)
        .await?;
    serve(file, None, &headers).await
}

#[derive(Deserialize)]
struct PreviewQuery {
    url: Option<String>,
}

/// `GET /_matrix/client/v1/media/preview_url`.
async fn preview_url(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<PreviewQuery>,
) -> Result<Json<serde_json::Value>> {
    let url = query
        .url
        .ok_or_else(|| Error::MissingParam("url is required".into()))?;
    Ok(Json(state.services.media.preview_url(&caller, &url).await?))
}

/// The headers that make any served file harmless in a browser: no sniffing, no scripts,
/// no plugins, and an attachment unless the type is on the inline allowlist.
pub fn safe_headers(headers: &mut HeaderMap, content_type: &str, filename: Option<&str>) {
    let disposition = if inline_allowed(content_type) {
        "inline"
    } else {
        "attachment"
    };
    let value = match filename {
        Some(name) => format!("{disposition}; filename*=utf-8''{}", rfc5987(name)),
        None => disposition.to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"),
    );
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

/// Percent-encodes a file name for `filename*=` (RFC 5987 `attr-char` kept as is).
fn rfc5987(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A byte range a client asked for, resolved against the file size.
fn requested_range(headers: &HeaderMap, size: u64) -> Option<Result<(u64, u64), ()>> {
    let value = header_str(headers, header::RANGE)?;
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') {
        // Several ranges: serve the whole file, which the spec of HTTP allows.
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => suffix
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| (size.saturating_sub(n), size.saturating_sub(1))),
        (start, "") => start
            .parse::<u64>()
            .ok()
            .map(|s| (s, size.saturating_sub(1))),
        (start, end) => start
            .parse::<u64>()
            .ok()
            .zip(end.parse::<u64>().ok())
            .map(|(s, e)| (s, e.min(size.saturating_sub(1)))),
    };
    Some(match range {
        Some((start, end)) if start <= end && start < size => Ok((start, end)),
        _ => Err(()),
    })
}

/// Streams a stored file (or the asked byte range of it) with the safety headers.
async fn serve(
    file: MediaFile,
    file_name: Option<String>,
    request: &HeaderMap,
) -> Result<Response> {
    let filename = file_name.or(file.filename.clone());
    let mut handle = tokio::fs::File::open(&file.path)
        .await
        .map_err(Error::internal)?;
    let (status, start, length) = match requested_range(request, file.size) {
        None => (StatusCode::OK, 0, file.size),
        Some(Ok((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Some(Err(())) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", file.size)) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            safe_headers(
                response.headers_mut(),
                &file.content_type,
                filename.as_deref(),
            );
            return Ok(response);
        }
    };
    if start > 0 {
        handle
            .seek(SeekFrom::Start(start))
            .await
            .map_err(Error::internal)?;
    }
    let body = Body::from_stream(ReaderStream::new(handle.take(length)));
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    safe_headers(headers, &file.content_type, filename.as_deref());
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {start}-{}/{}",
            start + length - 1,
            file.size
        ))
    {
        headers.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        requested_range(&headers, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(range("bytes=100-", 100), Some(Err(())));
        assert_eq!(range("bytes=9-1", 100), Some(Err(())));
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
    }

    #[test]
    fn file_names_are_encoded() {
        assert_eq!(rfc5987("a b.png"), "a%20b.png");
        assert_eq!(rfc5987("é\"\r\n.txt"), "%C3%A9%22%0D%0A.txt");
    }
}
