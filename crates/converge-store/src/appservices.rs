//! Application services' delivery state: how far each one's filler has read the stream, the
//! queue of what it has not acknowledged, and the transaction being sent (always the same
//! rows under the same ID until the appservice takes it, so a retry after a crash repeats
//! it exactly). Also the stream reads the filler needs beyond events: receipts and
//! to-device messages by position.

use converge_core::StreamPos;
use sqlx::Row;

use crate::db::{BeginWrite, on_pool};
use crate::{ReceiptRow, Store, StoreError};

/// One appservice's delivery state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppServiceState {
    pub as_id: String,
    /// Everything up to here is queued (or was not wanted).
    pub stream_pos: StreamPos,
    /// The ID of the transaction being sent, or of the next one.
    pub next_txn: i64,
    /// The transaction being sent holds the queue up to here; `None` when none is.
    pub txn_last_pos: Option<StreamPos>,
    pub failures: i64,
    /// When the next attempt is due (ms since the epoch).
    pub retry_at: i64,
    pub last_error: Option<String>,
    pub last_success_ts: Option<i64>,
    pub sent_txns: i64,
}

/// What a queue row stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueuedKind {
    Event,
    Receipt,
    ToDevice,
    DeviceList,
}

impl QueuedKind {
    fn as_str(self) -> &'static str {
        match self {
            QueuedKind::Event => "event",
            QueuedKind::Receipt => "receipt",
            QueuedKind::ToDevice => "to_device",
            QueuedKind::DeviceList => "device_list",
        }
    }

    fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "event" => QueuedKind::Event,
            "receipt" => QueuedKind::Receipt,
            "to_device" => QueuedKind::ToDevice,
            "device_list" => QueuedKind::DeviceList,
            _ => return None,
        })
    }
}

/// A to-device message with its recipient, as the appservice filler reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToDeviceRow {
    pub stream_pos: StreamPos,
    pub user_id: String,
    pub device_id: String,
    pub sender: String,
    pub event_type: String,
    pub content: String,
}

const STATE_COLUMNS: &str = "as_id, stream_pos, next_txn, txn_last_pos, failures, retry_at, \
     last_error, last_success_ts, sent_txns";

macro_rules! state_from_row {
    ($row:expr) => {{
        let row = $row;
        AppServiceState {
            as_id: row.try_get("as_id")?,
            stream_pos: StreamPos(row.try_get("stream_pos")?),
            next_txn: row.try_get("next_txn")?,
            txn_last_pos: row
                .try_get::<Option<i64>, _>("txn_last_pos")?
                .map(StreamPos),
            failures: row.try_get("failures")?,
            retry_at: row.try_get("retry_at")?,
            last_error: row.try_get("last_error")?,
            last_success_ts: row.try_get("last_success_ts")?,
            sent_txns: row.try_get("sent_txns")?,
        }
    }};
}

