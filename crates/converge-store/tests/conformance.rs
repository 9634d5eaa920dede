//! The store conformance suite: every backend runs exactly these tests.
//!
//! SQLite always runs; PostgreSQL runs when `CONVERGE_TEST_POSTGRES_URL` is set (CI sets
//! it), each test in a schema of its own.

use std::collections::HashSet;

use converge_core::{PersistedEvent, StreamPos};
use converge_store::{
    NewSession, NewUser, RegistrationToken, Store, StoreError, StoreOptions, WriteOp, testing,
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
    }
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
        acked.push(store.append(WriteOp::Event(event(n))).await.unwrap());
    }
    // Sequential writes get consecutive, increasing positions.
    let expected: Vec<_> = (1..=20).map(|i| StreamPos(start.0 + i)).collect();
    assert_eq!(acked, expected);
    position.changed().await.ok();
    assert_eq!(*position.borrow(), StreamPos(start.0 + 20));
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
            tokio::spawn(async move { (n, store.append(WriteOp::Event(event(n))).await.unwrap()) })
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
    store.append(WriteOp::Event(event(0))).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let store = store.clone();
            // Write 25 repeats the already stored event 0.
            let e = if n == 25 { event(0) } else { event(n + 1) };
            tokio::spawn(async move { store.append(WriteOp::Event(e)).await })
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
            tokio::spawn(async move { store.append(WriteOp::Event(event(n))).await.unwrap() })
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
            tokio::spawn(async move { store.append(WriteOp::Event(event(n))).await })
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
        store.append(WriteOp::Event(event(999))).await,
        Err(StoreError::Closed)
    ));
    // Every acknowledged write survived; positions continue after a restart.
    let reopened = h.reopen().await;
    let stored = reopened.events_after(StreamPos(0), 1_000).await.unwrap();
    assert_eq!(stored.len(), acked);
    let next = reopened.append(WriteOp::Event(event(1_000))).await.unwrap();
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
