//! The store conformance suite: every backend runs exactly these tests.
//!
//! SQLite always runs; PostgreSQL runs when `CONVERGE_TEST_POSTGRES_URL` is set (CI sets
//! it), each test in a schema of its own.

use std::collections::HashSet;

use converge_core::{PersistedEvent, StreamPos};
use converge_store::{
    Direction, EventWrite, MediaRow, Migration, NewReport, NewRoom, NewSession, NewUser, Redaction,
    RegistrationToken, Statement, StoreError, ThumbnailRow, Value, WriteOp, testing,
};

/// A store under test, and a way to open it again.
type Harness = testing::TestStore;

converge_store::on_both_backends!(
    users_are_created_once,
    failed_registration_leaves_no_rows,
    registration_tokens_are_used_up_atomically,
    sessions_follow_devices,
    refresh_rotates_the_token_pair,
    deactivation_ends_every_session,
    profiles_are_updated,
    writer_orders_every_write,
    writer_batches_concurrent_writes,
    writer_fails_only_the_faulty_write,
    acknowledged_writes_are_visible_to_a_new_handle,
    close_drains_the_queue_then_refuses,
    migrations_are_idempotent,
    rooms_keep_current_state_and_memberships,
    redactions_replace_the_stored_event,
    room_events_are_read_in_both_directions,
    transactions_and_relations_are_indexed,
    account_data_receipts_and_filters_follow_the_stream,
    aliases_directory_and_user_search,
    pending_writes_keep_their_queue_order,
    media_rows_reservations_thumbnails_and_purge,
    a_users_feed_is_its_joined_rooms_and_own_invites,
    component_tables_migrate_once_and_round_trip,
    openid_tokens_expire_and_are_swept,
    reports_are_listed_newest_first,
    events_are_found_by_timestamp,
    thread_roots_follow_their_newest_reply,
    state_of_one_type_and_moved_aliases,
    every_write_survives_32_concurrent_writers,
);

fn new_user(localpart: &str) -> NewUser {
    NewUser {
        localpart: localpart.to_owned(),
        password_hash: Some("$argon2id$fake".to_owned()),
        is_admin: false,
        displayname: Some(localpart.to_owned()),
        created_ts: 1_000,
    }
}

fn session(device_id: &str, token: &[u8]) -> NewSession {
    NewSession {
        device_id: device_id.to_owned(),
        display_name: Some(format!("{device_id} name")),
        access_token_hash: token.to_vec(),
        refresh_token_hash: None,
        expires_ts: None,
        created_ts: 2_000,
        ip: Some("127.0.0.1".to_owned()),
    }
}

fn event(n: usize) -> PersistedEvent {
    PersistedEvent {
        event_id: format!("$event{n}"),
        room_id: "!room:localhost".to_owned(),
        sender: "@alice:localhost".to_owned(),
        event_type: "m.room.message".to_owned(),
        state_key: None,
        origin_server_ts: 1_700_000_000_000 + n as i64,
        json: format!(r#"{{"body":"message {n}"}}"#),
        depth: n as i64,
        ..Default::default()
    }
}

fn write(event: PersistedEvent) -> WriteOp {
    WriteOp::Event(Box::new(EventWrite {
        event,
        ..Default::default()
    }))
}

async fn users_are_created_once(h: &Harness) {
    let store = &h.store;
    store
        .create_user(&new_user("alice"), None, None)
        .await
        .unwrap();
    let user = store.user("alice").await.unwrap().expect("alice exists");
    assert_eq!(user.localpart, "alice");
    assert_eq!(user.displayname.as_deref(), Some("alice"));
    assert!(!user.is_admin && !user.deactivated);
    assert!(matches!(
        store.create_user(&new_user("alice"), None, None).await,
        Err(StoreError::UserExists)
    ));
    assert_eq!(store.user("bob").await.unwrap(), None);

    // Concurrent registration of one name: exactly one wins.
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.create_user(&new_user("carol"), None, None).await })
    });
    let mut wins = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::UserExists) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn failed_registration_leaves_no_rows(h: &Harness) {
    let store = &h.store;
    store
        .create_user(&new_user("alice"), None, None)
        .await
        .unwrap();
    let token = RegistrationToken {
        token: "tok".into(),
        uses_allowed: Some(5),
        completed: 0,
        expiry_ts: None,
    };
    store.create_registration_token(&token, 0).await.unwrap();
    // The user exists: the token's use is rolled back and the session never starts.
    let result = store
        .create_user(
            &new_user("alice"),
            Some("tok"),
            Some(&session("DEV", b"t1")),
        )
        .await;
    assert!(matches!(result, Err(StoreError::UserExists)));
    assert_eq!(
        store
            .registration_token("tok")
            .await
            .unwrap()
            .unwrap()
            .completed,
        0
    );
    assert_eq!(store.session_by_token(b"t1").await.unwrap(), None);
    assert!(store.devices("alice").await.unwrap().is_empty());
    // A token that cannot be used: no user is created.
    let result = store
        .create_user(&new_user("bob"), Some("nope"), None)
        .await;
    assert!(matches!(result, Err(StoreError::TokenNotUsable)));
    assert_eq!(store.user("bob").await.unwrap(), None);
}

async fn registration_tokens_are_used_up_atomically(h: &Harness) {
    let store = &h.store;
    let token = RegistrationToken {
        token: "once".into(),
        uses_allowed: Some(1),
        completed: 0,
        expiry_ts: None,
    };
    store.create_registration_token(&token, 0).await.unwrap();
    let attempts = (0..6).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_user(&new_user(&format!("u{i}")), Some("once"), None)
                .await
        })
    });
    let mut wins = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::TokenNotUsable) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(wins, 1);
    let used = store.registration_token("once").await.unwrap().unwrap();
    assert_eq!(used.completed, 1);
    assert!(!used.usable_at(0));

    let expiring = RegistrationToken {
        token: "late".into(),
        uses_allowed: None,
        completed: 0,
        expiry_ts: Some(500),
    };
    store.create_registration_token(&expiring, 0).await.unwrap();
    // new_user() registers at ts 1000, after the expiry.
    assert!(matches!(
        store
            .create_user(&new_user("late"), Some("late"), None)
            .await,
        Err(StoreError::TokenNotUsable)
    ));
    assert!(
        store
            .registration_token("late")
            .await
            .unwrap()
            .unwrap()
            .usable_at(499)
    );
}

