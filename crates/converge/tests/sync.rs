//! `/sync` over real HTTP: initial and incremental syncs, long-polling, invites and leaves,
//! ephemeral events, account data, filters, unread counts and presence.

mod common;

use std::time::{Duration, Instant};

use common::{Api, TestServer, User, V3, assert_error, create_room, enc};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A public room made by `owner` that `others` have joined.
async fn shared_room(t: &TestServer, owner: &User, others: &[&User]) -> String {
    let room = create_room(
        t,
        owner,
        json!({ "preset": "public_chat", "name": "Shared" }),
    )
    .await;
    for user in others {
        let (status, body) = t
            .post(
                &format!("{V3}/rooms/{room}/join"),
                Some(&user.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "join: {body}");
    }
    room
}

/// `GET /sync?{query}`, which must succeed.
async fn sync(t: &TestServer, user: &User, query: &str) -> Value {
    let (status, body) = t
        .get(&format!("{V3}/sync?{query}"), Some(&user.token))
        .await;
    assert_eq!(status, StatusCode::OK, "sync?{query}: {body}");
    body
}

/// An incremental sync that returns at once.
async fn sync_since(t: &TestServer, user: &User, since: &str) -> Value {
    sync(t, user, &format!("since={since}&timeout=0")).await
}

fn next_batch(body: &Value) -> String {
    body["next_batch"].as_str().expect("next_batch").to_owned()
}

/// The stream position and ephemeral serial of a sync token `s{pos}_{eph}_{to_device}`.
fn token_parts(token: &str) -> (i64, i64) {
    let mut parts = token
        .strip_prefix('s')
        .unwrap_or_else(|| panic!("sync token {token:?}"))
        .split('_')
        .map(|p| p.parse::<i64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

fn bodies(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn of_type<'a>(events: &'a Value, event_type: &str) -> Vec<&'a Value> {
    events.as_array().map_or_else(Vec::new, |events| {
        events.iter().filter(|e| e["type"] == event_type).collect()
    })
}

fn joined_room<'a>(body: &'a Value, room: &str) -> &'a Value {
    let section = &body["rooms"]["join"][room];
    assert!(section.is_object(), "{room} not under rooms.join: {body}");
    section
}

#[tokio::test]
async fn initial_sync_shows_joined_rooms() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "name": "Sync Room", "topic": "Syncing" }),
    )
    .await;
    let elsewhere = create_room(&t, &bob, json!({ "name": "Bob's" })).await;
    let hello = common::say(&t, &alice, &room, "hello").await;

    let body = sync(&t, &alice, "").await;
    token_parts(&next_batch(&body));
    assert!(
        body["rooms"]["join"].get(&elsewhere).is_none(),
        "only alice's rooms"
    );
    assert_eq!(body["rooms"]["invite"], json!({}));
    assert_eq!(body["rooms"]["leave"], json!({}));
    let joined = joined_room(&body, &room);
    let timeline = &joined["timeline"]["events"];
    let last = timeline.as_array().unwrap().last().unwrap();
    assert_eq!(last["event_id"], hello.as_str());
    assert_eq!(last["sender"], alice.user_id.as_str());
    assert_eq!(last["content"]["body"], "hello");
    assert!(last["origin_server_ts"].is_i64());
    assert_eq!(joined["timeline"]["limited"], false);

    // The room's state is there, in the state section or in the timeline.
    let all: Vec<&Value> = joined["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(timeline.as_array().unwrap())
        .collect();
    let find = |event_type: &str| {
        all.iter()
            .find(|e| e["type"] == event_type && e["state_key"] == "")
            .copied()
    };
    assert!(find("m.room.create").is_some(), "{joined}");
    assert_eq!(
        find("m.room.name").expect("name")["content"]["name"],
        "Sync Room"
    );
    assert_eq!(
        find("m.room.topic").expect("topic")["content"]["topic"],
        "Syncing"
    );
    assert!(
        all.iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == alice.user_id.as_str())
    );
    assert_eq!(joined["summary"]["m.joined_member_count"], 1);
    t.stop().await;
}

