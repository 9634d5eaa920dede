//! The store conformance suite: every backend runs exactly these tests.
//!
//! SQLite always runs; PostgreSQL runs when `CONVERGE_TEST_POSTGRES_URL` is set (CI sets
//! it), each test in a schema of its own.

use std::collections::HashSet;

use converge_core::{PersistedEvent, StreamPos};
use converge_store::{
    DeviceRow, Direction, EventWrite, MediaRow, NewRoom, NewSession, NewUser, Redaction,
    RegistrationToken, Store, StoreError, StoreOptions, SubscriptionRow, TelemetryRow,
    ThumbnailRow, WebhookRow, WriteOp, testing,
};

/// A store under test plus whatever keeps it alive (a temp dir) and a way to reopen it.
struct Harness {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn reopen(&self) -> Store {
        Store::open(&self.url, StoreOptions::default())
            .await
            .expect("reopen store")
    }
}

async fn sqlite() -> Option<Harness> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("converge.db").display());
    let store = Store::open(&url, StoreOptions::default())
        .await
        .expect("open sqlite");
    Some(Harness {
        store,
        url,
        _dir: Some(dir),
    })
}

async fn postgres() -> Option<Harness> {
    let base = testing::postgres_base_url()?;
    let url = testing::fresh_postgres_url(&base)
        .await
        .expect("create test schema");
    let store = Store::open(&url, StoreOptions::default())
        .await
        .expect("open postgres");
    Some(Harness {
        store,
        url,
        _dir: None,
    })
}

/// Generates one `#[tokio::test]` per backend for each suite function.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let harness = super::sqlite().await.expect("sqlite always runs");
                    super::$test(&harness).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(harness) = super::postgres().await else {
                        eprintln!("skipped: set {} to run PostgreSQL tests", converge_store::testing::POSTGRES_URL_VAR);
                        return;
                    };
                    super::$test(&harness).await;
                }
            )*
        }
    };
}

