//! The endpoints Element calls beyond chatting, driven in-process through the router: TURN
//! credentials, third-party networks and identifiers, OpenID, reports, room upgrades,
//! restricted joins, the space hierarchy, jumping to a date, and the thread list. Each
//! endpoint's happy path and its refusals.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Api, App, User, V3, assert_error, enc, next_txn};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

const V1: &str = "/_matrix/client/v1";

async fn create_room(t: &App, user: &User, body: Value) -> String {
    let (status, body) = t
        .post(&format!("{V3}/createRoom"), Some(&user.token), body)
        .await;
    assert_eq!(status, StatusCode::OK, "createRoom: {body}");
    body["room_id"].as_str().expect("room_id").to_owned()
}

async fn send(t: &App, user: &User, room: &str, event_type: &str, content: Value) -> String {
    let path = format!("{V3}/rooms/{}/send/{event_type}/{}", enc(room), next_txn());
    let (status, body) = t.put(&path, Some(&user.token), content).await;
    assert_eq!(status, StatusCode::OK, "send {event_type}: {body}");
    body["event_id"].as_str().expect("event_id").to_owned()
}

async fn say(t: &App, user: &User, room: &str, text: &str) -> String {
    send(
        t,
        user,
        room,
        "m.room.message",
        json!({ "msgtype": "m.text", "body": text }),
    )
    .await
}

async fn put_state(
    t: &App,
    user: &User,
    room: &str,
    event_type: &str,
    key: &str,
    content: Value,
) -> (StatusCode, Value) {
    t.put(
        &format!("{V3}/rooms/{}/state/{event_type}/{}", enc(room), enc(key)),
        Some(&user.token),
        content,
    )
    .await
}

async fn join(t: &App, user: &User, room: &str) -> (StatusCode, Value) {
    t.post(
        &format!("{V3}/join/{}", enc(room)),
        Some(&user.token),
        json!({}),
    )
    .await
}

async fn state(t: &App, user: &User, room: &str, event_type: &str, key: &str) -> Value {
    let (status, body) = t
        .get(
            &format!("{V3}/rooms/{}/state/{event_type}/{}", enc(room), enc(key)),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "state {event_type}: {body}");
    body
}

/// A server admin, logged in.
async fn admin(t: &App) -> User {
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
async fn turn_server_is_empty_without_configuration() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let (status, body) = t
        .get(&format!("{V3}/voip/turnServer"), Some(&alice.token))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_error(
        &t.get(&format!("{V3}/voip/turnServer"), None).await,
        401,
        "M_MISSING_TOKEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn turn_server_hands_out_rest_api_credentials() {
    let t = App::start_with(|c| {
        c.calls.turn.external_uris = vec![
            "turn:turn.example.org:3478?transport=udp".into(),
            "turns:turn.example.org:5349?transport=tcp".into(),
        ];
        c.calls.turn.shared_secret = "shared-with-coturn".into();
        c.calls.turn.ttl = Duration::from_secs(7200);
    })
    .await;
    let alice = t.register("alice", "password-alice").await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, body) = t
        .get(&format!("{V3}/voip/turnServer"), Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ttl"], 7200);
    assert_eq!(body["uris"].as_array().unwrap().len(), 2);
    let username = body["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, alice.user_id);
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (before + 7200..=before + 7202).contains(&expiry),
        "{expiry}"
    );
    // The TURN server derives the same password from the shared secret.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"shared-with-coturn").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(body["password"], expected);
    t.stop().await;
}

#[tokio::test]
async fn third_party_networks_know_no_protocol() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let token = Some(alice.token.as_str());
    let (status, body) = t.get(&format!("{V3}/thirdparty/protocols"), token).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    for path in [
        "/thirdparty/protocol/irc",
        "/thirdparty/location/irc",
        "/thirdparty/user/irc",
        "/thirdparty/location?alias=%23room%3Alocalhost",
        "/thirdparty/user?userid=%40alice%3Alocalhost",
    ] {
        assert_error(
            &t.get(&format!("{V3}{path}"), token).await,
            404,
            "M_NOT_FOUND",
        );
        assert_error(
            &t.get(&format!("{V3}{path}"), None).await,
            401,
            "M_MISSING_TOKEN",
        );
    }
    // The lookups by alias and user ID need their query parameter.
    assert_error(
        &t.get(&format!("{V3}/thirdparty/location"), token).await,
        400,
        "M_INVALID_PARAM",
    );
    t.stop().await;
}