impl Store {
    /// An appservice's state, made at `start` (where its stream begins) the first time.
    pub async fn appservice_state(
        &self,
        as_id: &str,
        start: StreamPos,
    ) -> Result<AppServiceState, StoreError> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM appservice_state WHERE as_id = $1");
        on_pool!(&self.inner.db, pool => {
            sqlx::query(
                "INSERT INTO appservice_state (as_id, stream_pos) VALUES ($1, $2) \
                 ON CONFLICT (as_id) DO NOTHING",
            )
            .bind(as_id).bind(start.0)
            .execute(pool).await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(as_id).fetch_one(pool).await?;
            Ok(state_from_row!(row))
        })
    }

    /// Every appservice's state, by ID.
    pub async fn appservice_states(&self) -> Result<Vec<AppServiceState>, StoreError> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM appservice_state ORDER BY as_id");
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(state_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Queues `items` for an appservice and moves its filler to `upto`, in one transaction:
    /// a crash queues all of them or none, and never twice.
    pub async fn queue_for_appservice(
        &self,
        as_id: &str,
        items: &[(StreamPos, QueuedKind)],
        upto: StreamPos,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            for (pos, kind) in items {
                sqlx::query(
                    "INSERT INTO appservice_queue (as_id, stream_pos, kind) VALUES ($1, $2, $3) \
                     ON CONFLICT (as_id, stream_pos) DO NOTHING",
                )
                .bind(as_id).bind(pos.0).bind(kind.as_str())
                .execute(&mut *tx).await?;
            }
            sqlx::query(
                "UPDATE appservice_state SET stream_pos = $2 WHERE as_id = $1 AND stream_pos < $2",
            )
            .bind(as_id).bind(upto.0)
            .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The queue's first rows, oldest first, up to `upto` if given, at most `limit`.
    pub async fn appservice_queue(
        &self,
        as_id: &str,
        upto: Option<StreamPos>,
        limit: u32,
    ) -> Result<Vec<(StreamPos, QueuedKind)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT stream_pos, kind FROM appservice_queue WHERE as_id = $1 AND stream_pos <= $2 \
                 ORDER BY stream_pos LIMIT $3",
            )
            .bind(as_id).bind(upto.map_or(i64::MAX, |p| p.0)).bind(i64::from(limit))
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let kind: String = row.try_get("kind")?;
                if let Some(kind) = QueuedKind::parse(&kind) {
                    out.push((StreamPos(row.try_get("stream_pos")?), kind));
                }
            }
            Ok(out)
        })
    }

    /// How many rows wait in an appservice's queue.
    pub async fn appservice_queue_len(&self, as_id: &str) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM appservice_queue WHERE as_id = $1",
        )
        .bind(as_id).fetch_one(pool).await?.try_get("n")?))
    }

    /// Fixes the transaction being sent to the queue up to `last_pos`, unless one is
    /// already fixed; returns its ID and last position.
    pub async fn begin_appservice_txn(
        &self,
        as_id: &str,
        last_pos: StreamPos,
    ) -> Result<(i64, StreamPos), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE appservice_state SET txn_last_pos = $2 WHERE as_id = $1 AND txn_last_pos IS NULL",
            )
            .bind(as_id).bind(last_pos.0)
            .execute(&mut *tx).await?;
            let row = sqlx::query(
                "SELECT next_txn, txn_last_pos FROM appservice_state WHERE as_id = $1",
            )
            .bind(as_id).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            let last: Option<i64> = row.try_get("txn_last_pos")?;
            Ok((row.try_get("next_txn")?, StreamPos(last.unwrap_or(last_pos.0))))
        })
    }

    /// The appservice took the transaction: its rows leave the queue (with the to-device
    /// messages it carried), the next one gets a new ID, failures are forgotten.
    pub async fn complete_appservice_txn(
        &self,
        as_id: &str,
        txn_id: i64,
        delivered_to_device: &[(String, String, StreamPos)],
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query(
                "SELECT txn_last_pos FROM appservice_state WHERE as_id = $1 AND next_txn = $2",
            )
            .bind(as_id).bind(txn_id)
            .fetch_optional(&mut *tx).await?;
            // Only the transaction being sent can complete (there is one sender per
            // appservice; anything else changes nothing).
            let Some(last) = row.map(|r| r.try_get::<Option<i64>, _>("txn_last_pos")).transpose()?.flatten() else {
                return Ok(());
            };
            sqlx::query(
                "UPDATE appservice_state SET next_txn = next_txn + 1, txn_last_pos = NULL, \
                 failures = 0, retry_at = 0, last_error = NULL, last_success_ts = $2, \
                 sent_txns = sent_txns + 1 WHERE as_id = $1",
            )
            .bind(as_id).bind(now)
            .execute(&mut *tx).await?;
            sqlx::query("DELETE FROM appservice_queue WHERE as_id = $1 AND stream_pos <= $2")
                .bind(as_id).bind(last)
                .execute(&mut *tx).await?;
            for (user_id, device_id, pos) in delivered_to_device {
                sqlx::query(
                    "DELETE FROM to_device WHERE user_id = $1 AND device_id = $2 AND stream_pos = $3",
                )
                .bind(user_id).bind(device_id).bind(pos.0)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Makes an appservice waiting after failures due now (it said it is back).
    pub async fn appservice_retry_now(&self, as_id: &str) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "UPDATE appservice_state SET retry_at = 0 WHERE as_id = $1",
        )
        .bind(as_id)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// A transaction failed: one more failure, next try at `retry_at`.
    pub async fn fail_appservice_txn(
        &self,
        as_id: &str,
        retry_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "UPDATE appservice_state SET failures = failures + 1, retry_at = $2, last_error = $3 \
             WHERE as_id = $1",
        )
        .bind(as_id).bind(retry_at).bind(error)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Receipts with `after < position <= until`, in every room, oldest first.
    pub async fn receipts_between(
        &self,
        after: StreamPos,
        until: StreamPos,
    ) -> Result<Vec<ReceiptRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_pos FROM receipts \
                 WHERE stream_pos > $1 AND stream_pos <= $2 ORDER BY stream_pos",
            )
            .bind(after.0).bind(until.0)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(ReceiptRow {
                    room_id: row.try_get("room_id")?,
                    receipt_type: row.try_get("receipt_type")?,
                    user_id: row.try_get("user_id")?,
                    thread_id: row.try_get("thread_id")?,
                    event_id: row.try_get("event_id")?,
                    ts: row.try_get("ts")?,
                    stream_pos: StreamPos(row.try_get("stream_pos")?),
                });
            }
            Ok(out)
        })
    }

    /// To-device messages with `after < position <= until`, for every recipient.
    pub async fn to_device_between(
        &self,
        after: StreamPos,
        until: StreamPos,
    ) -> Result<Vec<ToDeviceRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT stream_pos, user_id, device_id, sender, event_type, content FROM to_device \
                 WHERE stream_pos > $1 AND stream_pos <= $2 ORDER BY stream_pos, user_id, device_id",
            )
            .bind(after.0).bind(until.0)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(ToDeviceRow {
                    stream_pos: StreamPos(row.try_get("stream_pos")?),
                    user_id: row.try_get("user_id")?,
                    device_id: row.try_get("device_id")?,
                    sender: row.try_get("sender")?,
                    event_type: row.try_get("event_type")?,
                    content: row.try_get("content")?,
                });
            }
            Ok(out)
        })
    }

    /// The receipt written at a stream position, if it is still the newest of its kind
    /// (a later receipt of the same user replaces it, and is queued itself).
    pub async fn receipt_at(&self, pos: StreamPos) -> Result<Option<ReceiptRow>, StoreError> {
        Ok(self
            .receipts_between(StreamPos(pos.0 - 1), pos)
            .await?
            .pop())
    }

    /// The to-device messages written at a stream position (one `/sendToDevice` call).
    pub async fn to_device_at(&self, pos: StreamPos) -> Result<Vec<ToDeviceRow>, StoreError> {
        self.to_device_between(StreamPos(pos.0 - 1), pos).await
    }

    /// Device list changes with `after < position <= until`: `(position, user)`.
    pub async fn device_list_changes_between(
        &self,
        after: StreamPos,
        until: StreamPos,
    ) -> Result<Vec<(StreamPos, String)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT stream_pos, user_id FROM device_list_changes WHERE stream_pos > $1 \
                 AND stream_pos <= $2 ORDER BY stream_pos",
            )
            .bind(after.0).bind(until.0)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((StreamPos(row.try_get("stream_pos")?), row.try_get("user_id")?));
            }
            Ok(out)
        })
    }
}
