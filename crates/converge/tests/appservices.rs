//! Application services against a small appservice written here (axum on 127.0.0.1:0):
//! registrations that cannot stand refuse the start naming the file; transactions survive a
//! Converge restart exactly once and in order; a hanging appservice holds up nobody else;
//! and what an appservice may do as its users (timestamps, devices, whole state events,
//! third-party lookups), with its state in the admin API and the metrics. The mautrix suite in
//! `tests/e2e-bridge` drives the same API with a real bridge.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::routing::{get, post, put};
use common::{Api, TestServer, User, V3, assert_error, create_room, enc, say, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How the appservice answers transactions.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Accept,
    Fail,
    Hang,
}

/// What the appservice saw.
#[derive(Default)]
struct Seen {
    /// Every transaction attempt: (txn ID, body).
    attempts: Vec<(String, Value)>,
    /// The bodies of transactions it accepted, by ID.
    accepted: BTreeMap<String, Value>,
    bad_tokens: usize,
    queries: Vec<String>,
}

#[derive(Clone)]
struct Appservice {
    hs_token: String,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
}

impl Appservice {
    fn new(hs_token: &str) -> Self {
        Self {
            hs_token: hs_token.into(),
            mode: Arc::new(Mutex::new(Mode::Accept)),
            seen: Arc::default(),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let ok = headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {}", self.hs_token));
        if !ok {
            self.seen.lock().unwrap().bad_tokens += 1;
        }
        ok
    }

    /// The event IDs of accepted transactions, in transaction order.
    fn delivered(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let mut ids: Vec<(u64, &Value)> = seen
            .accepted
            .iter()
            .map(|(id, body)| (id.parse().unwrap(), body))
            .collect();
        ids.sort_by_key(|(id, _)| *id);
        ids.iter()
            .flat_map(|(_, body)| body["events"].as_array().cloned().unwrap_or_default())
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn serve(&self) -> SocketAddr {
        async fn transaction(
            State(app): State<Appservice>,
            UrlPath(txn): UrlPath<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (AxStatus, String) {
            if !app.authorised(&headers) {
                return (AxStatus::FORBIDDEN, "{}".into());
            }
            let body: Value = serde_json::from_slice(&body).unwrap_or_default();
            app.seen
                .lock()
                .unwrap()
                .attempts
                .push((txn.clone(), body.clone()));
            let mode = *app.mode.lock().unwrap();
            match mode {
                Mode::Accept => {
                    app.seen.lock().unwrap().accepted.insert(txn, body);
                    (AxStatus::OK, "{}".into())
                }
                Mode::Fail => (AxStatus::SERVICE_UNAVAILABLE, "{}".into()),
                Mode::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    (AxStatus::OK, "{}".into())
                }
            }
        }
        async fn protocol(
            State(app): State<Appservice>,
            UrlPath(protocol): UrlPath<String>,
            headers: HeaderMap,
        ) -> (AxStatus, String) {
            if !app.authorised(&headers) || protocol != "irc" {
                return (AxStatus::NOT_FOUND, "{}".into());
            }
            let described = json!({
                "user_fields": ["network", "nickname"],
                "location_fields": ["network", "channel"],
                "icon": "mxc://example.org/irc",
                "field_types": {
                    "network": { "regexp": "[a-z]+", "placeholder": "libera" },
                    "nickname": { "regexp": ".+", "placeholder": "nick" },
                    "channel": { "regexp": "#.+", "placeholder": "#rust" },
                },
                "instances": [{ "desc": "Libera", "fields": { "network": "libera" }, "network_id": "libera" }],
            });
            (AxStatus::OK, described.to_string())
        }
        async fn location(
            State(app): State<Appservice>,
            headers: HeaderMap,
            Query(query): Query<BTreeMap<String, String>>,
        ) -> (AxStatus, String) {
            if !app.authorised(&headers) {
                return (AxStatus::FORBIDDEN, "{}".into());
            }
            app.seen
                .lock()
                .unwrap()
                .queries
                .push(serde_json::to_string(&query).unwrap());
            let channel = query.get("channel").cloned().unwrap_or_default();
            let found = json!([{
                "alias": format!("#irc_{}:localhost", channel.trim_start_matches('#')),
                "protocol": "irc",
                "fields": { "network": "libera", "channel": channel },
            }]);
            (AxStatus::OK, found.to_string())
        }
        async fn ping(State(app): State<Appservice>, headers: HeaderMap) -> (AxStatus, String) {
            if app.authorised(&headers) {
                (AxStatus::OK, "{}".into())
            } else {
                (AxStatus::FORBIDDEN, "{}".into())
            }
        }
        let router = Router::new()
            .route("/_matrix/app/v1/transactions/{txn}", put(transaction))
            .route(
                "/_matrix/app/v1/thirdparty/protocol/{protocol}",
                get(protocol),
            )
            .route(
                "/_matrix/app/v1/thirdparty/location/{protocol}",
                get(location),
            )
            .route("/_matrix/app/v1/ping", post(ping))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }
}

/// A registration file for `id` claiming `@{prefix}.*` exclusively, at `url`.
fn registration(dir: &Path, id: &str, prefix: &str, url: Option<&str>, extra: &str) -> PathBuf {
    let path = dir.join(format!("{id}.yaml"));
    let url = url.map_or("null".to_owned(), |u| format!("\"{u}\""));
    let yaml = [
        format!("id: {id}"),
        format!("url: {url}"),
        format!("as_token: as-{id}-0123456789abcdef"),
        format!("hs_token: hs-{id}-0123456789abcdef"),
        format!("sender_localpart: {id}bot"),
        "rate_limited: false".to_owned(),
        "receive_ephemeral: true".to_owned(),
        "namespaces:".to_owned(),
        "  users:".to_owned(),
        "    - exclusive: true".to_owned(),
        format!("      regex: '@{prefix}.*:localhost'"),
        "  aliases:".to_owned(),
        "    - exclusive: true".to_owned(),
        format!("      regex: '#{prefix}.*:localhost'"),
        "  rooms: []".to_owned(),
        extra.to_owned(),
    ]
    .join("\n");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn as_token(id: &str) -> String {
    format!("as-{id}-0123456789abcdef")
}

async fn start(
    files: Vec<PathBuf>,
    adjust: impl FnOnce(&mut converge_service::Config),
) -> TestServer {
    TestServer::start_with(|c| {
        c.appservices.registration_files = files;
        c.appservices.timeout = Duration::from_secs(2);
        c.appservices.max_retry_interval = Duration::from_secs(1);
        adjust(c);
    })
    .await
}

/// The appservice registers a puppet and joins it to a room `alice` made.
async fn room_with_puppet(t: &TestServer, id: &str, puppet: &str) -> (User, String) {
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(t, &alice, json!({ "preset": "public_chat" })).await;
    let (status, body) = t
        .post(
            "/_matrix/client/v3/register",
            Some(&as_token(id)),
            json!({ "type": "m.login.application_service", "username": puppet, "inhibit_login": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .post(
            &format!("{V3}/join/{}?user_id=@{puppet}:localhost", enc(&room)),
            Some(&as_token(id)),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (alice, room)
}

#[tokio::test]
async fn registrations_that_cannot_stand_refuse_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let start_with = |files: Vec<PathBuf>, allow: bool| {
        let data = tempfile::tempdir().unwrap();
        async move {
            let mut config = common::test_config(data.path()).await;
            config.appservices.registration_files = files;
            config.appservices.allow_existing_users = allow;
            let result = converge::start(config).await;
            let message = match result {
                Ok(server) => {
                    server.shutdown().await;
                    None
                }
                Err(err) => Some(err.to_string()),
            };
            (message, data)
        }
    };
    let tg = registration(dir.path(), "tg", "tg_", None, "");
    let tg_bots = registration(dir.path(), "tgbots", "tg_bot_", None, "");
    let (err, _) = start_with(vec![tg.clone(), tg_bots.clone()], false).await;
    let err = err.expect("overlapping exclusive namespaces refuse the start");
    assert!(
        err.contains("tgbots.yaml") && err.contains("namespaces.users"),
        "{err}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&tg)
            .unwrap()
            .replace("'@tg_.*:localhost'", "'@tg_(:localhost'"),
    )
    .unwrap();
    let (err, _) = start_with(vec![bad], false).await;
    let err = err.expect("a bad regex refuses the start");
    assert!(
        err.contains("bad.yaml") && err.contains("namespaces.users[0].regex"),
        "{err}"
    );

    let missing_key = dir.path().join("nokey.yaml");
    std::fs::write(&missing_key, "id: x\nurl: null\n").unwrap();
    let (err, _) = start_with(vec![missing_key], false).await;
    assert!(err.unwrap().contains("nokey.yaml"));

    // A namespace covering an existing user is refused unless allowed.
    let data = tempfile::tempdir().unwrap();
    let mut config = common::test_config(data.path()).await;
    let services = converge::services(&config).await.unwrap();
    services
        .registration
        .create_user("tg_real", "pw-real-1".into(), false)
        .await
        .unwrap();
    services.close_store().await;
    config.appservices.registration_files = vec![tg.clone()];
    let err = match converge::start(config.clone()).await {
        Ok(_) => panic!("an exclusive namespace over an existing user refuses the start"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("@tg_real:localhost") && err.contains("allow_existing_users"),
        "{err}"
    );
    config.appservices.allow_existing_users = true;
    converge::start(config).await.unwrap().shutdown().await;
}

#[tokio::test]
async fn transactions_survive_a_restart_exactly_once_and_in_order() {
    let app = Appservice::new("hs-bridge-0123456789abcdef");
    let addr = app.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let file = registration(
        dir.path(),
        "bridge",
        "puppet_",
        Some(&format!("http://{addr}")),
        "",
    );
    let mut t = start(vec![file], |_| {}).await;
    let (alice, room) = room_with_puppet(&t, "bridge", "puppet_bob").await;
    wait_for(10, "the puppet's join", || async {
        app.delivered().len().ge(&1).then_some(())
    })
    .await;

    // The appservice goes down; five messages wait; Converge restarts; it comes back.
    app.set(Mode::Fail);
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(say(&t, &alice, &room, &format!("while down {n}")).await);
    }
    wait_for(10, "a failed attempt", || async {
        (!app.seen.lock().unwrap().attempts.is_empty()).then_some(())
    })
    .await;
    t = t.restart().await;
    sent.push(say(&t, &alice, &room, "after the restart").await);
    app.set(Mode::Accept);
    let delivered = wait_for(20, "every message", || async {
        let delivered = app.delivered();
        sent.iter()
            .all(|id| delivered.contains(id))
            .then_some(delivered)
    })
    .await;
    let messages: Vec<&String> = delivered.iter().filter(|id| sent.contains(id)).collect();
    assert_eq!(
        messages,
        sent.iter().collect::<Vec<_>>(),
        "once each, in order"
    );
    {
        let seen = app.seen.lock().unwrap();
        assert_eq!(seen.bad_tokens, 0);
        // A transaction ID always carries the same events.
        for (txn, body) in &seen.attempts {
            if let Some(accepted) = seen.accepted.get(txn) {
                assert_eq!(
                    accepted["events"], body["events"],
                    "transaction {txn} changed"
                );
            }
        }
    }
    // The admin API and the metrics show it.
    let root = admin(&t).await;
    let (_, list) = t
        .get("/_converge/admin/v1/appservices", Some(&root.token))
        .await;
    let bridge = &list["appservices"][0];
    assert_eq!(bridge["id"], "bridge");
    assert_eq!(bridge["queued"], 0);
    assert_eq!(bridge["up"], true);
    assert!(bridge["last_success_ts"].is_i64(), "{bridge}");
    let (_, health) = t.get("/_converge/health", None).await;
    assert_eq!(health["appservices"]["bridge"]["up"], true);
    assert!(
        health["appservices"]["bridge"].get("url").is_none(),
        "no URLs in public"
    );
    t.stop().await;
}

/// A server admin, made the way an operator does.
async fn admin(t: &TestServer) -> User {
    t.server
        .state
        .services
        .registration
        .create_user("root", "pw-root-1".into(), true)
        .await
        .unwrap();
    let (_, body) = t.login("root", "pw-root-1").await;
    common::user_from(&body)
}

#[tokio::test]
async fn a_hanging_appservice_holds_up_nobody_else() {
    let (slow, fast) = (
        Appservice::new("hs-slow-0123456789abcdef"),
        Appservice::new("hs-fast-0123456789abcdef"),
    );
    slow.set(Mode::Hang);
    let (slow_addr, fast_addr) = (slow.serve().await, fast.serve().await);
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        registration(
            dir.path(),
            "slow",
            "slow_",
            Some(&format!("http://{slow_addr}")),
            "",
        ),
        registration(
            dir.path(),
            "fast",
            "fast_",
            Some(&format!("http://{fast_addr}")),
            "",
        ),
    ];
    let t = start(files, |_| {}).await;
    let (alice, room) = room_with_puppet(&t, "slow", "slow_one").await;
    let (status, _) = t
        .post(
            "/_matrix/client/v3/register",
            Some(&as_token("fast")),
            json!({ "type": "m.login.application_service", "username": "fast_one" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    t.post(
        &format!("{V3}/join/{}?user_id=@fast_one:localhost", enc(&room)),
        Some(&as_token("fast")),
        json!({}),
    )
    .await;
    let id = say(&t, &alice, &room, "for both").await;
    let started = std::time::Instant::now();
    wait_for(5, "the fast appservice's delivery", || async {
        fast.delivered().contains(&id).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        !slow.delivered().contains(&id),
        "the slow one never answered"
    );
    t.stop().await;
}

#[tokio::test]
async fn an_appservice_acts_for_its_users() {
    let app = Appservice::new("hs-irc-0123456789abcdef");
    let addr = app.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let file = registration(
        dir.path(),
        "irc",
        "irc_",
        Some(&format!("http://{addr}")),
        "protocols: [irc]\nio.element.msc4190: true\norg.matrix.msc3202: true\n",
    );
    let t = start(vec![file], |_| {}).await;
    let token = as_token("irc");
    let (alice, room) = room_with_puppet(&t, "irc", "irc_nick").await;
    let as_puppet = |path: &str| {
        format!(
            "{path}{}user_id=@irc_nick:localhost",
            if path.contains('?') { "&" } else { "?" }
        )
    };

    // Timestamp massaging: the event carries the bridge's time, not now.
    let path = as_puppet(&format!(
        "{V3}/rooms/{}/send/m.room.message/t1?ts=1000000000000",
        enc(&room)
    ));
    let (status, sent) = t
        .put(
            &path,
            Some(&token),
            json!({ "msgtype": "m.text", "body": "from irc" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let (_, event) = t
        .get(
            &format!(
                "{V3}/rooms/{}/event/{}",
                enc(&room),
                enc(sent["event_id"].as_str().unwrap())
            ),
            Some(&alice.token),
        )
        .await;
    assert_eq!(event["origin_server_ts"], 1_000_000_000_000u64);
    assert_eq!(event["sender"], "@irc_nick:localhost");
    // Others cannot set a timestamp.
    let (_, own) = t
        .put(
            &format!(
                "{V3}/rooms/{}/send/m.room.message/t2?ts=1000000000000",
                enc(&room)
            ),
            Some(&alice.token),
            json!({ "msgtype": "m.text", "body": "mine" }),
        )
        .await;
    let (_, own) = t
        .get(
            &format!(
                "{V3}/rooms/{}/event/{}",
                enc(&room),
                enc(own["event_id"].as_str().unwrap())
            ),
            Some(&alice.token),
        )
        .await;
    assert_ne!(own["origin_server_ts"], 1_000_000_000_000u64);

    // Devices (MSC4190): made with PUT, then used with ?device_id=.
    let device = as_puppet(&format!("{V3}/devices/BRIDGEDEV"));
    let (status, body) = t
        .put(&device, Some(&token), json!({ "display_name": "Bridge" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, whoami) = t
        .get(
            &as_puppet("/_matrix/client/v3/account/whoami?device_id=BRIDGEDEV"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    assert_eq!(whoami["device_id"], "BRIDGEDEV");
    assert_error(
        &t.get(
            &as_puppet("/_matrix/client/v3/account/whoami?device_id=NOPE"),
            Some(&token),
        )
        .await,
        400,
        "M_UNKNOWN_DEVICE",
    );

    // A whole state event with format=event (mautrix reads m.room.create this way).
    let (status, create) = t
        .get(
            &format!(
                "{V3}/rooms/{}/state/m.room.create/?format=event",
                enc(&room)
            ),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{create}");
    assert_eq!(create["type"], "m.room.create");
    assert_eq!(create["room_id"], room.as_str());
    assert!(create["event_id"].is_string() && create["content"].is_object());

    // Aliases in its exclusive namespace are its alone.
    assert_error(
        &t.put(
            &format!("{V3}/directory/room/{}", enc("#irc_rust:localhost")),
            Some(&alice.token),
            json!({ "room_id": room }),
        )
        .await,
        400,
        "M_EXCLUSIVE",
    );
    let (status, _) = t
        .put(
            &as_puppet(&format!(
                "{V3}/directory/room/{}",
                enc("#irc_rust:localhost")
            )),
            Some(&token),
            json!({ "room_id": room }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Third-party lookups go to the appservice that declares the protocol.
    let (status, protocols) = t
        .get(&format!("{V3}/thirdparty/protocols"), Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{protocols}");
    assert_eq!(protocols["irc"]["instances"][0]["network_id"], "libera");
    let (status, found) = t
        .get(
            &format!("{V3}/thirdparty/location/irc?network=libera&channel=%23rust"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found[0]["alias"], "#irc_rust:localhost");
    assert!(app.seen.lock().unwrap().queries[0].contains("#rust"));
    assert_error(
        &t.get(
            &format!("{V3}/thirdparty/protocol/xmpp"),
            Some(&alice.token),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );

    // The metrics count its transactions.
    wait_for(10, "a transaction", || async {
        (!app.delivered().is_empty()).then_some(())
    })
    .await;
    let root = admin(&t).await;
    let response = reqwest::Client::new()
        .get(format!("{}/_converge/admin/v1/metrics", t.base))
        .bearer_auth(&root.token)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            "converge_appservice_transactions_total{appservice=\"irc\",outcome=\"sent\"}"
        ),
        "{text}"
    );
    // A reload with a broken file keeps what is in use.
    let (status, body) = t
        .post(
            "/_converge/admin/v1/appservices/reload",
            Some(&root.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["loaded"], 1);
    assert_error(
        &t.post(
            "/_converge/admin/v1/appservices/reload",
            Some(&alice.token),
            json!({}),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    t.stop().await;
}
