//! Converge's admin API and analytics (`docs/admin-api.md`), and the web app served at `/`:
//! every admin endpoint refuses non-admins, users and tokens and rooms are managed for real
//! (logins, registrations and joins change accordingly), analytics count what happened, and
//! the app's files come with their types, caching and Content-Security-Policy.

mod common;

use common::{Api, App, User, V3, assert_error, create_room, enc, say};
use http::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "/_converge/admin/v1";

/// A server admin made the way an operator does, logged in.
async fn root(t: &App) -> User {
    t.state
        .services
        .registration
        .create_user("root", "pw-root-1".into(), true)
        .await
        .unwrap();
    let (status, body) = t.login("root", "pw-root-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    common::user_from(&body)
}

#[tokio::test]
async fn setup_tells_a_first_visitor_whether_there_is_an_admin() {
    let t = App::start().await;
    let (status, setup) = t.get("/_converge/v1/setup", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(setup["server_name"], "localhost");
    assert_eq!(setup["has_admin"], false);
    assert_eq!(setup["registration"], "open");
    assert!(setup["version"].is_string());
    root(&t).await;
    let (_, setup) = t.get("/_converge/v1/setup", None).await;
    assert_eq!(setup["has_admin"], true);
}

#[tokio::test]
async fn every_admin_endpoint_refuses_everyone_else() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let gets = [
        "/users",
        "/registration_tokens",
        "/rooms",
        "/metrics",
        "/analytics",
        "/reports",
    ];
    for path in gets {
        let path = format!("{ADMIN}{path}");
        assert_error(&t.get(&path, None).await, 401, "M_MISSING_TOKEN");
        assert_error(&t.get(&path, Some(&alice.token)).await, 403, "M_FORBIDDEN");
    }
    let writes = [
        (
            "/users",
            json!({ "localpart": "x", "password": "pw-x-12345" }),
        ),
        ("/users/@alice:localhost/deactivate", json!({})),
        (
            "/users/@alice:localhost/password",
            json!({ "password": "pw-new-12345" }),
        ),
        ("/rooms/!r:localhost/shutdown", json!({})),
    ];
    for (path, body) in writes {
        let path = format!("{ADMIN}{path}");
        assert_error(
            &t.post(&path, Some(&alice.token), body).await,
            403,
            "M_FORBIDDEN",
        );
    }
    assert_error(
        &t.put(
            &format!("{ADMIN}/users/@alice:localhost/admin"),
            Some(&alice.token),
            json!({ "admin": true }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    // Still not an admin, still able to log in.
    assert_eq!(t.login("alice", "pw-alice-1").await.0, StatusCode::OK);
}

#[tokio::test]
async fn admins_list_create_promote_reset_and_deactivate_users() {
    let t = App::start().await;
    let admin = root(&t).await;
    let token = Some(admin.token.as_str());
    for name in ["alice", "bob", "carol"] {
        t.register(name, &format!("pw-{name}-1")).await;
    }
    // A page at a time, in localpart order; searches match localparts and names.
    let (status, page) = t.get(&format!("{ADMIN}/users?limit=2"), token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), ["@alice:localhost", "@bob:localhost"]);
    // Following `next_from` lists everyone once, the gateways' bot too.
    let mut all = ids(&page);
    let mut next = page["next_from"].as_str().map(str::to_owned);
    let mut root_row = Value::Null;
    while let Some(from) = next {
        let (_, rest) = t
            .get(&format!("{ADMIN}/users?limit=2&from={}", enc(&from)), token)
            .await;
        all.extend(ids(&rest));
        if let Some(row) = rest["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user_id"] == "@root:localhost")
        {
            root_row = row.clone();
        }
        next = rest["next_from"].as_str().map(str::to_owned);
    }
    assert_eq!(
        all,
        [
            "@alice:localhost",
            "@bob:localhost",
            "@carol:localhost",
            "@converge:localhost",
            "@root:localhost"
        ]
    );
    let (_, found) = t.get(&format!("{ADMIN}/users?search=CAR"), token).await;
    assert_eq!(ids(&found), ["@carol:localhost"]);
    let (_, found) = t
        .get(
            &format!("{ADMIN}/users?search={}", enc("@bob:localhost")),
            token,
        )
        .await;
    assert_eq!(ids(&found), ["@bob:localhost"]);
    assert_eq!(root_row["admin"], true);
    assert!(root_row["last_seen_ts"].is_i64(), "{root_row}");
    assert_error(
        &t.get(&format!("{ADMIN}/users?limit=x"), token).await,
        400,
        "M_INVALID_PARAM",
    );

    // Created whatever the registration mode; taken and reserved names are refused.
    let (status, made) = t
        .post(
            &format!("{ADMIN}/users"),
            token,
            json!({ "localpart": "dave", "password": "pw-dave-1", "admin": false }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(made["user_id"], "@dave:localhost");
    assert_eq!(t.login("dave", "pw-dave-1").await.0, StatusCode::OK);
    assert_error(
        &t.post(
            &format!("{ADMIN}/users"),
            token,
            json!({ "localpart": "dave", "password": "pw-dave-2" }),
        )
        .await,
        400,
        "M_USER_IN_USE",
    );
    assert_error(
        &t.post(
            &format!("{ADMIN}/users"),
            token,
            json!({ "localpart": "Bad Name", "password": "pw-dave-2" }),
        )
        .await,
        400,
        "M_INVALID_USERNAME",
    );

    // Promoted, Dave can list users; admins cannot demote themselves.
    let promote = format!("{ADMIN}/users/@dave:localhost/admin");
    let (status, _) = t.put(&promote, token, json!({ "admin": true })).await;
    assert_eq!(status, StatusCode::OK);
    let (_, login) = t.login("dave", "pw-dave-1").await;
    let dave = common::user_from(&login);
    assert_eq!(
        t.get(&format!("{ADMIN}/users"), Some(&dave.token)).await.0,
        StatusCode::OK
    );
    assert_error(
        &t.put(
            &format!("{ADMIN}/users/@root:localhost/admin"),
            token,
            json!({ "admin": false }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    // Demoted again, the same token loses the admin API at once.
    t.put(&promote, token, json!({ "admin": false })).await;
    assert_error(
        &t.get(&format!("{ADMIN}/users"), Some(&dave.token)).await,
        403,
        "M_FORBIDDEN",
    );

    // A reset password replaces the old one and logs every device out.
    let (_, bob_login) = t.login("bob", "pw-bob-1").await;
    let bob = common::user_from(&bob_login);
    let (status, body) = t
        .post(
            &format!("{ADMIN}/users/@bob:localhost/password"),
            token,
            json!({ "password": "pw-bob-new-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &t.get(&format!("{V3}/account/whoami"), Some(&bob.token))
            .await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(&t.login("bob", "pw-bob-1").await, 403, "M_FORBIDDEN");
    assert_eq!(t.login("bob", "pw-bob-new-1").await.0, StatusCode::OK);
    assert_error(
        &t.post(
            &format!("{ADMIN}/users/@bob:localhost/password"),
            token,
            json!({ "password": "" }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );

    // Deactivated: out of their rooms, and no more logins.
    let (_, carol_login) = t.login("carol", "pw-carol-1").await;
    let carol = common::user_from(&carol_login);
    let room = create_room(&t, &carol, json!({ "preset": "public_chat" })).await;
    let (status, _) = t
        .post(
            &format!("{ADMIN}/users/@carol:localhost/deactivate"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &t.login("carol", "pw-carol-1").await,
        403,
        "M_USER_DEACTIVATED",
    );
    let (_, members) = t
        .get(
            &format!("{V3}/rooms/{}/joined_members", enc(&room)),
            Some(&admin.token),
        )
        .await;
    assert!(
        members["joined"].get("@carol:localhost").is_none(),
        "{members}"
    );
    for (path, status, errcode) in [
        ("/users/@ghost:localhost/deactivate", 404, "M_NOT_FOUND"),
        ("/users/@root:localhost/deactivate", 403, "M_FORBIDDEN"),
        (
            "/users/@bob:elsewhere.example/deactivate",
            400,
            "M_INVALID_PARAM",
        ),
    ] {
        assert_error(
            &t.post(&format!("{ADMIN}{path}"), token, json!({})).await,
            status,
            errcode,
        );
    }
}

#[tokio::test]
async fn registration_tokens_are_listed_and_revoked() {
    let t = App::start_with(|c| {
        c.registration.mode = converge_service::config::RegistrationMode::Token;
    })
    .await;
    let admin = root(&t).await;
    let token = Some(admin.token.as_str());
    let (_, made) = t
        .post(
            &format!("{ADMIN}/registration_tokens"),
            token,
            json!({ "uses_allowed": 2, "expires_in": "7d" }),
        )
        .await;
    let code = made["token"].as_str().unwrap().to_owned();
    let (status, list) = t.get(&format!("{ADMIN}/registration_tokens"), token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["tokens"][0]["token"], code.as_str());
    assert_eq!(list["tokens"][0]["uses_allowed"], 2);
    assert!(list["tokens"][0]["expiry_time"].is_i64());
    let path = format!("{ADMIN}/registration_tokens/{code}");
    let (status, _) = t.call(reqwest::Method::DELETE, &path, token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &t.call(reqwest::Method::DELETE, &path, token, None).await,
        404,
        "M_NOT_FOUND",
    );
    let (_, list) = t.get(&format!("{ADMIN}/registration_tokens"), token).await;
    assert_eq!(list["tokens"], json!([]));
    // A revoked token registers nobody.
    let (_, valid) = t
        .get(
            &format!(
                "/_matrix/client/v1/register/m.login.registration_token/validity?token={code}"
            ),
            None,
        )
        .await;
    assert_eq!(valid["valid"], false);
}

#[tokio::test]
async fn rooms_are_listed_with_their_figures_and_shut_down() {
    let t = App::start().await;
    let admin = root(&t).await;
    let token = Some(admin.token.as_str());
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let ops = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "name": "Ops", "room_alias_name": "ops", "visibility": "public" }),
    )
    .await;
    let quiet = create_room(&t, &alice, json!({ "name": "Quiet" })).await;
    t.post(
        &format!("{V3}/join/{}", enc(&ops)),
        Some(&bob.token),
        json!({}),
    )
    .await;
    for n in 0..3 {
        say(&t, &alice, &ops, &format!("hello {n}")).await;
    }
    let (status, list) = t.get(&format!("{ADMIN}/rooms"), token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let row = |list: &Value, id: &str| -> Value {
        list["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["room_id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let ops_row = row(&list, &ops);
    assert_eq!(ops_row["name"], "Ops");
    assert_eq!(ops_row["canonical_alias"], "#ops:localhost");
    assert_eq!(ops_row["joined_members"], 2);
    assert_eq!(ops_row["public"], true);
    assert_eq!(ops_row["shut_down"], false);
    let (_, page) = t
        .get(
            &format!("{V3}/rooms/{}/messages?dir=b&limit=100", enc(&ops)),
            Some(&alice.token),
        )
        .await;
    assert_eq!(
        ops_row["events"],
        page["chunk"].as_array().unwrap().len(),
        "every event of the room, counted as it was written"
    );
    let (_, found) = t.get(&format!("{ADMIN}/rooms?search=qui"), token).await;
    assert_eq!(found["rooms"].as_array().unwrap().len(), 1);
    assert_eq!(found["rooms"][0]["room_id"], quiet.as_str());
    let (_, first) = t.get(&format!("{ADMIN}/rooms?limit=1"), token).await;
    let next = first["next_from"].as_str().unwrap();
    let (_, second) = t
        .get(&format!("{ADMIN}/rooms?limit=1&from={}", enc(next)), token)
        .await;
    assert_ne!(first["rooms"][0]["room_id"], second["rooms"][0]["room_id"]);

    // Shut down: everyone leaves, nobody comes back, the directory forgets it.
    let (status, shut) = t
        .post(
            &format!("{ADMIN}/rooms/{}/shutdown", enc(&ops)),
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shut}");
    let mut left: Vec<&str> = shut["kicked_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["@alice:localhost", "@bob:localhost"]);
    assert_error(
        &t.post(
            &format!("{V3}/join/{}", enc(&ops)),
            Some(&bob.token),
            json!({}),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    let (_, directory) = t.get(&format!("{V3}/publicRooms"), None).await;
    assert!(
        !directory["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room_id"] == ops.as_str()),
        "{directory}"
    );
    let (_, list) = t.get(&format!("{ADMIN}/rooms"), token).await;
    assert_eq!(row(&list, &ops)["shut_down"], true);
    assert_eq!(row(&list, &ops)["joined_members"], 0);
    assert_error(
        &t.post(
            &format!("{ADMIN}/rooms/{}/shutdown", enc("!nope:localhost")),
            token,
            json!({}),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
}

#[tokio::test]
async fn analytics_count_messages_users_media_and_hook_posts() {
    let t = App::start().await;
    let admin = root(&t).await;
    let token = Some(admin.token.as_str());
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({ "name": "Busy" })).await;
    let other = create_room(&t, &alice, json!({})).await;
    for n in 0..4 {
        say(&t, &alice, &room, &format!("busy {n}")).await;
    }
    say(&t, &alice, &other, "once").await;
    // A hook post, counted as gateway traffic.
    let (_, hook) = t
        .post(
            &format!("{ADMIN}/rooms/{}/webhooks", enc(&room)),
            Some(&alice.token),
            json!({}),
        )
        .await;
    let hook_path = format!("/_converge/hooks/{}", hook["hook_id"].as_str().unwrap());
    let (status, posted) = t
        .post(&hook_path, None, json!({ "text": "deployed" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    // Some media.
    let upload = http::Request::post("/_matrix/media/v3/upload?filename=a.txt")
        .header("authorization", format!("Bearer {}", alice.token))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from(vec![b'x'; 1000]))
        .unwrap();
    assert_eq!(t.send(upload).await.status(), StatusCode::OK);

    let (status, report) = t.get(&format!("{ADMIN}/analytics?days=7"), token).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["days"], 7);
    let today = |series: &Value| series.as_array().unwrap().last().unwrap()["count"].clone();
    assert_eq!(
        report["messages_per_day"].as_array().unwrap().len(),
        7,
        "one entry per day"
    );
    assert_eq!(
        today(&report["messages_per_day"]),
        6,
        "four, one, and the hook's"
    );
    assert_eq!(report["top_rooms"][0]["room_id"], room.as_str());
    assert_eq!(report["top_rooms"][0]["name"], "Busy");
    assert_eq!(report["top_rooms"][0]["messages"], 5);
    let busy_today: Vec<&Value> = report["messages_per_room_per_day"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["room_id"] == room.as_str())
        .collect();
    assert_eq!(busy_today.len(), 1);
    assert_eq!(busy_today[0]["count"], 5);
    assert_eq!(
        today(&report["daily_active_users"]),
        2,
        "alice and root used their tokens"
    );
    assert_eq!(report["monthly_active_users"], 2);
    assert_eq!(report["media"]["count"], 1);
    assert_eq!(report["media"]["bytes"], 1000);
    assert_eq!(today(&report["gateways"]["hook_posts"]), 1);
    assert_eq!(today(&report["gateways"]["device_samples"]), 0);
    assert_error(
        &t.get(&format!("{ADMIN}/analytics?days=soon"), token).await,
        400,
        "M_INVALID_PARAM",
    );

    // The metrics, for admins through the API.
    let request = http::Request::get(format!("{ADMIN}/metrics"))
        .header("authorization", format!("Bearer {}", admin.token))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = t.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("converge_http_requests_total"), "{text}");
}

/// Fetches a path of the app with the given `Accept-Encoding`.
async fn fetch(
    t: &App,
    method: &str,
    path: &str,
    encoding: Option<&str>,
) -> http::Response<axum::body::Body> {
    let mut request = http::Request::builder().method(method).uri(path);
    if let Some(encoding) = encoding {
        request = request.header("accept-encoding", encoding);
    }
    t.send(request.body(axum::body::Body::empty()).unwrap())
        .await
}

async fn bytes(response: http::Response<axum::body::Body>) -> Vec<u8> {
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[tokio::test]
async fn the_web_app_is_served_at_the_root_with_a_strict_policy() {
    let t = App::start().await;
    let page = fetch(&t, "GET", "/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = String::from_utf8(bytes(page).await).unwrap();
    assert!(html.contains("<script type=\"module\""), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");

    // The app's own routes get the same page; API paths keep their Matrix errors.
    for route in ["/rooms/!abc:localhost", "/admin/users", "/login"] {
        let response = fetch(&t, "GET", route, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{route}");
        assert_eq!(String::from_utf8(bytes(response).await).unwrap(), html);
    }
    for path in [
        "/_matrix/client/v3/nope",
        "/_converge/nope",
        "/.well-known/nope",
    ] {
        let response = fetch(&t, "GET", path, None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = serde_json::from_slice(&bytes(response).await).unwrap();
        assert_eq!(body["errcode"], "M_UNRECOGNIZED");
    }
    assert_eq!(
        fetch(&t, "POST", "/", None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fetch(&t, "GET", "/assets/gone-1234.js", None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A script the page loads: its type, cached for good, gzipped when the browser asks.
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page loads a script")
        .to_owned();
    let plain = fetch(&t, "GET", &script, None).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        plain.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        plain.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = bytes(plain).await;
    let gzipped = fetch(&t, "GET", &script, Some("br, gzip;q=0.8")).await;
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let compressed = bytes(gzipped).await;
    assert!(compressed.len() < plain.len());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain);
    let refused = fetch(&t, "GET", &script, Some("gzip;q=0")).await;
    assert!(refused.headers().get("content-encoding").is_none());

    // The crypto's WebAssembly, with the type streaming compilation needs.
    let wasm = converge_web::paths()
        .find(|p| p.ends_with(".wasm"))
        .expect("the build has the crypto's wasm");
    let response = fetch(&t, "GET", wasm, None).await;
    assert_eq!(response.headers()["content-type"], "application/wasm");
}