#[tokio::test]
async fn third_party_identifiers_are_listed_empty_and_refused() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let token = Some(alice.token.as_str());
    let (status, body) = t.get(&format!("{V3}/account/3pid"), token).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "threepids": [] })));
    assert_error(
        &t.get(&format!("{V3}/account/3pid"), None).await,
        401,
        "M_MISSING_TOKEN",
    );
    let request = json!({ "client_secret": "secret", "email": "a@example.org", "send_attempt": 1 });
    assert_error(
        &t.post(
            &format!("{V3}/account/3pid/email/requestToken"),
            None,
            request,
        )
        .await,
        403,
        "M_THREEPID_DENIED",
    );
    assert_error(
        &t.post(
            &format!("{V3}/account/3pid/msisdn/requestToken"),
            None,
            json!({ "client_secret": "secret", "country": "GB", "phone_number": "07700900001", "send_attempt": 1 }),
        )
        .await,
        403,
        "M_THREEPID_DENIED",
    );
    let session = json!({ "client_secret": "secret", "sid": "session1" });
    assert_error(
        &t.post(&format!("{V3}/account/3pid/add"), token, session.clone())
            .await,
        403,
        "M_THREEPID_AUTH_FAILED",
    );
    assert_error(
        &t.post(&format!("{V3}/account/3pid/add"), token, json!({}))
            .await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        &t.post(
            &format!("{V3}/account/3pid/bind"),
            token,
            json!({ "client_secret": "secret", "sid": "session1", "id_server": "id.example.org", "id_access_token": "x" }),
        )
        .await,
        400,
        "M_SERVER_NOT_TRUSTED",
    );
    for action in ["delete", "unbind"] {
        let (status, body) = t
            .post(
                &format!("{V3}/account/3pid/{action}"),
                token,
                json!({ "medium": "email", "address": "a@example.org" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
        assert_eq!(body, json!({ "id_server_unbind_result": "no-support" }));
        assert_error(
            &t.post(&format!("{V3}/account/3pid/{action}"), None, json!({}))
                .await,
            401,
            "M_MISSING_TOKEN",
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn openid_tokens_identify_their_user_to_third_parties() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let path = format!("{V3}/user/{}/openid/request_token", enc(&alice.user_id));
    let (status, body) = t.post(&path, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["matrix_server_name"], "localhost");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap().to_owned();

    let userinfo = |token: &str| {
        format!(
            "/_matrix/federation/v1/openid/userinfo?access_token={}",
            enc(token)
        )
    };
    let (status, body) = t.get(&userinfo(&token), None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "sub": alice.user_id }))
    );
    // The access token itself is not an OpenID token.
    assert_error(
        &t.get(&userinfo(&alice.token), None).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &t.get(&userinfo("nonsense"), None).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &t.get("/_matrix/federation/v1/openid/userinfo", None).await,
        400,
        "M_MISSING_PARAM",
    );
    // Only for yourself, and only signed in.
    assert_error(
        &t.post(&path, Some(&bob.token), json!({})).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.post(&path, None, json!({})).await,
        401,
        "M_MISSING_TOKEN",
    );

    // A deactivated user's tokens identify nobody.
    let deactivate = format!("{V3}/account/deactivate");
    let (status, body) = t.post(&deactivate, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let auth = common::password_auth("alice", "password-alice", &body["session"]);
    let (status, body) = t
        .post(&deactivate, Some(&alice.token), json!({ "auth": auth }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &t.get(&userinfo(&token), None).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn members_report_events_they_can_see_and_admins_list_reports() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let carol = t.register("carol", "password-carol").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    let other = create_room(&t, &alice, json!({})).await;
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    let event = say(&t, &alice, &room, "something offensive").await;
    let elsewhere = say(&t, &alice, &other, "in another room").await;
    let report =
        |room: &str, event: &str| format!("{V3}/rooms/{}/report/{}", enc(room), enc(event));

    let (status, body) = t
        .post(
            &report(&room, &event),
            Some(&bob.token),
            json!({ "reason": "rude", "score": -100 }),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    // Neither a non-member, nor a member asking about an event elsewhere or unknown, learns
    // whether the event exists.
    assert_error(
        &t.post(&report(&room, &event), Some(&carol.token), json!({}))
            .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.post(&report(&room, &elsewhere), Some(&bob.token), json!({}))
            .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.post(
            &report(&room, "$nothing:localhost"),
            Some(&bob.token),
            json!({}),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.post(
            &report("!nowhere:localhost", &event),
            Some(&bob.token),
            json!({}),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    // A member who left may not report any more.
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{}/leave", enc(&room)),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &t.post(&report(&room, &event), Some(&bob.token), json!({}))
            .await,
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    for bad in [
        json!({ "score": 5 }),
        json!({ "score": "bad" }),
        json!({ "score": -101 }),
    ] {
        assert_error(
            &t.post(&report(&room, &event), Some(&bob.token), bad).await,
            400,
            "M_INVALID_PARAM",
        );
    }
    assert_error(
        &t.post(
            &report(&room, &event),
            Some(&bob.token),
            json!({ "reason": "x".repeat(2001) }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &t.post(&report(&room, &event), None, json!({})).await,
        401,
        "M_MISSING_TOKEN",
    );

    // Anyone may report a room, joined or not; an unknown room is not found.
    let room_report = |room: &str| format!("{V3}/rooms/{}/report", enc(room));
    let (status, body) = t
        .post(
            &room_report(&other),
            Some(&carol.token),
            json!({ "reason": "spam room" }),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_error(
        &t.post(
            &room_report("!nowhere:localhost"),
            Some(&carol.token),
            json!({ "reason": "?" }),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );

    // Server admins list them, newest first.
    let list = "/_converge/admin/v1/reports";
    assert_error(&t.get(list, Some(&bob.token)).await, 403, "M_FORBIDDEN");
    assert_error(&t.get(list, None).await, 401, "M_MISSING_TOKEN");
    let root = admin(&t).await;
    let (status, body) = t.get(list, Some(&root.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reports = body["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{body}");
    assert_eq!(reports[0]["room_id"], other);
    assert_eq!(reports[0]["event_id"], Value::Null);
    assert_eq!(reports[0]["reporter"], carol.user_id);
    assert_eq!(reports[0]["reason"], "spam room");
    assert_eq!(reports[1]["event_id"], event);
    assert_eq!(reports[1]["reporter"], bob.user_id);
    assert_eq!(reports[1]["reason"], "rude");
    assert_eq!(reports[1]["score"], -100);
    assert!(body.get("next_token").is_none(), "{body}");
    let (_, page) = t.get(&format!("{list}?limit=1"), Some(&root.token)).await;
    assert_eq!(page["reports"][0]["reason"], "spam room");
    let next = page["next_token"].as_str().expect("a next page").to_owned();
    let (_, page) = t
        .get(&format!("{list}?limit=1&from={next}"), Some(&root.token))
        .await;
    assert_eq!(page["reports"][0]["reason"], "rude");
    for bad in ["?from=garbage", "?from=-1", "?limit=lots"] {
        assert_error(
            &t.get(&format!("{list}{bad}"), Some(&root.token)).await,
            400,
            "M_INVALID_PARAM",
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn upgrading_a_room_replaces_it() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let eve = t.register("eve", "password-eve").await;
    let outsider = t.register("outsider", "password-outsider").await;
    let old = create_room(
        &t,
        &alice,
        json!({
            "preset": "public_chat",
            "visibility": "public",
            "room_alias_name": "lounge",
            "name": "Lounge",
            "topic": "Talk here",
            "room_version": "10",
        }),
    )
    .await;
    let alias = "#lounge:localhost";
    for (event_type, content) in [
        ("m.room.avatar", json!({ "url": "mxc://localhost/avatar" })),
        (
            "m.room.history_visibility",
            json!({ "history_visibility": "world_readable" }),
        ),
        (
            "m.room.server_acl",
            json!({ "allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": false }),
        ),
        ("com.example.custom", json!({ "kept": false })),
    ] {
        let (status, body) = put_state(&t, &alice, &old, event_type, "", content).await;
        assert_eq!(status, StatusCode::OK, "{event_type}: {body}");
    }
    assert_eq!(join(&t, &bob, &old).await.0, StatusCode::OK);
    assert_eq!(join(&t, &eve, &old).await.0, StatusCode::OK);
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{}/ban", enc(&old)),
            Some(&alice.token),
            json!({ "user_id": eve.user_id, "reason": "spam" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let last_before = say(&t, &alice, &old, "moving house").await;

    let upgrade = format!("{V3}/rooms/{}/upgrade", enc(&old));
    // Refusals first: a member without the tombstone level, a stranger, unknown versions.
    assert_error(
        &t.post(&upgrade, Some(&bob.token), json!({ "new_version": "11" }))
            .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.post(
            &upgrade,
            Some(&outsider.token),
            json!({ "new_version": "11" }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    for version in ["9", "12", "abc"] {
        assert_error(
            &t.post(
                &upgrade,
                Some(&alice.token),
                json!({ "new_version": version }),
            )
            .await,
            400,
            "M_UNSUPPORTED_ROOM_VERSION",
        );
    }
    assert_error(
        &t.post(&upgrade, Some(&alice.token), json!({})).await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        &t.post(
            &format!("{V3}/rooms/{}/upgrade", enc("!nowhere:localhost")),
            Some(&alice.token),
            json!({ "new_version": "11" }),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );

    let (status, body) = t
        .post(&upgrade, Some(&alice.token), json!({ "new_version": "11" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["replacement_room"].as_str().unwrap().to_owned();
    assert_ne!(new, old);

    // The old room points at the new one and falls quiet.
    let tombstone = state(&t, &alice, &old, "m.room.tombstone", "").await;
    assert_eq!(tombstone["replacement_room"], new);
    let old_levels = state(&t, &alice, &old, "m.room.power_levels", "").await;
    assert_eq!(old_levels["events_default"], 50);
    assert_eq!(old_levels["invite"], 50);
    assert_error(
        &t.put(
            &format!(
                "{V3}/rooms/{}/send/m.room.message/{}",
                enc(&old),
                next_txn()
            ),
            Some(&bob.token),
            json!({ "msgtype": "m.text", "body": "still here?" }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );

    // The new room names its predecessor and carries the old room's settings.
    let create = state(&t, &alice, &new, "m.room.create", "").await;
    assert_eq!(create["room_version"], "11");
    assert_eq!(create["predecessor"]["room_id"], old);
    // The predecessor's last event before the upgrade (the refusals sent nothing).
    assert_eq!(create["predecessor"]["event_id"], last_before);
    assert!(
        create.get("creator").is_none(),
        "v11 has no creator: {create}"
    );
    assert_eq!(
        state(&t, &alice, &new, "m.room.name", "").await["name"],
        "Lounge"
    );
    assert_eq!(
        state(&t, &alice, &new, "m.room.topic", "").await["topic"],
        "Talk here"
    );
    assert_eq!(
        state(&t, &alice, &new, "m.room.avatar", "").await["url"],
        "mxc://localhost/avatar"
    );
    assert_eq!(
        state(&t, &alice, &new, "m.room.join_rules", "").await["join_rule"],
        "public"
    );
    assert_eq!(
        state(&t, &alice, &new, "m.room.history_visibility", "").await["history_visibility"],
        "world_readable"
    );
    assert_eq!(
        state(&t, &alice, &new, "m.room.server_acl", "").await["deny"],
        json!(["evil.example"])
    );
    assert_eq!(
        state(&t, &alice, &new, "m.room.canonical_alias", "").await["alias"],
        alias
    );
    let new_levels = state(&t, &alice, &new, "m.room.power_levels", "").await;
    assert_eq!(new_levels["users"][&alice.user_id], 100);
    assert_eq!(new_levels["events_default"], 0);
    assert_eq!(
        state(&t, &alice, &new, "m.room.member", &eve.user_id).await["membership"],
        "ban"
    );
    // Custom state is not copied: its meaning may depend on who sent it.
    let (status, _) = t
        .get(
            &format!("{V3}/rooms/{}/state/com.example.custom/", enc(&new)),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The alias and the directory listing moved.
    let (_, resolved) = t
        .get(&format!("{V3}/directory/room/{}", enc(alias)), None)
        .await;
    assert_eq!(resolved["room_id"], new);
    let listed = |room: &str| format!("{V3}/directory/list/room/{}", enc(room));
    assert_eq!(t.get(&listed(&new), None).await.1["visibility"], "public");
    assert_eq!(t.get(&listed(&old), None).await.1["visibility"], "private");

    // Members follow into the new room; the banned stay out.
    assert_eq!(join(&t, &bob, &new).await.0, StatusCode::OK);
    assert_error(&join(&t, &eve, &new).await, 403, "M_FORBIDDEN");
    t.stop().await;
}

#[tokio::test]
async fn upgrading_a_space_keeps_its_type_and_children() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let space = create_room(
        &t,
        &alice,
        json!({ "creation_content": { "type": "m.space" } }),
    )
    .await;
    let child = create_room(&t, &alice, json!({})).await;
    let (status, _) = put_state(
        &t,
        &alice,
        &space,
        "m.space.child",
        &child,
        json!({ "via": ["localhost"] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A removed child (empty content) stays removed.
    let gone = create_room(&t, &alice, json!({})).await;
    put_state(&t, &alice, &space, "m.space.child", &gone, json!({})).await;
    let (status, body) = t
        .post(
            &format!("{V3}/rooms/{}/upgrade", enc(&space)),
            Some(&alice.token),
            json!({ "new_version": "10" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["replacement_room"].as_str().unwrap();
    let create = state(&t, &alice, new, "m.room.create", "").await;
    assert_eq!(create["type"], "m.space");
    assert_eq!(create["creator"], alice.user_id);
    assert_eq!(
        state(&t, &alice, new, "m.space.child", &child).await["via"],
        json!(["localhost"])
    );
    let (status, _) = t
        .get(
            &format!("{V3}/rooms/{}/state/m.space.child/{}", enc(new), enc(&gone)),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.stop().await;
}

/// A public space with Alice and Bob, and a room restricted to the space's members.
async fn space_and_restricted_room(
    t: &App,
    alice: &User,
    bob: &User,
    rule: &str,
) -> (String, String) {
    let space = create_room(
        t,
        alice,
        json!({ "preset": "public_chat", "creation_content": { "type": "m.space" } }),
    )
    .await;
    assert_eq!(join(t, bob, &space).await.0, StatusCode::OK);
    let room = create_room(
        t,
        alice,
        json!({ "initial_state": [{
            "type": "m.room.join_rules",
            "content": { "join_rule": rule, "allow": [
                { "type": "m.room_membership", "room_id": space },
                { "type": "m.other_condition", "room_id": "!ignored:localhost" },
            ] },
        }] }),
    )
    .await;
    (space, room)
}

#[tokio::test]
async fn restricted_rooms_admit_members_of_the_allowed_rooms() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let carol = t.register("carol", "password-carol").await;
    let (_, room) = space_and_restricted_room(&t, &alice, &bob, "restricted").await;

    let (status, body) = join(&t, &bob, &room).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let member = state(&t, &alice, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member["membership"], "join");
    assert_eq!(member["join_authorised_via_users_server"], alice.user_id);
    // Joining again (already joined) needs nobody's authorisation.
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);

    assert_error(&join(&t, &carol, &room).await, 403, "M_FORBIDDEN");
    // A restricted room takes no knocks; an invite still opens it.
    assert_error(
        &t.post(
            &format!("{V3}/knock/{}", enc(&room)),
            Some(&carol.token),
            json!({}),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{}/invite", enc(&room)),
            Some(&alice.token),
            json!({ "user_id": carol.user_id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(join(&t, &carol, &room).await.0, StatusCode::OK);
    let member = state(&t, &alice, &room, "m.room.member", &carol.user_id).await;
    assert!(
        member.get("join_authorised_via_users_server").is_none(),
        "{member}"
    );
    t.stop().await;
}

#[tokio::test]
async fn knock_restricted_rooms_admit_members_and_take_knocks() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let carol = t.register("carol", "password-carol").await;
    let (_, room) = space_and_restricted_room(&t, &alice, &bob, "knock_restricted").await;
    let (status, body) = join(&t, &bob, &room).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(&join(&t, &carol, &room).await, 403, "M_FORBIDDEN");
    let (status, body) = t
        .post(
            &format!("{V3}/knock/{}", enc(&room)),
            Some(&carol.token),
            json!({ "reason": "let me in" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        state(&t, &alice, &room, "m.room.member", &carol.user_id).await["membership"],
        "knock"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_restricted_join_needs_someone_who_may_invite() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let (space, room) = space_and_restricted_room(&t, &alice, &bob, "restricted").await;
    // Only Alice may invite, and she leaves: nobody can vouch for Bob.
    let mut levels = state(&t, &alice, &room, "m.room.power_levels", "").await;
    levels["invite"] = json!(100);
    let (status, _) = put_state(&t, &alice, &room, "m.room.power_levels", "", levels).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{}/leave", enc(&room)),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&join(&t, &bob, &room).await, 400, "M_UNABLE_TO_GRANT_JOIN");
    // Leaving the space takes the right away.
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{}/leave", enc(&space)),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&join(&t, &bob, &room).await, 403, "M_FORBIDDEN");
    t.stop().await;
}

/// Adds `child` to `space` with an `order` key.
async fn add_child(t: &App, user: &User, space: &str, child: &str, order: &str, suggested: bool) {
    let (status, body) = put_state(
        t,
        user,
        space,
        "m.space.child",
        child,
        json!({ "via": ["localhost"], "order": order, "suggested": suggested }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "add child: {body}");
}

fn room_ids(body: &Value) -> Vec<String> {
    body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_hierarchy_walks_what_the_requester_may_see() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let outsider = t.register("outsider", "password-outsider").await;
    // An invite-only space with Bob in it.
    let space = create_room(
        &t,
        &alice,
        json!({ "name": "Space", "creation_content": { "type": "m.space" }, "invite": [bob.user_id] }),
    )
    .await;
    assert_eq!(join(&t, &bob, &space).await.0, StatusCode::OK);
    let public = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "name": "Public", "topic": "open" }),
    )
    .await;
    let restricted = create_room(
        &t,
        &alice,
        json!({ "name": "Members", "initial_state": [{
            "type": "m.room.join_rules",
            "content": { "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": space }] },
        }] }),
    )
    .await;
    let private = create_room(&t, &alice, json!({ "name": "Private" })).await;
    let subspace = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "name": "Sub", "creation_content": { "type": "m.space" } }),
    )
    .await;
    let deep = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "name": "Deep" }),
    )
    .await;
    add_child(&t, &alice, &space, &public, "a", true).await;
    add_child(&t, &alice, &space, &restricted, "b", false).await;
    add_child(&t, &alice, &space, &private, "c", false).await;
    add_child(&t, &alice, &space, &subspace, "d", true).await;
    add_child(&t, &alice, &subspace, &deep, "a", true).await;
    // A loop back to the top, and children that are not valid.
    add_child(&t, &alice, &subspace, &space, "b", true).await;
    put_state(
        &t,
        &alice,
        &space,
        "m.space.child",
        "!unknown:localhost",
        json!({ "via": ["localhost"] }),
    )
    .await;
    put_state(
        &t,
        &alice,
        &space,
        "m.space.child",
        "not-a-room",
        json!({ "via": ["localhost"] }),
    )
    .await;
    put_state(
        &t,
        &alice,
        &space,
        "m.space.child",
        &deep,
        json!({ "via": [] }),
    )
    .await;

    let hierarchy = |query: &str| format!("{V1}/rooms/{}/hierarchy{query}", enc(&space));
    let (status, body) = t.get(&hierarchy(""), Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Depth first, children by their order keys; the private room and the loop are left out.
    assert_eq!(
        room_ids(&body),
        [
            space.as_str(),
            public.as_str(),
            restricted.as_str(),
            subspace.as_str(),
            deep.as_str()
        ]
    );
    assert!(body.get("next_batch").is_none(), "{body}");
    let top = &body["rooms"][0];
    assert_eq!(top["room_type"], "m.space");
    assert_eq!(top["name"], "Space");
    assert_eq!(top["num_joined_members"], 2);
    assert_eq!(top["join_rule"], "invite");
    // The space lists its valid children (the private one too: it is the space's state).
    let children: Vec<&str> = top["children_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        children,
        [
            &public,
            &restricted,
            &private,
            &subspace,
            "!unknown:localhost"
        ]
    );
    let first_child = &top["children_state"][0];
    assert_eq!(first_child["type"], "m.space.child");
    assert_eq!(first_child["sender"], alice.user_id);
    assert!(first_child["origin_server_ts"].as_i64().unwrap() > 0);
    let public_entry = &body["rooms"][1];
    assert_eq!(public_entry["topic"], "open");
    // Ruma leaves out `public`, which the spec makes the meaning of no join rule.
    assert!(
        public_entry
            .get("join_rule")
            .is_none_or(|rule| rule == "public"),
        "{public_entry}"
    );
    assert_eq!(public_entry["children_state"], json!([]));
    assert!(public_entry.get("room_type").is_none());
    assert_eq!(body["rooms"][2]["join_rule"], "restricted");
    assert_eq!(body["rooms"][2]["allowed_room_ids"], json!([space]));

    // Pages of two cover the same walk.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..5 {
        let query = match &from {
            Some(token) => format!("?limit=2&from={}", enc(token)),
            None => "?limit=2".to_owned(),
        };
        let (status, page) = t.get(&hierarchy(&query), Some(&bob.token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["rooms"].as_array().unwrap().len() <= 2);
        seen.extend(room_ids(&page));
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            space.as_str(),
            public.as_str(),
            restricted.as_str(),
            subspace.as_str(),
            deep.as_str()
        ]
    );

    // Depth and suggestions narrow the walk.
    let (_, body) = t.get(&hierarchy("?max_depth=1"), Some(&bob.token)).await;
    assert_eq!(
        room_ids(&body),
        [
            space.as_str(),
            public.as_str(),
            restricted.as_str(),
            subspace.as_str()
        ]
    );
    let (_, body) = t.get(&hierarchy("?max_depth=0"), Some(&bob.token)).await;
    assert_eq!(room_ids(&body), [space.as_str()]);
    let (_, body) = t
        .get(&hierarchy("?suggested_only=true"), Some(&bob.token))
        .await;
    assert_eq!(
        room_ids(&body),
        [
            space.as_str(),
            public.as_str(),
            subspace.as_str(),
            deep.as_str()
        ]
    );
    // Alice sees the private room too.
    let (_, body) = t.get(&hierarchy(""), Some(&alice.token)).await;
    assert_eq!(room_ids(&body).len(), 6);

    // A token belongs to its walk; garbage is refused.
    let (_, page) = t.get(&hierarchy("?limit=1"), Some(&bob.token)).await;
    let next = page["next_batch"].as_str().unwrap();
    assert_error(
        &t.get(
            &hierarchy(&format!("?limit=1&max_depth=1&from={}", enc(next))),
            Some(&bob.token),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    for bad in [
        "?from=garbage",
        "?from=h999999_10_0",
        "?limit=-1",
        "?max_depth=x",
    ] {
        assert_error(
            &t.get(&hierarchy(bad), Some(&bob.token)).await,
            400,
            "M_INVALID_PARAM",
        );
    }
    // Limits are clamped, not refused.
    let (status, body) = t
        .get(&hierarchy("?limit=0&max_depth=1000"), Some(&bob.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(room_ids(&body).len(), 1);

    // Who may not see the space, and unknown rooms, are refused alike.
    assert_error(
        &t.get(&hierarchy(""), Some(&outsider.token)).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.get(
            &format!("{V1}/rooms/{}/hierarchy", enc("!nowhere:localhost")),
            Some(&bob.token),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(&t.get(&hierarchy(""), None).await, 401, "M_MISSING_TOKEN");
    // A room that is not a space is its own hierarchy; a public one is visible to anyone.
    let (status, body) = t
        .get(
            &format!("{V1}/rooms/{}/hierarchy", enc(&subspace)),
            Some(&outsider.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(room_ids(&body), [subspace.as_str(), deep.as_str()]);
    let (_, body) = t
        .get(
            &format!("{V1}/rooms/{}/hierarchy", enc(&public)),
            Some(&outsider.token),
        )
        .await;
    assert_eq!(room_ids(&body), [public.as_str()]);
    t.stop().await;
}

/// The `origin_server_ts` of an event.
async fn ts_of(t: &App, user: &User, room: &str, event: &str) -> i64 {
    let (status, body) = t
        .get(
            &format!("{V3}/rooms/{}/event/{}", enc(room), enc(event)),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["origin_server_ts"].as_i64().unwrap()
}

#[tokio::test]
async fn timestamp_to_event_finds_the_nearest_visible_event() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let outsider = t.register("outsider", "password-outsider").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        tokio::time::sleep(Duration::from_millis(5)).await;
        sent.push(say(&t, &alice, &room, text).await);
    }
    let middle_ts = ts_of(&t, &alice, &room, &sent[1]).await;
    let find = |ts: i64, dir: &str| {
        format!(
            "{V1}/rooms/{}/timestamp_to_event?ts={ts}&dir={dir}",
            enc(&room)
        )
    };
    for dir in ["f", "b"] {
        let (status, body) = t.get(&find(middle_ts, dir), Some(&bob.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["event_id"], sent[1], "dir {dir}");
        assert_eq!(body["origin_server_ts"], middle_ts);
    }
    let (_, body) = t.get(&find(middle_ts + 1, "f"), Some(&bob.token)).await;
    assert_eq!(body["event_id"], sent[2]);
    let (_, body) = t.get(&find(middle_ts - 1, "b"), Some(&bob.token)).await;
    assert_eq!(body["event_id"], sent[0]);
    // From the beginning of time forwards: the room's create event.
    let (_, body) = t.get(&find(0, "f"), Some(&bob.token)).await;
    let (_, all_state) = t
        .get(
            &format!("{V3}/rooms/{}/state", enc(&room)),
            Some(&alice.token),
        )
        .await;
    let create_id = all_state
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.create")
        .unwrap()["event_id"]
        .clone();
    assert_eq!(body["event_id"], create_id);
    assert_error(
        &t.get(&find(4_000_000_000_000, "f"), Some(&bob.token)).await,
        404,
        "M_NOT_FOUND",
    );

    // Bob leaves; what Alice says afterwards is beyond his view.
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{}/leave", enc(&room)),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let after = say(&t, &alice, &room, "after bob left").await;
    let after_ts = ts_of(&t, &alice, &room, &after).await;
    let (_, body) = t.get(&find(after_ts, "b"), Some(&alice.token)).await;
    assert_eq!(body["event_id"], after);
    let (status, body) = t.get(&find(after_ts, "b"), Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["event_id"], after);
    assert_error(
        &t.get(&find(after_ts, "f"), Some(&bob.token)).await,
        404,
        "M_NOT_FOUND",
    );

    // Refusals: strangers to a private room, unknown rooms, bad parameters.
    let private = create_room(&t, &alice, json!({})).await;
    assert_error(
        &t.get(
            &format!("{V1}/rooms/{}/timestamp_to_event?ts=0&dir=f", enc(&private)),
            Some(&outsider.token),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.get(
            &format!(
                "{V1}/rooms/{}/timestamp_to_event?ts=0&dir=f",
                enc("!nowhere:localhost")
            ),
            Some(&alice.token),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    for bad in [
        "?ts=0&dir=x",
        "?ts=soon&dir=f",
        "?dir=f",
        "?ts=0",
        "?ts=-5&dir=f",
    ] {
        assert_error(
            &t.get(
                &format!("{V1}/rooms/{}/timestamp_to_event{bad}", enc(&room)),
                Some(&alice.token),
            )
            .await,
            400,
            "M_INVALID_PARAM",
        );
    }
    assert_error(&t.get(&find(0, "f"), None).await, 401, "M_MISSING_TOKEN");
    t.stop().await;
}

/// Replies in the thread of `root`.
async fn reply(t: &App, user: &User, room: &str, root: &str, text: &str) -> String {
    send(
        t,
        user,
        room,
        "m.room.message",
        json!({
            "msgtype": "m.text",
            "body": text,
            "m.relates_to": { "rel_type": "m.thread", "event_id": root, "is_falling_back": true, "m.in_reply_to": { "event_id": root } },
        }),
    )
    .await
}

#[tokio::test]
async fn the_thread_list_orders_threads_by_their_newest_reply() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let carol = t.register("carol", "password-carol").await;
    let outsider = t.register("outsider", "password-outsider").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    assert_eq!(join(&t, &carol, &room).await.0, StatusCode::OK);
    let first = say(&t, &alice, &room, "first thread").await;
    let second = say(&t, &bob, &room, "second thread").await;
    say(&t, &carol, &room, "no thread here").await;
    reply(&t, &bob, &room, &first, "bob in the first").await;
    reply(&t, &bob, &room, &second, "bob in the second").await;
    let newest = reply(&t, &bob, &room, &first, "bob again in the first").await;
    // A reaction relates to the root but is no reply.
    send(
        &t,
        &carol,
        &room,
        "m.reaction",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": second, "key": "👍" } }),
    )
    .await;

    let threads = |query: &str| format!("{V1}/rooms/{}/threads{query}", enc(&room));
    let (status, body) = t.get(&threads(""), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let chunk = body["chunk"].as_array().unwrap();
    let roots: Vec<&str> = chunk
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(roots, [&first, &second]);
    assert!(body.get("next_batch").is_none(), "{body}");
    let summary = &chunk[0]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["count"], 2);
    assert_eq!(summary["latest_event"]["event_id"], newest);
    assert_eq!(
        summary["latest_event"]["content"]["body"],
        "bob again in the first"
    );
    assert_eq!(
        summary["current_user_participated"], true,
        "Alice started it"
    );
    assert_eq!(chunk[0]["content"]["body"], "first thread");
    let summary = &chunk[1]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["count"], 1);
    assert_eq!(summary["current_user_participated"], false);

    // Participation is per reader.
    let (_, body) = t
        .get(&threads("?include=participated"), Some(&alice.token))
        .await;
    assert_eq!(body["chunk"].as_array().unwrap().len(), 1);
    let (_, body) = t
        .get(&threads("?include=participated"), Some(&bob.token))
        .await;
    assert_eq!(body["chunk"].as_array().unwrap().len(), 2);
    let (_, body) = t
        .get(&threads("?include=participated"), Some(&carol.token))
        .await;
    assert_eq!(body["chunk"], json!([]));

    // One thread per page.
    let (_, page) = t.get(&threads("?limit=1"), Some(&carol.token)).await;
    assert_eq!(page["chunk"][0]["event_id"], first);
    let next = page["next_batch"].as_str().unwrap();
    let (_, page) = t
        .get(
            &threads(&format!("?limit=1&from={}", enc(next))),
            Some(&carol.token),
        )
        .await;
    assert_eq!(page["chunk"][0]["event_id"], second);
    if let Some(next) = page["next_batch"].as_str() {
        let (_, last) = t
            .get(
                &threads(&format!("?limit=1&from={}", enc(next))),
                Some(&carol.token),
            )
            .await;
        assert_eq!(last["chunk"], json!([]));
    }

    // Refusals.
    let private = create_room(&t, &alice, json!({})).await;
    assert_error(
        &t.get(
            &format!("{V1}/rooms/{}/threads", enc(&private)),
            Some(&outsider.token),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.get(
            &format!("{V1}/rooms/{}/threads", enc("!nowhere:localhost")),
            Some(&alice.token),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    for bad in ["?from=garbage", "?include=mine", "?limit=many"] {
        assert_error(
            &t.get(&threads(bad), Some(&alice.token)).await,
            400,
            "M_INVALID_PARAM",
        );
    }
    let (status, _) = t.get(&threads("?limit=100000"), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&t.get(&threads(""), None).await, 401, "M_MISSING_TOKEN");
    t.stop().await;
}

#[tokio::test]
async fn history_visibility_bounds_timestamps_and_threads() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let carol = t.register("carol", "password-carol").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "initial_state": [{
            "type": "m.room.history_visibility",
            "content": { "history_visibility": "joined" },
        }] }),
    )
    .await;
    let early = say(&t, &alice, &room, "before carol").await;
    reply(&t, &alice, &room, &early, "a reply before carol").await;
    // More hidden events than one read of candidates holds, so the lookup reads on.
    for n in 0..12 {
        say(&t, &alice, &room, &format!("hidden {n}")).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(join(&t, &carol, &room).await.0, StatusCode::OK);
    // A reply after Carol joined does not show her a root she may not see.
    reply(&t, &alice, &room, &early, "a reply after carol").await;
    say(&t, &alice, &room, "after carol").await;

    // From Alice's first message on, the first event Carol may see is her own join.
    let early_ts = ts_of(&t, &alice, &room, &early).await;
    let find = format!(
        "{V1}/rooms/{}/timestamp_to_event?ts={early_ts}&dir=f",
        enc(&room)
    );
    let (status, body) = t.get(&find, Some(&carol.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, seen) = t
        .get(
            &format!(
                "{V3}/rooms/{}/event/{}",
                enc(&room),
                enc(body["event_id"].as_str().unwrap())
            ),
            Some(&carol.token),
        )
        .await;
    assert_eq!(seen["type"], "m.room.member", "{seen}");
    assert_eq!(seen["state_key"], carol.user_id);
    let (_, body) = t.get(&find, Some(&alice.token)).await;
    assert_eq!(body["event_id"], early);

    let threads = format!("{V1}/rooms/{}/threads", enc(&room));
    let (_, body) = t.get(&threads, Some(&carol.token)).await;
    assert_eq!(body["chunk"], json!([]), "{body}");
    let (_, body) = t.get(&threads, Some(&alice.token)).await;
    assert_eq!(body["chunk"][0]["event_id"], early);
    assert_eq!(
        body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"],
        2
    );
    t.stop().await;
}
