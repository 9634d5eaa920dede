//! Simplified sliding sync (MSC4186) over real HTTP: the room list in recency order with
//! counts, required state with `$LAZY` and `$ME`, incremental updates and long-polls,
//! invites and leaves, the extensions, connection positions, and bad input.

mod common;

use std::time::{Duration, Instant};

use common::{Api, TestServer, User, V3, assert_error, create_room, say};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SLIDING: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

/// Element X's room-list request, trimmed: one list over the first `end + 1` rooms.
fn room_list(end: u64, timeline_limit: u64) -> Value {
    json!({
        "conn_id": "room-list",
        "lists": { "all_rooms": {
            "ranges": [[0, end]],
            "timeline_limit": timeline_limit,
            "required_state": [
                ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.create", ""],
                ["m.room.member", "$LAZY"], ["m.room.member", "$ME"]
            ],
            "filters": {}
        }},
        "extensions": {
            "account_data": { "enabled": true },
            "receipts": { "enabled": true, "rooms": ["*"] },
            "typing": { "enabled": true }
        }
    })
}

/// A sliding sync request that must succeed.
async fn slide(
    t: &TestServer,
    user: &User,
    pos: Option<&str>,
    timeout_ms: u64,
    body: &Value,
) -> Value {
    let (status, response) = slide_raw(t, user, pos, timeout_ms, body).await;
    assert_eq!(status, StatusCode::OK, "sliding sync: {response}");
    assert!(response["pos"].is_string(), "pos: {response}");
    response
}

async fn slide_raw(
    t: &TestServer,
    user: &User,
    pos: Option<&str>,
    timeout_ms: u64,
    body: &Value,
) -> (StatusCode, Value) {
    let mut path = format!("{SLIDING}?timeout={timeout_ms}");
    if let Some(pos) = pos {
        path.push_str(&format!("&pos={pos}"));
    }
    t.post(&path, Some(&user.token), body.clone()).await
}

fn pos(response: &Value) -> String {
    response["pos"].as_str().unwrap().to_owned()
}

fn room_ids(response: &Value) -> Vec<String> {
    response["rooms"]
        .as_object()
        .map(|rooms| rooms.keys().cloned().collect())
        .unwrap_or_default()
}

