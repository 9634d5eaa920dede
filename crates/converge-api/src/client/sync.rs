//! `GET /sync`, simplified sliding sync (`POST /unstable/org.matrix.simplified_msc3575/sync`)
//! and filters (`POST /user/{userId}/filter`, `GET /user/{userId}/filter/{filterId}`).
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#syncing>,
//! <https://github.com/matrix-org/matrix-spec-proposals/pull/4186> and
//! <https://spec.matrix.org/v1.12/client-server-api/#filtering>.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use ruma::UInt;
use ruma::api::client::filter::{create_filter, get_filter};
use ruma::api::client::sync::sync_events;
use ruma::api::client::sync::sync_events::v5::request::ExtensionRoomConfig;
use ruma::directory::RoomTypeFilter;
use ruma::presence::PresenceState;
use serde_json::Value;

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::filters::SyncFilter;
use converge_service::sliding::request::{
    Extensions, ListFilters, ListRequest, RequiredState, RoomConfig, Scope, SlidingRequest,
    ToDevice,
};
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
    let set_presence = Some(presence_name(&body.set_presence));
    let request = SyncRequest {
        since: body.since.as_deref().map(SyncToken::parse).transpose()?,
        full_state: body.full_state,
        timeout: body.timeout.unwrap_or(Duration::ZERO),
        filter,
        set_presence,
    };
    Ok(Json(state.services.sync.sync(&caller, request).await?))
}

fn presence_name(state: &PresenceState) -> String {
    match state {
        PresenceState::Offline => "offline",
        PresenceState::Unavailable => "unavailable",
        _ => "online",
    }
    .to_owned()
}

pub async fn sliding_sync(
    State(state): State<AppState>,
    request: Ruma<sync_events::v5::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let room_config =
        |required_state: &[(ruma::events::StateEventType, String)], limit: UInt| RoomConfig {
            timeline_limit: u32::try_from(u64::from(limit)).unwrap_or(u32::MAX),
            required_state: RequiredState::new(
                required_state
                    .iter()
                    .map(|(t, k)| (t.to_string(), k.clone()))
                    .collect(),
            ),
        };
    let room_types = |types: &[RoomTypeFilter]| -> Vec<Option<String>> {
        types
            .iter()
            .map(|t| match t {
                RoomTypeFilter::Default => None,
                other => Some(other.as_str().unwrap_or_default().to_owned()),
            })
            .collect()
    };
    let scope = |lists: &Option<Vec<String>>, rooms: &Option<Vec<ExtensionRoomConfig>>| Scope {
        lists: lists.clone(),
        rooms: rooms.as_ref().map(|rooms| {
            rooms
                .iter()
                .map(|r| match r {
                    ExtensionRoomConfig::Room(id) => id.to_string(),
                    _ => "*".to_owned(),
                })
                .collect()
        }),
    };
    let enabled = |e: Option<bool>| e == Some(true);
    let ext = &body.extensions;
    let request = SlidingRequest {
        conn_id: body.conn_id.clone().unwrap_or_default(),
        pos: body.pos.clone(),
        txn_id: body.txn_id.clone(),
        timeout: body.timeout.unwrap_or(Duration::ZERO),
        set_presence: Some(presence_name(&body.set_presence)),
        lists: body
            .lists
            .iter()
            .map(|(name, list)| {
                let filters = list.filters.as_ref().map(|f| ListFilters {
                    is_dm: f.is_dm,
                    is_encrypted: f.is_encrypted,
                    is_invite: f.is_invite,
                    room_types: room_types(&f.room_types),
                    not_room_types: room_types(&f.not_room_types),
                });
                let list = ListRequest {
                    ranges: list
                        .ranges
                        .iter()
                        .map(|(a, b)| (u64::from(*a), u64::from(*b)))
                        .collect(),
                    room: room_config(
                        &list.room_details.required_state,
                        list.room_details.timeline_limit,
                    ),
                    filters: filters.unwrap_or_default(),
                };
                (name.clone(), list)
            })
            .collect(),
        subscriptions: body
            .room_subscriptions
            .iter()
            .map(|(room_id, sub)| {
                (
                    room_id.to_string(),
                    room_config(&sub.required_state, sub.timeline_limit),
                )
            })
            .collect(),
        extensions: Extensions {
            to_device: enabled(ext.to_device.enabled).then(|| ToDevice {
                since: ext.to_device.since.clone(),
            }),
            e2ee: enabled(ext.e2ee.enabled),
            account_data: enabled(ext.account_data.enabled)
                .then(|| scope(&ext.account_data.lists, &ext.account_data.rooms)),
            receipts: enabled(ext.receipts.enabled)
                .then(|| scope(&ext.receipts.lists, &ext.receipts.rooms)),
            typing: enabled(ext.typing.enabled)
                .then(|| scope(&ext.typing.lists, &ext.typing.rooms)),
        },
    };
    Ok(Json(state.services.sliding.sync(&caller, request).await?))
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
