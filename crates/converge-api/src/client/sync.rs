//! `GET /sync` and filters (`POST /user/{userId}/filter`, `GET /user/{userId}/filter/{filterId}`).
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#syncing> and
//! <https://spec.matrix.org/v1.12/client-server-api/#filtering>.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use ruma::api::client::filter::{create_filter, get_filter};
use ruma::api::client::sync::sync_events;
use ruma::presence::PresenceState;
use serde_json::Value;

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::filters::SyncFilter;
use converge_service::sync::SyncRequest;
use converge_service::token::SyncToken;

pub async fn sync_events(
    State(state): State<AppState>,
    request: Ruma<sync_events::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let filter = match &body.filter {
        None => SyncFilter::default(),
        Some(sync_events::v3::Filter::FilterDefinition(definition)) => SyncFilter::from(definition),
        Some(sync_events::v3::Filter::FilterId(id)) => {
            let definition = state
                .services
                .filters
                .get(&caller, caller.user_id.as_str(), id)
                .await?;
            SyncFilter::from(&definition)
        }
        Some(_) => SyncFilter::default(),
    };
    let set_presence = match body.set_presence {
        PresenceState::Offline => Some("offline".to_owned()),
        PresenceState::Unavailable => Some("unavailable".to_owned()),
        _ => Some("online".to_owned()),
    };
    let request = SyncRequest {
        since: body.since.as_deref().map(SyncToken::parse).transpose()?,
        full_state: body.full_state,
        timeout: body.timeout.unwrap_or(Duration::ZERO),
        filter,
        set_presence,
    };
    Ok(Json(state.services.sync.sync(&caller, request).await?))
}

pub async fn create_filter(
    State(state): State<AppState>,
    request: Ruma<create_filter::v3::Request>,
) -> Result<RumaResponse<create_filter::v3::Response>> {
    let (caller, body) = request.authed()?;
    let id = state
        .services
        .filters
        .create(&caller, body.user_id.as_str(), &body.filter)
        .await?;
    Ok(RumaResponse(create_filter::v3::Response::new(id)))
}

pub async fn get_filter(
    State(state): State<AppState>,
    request: Ruma<get_filter::v3::Request>,
) -> Result<RumaResponse<get_filter::v3::Response>> {
    let (caller, body) = request.authed()?;
    let definition = state
        .services
        .filters
        .get(&caller, body.user_id.as_str(), &body.filter_id)
        .await?;
    Ok(RumaResponse(get_filter::v3::Response::new(definition)))
}
