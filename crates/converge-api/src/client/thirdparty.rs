//! Third-party networks: `GET /thirdparty/protocols`, `/thirdparty/protocol/{protocol}`,
//! `/thirdparty/location[/{protocol}]` and `/thirdparty/user[/{protocol}]`, answered by the
//! application services (bridges) that declare the protocols.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#third-party-networks>.

use std::collections::BTreeMap;

use axum::extract::State;
use ruma::api::client::thirdparty::{
    get_location_for_protocol, get_location_for_room_alias, get_protocol, get_protocols,
    get_user_for_protocol, get_user_for_user_id,
};

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

fn fields(fields: BTreeMap<String, String>) -> Vec<(String, String)> {
    fields.into_iter().collect()
}

pub async fn get_protocols(
    State(state): State<AppState>,
    request: Ruma<get_protocols::v3::Request>,
) -> Result<RumaResponse<get_protocols::v3::Response>> {
    request.caller()?;
    Ok(RumaResponse(get_protocols::v3::Response::new(
        state.services.appservices.protocols().await,
    )))
}

pub async fn get_protocol(
    State(state): State<AppState>,
    request: Ruma<get_protocol::v3::Request>,
) -> Result<RumaResponse<get_protocol::v3::Response>> {
    let (_, body) = request.authed()?;
    let protocol = state.services.appservices.protocol(&body.protocol).await?;
    Ok(RumaResponse(get_protocol::v3::Response::new(protocol)))
}

pub async fn get_location_for_protocol(
    State(state): State<AppState>,
    request: Ruma<get_location_for_protocol::v3::Request>,
) -> Result<RumaResponse<get_location_for_protocol::v3::Response>> {
    let (_, body) = request.authed()?;
    let locations = state
        .services
        .appservices
        .locations(Some(&body.protocol), &fields(body.fields))
        .await?;
    Ok(RumaResponse(get_location_for_protocol::v3::Response::new(
        locations,
    )))
}

pub async fn get_user_for_protocol(
    State(state): State<AppState>,
    request: Ruma<get_user_for_protocol::v3::Request>,
) -> Result<RumaResponse<get_user_for_protocol::v3::Response>> {
    let (_, body) = request.authed()?;
    let users = state
        .services
        .appservices
        .users(Some(&body.protocol), &fields(body.fields))
        .await?;
    Ok(RumaResponse(get_user_for_protocol::v3::Response::new(
        users,
    )))
}

pub async fn get_location_for_room_alias(
    State(state): State<AppState>,
    request: Ruma<get_location_for_room_alias::v3::Request>,
) -> Result<RumaResponse<get_location_for_room_alias::v3::Response>> {
    let (_, body) = request.authed()?;
    let locations = state
        .services
        .appservices
        .locations(None, &[("alias".into(), body.alias.to_string())])
        .await?;
    Ok(RumaResponse(
        get_location_for_room_alias::v3::Response::new(locations),
    ))
}

pub async fn get_user_for_user_id(
    State(state): State<AppState>,
    request: Ruma<get_user_for_user_id::v3::Request>,
) -> Result<RumaResponse<get_user_for_user_id::v3::Response>> {
    let (_, body) = request.authed()?;
    let users = state
        .services
        .appservices
        .users(None, &[("userid".into(), body.userid.to_string())])
        .await?;
    Ok(RumaResponse(get_user_for_user_id::v3::Response::new(users)))
}
