//! Push rules (`/pushrules`), pushers (`/pushers`, `/pushers/set`) and
//! `GET /notifications`.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#push-notifications>.

use axum::Json;
use axum::extract::State;
use converge_service::pushers::PusherRequest;
use ruma::api::client::push::{
    delete_pushrule, get_notifications, get_pushers, get_pushrule, get_pushrule_actions,
    get_pushrule_enabled, get_pushrules_all, get_pushrules_global_scope, set_pusher, set_pushrule,
    set_pushrule_actions, set_pushrule_enabled,
};
use serde_json::{Value, json};

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

pub async fn get_pushrules_all(
    State(state): State<AppState>,
    request: Ruma<get_pushrules_all::v3::Request>,
) -> Result<RumaResponse<get_pushrules_all::v3::Response>> {
    let caller = request.caller()?;
    let ruleset = state.services.push.all(caller).await?;
    Ok(RumaResponse(get_pushrules_all::v3::Response::new(ruleset)))
}

pub async fn get_pushrules_global_scope(
    State(state): State<AppState>,
    request: Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<RumaResponse<get_pushrules_global_scope::v3::Response>> {
    let caller = request.caller()?;
    let ruleset = state.services.push.all(caller).await?;
    Ok(RumaResponse(get_pushrules_global_scope::v3::Response::new(
        ruleset,
    )))
}

pub async fn get_pushrule(
    State(state): State<AppState>,
    request: Ruma<get_pushrule::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    Ok(Json(
        state
            .services
            .push
            .rule(&caller, body.kind, &body.rule_id)
            .await?,
    ))
}

pub async fn set_pushrule(
    State(state): State<AppState>,
    request: Ruma<set_pushrule::v3::Request>,
) -> Result<RumaResponse<set_pushrule::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .push
        .put(
            &caller,
            body.rule,
            body.before.as_deref(),
            body.after.as_deref(),
        )
        .await?;
    Ok(RumaResponse(set_pushrule::v3::Response::new()))
}

pub async fn delete_pushrule(
    State(state): State<AppState>,
    request: Ruma<delete_pushrule::v3::Request>,
) -> Result<RumaResponse<delete_pushrule::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .push
        .delete(&caller, body.kind, &body.rule_id)
        .await?;
    Ok(RumaResponse(delete_pushrule::v3::Response::new()))
}

pub async fn get_pushrule_enabled(
    State(state): State<AppState>,
    request: Ruma<get_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<get_pushrule_enabled::v3::Response>> {
    let (caller, body) = request.authed()?;
    let enabled = state
        .services
        .push
        .enabled(&caller, body.kind, &body.rule_id)
        .await?;
    Ok(RumaResponse(get_pushrule_enabled::v3::Response::new(
        enabled,
    )))
}

pub async fn set_pushrule_enabled(
    State(state): State<AppState>,
    request: Ruma<set_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<set_pushrule_enabled::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .push
        .set_enabled(&caller, body.kind, &body.rule_id, body.enabled)
        .await?;
    Ok(RumaResponse(set_pushrule_enabled::v3::Response::new()))
}

pub async fn get_pushrule_actions(
    State(state): State<AppState>,
    request: Ruma<get_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<get_pushrule_actions::v3::Response>> {
    let (caller, body) = request.authed()?;
    let actions = state
        .services
        .push
        .actions(&caller, body.kind, &body.rule_id)
        .await?;
    Ok(RumaResponse(get_pushrule_actions::v3::Response::new(
        actions,
    )))
}

pub async fn set_pushrule_actions(
    State(state): State<AppState>,
    request: Ruma<set_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<set_pushrule_actions::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .push
        .set_actions(&caller, body.kind, &body.rule_id, body.actions)
        .await?;
    Ok(RumaResponse(set_pushrule_actions::v3::Response::new()))
}

pub async fn get_pushers(
    State(state): State<AppState>,
    request: Ruma<get_pushers::v3::Request>,
) -> Result<Json<Value>> {
    let caller = request.caller()?;
    let pushers: Vec<Value> = state
        .services
        .pushers
        .list(caller)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "pushkey": p.pushkey,
                "kind": p.kind,
                "app_id": p.app_id,
                "app_display_name": p.app_display_name,
                "device_display_name": p.device_display_name,
                "profile_tag": p.profile_tag,
                "lang": p.lang,
                "data": serde_json::from_str::<Value>(&p.data).unwrap_or_default(),
            })
        })
        .collect();
    Ok(Json(json!({ "pushers": pushers })))
}

pub async fn set_pusher(
    State(state): State<AppState>,
    request: Ruma<set_pusher::v3::Request>,
) -> Result<RumaResponse<set_pusher::v3::Response>> {
    let (caller, body) = request.authed()?;
    let pusher = match body.action {
        set_pusher::v3::PusherAction::Post(post) => {
            let json = serde_json::to_value(&post.pusher).unwrap_or_default();
            let text = |name: &str| json[name].as_str().unwrap_or_default().to_owned();
            PusherRequest {
                kind: Some(text("kind")),
                app_id: text("app_id"),
                pushkey: text("pushkey"),
                app_display_name: text("app_display_name"),
                device_display_name: text("device_display_name"),
                profile_tag: json["profile_tag"].as_str().map(str::to_owned),
                lang: text("lang"),
                data: json["data"].clone(),
                append: post.append,
            }
        }
        set_pusher::v3::PusherAction::Delete(ids) => PusherRequest {
            app_id: ids.app_id,
            pushkey: ids.pushkey,
            ..PusherRequest::default()
        },
        _ => PusherRequest::default(),
    };
    state.services.pushers.set(&caller, pusher).await?;
    Ok(RumaResponse(set_pusher::v3::Response::new()))
}

pub async fn get_notifications(
    State(state): State<AppState>,
    request: Ruma<get_notifications::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let limit = body
        .limit
        .map(|l| u32::try_from(u64::from(l)).unwrap_or(u32::MAX));
    let only_highlight = body.only.as_deref() == Some("highlight");
    Ok(Json(
        state
            .services
            .push
            .notifications(
                &caller,
                body.from.as_deref(),
                limit,
                only_highlight,
                &state.services.timeline,
            )
            .await?,
    ))
}
