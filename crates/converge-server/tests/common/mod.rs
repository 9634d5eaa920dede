//! The integration-test harness: a real server on 127.0.0.1:0 with its own store, and a
//! small HTTP client for it.
//!
//! The store is a temporary SQLite file, or a fresh PostgreSQL schema when
//! `CONVERGE_TEST_STORE=postgres` and `CONVERGE_TEST_POSTGRES_URL` are set.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use converge_server::Server;
use converge_server::config::{Config, RegistrationMode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct TestServer {
    pub server: Server,
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A logged-in user.
pub struct User {
    pub user_id: String,
    pub token: String,
    pub device_id: String,
}

impl TestServer {
    /// A server with open registration and no rate limits.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.registration.mode = RegistrationMode::Open;
        config.rate_limits.enabled = false;
        if std::env::var("CONVERGE_TEST_STORE").as_deref() == Ok("postgres") {
            let base = converge_store::testing::postgres_base_url()
                .expect("CONVERGE_TEST_STORE=postgres needs CONVERGE_TEST_POSTGRES_URL");
            config.database_url = converge_store::testing::fresh_postgres_url(&base)
                .await
                .expect("test schema");
        }
        adjust(&mut config);
        let server = converge_server::start(config).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        Self {
            server,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Sends a request with an optional JSON body and access token; returns the status and
    /// the JSON body (`Value::Null` if the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let bytes = response.bytes().await.expect("body read");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// Sends raw bytes as the body of a POST.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers `name` through the dummy UIA stage and returns its credentials.
    pub async fn register(&self, name: &str, password: &str) -> User {
        let (status, body) = self
            .post(
                "/_matrix/client/v3/register",
                None,
                json!({ "username": name, "password": password, "auth": { "type": "m.login.dummy" } }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "register {name}: {body}");
        user_from(&body)
    }

    pub async fn login(&self, name: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/_matrix/client/v3/login",
            None,
            json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": name },
                "password": password,
            }),
        )
        .await
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

pub fn user_from(body: &Value) -> User {
    User {
        user_id: body["user_id"].as_str().expect("user_id").to_owned(),
        token: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        device_id: body["device_id"].as_str().expect("device_id").to_owned(),
    }
}

/// Asserts a Matrix error with `status` and `errcode`.
#[track_caller]
pub fn assert_error(result: &(StatusCode, Value), status: u16, errcode: &str) {
    let (got_status, body) = result;
    assert_eq!(got_status.as_u16(), status, "status for {body}");
    assert_eq!(body["errcode"], errcode, "errcode in {body}");
    assert!(body["error"].is_string(), "error message in {body}");
}

/// The password-stage UIA `auth` object for `user`.
pub fn password_auth(user: &str, password: &str, session: &Value) -> Value {
    json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user },
        "password": password,
        "session": session,
    })
}

/// The prefix of the client-server API's v3 endpoints.
pub const V3: &str = "/_matrix/client/v3";

/// Percent-encodes everything but unreserved characters, for path segments and queries.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A transaction ID no other send in this test process uses.
pub fn next_txn() -> String {
    static TXN: AtomicU64 = AtomicU64::new(0);
    format!("txn{}", TXN.fetch_add(1, Ordering::Relaxed))
}

/// Creates a room as `user` and returns its ID.
pub async fn create_room(t: &TestServer, user: &User, body: Value) -> String {
    let (status, body) = t
        .post(&format!("{V3}/createRoom"), Some(&user.token), body)
        .await;
    assert_eq!(status, StatusCode::OK, "createRoom: {body}");
    body["room_id"].as_str().expect("room_id").to_owned()
}
