//! The store conformance suite: every backend runs exactly these tests.
//!
//! SQLite always runs; PostgreSQL runs when `CONVERGE_TEST_POSTGRES_URL` is set (CI sets
//! it), each test in a schema of its own.

use std::collections::HashSet;

use converge_core::{PersistedEvent, StreamPos};
use converge_store::{
    BackupSession, CrossSigningKey, Direction, EventNotifications, EventWrite, KeySignature,
    MediaRow, Migration, NewReport, NewRoom, NewSession, NewUser, Notification, OneTimeKey,
    OneTimeKeysAdded, PusherRow, QueuedKind, Redaction, RegistrationToken, Statement, StoreError,
    ThumbnailRow, Value, WriteOp, testing,
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
    device_and_cross_signing_keys_and_signatures,
    keys_and_devices_of_many_users_are_read_at_once,
    one_time_keys_are_claimed_once_then_the_fallback,
    claims_for_many_devices_are_one_transaction_in_the_order_asked,
    to_device_messages_and_device_list_changes_follow_the_stream,
    key_backup_keeps_the_better_session,
    push_actions_count_per_thread_and_feed_pushers,
    memberships_remember_when_their_kind_changed,
    admin_listings_and_daily_figures,
    appservice_queues_fix_their_transactions,
    room_list_bumps_and_events_by_id,
);

