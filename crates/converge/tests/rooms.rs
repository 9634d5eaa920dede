//! Rooms over real HTTP: creation, membership and power levels, sending and reading
//! events, history pagination, redactions, relations, aliases and the directories.

mod common;

use common::{Api, TestServer, User, V3, assert_error, create_room, enc, next_txn};
use converge_service::config::Rate;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send_event(
    t: &TestServer,
    user: &User,
    room: &str,
    event_type: &str,
    content: Value,
) -> (StatusCode, Value) {
    let path = format!("{V3}/rooms/{room}/send/{event_type}/{}", next_txn());
    t.put(&path, Some(&user.token), content).await
}

/// Sends an `m.text` message and returns its event ID.
async fn send_text(t: &TestServer, user: &User, room: &str, text: &str) -> String {
    let (status, body) = send_event(
        t,
        user,
        room,
        "m.room.message",
        json!({ "msgtype": "m.text", "body": text }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "send {text}: {body}");
    body["event_id"].as_str().expect("event_id").to_owned()
}

async fn join(t: &TestServer, user: &User, room: &str) -> (StatusCode, Value) {
    t.post(
        &format!("{V3}/join/{}", enc(room)),
        Some(&user.token),
        json!({}),
    )
    .await
}

async fn state(
    t: &TestServer,
    user: &User,
    room: &str,
    event_type: &str,
    key: &str,
) -> (StatusCode, Value) {
    t.get(
        &format!("{V3}/rooms/{room}/state/{event_type}/{key}"),
        Some(&user.token),
    )
    .await
}

/// The content of a room's current state event with an empty state key, read from the
/// full state (`Null` if there is none).
async fn content(t: &TestServer, user: &User, room: &str, event_type: &str) -> Value {
    let (status, all) = t
        .get(&format!("{V3}/rooms/{room}/state"), Some(&user.token))
        .await;
    assert_eq!(status, StatusCode::OK, "state of {room}: {all}");
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == event_type && e["state_key"] == "")
        .map_or(Value::Null, |e| e["content"].clone())
}

async fn membership(t: &TestServer, viewer: &User, room: &str, user: &str) -> Value {
    let (status, body) = state(t, viewer, room, "m.room.member", user).await;
    assert_eq!(status, StatusCode::OK, "member event of {user}: {body}");
    body["membership"].clone()
}

async fn room_action(
    t: &TestServer,
    user: &User,
    room: &str,
    action: &str,
    target: &str,
) -> (StatusCode, Value) {
    t.post(
        &format!("{V3}/rooms/{room}/{action}"),
        Some(&user.token),
        json!({ "user_id": target, "reason": "test" }),
    )
    .await
}

fn bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn create_room_with_name_topic_and_alias() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "name": "Rustaceans", "topic": "All about Rust", "room_alias_name": "rust" }),
    )
    .await;
    assert!(
        room.starts_with('!') && room.ends_with(":localhost"),
        "{room}"
    );

    assert_eq!(
        content(&t, &alice, &room, "m.room.name").await,
        json!({ "name": "Rustaceans" })
    );
    assert_eq!(
        content(&t, &alice, &room, "m.room.topic").await["topic"],
        "All about Rust"
    );
    assert_eq!(
        content(&t, &alice, &room, "m.room.canonical_alias").await["alias"],
        "#rust:localhost"
    );
    assert_eq!(
        content(&t, &alice, &room, "m.room.join_rules").await["join_rule"],
        "invite"
    );
    assert_eq!(membership(&t, &alice, &room, &alice.user_id).await, "join");
    let levels = content(&t, &alice, &room, "m.room.power_levels").await;
    assert_eq!(levels["users"][&alice.user_id], 100);
    let create = content(&t, &alice, &room, "m.room.create").await;
    assert!(create["room_version"].is_string(), "{create}");

    let (status, all) = t
        .get(&format!("{V3}/rooms/{room}/state"), Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for wanted in [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.name",
        "m.room.topic",
        "m.room.canonical_alias",
    ] {
        assert!(types.contains(&wanted), "{wanted} missing from {types:?}");
    }
    assert_eq!(
        content(&t, &alice, &room, "m.room.avatar").await,
        Value::Null
    );

    let (status, resolved) = t
        .get(
            &format!("{V3}/directory/room/{}", enc("#rust:localhost")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["room_id"], room.as_str());
    let (_, joined) = t
        .get(&format!("{V3}/joined_rooms"), Some(&alice.token))
        .await;
    assert_eq!(joined["joined_rooms"], json!([room]));

    // The alias is taken now.
    let again = t
        .post(
            &format!("{V3}/createRoom"),
            Some(&alice.token),
            json!({ "room_alias_name": "rust" }),
        )
        .await;
    assert_error(&again, 400, "M_ROOM_IN_USE");
    let (_, joined) = t
        .get(&format!("{V3}/joined_rooms"), Some(&alice.token))
        .await;
    assert_eq!(
        joined["joined_rooms"].as_array().unwrap().len(),
        1,
        "a refused createRoom leaves no room behind"
    );
    t.stop().await;
}

#[tokio::test]
async fn presets_and_visibility_set_the_join_rule() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let cases = [
        (json!({ "preset": "private_chat" }), "invite"),
        (json!({ "preset": "trusted_private_chat" }), "invite"),
        (json!({ "preset": "public_chat" }), "public"),
        (json!({ "visibility": "public" }), "public"),
        (json!({}), "invite"),
    ];
    for (request, join_rule) in cases {
        let room = create_room(&t, &alice, request.clone()).await;
        let content = content(&t, &alice, &room, "m.room.join_rules").await;
        assert_eq!(content["join_rule"], join_rule, "{request}");
    }
    assert_error(
        &t.post(
            &format!("{V3}/createRoom"),
            Some(&alice.token),
            json!({ "preset": "party_chat" }),
        )
        .await,
        400,
        "M_BAD_JSON",
    );
    t.stop().await;
}

