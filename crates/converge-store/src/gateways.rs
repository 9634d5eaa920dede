//! What gateways keep besides room events: read cursors over the event stream, registries
//! of webhooks and devices, the outgoing-webhook outbox and device telemetry.

use converge_core::{PersistedEvent, StreamPos};
use sqlx::Row;

use crate::db::on_pool;
use crate::events::{event_columns, event_from_row, fetch_events};
use crate::{Store, StoreError};

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
}

/// An IoT device bound to a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub device_id: String,
    pub room_id: String,
    pub user_id: String,
    /// The device's alert rules, as JSON.
    pub alerts: String,
    /// SHA-256 (hex) of the device's password for the embedded MQTT broker.
    pub secret_hash: Option<String>,
    pub created_by: String,
    pub created_ts: i64,
}

/// One telemetry sample: when it arrived (ms) and its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryRow {
    pub device_id: String,
    pub ts: i64,
    pub payload: String,
}

macro_rules! subscription_from_row {
    ($row:expr) => {{
        let row = $row;
        let types: String = row.try_get("event_types")?;
        SubscriptionRow {
            sub_id: row.try_get("sub_id")?,
            room_id: row.try_get("room_id")?,
            url: row.try_get("url")?,
            secret: row.try_get("secret")?,
            event_types: types
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            pattern: row.try_get("pattern")?,
            created_by: row.try_get("created_by")?,
            created_ts: row.try_get("created_ts")?,
            after_pos: StreamPos(row.try_get("after_pos")?),
            failures: row.try_get("failures")?,
            retry_at: row.try_get("retry_at")?,
            last_error: row.try_get("last_error")?,
        }
    }};
}

macro_rules! webhook_from_row {
    ($row:expr) => {{
        let row = $row;
        WebhookRow {
            hook_id: row.try_get("hook_id")?,
            room_id: row.try_get("room_id")?,
            user_id: row.try_get("user_id")?,
            secret: row.try_get("secret")?,
            signed: row.try_get("signed")?,
            created_by: row.try_get("created_by")?,
            created_ts: row.try_get("created_ts")?,
        }
    }};
}

macro_rules! device_from_row {
    ($row:expr) => {{
        let row = $row;
        DeviceRow {
            device_id: row.try_get("device_id")?,
            room_id: row.try_get("room_id")?,
            user_id: row.try_get("user_id")?,
            alerts: row.try_get("alerts")?,
            secret_hash: row.try_get("secret_hash")?,
            created_by: row.try_get("created_by")?,
            created_ts: row.try_get("created_ts")?,
        }
    }};
}

const SUBSCRIPTION_COLUMNS: &str = "sub_id, room_id, url, secret, event_types, pattern, \
     created_by, created_ts, after_pos, failures, retry_at, last_error";

