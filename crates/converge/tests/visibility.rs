//! History visibility exactly as the spec says, judged at each event, in every way of
//! reading a room (`/messages`, `/context`, `/event`, `/relations`, `/sync`); and the gaps
//! earlier versions left: profile changes that made a room look new, `/relations` in both
//! directions, typing that runs out, redacting an event still being committed.

mod common;

use std::time::Duration;

use common::{Api, App, TestServer, User, V3, create_room, enc, say};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn join(t: &impl Api, user: &User, room: &str) {
    let (status, body) = t
        .post(
            &format!("{V3}/join/{}", enc(room)),
            Some(&user.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "join: {body}");
}

async fn invite(t: &impl Api, by: &User, room: &str, who: &User) {
    let (status, body) = t
        .post(
            &format!("{V3}/rooms/{}/invite", enc(room)),
            Some(&by.token),
            json!({ "user_id": who.user_id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "invite: {body}");
}

/// The message bodies `user` can page back through.
async fn readable(t: &impl Api, user: &User, room: &str) -> Vec<String> {
    let (status, body) = t
        .get(
            &format!("{V3}/rooms/{}/messages?dir=b&limit=100", enc(room)),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut bodies: Vec<String> = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    bodies.reverse();
    bodies
}

/// A room with history visibility `setting`, one message before bob is invited, one while
/// invited, one after he joins; returns the room and the first message's ID.
async fn room_with_history(
    t: &impl Api,
    alice: &User,
    bob: &User,
    setting: &str,
) -> (String, String) {
    let room = create_room(
        t,
        alice,
        json!({ "initial_state": [{ "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": setting } }] }),
    )
    .await;
    let before = say(t, alice, &room, "before").await;
    invite(t, alice, &room, bob).await;
    say(t, alice, &room, "invited").await;
    join(t, bob, &room).await;
    say(t, alice, &room, "joined").await;
    (room, before)
}

#[tokio::test]
async fn each_setting_shows_what_the_spec_says() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    for (setting, expected) in [
        ("joined", vec!["joined"]),
        ("invited", vec!["invited", "joined"]),
        ("shared", vec!["before", "invited", "joined"]),
        ("world_readable", vec!["before", "invited", "joined"]),
    ] {
        let (room, before) = room_with_history(&t, &alice, &bob, setting).await;
        assert_eq!(readable(&t, &bob, &room).await, expected, "{setting}");
        // An event before the user may see it is not found by ID or as a context.
        let event = t
            .get(
                &format!("{V3}/rooms/{}/event/{}", enc(&room), enc(&before)),
                Some(&bob.token),
            )
            .await;
        let context = t
            .get(
                &format!("{V3}/rooms/{}/context/{}", enc(&room), enc(&before)),
                Some(&bob.token),
            )
            .await;
        let visible = expected.contains(&"before");
        assert_eq!(
            event.0 == StatusCode::OK,
            visible,
            "{setting} /event: {}",
            event.1
        );
        assert_eq!(
            context.0 == StatusCode::OK,
            visible,
            "{setting} /context: {}",
            context.1
        );
        if !visible {
            assert_eq!(event.1["errcode"], "M_NOT_FOUND");
        }
        // Alice sees all of it either way.
        assert_eq!(
            readable(&t, &alice, &room).await,
            ["before", "invited", "joined"]
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn after_leaving_nothing_new_and_peeking_only_where_world_readable() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    let (room, _) = room_with_history(&t, &alice, &bob, "shared").await;
    t.post(
        &format!("{V3}/rooms/{}/leave", enc(&room)),
        Some(&bob.token),
        json!({}),
    )
    .await;
    say(&t, &alice, &room, "after bob left").await;
    assert_eq!(
        readable(&t, &bob, &room).await,
        ["before", "invited", "joined"]
    );
    // Carol was never in the room: refused, unless the room is world-readable.
    let refused = t
        .get(
            &format!("{V3}/rooms/{}/messages?dir=b", enc(&room)),
            Some(&carol.token),
        )
        .await;
    assert_eq!(refused.1["errcode"], "M_FORBIDDEN");
    let (open, _) = room_with_history(&t, &alice, &bob, "world_readable").await;
    assert_eq!(
        readable(&t, &carol, &open).await,
        ["before", "invited", "joined"]
    );
    t.stop().await;
}

#[tokio::test]
async fn a_first_sync_shows_only_what_the_user_may_see() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let (room, _) = room_with_history(&t, &alice, &bob, "joined").await;
    let (_, body) = t
        .get(&format!("{V3}/sync?timeout=0"), Some(&bob.token))
        .await;
    let bodies: Vec<&str> = body["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["joined"], "{body}");
    t.stop().await;
}

#[tokio::test]
async fn a_profile_change_does_not_make_the_room_new() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    for n in 0..3 {
        say(&t, &alice, &room, &format!("m{n}")).await;
    }
    let (_, first) = t
        .get(&format!("{V3}/sync?timeout=0"), Some(&alice.token))
        .await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    t.put(
        &format!("{V3}/profile/{}/displayname", enc(&alice.user_id)),
        Some(&alice.token),
        json!({ "displayname": "Alice Renamed" }),
    )
    .await;
    let (_, next) = t
        .get(
            &format!("{V3}/sync?timeout=0&since={since}"),
            Some(&alice.token),
        )
        .await;
    let section = &next["rooms"]["join"][&room];
    let events = section["timeline"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "only the member event: {section}");
    assert_eq!(events[0]["content"]["displayname"], "Alice Renamed");
    assert_eq!(section["timeline"]["limited"], false);
    assert_eq!(section["state"]["events"], json!([]), "no full state");
    t.stop().await;
}

#[tokio::test]
async fn relations_page_both_ways() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    let root = say(&t, &alice, &room, "root").await;
    for key in ["a", "b", "c"] {
        let path = format!("{V3}/rooms/{}/send/m.reaction/r{key}", enc(&room));
        t.put(
            &path,
            Some(&alice.token),
            json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": root, "key": key } }),
        )
        .await;
    }
    let keys = |body: &Value| -> Vec<String> {
        body["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["content"]["m.relates_to"]["key"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let base = format!(
        "/_matrix/client/v1/rooms/{}/relations/{}",
        enc(&room),
        enc(&root)
    );
    let (_, backward) = t.get(&format!("{base}?limit=2"), Some(&alice.token)).await;
    assert_eq!(keys(&backward), ["c", "b"], "newest first by default");
    let (_, rest) = t
        .get(
            &format!(
                "{base}?limit=2&from={}",
                backward["next_batch"].as_str().unwrap()
            ),
            Some(&alice.token),
        )
        .await;
    assert_eq!(keys(&rest), ["a"]);
    let (_, forward) = t
        .get(&format!("{base}?dir=f&limit=2"), Some(&alice.token))
        .await;
    assert_eq!(keys(&forward), ["a", "b"], "dir=f: oldest first");
    let (_, more) = t
        .get(
            &format!(
                "{base}?dir=f&limit=2&from={}",
                forward["next_batch"].as_str().unwrap()
            ),
            Some(&alice.token),
        )
        .await;
    assert_eq!(keys(&more), ["c"]);
    t.stop().await;
}

#[tokio::test]
async fn typing_that_runs_out_wakes_the_long_poll() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let room = create_room(&t, &alice, json!({ "invite": [bob.user_id] })).await;
    join(&t, &bob, &room).await;
    let (_, first) = t
        .get(&format!("{V3}/sync?timeout=0"), Some(&alice.token))
        .await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    t.put(
        &format!("{V3}/rooms/{}/typing/{}", enc(&room), enc(&bob.user_id)),
        Some(&bob.token),
        json!({ "typing": true, "timeout": 300 }),
    )
    .await;
    let (_, started) = t
        .get(
            &format!("{V3}/sync?timeout=5000&since={since}"),
            Some(&alice.token),
        )
        .await;
    let typing = |body: &Value| body["rooms"]["join"][&room]["ephemeral"]["events"].clone();
    assert_eq!(
        typing(&started)[0]["content"]["user_ids"],
        json!([bob.user_id])
    );
    let since = started["next_batch"].as_str().unwrap().to_owned();
    // Nobody stops typing explicitly: the long-poll returns when the notice runs out,
    // long before its own timeout.
    let began = std::time::Instant::now();
    let (_, ended) = t
        .get(
            &format!("{V3}/sync?timeout=20000&since={since}"),
            Some(&alice.token),
        )
        .await;
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "woken at {:?}",
        began.elapsed()
    );
    assert_eq!(typing(&ended)[0]["content"]["user_ids"], json!([]));
    t.stop().await;
}

#[tokio::test]
async fn an_event_still_being_committed_can_be_redacted() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let room = create_room(&t, &alice, json!({})).await;
    // A client whose send timed out retries its transaction and may learn the event's ID
    // before the first request's commit finished; redacting it then must work.
    for n in 0..30 {
        let path = format!("{V3}/rooms/{}/send/m.room.message/race{n}", enc(&room));
        let body = json!({ "msgtype": "m.text", "body": format!("oops {n}") });
        let first = t.put(&path, Some(&alice.token), body.clone());
        let retry_and_redact = async {
            let (status, answer) = t.put(&path, Some(&alice.token), body.clone()).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let event_id = answer["event_id"].as_str().unwrap().to_owned();
            t.put(
                &format!("{V3}/rooms/{}/redact/{}/x{n}", enc(&room), enc(&event_id)),
                Some(&alice.token),
                json!({}),
            )
            .await
        };
        let ((status, _), redacted) = tokio::join!(first, retry_and_redact);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(redacted.0, StatusCode::OK, "redaction {n}: {}", redacted.1);
    }
    t.stop().await;
}