async fn sessions_follow_devices(h: &Harness) {
    let store = &h.store;
    store
        .create_user(
            &new_user("alice"),
            None,
            Some(&session("PHONE", b"t-phone")),
        )
        .await
        .unwrap();
    store
        .create_session("alice", &session("LAPTOP", b"t-laptop"))
        .await
        .unwrap();
    let phone = store
        .session_by_token(b"t-phone")
        .await
        .unwrap()
        .expect("phone session");
    assert_eq!(
        (phone.localpart.as_str(), phone.device_id.as_str()),
        ("alice", "PHONE")
    );

    // Logging in again on the same device replaces its token but keeps its name.
    let mut again = session("PHONE", b"t-phone-2");
    again.display_name = None;
    store.create_session("alice", &again).await.unwrap();
    assert_eq!(store.session_by_token(b"t-phone").await.unwrap(), None);
    assert!(
        store
            .session_by_token(b"t-phone-2")
            .await
            .unwrap()
            .is_some()
    );
    let devices = store.devices("alice").await.unwrap();
    let ids: Vec<_> = devices.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, ["LAPTOP", "PHONE"]);
    assert_eq!(devices[1].display_name.as_deref(), Some("PHONE name"));

    store
        .set_device_display_name("alice", "PHONE", Some("Pocket"))
        .await
        .unwrap();
    assert_eq!(
        store
            .device("alice", "PHONE")
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Pocket")
    );
    assert!(matches!(
        store
            .set_device_display_name("alice", "NOPE", Some("x"))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .touch_device("alice", "PHONE", 9_000, Some("10.0.0.1"))
        .await
        .unwrap();
    let phone = store.device("alice", "PHONE").await.unwrap().unwrap();
    assert_eq!(
        (phone.last_seen_ts, phone.last_seen_ip.as_deref()),
        (Some(9_000), Some("10.0.0.1"))
    );

    store
        .delete_devices("alice", &["PHONE".to_owned(), "MISSING".to_owned()])
        .await
        .unwrap();
    assert_eq!(store.session_by_token(b"t-phone-2").await.unwrap(), None);
    assert_eq!(store.device("alice", "PHONE").await.unwrap(), None);

    store
        .create_session("alice", &session("TABLET", b"t-tablet"))
        .await
        .unwrap();
    store
        .delete_other_devices("alice", Some("TABLET"))
        .await
        .unwrap();
    assert_eq!(store.session_by_token(b"t-laptop").await.unwrap(), None);
    assert!(store.session_by_token(b"t-tablet").await.unwrap().is_some());
    store.delete_access_token(b"t-tablet").await.unwrap();
    assert_eq!(store.session_by_token(b"t-tablet").await.unwrap(), None);
}

async fn refresh_rotates_the_token_pair(h: &Harness) {
    let store = &h.store;
    let mut first = session("DEV", b"access-1");
    first.refresh_token_hash = Some(b"refresh-1".to_vec());
    first.expires_ts = Some(5_000);
    store
        .create_user(&new_user("alice"), None, Some(&first))
        .await
        .unwrap();
    assert_eq!(
        store
            .session_by_token(b"access-1")
            .await
            .unwrap()
            .unwrap()
            .expires_ts,
        Some(5_000)
    );

    let owner = store
        .refresh_session(b"refresh-1", b"access-2", b"refresh-2", Some(9_000), 4_000)
        .await
        .unwrap();
    assert_eq!(owner, Some(("alice".to_owned(), "DEV".to_owned())));
    assert_eq!(store.session_by_token(b"access-1").await.unwrap(), None);
    assert_eq!(
        store
            .session_by_token(b"access-2")
            .await
            .unwrap()
            .unwrap()
            .expires_ts,
        Some(9_000)
    );
    // A used refresh token is spent.
    assert_eq!(
        store
            .refresh_session(b"refresh-1", b"x", b"y", None, 4_000)
            .await
            .unwrap(),
        None
    );
}

async fn deactivation_ends_every_session(h: &Harness) {
    let store = &h.store;
    store
        .create_user(&new_user("alice"), None, Some(&session("A", b"ta")))
        .await
        .unwrap();
    store
        .create_session("alice", &session("B", b"tb"))
        .await
        .unwrap();
    store.deactivate_user("alice").await.unwrap();
    let user = store.user("alice").await.unwrap().unwrap();
    assert!(user.deactivated);
    assert_eq!(user.displayname, None);
    assert_eq!(store.session_by_token(b"ta").await.unwrap(), None);
    assert_eq!(store.session_by_token(b"tb").await.unwrap(), None);
    assert!(store.devices("alice").await.unwrap().is_empty());
    // The name stays taken.
    assert!(matches!(
        store.create_user(&new_user("alice"), None, None).await,
        Err(StoreError::UserExists)
    ));
    assert!(matches!(
        store.deactivate_user("ghost").await,
        Err(StoreError::NotFound)
    ));
}

async fn profiles_are_updated(h: &Harness) {
    let store = &h.store;
    store
        .create_user(&new_user("alice"), None, None)
        .await
        .unwrap();
    store
        .set_displayname("alice", Some("Alice A."))
        .await
        .unwrap();
    store
        .set_avatar_url("alice", Some("mxc://localhost/abc"))
        .await
        .unwrap();
    store
        .set_password_hash("alice", "$argon2id$other")
        .await
        .unwrap();
    store.set_admin("alice", true).await.unwrap();
    let user = store.user("alice").await.unwrap().unwrap();
    assert_eq!(user.displayname.as_deref(), Some("Alice A."));
    assert_eq!(user.avatar_url.as_deref(), Some("mxc://localhost/abc"));
    assert_eq!(user.password_hash.as_deref(), Some("$argon2id$other"));
    assert!(user.is_admin);
    store.set_displayname("alice", None).await.unwrap();
    assert_eq!(
        store.user("alice").await.unwrap().unwrap().displayname,
        None
    );
    assert!(matches!(
        store.set_displayname("ghost", Some("x")).await,
        Err(StoreError::NotFound)
    ));
}

async fn writer_orders_every_write(h: &Harness) {
    let store = &h.store;
    let mut position = store.stream_position();
    let start = *position.borrow();
    let mut acked = Vec::new();
    for n in 0..20 {
        acked.push(store.append(write(event(n))).await.unwrap());
    }
    // Sequential writes get consecutive, increasing positions.
    let expected: Vec<_> = (1..=20).map(|i| StreamPos(start.0 + i)).collect();
    assert_eq!(acked, expected);
    // Acknowledged writes are already published on the stream position.
    assert_eq!(*position.borrow_and_update(), StreamPos(start.0 + 20));
    let stored = store.events_after(start, 100).await.unwrap();
    assert_eq!(stored.len(), 20);
    for (n, (pos, stored)) in stored.iter().enumerate() {
        assert_eq!(*pos, expected[n]);
        assert_eq!(stored, &event(n));
    }
    let (pos, one) = store.event("$event7").await.unwrap().expect("event stored");
    assert_eq!((pos, one), (expected[7], event(7)));
    assert_eq!(store.events_after(start, 5).await.unwrap().len(), 5);
}

async fn writer_batches_concurrent_writes(h: &Harness) {
    let store = &h.store;
    let before = store.writer_stats();
    let writes = 400;
    let tasks: Vec<_> = (0..writes)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { (n, store.append(write(event(n))).await.unwrap()) })
        })
        .collect();
    let mut acks = Vec::new();
    for task in tasks {
        acks.push(task.await.unwrap());
    }
    let positions: HashSet<_> = acks.iter().map(|(_, pos)| *pos).collect();
    assert_eq!(positions.len(), writes, "every write gets its own position");
    let stats = store.writer_stats();
    assert_eq!(stats.writes - before.writes, writes as u64);
    assert!(
        stats.commits - before.commits < writes as u64,
        "concurrent writes share commits: {stats:?}"
    );
    // The stream holds each event once, at the position its writer was told.
    let stored = store.events_after(StreamPos(0), 1_000).await.unwrap();
    assert_eq!(stored.len(), writes);
    for (n, pos) in acks {
        let (at, _) = stored
            .iter()
            .find(|(_, e)| e.event_id == event(n).event_id)
            .unwrap();
        assert_eq!(*at, pos);
    }
    assert!(
        stored.windows(2).all(|w| w[0].0.0 + 1 == w[1].0.0),
        "positions have no gaps"
    );
}

