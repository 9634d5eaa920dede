//! The gateways' own tables on both backends: the webhook registry and outbox with the
//! reader position, and the device registry with bounded telemetry. SQLite always runs;
//! PostgreSQL when `CONVERGE_TEST_POSTGRES_URL` is set, each test in a schema of its own.

use converge_core::StreamPos;
use converge_gateways::feed::{self, cursor, set_cursor};
use converge_gateways::mqtt::tables::{self as mqtt, DeviceRow, TelemetryRow};
use converge_gateways::webhooks::tables::{self as webhooks, SubscriptionRow, WebhookRow};
use converge_store::{Migration, Statement, Tables, testing};

/// A store under test, and a way to open it again.
type Harness = testing::TestStore;

/// A component's tables in the store under test.
async fn tables(h: &Harness, name: &'static str, migrations: &[Migration]) -> Tables {
    h.store.tables(name, migrations).await.unwrap()
}

/// The same tables after a restart.
async fn reopen(h: &Harness, name: &'static str, migrations: &[Migration]) -> Tables {
    h.reopen().await.tables(name, migrations).await.unwrap()
}

converge_store::on_both_backends!(
    reader_positions_are_kept,
    outbox_and_reader_position_move_together,
    webhooks_devices_and_bounded_telemetry,
);

async fn reader_positions_are_kept(h: &Harness) {
    let tables = tables(h, feed::COMPONENT, feed::MIGRATIONS).await;
    assert_eq!(cursor(&tables, "bot").await.unwrap(), None);
    tables
        .transaction(&[set_cursor("bot", StreamPos(4))])
        .await
        .unwrap();
    tables
        .transaction(&[set_cursor("bot", StreamPos(5))])
        .await
        .unwrap();
    let reopened = reopen(h, feed::COMPONENT, feed::MIGRATIONS).await;
    assert_eq!(cursor(&reopened, "bot").await.unwrap(), Some(StreamPos(5)));
}

/// What the outbox filler commits: the deliveries and its position, together.
async fn fill(store: &webhooks::Store, pos: StreamPos, queued: &[(&str, StreamPos, &str)]) {
    let mut statements: Vec<Statement> = queued
        .iter()
        .map(|(sub, at, event)| webhooks::Store::queue_delivery(sub, *at, event))
        .collect();
    statements.push(set_cursor("out", pos));
    store.tables().transaction(&statements).await.unwrap();
}

async fn outbox_and_reader_position_move_together(h: &Harness) {
    tables(h, feed::COMPONENT, feed::MIGRATIONS).await;
    let store = webhooks::Store::new(tables(h, "webhooks", webhooks::MIGRATIONS).await);
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
        last_success_ts: None,
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

    let queued = [("sub1", StreamPos(3), "$e3"), ("sub1", StreamPos(5), "$e5")];
    fill(&store, StreamPos(5), &queued).await;
    // Filling again (a repeat after a crash) queues nothing twice.
    fill(&store, StreamPos(5), &queued).await;
    assert_eq!(
        cursor(store.tables(), "out").await.unwrap(),
        Some(StreamPos(5))
    );
    assert_eq!(store.outbox_len("sub1").await.unwrap(), 2);
    assert_eq!(
        store.outbox_next("sub1").await.unwrap(),
        Some((StreamPos(3), "$e3".into()))
    );

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

    store
        .outbox_delivered("sub1", StreamPos(3), 42)
        .await
        .unwrap();
    let healed = store.subscription("sub1").await.unwrap().unwrap();
    assert_eq!(
        (healed.failures, healed.retry_at, healed.last_error),
        (0, 0, None)
    );
    assert_eq!(healed.last_success_ts, Some(42));
    store.outbox_failed("sub1", 9_000, "timeout").await.unwrap();
    assert!(store.retry_now("sub1").await.unwrap());
    assert_eq!(
        store.subscription("sub1").await.unwrap().unwrap().retry_at,
        0
    );
    assert!(!store.retry_now("nope").await.unwrap());
    assert_eq!(
        store.outbox_next("sub1").await.unwrap(),
        Some((StreamPos(5), "$e5".into()))
    );

    // The queue survives a reopen, and goes with its subscription.
    let reopened = webhooks::Store::new(reopen(h, "webhooks", webhooks::MIGRATIONS).await);
    assert_eq!(reopened.outbox_len("sub1").await.unwrap(), 1);
    assert!(reopened.delete_subscription("sub1").await.unwrap());
    assert!(!reopened.delete_subscription("sub1").await.unwrap());
    assert_eq!(reopened.outbox_len("sub1").await.unwrap(), 0);
    assert_eq!(reopened.outbox_next("sub1").await.unwrap(), None);
    // A filler that read the subscription before it was deleted queues nothing for it.
    fill(&reopened, StreamPos(9), &queued).await;
    assert_eq!(reopened.outbox_len("sub1").await.unwrap(), 0);
    assert_eq!(
        cursor(reopened.tables(), "out").await.unwrap(),
        Some(StreamPos(9))
    );
}

async fn webhooks_devices_and_bounded_telemetry(h: &Harness) {
    let hooks = webhooks::Store::new(tables(h, "webhooks", webhooks::MIGRATIONS).await);
    let hook = WebhookRow {
        hook_id: "hook1".into(),
        room_id: "!room:localhost".into(),
        user_id: "@hook-hook1:localhost".into(),
        secret: "s".into(),
        signed: true,
        created_by: "@alice:localhost".into(),
        created_ts: 3,
    };
    hooks.insert_webhook(&hook).await.unwrap();
    assert!(hooks.insert_webhook(&hook).await.is_err(), "IDs are unique");
    assert_eq!(hooks.webhook("hook1").await.unwrap().as_ref(), Some(&hook));
    assert_eq!(
        hooks.room_webhooks("!room:localhost").await.unwrap(),
        std::slice::from_ref(&hook)
    );
    assert!(hooks.delete_webhook("hook1").await.unwrap());
    assert_eq!(hooks.webhook("hook1").await.unwrap(), None);

    let store = mqtt::Store::new(tables(h, "mqtt", mqtt::MIGRATIONS).await);
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
        .set_alerts("kitchen", r#"[{"field":"temp"}]"#)
        .await
        .unwrap();
    let stored = store.device("kitchen").await.unwrap().unwrap();
    assert_eq!(stored.alerts, r#"[{"field":"temp"}]"#);
    assert_eq!(stored.secret_hash.as_deref(), Some("5e88"));
    assert_eq!(
        store.devices(Some("!room:localhost")).await.unwrap().len(),
        1
    );
    assert_eq!(store.devices(None).await.unwrap().len(), 1);

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
    assert_eq!(store.device("kitchen").await.unwrap(), None);
}
