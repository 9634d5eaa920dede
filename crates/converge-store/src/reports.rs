//! Content reports: what users flagged to the server's admins (an event or a whole room).

use sqlx::Row;

use crate::db::on_pool;
use crate::{Store, StoreError};

/// A report as it is filed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewReport {
    pub room_id: String,
    /// `None` when the whole room is reported.
    pub event_id: Option<String>,
    pub reporter: String,
    pub reason: Option<String>,
    /// From -100 (most offensive) to 0, when the client sent one.
    pub score: Option<i64>,
    pub received_ts: i64,
}

/// A stored report, with the ID it was filed under (IDs grow with time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    pub id: i64,
    pub report: NewReport,
}

impl Store {
    /// Files a report and returns its ID.
    pub async fn insert_report(&self, report: &NewReport) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "INSERT INTO reports (room_id, event_id, reporter, reason, score, received_ts) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&report.room_id)
            .bind(&report.event_id)
            .bind(&report.reporter)
            .bind(&report.reason)
            .bind(report.score)
            .bind(report.received_ts)
            .fetch_one(pool)
            .await?;
            Ok(row.try_get("id")?)
        })
    }

    /// Reports filed before the report `before` (all if `None`), newest first, at most
    /// `limit`.
    pub async fn reports(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ReportRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT id, room_id, event_id, reporter, reason, score, received_ts FROM reports \
                 WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(ReportRow {
                    id: row.try_get("id")?,
                    report: NewReport {
                        room_id: row.try_get("room_id")?,
                        event_id: row.try_get("event_id")?,
                        reporter: row.try_get("reporter")?,
                        reason: row.try_get("reason")?,
                        score: row.try_get("score")?,
                        received_ts: row.try_get("received_ts")?,
                    },
                });
            }
            Ok(out)
        })
    }
}