impl Store {
    /// How far the reader `name` has got in the event stream.
    pub async fn gateway_cursor(&self, name: &str) -> Result<Option<StreamPos>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query("SELECT stream_pos FROM gateway_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?;
            Ok(match row { Some(row) => Some(StreamPos(row.try_get("stream_pos")?)), None => None })
        })
    }

    pub async fn set_gateway_cursor(&self, name: &str, pos: StreamPos) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "INSERT INTO gateway_cursors (name, stream_pos) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET stream_pos = EXCLUDED.stream_pos",
        )
        .bind(name).bind(pos.0).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Events after `after`, oldest first, in the rooms `user_id` is joined to now, plus
    /// membership events about `user_id` anywhere (so invites are seen).
    pub async fn events_visible_to(
        &self,
        user_id: &str,
        after: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE stream_pos > $1 AND (room_id IN \
             (SELECT room_id FROM memberships WHERE user_id = $2 AND membership = 'join') \
             OR (event_type = 'm.room.member' AND state_key = $2)) \
             ORDER BY stream_pos LIMIT $3"
        );
        fetch_events!(
            &self.inner.db,
            sqlx::query(SQL)
                .bind(after.0)
                .bind(user_id)
                .bind(i64::from(limit))
        )
    }

    /// Events with `after < position <= until`, oldest first, at most `limit`, in the
    /// rooms that have an outgoing webhook.
    pub async fn events_in_subscribed_rooms(
        &self,
        after: StreamPos,
        until: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE stream_pos > $1 AND stream_pos <= $2 AND room_id IN \
             (SELECT room_id FROM webhook_subscriptions) ORDER BY stream_pos LIMIT $3"
        );
        fetch_events!(
            &self.inner.db,
            sqlx::query(SQL)
                .bind(after.0)
                .bind(until.0)
                .bind(i64::from(limit))
        )
    }

    pub async fn insert_webhook(&self, hook: &WebhookRow) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "INSERT INTO webhooks (hook_id, room_id, user_id, secret, signed, created_by, created_ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&hook.hook_id).bind(&hook.room_id).bind(&hook.user_id).bind(&hook.secret)
        .bind(hook.signed).bind(&hook.created_by).bind(hook.created_ts)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    pub async fn webhook(&self, hook_id: &str) -> Result<Option<WebhookRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query("SELECT * FROM webhooks WHERE hook_id = $1")
                .bind(hook_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(webhook_from_row!(row)), None => None })
        })
    }

    /// A room's incoming webhooks, oldest first.
    pub async fn room_webhooks(&self, room_id: &str) -> Result<Vec<WebhookRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query("SELECT * FROM webhooks WHERE room_id = $1 ORDER BY created_ts, hook_id")
                .bind(room_id).fetch_all(pool).await?;
            let mut hooks = Vec::with_capacity(rows.len());
            for row in rows { hooks.push(webhook_from_row!(row)); }
            Ok(hooks)
        })
    }

    /// Deletes a webhook; `false` if there was none.
    pub async fn delete_webhook(&self, hook_id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(&self.inner.db, pool => sqlx::query("DELETE FROM webhooks WHERE hook_id = $1")
            .bind(hook_id).execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn insert_subscription(&self, sub: &SubscriptionRow) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "INSERT INTO webhook_subscriptions (sub_id, room_id, url, secret, event_types, pattern, \
             created_by, created_ts, after_pos, failures, retry_at, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&sub.sub_id).bind(&sub.room_id).bind(&sub.url).bind(&sub.secret)
        .bind(sub.event_types.join(",")).bind(&sub.pattern).bind(&sub.created_by)
        .bind(sub.created_ts).bind(sub.after_pos.0).bind(sub.failures).bind(sub.retry_at)
        .bind(&sub.last_error)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Every outgoing webhook, or one room's, oldest first.
    pub async fn subscriptions(
        &self,
        room_id: Option<&str>,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
             WHERE ($1 IS NULL OR room_id = $1) ORDER BY created_ts, sub_id"
        );
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(room_id).fetch_all(pool).await?;
            let mut subs = Vec::with_capacity(rows.len());
            for row in rows { subs.push(subscription_from_row!(row)); }
            Ok(subs)
        })
    }

    pub async fn subscription(&self, sub_id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let sql =
            format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE sub_id = $1");
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(sub_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(subscription_from_row!(row)), None => None })
        })
    }

    /// Deletes an outgoing webhook and everything still queued for it.
    pub async fn delete_subscription(&self, sub_id: &str) -> Result<bool, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM webhook_outbox WHERE sub_id = $1")
                .bind(sub_id).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM webhook_subscriptions WHERE sub_id = $1")
                .bind(sub_id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    /// Queues `(subscription, position, event ID)` deliveries and moves the reader `cursor`
    /// to `pos`, in one transaction: a crash leaves both or neither. Deliveries for a
    /// subscription deleted meanwhile are not queued.
    pub async fn fill_outbox(
        &self,
        cursor: &str,
        pos: StreamPos,
        deliveries: &[(String, StreamPos, String)],
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin().await?;
            for (sub_id, at, event_id) in deliveries {
                sqlx::query(
                    "INSERT INTO webhook_outbox (sub_id, stream_pos, event_id) \
                     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE sub_id = $1) \
                     ON CONFLICT (sub_id, stream_pos) DO NOTHING",
                )
                .bind(sub_id).bind(at.0).bind(event_id)
                .execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO gateway_cursors (name, stream_pos) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET stream_pos = EXCLUDED.stream_pos",
            )
            .bind(cursor).bind(pos.0).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The oldest queued delivery of a subscription.
    pub async fn outbox_next(
        &self,
        sub_id: &str,
    ) -> Result<Option<(StreamPos, String)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT stream_pos, event_id FROM webhook_outbox WHERE sub_id = $1 ORDER BY stream_pos LIMIT 1",
            )
            .bind(sub_id).fetch_optional(pool).await?;
            Ok(match row {
                Some(row) => Some((StreamPos(row.try_get("stream_pos")?), row.try_get("event_id")?)),
                None => None,
            })
        })
    }

    /// How many deliveries are queued for a subscription.
    pub async fn outbox_len(&self, sub_id: &str) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => {
            Ok(sqlx::query("SELECT COUNT(*) AS n FROM webhook_outbox WHERE sub_id = $1")
                .bind(sub_id).fetch_one(pool).await?.try_get("n")?)
        })
    }

    /// Removes a delivered item and clears the subscription's failure count.
    pub async fn outbox_delivered(&self, sub_id: &str, pos: StreamPos) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM webhook_outbox WHERE sub_id = $1 AND stream_pos = $2")
                .bind(sub_id).bind(pos.0).execute(&mut *tx).await?;
            sqlx::query(
                "UPDATE webhook_subscriptions SET failures = 0, retry_at = 0, last_error = NULL WHERE sub_id = $1",
            )
            .bind(sub_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records a failed delivery attempt: one more failure, next try at `retry_at`.
    pub async fn outbox_failed(
        &self,
        sub_id: &str,
        retry_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "UPDATE webhook_subscriptions SET failures = failures + 1, retry_at = $1, last_error = $2 \
             WHERE sub_id = $3",
        )
        .bind(retry_at).bind(error).bind(sub_id).execute(pool).await.map(drop))?;
        Ok(())
    }

    pub async fn insert_device(&self, device: &DeviceRow) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "INSERT INTO iot_devices (device_id, room_id, user_id, alerts, secret_hash, created_by, created_ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&device.device_id).bind(&device.room_id).bind(&device.user_id).bind(&device.alerts)
        .bind(&device.secret_hash).bind(&device.created_by).bind(device.created_ts)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    pub async fn device_row(&self, device_id: &str) -> Result<Option<DeviceRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query("SELECT * FROM iot_devices WHERE device_id = $1")
                .bind(device_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(device_from_row!(row)), None => None })
        })
    }

    /// Every device, or one room's, oldest first.
    pub async fn device_rows(&self, room_id: Option<&str>) -> Result<Vec<DeviceRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT * FROM iot_devices WHERE ($1 IS NULL OR room_id = $1) ORDER BY created_ts, device_id",
            )
            .bind(room_id).fetch_all(pool).await?;
            let mut devices = Vec::with_capacity(rows.len());
            for row in rows { devices.push(device_from_row!(row)); }
            Ok(devices)
        })
    }

    pub async fn set_device_alerts(&self, device_id: &str, alerts: &str) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query("UPDATE iot_devices SET alerts = $1 WHERE device_id = $2")
            .bind(alerts).bind(device_id).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Deletes a device and its telemetry; `false` if there was none.
    pub async fn delete_device(&self, device_id: &str) -> Result<bool, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM iot_telemetry WHERE device_id = $1")
                .bind(device_id).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM iot_devices WHERE device_id = $1")
                .bind(device_id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    /// Appends telemetry samples, then keeps only the newest `keep` of each device named.
    pub async fn append_telemetry(
        &self,
        samples: &[TelemetryRow],
        keep: u32,
    ) -> Result<(), StoreError> {
        let mut devices: Vec<&str> = samples.iter().map(|s| s.device_id.as_str()).collect();
        devices.sort_unstable();
        devices.dedup();
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin().await?;
            for sample in samples {
                sqlx::query("INSERT INTO iot_telemetry (device_id, ts, payload) VALUES ($1, $2, $3)")
                    .bind(&sample.device_id).bind(sample.ts).bind(&sample.payload)
                    .execute(&mut *tx).await?;
            }
            for device in devices {
                sqlx::query(
                    "DELETE FROM iot_telemetry WHERE device_id = $1 AND ts < \
                     (SELECT ts FROM iot_telemetry WHERE device_id = $1 ORDER BY ts DESC LIMIT 1 OFFSET $2)",
                )
                .bind(device).bind(i64::from(keep.saturating_sub(1)))
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// A device's samples with `from <= ts <= to`, oldest first, at most `limit`.
    pub async fn telemetry(
        &self,
        device_id: &str,
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<TelemetryRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT device_id, ts, payload FROM iot_telemetry \
                 WHERE device_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts LIMIT $4",
            )
            .bind(device_id).bind(from).bind(to).bind(i64::from(limit))
            .fetch_all(pool).await?;
            let mut samples = Vec::with_capacity(rows.len());
            for row in rows {
                samples.push(TelemetryRow {
                    device_id: row.try_get("device_id")?,
                    ts: row.try_get("ts")?,
                    payload: row.try_get("payload")?,
                });
            }
            Ok(samples)
        })
    }
}
