//! Room upgrades: `POST /rooms/{roomId}/upgrade`.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#room-upgrades>.

use axum::extract::State;
use ruma::api::client::room::upgrade_room;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::ratelimit::Limit;

pub async fn upgrade_room(
    State(state): State<AppState>,
    request: Ruma<upgrade_room::v3::Request>,
) -> Result<RumaResponse<upgrade_room::v3::Response>> {
    let (caller, body) = request.authed()?;
    // An upgrade sends a room's worth of events, like `createRoom`.
    state
        .services
        .limiter
        .check_caller(Limit::Message, &caller)?;
    // `additional_creators` only matters from room version 12, which Converge does not
    // offer, so it is ignored as the spec says.
    let new_room = state
        .services
        .rooms
        .upgrade(
            caller.user_id.as_str(),
            body.room_id.as_str(),
            body.new_version.as_str(),
        )
        .await?;
    Ok(RumaResponse(upgrade_room::v3::Response::new(
        new_room.try_into().map_err(Error::internal)?,
    )))
}
