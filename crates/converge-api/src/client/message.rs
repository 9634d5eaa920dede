//! Sending events: `PUT /rooms/{roomId}/send/{eventType}/{txnId}`,
//! `PUT /rooms/{roomId}/state/{eventType}/{stateKey}` and
//! `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#sending-events-to-a-room>.

use axum::extract::State;
use ruma::api::client::message::send_message_event;
use ruma::api::client::redact::redact_event;
use ruma::api::client::state::send_state_event;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::ratelimit::Limit;
use converge_service::rooms::NewEvent;

/// The timestamp an application service asked for with `?ts=`; others cannot set one.
fn massaged_ts(
    caller: &converge_service::Caller,
    ts: Option<ruma::MilliSecondsSinceUnixEpoch>,
) -> Option<i64> {
    caller
        .appservice
        .as_ref()
        .and(ts)
        .map(|ts| i64::from(ts.get()))
}

fn content(json: &str) -> Result<Value> {
    match serde_json::from_str::<Value>(json) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(Error::BadJson("event content must be a JSON object".into()).into()),
    }
}

pub async fn send_message_event(
    State(state): State<AppState>,
    request: Ruma<send_message_event::v3::Request>,
) -> Result<RumaResponse<send_message_event::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .limiter
        .check_caller(Limit::Message, &caller)?;
    let event_type = body.event_type.to_string();
    let mut event = NewEvent::message(&event_type, content(body.body.json().get())?);
    event.txn = Some((caller.device_id.as_str(), body.txn_id.as_str()));
    event.ts = massaged_ts(&caller, body.timestamp);
    let (event_id, _) = state
        .services
        .rooms
        .send(body.room_id.as_str(), caller.user_id.as_str(), event)
        .await?;
    Ok(RumaResponse(send_message_event::v3::Response::new(
        event_id.try_into().map_err(Error::internal)?,
    )))
}

pub async fn send_state_event(
    State(state): State<AppState>,
    request: Ruma<send_state_event::v3::Request>,
) -> Result<RumaResponse<send_state_event::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .limiter
        .check_caller(Limit::Message, &caller)?;
    let event_type = body.event_type.to_string();
    if event_type == "m.room.member" {
        // Memberships change through the membership endpoints, which check more.
        ruma::UserId::parse(body.state_key.as_str()).map_err(|_| {
            Error::InvalidParam("the state key of a member event is a user ID".into())
        })?;
    }
    let mut event = NewEvent::state(
        &event_type,
        &body.state_key,
        content(body.body.json().get())?,
    );
    event.ts = massaged_ts(&caller, body.timestamp);
    let (event_id, _) = state
        .services
        .rooms
        .send(body.room_id.as_str(), caller.user_id.as_str(), event)
        .await?;
    Ok(RumaResponse(send_state_event::v3::Response::new(
        event_id.try_into().map_err(Error::internal)?,
    )))
}

pub async fn redact_event(
    State(state): State<AppState>,
    request: Ruma<redact_event::v3::Request>,
) -> Result<RumaResponse<redact_event::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .limiter
        .check_caller(Limit::Message, &caller)?;
    let mut content = json!({});
    if let Some(reason) = &body.reason {
        content["reason"] = json!(reason);
    }
    let event = NewEvent {
        event_type: "m.room.redaction",
        state_key: None,
        content,
        txn: Some((caller.device_id.as_str(), body.txn_id.as_str())),
        redacts: Some(body.event_id.as_str()),
        ts: None,
    };
    let (event_id, _) = state
        .services
        .rooms
        .send(body.room_id.as_str(), caller.user_id.as_str(), event)
        .await?;
    Ok(RumaResponse(redact_event::v3::Response::new(
        event_id.try_into().map_err(Error::internal)?,
    )))
}