#[tokio::test]
async fn incremental_sync_returns_only_new_events() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    let room = shared_room(&t, &alice, &[&bob]).await;
    common::say(&t, &alice, &room, "old news").await;
    let first = sync(&t, &alice, "").await;

    common::say(&t, &bob, &room, "new one").await;
    let body = sync_since(&t, &alice, &next_batch(&first)).await;
    let joined = joined_room(&body, &room);
    let events = joined["timeline"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "only the new event: {joined}");
    assert_eq!(events[0]["content"]["body"], "new one");
    assert_eq!(joined["timeline"]["limited"], false);
    assert_eq!(joined["state"]["events"], json!([]));
    let (pos1, _) = token_parts(&next_batch(&first));
    let (pos2, _) = token_parts(&next_batch(&body));
    assert!(pos2 > pos1, "the token moved on");

    // Nothing new: the room is left out.
    let quiet = sync_since(&t, &alice, &next_batch(&body)).await;
    assert!(quiet["rooms"]["join"].get(&room).is_none(), "{quiet}");

    // A membership change is a timeline event too.
    t.post(
        &format!("{V3}/rooms/{room}/join"),
        Some(&carol.token),
        json!({}),
    )
    .await;
    let body = sync_since(&t, &alice, &next_batch(&quiet)).await;
    let events = &joined_room(&body, &room)["timeline"]["events"];
    let members = of_type(events, "m.room.member");
    assert_eq!(members.len(), 1, "{events}");
    assert_eq!(members[0]["state_key"], carol.user_id.as_str());
    assert_eq!(members[0]["content"]["membership"], "join");
    t.stop().await;
}

