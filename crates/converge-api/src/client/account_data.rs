//! Account data and room tags.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#client-config> and
//! <https://spec.matrix.org/v1.12/client-server-api/#room-tagging>.

use axum::extract::State;
use ruma::api::client::config::{
    get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data,
};
use ruma::api::client::tag::{create_tag, delete_tag, get_tags};
use serde_json::Value;

use super::room::raw;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

fn json(text: &str) -> converge_service::Result<Value> {
    serde_json::from_str(text)
        .map_err(|_| Error::BadJson("account data must be a JSON object".into()))
}

pub async fn set_global_account_data(
    State(state): State<AppState>,
    request: Ruma<set_global_account_data::v3::Request>,
) -> Result<RumaResponse<set_global_account_data::v3::Response>> {
    let (caller, body) = request.authed()?;
    let content = json(body.data.json().get())?;
    state
        .services
        .account_data
        .set(
            &caller,
            body.user_id.as_str(),
            None,
            &body.event_type.to_string(),
            content,
        )
        .await?;
    Ok(RumaResponse(set_global_account_data::v3::Response::new()))
}

pub async fn get_global_account_data(
    State(state): State<AppState>,
    request: Ruma<get_global_account_data::v3::Request>,
) -> Result<RumaResponse<get_global_account_data::v3::Response>> {
    let (caller, body) = request.authed()?;
    let content = state
        .services
        .account_data
        .get(
            &caller,
            body.user_id.as_str(),
            None,
            &body.event_type.to_string(),
        )
        .await?;
    Ok(RumaResponse(get_global_account_data::v3::Response::new(
        raw(&content),
    )))
}

pub async fn set_room_account_data(
    State(state): State<AppState>,
    request: Ruma<set_room_account_data::v3::Request>,
) -> Result<RumaResponse<set_room_account_data::v3::Response>> {
    let (caller, body) = request.authed()?;
    let content = json(body.data.json().get())?;
    state
        .services
        .account_data
        .set(
            &caller,
            body.user_id.as_str(),
            Some(body.room_id.as_str()),
            &body.event_type.to_string(),
            content,
        )
        .await?;
    Ok(RumaResponse(set_room_account_data::v3::Response::new()))
}

pub async fn get_room_account_data(
    State(state): State<AppState>,
    request: Ruma<get_room_account_data::v3::Request>,
) -> Result<RumaResponse<get_room_account_data::v3::Response>> {
    let (caller, body) = request.authed()?;
    let content = state
        .services
        .account_data
        .get(
            &caller,
            body.user_id.as_str(),
            Some(body.room_id.as_str()),
            &body.event_type.to_string(),
        )
        .await?;
    Ok(RumaResponse(get_room_account_data::v3::Response::new(raw(
        &content,
    ))))
}

pub async fn get_tags(
    State(state): State<AppState>,
    request: Ruma<get_tags::v3::Request>,
) -> Result<axum::Json<Value>> {
    let (caller, body) = request.authed()?;
    Ok(axum::Json(
        state
            .services
            .account_data
            .tags(&caller, body.user_id.as_str(), body.room_id.as_str())
            .await?,
    ))
}

pub async fn create_tag(
    State(state): State<AppState>,
    request: Ruma<create_tag::v3::Request>,
) -> Result<RumaResponse<create_tag::v3::Response>> {
    let (caller, body) = request.authed()?;
    let info = serde_json::to_value(&body.tag_info).map_err(Error::internal)?;
    state
        .services
        .account_data
        .set_tag(
            &caller,
            body.user_id.as_str(),
            body.room_id.as_str(),
            &body.tag,
            Some(info),
        )
        .await?;
    Ok(RumaResponse(create_tag::v3::Response::new()))
}

pub async fn delete_tag(
    State(state): State<AppState>,
    request: Ruma<delete_tag::v3::Request>,
) -> Result<RumaResponse<delete_tag::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .account_data
        .set_tag(
            &caller,
            body.user_id.as_str(),
            body.room_id.as_str(),
            &body.tag,
            None,
        )
        .await?;
    Ok(RumaResponse(delete_tag::v3::Response::new()))
}