#[tokio::test]
async fn trusted_private_chat_makes_invitees_admins() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "preset": "trusted_private_chat", "invite": [bob.user_id], "is_direct": true }),
    )
    .await;
    let levels = content(&t, &alice, &room, "m.room.power_levels").await;
    assert_eq!(levels["users"][&alice.user_id], 100);
    assert_eq!(levels["users"][&bob.user_id], 100);
    let (_, member) = state(&t, &alice, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member["membership"], "invite");
    assert_eq!(member["is_direct"], true);

    // A private_chat invitee gets no power.
    let room = create_room(
        &t,
        &alice,
        json!({ "preset": "private_chat", "invite": [carol.user_id] }),
    )
    .await;
    let levels = content(&t, &alice, &room, "m.room.power_levels").await;
    assert!(levels["users"].get(&carol.user_id).is_none(), "{levels}");
    assert_eq!(
        membership(&t, &alice, &room, &carol.user_id).await,
        "invite"
    );
    t.stop().await;
}

#[tokio::test]
async fn power_level_content_override_is_applied() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({
            "preset": "public_chat",
            "power_level_content_override": {
                "events_default": 20,
                "users": { alice.user_id.clone(): 100, bob.user_id.clone(): 20 },
            },
        }),
    )
    .await;
    let levels = content(&t, &alice, &room, "m.room.power_levels").await;
    assert_eq!(levels["events_default"], 20);
    assert_eq!(levels["users"][&bob.user_id], 20);
    assert_eq!(levels["ban"], 50, "keys not overridden keep their defaults");

    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    assert_eq!(join(&t, &carol, &room).await.0, StatusCode::OK);
    send_text(&t, &bob, &room, "bob may talk").await;
    let refused = send_event(
        &t,
        &carol,
        &room,
        "m.room.message",
        json!({ "msgtype": "m.text", "body": "carol may not" }),
    )
    .await;
    assert_error(&refused, 403, "M_FORBIDDEN");
    t.stop().await;
}

#[tokio::test]
async fn room_versions() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    for version in ["10", "11"] {
        let room = create_room(&t, &alice, json!({ "room_version": version })).await;
        let create = content(&t, &alice, &room, "m.room.create").await;
        assert_eq!(create["room_version"], version);
        // Room version 11 dropped `creator`; the sender is the creator.
        assert_eq!(create.get("creator").is_some(), version == "10", "{create}");
        send_text(&t, &alice, &room, "works").await;
    }
    for bad in ["9999", "not-a-version"] {
        let result = t
            .post(
                &format!("{V3}/createRoom"),
                Some(&alice.token),
                json!({ "room_version": bad }),
            )
            .await;
        assert_error(&result, 400, "M_UNSUPPORTED_ROOM_VERSION");
    }
    t.stop().await;
}