#[tokio::test]
async fn incremental_sync_after_a_gap_or_a_join() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = shared_room(&t, &alice, &[]).await;

    // A room joined since the last sync comes whole, from its creation.
    let since = next_batch(&sync(&t, &bob, "").await);
    assert!(
        sync_since(&t, &bob, &since).await["rooms"]["join"]
            .get(&room)
            .is_none()
    );
    t.post(
        &format!("{V3}/rooms/{room}/join"),
        Some(&bob.token),
        json!({}),
    )
    .await;
    let body = sync_since(&t, &bob, &since).await;
    let joined = joined_room(&body, &room);
    let all: Vec<&Value> = joined["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(joined["timeline"]["events"].as_array().unwrap())
        .collect();
    assert!(all.iter().any(|e| e["type"] == "m.room.create"), "{joined}");
    assert!(all.iter().any(|e| e["type"] == "m.room.name"), "{joined}");

    // More events than the limit since the last sync: limited, and the state that changed
    // in the gap comes in the state section.
    let since = next_batch(&body);
    let (status, _) = t
        .put(
            &format!("{V3}/rooms/{room}/state/com.example.custom/k"),
            Some(&alice.token),
            json!({ "v": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for i in 0..12 {
        common::say(&t, &alice, &room, &format!("m{i}")).await;
    }
    let body = sync_since(&t, &bob, &since).await;
    let joined = joined_room(&body, &room);
    assert_eq!(joined["timeline"]["limited"], true);
    assert_eq!(
        bodies(&joined["timeline"]["events"])
            .first()
            .map(String::as_str),
        Some("m2"),
        "{joined}"
    );
    let state = &joined["state"]["events"];
    assert_eq!(
        of_type(state, "com.example.custom").len(),
        1,
        "the gap's state change: {joined}"
    );
    assert!(
        of_type(state, "m.room.create").is_empty(),
        "unchanged state is not repeated: {joined}"
    );

    // The sender sees its own transaction ID.
    let since = next_batch(&sync(&t, &alice, "").await);
    common::say(&t, &alice, &room, "mine").await;
    let body = sync_since(&t, &alice, &since).await;
    assert!(
        joined_room(&body, &room)["timeline"]["events"][0]["unsigned"]["transaction_id"]
            .is_string(),
        "{body}"
    );
    t.stop().await;
}

#[tokio::test]
async fn room_filters_select_rooms() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let one = create_room(&t, &alice, json!({})).await;
    let two = create_room(&t, &alice, json!({})).await;
    let rooms_of = |body: &Value| {
        let mut keys: Vec<String> = body["rooms"]["join"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let body = sync(
        &t,
        &alice,
        &format!(
            "filter={}",
            enc(&json!({ "room": { "rooms": [one] } }).to_string())
        ),
    )
    .await;
    assert_eq!(rooms_of(&body), vec![one.clone()]);
    let body = sync(
        &t,
        &alice,
        &format!(
            "filter={}",
            enc(&json!({ "room": { "not_rooms": [one] } }).to_string())
        ),
    )
    .await;
    assert_eq!(rooms_of(&body), vec![two.clone()]);
    let mut both = vec![one, two];
    both.sort();
    assert_eq!(rooms_of(&sync(&t, &alice, "").await), both);
    t.stop().await;
}

#[tokio::test]
async fn full_state_brings_all_state_but_only_new_timeline() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = shared_room(&t, &alice, &[&bob]).await;
    common::say(&t, &alice, &room, "old news").await;
    let since = next_batch(&sync(&t, &alice, "").await);
    common::say(&t, &bob, &room, "new one").await;

    let body = sync(
        &t,
        &alice,
        &format!("since={since}&timeout=0&full_state=true"),
    )
    .await;
    let joined = joined_room(&body, &room);
    // Spec: "The timeline will still be limited by the since parameter."
    assert_eq!(
        bodies(&joined["timeline"]["events"]),
        vec!["new one"],
        "{joined}"
    );
    assert_eq!(
        joined["timeline"]["events"].as_array().unwrap().len(),
        1,
        "{joined}"
    );
    let state = &joined["state"]["events"];
    assert_eq!(of_type(state, "m.room.create").len(), 1, "{joined}");
    assert_eq!(
        of_type(state, "m.room.name")[0]["content"]["name"],
        "Shared"
    );
    let members: Vec<&str> = of_type(state, "m.room.member")
        .iter()
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(
        members.contains(&alice.user_id.as_str()) && members.contains(&bob.user_id.as_str()),
        "{members:?}"
    );
    t.stop().await;
}

#[tokio::test]
async fn long_poll_wakes_up_for_a_new_message() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = shared_room(&t, &alice, &[&bob]).await;
    let since = next_batch(&sync(&t, &alice, "").await);

    let query = format!("since={since}&timeout=10000");
    let started = Instant::now();
    let (body, ()) = tokio::join!(sync(&t, &alice, &query), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        common::say(&t, &bob, &room, "wake up").await;
    });
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450),
        "the sync waited for the message ({elapsed:?})"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "woken by the message, not the timeout ({elapsed:?})"
    );
    assert_eq!(
        bodies(&joined_room(&body, &room)["timeline"]["events"]),
        vec!["wake up"]
    );
    t.stop().await;
}

#[tokio::test]
async fn long_poll_with_nothing_new_times_out_empty() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    common::say(&t, &alice, &room, "before").await;
    let since = next_batch(&sync(&t, &alice, "").await);

    let started = Instant::now();
    let body = sync(&t, &alice, &format!("since={since}&timeout=1000")).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "returned early: {elapsed:?} {body}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(body["rooms"]["join"], json!({}), "{body}");
    assert_eq!(body["rooms"]["invite"], json!({}));
    assert_eq!(body["rooms"]["leave"], json!({}));
    let (old_pos, old_eph) = token_parts(&since);
    let (pos, eph) = token_parts(&next_batch(&body));
    assert!(
        pos >= old_pos && eph >= old_eph,
        "{since} -> {}",
        next_batch(&body)
    );
    t.stop().await;
}

