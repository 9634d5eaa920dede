//! Devices: `GET /devices`, `GET/PUT/DELETE /devices/{deviceId}`, `POST /delete_devices`.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#device-management>.

use axum::extract::State;
use ruma::MilliSecondsSinceUnixEpoch;
use ruma::UInt;
use ruma::api::client::device::{
    self, delete_device, delete_devices, get_device, get_devices, update_device,
};

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

fn to_ruma(d: converge_service::accounts::Device) -> device::Device {
    let mut out = device::Device::new(d.device_id.into());
    out.display_name = d.display_name;
    out.last_seen_ip = d.last_seen_ip;
    out.last_seen_ts = d
        .last_seen_ts
        .and_then(|ts| UInt::try_from(ts).ok())
        .map(MilliSecondsSinceUnixEpoch);
    out
}

pub async fn get_devices(
    State(state): State<AppState>,
    request: Ruma<get_devices::v3::Request>,
) -> Result<RumaResponse<get_devices::v3::Response>> {
    let devices = state.services.devices.list(request.caller()?).await?;
    Ok(RumaResponse(get_devices::v3::Response::new(
        devices.into_iter().map(to_ruma).collect(),
    )))
}

pub async fn get_device(
    State(state): State<AppState>,
    request: Ruma<get_device::v3::Request>,
) -> Result<RumaResponse<get_device::v3::Response>> {
    let device = state
        .services
        .devices
        .get(request.caller()?, request.body.device_id.as_str())
        .await?;
    Ok(RumaResponse(get_device::v3::Response::new(to_ruma(device))))
}

pub async fn update_device(
    State(state): State<AppState>,
    request: Ruma<update_device::v3::Request>,
) -> Result<RumaResponse<update_device::v3::Response>> {
    let caller = request.caller()?;
    let body = &request.body;
    state
        .services
        .devices
        .rename(
            caller,
            body.device_id.as_str(),
            body.display_name.as_deref(),
        )
        .await?;
    Ok(RumaResponse(update_device::v3::Response::new()))
}

pub async fn delete_device(
    State(state): State<AppState>,
    request: Ruma<delete_device::v3::Request>,
) -> Result<RumaResponse<delete_device::v3::Response>> {
    let (caller, body) = request.authed()?;
    // Deleting a device the caller does not have is a 404, before asking for a password.
    state
        .services
        .devices
        .get(&caller, body.device_id.as_str())
        .await?;
    state
        .services
        .devices
        .delete(&caller, &[body.device_id.to_string()], body.auth)
        .await?;
    Ok(RumaResponse(delete_device::v3::Response::new()))
}

pub async fn delete_devices(
    State(state): State<AppState>,
    request: Ruma<delete_devices::v3::Request>,
) -> Result<RumaResponse<delete_devices::v3::Response>> {
    let (caller, body) = request.authed()?;
    let ids: Vec<String> = body.devices.iter().map(ToString::to_string).collect();
    state
        .services
        .devices
        .delete(&caller, &ids, body.auth)
        .await?;
    Ok(RumaResponse(delete_devices::v3::Response::new()))
}
