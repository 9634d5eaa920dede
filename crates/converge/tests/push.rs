//! Push rules, notification counts and pushers over HTTP: the server-default rules, every
//! `/pushrules` endpoint with its bad input, counts that follow the rules (mentions, direct
//! chats, keywords, threads) and reset on receipts, `/notifications`, and delivery to a
//! push gateway in the spec's format.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use common::{Api, App, TestServer, User, V3, assert_error, create_room, enc, say, wait_for};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const RULES: &str = "/_matrix/client/v3/pushrules";

#[tokio::test]
async fn the_server_default_rules_in_the_specs_order() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (status, body) = t.get(&format!("{RULES}/"), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids = |kind: &str| -> Vec<String> {
        body["global"][kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rule_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let overrides = ids("override");
    assert_eq!(overrides[0], ".m.rule.master");
    for (earlier, later) in [
        (".m.rule.suppress_notices", ".m.rule.invite_for_me"),
        (".m.rule.invite_for_me", ".m.rule.member_event"),
        (".m.rule.is_user_mention", ".m.rule.is_room_mention"),
        (".m.rule.is_room_mention", ".m.rule.tombstone"),
        (".m.rule.tombstone", ".m.rule.reaction"),
        (".m.rule.reaction", ".m.rule.suppress_edits"),
    ] {
        let at = |id| {
            overrides
                .iter()
                .position(|r| r == id)
                .unwrap_or_else(|| panic!("{id}"))
        };
        assert!(at(earlier) < at(later), "{earlier} before {later}");
    }
    let underrides = ids("underride");
    for id in [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ] {
        assert!(underrides.iter().any(|r| r == id), "{id} in {underrides:?}");
    }
    // The same rules come with the first sync, as account data.
    let (_, sync) = t
        .get(&format!("{V3}/sync?timeout=0"), Some(&alice.token))
        .await;
    let events = sync["account_data"]["events"].as_array().unwrap();
    let rules = events.iter().find(|e| e["type"] == "m.push_rules").unwrap();
    assert_eq!(
        rules["content"]["global"]["override"][0]["rule_id"],
        ".m.rule.master"
    );
    t.stop().await;
}

#[tokio::test]
async fn rules_are_added_placed_changed_and_removed() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let token = Some(alice.token.as_str());
    let rule = |pattern: &str| json!({ "pattern": pattern, "actions": ["notify"] });
    for id in ["first", "second"] {
        let (status, body) = t
            .put(&format!("{RULES}/global/content/{id}"), token, rule(id))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A new rule goes first unless placed; `after` places it.
    let (status, _) = t
        .put(
            &format!("{RULES}/global/content/third?after=first"),
            token,
            rule("third"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, all) = t.get(&format!("{RULES}/"), token).await;
    let order: Vec<&str> = all["global"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["rule_id"].as_str().filter(|id| !id.starts_with('.')))
        .collect();
    assert_eq!(order, ["second", "first", "third"]);

    let (_, one) = t.get(&format!("{RULES}/global/content/first"), token).await;
    assert_eq!(one["pattern"], "first");
    let enabled = format!("{RULES}/global/content/first/enabled");
    assert_eq!(
        t.put(&enabled, token, json!({ "enabled": false })).await.0,
        StatusCode::OK
    );
    assert_eq!(t.get(&enabled, token).await.1["enabled"], false);
    let actions = format!("{RULES}/global/override/.m.rule.suppress_notices/actions");
    assert_eq!(
        t.put(&actions, token, json!({ "actions": ["notify"] }))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(t.get(&actions, token).await.1["actions"], json!(["notify"]));
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("{RULES}/global/content/first"),
            token,
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_error(
        &t.get(&format!("{RULES}/global/content/first"), token).await,
        404,
        "M_NOT_FOUND",
    );

    // Bad input: server-default rules cannot be deleted or made; a rule ID with a slash,
    // an unknown condition kind, a malformed pattern, placement against a missing rule.
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("{RULES}/global/override/.m.rule.master"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .put(&format!("{RULES}/global/content/.mine"), token, rule("x"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .put(&format!("{RULES}/global/content/a%2Fb"), token, rule("x"))
        .await;
    assert!(status.is_client_error(), "a rule ID with '/': {status}");
    let unknown =
        json!({ "conditions": [{ "kind": "org.example.martian" }], "actions": ["notify"] });
    assert_error(
        &t.put(&format!("{RULES}/global/override/martian"), token, unknown)
            .await,
        400,
        "M_INVALID_PARAM",
    );
    let malformed = json!({ "conditions": [{ "kind": "event_match", "key": "", "pattern": "x" }], "actions": ["notify"] });
    assert_error(
        &t.put(
            &format!("{RULES}/global/override/empty-key"),
            token,
            malformed,
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &t.put(
            &format!("{RULES}/global/content/x?before=nosuchrule"),
            token,
            rule("x"),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    let (status, _) = t
        .put(
            &format!("{RULES}/global/content/bad"),
            token,
            json!({ "actions": ["notify"] }),
        )
        .await;
    assert!(status.is_client_error(), "a content rule needs a pattern");
    t.stop().await;
}

/// `user`'s unread counts in `room` from a fresh sync, with threads when asked.
async fn counts(t: &impl Api, user: &User, room: &str, threads: bool) -> Value {
    let filter = json!({ "room": { "timeline": { "unread_thread_notifications": threads } } });
    let (_, body) = t
        .get(
            &format!("{V3}/sync?timeout=0&filter={}", enc(&filter.to_string())),
            Some(&user.token),
        )
        .await;
    body["rooms"]["join"][room].clone()
}

fn notification_count(section: &Value) -> (u64, u64) {
    let n = &section["unread_notifications"];
    (
        n["notification_count"].as_u64().unwrap_or(0),
        n["highlight_count"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn counts_follow_the_rules_threads_and_receipts() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    for user in [&bob, &carol] {
        t.post(
            &format!("{V3}/join/{}", enc(&room)),
            Some(&user.token),
            json!({}),
        )
        .await;
    }
    let first = say(&t, &alice, &room, "hello everyone").await;
    assert_eq!(
        notification_count(&counts(&t, &bob, &room, false).await),
        (1, 0)
    );
    assert_eq!(
        notification_count(&counts(&t, &alice, &room, false).await),
        (0, 0),
        "not for the sender"
    );
    // A mention highlights.
    let path = format!("{V3}/rooms/{}/send/m.room.message/m1", enc(&room));
    t.put(
        &path,
        Some(&alice.token),
        json!({ "msgtype": "m.text", "body": "bob, look", "m.mentions": { "user_ids": [bob.user_id] } }),
    )
    .await;
    assert_eq!(
        notification_count(&counts(&t, &bob, &room, false).await),
        (2, 1)
    );
    assert_eq!(
        notification_count(&counts(&t, &carol, &room, false).await),
        (2, 0)
    );
    // A notice does not notify (.m.rule.suppress_notices).
    let path = format!("{V3}/rooms/{}/send/m.room.message/n1", enc(&room));
    t.put(
        &path,
        Some(&alice.token),
        json!({ "msgtype": "m.notice", "body": "fyi" }),
    )
    .await;
    assert_eq!(
        notification_count(&counts(&t, &carol, &room, false).await),
        (2, 0)
    );
    // A thread reply counts in its thread when the client asks for thread counts.
    let path = format!("{V3}/rooms/{}/send/m.room.message/t1", enc(&room));
    t.put(
        &path,
        Some(&alice.token),
        json!({ "msgtype": "m.text", "body": "in a thread", "m.relates_to": { "rel_type": "m.thread", "event_id": first } }),
    )
    .await;
    assert_eq!(
        notification_count(&counts(&t, &carol, &room, false).await),
        (3, 0)
    );
    let threaded = counts(&t, &carol, &room, true).await;
    assert_eq!(notification_count(&threaded), (2, 0), "main timeline only");
    assert_eq!(
        threaded["unread_thread_notifications"][&first]["notification_count"],
        1
    );
    // A read receipt in the thread resets that thread; an unthreaded one everything.
    let (_, page) = t
        .get(
            &format!("{V3}/rooms/{}/messages?dir=b&limit=1", enc(&room)),
            Some(&carol.token),
        )
        .await;
    let newest = page["chunk"][0]["event_id"].as_str().unwrap().to_owned();
    let receipt = format!("{V3}/rooms/{}/receipt/m.read/{}", enc(&room), enc(&newest));
    t.post(&receipt, Some(&carol.token), json!({ "thread_id": first }))
        .await;
    let threaded = counts(&t, &carol, &room, true).await;
    assert_eq!(notification_count(&threaded), (2, 0));
    assert!(
        threaded["unread_thread_notifications"]
            .get(&first)
            .is_none(),
        "{threaded}"
    );
    t.post(&receipt, Some(&bob.token), json!({})).await;
    assert_eq!(
        notification_count(&counts(&t, &bob, &room, false).await),
        (0, 0)
    );

    // /notifications lists bob's notifications, newest first, with what is read.
    let (status, list) = t
        .get(&format!("{V3}/notifications"), Some(&bob.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|n| n["read"] == true));
    let (_, highlights) = t
        .get(
            &format!("{V3}/notifications?only=highlight"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(highlights["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(
        highlights["notifications"][0]["event"]["content"]["body"],
        "bob, look"
    );

    // A direct chat of two notifies by .m.rule.room_one_to_one even with .m.rule.message off.
    let off = format!("{RULES}/global/underride/.m.rule.message/enabled");
    t.put(&off, Some(&bob.token), json!({ "enabled": false }))
        .await;
    let dm = create_room(
        &t,
        &alice,
        json!({ "is_direct": true, "invite": [bob.user_id] }),
    )
    .await;
    t.post(
        &format!("{V3}/join/{}", enc(&dm)),
        Some(&bob.token),
        json!({}),
    )
    .await;
    say(&t, &alice, &dm, "just us").await;
    say(&t, &alice, &room, "to the group").await;
    assert_eq!(
        notification_count(&counts(&t, &bob, &dm, false).await),
        (1, 0)
    );
    assert_eq!(
        notification_count(&counts(&t, &bob, &room, false).await),
        (0, 0)
    );
    // A keyword rule highlights.
    t.put(
        &format!("{RULES}/global/content/deploy"),
        Some(&bob.token),
        json!({ "pattern": "deploy", "actions": ["notify", { "set_tweak": "highlight" }] }),
    )
    .await;
    say(&t, &alice, &room, "time to deploy now").await;
    assert_eq!(
        notification_count(&counts(&t, &bob, &room, false).await),
        (1, 1)
    );
    t.stop().await;
}

/// A push gateway that records what it is sent, or fails while told to.
#[derive(Clone, Default)]
struct Gateway {
    got: Arc<Mutex<Vec<Value>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl Gateway {
    async fn serve(&self) -> std::net::SocketAddr {
        let app = Router::new()
            .route(
                "/_matrix/push/v1/notify",
                post(
                    |State(g): State<Gateway>, body: axum::body::Bytes| async move {
                        if g.failing.load(std::sync::atomic::Ordering::Relaxed) {
                            return (StatusCode::SERVICE_UNAVAILABLE, "{}".to_owned());
                        }
                        g.got
                            .lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap());
                        (StatusCode::OK, r#"{"rejected":[]}"#.to_owned())
                    },
                ),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }
}

#[tokio::test]
async fn pushers_deliver_in_the_gateway_format_and_retry() {
    let t = TestServer::start_with(|c| {
        c.push.allow = vec!["127.0.0.1/32".into()];
        c.push.max_retry_interval = Duration::from_secs(1);
    })
    .await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let gateway = Gateway::default();
    let addr = gateway.serve().await;
    let url = format!("http://{addr}/_matrix/push/v1/notify");
    let pusher = |pushkey: &str, format: Option<&str>| {
        let mut data = json!({ "url": url });
        if let Some(format) = format {
            data["format"] = json!(format);
        }
        json!({
            "kind": "http", "app_id": "org.example.app", "pushkey": pushkey,
            "app_display_name": "Example", "device_display_name": "Bob's phone",
            "lang": "en", "data": data, "append": true,
        })
    };
    let set = format!("{V3}/pushers/set");
    let (status, body) = t.post(&set, Some(&bob.token), pusher("full", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.post(&set, Some(&bob.token), pusher("ids", Some("event_id_only")))
        .await;
    let (_, list) = t.get(&format!("{V3}/pushers"), Some(&bob.token)).await;
    assert_eq!(list["pushers"].as_array().unwrap().len(), 2);

    let room = create_room(
        &t,
        &alice,
        json!({ "is_direct": true, "invite": [bob.user_id], "name": "Chat" }),
    )
    .await;
    // Bob's invite notifies him (.m.rule.invite_for_me) at both pushers. (Only while he is
    // invited: an invite he has accepted before it went out is not pushed any more.)
    let invites = wait_for(10, "the invite at both pushers", || async {
        let got = gateway.got.lock().unwrap().clone();
        (got.len() >= 2).then_some(got)
    })
    .await;
    let invite = invites
        .iter()
        .find(|n| n["notification"]["devices"][0]["pushkey"] == "full")
        .expect("the invite at the full pusher");
    assert_eq!(invite["notification"]["type"], "m.room.member");
    assert_eq!(invite["notification"]["content"]["membership"], "invite");
    assert_eq!(invite["notification"]["user_is_target"], true);
    t.post(
        &format!("{V3}/join/{}", enc(&room)),
        Some(&bob.token),
        json!({}),
    )
    .await;
    let event_id = say(&t, &alice, &room, "ping").await;
    let got = wait_for(10, "the message at both pushers", || async {
        let got: Vec<Value> = gateway
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n["notification"]["event_id"] == event_id.as_str())
            .cloned()
            .collect();
        (got.len() >= 2).then_some(got)
    })
    .await;
    let full = got
        .iter()
        .find(|n| n["notification"]["devices"][0]["pushkey"] == "full")
        .unwrap();
    let n = &full["notification"];
    assert_eq!(n["event_id"], event_id.as_str());
    assert_eq!(n["room_id"], room.as_str());
    assert_eq!(n["type"], "m.room.message");
    assert_eq!(n["sender"], alice.user_id.as_str());
    assert_eq!(n["content"]["body"], "ping");
    assert_eq!(n["room_name"], "Chat");
    assert_eq!(n["counts"]["unread"], 1);
    assert_eq!(n["prio"], "high", "a DM rings (sound tweak)");
    assert_eq!(n["devices"][0]["app_id"], "org.example.app");
    assert!(
        n["devices"][0]["data"].get("url").is_none(),
        "the URL stays on the server"
    );
    assert_eq!(n["devices"][0]["tweaks"]["sound"], "default");
    let ids = got
        .iter()
        .find(|n| n["notification"]["devices"][0]["pushkey"] == "ids")
        .unwrap();
    assert_eq!(ids["notification"]["event_id"], event_id.as_str());
    assert!(
        ids["notification"].get("content").is_none(),
        "event_id_only"
    );
    assert!(ids["notification"].get("sender").is_none());

    // While the gateway fails, nothing is lost: deliveries resume in order.
    gateway
        .failing
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let second = say(&t, &alice, &room, "while down").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway
        .failing
        .store(false, std::sync::atomic::Ordering::Relaxed);
    wait_for(15, "the delivery after the outage", || async {
        gateway
            .got
            .lock()
            .unwrap()
            .iter()
            .any(|n| n["notification"]["event_id"] == second.as_str())
            .then_some(())
    })
    .await;

    // Bad input: a gateway on a blocked address, a path that is no push gateway, an
    // unknown kind; deleting with kind null works.
    let mut blocked = pusher("blocked", None);
    blocked["data"]["url"] = json!("http://10.0.0.1/_matrix/push/v1/notify");
    assert_error(
        &t.post(&set, Some(&bob.token), blocked).await,
        400,
        "M_INVALID_PARAM",
    );
    let mut wrong_path = pusher("path", None);
    wrong_path["data"]["url"] = json!(format!("http://{addr}/elsewhere"));
    assert_error(
        &t.post(&set, Some(&bob.token), wrong_path).await,
        400,
        "M_INVALID_PARAM",
    );
    let mut email = pusher("mail", None);
    email["kind"] = json!("email");
    email["data"] = json!({});
    assert_error(
        &t.post(&set, Some(&bob.token), email).await,
        400,
        "M_INVALID_PARAM",
    );
    let (status, _) = t
        .post(
            &set,
            Some(&bob.token),
            json!({ "kind": null, "app_id": "org.example.app", "pushkey": "ids" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = t.get(&format!("{V3}/pushers"), Some(&bob.token)).await;
    assert_eq!(list["pushers"].as_array().unwrap().len(), 1);
    t.stop().await;
}
