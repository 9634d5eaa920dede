//! The integration-test harness: a real server on 127.0.0.1:0 with its own store, and a
//! small HTTP client for it.
//!
//! The store is a temporary SQLite file, or a fresh PostgreSQL schema when
//! `CONVERGE_TEST_STORE=postgres` and `CONVERGE_TEST_POSTGRES_URL` are set.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use converge::Server;
use converge_api::state::AppState;
use converge_service::config::{Config, RegistrationMode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

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
        let mut config = test_config(dir.path()).await;
        adjust(&mut config);
        let server = converge::start(config).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        Self {
            server,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
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

    pub async fn stop(self) {
        self.server.shutdown().await;
    }

    /// Shuts the server down and starts it again on the same data (a new port).
    pub async fn restart(self) -> Self {
        let config = (*self.server.state.config).clone();
        let dir = self._dir;
        self.server.shutdown().await;
        let server = converge::start(config).await.expect("server restarts");
        let base = format!("http://{}", server.addr);
        Self {
            server,
            base,
            http: self.http,
            _dir: dir,
        }
    }
}

impl Api for TestServer {
    /// Sends a request with an optional JSON body and access token; returns the status and
    /// the JSON body (`Value::Null` if the body is not JSON).
    async fn call(
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
}

/// The calls tests make, over a real socket ([`TestServer`]) or in-process ([`App`]).
pub trait Api {
    /// Sends a request with an optional JSON body and access token; returns the status and
    /// the JSON body (`Value::Null` if the body is not JSON).
    fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> impl Future<Output = (StatusCode, Value)>;

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// Registers `name` through the dummy UIA stage and returns its credentials.
    async fn register(&self, name: &str, password: &str) -> User {
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

    async fn login(&self, name: &str, password: &str) -> (StatusCode, Value) {
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
}

/// A configuration for tests: open registration, no rate limits, data in `dir`, and a
/// fresh PostgreSQL schema when `CONVERGE_TEST_STORE=postgres`.
pub async fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
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
    config
}

/// The whole application driven in-process through its router (`tower::ServiceExt::oneshot`):
/// no socket and no port, for tests of what handlers answer. Tests that need a socket
/// (long-polls, shutdown, crashes, real clients) use [`TestServer`].
pub struct App {
    pub state: AppState,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

impl App {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path()).await;
        adjust(&mut config);
        let state = converge::build(config, "http://localhost/".into())
            .await
            .expect("the application builds");
        Self {
            router: converge::app(state.clone()),
            state,
            _dir: dir,
        }
    }

    /// Sends a prepared request (any method, headers and body) and returns the response.
    pub async fn send(
        &self,
        request: http::Request<axum::body::Body>,
    ) -> http::Response<axum::body::Body> {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("the router always answers")
    }

    pub async fn stop(self) {
        converge::stop(&self.state).await;
    }
}

impl Api for App {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                axum::body::Body::from(body.to_string())
            }
            None => axum::body::Body::empty(),
        };
        let response = self
            .send(request.body(body).expect("a valid request"))
            .await;
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body read")
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The newest `limit` events of a room, newest first, as `user` sees them.
pub async fn recent_events(t: &impl Api, user: &User, room: &str, limit: u32) -> Vec<Value> {
    let (status, body) = t
        .get(
            &format!("{V3}/rooms/{}/messages?dir=b&limit={limit}", enc(room)),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "messages: {body}");
    body["chunk"].as_array().cloned().unwrap_or_default()
}

/// Sends an `m.text` message and returns its event ID.
pub async fn say(t: &impl Api, user: &User, room: &str, text: &str) -> String {
    let path = format!(
        "{V3}/rooms/{}/send/m.room.message/{}",
        enc(room),
        next_txn()
    );
    let (status, body) = t
        .put(
            &path,
            Some(&user.token),
            json!({ "msgtype": "m.text", "body": text }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "send {text}: {body}");
    body["event_id"].as_str().expect("event_id").to_owned()
}

/// Invites the gateway bot into a room and waits until it has joined.
pub async fn invite_bot(t: &TestServer, user: &User, room: &str) -> String {
    let bot = format!("@converge:{}", t.server.state.config.server_name);
    let (status, body) = t
        .post(
            &format!("{V3}/rooms/{}/invite", enc(room)),
            Some(&user.token),
            json!({ "user_id": bot }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "invite bot: {body}");
    let path = format!("{V3}/rooms/{}/state/m.room.member/{}", enc(room), enc(&bot));
    wait_for(10, "the bot to join", || async {
        let (status, body) = t.get(&path, Some(&user.token)).await;
        (status == StatusCode::OK && body["membership"] == "join").then_some(())
    })
    .await;
    bot
}

/// Sends a `!command` and returns the bot's answer to it (the notice replying to it).
pub async fn command(t: &TestServer, user: &User, room: &str, text: &str) -> String {
    let event_id = say(t, user, room, text).await;
    wait_for(10, &format!("an answer to {text}"), || async {
        recent_events(t, user, room, 30)
            .await
            .into_iter()
            .find_map(|e| {
                let reply_to = &e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"];
                (reply_to == event_id.as_str() && e["sender"].as_str()?.starts_with("@converge:"))
                    .then(|| e["content"]["body"].as_str().unwrap_or_default().to_owned())
            })
    })
    .await
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
pub async fn create_room(t: &impl Api, user: &User, body: Value) -> String {
    let (status, body) = t
        .post(&format!("{V3}/createRoom"), Some(&user.token), body)
        .await;
    assert_eq!(status, StatusCode::OK, "createRoom: {body}");
    body["room_id"].as_str().expect("room_id").to_owned()
}

/// A room of alice (admin) and bob (member), with the bot in it.
pub async fn room_with_bot(t: &TestServer) -> (User, User, String) {
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let room = create_room(t, &alice, json!({ "invite": [bob.user_id] })).await;
    let (status, body) = t
        .post(
            &format!("{V3}/join/{}", enc(&room)),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "bob joins: {body}");
    invite_bot(t, &alice, &room).await;
    (alice, bob, room)
}

/// The bot's direct message to `user` that contains `needle`, joining the bot's direct
/// room when it is still an invite.
pub async fn private_answer(t: &TestServer, user: &User, needle: &str) -> String {
    wait_for(10, &format!("a direct message with {needle:?}"), || async {
        let (_, body) = t
            .get(&format!("{V3}/sync?timeout=0"), Some(&user.token))
            .await;
        let invites = body["rooms"]["invite"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for room_id in invites.keys() {
            t.post(
                &format!("{V3}/join/{}", enc(room_id)),
                Some(&user.token),
                json!({}),
            )
            .await;
        }
        let joined = body["rooms"]["join"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for room_id in joined.keys() {
            let found = recent_events(t, user, room_id, 20)
                .await
                .into_iter()
                .find_map(|e| {
                    let body = e["content"]["body"].as_str()?;
                    (e["sender"].as_str()?.starts_with("@converge:") && body.contains(needle))
                        .then(|| body.to_owned())
                });
            if found.is_some() {
                return found;
            }
        }
        None
    })
    .await
}
