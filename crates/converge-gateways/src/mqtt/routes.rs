//! The MQTT gateway's HTTP endpoints: device telemetry for room members
//! (`GET /_converge/client/v1/devices/{device_id}/telemetry`) and its part of the admin API
//! (`/_converge/admin/v1/rooms/{room_id}/devices`, `/_converge/admin/v1/devices/{device_id}`).

use std::sync::Arc;

use converge_service::{Result, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Mqtt;
use crate::Actor;
use crate::http::{Access, Method, Request, Route};

type Answer = std::pin::Pin<Box<dyn Future<Output = Result<Value>> + Send>>;

pub(super) fn routes(mqtt: Arc<Mqtt>) -> Vec<Route> {
    let route = |method, path, handler: fn(Arc<Mqtt>, Request) -> Answer| {
        let mqtt = mqtt.clone();
        Route::new(method, path, Access::User, move |request| {
            handler(mqtt.clone(), request)
        })
    };
    vec![
        route(
            Method::GET,
            "/_converge/client/v1/devices/{device_id}/telemetry",
            get_telemetry,
        ),
        route(
            Method::GET,
            "/_converge/admin/v1/rooms/{room_id}/devices",
            list_devices,
        ),
        route(
            Method::POST,
            "/_converge/admin/v1/rooms/{room_id}/devices",
            create_device,
        ),
        route(
            Method::DELETE,
            "/_converge/admin/v1/devices/{device_id}",
            delete_device,
        ),
        route(
            Method::PUT,
            "/_converge/admin/v1/devices/{device_id}/alerts",
            put_alerts,
        ),
    ]
}

#[derive(Deserialize)]
struct NewAlerts {
    alerts: Vec<super::alerts::Alert>,
}

fn put_alerts(mqtt: Arc<Mqtt>, request: Request) -> Answer {
    Box::pin(async move {
        let body: NewAlerts = request.json()?;
        mqtt.replace_alerts(
            request.param("device_id")?,
            Actor::of(request.caller()?),
            body.alerts,
        )
        .await?;
        Ok(json!({}))
    })
}

#[derive(Deserialize)]
struct TelemetryQuery {
    /// Milliseconds since the epoch; the last 24 hours by default.
    from: Option<i64>,
    to: Option<i64>,
    limit: Option<u32>,
}

fn get_telemetry(mqtt: Arc<Mqtt>, request: Request) -> Answer {
    Box::pin(async move {
        let query: TelemetryQuery = request.query()?;
        let device_id = request.param("device_id")?;
        let to = query.to.unwrap_or_else(now_ms);
        let from = query.from.unwrap_or(to.saturating_sub(24 * 60 * 60 * 1000));
        let limit = query.limit.unwrap_or(1000);
        let samples = mqtt
            .telemetry(
                request.caller()?.user_id.as_str(),
                device_id,
                from,
                to,
                limit,
            )
            .await?;
        let samples: Vec<Value> = samples
            .into_iter()
            .map(|s| {
                let values: Value = serde_json::from_str(&s.payload).unwrap_or(Value::Null);
                json!({ "ts": s.ts, "values": values })
            })
            .collect();
        Ok(json!({ "device_id": device_id, "samples": samples }))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    device_id: String,
}

fn create_device(mqtt: Arc<Mqtt>, request: Request) -> Answer {
    Box::pin(async move {
        let body: NewDevice = request.json()?;
        let (row, password) = mqtt
            .add_device(
                request.param("room_id")?,
                Actor::of(request.caller()?),
                &body.device_id,
            )
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
        Ok(answer)
    })
}

fn list_devices(mqtt: Arc<Mqtt>, request: Request) -> Answer {
    Box::pin(async move {
        let rows = mqtt
            .devices(request.param("room_id")?, Actor::of(request.caller()?))
            .await?;
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
        Ok(json!({ "devices": devices }))
    })
}

fn delete_device(mqtt: Arc<Mqtt>, request: Request) -> Answer {
    Box::pin(async move {
        mqtt.remove_device(
            request.param("device_id")?,
            Actor::of(request.caller()?),
            None,
        )
        .await?;
        Ok(json!({}))
    })
}
