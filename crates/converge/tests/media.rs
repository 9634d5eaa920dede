//! The media repository over real HTTP: round trips, reservations, the safety headers,
//! path tricks, streaming limits, thumbnails and SSRF-safe URL previews.

mod common;

use std::io::Cursor;

use axum::response::{Html, IntoResponse, Redirect};
use common::{Api, TestServer, assert_error};
use converge_service::config::LegacyDownload;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 200]));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn upload(
    t: &TestServer,
    token: &str,
    content_type: &str,
    bytes: Vec<u8>,
    filename: Option<&str>,
) -> (StatusCode, Value) {
    let mut url = format!("{}/_matrix/media/v3/upload", t.base);
    if let Some(name) = filename {
        url.push_str(&format!("?filename={name}"));
    }
    let response = t
        .http
        .post(url)
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn media_path(mxc: &str) -> String {
    mxc.strip_prefix("mxc://").unwrap().to_owned()
}

async fn download(t: &TestServer, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut request = t.http.get(format!("{}{path}", t.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files_in(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn uploads_round_trip_byte_for_byte() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (status, body) = upload(
        &t,
        &alice.token,
        "application/octet-stream",
        bytes.clone(),
        Some("data.bin"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = media_path(body["content_uri"].as_str().unwrap());
    assert!(path.starts_with("localhost/"));

    let response = download(
        &t,
        Some(&alice.token),
        &format!("/_matrix/client/v1/media/download/{path}"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename*=utf-8''data.bin"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // The name in the URL wins.
    let response = download(
        &t,
        Some(&alice.token),
        &format!("/_matrix/client/v1/media/download/{path}/other.bin"),
    )
    .await;
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename*=utf-8''other.bin"
    );
    // Authenticated endpoints need a token.
    let response = download(
        &t,
        None,
        &format!("/_matrix/client/v1/media/download/{path}"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Range requests, for audio and video seeking.
    let response = t
        .http
        .get(format!(
            "{}/_matrix/client/v1/media/download/{path}",
            t.base
        ))
        .bearer_auth(&alice.token)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.headers()["content-range"],
        "bytes 1000-1999/300000"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), &bytes[1000..2000]);
    let response = t
        .http
        .get(format!(
            "{}/_matrix/client/v1/media/download/{path}",
            t.base
        ))
        .bearer_auth(&alice.token)
        .header("range", "bytes=400000-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Identical content is stored once.
    let before = files_in(&t.server.state.config.data_dir.join("media"));
    let (_, again) = upload(
        &t,
        &alice.token,
        "application/octet-stream",
        bytes.clone(),
        None,
    )
    .await;
    assert_ne!(again["content_uri"], body["content_uri"]);
    assert_eq!(
        files_in(&t.server.state.config.data_dir.join("media")),
        before
    );

    let (_, config) = t
        .get("/_matrix/client/v1/media/config", Some(&alice.token))
        .await;
    assert_eq!(config["m.upload.size"], 50 * 1024 * 1024);
    t.stop().await;
}

#[tokio::test]
async fn legacy_downloads_follow_the_configuration() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, body) = upload(&t, &alice.token, "text/plain", b"hello".to_vec(), None).await;
    let path = media_path(body["content_uri"].as_str().unwrap());
    // Uploaded after the switch to authenticated media: not on the legacy endpoint.
    let response = download(&t, None, &format!("/_matrix/media/v3/download/{path}")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    t.stop().await;

    let t = TestServer::start_with(|c| c.media.legacy_download = LegacyDownload::All).await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, body) = upload(&t, &alice.token, "text/plain", b"hello".to_vec(), None).await;
    let path = media_path(body["content_uri"].as_str().unwrap());
    let response = download(&t, None, &format!("/_matrix/media/v3/download/{path}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "hello");
    t.stop().await;
}

#[tokio::test]
async fn reserved_uploads() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let (status, created) = t
        .post("/_matrix/media/v1/create", Some(&alice.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(created["unused_expires_at"].as_i64().unwrap() > 0);
    let path = media_path(created["content_uri"].as_str().unwrap());
    let download_path = format!("/_matrix/client/v1/media/download/{path}");
    let pending = download(&t, Some(&alice.token), &download_path).await;
    assert_eq!(pending.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        pending.json::<Value>().await.unwrap()["errcode"],
        "M_NOT_YET_UPLOADED"
    );

    let put = |token: &str, bytes: &'static [u8]| {
        t.http
            .put(format!("{}/_matrix/media/v3/upload/{path}", t.base))
            .bearer_auth(token.to_owned())
            .header("content-type", "text/plain")
            .body(bytes)
            .send()
    };
    let response = put(&bob.token, b"not yours").await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = put(&alice.token, b"reserved content").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = put(&alice.token, b"again").await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        response.json::<Value>().await.unwrap()["errcode"],
        "M_CANNOT_OVERWRITE_MEDIA"
    );
    assert_eq!(
        download(&t, Some(&bob.token), &download_path)
            .await
            .text()
            .await
            .unwrap(),
        "reserved content"
    );
    let response = t
        .http
        .put(format!(
            "{}/_matrix/media/v3/upload/localhost/NOSUCHMEDIA",
            t.base
        ))
        .bearer_auth(&alice.token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn media_is_served_safely() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let cases = [
        ("text/html", false),
        ("TEXT/HTML; charset=utf-8", false),
        ("image/svg+xml", false),
        ("Image/SVG+XML", false),
        ("application/javascript", false),
        ("text/javascript; charset=utf-8", false),
        ("application/xhtml+xml", false),
        ("image/png", true),
        ("video/mp4", true),
        ("audio/ogg", true),
        ("text/plain; charset=utf-8", true),
    ];
    for (content_type, inline) in cases {
        let (status, body) = upload(
            &t,
            &alice.token,
            content_type,
            b"<script>alert(1)</script>".to_vec(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let path = media_path(body["content_uri"].as_str().unwrap());
        let response = download(
            &t,
            Some(&alice.token),
            &format!("/_matrix/client/v1/media/download/{path}"),
        )
        .await;
        let headers = response.headers();
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert_eq!(
            disposition.starts_with("inline"),
            inline,
            "{content_type}: {disposition}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("sandbox; default-src 'none'")
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cross-origin-resource-policy"], "cross-origin");
    }
    t.stop().await;
}

#[tokio::test]
async fn paths_cannot_escape_the_media_store() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    for path in [
        "localhost/..",
        "localhost/%2e%2e",
        "localhost/a%2Fb",
        "localhost/a%5Cb",
        "localhost/a%00b",
        "localhost/..%2F..%2Fconverge.db",
        "..%2F../x",
        "local%2Fhost/abc",
        "localhost/a.b",
    ] {
        let response = download(
            &t,
            Some(&alice.token),
            &format!("/_matrix/client/v1/media/download/{path}"),
        )
        .await;
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["errcode"].is_string(), "{path}: {body}");
    }
    // Media of other servers cannot be fetched (there is no federation yet).
    let response = download(
        &t,
        Some(&alice.token),
        "/_matrix/client/v1/media/download/example.org/abc",
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(t.get("/_converge/health", None).await.0, StatusCode::OK);
    t.stop().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn oversized_uploads_stop_while_streaming() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let url = format!("{}/_matrix/media/v3/upload", t.base);
    let before = rss_kib();
    // 200 MB, made up chunk by chunk on the client so neither side holds it whole.
    let chunks = (0..3200).map(|_| Ok::<_, std::io::Error>(vec![7u8; 64 * 1024]));
    let response = t
        .http
        .post(&url)
        .bearer_auth(&alice.token)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    match response {
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(
                response.json::<Value>().await.unwrap()["errcode"],
                "M_TOO_LARGE"
            );
        }
        // The server may close the connection while the client is still sending.
        Err(err) => assert!(err.is_request() || err.is_body(), "{err}"),
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 60 * 1024,
        "memory grew by {grown} KiB for a refused 200 MB upload"
    );
    // A declared length over the limit is refused before reading.
    let response = t
        .http
        .post(&url)
        .bearer_auth(&alice.token)
        .header("content-length", (200u64 * 1024 * 1024).to_string())
        .body(vec![0u8; 10])
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    // Nothing half-written stays behind, and the server is fine.
    assert_eq!(
        files_in(&t.server.state.config.data_dir.join("media").join("tmp")),
        0
    );
    assert_eq!(t.get("/_converge/health", None).await.0, StatusCode::OK);
    t.stop().await;
}

/// A PNG whose header claims `width` × `height` pixels but whose data is tiny: a
/// decompression bomb's calling card.
fn bomb(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(8, 8);
    // IHDR data starts at byte 16 (8 signature + 4 length + 4 type).
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn thumbnails_are_made_once_and_only_from_real_images() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, body) = upload(
        &t,
        &alice.token,
        "image/png",
        png(640, 480),
        Some("photo.png"),
    )
    .await;
    let path = media_path(body["content_uri"].as_str().unwrap());
    let thumb = format!("/_matrix/client/v1/media/thumbnail/{path}?width=32&height=32&method=crop");
    let response = download(&t, Some(&alice.token), &thumb).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    let first = response.bytes().await.unwrap();
    let image = image::load_from_memory(&first).unwrap();
    assert_eq!((image.width(), image.height()), (32, 32));
    let again = download(&t, Some(&alice.token), &thumb)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(first, again, "served from the cache");
    let scaled = download(
        &t,
        Some(&alice.token),
        &format!("/_matrix/client/v1/media/thumbnail/{path}?width=300&height=200&method=scale"),
    )
    .await;
    let image = image::load_from_memory(&scaled.bytes().await.unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (320, 240));

    let refused = |bytes: Vec<u8>, content_type: &'static str| {
        let t = &t;
        let token = alice.token.clone();
        async move {
            let (_, body) = upload(t, &token, content_type, bytes, None).await;
            let path = media_path(body["content_uri"].as_str().unwrap());
            let response = download(
                t,
                Some(&token),
                &format!("/_matrix/client/v1/media/thumbnail/{path}?width=32&height=32"),
            )
            .await;
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let mut corrupt = png(64, 64);
    corrupt.truncate(80);
    for (bytes, content_type) in [
        (b"just text".to_vec(), "image/png"),
        (corrupt, "image/png"),
        (bomb(60_000, 60_000), "image/png"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'></svg>".to_vec(),
            "image/svg+xml",
        ),
    ] {
        let (status, body) = refused(bytes, content_type).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["errcode"], "M_UNKNOWN");
    }
    assert_error(
        &t.get(
            &format!("/_matrix/client/v1/media/thumbnail/{path}?width=0&height=32"),
            Some(&alice.token),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &t.get(
            &format!("/_matrix/client/v1/media/thumbnail/{path}?width=32&height=32&method=zoom"),
            Some(&alice.token),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_eq!(t.get("/_converge/health", None).await.0, StatusCode::OK);
    t.stop().await;
}

/// A small website on 127.0.0.2 (allowlisted in the tests) with pages that redirect
/// to places the preview must refuse.
async fn test_site(target_port: u16) -> std::net::SocketAddr {
    let image = png(50, 40);
    let app = axum::Router::new()
        .route(
            "/page",
            axum::routing::get(|| async {
                Html(r#"<html><head><title>Fallback</title><meta property="og:title" content="Converge test page">
                <meta property="og:description" content="A page for previews"><meta property="og:image" content="/image.png"></head></html>"#)
            }),
        )
        .route("/image.png", axum::routing::get(move || { let image = image.clone(); async move { ([("content-type", "image/png")], image).into_response() } }))
        .route("/to-loopback", axum::routing::get(move || async move { Redirect::temporary(&format!("http://127.0.0.1:{target_port}/page")) }))
        .route("/to-localhost", axum::routing::get(move || async move { Redirect::temporary(&format!("http://localhost:{target_port}/page")) }))
        .route("/to-mapped", axum::routing::get(move || async move { Redirect::temporary(&format!("http://[::ffff:127.0.0.1]:{target_port}/page")) }))
        .route("/slow", axum::routing::get(|| async { tokio::time::sleep(std::time::Duration::from_secs(5)).await; "late" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn url_previews_refuse_internal_addresses() {
    let t = TestServer::start_with(|c| {
        c.media.url_preview.allow = vec!["127.0.0.2/32".into()];
        c.media.url_preview.timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let alice = t.register("alice", "pw-alice-1").await;
    let port = t.server.addr.port();
    let site = test_site(port).await;
    let preview = |url: String| {
        let t = &t;
        let token = alice.token.clone();
        async move {
            let response = t
                .http
                .get(format!("{}/_matrix/client/v1/media/preview_url", t.base))
                .query(&[("url", url)])
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (
                response.status(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, og) = preview(format!("http://{site}/page")).await;
    assert_eq!(status, StatusCode::OK, "{og}");
    assert_eq!(og["og:title"], "Converge test page");
    assert_eq!(og["og:description"], "A page for previews");
    assert!(
        og["og:image"]
            .as_str()
            .unwrap()
            .starts_with("mxc://localhost/"),
        "{og}"
    );
    assert_eq!(og["og:image:width"], 50);

    for blocked in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://{site}/to-loopback"),
        format!("http://{site}/to-localhost"),
        format!("http://{site}/to-mapped"),
    ] {
        let (status, body) = preview(blocked.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{blocked}: {body}");
        assert_eq!(body["errcode"], "M_FORBIDDEN");
    }
    let (status, _) = preview(format!("http://{site}/slow")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "time limit");
    let (status, _) = preview("file:///etc/passwd".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(
        &t.call(
            Method::GET,
            "/_matrix/client/v1/media/preview_url",
            Some(&alice.token),
            None,
        )
        .await,
        400,
        "M_MISSING_PARAM",
    );
    t.stop().await;
}

#[tokio::test]
async fn old_media_can_be_purged() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, body) = upload(&t, &alice.token, "text/plain", b"old news".to_vec(), None).await;
    let path = media_path(body["content_uri"].as_str().unwrap());
    let media_dir = t.server.state.config.data_dir.join("media");
    let files = files_in(&media_dir);
    let deleted = t
        .server
        .state
        .services
        .media
        .purge_before(converge_service::now_ms() + 1000)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(files_in(&media_dir), files - 1);
    let response = download(
        &t,
        Some(&alice.token),
        &format!("/_matrix/client/v1/media/download/{path}"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn unreferenced_media_can_be_purged() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, kept) = upload(&t, &alice.token, "image/png", png(8, 8), None).await;
    let (_, dropped) = upload(
        &t,
        &alice.token,
        "text/plain",
        b"nobody links to me".to_vec(),
        None,
    )
    .await;
    let kept_uri = kept["content_uri"].as_str().unwrap();
    let (_, room) = t
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({}),
        )
        .await;
    let room_id = room["room_id"].as_str().unwrap();
    let content = json!({ "msgtype": "m.image", "body": "pic.png", "url": kept_uri });
    let (status, _) = t
        .put(
            &format!("/_matrix/client/v3/rooms/{room_id}/send/m.room.message/pic1"),
            Some(&alice.token),
            content,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let deleted = t
        .server
        .state
        .services
        .media
        .purge_unreferenced(converge_service::now_ms() + 1000)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let response = download(
        &t,
        Some(&alice.token),
        &format!("/_matrix/client/v1/media/download/{}", media_path(kept_uri)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = download(
        &t,
        Some(&alice.token),
        &format!(
            "/_matrix/client/v1/media/download/{}",
            media_path(dropped["content_uri"].as_str().unwrap())
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}