async fn writer_fails_only_the_faulty_write(h: &Harness) {
    let store = &h.store;
    store.append(write(event(0))).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let store = store.clone();
            // Write 25 repeats the already stored event 0.
            let e = if n == 25 { event(0) } else { event(n + 1) };
            tokio::spawn(async move { store.append(write(e)).await })
        })
        .collect();
    let mut failures = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => {}
            Err(StoreError::DuplicateEvent) => failures += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(failures, 1);
    let stored = store.events_after(StreamPos(0), 1_000).await.unwrap();
    assert_eq!(stored.len(), 50);
    assert!(
        stored.windows(2).all(|w| w[0].0.0 + 1 == w[1].0.0),
        "failed writes leave no gaps"
    );
}

async fn acknowledged_writes_are_visible_to_a_new_handle(h: &Harness) {
    let store = &h.store;
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.append(write(event(n))).await.unwrap() })
        })
        .collect();
    let mut acked = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap());
    }
    // A second, independent handle (as after a crash and restart) sees every acknowledged
    // write, while the first handle is still open.
    let other = h.reopen().await;
    let seen: HashSet<_> = other
        .events_after(StreamPos(0), 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    for pos in &acked {
        assert!(
            seen.contains(pos),
            "acknowledged write at {pos:?} is committed"
        );
    }
    other.close().await;
}

async fn close_drains_the_queue_then_refuses(h: &Harness) {
    let store = h.store.clone();
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.append(write(event(n))).await })
        })
        .collect();
    tokio::task::yield_now().await;
    store.close().await;
    let mut acked = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => acked += 1,
            Err(StoreError::Closed) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert!(matches!(
        store.append(write(event(999))).await,
        Err(StoreError::Closed)
    ));
    // Every acknowledged write survived; positions continue after a restart.
    let reopened = h.reopen().await;
    let stored = reopened.events_after(StreamPos(0), 1_000).await.unwrap();
    assert_eq!(stored.len(), acked);
    let next = reopened.append(write(event(1_000))).await.unwrap();
    assert_eq!(next, StreamPos(acked as i64 + 1));
    reopened.close().await;
}

async fn migrations_are_idempotent(h: &Harness) {
    h.store
        .create_user(&new_user("alice"), None, None)
        .await
        .unwrap();
    let again = h.reopen().await;
    assert!(again.user("alice").await.unwrap().is_some());
    again.ping().await.unwrap();
    again.close().await;
}

fn state_event(n: usize, event_type: &str, state_key: &str, content: &str) -> PersistedEvent {
    PersistedEvent {
        event_type: event_type.to_owned(),
        state_key: Some(state_key.to_owned()),
        json: content.to_owned(),
        ..event(n)
    }
}

