//! Bad input and cross-cutting HTTP behaviour: every failure is a Matrix error with the
//! spec's status, never a panic or a bare 500, and limits hold.

mod common;

use common::{Api, App, TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn unknown_endpoints_and_methods_are_unrecognized() {
    let t = App::start().await;
    assert_error(
        &t.get("/_matrix/client/v3/nonsense", None).await,
        404,
        "M_UNRECOGNIZED",
    );
    // `/` is the web app; a POST there is no endpoint.
    assert_error(&t.post("/", None, json!({})).await, 404, "M_UNRECOGNIZED");
    assert_error(
        &t.call(Method::DELETE, "/_matrix/client/versions", None, None)
            .await,
        405,
        "M_UNRECOGNIZED",
    );
    assert_error(
        &t.get("/_matrix/client/v3/logout", None).await,
        405,
        "M_UNRECOGNIZED",
    );
    t.stop().await;
}

#[tokio::test]
async fn cors_preflight_is_answered_everywhere() {
    let t = TestServer::start().await;
    for path in ["/_matrix/client/v3/login", "/_matrix/client/v3/nonsense"] {
        let response = t
            .http
            .request(Method::OPTIONS, format!("{}{path}", t.base))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert!(
            headers["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("PUT")
        );
        assert!(
            headers["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("Authorization")
        );
    }
    // Ordinary responses, errors included, carry the header too.
    let response = t
        .http
        .get(format!("{}/_matrix/client/v3/nonsense", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    t.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_not_json() {
    let t = TestServer::start().await;
    let cases: &[&[u8]] = &[b"{not json", b"\xff\xfe{}", b"[1, 2", b"\"unterminated"];
    for body in cases {
        let result = t
            .post_raw("/_matrix/client/v3/register", body.to_vec())
            .await;
        assert_error(&result, 400, "M_NOT_JSON");
    }
    t.stop().await;
}

#[tokio::test]
async fn wrongly_shaped_bodies_are_bad_json() {
    let t = App::start().await;
    let register = "/_matrix/client/v3/register";
    assert_error(
        &t.post(register, None, json!({ "username": 5, "password": "x" }))
            .await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        &t.post(register, None, json!([1, 2, 3])).await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        &t.post(register, None, json!({ "inhibit_login": "yes" }))
            .await,
        400,
        "M_BAD_JSON",
    );
    // A login without a type used to panic inside the parser; it is the client's error.
    assert_error(
        &t.post("/_matrix/client/v3/login", None, json!({})).await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        &t.post("/_matrix/client/v3/login", None, json!({ "type": 7 }))
            .await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        &t.post(
            "/_matrix/client/v3/login",
            None,
            json!({ "type": "m.login.sso" }),
        )
        .await,
        400,
        "M_BAD_JSON",
    );
    // The server is still healthy afterwards.
    assert_eq!(t.get("/_converge/health", None).await.0, StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn numbers_out_of_range_are_refused() {
    let t = TestServer::start().await;
    let admin = t
        .server
        .state
        .services
        .registration
        .create_user("root", "pw-root-1".into(), true)
        .await
        .unwrap();
    let (_, body) = t.login(admin.localpart(), "pw-root-1").await;
    let token = body["access_token"].as_str().unwrap();
    let path = "/_converge/admin/v1/registration_tokens";
    for uses in [json!(-1), json!(1e20), json!(4_294_967_296u64), json!(1.5)] {
        assert_error(
            &t.post(path, Some(token), json!({ "uses_allowed": uses }))
                .await,
            400,
            "M_BAD_JSON",
        );
    }
    assert_error(
        &t.post(
            path,
            Some(token),
            json!({ "expires_in": "99999999999999999999w" }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &t.post(path, Some(token), json!({ "expires_in": "yesterday" }))
            .await,
        400,
        "M_INVALID_PARAM",
    );
    t.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let t = App::start().await;
    let (status, body) = t
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({
                "username": "alice", "password": "pw-alice-1", "auth": { "type": "m.login.dummy", "extra": 1 },
                "favourite_colour": "blue", "nested": { "anything": [1, 2] },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_while_reading() {
    let t = TestServer::start_with(|c| c.limits.max_request_bytes = 64 * 1024).await;
    // Declared length over the limit: refused before the body is read.
    let big = vec![b' '; 100 * 1024 * 1024];
    assert_error(
        &t.post_raw("/_matrix/client/v3/register", big).await,
        413,
        "M_TOO_LARGE",
    );
    // No declared length (chunked): refused once the limit is passed.
    let chunks = (0..1600).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024]));
    let stream = futures_util::stream::iter(chunks);
    let result = t
        .post_raw(
            "/_matrix/client/v3/login",
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    assert_error(&result, 413, "M_TOO_LARGE");
    // Just under the limit is fine (and then judged on its content).
    let mut under =
        b"{\"username\":\"bob\",\"password\":\"pw-bob-1\",\"auth\":{\"type\":\"m.login.dummy\"}}"
            .to_vec();
    under.resize(60 * 1024, b' ');
    assert_eq!(
        t.post_raw("/_matrix/client/v3/register", under).await.0,
        StatusCode::OK
    );
    t.stop().await;
}

#[tokio::test]
async fn tokens_are_checked() {
    let t = TestServer::start().await;
    assert_error(
        &t.get("/_matrix/client/v3/account/whoami", None).await,
        401,
        "M_MISSING_TOKEN",
    );
    let result = t
        .get("/_matrix/client/v3/account/whoami", Some("cvga_made_up"))
        .await;
    assert_error(&result, 401, "M_UNKNOWN_TOKEN");
    assert_eq!(result.1["soft_logout"], false);
    let response = t
        .http
        .get(format!("{}/_matrix/client/v3/account/whoami", t.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The deprecated query parameter works too.
    let alice = t.register("alice", "pw-alice-1").await;
    let (status, body) = t
        .get(
            &format!(
                "/_matrix/client/v3/account/whoami?access_token={}",
                alice.token
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user_id"], alice.user_id);
    t.stop().await;
}

#[tokio::test]
async fn invalid_and_overlong_user_ids() {
    let t = App::start().await;
    let register = |name: String| {
        let t = &t;
        async move {
            t.post("/_matrix/client/v3/register", None, json!({ "username": name, "password": "pw-1", "auth": { "type": "m.login.dummy" } }))
                .await
        }
    };
    for name in [
        "Alice".to_owned(),
        "al ice".into(),
        "al:ice".into(),
        "".into(),
        "a".repeat(300),
        "ålice".into(),
    ] {
        assert_error(&register(name.clone()).await, 400, "M_INVALID_USERNAME");
    }
    assert_error(
        &t.get(
            "/_matrix/client/v3/register/available?username=Bad%20Name",
            None,
        )
        .await,
        400,
        "M_INVALID_USERNAME",
    );
    assert_error(
        &t.get("/_matrix/client/v3/profile/not-a-user-id", None)
            .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &t.get(
            &format!("/_matrix/client/v3/profile/@{}:localhost", "a".repeat(300)),
            None,
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &t.get("/_matrix/client/v3/profile/@nobody:localhost", None)
            .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.get("/_matrix/client/v3/profile/@alice:elsewhere.org", None)
            .await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

#[tokio::test]
async fn login_and_register_are_rate_limited() {
    let t = App::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.login.burst = 3;
        c.rate_limits.login.per_second = 0.01;
        c.rate_limits.register.burst = 2;
        c.rate_limits.register.per_second = 0.01;
    })
    .await;
    for _ in 0..3 {
        assert_error(&t.login("nobody", "wrong").await, 403, "M_FORBIDDEN");
    }
    let limited = t.login("nobody", "wrong").await;
    assert_error(&limited, 429, "M_LIMIT_EXCEEDED");
    assert!(limited.1["retry_after_ms"].as_u64().unwrap() > 1000);

    for _ in 0..2 {
        assert_eq!(
            t.get("/_matrix/client/v3/register/available?username=free", None)
                .await
                .0,
            StatusCode::OK
        );
    }
    assert_error(
        &t.get("/_matrix/client/v3/register/available?username=free", None)
            .await,
        429,
        "M_LIMIT_EXCEEDED",
    );
    t.stop().await;
}

#[tokio::test]
async fn failed_logins_per_account_are_limited_across_addresses() {
    let t = App::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.login_account.burst = 2;
        c.rate_limits.login_account.per_second = 0.01;
    })
    .await;
    t.register("alice", "pw-alice-1").await;
    for _ in 0..2 {
        assert_error(&t.login("alice", "guess").await, 403, "M_FORBIDDEN");
    }
    assert_error(
        &t.login("alice", "pw-alice-1").await,
        429,
        "M_LIMIT_EXCEEDED",
    );
    t.stop().await;
}

#[tokio::test]
async fn internal_errors_do_not_leak_details() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    // Pull the store out from under the server: requests now fail inside.
    t.server.state.services.close_store().await;
    let (status, body) = t
        .get("/_matrix/client/v3/account/whoami", Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({ "errcode": "M_UNKNOWN", "error": "Internal server error" })
    );
    let (status, body) = t.get("/_converge/health", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["store"]["ok"], false);
}
