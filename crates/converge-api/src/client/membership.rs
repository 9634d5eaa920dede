//! Membership: join, invite, leave, forget, kick, ban, unban, knock.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#room-membership>.

use axum::extract::State;
use ruma::api::client::knock::knock_room;
use ruma::api::client::membership::{
    ban_user, forget_room, invite_user, join_room_by_id, join_room_by_id_or_alias, kick_user,
    leave_room, unban_user,
};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::Caller;
use converge_service::ratelimit::Limit;

fn limit(state: &AppState, caller: &Caller) -> converge_service::Result<()> {
    state.services.limiter.check_caller(Limit::Message, caller)
}

pub async fn join_room_by_id(
    State(state): State<AppState>,
    request: Ruma<join_room_by_id::v3::Request>,
) -> Result<RumaResponse<join_room_by_id::v3::Response>> {
    let (caller, body) = request.authed()?;
    limit(&state, &caller)?;
    state
        .services
        .rooms
        .join(
            body.room_id.as_str(),
            caller.user_id.as_str(),
            body.reason.as_deref(),
        )
        .await?;
    Ok(RumaResponse(join_room_by_id::v3::Response::new(
        body.room_id,
    )))
}

pub async fn join_room_by_id_or_alias(
    State(state): State<AppState>,
    request: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Result<RumaResponse<join_room_by_id_or_alias::v3::Response>> {
    let (caller, body) = request.authed()?;
    limit(&state, &caller)?;
    let room_id = state
        .services
        .rooms
        .resolve(body.room_id_or_alias.as_str())
        .await?;
    state
        .services
        .rooms
        .join(&room_id, caller.user_id.as_str(), body.reason.as_deref())
        .await?;
    Ok(RumaResponse(join_room_by_id_or_alias::v3::Response::new(
        room_id.try_into().map_err(Error::internal)?,
    )))
}

pub async fn invite_user(
    State(state): State<AppState>,
    request: Ruma<invite_user::v3::Request>,
) -> Result<RumaResponse<invite_user::v3::Response>> {
    let (caller, body) = request.authed()?;
    limit(&state, &caller)?;
    let invite_user::v3::InvitationRecipient::UserId(invitee) = &body.recipient else {
        return Err(Error::forbidden("third-party invites are not supported").into());
    };
    state
        .services
        .rooms
        .invite(
            body.room_id.as_str(),
            caller.user_id.as_str(),
            invitee.user_id.as_str(),
            invitee.reason.as_deref(),
            false,
        )
        .await?;
    Ok(RumaResponse(invite_user::v3::Response::new()))
}

pub async fn leave_room(
    State(state): State<AppState>,
    request: Ruma<leave_room::v3::Request>,
) -> Result<RumaResponse<leave_room::v3::Response>> {
    let (caller, body) = request.authed()?;
    limit(&state, &caller)?;
    state
        .services
        .rooms
        .leave(
            body.room_id.as_str(),
            caller.user_id.as_str(),
            body.reason.as_deref(),
        )
        .await?;
    Ok(RumaResponse(leave_room::v3::Response::new()))
}

pub async fn forget_room(
    State(state): State<AppState>,
    request: Ruma<forget_room::v3::Request>,
) -> Result<RumaResponse<forget_room::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .rooms
        .forget(body.room_id.as_str(), caller.user_id.as_str())
        .await?;
    Ok(RumaResponse(forget_room::v3::Response::new()))
}

pub async fn kick_user(
    State(state): State<AppState>,
    request: Ruma<kick_user::v3::Request>,
) -> Result<RumaResponse<kick_user::v3::Response>> {
    let (caller, body) = request.authed()?;
    limit(&state, &caller)?;
    state
        .services
        .rooms
        .kick(
            body.room_id.as_str(),
            caller.user_id.as_str(),
            body.user_id.as_str(),
            body.reason.as_deref(),
        )
        .await?;
    Ok(RumaResponse(kick_user::v3::Response::new()))
}

pub async fn ban_user(
    State(state): State<AppState>,
    request: Ruma<ban_user::v3::Request>,
) -> Result<RumaResponse<ban_user::v3::Response>> {
    let (caller, body) = request.authed()?;
    limit(&state, &caller)?;
    state
        .services
        .rooms
        .ban(
            body.room_id.as_str(),
            caller.user_id.as_str(),
            body.user_id.as_str(),
            body.reason.as_deref(),
        )
        .await?;
    Ok(RumaResponse(ban_user::v3::Response::new()))
}

pub async fn unban_user(
    State(state): State<AppState>,
    request: Ruma<unban_user::v3::Request>,
) -> Result<RumaResponse<unban_user::v3::Response>> {
    let (caller, body) = request.authed()?;
    limit(&state, &caller)?;
    state
        .services
        .rooms
        .unban(
            body.room_id.as_str(),
            caller.user_id.as_str(),
            body.user_id.as_str(),
            body.reason.as_deref(),
        )
        .await?;
    Ok(RumaResponse(unban_user::v3::Response::new()))
}

pub async fn knock_room(
    State(state): State<AppState>,
    request: Ruma<knock_room::v3::Request>,
) -> Result<RumaResponse<knock_room::v3::Response>> {
    let (caller, body) = request.authed()?;
    limit(&state, &caller)?;
    let room_id = state
        .services
        .rooms
        .resolve(body.room_id_or_alias.as_str())
        .await?;
    state
        .services
        .rooms
        .knock(&room_id, caller.user_id.as_str(), body.reason.as_deref())
        .await?;
    Ok(RumaResponse(knock_room::v3::Response::new(
        room_id.try_into().map_err(Error::internal)?,
    )))
}
