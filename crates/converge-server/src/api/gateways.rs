//! Gateway endpoints: incoming webhooks (`POST /_converge/hooks/{id}`), device telemetry
//! (`GET /_converge/client/v1/devices/{id}/telemetry`) and the gateway admin API under
//! `/_converge/admin/v1/` (server admins, or members with the power to change the room's state).

use axum::extract::{Path, Query, Request, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::header;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ruma::read_body;
use super::{Authed, JsonBody};
use crate::error::{Error, Result};
use crate::gateways::Actor;
use crate::gateways::mqtt::Mqtt;
use crate::gateways::signature;
use crate::gateways::webhooks::NewSubscription;
use crate::service::accounts::Caller;
use crate::service::now_ms;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_converge/hooks/{hook_id}", post(post_hook))
        .route(
            "/_converge/client/v1/devices/{device_id}/telemetry",
            get(get_telemetry),
        )
        .route(
            "/_converge/admin/v1/rooms/{room_id}/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route(
            "/_converge/admin/v1/webhooks/{hook_id}",
            delete(delete_webhook),
        )
        .route(
            "/_converge/admin/v1/rooms/{room_id}/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/_converge/admin/v1/subscriptions/{sub_id}",
            delete(delete_subscription),
        )
        .route(
            "/_converge/admin/v1/rooms/{room_id}/devices",
            get(list_devices).post(create_device),
        )
        .route(
            "/_converge/admin/v1/devices/{device_id}",
            delete(delete_device),
        )
}

fn actor(caller: &Caller) -> Actor<'_> {
    Actor {
        user_id: caller.user_id.as_str(),
        server_admin: caller.is_admin,
    }
}

async fn post_hook(
    State(state): State<AppState>,
    Path(hook_id): Path<String>,
    request: Request,
) -> Result<Json<Value>> {
    let webhooks = &state.gateways.webhooks;
    let (parts, body) = request.into_parts();
    let body = read_body(&parts, body, webhooks.max_body_bytes()).await?;
    let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let event_id = webhooks
        .receive(
            &hook_id,
            header_str(header::CONTENT_TYPE.as_str()),
            header_str(signature::HEADER),
            &body,
        )
        .await?;
    Ok(Json(json!({ "event_id": event_id })))
}

#[derive(Deserialize)]
struct TelemetryQuery {
    /// Milliseconds since the epoch; the last 24 hours by default.
    from: Option<i64>,
    to: Option<i64>,
    limit: Option<u32>,
}

fn mqtt(state: &AppState) -> Result<&Mqtt> {
    state
        .gateways
        .mqtt
        .as_deref()
        .ok_or_else(|| Error::NotFound("the MQTT gateway is not enabled on this server".into()))
}