#[tokio::test]
async fn invites_appear_with_their_invite_state() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let since = next_batch(&sync(&t, &bob, "").await);
    let room = create_room(
        &t,
        &alice,
        json!({ "name": "Party", "invite": [bob.user_id] }),
    )
    .await;

    let body = sync(&t, &bob, &format!("since={since}&timeout=5000")).await;
    assert!(body["rooms"]["join"].get(&room).is_none(), "{body}");
    let invite_state = &body["rooms"]["invite"][&room]["invite_state"]["events"];
    assert!(invite_state.is_array(), "{body}");
    assert_eq!(
        of_type(invite_state, "m.room.name")[0]["content"]["name"],
        "Party"
    );
    assert_eq!(
        of_type(invite_state, "m.room.join_rules")[0]["content"]["join_rule"],
        "invite"
    );
    assert_eq!(of_type(invite_state, "m.room.create").len(), 1);
    let member = of_type(invite_state, "m.room.member");
    let own = member
        .iter()
        .find(|e| e["state_key"] == bob.user_id.as_str())
        .expect("bob's invite");
    assert_eq!(own["content"]["membership"], "invite");
    assert_eq!(own["sender"], alice.user_id.as_str());
    // Stripped state only: no power levels, no history.
    assert!(of_type(invite_state, "m.room.power_levels").is_empty());

    let since = next_batch(&body);
    t.post(
        &format!("{V3}/join/{}", enc(&room)),
        Some(&bob.token),
        json!({}),
    )
    .await;
    let body = sync_since(&t, &bob, &since).await;
    assert!(body["rooms"]["invite"].get(&room).is_none(), "{body}");
    assert_eq!(
        of_type(
            &joined_room(&body, &room)["timeline"]["events"],
            "m.room.member"
        )
        .last()
        .unwrap()["content"]["membership"],
        "join"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_kick_moves_the_room_to_leave() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = shared_room(&t, &alice, &[&bob]).await;
    common::say(&t, &alice, &room, "before the kick").await;
    let since = next_batch(&sync(&t, &bob, "").await);
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{room}/kick"),
            Some(&alice.token),
            json!({ "user_id": bob.user_id, "reason": "bye" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    common::say(&t, &alice, &room, "after the kick").await;

    let body = sync_since(&t, &bob, &since).await;
    assert!(body["rooms"]["join"].get(&room).is_none(), "{body}");
    let left = &body["rooms"]["leave"][&room];
    assert!(left.is_object(), "{body}");
    let events = left["timeline"]["events"].as_array().unwrap();
    let kick = events.last().expect("the kick");
    assert_eq!(kick["type"], "m.room.member");
    assert_eq!(kick["state_key"], bob.user_id.as_str());
    assert_eq!(kick["sender"], alice.user_id.as_str());
    assert_eq!(kick["content"]["membership"], "leave");
    assert_eq!(kick["content"]["reason"], "bye");
    assert!(
        !left.to_string().contains("after the kick"),
        "nothing after the kick: {left}"
    );

    // Reported once.
    let again = sync_since(&t, &bob, &next_batch(&body)).await;
    assert!(again["rooms"]["leave"].get(&room).is_none(), "{again}");
    t.stop().await;
}

#[tokio::test]
async fn typing_comes_and_goes_in_ephemeral() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = shared_room(&t, &alice, &[&bob]).await;
    let typing = |user: &User| format!("{V3}/rooms/{room}/typing/{}", user.user_id);
    let since = next_batch(&sync(&t, &bob, "").await);

    let (status, _) = t
        .put(
            &typing(&alice),
            Some(&alice.token),
            json!({ "typing": true, "timeout": 30000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync_since(&t, &bob, &since).await;
    let ephemeral = &joined_room(&body, &room)["ephemeral"]["events"];
    assert_eq!(
        of_type(ephemeral, "m.typing")[0]["content"]["user_ids"],
        json!([alice.user_id]),
        "{body}"
    );

    let (status, _) = t
        .put(
            &typing(&alice),
            Some(&alice.token),
            json!({ "typing": false }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync_since(&t, &bob, &next_batch(&body)).await;
    let ephemeral = &joined_room(&body, &room)["ephemeral"]["events"];
    assert_eq!(
        of_type(ephemeral, "m.typing")[0]["content"]["user_ids"],
        json!([]),
        "{body}"
    );

    // Only for oneself, and only in rooms one is in.
    assert_error(
        &t.put(
            &typing(&bob),
            Some(&alice.token),
            json!({ "typing": true, "timeout": 1000 }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    let carol = t.register("carol", "pw-carol-1").await;
    assert_error(
        &t.put(
            &typing(&carol),
            Some(&carol.token),
            json!({ "typing": true, "timeout": 1000 }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn read_receipts_and_markers_appear_in_sync() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = shared_room(&t, &alice, &[&bob]).await;
    let first = common::say(&t, &alice, &room, "first").await;
    let second = common::say(&t, &alice, &room, "second").await;
    let since = next_batch(&sync(&t, &alice, "").await);

    let (status, body) = t
        .post(
            &format!("{V3}/rooms/{room}/receipt/m.read/{first}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = sync_since(&t, &alice, &since).await;
    let receipts = of_type(
        &joined_room(&body, &room)["ephemeral"]["events"],
        "m.receipt",
    );
    assert_eq!(receipts.len(), 1, "{body}");
    assert!(
        receipts[0]["content"][&first]["m.read"][&bob.user_id]["ts"].is_i64(),
        "{body}"
    );

    // A private receipt is for its owner's eyes only.
    let since = next_batch(&body);
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{room}/receipt/m.read.private/{second}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync_since(&t, &alice, &since).await;
    assert!(!body.to_string().contains("m.read.private"), "{body}");
    let own = sync(&t, &bob, "").await;
    let receipts = of_type(
        &joined_room(&own, &room)["ephemeral"]["events"],
        "m.receipt",
    );
    assert!(
        receipts
            .iter()
            .any(|r| r["content"][&second]["m.read.private"][&bob.user_id].is_object()),
        "{own}"
    );

    // Read markers: the fully-read marker is room account data, the receipt is public.
    let since = next_batch(&own);
    let (status, body) = t
        .post(
            &format!("{V3}/rooms/{room}/read_markers"),
            Some(&bob.token),
            json!({ "m.fully_read": second, "m.read": second }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = sync_since(&t, &bob, &since).await;
    let joined = joined_room(&body, &room);
    assert_eq!(
        of_type(&joined["account_data"]["events"], "m.fully_read")[0]["content"]["event_id"],
        second.as_str(),
        "{joined}"
    );
    let receipts = of_type(&joined["ephemeral"]["events"], "m.receipt");
    assert!(
        receipts
            .iter()
            .any(|r| r["content"][&second]["m.read"][&bob.user_id].is_object()),
        "{joined}"
    );

    assert_error(
        &t.post(
            &format!("{V3}/rooms/{room}/receipt/m.read/$nope"),
            Some(&bob.token),
            json!({}),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

#[tokio::test]
async fn account_data_appears_in_sync() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    let global = format!(
        "{V3}/user/{}/account_data/com.example.settings",
        alice.user_id
    );
    let per_room = format!(
        "{V3}/user/{}/rooms/{room}/account_data/com.example.room",
        alice.user_id
    );
    let tag = format!("{V3}/user/{}/rooms/{room}/tags/m.favourite", alice.user_id);
    assert_eq!(
        t.put(&global, Some(&alice.token), json!({ "theme": "dark" }))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        t.put(&per_room, Some(&alice.token), json!({ "pinned": true }))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        t.put(&tag, Some(&alice.token), json!({ "order": 0.5 }))
            .await
            .0,
        StatusCode::OK
    );

    let body = sync(&t, &alice, "").await;
    let settings = of_type(&body["account_data"]["events"], "com.example.settings");
    assert_eq!(settings.len(), 1, "{body}");
    assert_eq!(settings[0]["content"], json!({ "theme": "dark" }));
    let room_data = &joined_room(&body, &room)["account_data"]["events"];
    assert_eq!(
        of_type(room_data, "com.example.room")[0]["content"],
        json!({ "pinned": true }),
        "{room_data}"
    );
    assert_eq!(
        of_type(room_data, "m.tag")[0]["content"]["tags"]["m.favourite"]["order"],
        0.5
    );
    assert!(
        of_type(&body["account_data"]["events"], "com.example.room").is_empty(),
        "room data stays in its room"
    );

    // Only what changed comes in an incremental sync.
    let since = next_batch(&body);
    assert_eq!(
        t.put(&global, Some(&alice.token), json!({ "theme": "light" }))
            .await
            .0,
        StatusCode::OK
    );
    let body = sync_since(&t, &alice, &since).await;
    assert_eq!(
        body["account_data"]["events"],
        json!([{ "type": "com.example.settings", "content": { "theme": "light" } }])
    );
    assert!(body["rooms"]["join"].get(&room).is_none(), "{body}");
    let since = next_batch(&body);
    let (status, _) = t
        .call(reqwest::Method::DELETE, &tag, Some(&alice.token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync_since(&t, &alice, &since).await;
    let room_data = &joined_room(&body, &room)["account_data"]["events"];
    assert_eq!(
        room_data,
        &json!([{ "type": "m.tag", "content": { "tags": {} } }])
    );
    assert_eq!(body["account_data"]["events"], json!([]));

    assert_eq!(
        t.get(&global, Some(&alice.token)).await.1,
        json!({ "theme": "light" })
    );
    assert_eq!(
        t.get(
            &format!("{V3}/user/{}/rooms/{room}/tags", alice.user_id),
            Some(&alice.token)
        )
        .await
        .1,
        json!({ "tags": {} })
    );
    assert_error(&t.get(&global, Some(&bob.token)).await, 403, "M_FORBIDDEN");
    assert_error(
        &t.get(
            &format!("{V3}/user/{}/account_data/com.example.none", alice.user_id),
            Some(&alice.token),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

#[tokio::test]
async fn a_small_timeline_limit_is_limited_with_a_usable_prev_batch() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({ "name": "Busy" })).await;
    for i in 0..5 {
        common::say(&t, &alice, &room, &format!("m{i}")).await;
    }
    let definition = json!({ "room": { "timeline": { "limit": 2 } } });
    let (status, created) = t
        .post(
            &format!("{V3}/user/{}/filter", alice.user_id),
            Some(&alice.token),
            definition.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let filter_id = created["filter_id"].as_str().unwrap().to_owned();
    let (_, stored) = t
        .get(
            &format!("{V3}/user/{}/filter/{filter_id}", alice.user_id),
            Some(&alice.token),
        )
        .await;
    assert_eq!(stored["room"]["timeline"]["limit"], 2, "{stored}");
    assert_error(
        &t.get(
            &format!("{V3}/user/{}/filter/99999", alice.user_id),
            Some(&alice.token),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );

    for filter in [enc(&definition.to_string()), filter_id] {
        let body = sync(&t, &alice, &format!("filter={filter}")).await;
        let joined = joined_room(&body, &room);
        let timeline = &joined["timeline"];
        assert_eq!(
            bodies(&timeline["events"]),
            vec!["m3", "m4"],
            "filter {filter}: {joined}"
        );
        assert_eq!(timeline["events"].as_array().unwrap().len(), 2);
        assert_eq!(timeline["limited"], true);
        // The state not in the timeline comes with it.
        assert_eq!(
            of_type(&joined["state"]["events"], "m.room.name")[0]["content"]["name"],
            "Busy"
        );
        assert_eq!(
            of_type(&joined["state"]["events"], "m.room.create").len(),
            1
        );

        let prev_batch = timeline["prev_batch"].as_str().expect("prev_batch");
        let (status, page) = t
            .get(
                &format!("{V3}/rooms/{room}/messages?dir=b&limit=3&from={prev_batch}"),
                Some(&alice.token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            bodies(&page["chunk"]),
            vec!["m2", "m1", "m0"],
            "history continues where the timeline stops"
        );
    }

    // The default limit is 10 and limits too.
    let body = sync(&t, &alice, "").await;
    let timeline = &joined_room(&body, &room)["timeline"];
    assert_eq!(timeline["events"].as_array().unwrap().len(), 10);
    assert_eq!(timeline["limited"], true);
    t.stop().await;
}

#[tokio::test]
async fn lazy_loading_sends_only_the_members_that_spoke() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    let dave = t.register("dave", "pw-dave-1").await;
    let room = shared_room(&t, &alice, &[&bob, &carol, &dave]).await;
    for i in 0..3 {
        common::say(&t, &bob, &room, &format!("bob {i}")).await;
    }
    let members_in = |body: &Value| {
        let joined = joined_room(body, &room);
        let mut keys: Vec<String> = joined["state"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .chain(joined["timeline"]["events"].as_array().unwrap())
            .filter(|e| e["type"] == "m.room.member")
            .map(|e| e["state_key"].as_str().unwrap().to_owned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    };

    let lazy =
        json!({ "room": { "timeline": { "limit": 2 }, "state": { "lazy_load_members": true } } });
    let body = sync(&t, &carol, &format!("filter={}", enc(&lazy.to_string()))).await;
    let members = members_in(&body);
    assert!(
        members.contains(&bob.user_id),
        "the sender's member event: {members:?}"
    );
    assert!(
        !members.contains(&alice.user_id),
        "alice said nothing in the timeline: {members:?}"
    );
    assert!(!members.contains(&dave.user_id), "{members:?}");
    assert_eq!(
        bodies(&joined_room(&body, &room)["timeline"]["events"]),
        vec!["bob 1", "bob 2"]
    );

    // Without lazy loading, every member comes.
    let eager = json!({ "room": { "timeline": { "limit": 2 } } });
    let body = sync(&t, &carol, &format!("filter={}", enc(&eager.to_string()))).await;
    let mut everyone = vec![
        alice.user_id.clone(),
        bob.user_id.clone(),
        carol.user_id.clone(),
        dave.user_id.clone(),
    ];
    everyone.sort();
    assert_eq!(members_in(&body), everyone);
    t.stop().await;
}

#[tokio::test]
async fn malformed_sync_tokens_are_refused() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    for bad in ["garbage", "s1", "s_1", "s-1_0", "sx_y", "t-1"] {
        let result = t
            .get(
                &format!("{V3}/sync?since={bad}&timeout=0"),
                Some(&alice.token),
            )
            .await;
        assert_error(&result, 400, "M_INVALID_PARAM");
    }
    assert_eq!(
        t.get(&format!("{V3}/sync?timeout=soon"), Some(&alice.token))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_error(
        &t.get(&format!("{V3}/sync"), None).await,
        401,
        "M_MISSING_TOKEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn unread_notifications_count_messages_after_the_read_receipt() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = shared_room(&t, &alice, &[&bob]).await;
    let count = async |user: &User| {
        joined_room(&sync(&t, user, "").await, &room)["unread_notifications"]["notification_count"]
            .clone()
    };
    assert_eq!(count(&bob).await, 0);

    common::say(&t, &alice, &room, "a1").await;
    let a2 = common::say(&t, &alice, &room, "a2").await;
    common::say(&t, &alice, &room, "a3").await;
    assert_eq!(count(&bob).await, 3);
    let own = common::say(&t, &bob, &room, "bob's own words do not count").await;
    assert_eq!(count(&bob).await, 3);
    assert_eq!(count(&alice).await, 1, "alice has bob's message to read");

    t.post(
        &format!("{V3}/rooms/{room}/receipt/m.read/{a2}"),
        Some(&bob.token),
        json!({}),
    )
    .await;
    assert_eq!(
        count(&bob).await,
        1,
        "only a3 is unread; bob's own message does not count"
    );
    t.post(
        &format!("{V3}/rooms/{room}/receipt/m.read/{own}"),
        Some(&bob.token),
        json!({}),
    )
    .await;
    assert_eq!(count(&bob).await, 0);
    t.stop().await;
}

#[tokio::test]
async fn presence_reaches_people_sharing_a_room() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    shared_room(&t, &alice, &[&bob]).await;
    let status_path = format!("{V3}/presence/{}/status", alice.user_id);
    let (status, _) = t
        .put(
            &status_path,
            Some(&alice.token),
            json!({ "presence": "online", "status_msg": "busy" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let body = sync(&t, &bob, "").await;
    let alices: Vec<&Value> = body["presence"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sender"] == alice.user_id.as_str())
        .collect();
    assert_eq!(alices.len(), 1, "{body}");
    assert_eq!(alices[0]["type"], "m.presence");
    assert_eq!(alices[0]["content"]["presence"], "online");
    assert_eq!(alices[0]["content"]["status_msg"], "busy");
    let (status, read) = t.get(&status_path, Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["presence"], "online");
    assert_eq!(read["status_msg"], "busy");

    // Carol shares no room with alice.
    let body = sync(&t, &carol, "").await;
    assert!(
        !body["presence"].to_string().contains(&alice.user_id),
        "{body}"
    );

    // A change comes in the next incremental sync.
    let since = next_batch(&sync(&t, &bob, "").await);
    let (status, _) = t
        .put(
            &status_path,
            Some(&alice.token),
            json!({ "presence": "unavailable" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync_since(&t, &bob, &since).await;
    let alices: Vec<&Value> = body["presence"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sender"] == alice.user_id.as_str())
        .collect();
    assert_eq!(alices.len(), 1, "{body}");
    assert_eq!(alices[0]["content"]["presence"], "unavailable");
    assert_error(
        &t.put(
            &status_path,
            Some(&bob.token),
            json!({ "presence": "online" }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    t.stop().await;
}

/// How long a long-polling sync of `user` takes to return when `act` happens 300 ms into it.
async fn wake_time(t: &TestServer, user: &User, act: impl AsyncFnOnce()) -> (Duration, Value) {
    let since = next_batch(&sync(t, user, "").await);
    let query = format!("since={since}&timeout=10000");
    let started = Instant::now();
    let (body, ()) = tokio::join!(sync(t, user, &query), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        act().await;
    });
    (started.elapsed(), body)
}

#[tokio::test]
async fn long_poll_wakes_up_for_ephemeral_news_and_account_data() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = shared_room(&t, &alice, &[&bob]).await;
    let event = common::say(&t, &alice, &room, "read me").await;

    let (elapsed, body) = wake_time(&t, &bob, async || {
        t.put(
            &format!("{V3}/rooms/{room}/typing/{}", alice.user_id),
            Some(&alice.token),
            json!({ "typing": true, "timeout": 30000 }),
        )
        .await;
    })
    .await;
    assert!(elapsed < Duration::from_secs(5), "typing: {elapsed:?}");
    assert_eq!(
        of_type(
            &joined_room(&body, &room)["ephemeral"]["events"],
            "m.typing"
        )[0]["content"]["user_ids"],
        json!([alice.user_id])
    );

    let (elapsed, body) = wake_time(&t, &alice, async || {
        t.post(
            &format!("{V3}/rooms/{room}/receipt/m.read/{event}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    })
    .await;
    assert!(elapsed < Duration::from_secs(5), "receipt: {elapsed:?}");
    assert_eq!(
        of_type(
            &joined_room(&body, &room)["ephemeral"]["events"],
            "m.receipt"
        )
        .len(),
        1,
        "{body}"
    );

    let (elapsed, body) = wake_time(&t, &alice, async || {
        t.put(
            &format!("{V3}/user/{}/account_data/com.example.x", alice.user_id),
            Some(&alice.token),
            json!({ "x": 1 }),
        )
        .await;
    })
    .await;
    assert!(
        elapsed < Duration::from_secs(5),
        "account data: {elapsed:?}"
    );
    assert_eq!(
        of_type(&body["account_data"]["events"], "com.example.x").len(),
        1,
        "{body}"
    );

    let (elapsed, body) = wake_time(&t, &bob, async || {
        create_room(&t, &alice, json!({ "invite": [bob.user_id] })).await;
    })
    .await;
    assert!(elapsed < Duration::from_secs(5), "invite: {elapsed:?}");
    assert_eq!(
        body["rooms"]["invite"].as_object().unwrap().len(),
        1,
        "{body}"
    );
    t.stop().await;
}

#[tokio::test]
async fn long_poll_wakes_up_for_presence() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    shared_room(&t, &alice, &[&bob]).await;
    let (elapsed, body) = wake_time(&t, &bob, async || {
        t.put(
            &format!("{V3}/presence/{}/status", alice.user_id),
            Some(&alice.token),
            json!({ "presence": "online", "status_msg": "back" }),
        )
        .await;
    })
    .await;
    assert!(elapsed < Duration::from_secs(5), "presence: {elapsed:?}");
    let alices: Vec<&Value> = body["presence"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sender"] == alice.user_id.as_str())
        .collect();
    assert_eq!(alices.len(), 1, "{body}");
    assert_eq!(alices[0]["content"]["status_msg"], "back");
    t.stop().await;
}