conformance!(
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
    gateway_feed_sees_joined_rooms_and_own_invites,
    outbox_and_reader_position_move_together,
    webhooks_devices_and_bounded_telemetry,
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

async fn gateway_feed_sees_joined_rooms_and_own_invites(h: &Harness) {
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

    assert_eq!(store.gateway_cursor("bot").await.unwrap(), None);
    store.set_gateway_cursor("bot", invite).await.unwrap();
    store
        .set_gateway_cursor("bot", StreamPos(invite.0 + 1))
        .await
        .unwrap();
    assert_eq!(
        store.gateway_cursor("bot").await.unwrap(),
        Some(StreamPos(invite.0 + 1))
    );
}

async fn outbox_and_reader_position_move_together(h: &Harness) {
    let store = &h.store;
    let sub = SubscriptionRow {
        sub_id: "sub1".into(),
        room_id: "!room:localhost".into(),
        url: "https://example.org/hook".into(),
        secret: "secret".into(),
        event_types: vec!["m.room.message".into(), "m.reaction".into()],
        pattern: Some("^!deploy".into()),
        created_by: "@alice:localhost".into(),
        created_ts: 7,
        after_pos: StreamPos(2),
        failures: 0,
        retry_at: 0,
        last_error: None,
    };
    store.insert_subscription(&sub).await.unwrap();
    assert_eq!(
        store.subscription("sub1").await.unwrap().as_ref(),
        Some(&sub)
    );
    assert_eq!(
        store.subscriptions(Some("!room:localhost")).await.unwrap(),
        std::slice::from_ref(&sub)
    );
    assert_eq!(
        store
            .subscriptions(Some("!elsewhere:localhost"))
            .await
            .unwrap(),
        []
    );
    assert_eq!(store.subscriptions(None).await.unwrap().len(), 1);

    let queued = [
        ("sub1".to_owned(), StreamPos(3), "$e3".to_owned()),
        ("sub1".to_owned(), StreamPos(5), "$e5".to_owned()),
    ];
    store
        .fill_outbox("out", StreamPos(5), &queued)
        .await
        .unwrap();
    // Filling again (a repeat after a crash) queues nothing twice.
    store
        .fill_outbox("out", StreamPos(5), &queued)
        .await
        .unwrap();
    assert_eq!(
        store.gateway_cursor("out").await.unwrap(),
        Some(StreamPos(5))
    );
    assert_eq!(store.outbox_len("sub1").await.unwrap(), 2);
    assert_eq!(
        store.outbox_next("sub1").await.unwrap(),
        Some((StreamPos(3), "$e3".into()))
    );

    // The filler reads only the subscribed rooms, within the bounds it is given.
    store.append(write(event(1))).await.unwrap();
    let elsewhere = PersistedEvent {
        room_id: "!elsewhere:localhost".into(),
        ..event(2)
    };
    store.append(write(elsewhere)).await.unwrap();
    let third = store.append(write(event(3))).await.unwrap();
    let read = store
        .events_in_subscribed_rooms(StreamPos(0), third, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = read.iter().map(|(_, e)| e.event_id.as_str()).collect();
    assert_eq!(ids, ["$event1", "$event3"]);
    let read = store
        .events_in_subscribed_rooms(StreamPos(0), StreamPos(third.0 - 1), 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 1, "the upper bound holds");

    store
        .outbox_failed("sub1", 99, "connection refused")
        .await
        .unwrap();
    store
        .outbox_failed("sub1", 120, "connection refused")
        .await
        .unwrap();
    let failing = store.subscription("sub1").await.unwrap().unwrap();
    assert_eq!((failing.failures, failing.retry_at), (2, 120));
    assert_eq!(failing.last_error.as_deref(), Some("connection refused"));
    assert_eq!(
        store.outbox_next("sub1").await.unwrap(),
        Some((StreamPos(3), "$e3".into())),
        "kept on failure"
    );

    store.outbox_delivered("sub1", StreamPos(3)).await.unwrap();
    let healed = store.subscription("sub1").await.unwrap().unwrap();
    assert_eq!(
        (healed.failures, healed.retry_at, healed.last_error),
        (0, 0, None)
    );
    assert_eq!(
        store.outbox_next("sub1").await.unwrap(),
        Some((StreamPos(5), "$e5".into()))
    );

    // The queue survives a reopen, and goes with its subscription.
    let reopened = h.reopen().await;
    assert_eq!(reopened.outbox_len("sub1").await.unwrap(), 1);
    assert!(reopened.delete_subscription("sub1").await.unwrap());
    assert!(!reopened.delete_subscription("sub1").await.unwrap());
    assert_eq!(reopened.outbox_len("sub1").await.unwrap(), 0);
    assert_eq!(reopened.outbox_next("sub1").await.unwrap(), None);
    // A filler that read the subscription before it was deleted queues nothing for it.
    reopened
        .fill_outbox("out", StreamPos(9), &queued)
        .await
        .unwrap();
    assert_eq!(reopened.outbox_len("sub1").await.unwrap(), 0);
    assert_eq!(
        reopened.gateway_cursor("out").await.unwrap(),
        Some(StreamPos(9))
    );
}

async fn webhooks_devices_and_bounded_telemetry(h: &Harness) {
    let store = &h.store;
    let hook = WebhookRow {
        hook_id: "hook1".into(),
        room_id: "!room:localhost".into(),
        user_id: "@hook-hook1:localhost".into(),
        secret: "s".into(),
        signed: true,
        created_by: "@alice:localhost".into(),
        created_ts: 3,
    };
    store.insert_webhook(&hook).await.unwrap();
    assert!(store.insert_webhook(&hook).await.is_err(), "IDs are unique");
    assert_eq!(store.webhook("hook1").await.unwrap().as_ref(), Some(&hook));
    assert_eq!(
        store.room_webhooks("!room:localhost").await.unwrap(),
        std::slice::from_ref(&hook)
    );
    assert!(store.delete_webhook("hook1").await.unwrap());
    assert_eq!(store.webhook("hook1").await.unwrap(), None);

    let device = DeviceRow {
        device_id: "kitchen".into(),
        room_id: "!room:localhost".into(),
        user_id: "@device-kitchen:localhost".into(),
        alerts: "[]".into(),
        secret_hash: Some("5e88".into()),
        created_by: "@alice:localhost".into(),
        created_ts: 4,
    };
    store.insert_device(&device).await.unwrap();
    store
        .set_device_alerts("kitchen", r#"[{"field":"temp"}]"#)
        .await
        .unwrap();
    let stored = store.device_row("kitchen").await.unwrap().unwrap();
    assert_eq!(stored.alerts, r#"[{"field":"temp"}]"#);
    assert_eq!(
        store
            .device_rows(Some("!room:localhost"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.device_rows(None).await.unwrap().len(), 1);

    let sample = |device: &str, ts: i64| TelemetryRow {
        device_id: device.into(),
        ts,
        payload: format!(r#"{{"temp":{ts}}}"#),
    };
    let batch: Vec<TelemetryRow> = (1..=5)
        .map(|ts| sample("kitchen", ts))
        .chain([sample("other", 1)])
        .collect();
    store.append_telemetry(&batch, 3).await.unwrap();
    let kept = store.telemetry("kitchen", 0, 100, 100).await.unwrap();
    assert_eq!(
        kept.iter().map(|s| s.ts).collect::<Vec<_>>(),
        [3, 4, 5],
        "only the newest 3 kept"
    );
    assert_eq!(kept[2].payload, r#"{"temp":5}"#);
    let range = store.telemetry("kitchen", 4, 4, 100).await.unwrap();
    assert_eq!(range, [sample("kitchen", 4)]);
    assert_eq!(
        store.telemetry("kitchen", 0, 100, 1).await.unwrap().len(),
        1,
        "limit"
    );
    assert_eq!(
        store.telemetry("other", 0, 100, 100).await.unwrap().len(),
        1
    );

    assert!(store.delete_device("kitchen").await.unwrap());
    assert_eq!(store.telemetry("kitchen", 0, 100, 100).await.unwrap(), []);
    assert_eq!(store.device_row("kitchen").await.unwrap(), None);
}
