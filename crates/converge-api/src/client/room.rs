//! Rooms: `createRoom`, reading events, state, members and history.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#rooms>.

use axum::extract::State;
use ruma::UInt;
use ruma::api::Direction;
use ruma::api::client::context::get_context;
use ruma::api::client::membership::{get_member_events, joined_members, joined_rooms};
use ruma::api::client::message::get_message_events;
use ruma::api::client::relations::{
    get_relating_events, get_relating_events_with_rel_type,
    get_relating_events_with_rel_type_and_event_type,
};
use ruma::api::client::room::{aliases, create_room, get_room_event};
use ruma::api::client::state::{get_state_event_for_key, get_state_events};
use ruma::serde::Raw;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::filters::event_filter;
use converge_service::rooms::CreateRoom;
use converge_service::timeline::{PageRequest, RelationKind};

/// Wraps a JSON value as a Ruma `Raw` for responses.
pub fn raw<T>(value: &Value) -> Raw<T> {
    Raw::from_json(serde_json::value::to_raw_value(value).expect("a JSON value serialises"))
}

fn object<T>(raw: &Raw<T>, what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(raw.json().get()) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::BadJson(format!("{what} must be a JSON object")).into()),
    }
}

fn limit(value: Option<UInt>, default: u32) -> u32 {
    value.map_or(default, |v| u32::try_from(u64::from(v)).unwrap_or(u32::MAX))
}

pub async fn create_room(
    State(state): State<AppState>,
    request: Ruma<create_room::v3::Request>,
) -> Result<RumaResponse<create_room::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .limiter
        .check_caller(converge_service::ratelimit::Limit::Message, &caller)?;
    let mut initial_state = Vec::with_capacity(body.initial_state.len());
    for event in &body.initial_state {
        let event = object(event, "an initial_state event")?;
        let event_type = event
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadJson("initial_state events need a type".into()))?;
        let state_key = event
            .get("state_key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let content = event
            .get("content")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        initial_state.push((event_type.to_owned(), state_key.to_owned(), content));
    }
    let request = CreateRoom {
        creation_content: body
            .creation_content
            .as_ref()
            .map(|c| object(c, "creation_content"))
            .transpose()?,
        initial_state,
        invite: body.invite.iter().map(ToString::to_string).collect(),
        is_direct: body.is_direct,
        name: body.name,
        power_level_content_override: body
            .power_level_content_override
            .as_ref()
            .map(|p| object(p, "power_level_content_override"))
            .transpose()?,
        preset: body.preset.map(|p| p.to_string()),
        room_alias_name: body.room_alias_name,
        room_version: body.room_version.map(|v| v.to_string()),
        topic: body.topic,
        public: body.visibility == ruma::api::client::room::Visibility::Public,
        appservice: caller.appservice.as_ref().map(|s| s.id().to_owned()),
    };
    let profile = state
        .services
        .rooms
        .member_profile(caller.user_id.as_str())
        .await?;
    let room_id = state
        .services
        .rooms
        .create(caller.user_id.as_str(), request, profile)
        .await?;
    Ok(RumaResponse(create_room::v3::Response::new(
        room_id.try_into().map_err(Error::internal)?,
    )))
}

pub async fn get_room_event(
    State(state): State<AppState>,
    request: Ruma<get_room_event::v3::Request>,
) -> Result<RumaResponse<get_room_event::v3::Response>> {
    let (caller, body) = request.authed()?;
    let event = state
        .services
        .timeline
        .event(&caller, body.room_id.as_str(), body.event_id.as_str())
        .await?;
    Ok(RumaResponse(get_room_event::v3::Response::new(raw(&event))))
}

pub async fn get_state_events(
    State(state): State<AppState>,
    request: Ruma<get_state_events::v3::Request>,
) -> Result<RumaResponse<get_state_events::v3::Response>> {
    let (caller, body) = request.authed()?;
    let events = state
        .services
        .timeline
        .state(&caller, body.room_id.as_str())
        .await?;
    Ok(RumaResponse(get_state_events::v3::Response::new(
        events.iter().map(raw).collect(),
    )))
}