async fn rooms_keep_current_state_and_memberships(h: &Harness) {
    let store = &h.store;
    let create = EventWrite {
        event: state_event(1, "m.room.create", "", r#"{"creator":"@alice:localhost"}"#),
        new_room: Some(NewRoom {
            room_id: "!room:localhost".into(),
            room_version: "10".into(),
            creator: "@alice:localhost".into(),
            created_ts: 5,
        }),
        ..Default::default()
    };
    store
        .append(WriteOp::Event(Box::new(create)))
        .await
        .unwrap();
    let join = |n: usize, user: &str, membership: &str| EventWrite {
        event: state_event(
            n,
            "m.room.member",
            user,
            &format!(r#"{{"membership":"{membership}"}}"#),
        ),
        membership: Some((user.to_owned(), membership.to_owned())),
        ..Default::default()
    };
    store
        .append(WriteOp::Event(Box::new(join(
            2,
            "@alice:localhost",
            "join",
        ))))
        .await
        .unwrap();
    let invite_pos = store
        .append(WriteOp::Event(Box::new(join(
            3,
            "@bob:localhost",
            "invite",
        ))))
        .await
        .unwrap();
    store
        .append(write(state_event(
            4,
            "m.room.name",
            "",
            r#"{"name":"one"}"#,
        )))
        .await
        .unwrap();
    let renamed = store
        .append(write(state_event(
            5,
            "m.room.name",
            "",
            r#"{"name":"two"}"#,
        )))
        .await
        .unwrap();

    let room = store
        .room("!room:localhost")
        .await
        .unwrap()
        .expect("room recorded");
    assert_eq!(
        (
            room.room_version.as_str(),
            room.creator.as_str(),
            room.is_public
        ),
        ("10", "@alice:localhost", false)
    );
    assert_eq!(store.room("!other:localhost").await.unwrap(), None);

    let state = store.room_state("!room:localhost").await.unwrap();
    let mut keys: Vec<_> = state
        .iter()
        .map(|(_, e)| (e.event_type.clone(), e.state_key.clone().unwrap()))
        .collect();
    keys.sort();
    assert_eq!(keys.len(), 4, "{keys:?}");
    let (pos, name) = state
        .iter()
        .find(|(_, e)| e.event_type == "m.room.name")
        .unwrap();
    assert_eq!((*pos, name.json.as_str()), (renamed, r#"{"name":"two"}"#));

    let bob = store.user_memberships("@bob:localhost").await.unwrap();
    assert_eq!(bob.len(), 1);
    assert_eq!(
        (
            bob[0].membership.as_str(),
            bob[0].stream_pos,
            bob[0].forgotten
        ),
        ("invite", invite_pos, false)
    );
    store
        .append(WriteOp::Event(Box::new(join(6, "@bob:localhost", "leave"))))
        .await
        .unwrap();
    store
        .forget_room("@bob:localhost", "!room:localhost")
        .await
        .unwrap();
    let bob = store.user_memberships("@bob:localhost").await.unwrap();
    assert_eq!(
        (bob[0].membership.as_str(), bob[0].forgotten),
        ("leave", true)
    );
    // A new membership un-forgets.
    store
        .append(WriteOp::Event(Box::new(join(
            7,
            "@bob:localhost",
            "invite",
        ))))
        .await
        .unwrap();
    assert!(!store.user_memberships("@bob:localhost").await.unwrap()[0].forgotten);

    let changed = store
        .room_state_since("!room:localhost", invite_pos)
        .await
        .unwrap();
    let mut changed: Vec<_> = changed.iter().map(|(_, e)| e.event_id.as_str()).collect();
    changed.sort();
    assert_eq!(
        changed,
        ["$event5", "$event7"],
        "the renamed name and bob's latest membership"
    );
    let (_, latest) = store
        .room_latest_event("!room:localhost")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.event_id, "$event7");
}

async fn redactions_replace_the_stored_event(h: &Harness) {
    let store = &h.store;
    store.append(write(event(1))).await.unwrap();
    let redaction = EventWrite {
        event: PersistedEvent {
            event_type: "m.room.redaction".into(),
            ..event(2)
        },
        redaction: Some(Redaction {
            target: "$event1".into(),
            redacted_json: r#"{"content":{}}"#.into(),
            because: r#"{"event_id":"$event2"}"#.into(),
        }),
        ..Default::default()
    };
    store
        .append(WriteOp::Event(Box::new(redaction)))
        .await
        .unwrap();
    let (_, redacted) = store.event("$event1").await.unwrap().unwrap();
    assert_eq!(redacted.json, r#"{"content":{}}"#);
    assert_eq!(
        redacted.redacted_because.as_deref(),
        Some(r#"{"event_id":"$event2"}"#)
    );
}

async fn room_events_are_read_in_both_directions(h: &Harness) {
    let store = &h.store;
    for n in 1..=10 {
        let mut e = event(n);
        if n % 2 == 0 {
            e.room_id = "!other:localhost".into();
        }
        store.append(write(e)).await.unwrap();
    }
    let room = "!room:localhost";
    let ids = |events: Vec<(StreamPos, PersistedEvent)>| {
        events
            .into_iter()
            .map(|(_, e)| e.event_id)
            .collect::<Vec<_>>()
    };
    let forward = store
        .room_events(room, StreamPos(0), StreamPos(100), 3, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(ids(forward), ["$event1", "$event3", "$event5"]);
    let backward = store
        .room_events(room, StreamPos(0), StreamPos(100), 3, Direction::Backward)
        .await
        .unwrap();
    assert_eq!(ids(backward), ["$event9", "$event7", "$event5"]);
    let window = store
        .room_events(room, StreamPos(3), StreamPos(7), 10, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(ids(window), ["$event5", "$event7"]);
}

async fn transactions_and_relations_are_indexed(h: &Harness) {
    let store = &h.store;
    let mut sent = event(1);
    sent.txn = Some(("PHONE".into(), "txn-1".into()));
    store.append(write(sent.clone())).await.unwrap();
    assert_eq!(
        store
            .event_by_txn("@alice:localhost", "PHONE", "txn-1")
            .await
            .unwrap()
            .as_deref(),
        Some("$event1")
    );
    assert_eq!(
        store
            .event_by_txn("@alice:localhost", "LAPTOP", "txn-1")
            .await
            .unwrap(),
        None
    );
    // The same transaction cannot be stored twice.
    let mut again = event(2);
    again.txn = sent.txn.clone();
    assert!(matches!(
        store.append(write(again)).await,
        Err(StoreError::DuplicateEvent)
    ));
    let (_, stored) = store.event("$event1").await.unwrap().unwrap();
    assert_eq!(stored.txn, sent.txn);

    for n in 3..=5 {
        let mut reaction = event(n);
        reaction.relation = Some(("$event1".into(), "m.annotation".into()));
        store.append(write(reaction)).await.unwrap();
    }
    let related = store
        .relations("!room:localhost", "$event1", StreamPos(i64::MAX), 2)
        .await
        .unwrap();
    let ids: Vec<_> = related.iter().map(|(_, e)| e.event_id.as_str()).collect();
    assert_eq!(ids, ["$event5", "$event4"]);
    assert_eq!(
        related[0].1.relation,
        Some(("$event1".to_owned(), "m.annotation".to_owned()))
    );
    let before = store
        .relations("!room:localhost", "$event1", related[1].0, 10)
        .await
        .unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(
        store
            .count_messages_after("!room:localhost", StreamPos(0), "@bob:localhost")
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .count_messages_after("!room:localhost", StreamPos(0), "@alice:localhost")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count_messages_after("!room:localhost", related[1].0, "@bob:localhost")
            .await
            .unwrap(),
        1
    );
}

async fn account_data_receipts_and_filters_follow_the_stream(h: &Harness) {
    let store = &h.store;
    let data = |room: Option<&str>, content: &str| WriteOp::AccountData {
        user_id: "@alice:localhost".into(),
        room_id: room.map(str::to_owned),
        data_type: "m.tag".into(),
        content: content.into(),
    };
    let first = store.append(data(None, "{\"a\":1}")).await.unwrap();
    store
        .append(data(Some("!room:localhost"), "{\"b\":1}"))
        .await
        .unwrap();
    let last = store.append(data(None, "{\"a\":2}")).await.unwrap();
    assert_eq!(
        store
            .account_data("@alice:localhost", None, "m.tag")
            .await
            .unwrap()
            .as_deref(),
        Some("{\"a\":2}")
    );
    assert_eq!(
        store
            .account_data("@alice:localhost", Some("!room:localhost"), "m.tag")
            .await
            .unwrap()
            .as_deref(),
        Some("{\"b\":1}")
    );
    let since = store
        .account_data_since("@alice:localhost", first)
        .await
        .unwrap();
    assert_eq!(since.len(), 2);
    assert_eq!(since.last().unwrap().stream_pos, last);
    assert_eq!(since[0].room_id.as_deref(), Some("!room:localhost"));
    assert!(
        store
            .account_data_since("@alice:localhost", last)
            .await
            .unwrap()
            .is_empty()
    );

    let receipt = |event_id: &str| WriteOp::Receipt {
        room_id: "!room:localhost".into(),
        receipt_type: "m.read".into(),
        user_id: "@alice:localhost".into(),
        event_id: event_id.into(),
        ts: 7,
    };
    let r1 = store.append(receipt("$e1")).await.unwrap();
    store.append(receipt("$e2")).await.unwrap();
    let receipts = store
        .receipts_since("!room:localhost", StreamPos(0))
        .await
        .unwrap();
    assert_eq!(receipts.len(), 1, "one receipt per user and type");
    assert_eq!(receipts[0].event_id, "$e2");
    assert_eq!(
        store
            .receipts_since("!room:localhost", r1)
            .await
            .unwrap()
            .len(),
        1
    );
    // Receipts point at events; the read position is the newest such event's position.
    assert_eq!(
        store
            .read_position("!room:localhost", "@alice:localhost")
            .await
            .unwrap(),
        None,
        "no such events stored"
    );
    let read = store.append(write(event(77))).await.unwrap();
    store.append(receipt("$event77")).await.unwrap();
    assert_eq!(
        store
            .read_position("!room:localhost", "@alice:localhost")
            .await
            .unwrap(),
        Some(read)
    );

    assert_eq!(
        store.create_filter("@alice:localhost", "{}").await.unwrap(),
        0
    );
    assert_eq!(
        store
            .create_filter("@alice:localhost", "{\"x\":1}")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.create_filter("@bob:localhost", "{}").await.unwrap(),
        0
    );
    assert_eq!(
        store
            .filter("@alice:localhost", 1)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"x\":1}")
    );
    assert_eq!(store.filter("@bob:localhost", 1).await.unwrap(), None);
}

async fn aliases_directory_and_user_search(h: &Harness) {
    let store = &h.store;
    let create = EventWrite {
        event: state_event(1, "m.room.create", "", "{}"),
        new_room: Some(NewRoom {
            room_id: "!room:localhost".into(),
            room_version: "10".into(),
            creator: "@a:localhost".into(),
            created_ts: 1,
        }),
        ..Default::default()
    };
    store
        .append(WriteOp::Event(Box::new(create)))
        .await
        .unwrap();
    assert!(
        store
            .create_alias("#hall:localhost", "!room:localhost", "@a:localhost", 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_alias("#hall:localhost", "!other:localhost", "@b:localhost", 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .create_alias("#lobby:localhost", "!room:localhost", "@a:localhost", 1)
            .await
            .unwrap()
    );
    assert_eq!(
        store.alias("#hall:localhost").await.unwrap(),
        Some(("!room:localhost".into(), "@a:localhost".into()))
    );
    assert_eq!(
        store.room_aliases("!room:localhost").await.unwrap(),
        ["#hall:localhost", "#lobby:localhost"]
    );
    assert!(store.delete_alias("#hall:localhost").await.unwrap());
    assert!(!store.delete_alias("#hall:localhost").await.unwrap());
    assert_eq!(store.alias("#hall:localhost").await.unwrap(), None);

    assert!(store.public_rooms().await.unwrap().is_empty());
    store
        .set_room_public("!room:localhost", true)
        .await
        .unwrap();
    assert_eq!(store.public_rooms().await.unwrap(), ["!room:localhost"]);
    assert!(matches!(
        store.set_room_public("!nope:localhost", true).await,
        Err(StoreError::NotFound)
    ));

    for name in ["alice", "alfred", "bob", "under_score"] {
        store
            .create_user(&new_user(name), None, None)
            .await
            .unwrap();
    }
    store
        .set_displayname("bob", Some("Bobby Alpha"))
        .await
        .unwrap();
    let found: Vec<_> = store
        .search_users("AL", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(l, _, _)| l)
        .collect();
    assert_eq!(found, ["alfred", "alice", "bob"]);
    // LIKE wildcards in the term are taken literally.
    let found: Vec<_> = store
        .search_users("e%s", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(l, _, _)| l)
        .collect();
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(store.search_users("al", 1).await.unwrap().len(), 1);
}

async fn pending_writes_keep_their_queue_order(h: &Harness) {
    let store = &h.store;
    let mut pending = Vec::new();
    for n in 0..50 {
        pending.push(store.enqueue(write(event(n))).await.unwrap());
    }
    let mut last = StreamPos(0);
    for write in pending {
        let pos = write.committed().await.unwrap();
        assert!(pos > last, "queued order is stream order");
        last = pos;
    }
}

fn media(id: &str, sha: Option<&str>, created_ts: i64) -> MediaRow {
    MediaRow {
        media_id: id.to_owned(),
        uploader: "@alice:localhost".to_owned(),
        sha256: sha.map(str::to_owned),
        content_type: sha.map(|_| "image/png".to_owned()),
        filename: None,
        size: sha.map(|_| 10),
        created_ts,
        pending_until: if sha.is_none() {
            Some(created_ts + 100)
        } else {
            None
        },
    }
}

async fn media_rows_reservations_thumbnails_and_purge(h: &Harness) {
    let store = &h.store;
    store
        .insert_media(&media("A", Some("aaa"), 10))
        .await
        .unwrap();
    store
        .insert_media(&media("B", Some("aaa"), 20))
        .await
        .unwrap();
    store.insert_media(&media("R", None, 30)).await.unwrap();
    assert_eq!(
        store.media("A").await.unwrap().unwrap().sha256.as_deref(),
        Some("aaa")
    );
    assert_eq!(store.media("nope").await.unwrap(), None);
    assert_eq!(
        store
            .pending_media_count("@alice:localhost", 50)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .pending_media_count("@alice:localhost", 500)
            .await
            .unwrap(),
        0,
        "lapsed"
    );
    // Only the reserving user fills a reservation, once.
    assert!(
        !store
            .complete_media("R", "@bob:localhost", "rrr", None, None, 3)
            .await
            .unwrap()
    );
    assert!(
        store
            .complete_media(
                "R",
                "@alice:localhost",
                "rrr",
                Some("text/plain"),
                Some("r.txt"),
                3
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_media("R", "@alice:localhost", "sss", None, None, 3)
            .await
            .unwrap()
    );
    let r = store.media("R").await.unwrap().unwrap();
    assert_eq!(
        (r.sha256.as_deref(), r.filename.as_deref(), r.pending_until),
        (Some("rrr"), Some("r.txt"), None)
    );

    let thumb = ThumbnailRow {
        width: 32,
        height: 32,
        method: "crop".into(),
        content_type: "image/png".into(),
        sha256: "ttt".into(),
        size: 5,
    };
    store.insert_thumbnail("A", &thumb).await.unwrap();
    store.insert_thumbnail("A", &thumb).await.unwrap();
    assert_eq!(
        store.thumbnail("A", 32, 32, "crop").await.unwrap(),
        Some(thumb)
    );
    assert_eq!(store.thumbnail("A", 96, 96, "crop").await.unwrap(), None);

    // Purging A (before 15): its content is still used by B, its thumbnail's is not.
    let (deleted, mut orphans) = store.purge_media_before(15).await.unwrap();
    orphans.sort();
    assert_eq!((deleted, orphans), (1, vec!["ttt".to_owned()]));
    assert_eq!(store.media("A").await.unwrap(), None);
    let (deleted, orphans) = store.purge_media_before(25).await.unwrap();
    assert_eq!((deleted, orphans), (1, vec!["aaa".to_owned()]));
    // Unreferenced media: C is named in an event, D in a profile, E nowhere.
    for id in ["C", "D", "E"] {
        store
            .insert_media(&media(id, Some(&format!("{id}{id}{id}")), 40))
            .await
            .unwrap();
    }
    let mut mention = event(1);
    mention.json = r#"{"content":{"url":"mxc://localhost/C"}}"#.into();
    store.append(write(mention)).await.unwrap();
    store
        .create_user(&new_user("dora"), None, None)
        .await
        .unwrap();
    store
        .set_avatar_url("dora", Some("mxc://localhost/D"))
        .await
        .unwrap();
    // R (uploaded into a reservation above) is not referenced either.
    assert_eq!(
        store
            .unreferenced_media("mxc://localhost/", 100)
            .await
            .unwrap(),
        ["E", "R"]
    );
    assert!(
        store
            .unreferenced_media("mxc://localhost/", 30)
            .await
            .unwrap()
            .is_empty(),
        "too young"
    );
    assert_eq!(
        store.delete_media(&["E".to_owned()]).await.unwrap(),
        ["EEE"]
    );
    assert_eq!(store.media("E").await.unwrap(), None);
    assert!(store.media("C").await.unwrap().is_some());

    store
        .put_url_preview("https://x/", "{}", 100)
        .await
        .unwrap();
    assert_eq!(
        store
            .url_preview("https://x/", 50)
            .await
            .unwrap()
            .as_deref(),
        Some("{}")
    );
    assert_eq!(
        store.url_preview("https://x/", 150).await.unwrap(),
        None,
        "too old"
    );
    assert_eq!(
        store.server_meta_or_insert("k", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.server_meta_or_insert("k", "second").await.unwrap(),
        "first"
    );
}

fn membership(n: usize, user: &str, membership: &str) -> WriteOp {
    WriteOp::Event(Box::new(EventWrite {
        event: state_event(
            n,
            "m.room.member",
            user,
            &format!(r#"{{"membership":"{membership}"}}"#),
        ),
        membership: Some((user.to_owned(), membership.to_owned())),
        ..Default::default()
    }))
}

async fn a_users_feed_is_its_joined_rooms_and_own_invites(h: &Harness) {
    let store = &h.store;
    let bot = "@bot:localhost";
    let in_other_room = |n| PersistedEvent {
        room_id: "!other:localhost".into(),
        ..event(n)
    };
    store
        .append(membership(1, "@alice:localhost", "join"))
        .await
        .unwrap();
    store.append(write(event(2))).await.unwrap();
    store.append(write(in_other_room(3))).await.unwrap();
    let invite = store.append(membership(4, bot, "invite")).await.unwrap();
    let ids = |events: Vec<(StreamPos, PersistedEvent)>| {
        events
            .into_iter()
            .map(|(_, e)| e.event_id)
            .collect::<Vec<_>>()
    };
    // Invited only: the bot sees its invite and nothing else of the room.
    let seen = store
        .events_visible_to(bot, StreamPos(0), 100)
        .await
        .unwrap();
    assert_eq!(ids(seen), ["$event4"]);
    store.append(membership(5, bot, "join")).await.unwrap();
    store.append(write(event(6))).await.unwrap();
    store.append(write(in_other_room(7))).await.unwrap();
    // Joined: everything of that room after the position, never the other room.
    let seen = store.events_visible_to(bot, invite, 100).await.unwrap();
    assert_eq!(ids(seen), ["$event5", "$event6"]);
    let seen = store.events_visible_to(bot, StreamPos(0), 2).await.unwrap();
    assert_eq!(ids(seen), ["$event1", "$event2"], "limit and order");
}

/// A component's tables as the gateways use them: its migrations run once, values of every
/// type round-trip (nulls too), and a transaction happens whole or not at all.
async fn component_tables_migrate_once_and_round_trip(h: &Harness) {
    const MIGRATIONS: &[Migration] = &[
        Migration {
            version: 1,
            sqlite: "CREATE TABLE probe (id TEXT PRIMARY KEY NOT NULL, n INTEGER, \
                     flag BOOLEAN, bytes BLOB, note TEXT)",
            postgres: "CREATE TABLE probe (id TEXT PRIMARY KEY NOT NULL, n BIGINT, \
                       flag BOOLEAN, bytes BYTEA, note TEXT)",
        },
        Migration {
            version: 2,
            sqlite: "ALTER TABLE probe ADD COLUMN small INTEGER",
            postgres: "ALTER TABLE probe ADD COLUMN small INTEGER",
        },
    ];
    let tables = h.store.tables("probe", MIGRATIONS).await.unwrap();
    // Opening again (a restart) applies nothing twice: the ALTER would fail.
    let again = h.reopen().await.tables("probe", MIGRATIONS).await.unwrap();
    assert_eq!(again.component(), "probe");

    let insert =
        "INSERT INTO probe (id, n, flag, bytes, note, small) VALUES ($1, $2, $3, $4, $5, $6)";
    tables
        .execute(
            insert,
            &[
                "a".into(),
                42i64.into(),
                true.into(),
                vec![0u8, 255].into(),
                Some("note").into(),
                7i64.into(),
            ],
        )
        .await
        .unwrap();
    tables
        .execute(
            insert,
            &[
                "b".into(),
                Value::Int(None),
                Value::Bool(None),
                Value::Blob(None),
                Value::Text(None),
                Value::Int(None),
            ],
        )
        .await
        .unwrap();
    let rows = tables
        .query(
            "SELECT id, n, flag, bytes, note, small FROM probe ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<String>("id").unwrap(), "a");
    assert_eq!(rows[0].get::<i64>("n").unwrap(), 42);
    assert!(rows[0].get::<bool>("flag").unwrap());
    assert_eq!(rows[0].get::<Vec<u8>>("bytes").unwrap(), [0, 255]);
    assert_eq!(
        rows[0].get::<Option<String>>("note").unwrap().as_deref(),
        Some("note")
    );
    assert_eq!(
        rows[0].get::<i64>("small").unwrap(),
        7,
        "32-bit columns widen"
    );
    assert_eq!(rows[1].get::<Option<i64>>("n").unwrap(), None);
    assert_eq!(rows[1].get::<Option<bool>>("flag").unwrap(), None);
    assert_eq!(rows[1].get::<Option<String>>("note").unwrap(), None);
    assert!(rows[1].get::<i64>("n").is_err(), "a null is no integer");
    assert!(rows[0].get::<i64>("missing").is_err());
    let count = tables
        .query_opt(
            "SELECT COUNT(*) AS n FROM probe WHERE ($1 IS NULL OR id = $1)",
            &[Value::Text(None)],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count.get::<i64>("n").unwrap(), 2);

    // A failing statement rolls back the ones before it.
    let failed = tables
        .transaction(&[
            Statement::new("UPDATE probe SET n = 1 WHERE id = 'a'", vec![]),
            Statement::new(
                insert,
                vec![
                    "a".into(),
                    Value::Int(None),
                    Value::Bool(None),
                    Value::Blob(None),
                    Value::Text(None),
                    Value::Int(None),
                ],
            ),
        ])
        .await;
    assert!(failed.is_err(), "the duplicate key fails");
    let n = tables
        .query_opt("SELECT n FROM probe WHERE id = $1", &["a".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.get::<i64>("n").unwrap(), 42, "rolled back");
    let changed = tables
        .transaction(&[
            Statement::new("UPDATE probe SET n = n + 1 WHERE id = $1", vec!["a".into()]),
            Statement::new("DELETE FROM probe WHERE id = $1", vec!["b".into()]),
            Statement::new("DELETE FROM probe WHERE id = $1", vec!["nobody".into()]),
        ])
        .await
        .unwrap();
    assert_eq!(changed, [1, 1, 0]);
}

async fn openid_tokens_expire_and_are_swept(h: &Harness) {
    let store = &h.store;
    store
        .create_openid_token(b"first", "@alice:localhost", 1_000, 0)
        .await
        .unwrap();
    store
        .create_openid_token(b"second", "@bob:localhost", 5_000, 0)
        .await
        .unwrap();
    assert_eq!(
        store
            .openid_token_user(b"first", 999)
            .await
            .unwrap()
            .as_deref(),
        Some("@alice:localhost")
    );
    assert_eq!(
        store.openid_token_user(b"first", 1_000).await.unwrap(),
        None
    );
    assert_eq!(store.openid_token_user(b"unknown", 0).await.unwrap(), None);
    // A new token sweeps the expired ones: the first is gone even for an earlier clock.
    store
        .create_openid_token(b"third", "@alice:localhost", 9_000, 2_000)
        .await
        .unwrap();
    assert_eq!(store.openid_token_user(b"first", 0).await.unwrap(), None);
    assert_eq!(
        store
            .openid_token_user(b"second", 2_000)
            .await
            .unwrap()
            .as_deref(),
        Some("@bob:localhost")
    );
    // A token hash is stored once.
    assert!(
        store
            .create_openid_token(b"third", "@mallory:localhost", 9_000, 2_000)
            .await
            .is_err()
    );
}

async fn reports_are_listed_newest_first(h: &Harness) {
    let store = &h.store;
    let report = |n: i64| NewReport {
        room_id: "!room:localhost".into(),
        event_id: (n % 2 == 0).then(|| format!("$event{n}")),
        reporter: "@alice:localhost".into(),
        reason: Some(format!("reason {n}")),
        score: (n == 2).then_some(-100),
        received_ts: 1_000 + n,
    };
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(store.insert_report(&report(n)).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let page = store.reports(None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    assert_eq!(page[1].report, report(2));
    assert_eq!(page[0].report.event_id, None);
    let rest = store.reports(Some(page[1].id), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].report, report(1));
    assert!(store.reports(Some(ids[0]), 10).await.unwrap().is_empty());
}

async fn events_are_found_by_timestamp(h: &Harness) {
    let store = &h.store;
    let mut positions = Vec::new();
    for (n, ts) in [(1, 100), (2, 200), (3, 200), (4, 300)] {
        let e = PersistedEvent {
            origin_server_ts: ts,
            ..event(n)
        };
        positions.push(store.append(write(e)).await.unwrap());
    }
    let mut other = event(5);
    other.room_id = "!other:localhost".into();
    other.origin_server_ts = 150;
    store.append(write(other)).await.unwrap();
    let room = "!room:localhost";
    let all = StreamPos(i64::MAX);
    let first =
        |events: Vec<(StreamPos, PersistedEvent)>| events.first().map(|(_, e)| e.event_id.clone());
    let near = |ts, dir, until| store.events_near_ts(room, ts, dir, until, 1);
    assert_eq!(
        first(near(150, Direction::Forward, all).await.unwrap()).as_deref(),
        Some("$event2")
    );
    assert_eq!(
        first(near(150, Direction::Backward, all).await.unwrap()).as_deref(),
        Some("$event1")
    );
    assert_eq!(
        first(near(200, Direction::Forward, all).await.unwrap()).as_deref(),
        Some("$event2")
    );
    assert_eq!(
        first(near(200, Direction::Backward, all).await.unwrap()).as_deref(),
        Some("$event3")
    );
    assert_eq!(
        first(near(301, Direction::Forward, all).await.unwrap()),
        None
    );
    assert_eq!(
        first(near(99, Direction::Backward, all).await.unwrap()),
        None
    );
    // Events past what the reader may see are not candidates.
    assert_eq!(
        first(near(250, Direction::Forward, positions[2]).await.unwrap()),
        None
    );
    let candidates = store
        .events_near_ts(room, 0, Direction::Forward, all, 10)
        .await
        .unwrap();
    assert_eq!(candidates.len(), 4);
}

async fn thread_roots_follow_their_newest_reply(h: &Harness) {
    let store = &h.store;
    let reply = |n: usize, root: &str, sender: &str| PersistedEvent {
        sender: sender.to_owned(),
        relation: Some((root.to_owned(), "m.thread".to_owned())),
        ..event(n)
    };
    let root_a = store.append(write(event(1))).await.unwrap();
    let bob_root = PersistedEvent {
        sender: "@bob:localhost".into(),
        ..event(2)
    };
    store.append(write(bob_root)).await.unwrap();
    store
        .append(write(reply(3, "$event1", "@bob:localhost")))
        .await
        .unwrap();
    store
        .append(write(reply(4, "$event2", "@bob:localhost")))
        .await
        .unwrap();
    let a_latest = store
        .append(write(reply(5, "$event1", "@bob:localhost")))
        .await
        .unwrap();
    // A reaction is no thread reply, and a relation to an unknown event is no thread.
    let mut reaction = event(6);
    reaction.relation = Some(("$event2".into(), "m.annotation".into()));
    store.append(write(reaction)).await.unwrap();
    store
        .append(write(reply(7, "$missing", "@alice:localhost")))
        .await
        .unwrap();
    let mut elsewhere = reply(8, "$event1", "@carol:localhost");
    elsewhere.room_id = "!other:localhost".into();
    store.append(write(elsewhere)).await.unwrap();

    let room = "!room:localhost";
    let all = StreamPos(i64::MAX);
    let threads = store
        .thread_roots(room, "@alice:localhost", all, all, false, 10)
        .await
        .unwrap();
    let roots: Vec<_> = threads.iter().map(|t| t.root_id.as_str()).collect();
    assert_eq!(roots, ["$event1", "$event2"]);
    assert_eq!(
        (
            threads[0].latest_id.as_str(),
            threads[0].latest_pos,
            threads[0].count
        ),
        ("$event5", a_latest, 2)
    );
    // Alice sent the first root; she never touched Bob's thread.
    assert!(threads[0].participated);
    assert!(!threads[1].participated);
    assert_eq!(threads[1].count, 1);

    let mine = store
        .thread_roots(room, "@alice:localhost", all, all, true, 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].root_id, "$event1");
    let bobs = store
        .thread_roots(room, "@bob:localhost", all, all, true, 10)
        .await
        .unwrap();
    assert_eq!(bobs.len(), 2);

    // Paging: the next page starts below the last thread's newest reply.
    let page = store
        .thread_roots(room, "@alice:localhost", all, all, false, 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    let next = store
        .thread_roots(room, "@alice:localhost", all, page[0].latest_pos, false, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].root_id, "$event2");

    // A reader who may see up to the first reply sees one thread with one reply.
    let early = store
        .thread_roots(
            room,
            "@alice:localhost",
            StreamPos(root_a.0 + 2),
            all,
            false,
            10,
        )
        .await
        .unwrap();
    assert_eq!(early.len(), 1);
    assert_eq!((early[0].root_id.as_str(), early[0].count), ("$event1", 1));
}

async fn state_of_one_type_and_moved_aliases(h: &Harness) {
    let store = &h.store;
    for (n, key) in [
        (1, "!a:localhost"),
        (2, "!b:localhost"),
        (3, "!a:localhost"),
    ] {
        store
            .append(write(state_event(
                n,
                "m.space.child",
                key,
                &format!(r#"{{"content":{{"via":["localhost"]}},"n":{n}}}"#),
            )))
            .await
            .unwrap();
    }
    store
        .append(write(state_event(4, "m.room.name", "", r#"{"name":"x"}"#)))
        .await
        .unwrap();
    let mut children: Vec<_> = store
        .room_state_of_type("!room:localhost", "m.space.child")
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| (e.state_key.unwrap(), e.event_id))
        .collect();
    children.sort();
    assert_eq!(
        children,
        [
            ("!a:localhost".to_owned(), "$event3".to_owned()),
            ("!b:localhost".to_owned(), "$event2".to_owned())
        ]
    );
    assert!(
        store
            .room_state_of_type("!other:localhost", "m.space.child")
            .await
            .unwrap()
            .is_empty()
    );

    for alias in ["#one:localhost", "#two:localhost"] {
        assert!(
            store
                .create_alias(alias, "!old:localhost", "@a:localhost", 1)
                .await
                .unwrap()
        );
    }
    store
        .create_alias("#else:localhost", "!else:localhost", "@a:localhost", 1)
        .await
        .unwrap();
    assert_eq!(
        store
            .move_aliases("!old:localhost", "!new:localhost")
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .room_aliases("!old:localhost")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.room_aliases("!new:localhost").await.unwrap(),
        ["#one:localhost", "#two:localhost"]
    );
    assert_eq!(
        store.alias("#one:localhost").await.unwrap(),
        Some(("!new:localhost".into(), "@a:localhost".into()))
    );
    assert_eq!(
        store.room_aliases("!else:localhost").await.unwrap().len(),
        1
    );
}

/// Every write function, run by 32 tasks at once on the same rows where that is what real
/// traffic does (one user's filters, one device, one alias, one room's directory entry):
/// no write may fail because another wrote at the same moment. Outcomes that the data
/// decides (an alias already taken, a user that exists) are answers, not errors.
async fn every_write_survives_32_concurrent_writers(h: &Harness) {
    const TASKS: usize = 32;
    let store = &h.store;
    let create = EventWrite {
        event: state_event(1, "m.room.create", "", "{}"),
        new_room: Some(NewRoom {
            room_id: "!room:localhost".into(),
            room_version: "10".into(),
            creator: "@shared:localhost".into(),
            created_ts: 1,
        }),
        ..Default::default()
    };
    store
        .append(WriteOp::Event(Box::new(create)))
        .await
        .unwrap();
    store
        .create_user(&new_user("shared"), None, None)
        .await
        .unwrap();
    store
        .create_session("shared", &session("SHARED", b"shared-token"))
        .await
        .unwrap();
    store
        .insert_media(&media("SHAREDMEDIA", Some("abc"), 10))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = format!("user{n}");
            let device = format!("DEV{n}");
            let token = format!("token{n}").into_bytes();
            let mut errors: Vec<String> = Vec::new();
            fn check(errors: &mut Vec<String>, what: &str, result: Result<(), StoreError>) {
                if let Err(err) = result {
                    errors.push(format!("{what}: {err}"));
                }
            }
            check(
                &mut errors,
                "create_user",
                store
                    .create_user(&new_user(&me), None, Some(&session(&device, &token)))
                    .await,
            );
            // Everyone registers the same name too: exactly one may win, the rest learn it exists.
            match store.create_user(&new_user("contested"), None, None).await {
                Ok(()) | Err(StoreError::UserExists) => {}
                Err(err) => errors.push(format!("create_user contested: {err}")),
            }
            check(
                &mut errors,
                "create_session",
                store
                    .create_session(
                        &me,
                        &session(
                            &format!("{device}b"),
                            &[token.clone(), b"b".to_vec()].concat(),
                        ),
                    )
                    .await,
            );
            check(
                &mut errors,
                "create_session shared",
                store
                    .create_session(
                        "shared",
                        &session("SHARED", format!("shared{n}").as_bytes()),
                    )
                    .await,
            );
            check(
                &mut errors,
                "set_password_hash",
                store.set_password_hash(&me, "$argon2id$other").await,
            );
            check(
                &mut errors,
                "set_displayname",
                store.set_displayname("shared", Some(&me)).await,
            );
            check(
                &mut errors,
                "set_avatar_url",
                store
                    .set_avatar_url("shared", Some("mxc://localhost/x"))
                    .await,
            );
            check(
                &mut errors,
                "set_admin",
                store.set_admin(&me, n % 2 == 0).await,
            );
            check(
                &mut errors,
                "touch_device",
                store
                    .touch_device("shared", "SHARED", n as i64, Some("127.0.0.1"))
                    .await,
            );
            check(
                &mut errors,
                "set_device_display_name",
                store
                    .set_device_display_name(&me, &device, Some("renamed"))
                    .await,
            );
            let refresh = store
                .refresh_session(&token, b"none", b"none", None, 1)
                .await
                .map(drop);
            check(&mut errors, "refresh_session", refresh);
            check(
                &mut errors,
                "create_filter",
                store
                    .create_filter("@shared:localhost", &format!(r#"{{"n":{n}}}"#))
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "create_filter same",
                store
                    .create_filter("@shared:localhost", r#"{"same":true}"#)
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "create_registration_token",
                store
                    .create_registration_token(
                        &RegistrationToken {
                            token: format!("tok{n}"),
                            uses_allowed: Some(1),
                            completed: 0,
                            expiry_ts: None,
                        },
                        1,
                    )
                    .await,
            );
            check(
                &mut errors,
                "append account data",
                store
                    .append(WriteOp::AccountData {
                        user_id: "@shared:localhost".into(),
                        room_id: None,
                        data_type: "m.shared".into(),
                        content: format!("{{\"n\":{n}}}"),
                    })
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "append event",
                store.append(write(event(1_000 + n))).await.map(drop),
            );
            check(
                &mut errors,
                "insert_media",
                store
                    .insert_media(&media(&format!("MEDIA{n}"), Some("abc"), 10))
                    .await,
            );
            check(
                &mut errors,
                "complete_media",
                store
                    .complete_media(
                        &format!("MEDIA{n}"),
                        "@alice:localhost",
                        "abc",
                        None,
                        None,
                        1,
                    )
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "insert_thumbnail",
                store
                    .insert_thumbnail(
                        "SHAREDMEDIA",
                        &ThumbnailRow {
                            width: 32,
                            height: 32,
                            method: "scale".into(),
                            content_type: "image/png".into(),
                            sha256: "abc".into(),
                            size: 3,
                        },
                    )
                    .await,
            );
            check(
                &mut errors,
                "put_url_preview",
                store
                    .put_url_preview("https://example.org/", "{}", n as i64)
                    .await,
            );
            check(
                &mut errors,
                "server_meta_or_insert",
                store
                    .server_meta_or_insert("shared_key", &me)
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "set_room_public",
                store.set_room_public("!room:localhost", n % 2 == 0).await,
            );
            match store
                .create_alias("#shared:localhost", "!room:localhost", &me, 1)
                .await
            {
                Ok(_) => {}
                Err(err) => errors.push(format!("create_alias: {err}")),
            }
            check(
                &mut errors,
                "delete_alias",
                store.delete_alias("#shared:localhost").await.map(drop),
            );
            check(
                &mut errors,
                "forget_room",
                store.forget_room(&me, "!room:localhost").await,
            );
            check(
                &mut errors,
                "delete_access_token",
                store.delete_access_token(&token).await,
            );
            check(
                &mut errors,
                "delete_devices",
                store
                    .delete_devices(&me, std::slice::from_ref(&device))
                    .await,
            );
            check(
                &mut errors,
                "delete_other_devices",
                store.delete_other_devices(&me, None).await,
            );
            check(
                &mut errors,
                "delete_media",
                store.delete_media(&[format!("MEDIA{n}")]).await.map(drop),
            );
            check(
                &mut errors,
                "purge_media_before",
                store.purge_media_before(0).await.map(drop),
            );
            check(
                &mut errors,
                "create_openid_token",
                store
                    .create_openid_token(
                        format!("openid{n}").as_bytes(),
                        &me,
                        10 + n as i64,
                        n as i64,
                    )
                    .await,
            );
            check(
                &mut errors,
                "insert_report",
                store
                    .insert_report(&NewReport {
                        room_id: "!room:localhost".into(),
                        reporter: me.clone(),
                        received_ts: n as i64,
                        ..NewReport::default()
                    })
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "move_aliases",
                store
                    .move_aliases("!room:localhost", "!room:localhost")
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "deactivate_user",
                store.deactivate_user(&me).await,
            );
            errors
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await.expect("a writer task panicked"));
    }
    assert!(
        errors.is_empty(),
        "{} writes failed: {errors:#?}",
        errors.len()
    );
    // The contested name went to exactly one writer, and the shared filters got distinct IDs.
    assert!(store.user("contested").await.unwrap().is_some());
    let mut ids = HashSet::new();
    for n in 0..TASKS {
        let id = store
            .create_filter("@shared:localhost", &format!(r#"{{"n":{n}}}"#))
            .await
            .unwrap();
        assert!(ids.insert(id), "filter {n} has the ID of another");
        assert_eq!(
            store
                .filter("@shared:localhost", id)
                .await
                .unwrap()
                .as_deref(),
            Some(format!(r#"{{"n":{n}}}"#).as_str())
        );
    }
}
