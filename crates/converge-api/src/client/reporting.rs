//! Reporting content: `POST /rooms/{roomId}/report/{eventId}` and `POST /rooms/{roomId}/report`.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#reporting-content>.

use axum::extract::State;
use ruma::api::client::room::{report_content, report_room};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::ratelimit::Limit;

pub async fn report_event(
    State(state): State<AppState>,
    request: Ruma<report_content::v3::Request>,
) -> Result<RumaResponse<report_content::v3::Response>> {
    // Ruma follows v1.18, which dropped `score`; v1.16 clients still send it.
    let score = match serde_json::from_slice::<Value>(&request.json)
        .ok()
        .and_then(|body| body.get("score").cloned())
    {
        None | Some(Value::Null) => None,
        Some(score) => Some(score.as_i64().ok_or_else(|| {
            Error::InvalidParam("score must be an integer from -100 to 0".into())
        })?),
    };
    let (caller, body) = request.authed()?;
    // Each call stores a row, so it counts against the sender's event rate.
    state
        .services
        .limiter
        .check_caller(Limit::Message, &caller)?;
    state
        .services
        .reports
        .report_event(
            &caller,
            body.room_id.as_str(),
            body.event_id.as_str(),
            body.reason.as_deref(),
            score,
        )
        .await?;
    Ok(RumaResponse(report_content::v3::Response::new()))
}

pub async fn report_room(
    State(state): State<AppState>,
    request: Ruma<report_room::v3::Request>,
) -> Result<RumaResponse<report_room::v3::Response>> {
    let (caller, body) = request.authed()?;
    // Each call stores a row, so it counts against the sender's event rate.
    state
        .services
        .limiter
        .check_caller(Limit::Message, &caller)?;
    state
        .services
        .reports
        .report_room(&caller, body.room_id.as_str(), Some(&body.reason))
        .await?;
    Ok(RumaResponse(report_room::v3::Response::new()))
}
