//! End-to-end encryption: `/keys/upload`, `/keys/query`, `/keys/claim`, `/keys/changes`,
//! `/keys/device_signing/upload`, `/keys/signatures/upload`, `/sendToDevice`, and the
//! server-side key backup under `/room_keys`.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption> and
//! <https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups>.

use axum::Json;
use axum::extract::State;
use converge_service::backup::UploadedSession;
use converge_service::token::SyncToken;
use ruma::api::client::backup::{
    add_backup_keys, add_backup_keys_for_room, add_backup_keys_for_session, create_backup_version,
    delete_backup_keys, delete_backup_keys_for_room, delete_backup_keys_for_session,
    delete_backup_version, get_backup_info, get_backup_keys, get_backup_keys_for_room,
    get_backup_keys_for_session, get_latest_backup_info, update_backup_version,
};
use ruma::api::client::keys::{
    claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys,
};
use ruma::api::client::to_device::send_event_to_device;
use ruma::serde::Raw;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

/// A raw JSON part of a request as a value (the services check its shape themselves).
fn value<T>(raw: &Raw<T>) -> Result<Value> {
    Ok(serde_json::from_str(raw.json().get())
        .map_err(|_| Error::BadJson("not valid JSON".into()))?)
}

pub async fn upload_keys(
    State(state): State<AppState>,
    request: Ruma<upload_keys::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let device_keys = body.device_keys.as_ref().map(value).transpose()?;
    let one_time = body
        .one_time_keys
        .iter()
        .map(|(id, key)| Ok((id.to_string(), value(key)?)))
        .collect::<Result<Vec<_>>>()?;
    let fallback = body
        .fallback_keys
        .iter()
        .map(|(id, key)| Ok((id.to_string(), value(key)?)))
        .collect::<Result<Vec<_>>>()?;
    let counts = state
        .services
        .e2ee
        .upload(&caller, device_keys, one_time, fallback)
        .await?;
    Ok(Json(json!({ "one_time_key_counts": counts })))
}

pub async fn get_keys(
    State(state): State<AppState>,
    request: Ruma<get_keys::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let wanted = body
        .device_keys
        .into_iter()
        .map(|(user, devices)| {
            (
                user.to_string(),
                devices.into_iter().map(|d| d.to_string()).collect(),
            )
        })
        .collect();
    Ok(Json(state.services.e2ee.query(&caller, wanted).await?))
}

pub async fn claim_keys(
    State(state): State<AppState>,
    request: Ruma<claim_keys::v3::Request>,
) -> Result<Json<Value>> {
    let (_, body) = request.authed()?;
    let wanted = body
        .one_time_keys
        .into_iter()
        .flat_map(|(user, devices)| {
            devices.into_iter().map(move |(device, algorithm)| {
                (user.to_string(), device.to_string(), algorithm.to_string())
            })
        })
        .collect();
    Ok(Json(state.services.e2ee.claim(wanted).await?))
}

pub async fn get_key_changes(
    State(state): State<AppState>,
    request: Ruma<get_key_changes::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let from = SyncToken::parse(&body.from)?;
    let to = SyncToken::parse(&body.to)?;
    let delta = state
        .services
        .e2ee
        .changes(&caller, from, to, &[], &[])
        .await?;
    Ok(Json(
        json!({ "changed": delta.changed, "left": delta.left }),
    ))
}

pub async fn upload_signing_keys(
    State(state): State<AppState>,
    request: Ruma<upload_signing_keys::v3::Request>,
) -> Result<RumaResponse<upload_signing_keys::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .e2ee
        .upload_signing_keys(
            &caller,
            body.master_key.as_ref().map(value).transpose()?,
            body.self_signing_key.as_ref().map(value).transpose()?,
            body.user_signing_key.as_ref().map(value).transpose()?,
            body.auth,
        )
        .await?;
    Ok(RumaResponse(upload_signing_keys::v3::Response::new()))
}

pub async fn upload_signatures(
    State(state): State<AppState>,
    request: Ruma<upload_signatures::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let mut signed = Vec::new();
    for (user, keys) in &body.signed_keys {
        for (key_id, object) in keys.iter() {
            let object: Value = serde_json::from_str(object.get())
                .map_err(|_| Error::BadJson("a signed key is not valid JSON".into()))?;
            signed.push((user.to_string(), key_id.to_owned(), object));
        }
    }
    Ok(Json(
        state
            .services
            .e2ee
            .upload_signatures(&caller, signed)
            .await?,
    ))
}

pub async fn send_to_device(
    State(state): State<AppState>,
    request: Ruma<send_event_to_device::v3::Request>,
) -> Result<RumaResponse<send_event_to_device::v3::Response>> {
    let (caller, body) = request.authed()?;
    let mut messages = Vec::new();
    for (user, devices) in &body.messages {
        for (device, content) in devices {
            messages.push((user.to_string(), device.to_string(), value(content)?));
        }
    }
    state
        .services
        .e2ee
        .send_to_device(
            &caller,
            &body.event_type.to_string(),
            body.txn_id.as_str(),
            messages,
        )
        .await?;
    Ok(RumaResponse(send_event_to_device::v3::Response::new()))
}

