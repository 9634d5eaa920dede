//! Room aliases, the public room directory and the user directory.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#room-aliases>,
//! <https://spec.matrix.org/v1.12/client-server-api/#listing-rooms> and
//! <https://spec.matrix.org/v1.12/client-server-api/#user-directory>.

use axum::extract::State;
use ruma::api::client::alias::{create_alias, delete_alias, get_alias};
use ruma::api::client::directory::{
    get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
};
use ruma::api::client::room::Visibility;
use ruma::api::client::user_directory::search_users;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

pub async fn create_alias(
    State(state): State<AppState>,
    request: Ruma<create_alias::v3::Request>,
) -> Result<RumaResponse<create_alias::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .directory
        .create_alias(&caller, body.room_alias.as_str(), body.room_id.as_str())
        .await?;
    Ok(RumaResponse(create_alias::v3::Response::new()))
}

pub async fn get_alias(
    State(state): State<AppState>,
    request: Ruma<get_alias::v3::Request>,
) -> Result<RumaResponse<get_alias::v3::Response>> {
    let (room_id, servers) = state
        .services
        .directory
        .resolve_alias(request.body.room_alias.as_str())
        .await?;
    let servers = servers
        .into_iter()
        .filter_map(|s| s.try_into().ok())
        .collect();
    Ok(RumaResponse(get_alias::v3::Response::new(
        room_id.try_into().map_err(Error::internal)?,
        servers,
    )))
}

pub async fn delete_alias(
    State(state): State<AppState>,
    request: Ruma<delete_alias::v3::Request>,
) -> Result<RumaResponse<delete_alias::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .directory
        .delete_alias(&caller, body.room_alias.as_str())
        .await?;
    Ok(RumaResponse(delete_alias::v3::Response::new()))
}

pub async fn get_room_visibility(
    State(state): State<AppState>,
    request: Ruma<get_room_visibility::v3::Request>,
) -> Result<RumaResponse<get_room_visibility::v3::Response>> {
    let public = state
        .services
        .directory
        .visibility(request.body.room_id.as_str())
        .await?;
    Ok(RumaResponse(get_room_visibility::v3::Response::new(
        if public {
            Visibility::Public
        } else {
            Visibility::Private
        },
    )))
}

pub async fn set_room_visibility(
    State(state): State<AppState>,
    request: Ruma<set_room_visibility::v3::Request>,
) -> Result<RumaResponse<set_room_visibility::v3::Response>> {
    let (caller, body) = request.authed()?;
    let public = body.visibility == Visibility::Public;
    state
        .services
        .directory
        .set_visibility(&caller, body.room_id.as_str(), public)
        .await?;
    Ok(RumaResponse(set_room_visibility::v3::Response::new()))
}

fn public_rooms_json(page: converge_service::directory::PublicRooms) -> Value {
    let mut body = json!({ "chunk": page.chunk, "total_room_count_estimate": page.total });
    if let Some(next) = page.next_batch {
        body["next_batch"] = json!(next);
    }
    if let Some(prev) = page.prev_batch {
        body["prev_batch"] = json!(prev);
    }
    body
}

fn page_limit(limit: Option<ruma::UInt>) -> Option<usize> {
    limit.map(|l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX))
}

/// `GET /publicRooms`: allowed without a token.
pub async fn get_public_rooms(
    State(state): State<AppState>,
    request: Ruma<get_public_rooms::v3::Request>,
) -> Result<axum::Json<Value>> {
    let body = request.body;
    let page = state
        .services
        .directory
        .public_rooms(page_limit(body.limit), body.since.as_deref(), None)
        .await?;
    Ok(axum::Json(public_rooms_json(page)))
}

pub async fn get_public_rooms_filtered(
    State(state): State<AppState>,
    request: Ruma<get_public_rooms_filtered::v3::Request>,
) -> Result<axum::Json<Value>> {
    let body = request.body;
    let term = body.filter.generic_search_term.as_deref();
    let page = state
        .services
        .directory
        .public_rooms(page_limit(body.limit), body.since.as_deref(), term)
        .await?;
    Ok(axum::Json(public_rooms_json(page)))
}

pub async fn search_users(
    State(state): State<AppState>,
    request: Ruma<search_users::v3::Request>,
) -> Result<axum::Json<Value>> {
    let (_, body) = request.authed()?;
    let limit = usize::try_from(u64::from(body.limit)).unwrap_or(usize::MAX);
    let (results, limited) = state
        .services
        .directory
        .search_users(&body.search_term, limit)
        .await?;
    Ok(axum::Json(
        json!({ "results": results, "limited": limited }),
    ))
}