#[tokio::test]
async fn invite_join_leave_and_forget() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({ "preset": "private_chat" })).await;

    assert_error(&join(&t, &bob, &room).await, 403, "M_FORBIDDEN");
    assert_error(
        &t.post(
            &format!("{V3}/rooms/{room}/join"),
            Some(&bob.token),
            json!({}),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    // Inviting someone who does not exist is refused.
    let ghost = room_action(&t, &alice, &room, "invite", "@ghost:localhost").await;
    assert!(ghost.0.is_client_error(), "{ghost:?}");

    assert_eq!(
        room_action(&t, &alice, &room, "invite", &bob.user_id)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(membership(&t, &alice, &room, &bob.user_id).await, "invite");
    let (status, body) = t
        .post(
            &format!("{V3}/rooms/{room}/join"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    let (_, members) = t
        .get(
            &format!("{V3}/rooms/{room}/joined_members"),
            Some(&bob.token),
        )
        .await;
    let joined: Vec<&String> = members["joined"].as_object().unwrap().keys().collect();
    assert_eq!(joined, vec![&alice.user_id, &bob.user_id]);
    let (_, members) = t
        .get(&format!("{V3}/rooms/{room}/members"), Some(&bob.token))
        .await;
    assert_eq!(members["chunk"].as_array().unwrap().len(), 2);
    // Inviting someone already in the room, or inviting as an outsider, is refused.
    assert_error(
        &room_action(&t, &alice, &room, "invite", &bob.user_id).await,
        403,
        "M_FORBIDDEN",
    );
    let carol = t.register("carol", "pw-carol-1").await;
    assert_error(
        &room_action(&t, &carol, &room, "invite", &carol.user_id).await,
        403,
        "M_FORBIDDEN",
    );

    // Forgetting needs leaving first.
    let early = t
        .post(
            &format!("{V3}/rooms/{room}/forget"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(early.0, StatusCode::BAD_REQUEST, "{early:?}");
    send_text(&t, &alice, &room, "before bob left").await;
    assert_eq!(
        t.post(
            &format!("{V3}/rooms/{room}/leave"),
            Some(&bob.token),
            json!({})
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(membership(&t, &alice, &room, &bob.user_id).await, "leave");
    let (_, joined) = t.get(&format!("{V3}/joined_rooms"), Some(&bob.token)).await;
    assert_eq!(joined["joined_rooms"], json!([]));
    // Bob still sees the history he was there for, and nothing after.
    let after = send_text(&t, &alice, &room, "after bob left").await;
    let (status, page) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=50"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        bodies(page["chunk"].as_array().unwrap()),
        vec!["before bob left"]
    );
    assert_error(
        &t.get(
            &format!("{V3}/rooms/{room}/event/{after}"),
            Some(&bob.token),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &send_event(
            &t,
            &bob,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "x" }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );

    let include_leave = enc(r#"{"room":{"include_leave":true}}"#);
    let (_, sync) = t
        .get(
            &format!("{V3}/sync?filter={include_leave}"),
            Some(&bob.token),
        )
        .await;
    assert!(
        sync["rooms"]["leave"].get(&room).is_some(),
        "left room listed before forgetting: {sync}"
    );
    assert_eq!(
        t.post(
            &format!("{V3}/rooms/{room}/forget"),
            Some(&bob.token),
            json!({})
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, sync) = t
        .get(
            &format!("{V3}/sync?filter={include_leave}"),
            Some(&bob.token),
        )
        .await;
    assert!(
        sync["rooms"]["leave"].get(&room).is_none(),
        "forgotten room still listed: {sync}"
    );
    t.stop().await;
}

#[tokio::test]
async fn join_a_public_room_by_alias() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "lobby" }),
    )
    .await;
    let (status, body) = join(&t, &bob, "#lobby:localhost").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    assert_eq!(membership(&t, &alice, &room, &bob.user_id).await, "join");
    send_text(&t, &bob, &room, "hello from bob").await;
    assert_error(
        &join(&t, &bob, "#nowhere:localhost").await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

/// A room with alice at 100, bob at 50 (a moderator), and carol and dave at 0, all joined.
/// Sending power levels needs 50 here, so that bob may try.
async fn moderated_room(t: &TestServer) -> (String, [User; 4]) {
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    let dave = t.register("dave", "pw-dave-1").await;
    let room = create_room(
        t,
        &alice,
        json!({
            "preset": "public_chat",
            "power_level_content_override": {
                "users": { alice.user_id.clone(): 100, bob.user_id.clone(): 50 },
                "events": { "m.room.power_levels": 50 },
            },
        }),
    )
    .await;
    for user in [&bob, &carol, &dave] {
        assert_eq!(join(t, user, &room).await.0, StatusCode::OK);
    }
    (room, [alice, bob, carol, dave])
}

#[tokio::test]
async fn knocking() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let closed = create_room(&t, &alice, json!({ "preset": "private_chat" })).await;
    let room = create_room(
        &t,
        &alice,
        json!({ "room_alias_name": "knockme", "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }] }),
    )
    .await;
    assert_eq!(
        content(&t, &alice, &room, "m.room.join_rules").await["join_rule"],
        "knock"
    );
    let knock = |target: &str| format!("{V3}/knock/{}", enc(target));

    assert_error(
        &t.post(&knock(&closed), Some(&bob.token), json!({})).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(&join(&t, &bob, &room).await, 403, "M_FORBIDDEN");
    let (status, body) = t
        .post(
            &knock("#knockme:localhost"),
            Some(&bob.token),
            json!({ "reason": "let me in" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    let (_, member) = state(&t, &alice, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member["membership"], "knock");
    assert_eq!(member["reason"], "let me in");
    let (_, sync) = t.get(&format!("{V3}/sync"), Some(&bob.token)).await;
    let knock_state = &sync["rooms"]["knock"][&room]["knock_state"]["events"];
    assert!(
        knock_state.as_array().is_some_and(|e| !e.is_empty()),
        "{sync}"
    );
    // Knocking is not joining.
    assert_error(
        &send_event(
            &t,
            &bob,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "x" }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    // The knock is answered with an invite.
    assert_eq!(
        room_action(&t, &alice, &room, "invite", &bob.user_id)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    assert_eq!(membership(&t, &alice, &room, &bob.user_id).await, "join");
    t.stop().await;
}

#[tokio::test]
async fn kick_ban_and_unban_follow_power_levels() {
    let t = TestServer::start().await;
    let (room, [alice, bob, carol, dave]) = moderated_room(&t).await;

    // A PL-0 user can neither kick nor ban.
    assert_error(
        &room_action(&t, &carol, &room, "kick", &dave.user_id).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &room_action(&t, &carol, &room, "ban", &dave.user_id).await,
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(membership(&t, &alice, &room, &dave.user_id).await, "join");
    // A moderator cannot kick or ban the admin above them.
    assert_error(
        &room_action(&t, &bob, &room, "kick", &alice.user_id).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &room_action(&t, &bob, &room, "ban", &alice.user_id).await,
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(membership(&t, &alice, &room, &alice.user_id).await, "join");
    // Kicking someone who is not in the room is refused.
    let outsider = t.register("outsider", "pw-out-1").await;
    assert_error(
        &room_action(&t, &bob, &room, "kick", &outsider.user_id).await,
        403,
        "M_FORBIDDEN",
    );

    // Kick: out, but free to come back to a public room.
    assert_eq!(
        room_action(&t, &bob, &room, "kick", &dave.user_id).await.0,
        StatusCode::OK
    );
    let (_, member) = state(&t, &alice, &room, "m.room.member", &dave.user_id).await;
    assert_eq!(member["membership"], "leave");
    assert_eq!(member["reason"], "test");
    let (_, kick) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=1"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(
        kick["chunk"][0]["sender"],
        bob.user_id.as_str(),
        "the kick is bob's event"
    );
    let refused = send_event(
        &t,
        &dave,
        &room,
        "m.room.message",
        json!({ "msgtype": "m.text", "body": "x" }),
    )
    .await;
    assert_error(&refused, 403, "M_FORBIDDEN");
    assert_eq!(join(&t, &dave, &room).await.0, StatusCode::OK);

    // Ban: out, and stays out.
    assert_eq!(
        room_action(&t, &bob, &room, "ban", &dave.user_id).await.0,
        StatusCode::OK
    );
    assert_eq!(membership(&t, &alice, &room, &dave.user_id).await, "ban");
    assert_error(&join(&t, &dave, &room).await, 403, "M_FORBIDDEN");
    assert_error(
        &room_action(&t, &alice, &room, "invite", &dave.user_id).await,
        403,
        "M_FORBIDDEN",
    );
    // Only someone with the ban level may lift it.
    assert_error(
        &room_action(&t, &carol, &room, "unban", &dave.user_id).await,
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(membership(&t, &alice, &room, &dave.user_id).await, "ban");
    assert_eq!(
        room_action(&t, &bob, &room, "unban", &dave.user_id).await.0,
        StatusCode::OK
    );
    assert_eq!(membership(&t, &alice, &room, &dave.user_id).await, "leave");
    // After the unban, an invite works again.
    assert_eq!(
        room_action(&t, &alice, &room, "invite", &dave.user_id)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        t.post(
            &format!("{V3}/rooms/{room}/join"),
            Some(&dave.token),
            json!({})
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(membership(&t, &alice, &room, &dave.user_id).await, "join");
    t.stop().await;
}

#[tokio::test]
async fn power_level_changes_are_checked() {
    let t = TestServer::start().await;
    let (room, [alice, bob, carol, _]) = moderated_room(&t).await;
    let levels = content(&t, &alice, &room, "m.room.power_levels").await;
    let put_levels = async |who: &User, content: &Value| {
        t.put(
            &format!("{V3}/rooms/{room}/state/m.room.power_levels/"),
            Some(&who.token),
            content.clone(),
        )
        .await
    };
    let mut carol_to_50 = levels.clone();
    carol_to_50["users"][&carol.user_id] = json!(50);
    let mut bob_to_100 = levels.clone();
    bob_to_100["users"][&bob.user_id] = json!(100);
    let mut alice_to_0 = levels.clone();
    alice_to_0["users"][&alice.user_id] = json!(0);

    // PL 0 may not send power levels at all (carol raising herself included).
    assert_error(&put_levels(&carol, &carol_to_50).await, 403, "M_FORBIDDEN");
    // PL 50 may send them, but may not raise anyone above 50, nor lower the admin.
    assert_error(&put_levels(&bob, &bob_to_100).await, 403, "M_FORBIDDEN");
    assert_error(&put_levels(&bob, &alice_to_0).await, 403, "M_FORBIDDEN");
    assert_eq!(
        content(&t, &alice, &room, "m.room.power_levels").await,
        levels,
        "refused changes leave them alone"
    );
    // Raising someone else up to one's own level is fine.
    assert_eq!(put_levels(&bob, &carol_to_50).await.0, StatusCode::OK);
    assert_eq!(
        content(&t, &alice, &room, "m.room.power_levels").await["users"][&carol.user_id],
        50
    );
    let (_, read) = state(&t, &alice, &room, "m.room.power_levels", "").await;
    assert_eq!(read["users"][&carol.user_id], 50);
    t.stop().await;
}

#[tokio::test]
async fn non_members_cannot_send_or_read() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let eve = t.register("eve", "pw-eve-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "preset": "private_chat", "name": "Secret" }),
    )
    .await;
    let event = send_text(&t, &alice, &room, "secret").await;
    let sent = send_event(
        &t,
        &eve,
        &room,
        "m.room.message",
        json!({ "msgtype": "m.text", "body": "let me in" }),
    )
    .await;
    assert_error(&sent, 403, "M_FORBIDDEN");
    for path in [
        format!("{V3}/rooms/{room}/messages?dir=b"),
        format!("{V3}/rooms/{room}/state"),
        format!("{V3}/rooms/{room}/state/m.room.member/{}", alice.user_id),
        format!("{V3}/rooms/{room}/event/{event}"),
        format!("{V3}/rooms/{room}/members"),
        format!("{V3}/rooms/{room}/joined_members"),
    ] {
        assert_error(&t.get(&path, Some(&eve.token)).await, 403, "M_FORBIDDEN");
    }
    t.stop().await;
}

#[tokio::test]
async fn state_events_need_their_power_level() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "name": "Original" }),
    )
    .await;
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    let path = format!("{V3}/rooms/{room}/state/com.example.custom/some-key");
    assert_eq!(
        t.put(&path, Some(&alice.token), json!({ "x": 1 })).await.0,
        StatusCode::OK
    );

    // state_default is 50: bob at 0 may send messages but no state.
    send_text(&t, &bob, &room, "bob may talk").await;
    assert_error(
        &t.put(&path, Some(&bob.token), json!({ "x": 666 })).await,
        403,
        "M_FORBIDDEN",
    );
    let fresh = t
        .put(
            &format!("{V3}/rooms/{room}/state/com.example.custom/other"),
            Some(&bob.token),
            json!({ "x": 2 }),
        )
        .await;
    assert_error(&fresh, 403, "M_FORBIDDEN");
    assert_eq!(
        state(&t, &bob, &room, "com.example.custom", "some-key")
            .await
            .1,
        json!({ "x": 1 }),
        "unchanged"
    );
    assert_error(
        &state(&t, &bob, &room, "com.example.custom", "other").await,
        404,
        "M_NOT_FOUND",
    );
    // Someone else's member event is not bob's to write either.
    let member = t
        .put(
            &format!("{V3}/rooms/{room}/state/m.room.member/{}", alice.user_id),
            Some(&bob.token),
            json!({ "membership": "leave" }),
        )
        .await;
    assert_error(&member, 403, "M_FORBIDDEN");
    assert_eq!(membership(&t, &bob, &room, &alice.user_id).await, "join");

    let (status, body) = t.put(&path, Some(&alice.token), json!({ "x": 3 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["event_id"].as_str().unwrap().starts_with('$'));
    assert_eq!(
        state(&t, &bob, &room, "com.example.custom", "some-key")
            .await
            .1,
        json!({ "x": 3 })
    );
    let (_, event) = t
        .get(
            &format!(
                "{V3}/rooms/{room}/event/{}",
                body["event_id"].as_str().unwrap()
            ),
            Some(&bob.token),
        )
        .await;
    assert_eq!(
        event["unsigned"]["prev_content"],
        json!({ "x": 1 }),
        "{event}"
    );
    t.stop().await;
}

#[tokio::test]
async fn state_events_with_an_empty_state_key() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "name": "Original" }),
    )
    .await;
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    // The spec makes the trailing slash optional when the state key is empty.
    for path in [
        format!("{V3}/rooms/{room}/state/m.room.name/"),
        format!("{V3}/rooms/{room}/state/m.room.name"),
    ] {
        let (status, body) = t.get(&path, Some(&bob.token)).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        assert_eq!(body, json!({ "name": "Original" }));
        assert_error(
            &t.put(&path, Some(&bob.token), json!({ "name": "Hijacked" }))
                .await,
            403,
            "M_FORBIDDEN",
        );
    }
    assert_error(
        &t.put(
            &format!("{V3}/rooms/{room}/state/m.room.join_rules/"),
            Some(&bob.token),
            json!({ "join_rule": "invite" }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(
        content(&t, &bob, &room, "m.room.name").await["name"],
        "Original"
    );
    assert_eq!(
        content(&t, &bob, &room, "m.room.join_rules").await["join_rule"],
        "public"
    );

    let (status, body) = t
        .put(
            &format!("{V3}/rooms/{room}/state/m.room.name/"),
            Some(&alice.token),
            json!({ "name": "Renamed" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = t
        .put(
            &format!("{V3}/rooms/{room}/state/m.room.topic"),
            Some(&alice.token),
            json!({ "topic": "Topical" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        state(&t, &bob, &room, "m.room.name", "").await.1["name"],
        "Renamed"
    );
    assert_eq!(
        state(&t, &bob, &room, "m.room.topic", "").await.1["topic"],
        "Topical"
    );
    assert_error(
        &state(&t, &bob, &room, "m.room.avatar", "").await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

#[tokio::test]
async fn transaction_ids_are_idempotent_per_device() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    let (_, login) = t.login("alice", "pw-alice-1").await;
    let laptop = common::user_from(&login);
    assert_ne!(laptop.device_id, alice.device_id);

    let path = format!("{V3}/rooms/{room}/send/m.room.message/same-txn");
    let content = json!({ "msgtype": "m.text", "body": "once" });
    let (s1, first) = t.put(&path, Some(&alice.token), content.clone()).await;
    let (s2, second) = t.put(&path, Some(&alice.token), content.clone()).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        first["event_id"], second["event_id"],
        "a retried transaction is the same event"
    );
    let (s3, other) = t.put(&path, Some(&laptop.token), content.clone()).await;
    assert_eq!(s3, StatusCode::OK);
    assert_ne!(
        other["event_id"], first["event_id"],
        "another device's transaction is its own"
    );

    let (_, page) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=50"),
            Some(&alice.token),
        )
        .await;
    let chunk = page["chunk"].as_array().unwrap();
    assert_eq!(bodies(chunk), vec!["once", "once"], "two events, not three");
    let mine = chunk
        .iter()
        .find(|e| e["event_id"] == first["event_id"])
        .unwrap();
    assert_eq!(
        mine["unsigned"]["transaction_id"], "same-txn",
        "the sending device sees its txn id"
    );
    let (_, seen_by_laptop) = t
        .get(
            &format!(
                "{V3}/rooms/{room}/event/{}",
                first["event_id"].as_str().unwrap()
            ),
            Some(&laptop.token),
        )
        .await;
    assert!(
        seen_by_laptop["unsigned"].get("transaction_id").is_none(),
        "{seen_by_laptop}"
    );
    t.stop().await;
}

#[tokio::test]
async fn oversized_events_are_refused() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    let big = "x".repeat(70_000);
    let result = send_event(
        &t,
        &alice,
        &room,
        "m.room.message",
        json!({ "msgtype": "m.text", "body": big }),
    )
    .await;
    assert_error(&result, 413, "M_TOO_LARGE");
    let state_result = t
        .put(
            &format!("{V3}/rooms/{room}/state/com.example.big/key"),
            Some(&alice.token),
            json!({ "text": big }),
        )
        .await;
    assert_error(&state_result, 413, "M_TOO_LARGE");
    // Just under the limit is fine.
    send_text(&t, &alice, &room, &"y".repeat(60_000)).await;
    let (_, page) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=50"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(bodies(page["chunk"].as_array().unwrap()).len(), 1);
    assert_error(
        &state(&t, &alice, &room, "com.example.big", "key").await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_rooms_and_events() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    // Not a room ID at all.
    for path in [
        format!("{V3}/rooms/not-a-room/state"),
        format!("{V3}/rooms/not-a-room/messages?dir=b"),
        format!("{V3}/rooms/{room}/event/not-an-event"),
    ] {
        assert_error(
            &t.get(&path, Some(&alice.token)).await,
            400,
            "M_INVALID_PARAM",
        );
    }
    assert_error(
        &t.put(
            &format!("{V3}/rooms/not-a-room/send/m.room.message/t1"),
            Some(&alice.token),
            json!({ "body": "x" }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    // Well-formed, but no such room or event.
    assert_error(
        &t.put(
            &format!("{V3}/rooms/!nope:localhost/send/m.room.message/t2"),
            Some(&alice.token),
            json!({ "body": "x" }),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.get(
            &format!("{V3}/rooms/!nope:localhost/state"),
            Some(&alice.token),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.post(
            &format!("{V3}/rooms/!nope:localhost/join"),
            Some(&alice.token),
            json!({}),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.get(
            &format!("{V3}/rooms/{room}/event/$nope"),
            Some(&alice.token),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    // Content must be an object.
    let (status, body) = t
        .call(
            Method::PUT,
            &format!("{V3}/rooms/{room}/send/m.room.message/t3"),
            Some(&alice.token),
            Some(json!([1, 2])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    t.stop().await;
}

/// Pages through a room's history in `dir` from `from`, returning all events and the pages'
/// sizes; stops when the server leaves out `end` (or returns an empty page).
async fn paginate(
    t: &TestServer,
    user: &User,
    room: &str,
    dir: &str,
    from: Option<&str>,
    extra: &str,
) -> (Vec<Value>, Vec<usize>) {
    let mut events = Vec::new();
    let mut sizes = Vec::new();
    let mut from = from.map(str::to_owned);
    for _ in 0..50 {
        let mut path = format!("{V3}/rooms/{room}/messages?dir={dir}&limit=10{extra}");
        if let Some(from) = &from {
            path.push_str(&format!("&from={from}"));
        }
        let (status, page) = t.get(&path, Some(&user.token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let chunk = page["chunk"].as_array().unwrap();
        assert!(chunk.len() <= 10, "limit respected");
        sizes.push(chunk.len());
        events.extend(chunk.iter().cloned());
        match page["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = Some(end.to_owned()),
            _ => return (events, sizes),
        }
    }
    panic!("pagination did not end");
}

#[tokio::test]
async fn messages_paginate_backward_and_forward() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    let texts: Vec<String> = (0..25).map(|i| format!("message {i}")).collect();
    for text in &texts {
        send_text(&t, &alice, &room, text).await;
    }

    let (backward, _) = paginate(&t, &alice, &room, "b", None, "").await;
    let mut expected = texts.clone();
    expected.reverse();
    assert_eq!(
        bodies(&backward),
        expected,
        "newest first, every message once"
    );
    assert_eq!(
        backward.last().unwrap()["type"],
        "m.room.create",
        "back to the start of the room"
    );
    let ids: std::collections::HashSet<&str> = backward
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), backward.len(), "no event twice");

    let (forward, _) = paginate(&t, &alice, &room, "f", None, "").await;
    let mut reversed = backward.clone();
    reversed.reverse();
    let id_list = |events: &[Value]| {
        events
            .iter()
            .map(|e| e["event_id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        id_list(&forward),
        id_list(&reversed),
        "forward is backward reversed"
    );

    // With a type filter the pages hold only messages: 10, 10, 5.
    let filter = "&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D";
    let (only, sizes) = paginate(&t, &alice, &room, "b", None, filter).await;
    assert_eq!(bodies(&only), expected);
    assert_eq!(only.len(), 25);
    assert_eq!(&sizes[..3], &[10, 10, 5], "{sizes:?}");
    // Lazy-loading members brings the senders' member events along.
    let lazy = enc(r#"{"types":["m.room.message"],"lazy_load_members":true}"#);
    let (_, page) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=5&filter={lazy}"),
            Some(&alice.token),
        )
        .await;
    let members: Vec<&Value> = page["state"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .collect();
    assert_eq!(members.len(), 1, "{page}");
    assert_eq!(members[0]["state_key"], alice.user_id.as_str());

    // Forward again from the middle: the token of the first backward page continues
    // backward, and going forward from a later token finds what came after.
    let (_, first) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=10{filter}"),
            Some(&alice.token),
        )
        .await;
    let end = first["end"].as_str().expect("more history").to_owned();
    let (after, _) = paginate(&t, &alice, &room, "f", Some(&end), filter).await;
    assert_eq!(
        bodies(&after),
        texts[15..].to_vec(),
        "forward from the page's end"
    );
    t.stop().await;
}

#[tokio::test]
async fn malformed_pagination_tokens_are_refused() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    for bad in ["garbage", "t-1", "s1", "tx", "12"] {
        let result = t
            .get(
                &format!("{V3}/rooms/{room}/messages?dir=b&from={bad}"),
                Some(&alice.token),
            )
            .await;
        assert_error(&result, 400, "M_INVALID_PARAM");
    }
    let result = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&to=garbage"),
            Some(&alice.token),
        )
        .await;
    assert_error(&result, 400, "M_INVALID_PARAM");
    let result = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=sideways"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(result.0, StatusCode::BAD_REQUEST, "{result:?}");
    t.stop().await;
}

#[tokio::test]
async fn context_returns_events_around_an_event() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(send_text(&t, &alice, &room, &format!("m{i}")).await);
    }
    let (status, context) = t
        .get(
            &format!("{V3}/rooms/{room}/context/{}?limit=4", ids[3]),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{context}");
    assert_eq!(context["event"]["event_id"], ids[3].as_str());
    assert_eq!(context["event"]["content"]["body"], "m3");
    assert_eq!(
        bodies(context["events_before"].as_array().unwrap()),
        vec!["m2", "m1"],
        "before: newest first"
    );
    assert_eq!(
        bodies(context["events_after"].as_array().unwrap()),
        vec!["m4", "m5"],
        "after: oldest first"
    );
    assert!(
        context["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create")
    );

    // The tokens continue from where the context ends.
    let start = context["start"].as_str().unwrap();
    let end = context["end"].as_str().unwrap();
    let (_, older) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=1&from={start}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(bodies(older["chunk"].as_array().unwrap()), vec!["m0"]);
    let (_, newer) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=f&limit=5&from={end}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(bodies(newer["chunk"].as_array().unwrap()), vec!["m6"]);

    assert_error(
        &t.get(
            &format!("{V3}/rooms/{room}/context/$missing"),
            Some(&alice.token),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

#[tokio::test]
async fn redactions_strip_content_and_need_power() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    let oops = send_text(&t, &alice, &room, "my password is hunter2").await;
    let keep = send_text(&t, &alice, &room, "keep me").await;
    let bobs = send_text(&t, &bob, &room, "bob regrets this").await;

    let redact = async |who: &User, event: &str| {
        t.put(
            &format!("{V3}/rooms/{room}/redact/{event}/{}", next_txn()),
            Some(&who.token),
            json!({ "reason": "oops" }),
        )
        .await
    };
    let (status, body) = redact(&alice, &oops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let redaction_id = body["event_id"].as_str().unwrap().to_owned();

    let (_, event) = t
        .get(&format!("{V3}/rooms/{room}/event/{oops}"), Some(&bob.token))
        .await;
    assert_eq!(event["content"], json!({}), "{event}");
    assert_eq!(event["type"], "m.room.message");
    assert_eq!(
        event["unsigned"]["redacted_because"]["event_id"],
        redaction_id.as_str()
    );
    assert_eq!(
        event["unsigned"]["redacted_because"]["content"]["reason"],
        "oops"
    );
    let (_, page) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=50"),
            Some(&bob.token),
        )
        .await;
    let chunk = page["chunk"].as_array().unwrap();
    let listed = chunk
        .iter()
        .find(|e| e["event_id"] == oops.as_str())
        .unwrap();
    assert_eq!(listed["content"], json!({}));
    assert!(
        !page.to_string().contains("hunter2"),
        "the content is gone everywhere"
    );
    let redaction = chunk
        .iter()
        .find(|e| e["event_id"] == redaction_id.as_str())
        .unwrap();
    assert_eq!(redaction["type"], "m.room.redaction");
    assert_eq!(
        redaction["redacts"]
            .as_str()
            .or(redaction["content"]["redacts"].as_str()),
        Some(oops.as_str())
    );

    // A PL-0 member may not redact someone else's event, but may redact their own.
    assert_error(&redact(&bob, &keep).await, 403, "M_FORBIDDEN");
    assert_eq!(
        t.get(&format!("{V3}/rooms/{room}/event/{keep}"), Some(&bob.token))
            .await
            .1["content"]["body"],
        "keep me"
    );
    assert_eq!(redact(&bob, &bobs).await.0, StatusCode::OK);
    assert_eq!(
        t.get(&format!("{V3}/rooms/{room}/event/{bobs}"), Some(&bob.token))
            .await
            .1["content"],
        json!({})
    );
    // The admin may redact anyone's.
    assert_eq!(redact(&alice, &keep).await.0, StatusCode::OK);
    // Redacting a state event strips the room's current state too.
    let custom = format!("{V3}/rooms/{room}/state/com.example.note/k");
    let (_, note) = t
        .put(
            &custom,
            Some(&alice.token),
            json!({ "text": "secret note" }),
        )
        .await;
    assert_eq!(
        redact(&alice, note["event_id"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    assert_eq!(t.get(&custom, Some(&bob.token)).await.1, json!({}));
    assert_error(&redact(&alice, "$does-not-exist").await, 404, "M_NOT_FOUND");
    t.stop().await;
}

#[tokio::test]
async fn relations_are_listed_and_filtered() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    let root = send_text(&t, &alice, &room, "root").await;
    let unrelated = send_text(&t, &alice, &room, "unrelated").await;
    let (_, reaction) = send_event(
        &t,
        &bob,
        &room,
        "m.reaction",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": root, "key": "👍" } }),
    )
    .await;
    let reaction = reaction["event_id"].as_str().unwrap().to_owned();
    let (_, reference) = send_event(
        &t,
        &bob,
        &room,
        "m.room.message",
        json!({ "msgtype": "m.text", "body": "see above", "m.relates_to": { "rel_type": "m.reference", "event_id": root } }),
    )
    .await;
    let reference = reference["event_id"].as_str().unwrap().to_owned();
    // A relation to another event is not listed under the root.
    send_event(&t, &bob, &room, "m.reaction", json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": unrelated, "key": "👎" } })).await;

    let base = format!("/_matrix/client/v1/rooms/{room}/relations/{root}");
    let ids = |body: &Value| {
        let mut ids: Vec<String> = body["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let cases = [
        (
            base.clone(),
            sorted(vec![reaction.clone(), reference.clone()]),
        ),
        (format!("{base}/m.annotation"), vec![reaction.clone()]),
        (format!("{base}/m.reference"), vec![reference.clone()]),
        (
            format!("{base}/m.annotation/m.reaction"),
            vec![reaction.clone()],
        ),
        (
            format!("{base}/m.reference/m.room.message"),
            vec![reference.clone()],
        ),
        (format!("{base}/m.annotation/m.room.message"), vec![]),
        (format!("{base}/m.thread"), vec![]),
    ];
    for (path, expected) in cases {
        let (status, body) = t.get(&path, Some(&alice.token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(ids(&body), expected, "{path}");
    }
    let (_, body) = t
        .get(&format!("{base}/m.annotation"), Some(&alice.token))
        .await;
    assert_eq!(body["chunk"][0]["content"]["m.relates_to"]["key"], "👍");
    // Paging one at a time: newest first, then the rest, then done.
    let (_, page) = t.get(&format!("{base}?limit=1"), Some(&alice.token)).await;
    assert_eq!(page["chunk"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["chunk"][0]["event_id"], reference.as_str());
    let next = page["next_batch"].as_str().expect("next_batch");
    let (_, page) = t
        .get(&format!("{base}?limit=1&from={next}"), Some(&alice.token))
        .await;
    assert_eq!(page["chunk"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["chunk"][0]["event_id"], reaction.as_str());
    if let Some(next) = page["next_batch"].as_str() {
        let (_, page) = t
            .get(&format!("{base}?limit=1&from={next}"), Some(&alice.token))
            .await;
        assert_eq!(page["chunk"], json!([]), "{page}");
    }
    assert_error(
        &t.get(
            &format!("/_matrix/client/v1/rooms/{room}/relations/$nope"),
            Some(&alice.token),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

#[tokio::test]
async fn aliases_are_created_resolved_and_deleted() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    let other = create_room(&t, &alice, json!({})).await;
    let alias_path = |alias: &str| format!("{V3}/directory/room/{}", enc(alias));

    let (status, body) = t
        .put(
            &alias_path("#team:localhost"),
            Some(&alice.token),
            json!({ "room_id": room }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t.get(&alias_path("#team:localhost"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "room_id": room, "servers": ["localhost"] }));
    let (_, aliases) = t
        .get(&format!("{V3}/rooms/{room}/aliases"), Some(&alice.token))
        .await;
    assert_eq!(aliases["aliases"], json!(["#team:localhost"]));

    let taken = t
        .put(
            &alias_path("#team:localhost"),
            Some(&alice.token),
            json!({ "room_id": other }),
        )
        .await;
    assert_eq!(taken.0, StatusCode::CONFLICT, "{taken:?}");
    assert!(taken.1["errcode"].is_string(), "{taken:?}");
    assert_eq!(
        t.get(&alias_path("#team:localhost"), None).await.1["room_id"],
        room.as_str(),
        "unchanged"
    );
    assert_error(
        &t.put(
            &alias_path("#team:elsewhere.example"),
            Some(&alice.token),
            json!({ "room_id": room }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    // Only members may alias a room, and outsiders may not remove an alias.
    assert_error(
        &t.put(
            &alias_path("#bobs:localhost"),
            Some(&bob.token),
            json!({ "room_id": room }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.call(
            Method::DELETE,
            &alias_path("#team:localhost"),
            Some(&bob.token),
            None,
        )
        .await,
        403,
        "M_FORBIDDEN",
    );

    assert_eq!(
        t.call(
            Method::DELETE,
            &alias_path("#team:localhost"),
            Some(&alice.token),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_error(
        &t.get(&alias_path("#team:localhost"), None).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.call(
            Method::DELETE,
            &alias_path("#team:localhost"),
            Some(&alice.token),
            None,
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    let (_, aliases) = t
        .get(&format!("{V3}/rooms/{room}/aliases"), Some(&alice.token))
        .await;
    assert_eq!(aliases["aliases"], json!([]));
    // Free again.
    assert_eq!(
        t.put(
            &alias_path("#team:localhost"),
            Some(&alice.token),
            json!({ "room_id": other })
        )
        .await
        .0,
        StatusCode::OK
    );
    t.stop().await;
}

#[tokio::test]
async fn public_room_directory() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let rust = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "visibility": "public", "name": "Rust Lovers", "topic": "Borrowing", "room_alias_name": "rustlovers" }),
    )
    .await;
    let garden = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "visibility": "public", "name": "Gardening" }),
    )
    .await;
    let hidden = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "name": "Unlisted Rust" }),
    )
    .await;
    assert_eq!(join(&t, &bob, &rust).await.0, StatusCode::OK);

    let (status, body) = t.get(&format!("{V3}/publicRooms"), None).await;
    assert_eq!(status, StatusCode::OK, "no token needed: {body}");
    let chunk = body["chunk"].as_array().unwrap();
    let listed: Vec<&str> = chunk
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![rust.as_str(), garden.as_str()],
        "published rooms only, biggest first"
    );
    assert_eq!(chunk[0]["name"], "Rust Lovers");
    assert_eq!(chunk[0]["topic"], "Borrowing");
    assert_eq!(chunk[0]["canonical_alias"], "#rustlovers:localhost");
    assert_eq!(chunk[0]["num_joined_members"], 2);
    assert_eq!(chunk[0]["join_rule"], "public");

    let (status, body) = t
        .post(
            &format!("{V3}/publicRooms"),
            Some(&bob.token),
            json!({ "filter": { "generic_search_term": "rust" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found: Vec<&str> = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        found,
        vec![rust.as_str()],
        "the search skips unpublished rooms"
    );

    let (status, limited) = t.get(&format!("{V3}/publicRooms?limit=1"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(limited["chunk"].as_array().unwrap().len(), 1);
    let next = limited["next_batch"].as_str().expect("a next page");
    let (_, rest) = t
        .get(&format!("{V3}/publicRooms?limit=1&since={next}"), None)
        .await;
    assert_eq!(rest["chunk"][0]["room_id"], garden.as_str());

    // Publishing and unpublishing.
    let list = |room: &str| format!("{V3}/directory/list/room/{room}");
    assert_eq!(t.get(&list(&hidden), None).await.1["visibility"], "private");
    assert_error(
        &t.put(
            &list(&hidden),
            Some(&bob.token),
            json!({ "visibility": "public" }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(
        t.put(
            &list(&hidden),
            Some(&alice.token),
            json!({ "visibility": "public" })
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        t.put(
            &list(&garden),
            Some(&alice.token),
            json!({ "visibility": "private" })
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(t.get(&list(&hidden), None).await.1["visibility"], "public");
    let (_, body) = t.get(&format!("{V3}/publicRooms"), None).await;
    let mut listed: Vec<&str> = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut want = vec![rust.as_str(), hidden.as_str()];
    want.sort();
    assert_eq!(listed, want);
    t.stop().await;
}

#[tokio::test]
async fn user_directory_search() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    t.register("bobcat", "pw-bobcat-1").await;
    let (status, _) = t
        .put(
            &format!("{V3}/profile/{}/displayname", bob.user_id),
            Some(&bob.token),
            json!({ "displayname": "Roberta Smith" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let search = async |term: &str, limit: u32| {
        t.post(
            &format!("{V3}/user_directory/search"),
            Some(&alice.token),
            json!({ "search_term": term, "limit": limit }),
        )
        .await
    };

    let (status, body) = search("roberta", 10).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["results"],
        json!([{ "user_id": bob.user_id, "display_name": "Roberta Smith" }])
    );
    assert_eq!(body["limited"], false);

    let (_, body) = search("bob", 10).await;
    let mut found: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, vec!["@bob:localhost", "@bobcat:localhost"]);
    let (_, body) = search("bob", 1).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert_eq!(body["limited"], true);
    let (_, body) = search("zzzz", 10).await;
    assert_eq!(body["results"], json!([]));
    assert_error(
        &t.post(
            &format!("{V3}/user_directory/search"),
            None,
            json!({ "search_term": "bob" }),
        )
        .await,
        401,
        "M_MISSING_TOKEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn sending_too_fast_is_rate_limited() {
    let t = TestServer::start_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.message = Rate {
            per_second: 0.2,
            burst: 4,
        };
    })
    .await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await; // one token
    let mut sent = 0;
    let limited = loop {
        let result = send_event(
            &t,
            &alice,
            &room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "spam" }),
        )
        .await;
        if result.0 != StatusCode::OK {
            break result;
        }
        sent += 1;
        assert!(sent <= 4, "the burst of 4 was never enforced");
    };
    assert_eq!(sent, 3, "a burst of 4, one spent on createRoom");
    assert_error(&limited, 429, "M_LIMIT_EXCEEDED");
    let retry = limited.1["retry_after_ms"]
        .as_u64()
        .expect("retry_after_ms");
    assert!((1..=5_000).contains(&retry), "retry_after_ms {retry}");
    // Limits are per user: bob is not held back by alice.
    assert_eq!(join(&t, &bob, &room).await.0, StatusCode::OK);
    send_text(&t, &bob, &room, "not spam").await;
    t.stop().await;
}

#[tokio::test]
async fn deactivated_users_leave_their_rooms() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let joined = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    let invited = create_room(&t, &alice, json!({ "invite": [bob.user_id] })).await;
    let (status, _) = t
        .post(
            &format!("{V3}/join/{}", enc(&joined)),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("{V3}/account/deactivate");
    let (_, challenge) = t.post(&path, Some(&bob.token), json!({})).await;
    let auth = common::password_auth("bob", "pw-bob-1", &challenge["session"]);
    let (status, body) = t
        .post(&path, Some(&bob.token), json!({ "auth": auth }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for room in [&joined, &invited] {
        let (_, member) = t
            .get(
                &format!(
                    "{V3}/rooms/{}/state/m.room.member/{}",
                    enc(room),
                    enc(&bob.user_id)
                ),
                Some(&alice.token),
            )
            .await;
        assert_eq!(member["membership"], "leave", "{room}");
    }
}