pub async fn create_backup_version(
    State(state): State<AppState>,
    request: Ruma<create_backup_version::v3::Request>,
) -> Result<RumaResponse<create_backup_version::v3::Response>> {
    let (caller, body) = request.authed()?;
    let algorithm = value(&body.algorithm)?;
    let version = state
        .services
        .backup
        .create_version(
            &caller,
            algorithm["algorithm"].as_str().unwrap_or_default(),
            &algorithm["auth_data"],
        )
        .await?;
    Ok(RumaResponse(create_backup_version::v3::Response::new(
        version,
    )))
}

pub async fn get_latest_backup_info(
    State(state): State<AppState>,
    request: Ruma<get_latest_backup_info::v3::Request>,
) -> Result<Json<Value>> {
    let caller = request.caller()?;
    Ok(Json(state.services.backup.version(caller, None).await?))
}

pub async fn get_backup_info(
    State(state): State<AppState>,
    request: Ruma<get_backup_info::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    Ok(Json(
        state
            .services
            .backup
            .version(&caller, Some(&body.version))
            .await?,
    ))
}

pub async fn update_backup_version(
    State(state): State<AppState>,
    request: Ruma<update_backup_version::v3::Request>,
) -> Result<RumaResponse<update_backup_version::v3::Response>> {
    let (caller, body) = request.authed()?;
    let algorithm = value(&body.algorithm)?;
    state
        .services
        .backup
        .update_version(
            &caller,
            &body.version,
            algorithm["algorithm"].as_str().unwrap_or_default(),
            &algorithm["auth_data"],
            algorithm["version"].as_str(),
        )
        .await?;
    Ok(RumaResponse(update_backup_version::v3::Response::new()))
}

pub async fn delete_backup_version(
    State(state): State<AppState>,
    request: Ruma<delete_backup_version::v3::Request>,
) -> Result<RumaResponse<delete_backup_version::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .backup
        .delete_version(&caller, &body.version)
        .await?;
    Ok(RumaResponse(delete_backup_version::v3::Response::new()))
}

/// The answer of every backup key write: the backup's etag and how many keys it holds.
fn etag_count((etag, count): (String, i64)) -> Json<Value> {
    Json(json!({ "etag": etag, "count": count }))
}

fn sessions<T>(
    room_id: &str,
    sessions: impl IntoIterator<Item = (String, Raw<T>)>,
) -> Result<Vec<UploadedSession>> {
    sessions
        .into_iter()
        .map(|(session_id, data)| {
            Ok(UploadedSession {
                room_id: room_id.to_owned(),
                session_id,
                data: value(&data)?,
            })
        })
        .collect()
}

pub async fn add_backup_keys(
    State(state): State<AppState>,
    request: Ruma<add_backup_keys::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let mut uploaded = Vec::new();
    for (room_id, backup) in body.rooms {
        uploaded.extend(sessions(room_id.as_str(), backup.sessions)?);
    }
    let written = state
        .services
        .backup
        .put(&caller, &body.version, uploaded)
        .await?;
    Ok(etag_count(written))
}

pub async fn add_backup_keys_for_room(
    State(state): State<AppState>,
    request: Ruma<add_backup_keys_for_room::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let uploaded = sessions(body.room_id.as_str(), body.sessions)?;
    let written = state
        .services
        .backup
        .put(&caller, &body.version, uploaded)
        .await?;
    Ok(etag_count(written))
}

pub async fn add_backup_keys_for_session(
    State(state): State<AppState>,
    request: Ruma<add_backup_keys_for_session::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let uploaded = sessions(
        body.room_id.as_str(),
        [(body.session_id, body.session_data)],
    )?;
    let written = state
        .services
        .backup
        .put(&caller, &body.version, uploaded)
        .await?;
    Ok(etag_count(written))
}

pub async fn get_backup_keys(
    State(state): State<AppState>,
    request: Ruma<get_backup_keys::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    Ok(Json(
        state
            .services
            .backup
            .get(&caller, &body.version, None, None)
            .await?,
    ))
}

pub async fn get_backup_keys_for_room(
    State(state): State<AppState>,
    request: Ruma<get_backup_keys_for_room::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    Ok(Json(
        state
            .services
            .backup
            .get(&caller, &body.version, Some(body.room_id.as_str()), None)
            .await?,
    ))
}

pub async fn get_backup_keys_for_session(
    State(state): State<AppState>,
    request: Ruma<get_backup_keys_for_session::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    Ok(Json(
        state
            .services
            .backup
            .get(
                &caller,
                &body.version,
                Some(body.room_id.as_str()),
                Some(&body.session_id),
            )
            .await?,
    ))
}

pub async fn delete_backup_keys(
    State(state): State<AppState>,
    request: Ruma<delete_backup_keys::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let written = state
        .services
        .backup
        .delete(&caller, &body.version, None, None)
        .await?;
    Ok(etag_count(written))
}

pub async fn delete_backup_keys_for_room(
    State(state): State<AppState>,
    request: Ruma<delete_backup_keys_for_room::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let written = state
        .services
        .backup
        .delete(&caller, &body.version, Some(body.room_id.as_str()), None)
        .await?;
    Ok(etag_count(written))
}

pub async fn delete_backup_keys_for_session(
    State(state): State<AppState>,
    request: Ruma<delete_backup_keys_for_session::v3::Request>,
) -> Result<Json<Value>> {
    let (caller, body) = request.authed()?;
    let written = state
        .services
        .backup
        .delete(
            &caller,
            &body.version,
            Some(body.room_id.as_str()),
            Some(&body.session_id),
        )
        .await?;
    Ok(etag_count(written))
}