fn state_keys(room: &Value, event_type: &str) -> Vec<String> {
    room["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == event_type)
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect()
}

async fn join(t: &TestServer, user: &User, room: &str) {
    let (status, body) = t
        .post(
            &format!("{V3}/rooms/{room}/join"),
            Some(&user.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "join: {body}");
}

/// `n` public rooms made by `owner` (named "Room i") that `member` joined, oldest first;
/// each has a message from the owner, so the newest room is the last.
async fn rooms_with_messages(t: &TestServer, owner: &User, member: &User, n: usize) -> Vec<String> {
    let mut rooms = Vec::new();
    for i in 0..n {
        let room = create_room(
            t,
            owner,
            json!({ "preset": "public_chat", "name": format!("Room {i}") }),
        )
        .await;
        join(t, member, &room).await;
        say(t, owner, &room, &format!("hello {i}")).await;
        rooms.push(room);
    }
    rooms
}

#[tokio::test]
async fn versions_advertise_simplified_sliding_sync() {
    let t = TestServer::start().await;
    let (status, body) = t.get("/_matrix/client/versions", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["unstable_features"]["org.matrix.simplified_msc3575"],
        true
    );
}

#[tokio::test]
async fn the_room_list_is_newest_first_with_counts_and_a_message_moves_a_room_up() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let rooms = rooms_with_messages(&t, &bob, &alice, 5).await;

    let first = slide(&t, &alice, None, 0, &room_list(2, 1)).await;
    assert_eq!(first["lists"]["all_rooms"]["count"], 5);
    let mut got = room_ids(&first);
    got.sort();
    let mut newest: Vec<String> = rooms[2..].to_vec();
    newest.sort();
    assert_eq!(got, newest, "the window holds the three newest rooms");
    let stamps: Vec<u64> = rooms[2..]
        .iter()
        .map(|r| first["rooms"][r]["bump_stamp"].as_u64().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "newer rooms have larger bump stamps: {stamps:?}"
    );
    let newest_room = &first["rooms"][&rooms[4]];
    assert_eq!(newest_room["initial"], true);
    assert_eq!(newest_room["name"], "Room 4");
    assert_eq!(newest_room["joined_count"], 2);
    assert_eq!(newest_room["invited_count"], 0);
    assert_eq!(
        newest_room["notification_count"], 1,
        "bob's message counts for alice"
    );
    assert_eq!(newest_room["timeline"].as_array().unwrap().len(), 1);
    assert_eq!(newest_room["timeline"][0]["content"]["body"], "hello 4");
    assert_eq!(newest_room["limited"], true);
    assert!(newest_room["prev_batch"].is_string());
    // $LAZY sends the timeline's sender, $ME the user; the room's own state as asked.
    let mut members = state_keys(newest_room, "m.room.member");
    members.sort();
    let mut expected = vec![alice.user_id.clone(), bob.user_id.clone()];
    expected.sort();
    assert_eq!(members, expected);
    assert_eq!(state_keys(newest_room, "m.room.name"), vec![""]);
    assert_eq!(state_keys(newest_room, "m.room.create"), vec![""]);
    assert!(
        state_keys(newest_room, "m.room.join_rules").is_empty(),
        "not asked for"
    );

    // Nothing new: the same request with the position waits out its timeout.
    let started = Instant::now();
    let quiet = slide(&t, &alice, Some(&pos(&first)), 300, &room_list(2, 1)).await;
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited");
    assert!(room_ids(&quiet).is_empty(), "nothing new: {quiet}");

    // A message in the oldest room wakes the long-poll and brings that room into the window.
    let (at, list) = (pos(&quiet), room_list(2, 1));
    let started = Instant::now();
    let (woken, ()) = tokio::join!(slide(&t, &alice, Some(&at), 10_000, &list), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        say(&t, &bob, &rooms[0], "back to the top").await;
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken, not timed out"
    );
    let moved = &woken["rooms"][&rooms[0]];
    assert_eq!(
        moved["initial"], true,
        "the room is new to this connection: {woken}"
    );
    assert_eq!(moved["timeline"][0]["content"]["body"], "back to the top");
    assert_eq!(moved["num_live"], 1);
    assert!(moved["bump_stamp"].as_u64().unwrap() > stamps[2]);

    // A message in a room already sent is sent as a change, not as a new room.
    let next = slide(&t, &alice, Some(&pos(&woken)), 0, &room_list(2, 1)).await;
    say(&t, &bob, &rooms[4], "again").await;
    let changed = slide(&t, &alice, Some(&pos(&next)), 5_000, &room_list(2, 1)).await;
    let room = &changed["rooms"][&rooms[4]];
    assert!(room.get("initial").is_none(), "{changed}");
    assert_eq!(room["timeline"][0]["content"]["body"], "again");
    assert_eq!(room["notification_count"], 2);
    assert_eq!(room["num_live"], 1);
}

#[tokio::test]
async fn positions_belong_to_one_connection_and_expire() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let body = room_list(9, 1);
    let first = slide(&t, &alice, None, 0, &body).await;
    let p1 = pos(&first);

    // Unknown, malformed, or from another conn_id or device: M_UNKNOWN_POS.
    assert_error(
        &slide_raw(&t, &alice, Some("999999"), 0, &body).await,
        400,
        "M_UNKNOWN_POS",
    );
    assert_error(
        &slide_raw(&t, &alice, Some("not-a-pos"), 0, &body).await,
        400,
        "M_UNKNOWN_POS",
    );
    let mut other_conn = body.clone();
    other_conn["conn_id"] = json!("encryption");
    assert_error(
        &slide_raw(&t, &alice, Some(&p1), 0, &other_conn).await,
        400,
        "M_UNKNOWN_POS",
    );
    let (status, login) = t.login("alice", "pw-alice-1").await;
    assert_eq!(status, StatusCode::OK);
    let other_device = common::user_from(&login);
    assert_ne!(other_device.device_id, alice.device_id);
    assert_error(
        &slide_raw(&t, &other_device, Some(&p1), 0, &body).await,
        400,
        "M_UNKNOWN_POS",
    );

    // A response that was lost can be asked for again; then the older position expires.
    let p2 = pos(&slide(&t, &alice, Some(&p1), 0, &body).await);
    let p2_again = pos(&slide(&t, &alice, Some(&p1), 0, &body).await);
    let p3 = pos(&slide(&t, &alice, Some(&p2_again), 0, &body).await);
    assert_error(
        &slide_raw(&t, &alice, Some(&p1), 0, &body).await,
        400,
        "M_UNKNOWN_POS",
    );
    assert_error(
        &slide_raw(&t, &alice, Some(&p2), 0, &body).await,
        400,
        "M_UNKNOWN_POS",
    );
    slide(&t, &alice, Some(&p3), 0, &body).await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_or_clamped_values() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    for i in 0..3 {
        say(&t, &alice, &room, &format!("m{i}")).await;
    }
    let bobs = create_room(&t, &bob, json!({ "name": "Bob only" })).await;

    let reversed = json!({ "lists": { "a": { "ranges": [[5, 1]], "timeline_limit": 1 } } });
    assert_error(
        &slide_raw(&t, &alice, None, 0, &reversed).await,
        400,
        "M_INVALID_PARAM",
    );

    let mut lists = serde_json::Map::new();
    for i in 0..1000 {
        lists.insert(
            format!("l{i}"),
            json!({ "ranges": [[0, 0]], "timeline_limit": 1 }),
        );
    }
    let many_lists = json!({ "lists": lists });
    assert_error(
        &slide_raw(&t, &alice, None, 0, &many_lists).await,
        400,
        "M_INVALID_PARAM",
    );

    let state: Vec<Value> = (0..10_000)
        .map(|i| json!(["m.room.member", format!("@u{i}:x")]))
        .collect();
    let huge_state = json!({ "room_subscriptions": { &room: { "timeline_limit": 1, "required_state": state } } });
    assert_error(
        &slide_raw(&t, &alice, None, 0, &huge_state).await,
        400,
        "M_INVALID_PARAM",
    );

    let missing_limit = json!({ "lists": { "a": { "ranges": [[0, 1]] } } });
    assert_error(
        &slide_raw(&t, &alice, None, 0, &missing_limit).await,
        400,
        "M_BAD_JSON",
    );

    // Huge and overlapping ranges and a huge timeline limit are clamped.
    let clamped = json!({
        "lists": { "a": { "ranges": [[0, 1_000_000_000_000u64], [0, 3]], "timeline_limit": 10_000 } },
        "room_subscriptions": { &bobs: { "timeline_limit": 5 } }
    });
    let response = slide(&t, &alice, None, 0, &clamped).await;
    assert_eq!(response["lists"]["a"]["count"], 1);
    assert_eq!(
        room_ids(&response),
        vec![room.clone()],
        "bob's room is not alice's to see"
    );
    let timeline = response["rooms"][&room]["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty() && timeline.len() <= 100);
    assert_eq!(
        response["rooms"][&room]["limited"], false,
        "all of the room's events fit"
    );
}

#[tokio::test]
async fn invites_joins_and_leaves_reach_the_list() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(
        &t,
        &bob,
        json!({ "name": "Invited", "is_direct": true, "invite": [alice.user_id] }),
    )
    .await;

    let invites_only = |end: u64| {
        let mut body = room_list(end, 1);
        body["lists"]["invites"] =
            json!({ "ranges": [[0, 9]], "timeline_limit": 0, "filters": { "is_invite": true } });
        body
    };
    let first = slide(&t, &alice, None, 0, &invites_only(9)).await;
    assert_eq!(first["lists"]["invites"]["count"], 1);
    let invited = &first["rooms"][&room];
    assert_eq!(invited["initial"], true);
    assert_eq!(invited["is_dm"], true);
    let stripped = invited["invite_state"].as_array().unwrap();
    assert!(
        stripped
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Invited")
    );
    assert!(
        stripped
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == alice.user_id.as_str())
    );
    assert!(
        invited
            .get("timeline")
            .is_none_or(|t| t.as_array().is_some_and(Vec::is_empty))
    );

    // Joining makes the room new again, now with its timeline and state.
    join(&t, &alice, &room).await;
    let joined = slide(&t, &alice, Some(&pos(&first)), 5_000, &invites_only(9)).await;
    assert_eq!(joined["lists"]["invites"]["count"], 0);
    let now_joined = &joined["rooms"][&room];
    assert_eq!(now_joined["initial"], true, "{joined}");
    assert!(now_joined.get("invite_state").is_none());
    assert!(state_keys(now_joined, "m.room.member").contains(&alice.user_id));

    // Leaving is sent once, with alice's own leave in the state; then the room is gone.
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{room}/leave"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let left = slide(&t, &alice, Some(&pos(&joined)), 5_000, &invites_only(9)).await;
    let gone = &left["rooms"][&room];
    let me = gone["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == alice.user_id.as_str())
        .unwrap_or_else(|| panic!("alice's leave: {left}"));
    assert_eq!(me["content"]["membership"], "leave");
    let after = slide(&t, &alice, Some(&pos(&left)), 0, &invites_only(9)).await;
    assert_eq!(after["lists"]["all_rooms"]["count"], 0);
    assert!(room_ids(&after).is_empty());

    // A ban is sent once too, like a leave; then that room is gone as well.
    let guarded = create_room(
        &t,
        &bob,
        json!({ "name": "Guarded", "invite": [alice.user_id] }),
    )
    .await;
    join(&t, &alice, &guarded).await;
    let member = slide(&t, &alice, Some(&pos(&after)), 5_000, &invites_only(9)).await;
    assert_eq!(member["lists"]["all_rooms"]["count"], 1, "{member}");
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{guarded}/ban"),
            Some(&bob.token),
            json!({ "user_id": alice.user_id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let banned = slide(&t, &alice, Some(&pos(&member)), 5_000, &invites_only(9)).await;
    let ban = state_keys(&banned["rooms"][&guarded], "m.room.member");
    assert!(ban.contains(&alice.user_id), "alice's ban: {banned}");
    let after_ban = slide(&t, &alice, Some(&pos(&banned)), 0, &invites_only(9)).await;
    assert_eq!(after_ban["lists"]["all_rooms"]["count"], 0, "{after_ban}");
    assert!(room_ids(&after_ban).is_empty(), "{after_ban}");
}

#[tokio::test]
async fn subscriptions_send_more_and_required_state_wildcards_work() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(
        &t,
        &alice,
        json!({ "preset": "public_chat", "topic": "Topics" }),
    )
    .await;
    join(&t, &bob, &room).await;
    for i in 0..30 {
        say(&t, &bob, &room, &format!("m{i}")).await;
    }
    let body = json!({
        "room_subscriptions": { &room: {
            "timeline_limit": 20,
            "required_state": [["m.room.member", "*"], ["m.room.topic", ""]]
        }}
    });
    let response = slide(&t, &alice, None, 0, &body).await;
    let sub = &response["rooms"][&room];
    assert_eq!(sub["timeline"].as_array().unwrap().len(), 20);
    assert_eq!(sub["timeline"][19]["content"]["body"], "m29");
    assert_eq!(sub["limited"], true);
    assert_eq!(state_keys(sub, "m.room.member").len(), 2);
    assert_eq!(state_keys(sub, "m.room.topic"), vec![""]);
    assert!(
        sub["heroes"][0]["user_id"] == bob.user_id.as_str(),
        "no name: heroes: {sub}"
    );

    // The prev_batch paginates back with /messages from where the timeline starts.
    let prev = sub["prev_batch"].as_str().unwrap();
    let (status, page) = t
        .get(
            &format!("{V3}/rooms/{room}/messages?dir=b&limit=5&from={prev}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["chunk"][0]["content"]["body"], "m9");

    // All state of every type.
    let all = json!({ "room_subscriptions": { &room: { "timeline_limit": 0, "required_state": [["*", "*"]] } } });
    let response = slide(&t, &alice, None, 0, &all).await;
    let types: Vec<&str> = response["rooms"][&room]["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for wanted in [
        "m.room.create",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.topic",
        "m.room.member",
    ] {
        assert!(types.contains(&wanted), "{wanted} in {types:?}");
    }
}

/// Opening a room from the list (a subscription with a higher timeline_limit) sends its
/// latest events again, flagged as an expanded timeline; a later response is incremental.
#[tokio::test]
async fn a_raised_timeline_limit_sends_an_expanded_timeline() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &bob, json!({ "preset": "public_chat", "name": "Busy" })).await;
    join(&t, &alice, &room).await;
    for i in 0..30 {
        say(&t, &bob, &room, &format!("m{i}")).await;
    }
    let list = room_list(9, 1);
    let first = slide(&t, &alice, None, 0, &list).await;
    assert_eq!(
        first["rooms"][&room]["timeline"].as_array().unwrap().len(),
        1
    );

    let mut opened = list.clone();
    opened["room_subscriptions"] = json!({ &room: { "timeline_limit": 20, "required_state": [] } });
    let expanded = slide(&t, &alice, Some(&pos(&first)), 0, &opened).await;
    let section = &expanded["rooms"][&room];
    assert_eq!(section["unstable_expanded_timeline"], true, "{section}");
    assert!(section.get("initial").is_none(), "{section}");
    let bodies: Vec<&str> = section["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap())
        .collect();
    let latest: Vec<String> = (10..30).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, latest);
    assert_eq!(section["limited"], true);
    assert_eq!(
        section["num_live"], 0,
        "nothing in it arrived since the last response"
    );

    // The same subscription again is incremental: only what is new, not expanded.
    say(&t, &bob, &room, "m30").await;
    let next = slide(&t, &alice, Some(&pos(&expanded)), 5_000, &opened).await;
    let section = &next["rooms"][&room];
    assert!(
        section.get("unstable_expanded_timeline").is_none(),
        "{section}"
    );
    assert_eq!(
        section["timeline"].as_array().unwrap().len(),
        1,
        "{section}"
    );
    assert_eq!(section["timeline"][0]["content"]["body"], "m30");
}

#[tokio::test]
async fn extensions_carry_to_device_keys_account_data_receipts_and_typing() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({ "preset": "public_chat" })).await;
    join(&t, &bob, &room).await;
    let event = say(&t, &bob, &room, "read me").await;

    let mut body = room_list(9, 1);
    body["extensions"]["to_device"] = json!({ "enabled": true });
    body["extensions"]["e2ee"] = json!({ "enabled": true });
    let (status, _) = t
        .put(
            &format!(
                "{V3}/user/{}/account_data/org.example.setting",
                alice.user_id
            ),
            Some(&alice.token),
            json!({ "on": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let first = slide(&t, &alice, None, 0, &body).await;
    let ext = &first["extensions"];
    let global = ext["account_data"]["global"].as_array().unwrap();
    assert!(
        global
            .iter()
            .any(|e| e["type"] == "org.example.setting" && e["content"]["on"] == true)
    );
    assert!(
        global.iter().any(|e| e["type"] == "m.push_rules"),
        "default push rules: {ext}"
    );
    assert!(ext["e2ee"]["device_one_time_keys_count"].is_object());
    let next_batch = ext["to_device"]["next_batch"].as_str().unwrap().to_owned();

    // A to-device message, a receipt, typing and room account data, all in one wait.
    let (status, _) = t
        .put(
            &format!("{V3}/sendToDevice/m.test/{}", common::next_txn()),
            Some(&bob.token),
            json!({ "messages": { &alice.user_id: { &alice.device_id: { "hi": "there" } } } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .post(
            &format!("{V3}/rooms/{room}/receipt/m.read/{event}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .put(
            &format!("{V3}/rooms/{room}/typing/{}", bob.user_id),
            Some(&bob.token),
            json!({ "typing": true, "timeout": 10_000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .put(
            &format!(
                "{V3}/user/{}/rooms/{room}/account_data/org.example.room",
                alice.user_id
            ),
            Some(&alice.token),
            json!({ "x": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut at = pos(&first);
    let mut seen = (false, false, false, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    body["extensions"]["to_device"]["since"] = json!(next_batch);
    while !(seen.0 && seen.1 && seen.2 && seen.3) && Instant::now() < deadline {
        let r = slide(&t, &alice, Some(&at), 2_000, &body).await;
        at = pos(&r);
        let ext = &r["extensions"];
        if let Some(events) = ext["to_device"]["events"].as_array()
            && events
                .iter()
                .any(|e| e["type"] == "m.test" && e["content"]["hi"] == "there")
        {
            seen.0 = true;
        }
        body["extensions"]["to_device"]["since"] = ext["to_device"]["next_batch"].clone();
        if ext["receipts"]["rooms"][&room]["content"][&event]["m.read"][&bob.user_id].is_object() {
            seen.1 = true;
        }
        if ext["typing"]["rooms"][&room]["content"]["user_ids"]
            .as_array()
            .is_some_and(|u| u.iter().any(|u| u == bob.user_id.as_str()))
        {
            seen.2 = true;
        }
        if ext["account_data"]["rooms"][&room]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["type"] == "org.example.room"))
        {
            seen.3 = true;
        }
    }
    assert_eq!(
        seen,
        (true, true, true, true),
        "(to-device, receipt, typing, room account data)"
    );

    // The acknowledged to-device message is not sent again.
    let again = slide(&t, &alice, Some(&at), 0, &body).await;
    assert!(
        again["extensions"]["to_device"]["events"]
            .as_array()
            .is_none_or(|e| e.iter().all(|e| e["type"] != "m.test"))
    );
}

#[tokio::test]
async fn many_clients_sliding_at_once_never_get_a_server_error() {
    let t = TestServer::start().await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &bob, json!({ "preset": "public_chat" })).await;
    let mut users = Vec::new();
    for i in 0..16 {
        let user = t.register(&format!("user{i}"), "pw-user-1").await;
        join(&t, &user, &room).await;
        users.push(user);
    }
    let clients = futures_util::future::join_all(users.iter().map(|user| async {
        let mut at: Option<String> = None;
        for _ in 0..5 {
            let (status, body) = slide_raw(&t, user, at.as_deref(), 200, &room_list(9, 3)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            at = body["pos"].as_str().map(str::to_owned);
        }
    }));
    let sender = async {
        for i in 0..10 {
            say(&t, &bob, &room, &format!("burst {i}")).await;
        }
    };
    tokio::join!(clients, sender);
}

#[tokio::test]
async fn a_password_login_that_does_not_ask_for_a_refresh_token_gets_none() {
    // Element X on iOS rejects a login response with a refresh token it did not ask for.
    let t = TestServer::start().await;
    t.register("alice", "pw-alice-1").await;
    let (status, login) = t.login("alice", "pw-alice-1").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert!(login.get("refresh_token").is_none(), "{login}");
    assert!(login.get("expires_in_ms").is_none(), "{login}");
    let (status, login) = t
        .post(
            &format!("{V3}/login"),
            None,
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" },
                    "password": "pw-alice-1", "refresh_token": false }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert!(login.get("refresh_token").is_none(), "{login}");
}
