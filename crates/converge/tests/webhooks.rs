//! The webhook gateway over real HTTP: hooks made by chat command and admin API, POSTs
//! turning into messages a client syncs, every refusal, and outgoing hooks delivering
//! from the durable outbox across a restart while the receiver was down.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::{
    Api, TestServer, V3, assert_error, command, enc, private_answer, recent_events, room_with_bot,
    say, wait_for,
};
use converge_gateways::signature;
use converge_service::config::Rate;
use http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Pulls the hook's path and secret out of the bot's direct message after `!webhook new`.
fn hook_from_answer(answer: &str) -> (String, String) {
    let path_at = answer
        .find("/_converge/hooks/")
        .expect("a hook URL in the answer");
    let path: String = answer[path_at..]
        .chars()
        .take_while(|c| *c != '`' && !c.is_whitespace())
        .collect();
    let secret_at = answer.find("Secret: `").expect("a secret in the answer") + "Secret: `".len();
    let secret: String = answer[secret_at..]
        .chars()
        .take_while(|c| *c != '`')
        .collect();
    (path, secret)
}

async fn post_hook(
    t: &TestServer,
    path: &str,
    content_type: &str,
    body: impl Into<Vec<u8>>,
    signature: Option<String>,
) -> (StatusCode, Value) {
    let mut request = t
        .http
        .post(format!("{}{path}", t.base))
        .header("content-type", content_type)
        .body(body.into());
    if let Some(signature) = signature {
        request = request.header(signature::HEADER, signature);
    }
    let response = request.send().await.expect("hook POST");
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_hook_made_in_chat_posts_messages_a_client_syncs() {
    let t = TestServer::start().await;
    let (alice, bob, room) = room_with_bot(&t).await;
    let answer = command(&t, &alice, &room, "!webhook new CI").await;
    assert!(
        answer.contains("direct message") && !answer.contains("Secret"),
        "{answer}"
    );
    let hook_id = answer
        .split('`')
        .nth(1)
        .expect("the hook ID in the answer")
        .to_owned();
    let dm = private_answer(&t, &alice, &format!("Webhook `{hook_id}` (in")).await;
    let (path, secret) = hook_from_answer(&dm);
    assert!(path.ends_with(&hook_id));

    let (status, body) = t
        .get(&format!("{V3}/sync?timeout=0"), Some(&bob.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let since = body["next_batch"].as_str().unwrap().to_owned();

    let posts: [(&str, &[u8]); 4] = [
        ("application/json", br#"{"text": "**deploy** done"}"#),
        (
            "application/json",
            br#"{"text": "plain *stars*", "format": "plain"}"#,
        ),
        ("application/json", br#"{"content": "from discord"}"#),
        ("text/plain", b"from curl"),
    ];
    for (content_type, body) in posts {
        let (status, answer) = post_hook(&t, &path, content_type, body, None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer["event_id"].as_str().unwrap().starts_with('$'));
    }

    // Bob sees them through an ordinary incremental sync, from the hook's virtual user.
    let (status, body) = t
        .get(
            &format!("{V3}/sync?timeout=5000&since={since}"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = body["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .expect("timeline")
        .clone();
    let messages: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["sender"]
                .as_str()
                .is_some_and(|s| s.starts_with("@hook-"))
        })
        .collect();
    assert_eq!(messages.len(), 4, "{events:?}");
    assert_eq!(messages[0]["content"]["body"], "**deploy** done");
    assert_eq!(messages[0]["content"]["format"], "org.matrix.custom.html");
    assert_eq!(
        messages[0]["content"]["formatted_body"],
        "<strong>deploy</strong> done"
    );
    assert!(messages[1]["content"].get("formatted_body").is_none());
    assert_eq!(messages[2]["content"]["body"], "from discord");
    assert_eq!(messages[3]["content"]["body"], "from curl");

    // The hook's user carries the name given, and listing shows the hook.
    let hook_user = messages[0]["sender"].as_str().unwrap();
    let (_, profile) = t
        .get(
            &format!("{V3}/profile/{}", enc(hook_user)),
            Some(&bob.token),
        )
        .await;
    assert_eq!(profile["displayname"], "CI");
    let list = command(&t, &alice, &room, "!webhook list").await;
    assert!(list.contains(&hook_id) && !list.contains(&path), "{list}");
    // Neither the secret nor the URL (a credential itself) was shown in the shared room.
    for event in recent_events(&t, &bob, &room, 100).await {
        let text = event.to_string();
        assert!(!text.contains(&secret) && !text.contains(&path), "{text}");
    }

    // Revoked: the URL is gone and the hook's user left.
    let answer = command(&t, &alice, &room, &format!("!webhook revoke {hook_id}")).await;
    assert!(answer.contains("revoked"), "{answer}");
    let gone = post_hook(
        &t,
        &path,
        "application/json",
        br#"{"text":"x"}"#.to_vec(),
        None,
    )
    .await;
    assert_error(&gone, 404, "M_NOT_FOUND");
    let (_, member) = t
        .get(
            &format!(
                "{V3}/rooms/{}/state/m.room.member/{}",
                enc(&room),
                enc(hook_user)
            ),
            Some(&alice.token),
        )
        .await;
    assert_eq!(member["membership"], "leave");
    t.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_posted() {
    let t = TestServer::start_with(|c| c.gateways.set("webhooks.max_body_bytes", 2048)).await;
    let (alice, _bob, room) = room_with_bot(&t).await;
    let (status, created) = t
        .post(
            &format!("/_converge/admin/v1/rooms/{}/webhooks", enc(&room)),
            Some(&alice.token),
            json!({ "name": "signed hook", "signed": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let path = format!("/_converge/hooks/{}", created["hook_id"].as_str().unwrap());
    let secret = created["secret"].as_str().unwrap();
    let before = recent_events(&t, &alice, &room, 100).await.len();

    let json = "application/json";
    let ok_body = br#"{"text":"signed hello"}"#;
    assert_error(
        &post_hook(
            &t,
            "/_converge/hooks/doesnotexist",
            json,
            ok_body.to_vec(),
            None,
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    // A signed hook refuses missing, wrong, stale and replayed signatures.
    assert_error(
        &post_hook(&t, &path, json, ok_body.to_vec(), None).await,
        401,
        "M_UNAUTHORIZED",
    );
    let wrong = signature::sign("not the secret", now_secs(), ok_body);
    assert_error(
        &post_hook(&t, &path, json, ok_body.to_vec(), Some(wrong)).await,
        401,
        "M_UNAUTHORIZED",
    );
    let stale = signature::sign(secret, now_secs() - 301, ok_body);
    assert_error(
        &post_hook(&t, &path, json, ok_body.to_vec(), Some(stale)).await,
        401,
        "M_UNAUTHORIZED",
    );
    let garbage = "t=now,v1=nothex".to_owned();
    assert_error(
        &post_hook(&t, &path, json, ok_body.to_vec(), Some(garbage)).await,
        401,
        "M_UNAUTHORIZED",
    );
    // Signed over other bytes than those sent.
    let other = signature::sign(secret, now_secs(), br#"{"text":"other"}"#);
    assert_error(
        &post_hook(&t, &path, json, ok_body.to_vec(), Some(other)).await,
        401,
        "M_UNAUTHORIZED",
    );

    let good = signature::sign(secret, now_secs(), ok_body);
    let (status, answer) = post_hook(&t, &path, json, ok_body.to_vec(), Some(good.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_error(
        &post_hook(&t, &path, json, ok_body.to_vec(), Some(good)).await,
        401,
        "M_UNAUTHORIZED",
    );

    // Malformed and oversized bodies, correctly signed, are still refused.
    let sign = |body: &[u8]| Some(signature::sign(secret, now_secs(), body));
    let bad_json = b"{\"text\": ".to_vec();
    assert_error(
        &post_hook(&t, &path, json, bad_json.clone(), sign(&bad_json)).await,
        400,
        "M_NOT_JSON",
    );
    let no_text = br#"{"message":"x"}"#.to_vec();
    assert_error(
        &post_hook(&t, &path, json, no_text.clone(), sign(&no_text)).await,
        400,
        "M_BAD_JSON",
    );
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(4096)).into_bytes();
    assert_error(
        &post_hook(&t, &path, json, big.clone(), sign(&big)).await,
        413,
        "M_TOO_LARGE",
    );

    let after = recent_events(&t, &alice, &room, 100).await;
    assert_eq!(after.len(), before + 1, "only the one good POST was posted");
    assert_eq!(after[0]["content"]["body"], "signed hello");
    t.stop().await;
}

#[tokio::test]
async fn each_hook_is_rate_limited() {
    let t = TestServer::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.webhook = Rate {
            per_second: 0.01,
            burst: 2,
        };
    })
    .await;
    let (alice, _bob, room) = room_with_bot(&t).await;
    command(&t, &alice, &room, "!webhook new").await;
    let (path, _) = hook_from_answer(&private_answer(&t, &alice, "Secret:").await);
    for _ in 0..2 {
        let (status, body) = post_hook(&t, &path, "text/plain", "hi", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_error(
        &post_hook(&t, &path, "text/plain", "hi", None).await,
        429,
        "M_LIMIT_EXCEEDED",
    );
    t.stop().await;
}

#[tokio::test]
async fn only_room_admins_manage_hooks() {
    let t = TestServer::start().await;
    let (alice, bob, room) = room_with_bot(&t).await;
    let answer = command(&t, &bob, &room, "!webhook new").await;
    assert!(
        answer.starts_with("⚠️") && answer.contains("power"),
        "{answer}"
    );
    let admin_api = format!("/_converge/admin/v1/rooms/{}/webhooks", enc(&room));
    assert_error(
        &t.post(&admin_api, Some(&bob.token), json!({})).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.get(&admin_api, Some(&bob.token)).await,
        403,
        "M_FORBIDDEN",
    );
    let (status, list) = t.get(&admin_api, Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["webhooks"], json!([]), "bob's command created nothing");
    // Nobody can register the names the gateways use.
    let taken = t
        .post(
            &format!("{V3}/register"),
            None,
            json!({ "username": "hook-mine", "password": "password-x", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_error(&taken, 400, "M_EXCLUSIVE");
    t.stop().await;
}

/// A receiver of outgoing webhooks that can be stopped and started on one port.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn serve(&self, addr: SocketAddr) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State(r): State<Receiver>, headers: HeaderMap, body: Bytes| async move {
                        r.got.lock().unwrap().push((headers, body));
                        StatusCode::OK
                    },
                ),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("receiver binds");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        (addr, stop)
    }

    fn bodies(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| {
                let value: Value = serde_json::from_slice(body).unwrap();
                value["event"]["content"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
}

#[tokio::test]
async fn outgoing_hooks_deliver_what_was_missed_across_a_restart() {
    let mut t = TestServer::start_with(|c| {
        c.gateways.set("webhooks.allow", vec!["127.0.0.1/32"]);
        c.gateways.set("webhooks.max_retry_interval", "1s");
    })
    .await;
    let (alice, _bob, room) = room_with_bot(&t).await;
    let receiver = Receiver::default();
    let (addr, stop_receiver) = receiver.serve("127.0.0.1:0".parse().unwrap()).await;
    let answer = command(
        &t,
        &alice,
        &room,
        &format!("!webhook subscribe http://{addr}/hook types=m.room.message prefix=>"),
    )
    .await;
    assert!(
        answer.contains("created") && !answer.contains("hook?"),
        "{answer}"
    );
    let dm = private_answer(&t, &alice, "made with the secret").await;
    let secret_at = dm.find("the secret `").unwrap() + "the secret `".len();
    let secret: String = dm[secret_at..].chars().take_while(|c| *c != '`').collect();
    say(&t, &alice, &room, "> one").await;
    say(&t, &alice, &room, "not for the hook").await;
    wait_for(10, "the first delivery", || async {
        (receiver.bodies() == ["> one"]).then_some(())
    })
    .await;
    {
        let got = receiver.got.lock().unwrap();
        let (headers, body) = &got[0];
        let header = headers[signature::HEADER].to_str().unwrap();
        signature::verify(&secret, header, body, now_secs()).expect("deliveries are signed");
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            headers["idempotency-key"].to_str().unwrap(),
            event["event"]["event_id"]
        );
    }

    // The receiver goes away; two more events fail to deliver and wait in the outbox.
    stop_receiver.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    say(&t, &alice, &room, "> two").await;
    say(&t, &alice, &room, "> three").await;
    let subs_path = format!("/_converge/admin/v1/rooms/{}/subscriptions", enc(&room));
    let failing = wait_for(10, "a failed delivery", || async {
        let (_, list) = t.get(&subs_path, Some(&alice.token)).await;
        let sub = list["subscriptions"][0].clone();
        (sub["failures"].as_i64() > Some(0) && sub["queued"] == 2).then_some(sub)
    })
    .await;
    let delivered_at = failing["last_success_ts"]
        .as_i64()
        .expect("the first delivery's time");
    assert!(failing["last_error"].is_string(), "{failing}");
    // "Retry now" is for whoever may manage the room's hooks.
    let retry = format!(
        "/_converge/admin/v1/subscriptions/{}/retry",
        failing["subscription_id"].as_str().unwrap()
    );
    let outsider = t.register("mallory", "pw-mallory-1").await;
    assert_error(
        &t.post(&retry, Some(&outsider.token), json!({})).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.post(
            "/_converge/admin/v1/subscriptions/nope/retry",
            Some(&alice.token),
            json!({}),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    let (status, body) = t.post(&retry, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The server restarts; the receiver comes back; exactly the missed events arrive.
    t = t.restart().await;
    let (_, _keep_receiver) = receiver.serve(addr).await;
    wait_for(15, "the missed deliveries", || async {
        (receiver.bodies().len() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(receiver.bodies(), ["> one", "> two", "> three"]);
    let (_, list) = t.get(&subs_path, Some(&alice.token)).await;
    assert_eq!(list["subscriptions"][0]["queued"], 0);
    assert_eq!(list["subscriptions"][0]["failures"], 0);
    assert!(list["subscriptions"][0]["last_success_ts"].as_i64() > Some(delivered_at));

    // The subscription does not depend on the bot: kicked, deliveries go on.
    let (status, body) = t
        .post(
            &format!("{V3}/rooms/{}/kick", enc(&room)),
            Some(&alice.token),
            json!({ "user_id": "@converge:localhost" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    say(&t, &alice, &room, "> four").await;
    wait_for(10, "a delivery without the bot", || async {
        (receiver.bodies().len() == 4).then_some(())
    })
    .await;
    assert_eq!(receiver.bodies()[3], "> four");
    t.stop().await;
}

#[tokio::test]
async fn outgoing_hooks_never_reach_blocked_addresses() {
    let t = TestServer::start().await;
    let (alice, _bob, room) = room_with_bot(&t).await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "file:///etc/passwd",
    ] {
        let answer = command(&t, &alice, &room, &format!("!webhook subscribe {url}")).await;
        assert!(answer.starts_with("⚠️"), "{url}: {answer}");
    }
    let refused = t
        .post(
            &format!("/_converge/admin/v1/rooms/{}/subscriptions", enc(&room)),
            Some(&alice.token),
            json!({ "url": "http://169.254.169.254/latest/meta-data" }),
        )
        .await;
    assert_error(&refused, 403, "M_FORBIDDEN");
    let (_, list) = t
        .get(
            &format!("/_converge/admin/v1/rooms/{}/subscriptions", enc(&room)),
            Some(&alice.token),
        )
        .await;
    assert_eq!(list["subscriptions"], json!([]));
    t.stop().await;
}
