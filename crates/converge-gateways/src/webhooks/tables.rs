//! The webhook gateway's tables: incoming hooks, outgoing subscriptions and their outbox.

use converge_core::StreamPos;
use converge_service::Result;
use converge_store::{Migration, Row, Statement, Tables, Value};

/// The tables, as migrations of the component `webhooks`. They are created only where
/// missing, since databases made before the gateways owned their tables have them.
pub const MIGRATIONS: &[Migration] = &[
    Migration::both(
        1,
        "
        CREATE TABLE IF NOT EXISTS webhooks (
            hook_id TEXT PRIMARY KEY NOT NULL, room_id TEXT NOT NULL, user_id TEXT NOT NULL,
            secret TEXT NOT NULL, signed BOOLEAN NOT NULL, created_by TEXT NOT NULL,
            created_ts BIGINT NOT NULL);
        CREATE INDEX IF NOT EXISTS webhooks_room ON webhooks (room_id);
        CREATE TABLE IF NOT EXISTS webhook_subscriptions (
            sub_id TEXT PRIMARY KEY NOT NULL, room_id TEXT NOT NULL, url TEXT NOT NULL,
            secret TEXT NOT NULL, event_types TEXT NOT NULL, pattern TEXT,
            created_by TEXT NOT NULL, created_ts BIGINT NOT NULL, after_pos BIGINT NOT NULL,
            failures BIGINT NOT NULL DEFAULT 0, retry_at BIGINT NOT NULL DEFAULT 0,
            last_error TEXT);
        CREATE INDEX IF NOT EXISTS webhook_subscriptions_room ON webhook_subscriptions (room_id);
        CREATE TABLE IF NOT EXISTS webhook_outbox (
            sub_id TEXT NOT NULL, stream_pos BIGINT NOT NULL, event_id TEXT NOT NULL,
            PRIMARY KEY (sub_id, stream_pos));",
    ),
    // When each subscription last delivered something, for its status.
    Migration::both(
        2,
        "ALTER TABLE webhook_subscriptions ADD COLUMN last_success_ts BIGINT;",
    ),
];

/// An incoming webhook: POSTs to it become messages of `user_id` in `room_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRow {
    pub hook_id: String,
    pub room_id: String,
    pub user_id: String,
    pub secret: String,
    /// Whether every POST must carry a valid signature.
    pub signed: bool,
    pub created_by: String,
    pub created_ts: i64,
}

/// An outgoing webhook: a room's events POSTed to `url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub sub_id: String,
    pub room_id: String,
    pub url: String,
    pub secret: String,
    /// Event types delivered; empty means every type.
    pub event_types: Vec<String>,
    /// A regular expression a message's `body` must match, if set.
    pub pattern: Option<String>,
    pub created_by: String,
    pub created_ts: i64,
    /// Only events after this position are delivered.
    pub after_pos: StreamPos,
    /// Failed attempts in a row, and when the next attempt is due (ms since the epoch).
    pub failures: i64,
    pub retry_at: i64,
    pub last_error: Option<String>,
    /// When a delivery last succeeded (ms since the epoch), if ever.
    pub last_success_ts: Option<i64>,
}

const WEBHOOK_COLUMNS: &str = "hook_id, room_id, user_id, secret, signed, created_by, created_ts";
const SUBSCRIPTION_COLUMNS: &str = "sub_id, room_id, url, secret, event_types, pattern, \
     created_by, created_ts, after_pos, failures, retry_at, last_error, last_success_ts";

fn webhook(row: &Row) -> Result<WebhookRow> {
    Ok(WebhookRow {
        hook_id: row.get("hook_id")?,
        room_id: row.get("room_id")?,
        user_id: row.get("user_id")?,
        secret: row.get("secret")?,
        signed: row.get("signed")?,
        created_by: row.get("created_by")?,
        created_ts: row.get("created_ts")?,
    })
}

fn subscription(row: &Row) -> Result<SubscriptionRow> {
    let types: String = row.get("event_types")?;
    Ok(SubscriptionRow {
        sub_id: row.get("sub_id")?,
        room_id: row.get("room_id")?,
        url: row.get("url")?,
        secret: row.get("secret")?,
        event_types: types
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        pattern: row.get("pattern")?,
        created_by: row.get("created_by")?,
        created_ts: row.get("created_ts")?,
        after_pos: StreamPos(row.get("after_pos")?),
        failures: row.get("failures")?,
        retry_at: row.get("retry_at")?,
        last_error: row.get("last_error")?,
        last_success_ts: row.get("last_success_ts")?,
    })
}

/// The webhook gateway's rows, over its tables.
#[derive(Clone)]
pub struct Store {
    tables: Tables,
}

impl Store {
    pub fn new(tables: Tables) -> Self {
        Self { tables }
    }

    /// The tables themselves, for the outbox filler's transaction.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub async fn insert_webhook(&self, hook: &WebhookRow) -> Result<()> {
        self.tables
            .execute(
                "INSERT INTO webhooks (hook_id, room_id, user_id, secret, signed, created_by, \
                 created_ts) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    (&hook.hook_id).into(),
                    (&hook.room_id).into(),
                    (&hook.user_id).into(),
                    (&hook.secret).into(),
                    hook.signed.into(),
                    (&hook.created_by).into(),
                    hook.created_ts.into(),
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn webhook(&self, hook_id: &str) -> Result<Option<WebhookRow>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE hook_id = $1");
        let row = self.tables.query_opt(&sql, &[hook_id.into()]).await?;
        row.as_ref().map(webhook).transpose()
    }