async fn get_telemetry(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(device_id): Path<String>,
    query: std::result::Result<Query<TelemetryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(query) = query.map_err(|e| Error::InvalidParam(e.body_text()))?;
    let to = query.to.unwrap_or_else(now_ms);
    let from = query.from.unwrap_or(to.saturating_sub(24 * 60 * 60 * 1000));
    let limit = query.limit.unwrap_or(1000);
    let samples = mqtt(&state)?
        .telemetry(caller.user_id.as_str(), &device_id, from, to, limit)
        .await?;
    let samples: Vec<Value> = samples
        .into_iter()
        .map(|s| {
            let values: Value = serde_json::from_str(&s.payload).unwrap_or(Value::Null);
            json!({ "ts": s.ts, "values": values })
        })
        .collect();
    Ok(Json(json!({ "device_id": device_id, "samples": samples })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    name: Option<String>,
    #[serde(default)]
    signed: bool,
}

async fn create_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<NewWebhook>,
) -> Result<Json<Value>> {
    let webhooks = &state.gateways.webhooks;
    let hook = webhooks
        .create_hook(&room_id, actor(&caller), body.name.as_deref(), body.signed)
        .await?;
    Ok(Json(json!({
        "hook_id": hook.hook_id,
        "url": webhooks.hook_url(&hook.hook_id),
        "secret": hook.secret,
        "user_id": hook.user_id,
        "room_id": hook.room_id,
        "signed": hook.signed,
    })))
}

async fn list_webhooks(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let webhooks = &state.gateways.webhooks;
    let hooks = webhooks.hooks(&room_id, actor(&caller)).await?;
    let hooks: Vec<Value> = hooks
        .iter()
        .map(|h| {
            json!({
                "hook_id": h.hook_id,
                "url": webhooks.hook_url(&h.hook_id),
                "user_id": h.user_id,
                "signed": h.signed,
                "created_by": h.created_by,
                "created_ts": h.created_ts,
            })
        })
        .collect();
    Ok(Json(json!({ "webhooks": hooks })))
}

async fn delete_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(hook_id): Path<String>,
) -> Result<Json<Value>> {
    state
        .gateways
        .webhooks
        .revoke_hook(&hook_id, actor(&caller), None)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscriptionBody {
    url: String,
    #[serde(default)]
    event_types: Vec<String>,
    prefix: Option<String>,
    regex: Option<String>,
}

async fn create_subscription(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<NewSubscriptionBody>,
) -> Result<Json<Value>> {
    let pattern = match (body.prefix, body.regex) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidParam(
                "give a prefix or a regex, not both".into(),
            ));
        }
        (Some(prefix), None) => Some(format!("^{}", regex::escape(&prefix))),
        (None, regex) => regex,
    };
    let request = NewSubscription {
        url: body.url,
        event_types: body.event_types,
        pattern,
    };
    let sub = state
        .gateways
        .webhooks
        .subscribe(&room_id, actor(&caller), request)
        .await?;
    Ok(Json(json!({
        "subscription_id": sub.sub_id,
        "url": sub.url,
        "secret": sub.secret,
        "room_id": sub.room_id,
        "event_types": sub.event_types,
        "pattern": sub.pattern,
    })))
}

async fn list_subscriptions(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let subs = state
        .gateways
        .webhooks
        .subscriptions(&room_id, actor(&caller))
        .await?;
    let subs: Vec<Value> = subs
        .iter()
        .map(|(s, queued)| {
            json!({
                "subscription_id": s.sub_id,
                "url": s.url,
                "event_types": s.event_types,
                "pattern": s.pattern,
                "queued": queued,
                "failures": s.failures,
                "last_error": s.last_error,
            })
        })
        .collect();
    Ok(Json(json!({ "subscriptions": subs })))
}

async fn delete_subscription(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(sub_id): Path<String>,
) -> Result<Json<Value>> {
    state
        .gateways
        .webhooks
        .unsubscribe(&sub_id, actor(&caller), None)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    device_id: String,
}

async fn create_device(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<NewDevice>,
) -> Result<Json<Value>> {
    let mqtt = mqtt(&state)?;
    let (row, password) = mqtt
        .add_device(&room_id, actor(&caller), &body.device_id)
        .await?;
    let mut answer = json!({
        "device_id": row.device_id,
        "user_id": row.user_id,
        "room_id": row.room_id,
    });
    // Only the embedded broker checks device logins.
    if mqtt.embedded_broker().is_some() {
        answer["mqtt_username"] = json!(row.device_id);
        answer["mqtt_password"] = json!(password);
    }
    Ok(Json(answer))
}

async fn list_devices(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let rows = mqtt(&state)?.devices(&room_id, actor(&caller)).await?;
    let devices: Vec<Value> = rows
        .iter()
        .map(|d| {
            json!({
                "device_id": d.device_id,
                "user_id": d.user_id,
                "alerts": serde_json::from_str::<Value>(&d.alerts).unwrap_or(Value::Null),
                "created_by": d.created_by,
                "created_ts": d.created_ts,
            })
        })
        .collect();
    Ok(Json(json!({ "devices": devices })))
}

async fn delete_device(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(device_id): Path<String>,
) -> Result<Json<Value>> {
    mqtt(&state)?
        .remove_device(&device_id, actor(&caller), None)
        .await?;
    Ok(Json(json!({})))
}
