//! Content reports: users flag events or whole rooms to the server's admins, who list them.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#reporting-content>. An event may
//! be reported only by a member who can see it; anything else is answered `M_NOT_FOUND`, so
//! a report cannot probe for events. A room may be reported by anyone, joined or not, since
//! users meet rooms through the directory and invites too.

use std::sync::Arc;

use converge_core::Membership;
use converge_store::{NewReport, ReportRow, Store};
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::now_ms;
use crate::rooms::Rooms;
use crate::timeline::Timeline;

/// The longest reason kept, in characters; a report is a note to a person, not a document.
pub const MAX_REASON_CHARS: usize = 2000;
/// The most reports one admin listing returns.
pub const MAX_PAGE: u32 = 500;

pub struct Reports {
    store: Store,
    rooms: Arc<Rooms>,
    timeline: Arc<Timeline>,
}

/// One page of the admin listing.
pub struct ReportPage {
    pub reports: Vec<Value>,
    /// Where the next page starts, if there may be one.
    pub next_token: Option<String>,
}

impl Reports {
    pub fn new(store: Store, rooms: Arc<Rooms>, timeline: Arc<Timeline>) -> Self {
        Self {
            store,
            rooms,
            timeline,
        }
    }

    /// `POST /rooms/{roomId}/report/{eventId}`.
    pub async fn report_event(
        &self,
        caller: &Caller,
        room_id: &str,
        event_id: &str,
        reason: Option<&str>,
        score: Option<i64>,
    ) -> Result<()> {
        check_reason(reason)?;
        if let Some(score) = score
            && !(-100..=0).contains(&score)
        {
            return Err(Error::InvalidParam(
                "score must be an integer from -100 to 0".into(),
            ));
        }
        let not_found =
            || Error::NotFound("the event was not found or you are not joined to the room".into());
        let user = caller.user_id.as_str();
        let joined = match self
            .rooms
            .snapshot(room_id, |room| room.membership(user))
            .await
        {
            Ok(membership) => membership == Membership::Join,
            Err(Error::NotFound(_)) => false,
            Err(err) => return Err(err),
        };
        if !joined {
            return Err(not_found());
        }
        match self.timeline.event(caller, room_id, event_id).await {
            Ok(_) => {}
            Err(Error::NotFound(_) | Error::Forbidden(_)) => return Err(not_found()),
            Err(err) => return Err(err),
        }
        self.file(caller, room_id, Some(event_id), reason, score)
            .await
    }

    /// `POST /rooms/{roomId}/report`: any room this server knows.
    pub async fn report_room(
        &self,
        caller: &Caller,
        room_id: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        check_reason(reason)?;
        if self.store.room(room_id).await?.is_none() {
            return Err(Error::NotFound("the room was not found".into()));
        }
        self.file(caller, room_id, None, reason, None).await
    }

    async fn file(
        &self,
        caller: &Caller,
        room_id: &str,
        event_id: Option<&str>,
        reason: Option<&str>,
        score: Option<i64>,
    ) -> Result<()> {
        let id = self
            .store
            .insert_report(&NewReport {
                room_id: room_id.to_owned(),
                event_id: event_id.map(str::to_owned),
                reporter: caller.user_id.to_string(),
                reason: reason.filter(|r| !r.is_empty()).map(str::to_owned),
                score,
                received_ts: now_ms(),
            })
            .await?;
        tracing::info!(report = id, room = %room_id, event = ?event_id, reporter = %caller.user_id, "content reported");
        Ok(())
    }

    /// `GET /_converge/admin/v1/reports`: newest first, for server admins.
    pub async fn list(
        &self,
        caller: &Caller,
        from: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ReportPage> {
        if !caller.is_admin {
            return Err(Error::forbidden("you are not a server admin"));
        }
        let before = from
            .map(|token| {
                token
                    .parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| Error::InvalidParam(format!("{token:?} is not a valid token")))
            })
            .transpose()?;
        let limit = limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let rows = self.store.reports(before, limit).await?;
        let next_token = (rows.len() as u32 == limit)
            .then(|| rows.last().map(|r| r.id.to_string()))
            .flatten();
        Ok(ReportPage {
            reports: rows.iter().map(report_json).collect(),
            next_token,
        })
    }
}

fn check_reason(reason: Option<&str>) -> Result<()> {
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(Error::InvalidParam(format!(
            "the reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(())
}

fn report_json(row: &ReportRow) -> Value {
    let r = &row.report;
    json!({
        "id": row.id,
        "room_id": r.room_id,
        "event_id": r.event_id,
        "reporter": r.reporter,
        "reason": r.reason,
        "score": r.score,
        "received_ts": r.received_ts,
    })
}