    /// A room's incoming webhooks, oldest first.
    pub async fn room_webhooks(&self, room_id: &str) -> Result<Vec<WebhookRow>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE room_id = $1 ORDER BY created_ts, hook_id"
        );
        let rows = self.tables.query(&sql, &[room_id.into()]).await?;
        rows.iter().map(webhook).collect()
    }

    /// Deletes a webhook; `false` if there was none.
    pub async fn delete_webhook(&self, hook_id: &str) -> Result<bool> {
        let n = self
            .tables
            .execute("DELETE FROM webhooks WHERE hook_id = $1", &[hook_id.into()])
            .await?;
        Ok(n == 1)
    }

    pub async fn insert_subscription(&self, sub: &SubscriptionRow) -> Result<()> {
        self.tables
            .execute(
                "INSERT INTO webhook_subscriptions (sub_id, room_id, url, secret, event_types, \
                 pattern, created_by, created_ts, after_pos, failures, retry_at, last_error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    (&sub.sub_id).into(),
                    (&sub.room_id).into(),
                    (&sub.url).into(),
                    (&sub.secret).into(),
                    sub.event_types.join(",").into(),
                    (&sub.pattern).into(),
                    (&sub.created_by).into(),
                    sub.created_ts.into(),
                    sub.after_pos.0.into(),
                    sub.failures.into(),
                    sub.retry_at.into(),
                    (&sub.last_error).into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// Every outgoing webhook, or one room's, oldest first.
    pub async fn subscriptions(&self, room_id: Option<&str>) -> Result<Vec<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
             WHERE ($1 IS NULL OR room_id = $1) ORDER BY created_ts, sub_id"
        );
        let rows = self.tables.query(&sql, &[room_id.into()]).await?;
        rows.iter().map(subscription).collect()
    }

    pub async fn subscription(&self, sub_id: &str) -> Result<Option<SubscriptionRow>> {
        let sql =
            format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE sub_id = $1");
        let row = self.tables.query_opt(&sql, &[sub_id.into()]).await?;
        row.as_ref().map(subscription).transpose()
    }

    /// Deletes an outgoing webhook and everything still queued for it.
    pub async fn delete_subscription(&self, sub_id: &str) -> Result<bool> {
        let changed = self
            .tables
            .transaction(&[
                Statement::new(
                    "DELETE FROM webhook_outbox WHERE sub_id = $1",
                    vec![sub_id.into()],
                ),
                Statement::new(
                    "DELETE FROM webhook_subscriptions WHERE sub_id = $1",
                    vec![sub_id.into()],
                ),
            ])
            .await?;
        Ok(changed[1] == 1)
    }

    /// The statement that queues a delivery, unless its subscription was deleted meanwhile
    /// or it is queued already.
    pub fn queue_delivery(sub_id: &str, pos: StreamPos, event_id: &str) -> Statement {
        Statement::new(
            "INSERT INTO webhook_outbox (sub_id, stream_pos, event_id) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE sub_id = $1) \
             ON CONFLICT (sub_id, stream_pos) DO NOTHING",
            vec![sub_id.into(), pos.0.into(), event_id.into()],
        )
    }

    /// The oldest queued delivery of a subscription.
    pub async fn outbox_next(&self, sub_id: &str) -> Result<Option<(StreamPos, String)>> {
        let row = self
            .tables
            .query_opt(
                "SELECT stream_pos, event_id FROM webhook_outbox WHERE sub_id = $1 \
                 ORDER BY stream_pos LIMIT 1",
                &[sub_id.into()],
            )
            .await?;
        Ok(match row {
            Some(row) => Some((StreamPos(row.get("stream_pos")?), row.get("event_id")?)),
            None => None,
        })
    }

    /// How many deliveries are queued for a subscription.
    pub async fn outbox_len(&self, sub_id: &str) -> Result<i64> {
        let rows = self
            .tables
            .query(
                "SELECT COUNT(*) AS n FROM webhook_outbox WHERE sub_id = $1",
                &[sub_id.into()],
            )
            .await?;
        match rows.first() {
            Some(row) => Ok(row.get("n")?),
            None => Ok(0),
        }
    }

    /// Removes a delivered item and clears the subscription's failure count.
    pub async fn outbox_delivered(&self, sub_id: &str, pos: StreamPos, now: i64) -> Result<()> {
        self.tables
            .transaction(&[
                Statement::new(
                    "DELETE FROM webhook_outbox WHERE sub_id = $1 AND stream_pos = $2",
                    vec![sub_id.into(), pos.0.into()],
                ),
                Statement::new(
                    "UPDATE webhook_subscriptions SET failures = 0, retry_at = 0, \
                     last_error = NULL, last_success_ts = $2 WHERE sub_id = $1",
                    vec![sub_id.into(), now.into()],
                ),
            ])
            .await?;
        Ok(())
    }

    /// Makes a subscription waiting after failures due now; whether it exists.
    pub async fn retry_now(&self, sub_id: &str) -> Result<bool> {
        let changed = self
            .tables
            .execute(
                "UPDATE webhook_subscriptions SET retry_at = 0 WHERE sub_id = $1",
                &[Value::from(sub_id)],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Records a failed delivery attempt: one more failure, next try at `retry_at`.
    pub async fn outbox_failed(&self, sub_id: &str, retry_at: i64, error: &str) -> Result<()> {
        self.tables
            .execute(
                "UPDATE webhook_subscriptions SET failures = failures + 1, retry_at = $1, \
                 last_error = $2 WHERE sub_id = $3",
                &[retry_at.into(), error.into(), Value::from(sub_id)],
            )
            .await?;
        Ok(())
    }
}
