//! Telemetry: each sample is merged into the device's latest values, checked against its
//! alert rules and buffered; every second the flusher writes the buffered samples (a
//! bounded table per device) and one coalesced state event `io.converge.device` per
//! device that changed.

use std::sync::Arc;

use converge_service::now_ms;
use converge_service::rooms::NewEvent;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::tables::TelemetryRow;
use super::{
    FLUSH_INTERVAL, MAX_PENDING_SAMPLES, MAX_STATE_BYTES, MAX_STATE_KEYS, Mqtt, STATE_EVENT,
};
use crate::Stats;

impl Mqtt {
    /// A telemetry sample: merged into the latest values, kept for charts, checked
    /// against the device's alerts.
    pub(super) fn on_telemetry(self: &Arc<Self>, device_id: &str, sample: Map<String, Value>) {
        let now = now_ms();
        let mut notices = Vec::new();
        {
            let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
            let Some(device) = devices.get_mut(device_id) else {
                return;
            };
            for (key, value) in &sample {
                device.values.insert(key.clone(), value.clone());
            }
            // The state event must stay far below the 64 KiB event limit: a device that
            // sends ever new keys keeps only its latest sample.
            if device.values.len() > MAX_STATE_KEYS
                || Value::Object(device.values.clone()).to_string().len() > MAX_STATE_BYTES
            {
                device.values = sample.clone();
            }
            device.last_seen = Some(now);
            device.online = Some(true);
            device.dirty = true;
            for (alert, state) in device.alerts.iter().zip(device.alert_state.iter_mut()) {
                let Some(holds) = alert.holds(&sample) else {
                    continue;
                };
                let value = alert.value(&sample).unwrap_or_default();
                if holds && *state != Some(true) {
                    notices.push(format!(
                        "⚠️ **{device_id}**: {} = {value} (alert: {alert})",
                        alert.field
                    ));
                } else if !holds && *state == Some(true) {
                    notices.push(format!(
                        "✅ **{device_id}**: {} = {value}, alert {alert} cleared",
                        alert.field
                    ));
                }
                *state = Some(holds);
            }
            if !notices.is_empty() {
                let (room, user) = (device.row.room_id.clone(), device.row.user_id.clone());
                let mqtt = self.clone();
                tokio::spawn(async move {
                    for text in notices {
                        mqtt.post_notice(&room, &user, &text, None).await;
                    }
                });
            }
        }
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() >= MAX_PENDING_SAMPLES {
            drop(samples);
            let topic = self.topic(device_id, "telemetry");
            return self.drop_input("telemetry arrives faster than it is stored", &topic);
        }
        samples.push(TelemetryRow {
            device_id: device_id.to_owned(),
            ts: now,
            payload: Value::Object(sample).to_string(),
        });
    }

    /// Writes the coalesced state of dirty devices and the pending samples, every second.
    pub(super) async fn flusher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.changed() => true,
            };
            let dirty: Vec<String> = self
                .devices
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(_, d)| d.dirty)
                .map(|(id, _)| id.clone())
                .collect();
            for device_id in dirty {
                self.flush_device(&device_id).await;
            }
            let samples =
                std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
            if !samples.is_empty() {
                match self
                    .store
                    .append_telemetry(&samples, self.config.max_samples_per_device)
                    .await
                {
                    Ok(()) => self
                        .context
                        .services
                        .analytics
                        .count("device_samples", samples.len() as i64),
                    Err(err) => {
                        Stats::add(&self.stats.errors);
                        tracing::warn!(error = %err, lost = samples.len(), "cannot store telemetry samples");
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Sends a device's state event if it changed since the last one.
    pub(super) async fn flush_device(&self, device_id: &str) {
        let _flushing = self.flushing.lock().await;
        let (room, user, content) = {
            let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
            let Some(device) = devices.get_mut(device_id).filter(|d| d.dirty) else {
                return;
            };
            device.dirty = false;
            let content = json!({
                "device_id": device_id,
                "values": integers_only(Value::Object(device.values.clone())),
                "last_seen": device.last_seen,
                "online": device.online.unwrap_or(false),
            });
            (
                device.row.room_id.clone(),
                device.row.user_id.clone(),
                content,
            )
        };
        let event = NewEvent::state(STATE_EVENT, device_id, content);
        if let Err(err) = self.context.services.rooms.send(&room, &user, event).await {
            Stats::add(&self.stats.errors);
            if let Some(held) = self.throttle.allow("state event refused") {
                tracing::warn!(device = device_id, error = %err, suppressed = held, "cannot update a device's state event");
            }
        }
    }
}

/// `value` with every number Matrix events cannot hold (canonical JSON allows only
/// integers within ±(2^53 - 1)) written as a string, e.g. `21.5` as `"21.5"`.
fn integers_only(value: Value) -> Value {
    const MAX_SAFE: i64 = (1 << 53) - 1;
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) if (-MAX_SAFE..=MAX_SAFE).contains(&i) => Value::Number(n),
            _ => Value::String(n.to_string()),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integers_only).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integers_only(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn numbers_events_cannot_hold_become_strings() {
        let value =
            json!({ "t": 21.5, "n": 3, "big": 9007199254740993u64, "deep": [{ "x": -0.5 }] });
        assert_eq!(
            integers_only(value),
            json!({ "t": "21.5", "n": 3, "big": "9007199254740993", "deep": [{ "x": "-0.5" }] })
        );
    }
}