pub async fn get_state_event_for_key(
    State(state): State<AppState>,
    request: Ruma<get_state_event_for_key::v3::Request>,
) -> Result<RumaResponse<get_state_event_for_key::v3::Response>> {
    let (caller, body) = request.authed()?;
    let timeline = &state.services.timeline;
    let (room_id, event_type) = (body.room_id.as_str(), body.event_type.to_string());
    let content = match body.format {
        get_state_event_for_key::v3::StateEventFormat::Event => {
            timeline
                .state_event_whole(&caller, room_id, &event_type, &body.state_key)
                .await?
        }
        _ => {
            timeline
                .state_event(&caller, room_id, &event_type, &body.state_key)
                .await?
        }
    };
    let content = serde_json::value::to_raw_value(&content).map_err(Error::internal)?;
    Ok(RumaResponse(get_state_event_for_key::v3::Response::new(
        content,
    )))
}

pub async fn get_member_events(
    State(state): State<AppState>,
    request: Ruma<get_member_events::v3::Request>,
) -> Result<RumaResponse<get_member_events::v3::Response>> {
    let (caller, body) = request.authed()?;
    let membership = body.membership.map(|m| m.to_string());
    let not_membership = body.not_membership.map(|m| m.to_string());
    let events = state
        .services
        .timeline
        .members(
            &caller,
            body.room_id.as_str(),
            membership.as_deref(),
            not_membership.as_deref(),
        )
        .await?;
    Ok(RumaResponse(get_member_events::v3::Response::new(
        events.iter().map(raw).collect(),
    )))
}

pub async fn joined_members(
    State(state): State<AppState>,
    request: Ruma<joined_members::v3::Request>,
) -> Result<RumaResponse<joined_members::v3::Response>> {
    let (caller, body) = request.authed()?;
    let members = state
        .services
        .timeline
        .joined_members(&caller, body.room_id.as_str())
        .await?;
    let mut joined = std::collections::BTreeMap::new();
    for (user, name, avatar) in members {
        let mut member = joined_members::v3::RoomMember::new();
        member.display_name = name;
        member.avatar_url = avatar.map(Into::into);
        joined.insert(user.try_into().map_err(Error::internal)?, member);
    }
    Ok(RumaResponse(joined_members::v3::Response::new(joined)))
}

pub async fn joined_rooms(
    State(state): State<AppState>,
    request: Ruma<joined_rooms::v3::Request>,
) -> Result<RumaResponse<joined_rooms::v3::Response>> {
    let (caller, _) = request.authed()?;
    let rooms = state.services.timeline.joined_rooms(&caller).await?;
    let rooms = rooms
        .into_iter()
        .filter_map(|r| r.try_into().ok())
        .collect();
    Ok(RumaResponse(joined_rooms::v3::Response::new(rooms)))
}

pub async fn get_message_events(
    State(state): State<AppState>,
    request: Ruma<get_message_events::v3::Request>,
) -> Result<RumaResponse<get_message_events::v3::Response>> {
    let (caller, body) = request.authed()?;
    let filter = event_filter(&body.filter);
    let page = state
        .services
        .timeline
        .messages(
            &caller,
            body.room_id.as_str(),
            PageRequest {
                from: body.from.as_deref(),
                to: body.to.as_deref(),
                backward: body.dir == Direction::Backward,
                limit: limit(Some(body.limit), 10),
            },
            &filter,
        )
        .await?;
    let mut response = get_message_events::v3::Response::new();
    response.start = page.start;
    response.end = page.end;
    response.chunk = page.chunk.iter().map(raw).collect();
    response.state = page.state.iter().map(raw).collect();
    Ok(RumaResponse(response))
}

