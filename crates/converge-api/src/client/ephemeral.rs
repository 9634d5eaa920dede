//! Typing, receipts, read markers and presence.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#typing-notifications>,
//! <https://spec.matrix.org/v1.12/client-server-api/#receipts>,
//! <https://spec.matrix.org/v1.12/client-server-api/#fully-read-markers> and
//! <https://spec.matrix.org/v1.12/client-server-api/#presence>.

use std::time::Duration;

use axum::extract::State;
use ruma::api::client::presence::{get_presence, set_presence};
use ruma::api::client::read_marker::set_read_marker;
use ruma::api::client::receipt::create_receipt;
use ruma::api::client::typing::create_typing_event;
use ruma::events::receipt::ReceiptThread;
use ruma::presence::PresenceState;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

pub async fn create_typing_event(
    State(state): State<AppState>,
    request: Ruma<create_typing_event::v3::Request>,
) -> Result<RumaResponse<create_typing_event::v3::Response>> {
    let (caller, body) = request.authed()?;
    if body.user_id != caller.user_id {
        return Err(Error::forbidden("you can only set your own typing state").into());
    }
    let (typing, timeout) = match body.state {
        create_typing_event::v3::Typing::Yes(info) => (true, info.timeout),
        _ => (false, Duration::ZERO),
    };
    state
        .services
        .sync
        .set_typing(&caller, body.room_id.as_str(), typing, timeout)
        .await?;
    Ok(RumaResponse(create_typing_event::v3::Response::new()))
}

pub async fn create_receipt(
    State(state): State<AppState>,
    request: Ruma<create_receipt::v3::Request>,
) -> Result<RumaResponse<create_receipt::v3::Response>> {
    let (caller, body) = request.authed()?;
    let receipt_type = body.receipt_type.to_string();
    let thread = match &body.thread {
        ReceiptThread::Unthreaded => None,
        ReceiptThread::Main => Some("main".to_owned()),
        ReceiptThread::Thread(root) => Some(root.to_string()),
        other => Some(other.as_str().unwrap_or_default().to_owned()),
    };
    state
        .services
        .account_data
        .receipt(
            &caller,
            body.room_id.as_str(),
            &receipt_type,
            body.event_id.as_str(),
            thread.as_deref(),
        )
        .await?;
    Ok(RumaResponse(create_receipt::v3::Response::new()))
}

pub async fn set_read_marker(
    State(state): State<AppState>,
    request: Ruma<set_read_marker::v3::Request>,
) -> Result<RumaResponse<set_read_marker::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .account_data
        .read_markers(
            &caller,
            body.room_id.as_str(),
            body.fully_read.as_ref().map(|e| e.as_str()),
            body.read_receipt.as_ref().map(|e| e.as_str()),
            body.private_read_receipt.as_ref().map(|e| e.as_str()),
        )
        .await?;
    Ok(RumaResponse(set_read_marker::v3::Response::new()))
}

pub async fn set_presence(
    State(state): State<AppState>,
    request: Ruma<set_presence::v3::Request>,
) -> Result<RumaResponse<set_presence::v3::Response>> {
    let (caller, body) = request.authed()?;
    if body.user_id != caller.user_id {
        return Err(Error::forbidden("you can only set your own presence").into());
    }
    let presence = match body.presence {
        PresenceState::Online => "online",
        PresenceState::Unavailable => "unavailable",
        PresenceState::Offline => "offline",
        _ => return Err(Error::InvalidParam("unknown presence state".into()).into()),
    };
    if let Some(msg) = &body.status_msg
        && msg.len() > 1024
    {
        return Err(Error::InvalidParam("status_msg is limited to 1024 bytes".into()).into());
    }
    state
        .services
        .sync
        .set_presence(caller.user_id.as_str(), presence, body.status_msg)
        .await?;
    Ok(RumaResponse(set_presence::v3::Response::new()))
}

pub async fn get_presence(
    State(state): State<AppState>,
    request: Ruma<get_presence::v3::Request>,
) -> Result<RumaResponse<get_presence::v3::Response>> {
    let (_, body) = request.authed()?;
    let presence = state.services.ephemeral.presence(body.user_id.as_str());
    let mut response = get_presence::v3::Response::new(match presence.state.as_str() {
        "online" => PresenceState::Online,
        "unavailable" => PresenceState::Unavailable,
        _ => PresenceState::Offline,
    });
    response.status_msg = presence.status_msg.clone();
    response.currently_active = Some(presence.state == "online");
    if presence.last_active_ms > 0 {
        response.last_active_ago = Some(Duration::from_millis(
            (converge_service::now_ms() - presence.last_active_ms).max(0) as u64,
        ));
    }
    Ok(RumaResponse(response))
}
