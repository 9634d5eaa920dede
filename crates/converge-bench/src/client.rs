//! Just enough of a Matrix client for load: register, create and join rooms, send, sync.

use std::time::Duration;

use serde_json::{Value, json};

pub type Result<T> = std::result::Result<T, String>;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// The server's root URL, for endpoints outside the client-server API.
    root: String,
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: String,
    pub token: String,
    pub device_id: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(20_000)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client builds");
        let root = base.trim_end_matches('/').to_owned();
        Self {
            http,
            base: format!("{root}/_matrix/client/v3"),
            root,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let value = response.json().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// POSTs JSON to a path from the server's root (such as Converge's own endpoints).
    pub async fn post_root(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let mut request = self.http.post(format!("{}{path}", self.root)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// GETs a path from the server's root.
    pub async fn get_root(&self, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
        let mut request = self.http.get(format!("{}{path}", self.root));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// POSTs JSON to a client-server API path and wants a 200.
    pub async fn post(&self, s: &Session, path: &str, body: &Value) -> Result<Value> {
        Self::ok(
            path,
            self.call(reqwest::Method::POST, path, Some(&s.token), Some(body))
                .await?,
        )
    }

    /// PUTs JSON to a client-server API path and wants a 200.
    pub async fn put(&self, s: &Session, path: &str, body: &Value) -> Result<Value> {
        Self::ok(
            path,
            self.call(reqwest::Method::PUT, path, Some(&s.token), Some(body))
                .await?,
        )
    }

    fn ok(path: &str, (status, body): (u16, Value)) -> Result<Value> {
        if status == 200 {
            Ok(body)
        } else {
            Err(format!("{path}: HTTP {status}: {body}"))
        }
    }

    /// Registers through the dummy UIA stage (open registration).
    pub async fn register(&self, username: &str, password: &str) -> Result<Session> {
        let body = json!({ "username": username, "password": password, "inhibit_login": false });
        let (status, challenge) = self
            .call(reqwest::Method::POST, "/register", None, Some(&body))
            .await?;
        let done = if status == 401 {
            let auth = json!({ "username": username, "password": password, "auth": { "type": "m.login.dummy", "session": challenge["session"] } });
            Self::ok(
                "/register",
                self.call(reqwest::Method::POST, "/register", None, Some(&auth))
                    .await?,
            )?
        } else {
            Self::ok("/register", (status, challenge))?
        };
        Ok(Session {
            user_id: done["user_id"].as_str().ok_or("no user_id")?.to_owned(),
            token: done["access_token"]
                .as_str()
                .ok_or("no access_token")?
                .to_owned(),
            device_id: done["device_id"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Logs a user in again: a new device with a new token. Servers that cache a sync per
    /// device (Synapse does) then compute a fresh one.
    pub async fn login(&self, user_id: &str, password: &str) -> Result<Session> {
        let body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user_id },
            "password": password,
        });
        let done = Self::ok(
            "/login",
            self.call(reqwest::Method::POST, "/login", None, Some(&body))
                .await?,
        )?;
        Ok(Session {
            user_id: done["user_id"].as_str().ok_or("no user_id")?.to_owned(),
            token: done["access_token"]
                .as_str()
                .ok_or("no access_token")?
                .to_owned(),
            device_id: done["device_id"].as_str().unwrap_or_default().to_owned(),
        })
    }

    pub async fn create_room(&self, s: &Session, body: Value) -> Result<String> {
        let done = Self::ok(
            "/createRoom",
            self.call(
                reqwest::Method::POST,
                "/createRoom",
                Some(&s.token),
                Some(&body),
            )
            .await?,
        )?;
        Ok(done["room_id"].as_str().ok_or("no room_id")?.to_owned())
    }

    pub async fn join(&self, s: &Session, room_id: &str) -> Result<()> {
        let path = format!("/join/{}", urlencode(room_id));
        Self::ok(
            &path,
            self.call(
                reqwest::Method::POST,
                &path,
                Some(&s.token),
                Some(&json!({})),
            )
            .await?,
        )?;
        Ok(())
    }

    pub async fn send(
        &self,
        s: &Session,
        room_id: &str,
        txn: &str,
        content: &Value,
    ) -> Result<String> {
        let path = format!("/rooms/{}/send/m.room.message/{txn}", urlencode(room_id));
        let done = Self::ok(
            &path,
            self.call(reqwest::Method::PUT, &path, Some(&s.token), Some(content))
                .await?,
        )?;
        Ok(done["event_id"].as_str().ok_or("no event_id")?.to_owned())
    }

    /// Sends and returns the raw status, for callers that count failures.
    pub async fn try_send(
        &self,
        s: &Session,
        room_id: &str,
        txn: &str,
        content: &Value,
    ) -> Result<(u16, Value)> {
        let path = format!("/rooms/{}/send/m.room.message/{txn}", urlencode(room_id));
        self.call(reqwest::Method::PUT, &path, Some(&s.token), Some(content))
            .await
    }

    pub async fn sync(
        &self,
        s: &Session,
        since: Option<&str>,
        timeout_ms: u64,
        filter: Option<&str>,
    ) -> Result<Value> {
        let mut path = format!("/sync?timeout={timeout_ms}");
        if let Some(since) = since {
            path.push_str(&format!("&since={}", urlencode(since)));
        }
        if let Some(filter) = filter {
            path.push_str(&format!("&filter={}", urlencode(filter)));
        }
        Self::ok(
            "/sync",
            self.call(reqwest::Method::GET, &path, Some(&s.token), None)
                .await?,
        )
    }

    /// Pages a room's whole history forwards; returns every event.
    pub async fn all_messages(&self, s: &Session, room_id: &str) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let mut path = format!("/rooms/{}/messages?dir=f&limit=500", urlencode(room_id));
            if let Some(from) = &from {
                path.push_str(&format!("&from={}", urlencode(from)));
            }
            let page = Self::ok(
                &path,
                self.call(reqwest::Method::GET, &path, Some(&s.token), None)
                    .await?,
            )?;
            let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
            let empty = chunk.is_empty();
            events.extend(chunk);
            match page["end"].as_str() {
                Some(end) if !empty && Some(end) != from.as_deref() => from = Some(end.to_owned()),
                _ => return Ok(events),
            }
        }
    }
}

/// Percent-encodes a path segment or query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