pub async fn get_context(
    State(state): State<AppState>,
    request: Ruma<get_context::v3::Request>,
) -> Result<RumaResponse<get_context::v3::Response>> {
    let (caller, body) = request.authed()?;
    let filter = event_filter(&body.filter);
    let context = state
        .services
        .timeline
        .context(
            &caller,
            body.room_id.as_str(),
            body.event_id.as_str(),
            limit(Some(body.limit), 10),
            &filter,
        )
        .await?;
    let mut response = get_context::v3::Response::new();
    response.start = Some(context.start);
    response.end = Some(context.end);
    response.event = Some(raw(&context.event));
    response.events_before = context.before.iter().map(raw).collect();
    response.events_after = context.after.iter().map(raw).collect();
    response.state = context.state.iter().map(raw).collect();
    Ok(RumaResponse(response))
}

pub async fn get_relating_events(
    State(state): State<AppState>,
    request: Ruma<get_relating_events::v1::Request>,
) -> Result<RumaResponse<get_relating_events::v1::Response>> {
    let (caller, body) = request.authed()?;
    let (chunk, next) = state
        .services
        .timeline
        .relations(
            &caller,
            body.room_id.as_str(),
            body.event_id.as_str(),
            RelationKind {
                rel_type: None,
                event_type: None,
            },
            PageRequest {
                from: body.from.as_deref(),
                to: body.to.as_deref(),
                backward: body.dir == Direction::Backward,
                limit: limit(body.limit, 50),
            },
        )
        .await?;
    let mut response = get_relating_events::v1::Response::new(chunk.iter().map(raw).collect());
    response.next_batch = next;
    Ok(RumaResponse(response))
}

pub async fn get_relating_events_with_rel_type(
    State(state): State<AppState>,
    request: Ruma<get_relating_events_with_rel_type::v1::Request>,
) -> Result<RumaResponse<get_relating_events_with_rel_type::v1::Response>> {
    let (caller, body) = request.authed()?;
    let rel_type = body.rel_type.to_string();
    let (chunk, next) = state
        .services
        .timeline
        .relations(
            &caller,
            body.room_id.as_str(),
            body.event_id.as_str(),
            RelationKind {
                rel_type: Some(&rel_type),
                event_type: None,
            },
            PageRequest {
                from: body.from.as_deref(),
                to: body.to.as_deref(),
                backward: body.dir == Direction::Backward,
                limit: limit(body.limit, 50),
            },
        )
        .await?;
    let mut response =
        get_relating_events_with_rel_type::v1::Response::new(chunk.iter().map(raw).collect());
    response.next_batch = next;
    Ok(RumaResponse(response))
}

pub async fn get_relating_events_with_rel_type_and_event_type(
    State(state): State<AppState>,
    request: Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> Result<RumaResponse<get_relating_events_with_rel_type_and_event_type::v1::Response>> {
    let (caller, body) = request.authed()?;
    let rel_type = body.rel_type.to_string();
    let event_type = body.event_type.to_string();
    let (chunk, next) = state
        .services
        .timeline
        .relations(
            &caller,
            body.room_id.as_str(),
            body.event_id.as_str(),
            RelationKind {
                rel_type: Some(&rel_type),
                event_type: Some(&event_type),
            },
            PageRequest {
                from: body.from.as_deref(),
                to: body.to.as_deref(),
                backward: body.dir == Direction::Backward,
                limit: limit(body.limit, 50),
            },
        )
        .await?;
    let mut response = get_relating_events_with_rel_type_and_event_type::v1::Response::new(
        chunk.iter().map(raw).collect(),
    );
    response.next_batch = next;
    Ok(RumaResponse(response))
}

pub async fn get_room_aliases(
    State(state): State<AppState>,
    request: Ruma<aliases::v3::Request>,
) -> Result<RumaResponse<aliases::v3::Response>> {
    let (caller, body) = request.authed()?;
    let aliases = state
        .services
        .directory
        .room_aliases(&caller, body.room_id.as_str())
        .await?;
    let aliases = aliases
        .into_iter()
        .filter_map(|a| a.try_into().ok())
        .collect();
    Ok(RumaResponse(aliases::v3::Response::new(aliases)))
}
