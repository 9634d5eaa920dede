//! Profiles: `GET /profile/{userId}` and the `displayname` and `avatar_url` fields.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#profiles>.

use axum::extract::State;
use ruma::api::client::profile::{
    get_avatar_url, get_display_name, get_profile, set_avatar_url, set_display_name,
};
use serde_json::Value;

use converge_service::accounts::ProfileField;

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

pub async fn get_profile(
    State(state): State<AppState>,
    request: Ruma<get_profile::v3::Request>,
) -> Result<RumaResponse<get_profile::v3::Response>> {
    let profile = state.services.profiles.get(&request.body.user_id).await?;
    let fields = [
        ("displayname", profile.displayname),
        ("avatar_url", profile.avatar_url),
    ];
    let response = fields
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), Value::String(value?))))
        .collect();
    Ok(RumaResponse(response))
}

pub async fn get_display_name(
    State(state): State<AppState>,
    request: Ruma<get_display_name::v3::Request>,
) -> Result<RumaResponse<get_display_name::v3::Response>> {
    let profile = state.services.profiles.get(&request.body.user_id).await?;
    Ok(RumaResponse(get_display_name::v3::Response::new(
        profile.displayname,
    )))
}

pub async fn set_display_name(
    State(state): State<AppState>,
    request: Ruma<set_display_name::v3::Request>,
) -> Result<RumaResponse<set_display_name::v3::Response>> {
    let caller = request.caller()?;
    let body = &request.body;
    state
        .services
        .profiles
        .set(
            caller,
            &body.user_id,
            ProfileField::DisplayName,
            body.displayname.as_deref(),
        )
        .await?;
    Ok(RumaResponse(set_display_name::v3::Response::new()))
}

pub async fn get_avatar_url(
    State(state): State<AppState>,
    request: Ruma<get_avatar_url::v3::Request>,
) -> Result<RumaResponse<get_avatar_url::v3::Response>> {
    let profile = state.services.profiles.get(&request.body.user_id).await?;
    let url = profile.avatar_url.map(Into::into);
    Ok(RumaResponse(get_avatar_url::v3::Response::new(url)))
}

pub async fn set_avatar_url(
    State(state): State<AppState>,
    request: Ruma<set_avatar_url::v3::Request>,
) -> Result<RumaResponse<set_avatar_url::v3::Response>> {
    let caller = request.caller()?;
    let body = &request.body;
    let url = body.avatar_url.as_ref().map(|u| u.as_str());
    state
        .services
        .profiles
        .set(caller, &body.user_id, ProfileField::AvatarUrl, url)
        .await?;
    Ok(RumaResponse(set_avatar_url::v3::Response::new()))
}