fn new_user(localpart: &str) -> NewUser {
    NewUser {
        localpart: localpart.to_owned(),
        password_hash: Some("$argon2id$fake".to_owned()),
        is_admin: false,
        displayname: Some(localpart.to_owned()),
        created_ts: 1_000,
        appservice_id: None,
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
        .delete_devices(
            "alice",
            "@alice:localhost",
            &["PHONE".to_owned(), "MISSING".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(store.session_by_token(b"t-phone-2").await.unwrap(), None);
    assert_eq!(store.device("alice", "PHONE").await.unwrap(), None);

    store
        .create_session("alice", &session("TABLET", b"t-tablet"))
        .await
        .unwrap();
    store
        .delete_other_devices("alice", "@alice:localhost", Some("TABLET"))
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
    store
        .deactivate_user("alice", "@alice:localhost")
        .await
        .unwrap();
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
        store.deactivate_user("ghost", "@ghost:localhost").await,
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
        .relations(
            "!room:localhost",
            "$event1",
            StreamPos(0),
            StreamPos(i64::MAX),
            2,
            Direction::Backward,
        )
        .await
        .unwrap();
    let ids: Vec<_> = related.iter().map(|(_, e)| e.event_id.as_str()).collect();
    assert_eq!(ids, ["$event5", "$event4"]);
    assert_eq!(
        related[0].1.relation,
        Some(("$event1".to_owned(), "m.annotation".to_owned()))
    );
    let before = store
        .relations(
            "!room:localhost",
            "$event1",
            StreamPos(0),
            related[1].0,
            10,
            Direction::Backward,
        )
        .await
        .unwrap();
    assert_eq!(before.len(), 1);
    let forward = store
        .relations(
            "!room:localhost",
            "$event1",
            StreamPos(0),
            StreamPos(i64::MAX),
            2,
            Direction::Forward,
        )
        .await
        .unwrap();
    let ids: Vec<_> = forward.iter().map(|(_, e)| e.event_id.as_str()).collect();
    assert_eq!(ids, ["$event3", "$event4"], "oldest first");
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
        thread_id: String::new(),
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
    // Receipts point at events; the read position is the newest such event's position,
    // per thread.
    assert_eq!(
        store
            .read_positions("!room:localhost", "@alice:localhost")
            .await
            .unwrap(),
        [],
        "no such events stored"
    );
    let read = store.append(write(event(77))).await.unwrap();
    store.append(receipt("$event77")).await.unwrap();
    let in_thread = store.append(write(event(78))).await.unwrap();
    store
        .append(WriteOp::Receipt {
            room_id: "!room:localhost".into(),
            receipt_type: "m.read".into(),
            user_id: "@alice:localhost".into(),
            thread_id: "$root".into(),
            event_id: "$event78".into(),
            ts: 8,
        })
        .await
        .unwrap();
    let mut positions = store
        .read_positions("!room:localhost", "@alice:localhost")
        .await
        .unwrap();
    positions.sort();
    assert_eq!(
        positions,
        [(String::new(), read), ("$root".to_owned(), in_thread)]
    );
    let threaded = store.receipts_since("!room:localhost", read).await.unwrap();
    assert_eq!(threaded.last().unwrap().thread_id, "$root");

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
    // From just before (forward) or just after (backward) everything at `ts`.
    let near = |ts, dir, until| {
        let start = if dir == Direction::Forward {
            StreamPos(0)
        } else {
            StreamPos(i64::MAX)
        };
        store.events_near_ts(room, (ts, start), dir, until, 1)
    };
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
        .events_near_ts(room, (0, StreamPos(0)), Direction::Forward, all, 10)
        .await
        .unwrap();
    assert_eq!(candidates.len(), 4);
    // Reading on from a candidate: at its timestamp, only what lies beyond its position.
    let (pos2, _) = &candidates[1];
    let on = store
        .events_near_ts(room, (200, *pos2), Direction::Forward, all, 10)
        .await
        .unwrap();
    let ids: Vec<_> = on.iter().map(|(_, e)| e.event_id.as_str()).collect();
    assert_eq!(ids, ["$event3", "$event4"]);
    let (pos3, _) = &candidates[2];
    let back = store
        .events_near_ts(room, (200, *pos3), Direction::Backward, all, 10)
        .await
        .unwrap();
    let ids: Vec<_> = back.iter().map(|(_, e)| e.event_id.as_str()).collect();
    assert_eq!(ids, ["$event2", "$event1"]);
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
                    .delete_devices(
                        &me,
                        &format!("@{me}:localhost"),
                        std::slice::from_ref(&device),
                    )
                    .await,
            );
            check(
                &mut errors,
                "delete_other_devices",
                store
                    .delete_other_devices(&me, &format!("@{me}:localhost"), None)
                    .await,
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
            // End-to-end keys, backups and pushers, all on one user's rows.
            let shared_user = "@shared:localhost";
            check(
                &mut errors,
                "set_device_keys",
                store
                    .set_device_keys(shared_user, "SHARED", &format!("{{\"n\":{n}}}"))
                    .await,
            );
            check(
                &mut errors,
                "add_one_time_keys",
                store
                    .add_one_time_keys(
                        shared_user,
                        "SHARED",
                        &[OneTimeKey {
                            algorithm: "signed_curve25519".into(),
                            key_id: format!("K{n}"),
                            json: "{}".into(),
                        }],
                    )
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "claim_keys",
                store
                    .claim_keys(&[wanted_key(shared_user, "SHARED")])
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "set_fallback_key",
                store
                    .set_fallback_key(
                        shared_user,
                        "SHARED",
                        &OneTimeKey {
                            algorithm: "signed_curve25519".into(),
                            key_id: format!("F{n}"),
                            json: "{}".into(),
                        },
                    )
                    .await,
            );
            check(
                &mut errors,
                "set_cross_signing_keys",
                store
                    .set_cross_signing_keys(&[CrossSigningKey {
                        user_id: shared_user.into(),
                        key_type: "master".into(),
                        public_key: format!("M{n}"),
                        json: "{}".into(),
                    }])
                    .await,
            );
            check(
                &mut errors,
                "add_key_signatures",
                store
                    .add_key_signatures(&[KeySignature {
                        target_user: shared_user.into(),
                        target_key: "SHARED".into(),
                        signer_user: shared_user.into(),
                        signer_key_id: "ed25519:S".into(),
                        signature: format!("{n}"),
                    }])
                    .await,
            );
            check(
                &mut errors,
                "to-device",
                store
                    .append(WriteOp::ToDevice {
                        sender: me.clone(),
                        event_type: "m.x".into(),
                        messages: vec![(shared_user.into(), "SHARED".into(), "{}".into())],
                        txn: Some((device.clone(), "t".into())),
                    })
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "delete_to_device",
                store
                    .delete_to_device(shared_user, "SHARED", StreamPos(n as i64))
                    .await,
            );
            check(
                &mut errors,
                "device list change",
                store
                    .append(WriteOp::DeviceListChange {
                        user_id: shared_user.into(),
                    })
                    .await
                    .map(drop),
            );
            match store
                .create_backup_version(shared_user, "m.megolm_backup.v1", "{}")
                .await
            {
                Ok(version) => {
                    check(
                        &mut errors,
                        "update_backup_version",
                        store
                            .update_backup_version(shared_user, version, "{}")
                            .await
                            .map(drop),
                    );
                    check(
                        &mut errors,
                        "put_backup_sessions",
                        store
                            .put_backup_sessions(
                                shared_user,
                                version,
                                &[BackupSession {
                                    room_id: "!room:localhost".into(),
                                    session_id: "s".into(),
                                    first_message_index: n as i64,
                                    forwarded_count: 0,
                                    is_verified: false,
                                    session_data: "{}".into(),
                                }],
                                |a, b| a.first_message_index < b.first_message_index,
                            )
                            .await
                            .map(drop),
                    );
                    check(
                        &mut errors,
                        "delete_backup_sessions",
                        store
                            .delete_backup_sessions(shared_user, version, None, None)
                            .await
                            .map(drop),
                    );
                    check(
                        &mut errors,
                        "delete_backup_version",
                        store
                            .delete_backup_version(shared_user, version)
                            .await
                            .map(drop),
                    );
                }
                Err(err) => errors.push(format!("create_backup_version: {err}")),
            }
            let pusher = PusherRow {
                user_id: shared_user.into(),
                app_id: "app".into(),
                pushkey: format!("key{}", n % 4),
                kind: "http".into(),
                app_display_name: String::new(),
                device_display_name: String::new(),
                profile_tag: None,
                lang: "en".into(),
                data: "{}".into(),
                created_ts: 0,
                delivered_pos: StreamPos(0),
                failures: 0,
                retry_at: 0,
                last_error: None,
            };
            check(
                &mut errors,
                "set_pusher",
                store.set_pusher(&pusher, n % 2 == 0).await,
            );
            check(
                &mut errors,
                "pusher_failed",
                store.pusher_failed(&pusher, 1, "x").await,
            );
            check(
                &mut errors,
                "pusher_delivered",
                store.pusher_delivered(&pusher, StreamPos(1)).await,
            );
            check(
                &mut errors,
                "delete_pusher",
                store
                    .delete_pusher(shared_user, "app", &pusher.pushkey)
                    .await
                    .map(drop),
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
            // The admin pages' writes: counters and a room shut down, all on shared rows.
            check(
                &mut errors,
                "add_counters",
                store
                    .add_counters(&[(1, "shared", 1), (1, &format!("mine{n}"), 1)])
                    .await,
            );
            check(
                &mut errors,
                "block_room",
                store.block_room("!room:localhost", &me, n as i64).await,
            );
            check(
                &mut errors,
                "set_admin",
                store.set_admin("shared", n % 2 == 0).await,
            );
            check(
                &mut errors,
                "appservice_state",
                store
                    .appservice_state("shared-as", StreamPos(0))
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "queue_for_appservice",
                store
                    .queue_for_appservice(
                        "shared-as",
                        &[(StreamPos(1000 + n as i64), QueuedKind::Event)],
                        StreamPos(1000 + n as i64),
                    )
                    .await,
            );
            check(
                &mut errors,
                "fail_appservice_txn",
                store.fail_appservice_txn("shared-as", n as i64, "x").await,
            );
            check(
                &mut errors,
                "upsert_device",
                store
                    .upsert_device("shared", &format!("AS{n}"), None, 1)
                    .await
                    .map(drop),
            );
            check(
                &mut errors,
                "delete_registration_token",
                store.delete_registration_token("none").await.map(drop),
            );
            check(
                &mut errors,
                "deactivate_user",
                store
                    .deactivate_user(&me, &format!("@{me}:localhost"))
                    .await,
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
    let shared_count = store.counters(0).await.unwrap();
    assert_eq!(
        shared_count
            .iter()
            .find(|(_, name, _)| name == "shared")
            .map(|c| c.2),
        Some(TASKS as i64),
        "no increment lost"
    );
    assert!(store.room_blocked("!room:localhost").await.unwrap());
    assert_eq!(
        store.appservice_queue_len("shared-as").await.unwrap(),
        TASKS as i64,
        "every queued row kept"
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

async fn device_and_cross_signing_keys_and_signatures(h: &Harness) {
    let store = &h.store;
    let alice = "@alice:localhost";
    store
        .set_device_keys(alice, "PHONE", r#"{"keys":{"ed25519:PHONE":"a"}}"#)
        .await
        .unwrap();
    store
        .set_device_keys(alice, "LAPTOP", r#"{"keys":{"ed25519:LAPTOP":"b"}}"#)
        .await
        .unwrap();
    store
        .set_device_keys("@bob:localhost", "TAB", "{}")
        .await
        .unwrap();
    let mut keys = store.device_keys(&[alice.to_owned()]).await.unwrap();
    keys.sort();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1].1, "PHONE");
    let master = CrossSigningKey {
        user_id: alice.into(),
        key_type: "master".into(),
        public_key: "MPK".into(),
        json: r#"{"keys":{"ed25519:MPK":"MPK"}}"#.into(),
    };
    store
        .set_cross_signing_keys(std::slice::from_ref(&master))
        .await
        .unwrap();
    let replaced = CrossSigningKey {
        public_key: "MPK2".into(),
        ..master.clone()
    };
    store
        .set_cross_signing_keys(std::slice::from_ref(&replaced))
        .await
        .unwrap();
    assert_eq!(
        store.cross_signing_keys(&[alice.to_owned()]).await.unwrap(),
        [replaced]
    );
    let signature = KeySignature {
        target_user: alice.into(),
        target_key: "PHONE".into(),
        signer_user: alice.into(),
        signer_key_id: "ed25519:SSK".into(),
        signature: "sig1".into(),
    };
    store
        .add_key_signatures(std::slice::from_ref(&signature))
        .await
        .unwrap();
    let newer = KeySignature {
        signature: "sig2".into(),
        ..signature
    };
    store
        .add_key_signatures(std::slice::from_ref(&newer))
        .await
        .unwrap();
    assert_eq!(
        store.key_signatures(&[alice.to_owned()]).await.unwrap(),
        [newer],
        "one signature per signer key"
    );
    // Deleting a device takes its keys along.
    store
        .create_user(&new_user("alice"), None, Some(&session("PHONE", b"t1")))
        .await
        .unwrap();
    store
        .delete_devices("alice", alice, &["PHONE".to_owned()])
        .await
        .unwrap();
    let left = store.device_keys(&[alice.to_owned()]).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, "LAPTOP");
    store.deactivate_user("alice", alice).await.unwrap();
    assert!(
        store
            .device_keys(&[alice.to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .cross_signing_keys(&[alice.to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
}

/// A key query names up to 1,000 users: the batched reads cover more users than one
/// `IN (...)` list holds, and return each user's rows and no one else's.
async fn keys_and_devices_of_many_users_are_read_at_once(h: &Harness) {
    let store = &h.store;
    const USERS: usize = 1_100;
    let ids: Vec<String> = (0..USERS).map(|i| format!("@u{i}:localhost")).collect();
    for (i, id) in ids.iter().enumerate() {
        let localpart = format!("u{i}");
        store
            .create_user(
                &new_user(&localpart),
                None,
                Some(&session("DEV", format!("t{i}").as_bytes())),
            )
            .await
            .unwrap();
        store
            .set_device_keys(id, "DEV", &format!(r#"{{"n":{i}}}"#))
            .await
            .unwrap();
    }
    // Every third user has a master key, signed by the user themself.
    let signed: Vec<&String> = ids.iter().step_by(3).collect();
    let masters: Vec<CrossSigningKey> = signed
        .iter()
        .map(|id| CrossSigningKey {
            user_id: (*id).clone(),
            key_type: "master".into(),
            public_key: format!("M-{id}"),
            json: "{}".into(),
        })
        .collect();
    store.set_cross_signing_keys(&masters).await.unwrap();
    let signatures: Vec<KeySignature> = signed
        .iter()
        .map(|id| KeySignature {
            target_user: (*id).clone(),
            target_key: "DEV".into(),
            signer_user: (*id).clone(),
            signer_key_id: "ed25519:SSK".into(),
            signature: format!("sig-{id}"),
        })
        .collect();
    store.add_key_signatures(&signatures).await.unwrap();

    // All but the last user are asked for, plus one with nothing stored.
    let mut asked: Vec<String> = ids[..USERS - 1].to_vec();
    asked.push("@nobody:localhost".into());
    let keys = store.device_keys(&asked).await.unwrap();
    assert_eq!(keys.len(), USERS - 1);
    for (user, device, json) in &keys {
        let i: usize = user[2..user.find(':').unwrap()].parse().unwrap();
        assert_eq!(
            (device.as_str(), json.clone()),
            ("DEV", format!(r#"{{"n":{i}}}"#))
        );
    }
    let wanted_signed = signed.iter().filter(|id| ***id != ids[USERS - 1]).count();
    let masters = store.cross_signing_keys(&asked).await.unwrap();
    assert_eq!(masters.len(), wanted_signed);
    assert!(
        masters
            .iter()
            .all(|k| k.public_key == format!("M-{}", k.user_id))
    );
    let sigs = store.key_signatures(&asked).await.unwrap();
    assert_eq!(sigs.len(), wanted_signed);
    assert!(
        sigs.iter()
            .all(|s| s.signature == format!("sig-{}", s.target_user))
    );

    let localparts: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    let mut asked: Vec<&str> = localparts.iter().map(String::as_str).collect();
    asked.push("nobody");
    let devices = store.devices_of(&asked).await.unwrap();
    assert_eq!(devices.len(), USERS);
    assert!(
        devices
            .iter()
            .all(|(_, d)| d.device_id == "DEV" && d.display_name.as_deref() == Some("DEV name"))
    );
    let mut owners: Vec<&str> = devices.iter().map(|(l, _)| l.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), USERS, "each user's device, once");
}

/// A claim names many devices: each gets its own one-time key (then its fallback key), a
/// device with neither gets nothing, and the answers come in the order asked; batched
/// claims racing each other still never hand out a key twice.
async fn claims_for_many_devices_are_one_transaction_in_the_order_asked(h: &Harness) {
    let store = &h.store;
    for d in 0..3 {
        let device = format!("D{d}");
        let keys: Vec<OneTimeKey> = (0..2)
            .map(|n| otk(&format!("{device}-K{n}"), "{}"))
            .collect();
        store
            .add_one_time_keys("@carol:localhost", &device, &keys)
            .await
            .unwrap();
        store
            .set_fallback_key(
                "@carol:localhost",
                &device,
                &otk(&format!("{device}-FB"), "{}"),
            )
            .await
            .unwrap();
    }
    let ask = |devices: &[&str]| -> Vec<(String, String, String)> {
        devices
            .iter()
            .map(|d| wanted_key("@carol:localhost", d))
            .collect()
    };
    let id = |k: &Option<OneTimeKey>| k.as_ref().map(|k| k.key_id.clone());
    let first = store.claim_keys(&ask(&["D2", "NONE", "D0"])).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(
        id(&first[0]).unwrap().starts_with("D2-K"),
        "{:?}",
        id(&first[0])
    );
    assert_eq!(id(&first[1]), None, "a device with no keys gets nothing");
    assert!(id(&first[2]).unwrap().starts_with("D0-K"));
    // Eight batches of all three devices at once: 2 + 2 + 2 one-time keys less the two
    // taken, each handed out once; every other answer is that device's fallback key.
    // Half of them name the devices in the other order (which must not deadlock).
    let batches = (0..8).map(|b| {
        let store = store.clone();
        let devices = if b % 2 == 0 {
            ["D0", "D1", "D2"]
        } else {
            ["D2", "D1", "D0"]
        };
        let wanted = ask(&devices);
        tokio::spawn(async move { (devices, store.claim_keys(&wanted).await) })
    });
    let mut ids = Vec::new();
    for batch in batches {
        let (devices, keys) = batch.await.unwrap();
        for (device, key) in devices.iter().zip(keys.unwrap()) {
            let key = key.expect("a one-time key or the fallback");
            assert!(
                key.key_id.starts_with(&format!("{device}-")),
                "{} for {device}",
                key.key_id
            );
            ids.push(key.key_id);
        }
    }
    let mut one_time: Vec<&String> = ids.iter().filter(|k| !k.ends_with("-FB")).collect();
    one_time.sort_unstable();
    let claimed = one_time.len();
    one_time.dedup();
    assert_eq!(
        (claimed, one_time.len()),
        (4, 4),
        "each one-time key once: {ids:?}"
    );
    assert_eq!(ids.len(), 24);
}

/// A claim of one device's signed_curve25519 key.
fn wanted_key(user: &str, device: &str) -> (String, String, String) {
    (
        user.to_owned(),
        device.to_owned(),
        "signed_curve25519".to_owned(),
    )
}

/// Claims one device's key on its own.
async fn claim_one(
    store: &converge_store::Store,
    user: &str,
    device: &str,
) -> Result<Option<OneTimeKey>, StoreError> {
    Ok(store
        .claim_keys(&[wanted_key(user, device)])
        .await?
        .pop()
        .flatten())
}

fn otk(id: &str, json: &str) -> OneTimeKey {
    OneTimeKey {
        algorithm: "signed_curve25519".into(),
        key_id: id.into(),
        json: json.into(),
    }
}

async fn one_time_keys_are_claimed_once_then_the_fallback(h: &Harness) {
    let store = &h.store;
    let bob = "@bob:localhost";
    let keys: Vec<OneTimeKey> = (0..40)
        .map(|n| otk(&format!("K{n:02}"), &format!("{{\"n\":{n}}}")))
        .collect();
    assert_eq!(
        store.add_one_time_keys(bob, "DEV", &keys).await.unwrap(),
        OneTimeKeysAdded::Added
    );
    // The same keys again are fine; one with other content is refused, and nothing of
    // that upload is kept.
    assert_eq!(
        store
            .add_one_time_keys(bob, "DEV", &keys[..2])
            .await
            .unwrap(),
        OneTimeKeysAdded::Added
    );
    let clash = [otk("NEW", "{}"), otk("K00", "{\"other\":1}")];
    assert_eq!(
        store.add_one_time_keys(bob, "DEV", &clash).await.unwrap(),
        OneTimeKeysAdded::Conflict("signed_curve25519:K00".into())
    );
    assert_eq!(
        store.one_time_key_counts(bob, "DEV").await.unwrap(),
        [("signed_curve25519".to_owned(), 40)]
    );
    store
        .set_fallback_key(bob, "DEV", &otk("FB", "{\"fallback\":true}"))
        .await
        .unwrap();
    assert_eq!(
        store.unused_fallback_algorithms(bob, "DEV").await.unwrap(),
        ["signed_curve25519"]
    );
    // 48 claims at once: every one-time key goes to exactly one claimer, then the fallback.
    let claims = (0..48).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { claim_one(&store, bob, "DEV").await })
    });
    let mut got = Vec::new();
    for claim in claims {
        got.push(
            claim
                .await
                .unwrap()
                .unwrap()
                .expect("a key or the fallback"),
        );
    }
    let mut ids: Vec<&str> = got
        .iter()
        .map(|k| k.key_id.as_str())
        .filter(|id| *id != "FB")
        .collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!((before, ids.len()), (40, 40), "each key claimed once");
    assert_eq!(got.iter().filter(|k| k.key_id == "FB").count(), 8);
    assert!(
        store
            .unused_fallback_algorithms(bob, "DEV")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .one_time_key_counts(bob, "DEV")
            .await
            .unwrap()
            .is_empty()
    );
    // A new fallback key is unused again; the same one stays used.
    store
        .set_fallback_key(bob, "DEV", &otk("FB", "{\"fallback\":true}"))
        .await
        .unwrap();
    assert!(
        store
            .unused_fallback_algorithms(bob, "DEV")
            .await
            .unwrap()
            .is_empty()
    );
    store
        .set_fallback_key(bob, "DEV", &otk("FB2", "{}"))
        .await
        .unwrap();
    assert_eq!(
        store
            .unused_fallback_algorithms(bob, "DEV")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(claim_one(store, bob, "OTHER").await.unwrap(), None);
}

async fn to_device_messages_and_device_list_changes_follow_the_stream(h: &Harness) {
    let store = &h.store;
    let send = |txn: &str, content: &str| WriteOp::ToDevice {
        sender: "@alice:localhost".into(),
        event_type: "m.room_key_request".into(),
        messages: vec![
            ("@bob:localhost".into(), "B1".into(), content.into()),
            ("@bob:localhost".into(), "B2".into(), content.into()),
        ],
        txn: Some(("ALICEDEV".into(), txn.into())),
    };
    let first = store.append(send("t1", "{\"n\":1}")).await.unwrap();
    store.append(send("t1", "{\"n\":1}")).await.unwrap();
    let second = store.append(send("t2", "{\"n\":2}")).await.unwrap();
    let inbox = store
        .to_device_messages("@bob:localhost", "B1", StreamPos(0), second, 10)
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2, "a retried transaction is delivered once");
    assert_eq!(inbox[0].stream_pos, first);
    assert_eq!(inbox[0].sender, "@alice:localhost");
    assert_eq!(inbox[1].content, "{\"n\":2}");
    assert_eq!(
        store
            .to_device_pending("@bob:localhost", "B1")
            .await
            .unwrap(),
        2
    );
    store
        .delete_to_device("@bob:localhost", "B1", first)
        .await
        .unwrap();
    assert_eq!(
        store
            .to_device_pending("@bob:localhost", "B1")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .to_device_pending("@bob:localhost", "B2")
            .await
            .unwrap(),
        2
    );
    let limited = store
        .to_device_messages("@bob:localhost", "B2", StreamPos(0), second, 1)
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);

    let change = store
        .append(WriteOp::DeviceListChange {
            user_id: "@carol:localhost".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        store.device_list_changes(second, change).await.unwrap(),
        ["@carol:localhost"]
    );
    assert!(
        store
            .device_list_changes(change, change)
            .await
            .unwrap()
            .is_empty()
    );

    // Co-members: who shares a joined room with alice, and whose membership changed there.
    store
        .append(membership(100, "@alice:localhost", "join"))
        .await
        .unwrap();
    let joined = store
        .append(membership(101, "@carol:localhost", "join"))
        .await
        .unwrap();
    store
        .append(membership(102, "@dave:localhost", "invite"))
        .await
        .unwrap();
    let mut co = store.co_members("@alice:localhost").await.unwrap();
    co.sort();
    assert_eq!(co, ["@alice:localhost", "@carol:localhost"]);
    let mut changes = store
        .co_member_changes("@alice:localhost", change, StreamPos(i64::MAX))
        .await
        .unwrap();
    changes.sort();
    assert_eq!(
        changes,
        [
            ("@carol:localhost".to_owned(), "join".to_owned()),
            ("@dave:localhost".to_owned(), "invite".to_owned())
        ]
    );
    assert!(
        store
            .co_member_changes(
                "@alice:localhost",
                StreamPos(joined.0 + 1),
                StreamPos(i64::MAX)
            )
            .await
            .unwrap()
            .iter()
            .all(|(u, _)| u != "@carol:localhost")
    );
}

fn backed_up(session: &str, verified: bool, index: i64, data: &str) -> BackupSession {
    BackupSession {
        room_id: "!room:localhost".into(),
        session_id: session.into(),
        first_message_index: index,
        forwarded_count: 0,
        is_verified: verified,
        session_data: data.into(),
    }
}

/// The spec's rule, as the service passes it: verified first, then the lower index.
fn better(new: &BackupSession, old: &BackupSession) -> bool {
    (new.is_verified, -new.first_message_index) > (old.is_verified, -old.first_message_index)
}

async fn key_backup_keeps_the_better_session(h: &Harness) {
    let store = &h.store;
    let alice = "@alice:localhost";
    assert_eq!(store.backup_version(alice, None).await.unwrap(), None);
    let v1 = store
        .create_backup_version(alice, "m.megolm_backup.v1", "{}")
        .await
        .unwrap();
    let v2 = store
        .create_backup_version(alice, "m.megolm_backup.v1", "{\"x\":1}")
        .await
        .unwrap();
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(
        store
            .backup_version(alice, None)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        store
            .backup_version(alice, Some(1))
            .await
            .unwrap()
            .unwrap()
            .auth_data,
        "{}"
    );
    assert!(
        store
            .update_backup_version(alice, 2, "{\"y\":2}")
            .await
            .unwrap()
    );
    assert!(!store.update_backup_version(alice, 9, "{}").await.unwrap());

    let etag = store
        .put_backup_sessions(alice, 2, &[backed_up("s1", false, 5, "\"first\"")], better)
        .await
        .unwrap();
    let worse = store
        .put_backup_sessions(alice, 2, &[backed_up("s1", false, 9, "\"worse\"")], better)
        .await
        .unwrap();
    assert_eq!(worse, etag, "nothing changed, the etag neither");
    let improved = store
        .put_backup_sessions(
            alice,
            2,
            &[backed_up("s1", true, 9, "\"verified\"")],
            better,
        )
        .await
        .unwrap();
    assert_ne!(improved, etag);
    let kept = store.backup_sessions(alice, 2, None, None).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].session_data, "\"verified\"");
    store
        .put_backup_sessions(alice, 2, &[backed_up("s2", false, 0, "\"two\"")], better)
        .await
        .unwrap();
    assert_eq!(store.backup_count(alice, 2).await.unwrap(), 2);
    assert_eq!(
        store
            .backup_sessions(alice, 2, Some("!room:localhost"), Some("s2"))
            .await
            .unwrap()
            .len(),
        1
    );
    store
        .delete_backup_sessions(alice, 2, Some("!room:localhost"), Some("s2"))
        .await
        .unwrap();
    assert_eq!(store.backup_count(alice, 2).await.unwrap(), 1);
    assert!(store.delete_backup_version(alice, 2).await.unwrap());
    assert!(!store.delete_backup_version(alice, 2).await.unwrap());
    assert_eq!(
        store
            .backup_version(alice, None)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert_eq!(store.backup_count(alice, 2).await.unwrap(), 0);
    let v3 = store
        .create_backup_version(alice, "m.megolm_backup.v1", "{}")
        .await
        .unwrap();
    assert_eq!(v3, 3, "a deleted version's number is never reused");
}

fn loud(highlight: bool) -> Option<Notification> {
    Some(Notification {
        highlight,
        actions: r#"["notify"]"#.into(),
    })
}

/// An event from Alice whose notifications are `members` for the joined members and
/// `exceptions` for the named users.
fn notifying(
    n: usize,
    thread: &str,
    members: Option<Notification>,
    exceptions: &[(&str, Option<Notification>)],
) -> WriteOp {
    WriteOp::Event(Box::new(EventWrite {
        event: event(n),
        notifications: Some(EventNotifications {
            thread_id: thread.into(),
            members,
            exceptions: exceptions
                .iter()
                .map(|(user, outcome)| ((*user).to_owned(), outcome.clone()))
                .collect(),
        }),
        ..Default::default()
    }))
}

async fn push_actions_count_per_thread_and_feed_pushers(h: &Harness) {
    let store = &h.store;
    let (alice, bob, carol, dave, erin) = (
        "@alice:localhost",
        "@bob:localhost",
        "@carol:localhost",
        "@dave:localhost",
        "@erin:localhost",
    );
    for (n, user) in [(100, alice), (101, bob), (102, carol)] {
        store.append(membership(n, user, "join")).await.unwrap();
    }
    let counts = |user: &'static str, after: StreamPos| async move {
        let mut counts = store
            .notification_counts(user, "!room:localhost", after)
            .await
            .unwrap();
        counts.sort_by(|a, b| a.thread_id.cmp(&b.thread_id));
        counts
            .iter()
            .map(|c| (c.thread_id.clone(), c.notifications, c.highlights))
            .collect::<Vec<_>>()
    };
    // Carol muted the room; Bob is mentioned in the second; the third is in a thread.
    let first = store
        .append(notifying(1, "main", loud(false), &[(carol, None)]))
        .await
        .unwrap();
    store
        .append(notifying(2, "main", loud(false), &[(bob, loud(true))]))
        .await
        .unwrap();
    let third = store
        .append(notifying(3, "$root", loud(false), &[]))
        .await
        .unwrap();
    assert_eq!(
        counts(bob, StreamPos(0)).await,
        [("$root".into(), 1, 0), ("main".into(), 2, 1)]
    );
    assert_eq!(
        counts(carol, StreamPos(0)).await,
        [("$root".into(), 1, 0), ("main".into(), 1, 0)],
        "an exception without a notification silences the member"
    );
    assert!(
        counts(alice, StreamPos(0)).await.is_empty(),
        "never for the sender"
    );
    let after_first = counts(bob, first).await;
    assert_eq!(after_first.iter().map(|c| c.1).sum::<u64>(), 2);

    // Erin joins later: the room's earlier events are not hers; Dave is invited, and only
    // his own row notifies him.
    store.append(membership(103, erin, "join")).await.unwrap();
    store.append(membership(104, dave, "invite")).await.unwrap();
    assert!(counts(erin, StreamPos(0)).await.is_empty());
    let fifth = store
        .append(notifying(5, "main", loud(false), &[]))
        .await
        .unwrap();
    store
        .append(notifying(6, "main", None, &[(dave, loud(true))]))
        .await
        .unwrap();
    assert_eq!(counts(erin, StreamPos(0)).await, [("main".into(), 1, 0)]);
    assert_eq!(
        counts(dave, StreamPos(0)).await,
        [("main".into(), 1, 1)],
        "an invitee counts only their own rows"
    );
    let dave_sees = store
        .notifications(dave, StreamPos(i64::MAX), 10, false)
        .await
        .unwrap();
    assert_eq!(dave_sees.len(), 1);
    assert!(dave_sees[0].highlight);
    assert_eq!(store.unread_total(dave).await.unwrap(), 1);

    let page = store
        .notifications(bob, StreamPos(i64::MAX), 2, false)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].stream_pos, fifth, "newest first");
    assert_eq!(page[0].actions, r#"["notify"]"#);
    let highlights = store
        .notifications(bob, StreamPos(i64::MAX), 10, true)
        .await
        .unwrap();
    assert_eq!(highlights.len(), 1);
    assert!(highlights[0].highlight);
    assert_eq!(highlights[0].event_id, "$event2");
    assert_eq!(
        store
            .notifications_after(bob, first, 10)
            .await
            .unwrap()
            .iter()
            .map(|n| n.event_id.as_str())
            .collect::<Vec<_>>(),
        ["$event2", "$event3", "$event5"]
    );
    assert_eq!(store.unread_total(bob).await.unwrap(), 4);
    store
        .append(WriteOp::Receipt {
            room_id: "!room:localhost".into(),
            receipt_type: "m.read".into(),
            user_id: bob.into(),
            thread_id: String::new(),
            event_id: "$event2".into(),
            ts: 1,
        })
        .await
        .unwrap();
    assert_eq!(store.unread_total(bob).await.unwrap(), 2);
    // Accepting the invite ends its notification; leaving ends the room's.
    store.append(membership(105, dave, "join")).await.unwrap();
    assert_eq!(store.unread_total(dave).await.unwrap(), 0);
    store.append(membership(106, carol, "leave")).await.unwrap();
    assert_eq!(store.unread_total(carol).await.unwrap(), 0);

    let pusher = |user: &str| PusherRow {
        user_id: user.into(),
        app_id: "org.example.app".into(),
        pushkey: "KEY".into(),
        kind: "http".into(),
        app_display_name: "App".into(),
        device_display_name: "Phone".into(),
        profile_tag: None,
        lang: "en".into(),
        data: r#"{"url":"https://push.example.org/_matrix/push/v1/notify"}"#.into(),
        created_ts: 1,
        delivered_pos: first,
        failures: 0,
        retry_at: 0,
        last_error: None,
    };
    store.set_pusher(&pusher(bob), true).await.unwrap();
    store
        .set_pusher(&pusher("@carol:localhost"), true)
        .await
        .unwrap();
    assert_eq!(
        store.pushers(None).await.unwrap().len(),
        1,
        "append: false takes the pushkey from other users"
    );
    store.set_pusher(&pusher(bob), false).await.unwrap();
    let mine = &store.pushers(Some("@carol:localhost")).await.unwrap()[0];
    store.pusher_failed(mine, 500, "refused").await.unwrap();
    let failed = &store.pushers(Some("@carol:localhost")).await.unwrap()[0];
    assert_eq!((failed.failures, failed.retry_at), (1, 500));
    store.pusher_delivered(failed, third).await.unwrap();
    let delivered = &store.pushers(Some("@carol:localhost")).await.unwrap()[0];
    assert_eq!((delivered.failures, delivered.delivered_pos), (0, third));
    assert_eq!(store.pushers(None).await.unwrap().len(), 2);
    assert!(
        store
            .delete_pusher(bob, "org.example.app", "KEY")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_pusher(bob, "org.example.app", "KEY")
            .await
            .unwrap()
    );
}

async fn memberships_remember_when_their_kind_changed(h: &Harness) {
    let store = &h.store;
    // Events stored as the service stores them: the whole PDU, content inside.
    let pdu = |n: usize, event_type: &str, key: &str, content: &str| PersistedEvent {
        json: format!(r#"{{"type":"{event_type}","content":{content}}}"#),
        ..state_event(n, event_type, key, content)
    };
    let member = |n: usize, kind: &str| {
        WriteOp::Event(Box::new(EventWrite {
            event: pdu(
                n,
                "m.room.member",
                "@alice:localhost",
                &format!(r#"{{"membership":"{kind}"}}"#),
            ),
            membership: Some(("@alice:localhost".to_owned(), kind.to_owned())),
            ..Default::default()
        }))
    };
    let joined = store.append(member(1, "join")).await.unwrap();
    // A profile change is a join after a join: the membership's kind did not change.
    let profile = store.append(member(2, "join")).await.unwrap();
    let rows = store.user_memberships("@alice:localhost").await.unwrap();
    assert_eq!((rows[0].stream_pos, rows[0].changed_pos), (profile, joined));
    let left = store.append(member(3, "leave")).await.unwrap();
    let rows = store.user_memberships("@alice:localhost").await.unwrap();
    assert_eq!((rows[0].stream_pos, rows[0].changed_pos), (left, left));
    // What history visibility needs: the user's memberships and the room's settings.
    let setting = pdu(
        4,
        "m.room.history_visibility",
        "",
        r#"{"history_visibility":"joined"}"#,
    );
    let set_at = store.append(write(setting)).await.unwrap();
    let (settings, memberships) = store
        .visibility_changes("!room:localhost", "@alice:localhost")
        .await
        .unwrap();
    assert_eq!(settings, [(set_at, "joined".to_owned())]);
    assert_eq!(
        memberships,
        [
            (joined, "join".to_owned()),
            (profile, "join".to_owned()),
            (left, "leave".to_owned())
        ]
    );
}

/// An event in `room` on `day` (days since the epoch) of `event_type`.
fn event_on(n: usize, room: &str, day: i64, event_type: &str) -> WriteOp {
    write(PersistedEvent {
        room_id: room.to_owned(),
        event_type: event_type.to_owned(),
        origin_server_ts: day * converge_store::DAY_MS + n as i64,
        ..event(n)
    })
}

async fn admin_listings_and_daily_figures(h: &Harness) {
    let store = &h.store;
    // Users: searched by localpart or name, a page at a time, with their last sighting.
    for name in ["alice", "bob", "carol_x"] {
        store
            .create_user(
                &new_user(name),
                None,
                Some(&session(&format!("D{name}"), name.as_bytes())),
            )
            .await
            .unwrap();
    }
    store
        .set_displayname("bob", Some("Bobby Tables"))
        .await
        .unwrap();
    store
        .touch_device("bob", "Dbob", 5 * converge_store::DAY_MS + 7, None)
        .await
        .unwrap();
    store
        .touch_device("bob", "Dbob", 5 * converge_store::DAY_MS + 9, None)
        .await
        .unwrap();
    store
        .touch_device("alice", "Dalice", 6 * converge_store::DAY_MS, None)
        .await
        .unwrap();
    let page = store.list_users("", None, 2).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|u| u.user.localpart.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(page[1].last_seen_ts, Some(5 * converge_store::DAY_MS + 9));
    let rest = store.list_users("", Some("bob"), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        store.list_users("TABLES", None, 10).await.unwrap()[0]
            .user
            .localpart,
        "bob"
    );
    assert_eq!(
        store.list_users("_", None, 10).await.unwrap().len(),
        1,
        "an underscore is matched literally, not as a wildcard"
    );
    assert_eq!(store.admin_count().await.unwrap(), 0);
    store.set_admin("carol_x", true).await.unwrap();
    assert_eq!(store.admin_count().await.unwrap(), 1);
    // Active users per day, each counted once a day.
    assert_eq!(
        store.daily_active_users(0).await.unwrap(),
        [
            converge_store::DayCount { day: 5, count: 1 },
            converge_store::DayCount { day: 6, count: 1 }
        ]
    );
    assert_eq!(store.active_users_since(5).await.unwrap(), 2);
    assert_eq!(store.active_users_since(6).await.unwrap(), 1);

    // Registration tokens: listed newest first, deleted once.
    for (token, ts) in [("old", 1), ("new", 2)] {
        store
            .create_registration_token(
                &RegistrationToken {
                    token: token.into(),
                    uses_allowed: None,
                    completed: 0,
                    expiry_ts: None,
                },
                ts,
            )
            .await
            .unwrap();
    }
    let tokens = store.registration_tokens().await.unwrap();
    assert_eq!(
        tokens.iter().map(|t| t.token.as_str()).collect::<Vec<_>>(),
        ["new", "old"]
    );
    assert!(store.delete_registration_token("old").await.unwrap());
    assert!(!store.delete_registration_token("old").await.unwrap());

    // Rooms: their figures come from the per-day counts the writer keeps.
    for (room, creator) in [
        ("!a:localhost", "@alice:localhost"),
        ("!b:localhost", "@bob:localhost"),
    ] {
        let create = EventWrite {
            event: PersistedEvent {
                room_id: room.into(),
                ..state_event(
                    if room == "!a:localhost" { 1 } else { 2 },
                    "m.room.create",
                    "",
                    "{}",
                )
            },
            new_room: Some(NewRoom {
                room_id: room.into(),
                room_version: "10".into(),
                creator: creator.into(),
                created_ts: 3,
            }),
            ..Default::default()
        };
        store
            .append(WriteOp::Event(Box::new(create)))
            .await
            .unwrap();
    }
    let name = EventWrite {
        event: PersistedEvent {
            room_id: "!a:localhost".into(),
            ..state_event(3, "m.room.name", "", r#"{"content":{"name":"Ops"}}"#)
        },
        ..Default::default()
    };
    store.append(WriteOp::Event(Box::new(name))).await.unwrap();
    let joined = EventWrite {
        event: PersistedEvent {
            room_id: "!a:localhost".into(),
            ..state_event(
                4,
                "m.room.member",
                "@alice:localhost",
                r#"{"membership":"join"}"#,
            )
        },
        membership: Some(("@alice:localhost".into(), "join".into())),
        ..Default::default()
    };
    store
        .append(WriteOp::Event(Box::new(joined)))
        .await
        .unwrap();
    let mut n = 10;
    for (room, day, kind, count) in [
        ("!a:localhost", 5, "m.room.message", 3),
        ("!a:localhost", 6, "m.room.encrypted", 2),
        ("!a:localhost", 6, "m.reaction", 4),
        ("!b:localhost", 6, "m.sticker", 1),
    ] {
        for _ in 0..count {
            n += 1;
            store.append(event_on(n, room, day, kind)).await.unwrap();
        }
    }
    assert_eq!(
        store.messages_per_day(5).await.unwrap(),
        [
            converge_store::DayCount { day: 5, count: 3 },
            converge_store::DayCount { day: 6, count: 3 }
        ],
        "reactions are events, not messages"
    );
    assert_eq!(
        store.top_rooms(0, 10).await.unwrap(),
        [
            ("!a:localhost".to_owned(), 5),
            ("!b:localhost".to_owned(), 1)
        ]
    );
    assert_eq!(
        store.top_rooms(6, 1).await.unwrap(),
        [("!a:localhost".to_owned(), 2)]
    );
    assert_eq!(
        store
            .room_messages_per_day("!a:localhost", 6)
            .await
            .unwrap(),
        [converge_store::DayCount { day: 6, count: 2 }]
    );
    let rooms = store.list_rooms(None, 10).await.unwrap();
    assert_eq!(rooms.len(), 2);
    let a = &rooms[0];
    assert_eq!(a.room_id, "!a:localhost");
    assert_eq!(a.events, 3 + 9, "create, name, join and nine more");
    assert_eq!(a.joined_members, 1);
    assert!(a.name_event.as_deref().is_some_and(|j| j.contains("Ops")));
    assert!(a.alias_event.is_none());
    assert!(!a.blocked);
    assert_eq!(
        store.list_rooms(Some("!a:localhost"), 10).await.unwrap()[0].room_id,
        "!b:localhost"
    );
    store
        .block_room("!b:localhost", "@root:localhost", 9)
        .await
        .unwrap();
    store
        .block_room("!b:localhost", "@root:localhost", 10)
        .await
        .unwrap();
    assert!(store.room_blocked("!b:localhost").await.unwrap());
    assert!(!store.room_blocked("!a:localhost").await.unwrap());
    assert!(store.list_rooms(None, 10).await.unwrap()[1].blocked);

    // Named counters add up per day; media totals count stored files only.
    store
        .add_counters(&[(6, "hook_posts", 2), (6, "commands", 1)])
        .await
        .unwrap();
    store
        .add_counters(&[(6, "hook_posts", 3), (7, "hook_posts", 1)])
        .await
        .unwrap();
    store.add_counters(&[]).await.unwrap();
    assert_eq!(
        store.counters(6).await.unwrap(),
        [
            (6, "commands".to_owned(), 1),
            (6, "hook_posts".to_owned(), 5),
            (7, "hook_posts".to_owned(), 1)
        ]
    );
    store
        .insert_media(&media("M1", Some("a"), 1))
        .await
        .unwrap();
    store
        .insert_media(&media("M2", Some("b"), 1))
        .await
        .unwrap();
    store
        .insert_media(&media("PENDING", None, 1))
        .await
        .unwrap();
    assert_eq!(store.media_totals().await.unwrap(), (2, 20));
}

async fn appservice_queues_fix_their_transactions(h: &Harness) {
    let store = &h.store;
    // State is made once, where the stream was when the appservice first came.
    let state = store
        .appservice_state("bridge", StreamPos(7))
        .await
        .unwrap();
    assert_eq!(
        (state.stream_pos, state.next_txn, state.txn_last_pos),
        (StreamPos(7), 1, None)
    );
    let again = store
        .appservice_state("bridge", StreamPos(99))
        .await
        .unwrap();
    assert_eq!(again.stream_pos, StreamPos(7), "made once");

    store
        .queue_for_appservice(
            "bridge",
            &[
                (StreamPos(8), QueuedKind::Event),
                (StreamPos(9), QueuedKind::Receipt),
            ],
            StreamPos(10),
        )
        .await
        .unwrap();
    // Queuing the same position again changes nothing, and the filler never goes back.
    store
        .queue_for_appservice("bridge", &[(StreamPos(8), QueuedKind::Event)], StreamPos(9))
        .await
        .unwrap();
    store
        .queue_for_appservice(
            "bridge",
            &[
                (StreamPos(12), QueuedKind::ToDevice),
                (StreamPos(13), QueuedKind::DeviceList),
            ],
            StreamPos(13),
        )
        .await
        .unwrap();
    let state = store
        .appservice_state("bridge", StreamPos(0))
        .await
        .unwrap();
    assert_eq!(state.stream_pos, StreamPos(13));
    assert_eq!(store.appservice_queue_len("bridge").await.unwrap(), 4);
    assert_eq!(
        store.appservice_queue("bridge", None, 2).await.unwrap(),
        [
            (StreamPos(8), QueuedKind::Event),
            (StreamPos(9), QueuedKind::Receipt)
        ]
    );

    // The transaction being sent is fixed at its first rows until it is taken.
    let (txn, last) = store
        .begin_appservice_txn("bridge", StreamPos(9))
        .await
        .unwrap();
    assert_eq!((txn, last), (1, StreamPos(9)));
    let (txn, last) = store
        .begin_appservice_txn("bridge", StreamPos(13))
        .await
        .unwrap();
    assert_eq!(
        (txn, last),
        (1, StreamPos(9)),
        "a retry sends the same rows"
    );
    store
        .fail_appservice_txn("bridge", 5_000, "connection refused")
        .await
        .unwrap();
    let failing = store
        .appservice_state("bridge", StreamPos(0))
        .await
        .unwrap();
    assert_eq!((failing.failures, failing.retry_at), (1, 5_000));
    assert_eq!(failing.last_error.as_deref(), Some("connection refused"));
    store.appservice_retry_now("bridge").await.unwrap();
    assert_eq!(
        store
            .appservice_state("bridge", StreamPos(0))
            .await
            .unwrap()
            .retry_at,
        0
    );

    store
        .complete_appservice_txn("bridge", 2, &[], 1)
        .await
        .unwrap();
    assert_eq!(
        store.appservice_queue_len("bridge").await.unwrap(),
        4,
        "not the one being sent"
    );
    store
        .complete_appservice_txn("bridge", 1, &[], 42)
        .await
        .unwrap();
    let done = store
        .appservice_state("bridge", StreamPos(0))
        .await
        .unwrap();
    assert_eq!(
        (done.next_txn, done.txn_last_pos, done.failures),
        (2, None, 0)
    );
    assert_eq!((done.last_success_ts, done.sent_txns), (Some(42), 1));
    assert_eq!(
        store.appservice_queue("bridge", None, 10).await.unwrap(),
        [
            (StreamPos(12), QueuedKind::ToDevice),
            (StreamPos(13), QueuedKind::DeviceList)
        ]
    );
    assert_eq!(store.appservice_states().await.unwrap().len(), 1);

    // What the filler reads by position: events, receipts, to-device messages, device lists.
    let pos = store.append(write(event(1))).await.unwrap();
    assert_eq!(
        store.event_at(pos).await.unwrap().unwrap().event_id,
        "$event1"
    );
    assert!(
        store
            .event_at(StreamPos(pos.0 + 100))
            .await
            .unwrap()
            .is_none()
    );
    let receipt = store
        .append(WriteOp::Receipt {
            room_id: "!room:localhost".into(),
            receipt_type: "m.read".into(),
            user_id: "@bob:localhost".into(),
            thread_id: String::new(),
            event_id: "$event1".into(),
            ts: 3,
        })
        .await
        .unwrap();
    assert_eq!(
        store.receipt_at(receipt).await.unwrap().unwrap().user_id,
        "@bob:localhost"
    );
    assert_eq!(store.receipts_between(pos, receipt).await.unwrap().len(), 1);
    let to_device = store
        .append(WriteOp::ToDevice {
            sender: "@alice:localhost".into(),
            event_type: "m.room_key_request".into(),
            messages: vec![
                ("@puppet:localhost".into(), "PDEV".into(), "{}".into()),
                ("@other:localhost".into(), "ODEV".into(), "{}".into()),
            ],
            txn: None,
        })
        .await
        .unwrap();
    let messages = store.to_device_at(to_device).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        store
            .to_device_between(receipt, to_device)
            .await
            .unwrap()
            .len(),
        2
    );
    let change = store
        .append(WriteOp::DeviceListChange {
            user_id: "@alice:localhost".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .device_list_changes_between(to_device, change)
            .await
            .unwrap(),
        [(change, "@alice:localhost".to_owned())]
    );
    // A transaction that carried a to-device message removes it.
    store
        .queue_for_appservice("bridge", &[(to_device, QueuedKind::ToDevice)], to_device)
        .await
        .unwrap();
    let (txn, _) = store
        .begin_appservice_txn("bridge", to_device)
        .await
        .unwrap();
    store
        .complete_appservice_txn(
            "bridge",
            txn,
            &[("@puppet:localhost".into(), "PDEV".into(), to_device)],
            50,
        )
        .await
        .unwrap();
    let left = store.to_device_at(to_device).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].user_id, "@other:localhost");

    // Users an appservice made are marked; devices it makes need no token.
    let mut puppet = new_user("puppet");
    puppet.appservice_id = Some("bridge".into());
    store.create_user(&puppet, None, None).await.unwrap();
    assert_eq!(
        store
            .user("puppet")
            .await
            .unwrap()
            .unwrap()
            .appservice_id
            .as_deref(),
        Some("bridge")
    );
    assert!(
        store
            .upsert_device("puppet", "PDEV", Some("Bridge"), 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .upsert_device("puppet", "PDEV", Some("Renamed"), 2)
            .await
            .unwrap()
    );
    let device = store.device("puppet", "PDEV").await.unwrap().unwrap();
    assert_eq!(device.display_name.as_deref(), Some("Renamed"));
}

async fn room_list_bumps_and_events_by_id(h: &Harness) {
    let store = &h.store;
    let in_room = |mut e: PersistedEvent, room: &str| {
        e.room_id = room.to_owned();
        WriteOp::Event(Box::new(EventWrite {
            event: e,
            ..Default::default()
        }))
    };
    let join = |n: usize, room: &str| {
        let WriteOp::Event(mut write) = membership(n, "@alice:localhost", "join") else {
            unreachable!()
        };
        write.event.room_id = room.to_owned();
        WriteOp::Event(write)
    };
    store.append(join(1, "!a:localhost")).await.unwrap();
    store.append(join(2, "!b:localhost")).await.unwrap();
    store.append(join(3, "!quiet:localhost")).await.unwrap();
    let message_a = store
        .append(in_room(event(4), "!a:localhost"))
        .await
        .unwrap();
    let message_b = store
        .append(in_room(event(5), "!b:localhost"))
        .await
        .unwrap();
    // Newer events of other types do not bump a room.
    let mut topic = state_event(6, "m.room.topic", "", r#"{"topic":"t"}"#);
    topic.room_id = "!a:localhost".to_owned();
    store.append(in_room(topic, "!a:localhost")).await.unwrap();

    let bumps = store
        .bump_positions("@alice:localhost", &["m.room.message", "m.room.encrypted"])
        .await
        .unwrap();
    assert_eq!(bumps.get("!a:localhost"), Some(&message_a));
    assert_eq!(bumps.get("!b:localhost"), Some(&message_b));
    assert_eq!(bumps.get("!quiet:localhost"), None, "no bumping event");
    assert!(
        store
            .bump_positions("@nobody:localhost", &["m.room.message"])
            .await
            .unwrap()
            .is_empty()
    );

    let found = store
        .events_by_id(&["$event5", "$unknown", "$event4"])
        .await
        .unwrap();
    let ids: Vec<&str> = found.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        ["$event4", "$event5"],
        "in stream order, unknown IDs skipped"
    );
    // More IDs than one statement binds.
    let many: Vec<String> = (0..1_200)
        .map(|i| format!("$missing{i}"))
        .chain(["$event4".to_owned()])
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(store.events_by_id(&many).await.unwrap().len(), 1);
}
