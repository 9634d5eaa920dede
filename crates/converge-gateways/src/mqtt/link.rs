//! The gateway's link to the broker: the connection loop (reconnecting with backoff),
//! the subscriptions, handing each incoming message to its handler, and publishing
//! commands.

use std::sync::Arc;
use std::time::Duration;

use converge_service::{Error, Result};
use rumqttc::{Event, EventLoop, Packet, Publish, QoS};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::status::parse_status;
use super::{MAX_BACKOFF, Mqtt};
use crate::Stats;

impl Mqtt {
    /// Runs the broker connection until `stop`, reconnecting with backoff.
    pub(super) async fn connection(
        self: Arc<Self>,
        mut eventloop: EventLoop,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let event = tokio::select! {
                event = eventloop.poll() => event,
                _ = stop.changed() => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(500);
                    self.stats.set_connected(true);
                    tracing::info!(url = %self.config.url, "connected to the MQTT broker");
                    // Telemetry at QoS 0: samples are buffered for a second before they
                    // are stored, so acknowledging them promises nothing, and a broker's
                    // QoS 1 in-flight window would throttle (and, when its queue is full,
                    // drop) a fast stream. Status changes and acks keep QoS 1.
                    for (kind, qos) in [
                        ("telemetry", QoS::AtMostOnce),
                        ("status", QoS::AtLeastOnce),
                        ("acks", QoS::AtLeastOnce),
                    ] {
                        if let Err(err) = self.client.try_subscribe(self.topic("+", kind), qos) {
                            tracing::warn!(error = %err, "cannot subscribe to device topics");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => self.clone().on_publish(publish),
                Ok(_) => {}
                Err(err) => {
                    self.stats.set_connected(false);
                    Stats::add(&self.stats.errors);
                    if let Some(held) = self.throttle.allow("broker connection") {
                        tracing::warn!(url = %self.config.url, error = %err, retry_in = ?backoff, suppressed = held, "MQTT broker connection lost");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let _ = self.client.try_disconnect();
        self.stats.set_connected(false);
    }

    /// Counts and (once per interval) logs an input that is dropped.
    pub(super) fn drop_input(&self, reason: &'static str, topic: &str) {
        Stats::add(&self.stats.dropped);
        if let Some(held) = self.throttle.allow(reason) {
            tracing::warn!(%topic, reason, suppressed = held, "MQTT message dropped");
        }
    }

    /// Handles one incoming message. Never blocks the connection: room writes are spawned.
    pub(super) fn on_publish(self: Arc<Self>, publish: Publish) {
        let topic = publish.topic.as_str();
        if publish.payload.len() > self.config.max_payload_bytes {
            return self.drop_input("payload too large", topic);
        }
        let Some((device_id, kind)) = topic
            .strip_prefix(self.config.topic_prefix.as_str())
            .and_then(|t| t.strip_prefix("/devices/"))
            .and_then(|t| t.split_once('/'))
        else {
            return self.drop_input("unexpected topic", topic);
        };
        if !self
            .devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(device_id)
        {
            return self.drop_input("unregistered device", topic);
        }
        if kind == "status" && publish.payload.is_empty() {
            // An empty retained message only clears the broker's copy.
            return;
        }
        let payload: Option<Value> = serde_json::from_slice(&publish.payload).ok();
        match (kind, payload) {
            ("telemetry", Some(Value::Object(values))) => {
                Stats::add(&self.stats.messages_in);
                self.on_telemetry(device_id, values);
            }
            ("status", payload) => match parse_status(payload.as_ref(), &publish.payload) {
                Some(online) => {
                    Stats::add(&self.stats.messages_in);
                    self.on_status(device_id, online);
                }
                None => self.drop_input("status is not online/offline", topic),
            },
            ("acks", Some(Value::Object(ack))) if ack.get("id").is_some_and(Value::is_string) => {
                Stats::add(&self.stats.messages_in);
                let device_id = device_id.to_owned();
                tokio::spawn(async move { self.ack(&device_id, ack).await });
            }
            ("telemetry" | "acks", _) => self.drop_input("payload is not a JSON object", topic),
            _ => self.drop_input("unexpected topic", topic),
        }
    }

    /// Publishes a command to a device.
    pub(super) async fn publish_command(
        &self,
        device_id: &str,
        command: &str,
        args: Value,
        id: &str,
    ) -> Result<()> {
        let payload = json!({ "command": command, "args": args, "id": id }).to_string();
        self.client
            .publish(
                self.topic(device_id, "commands"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .map_err(|e| Error::Upstream(format!("cannot publish to the MQTT broker: {e}")))?;
        Stats::add(&self.stats.messages_out);
        self.context.services.analytics.count("commands", 1);
        Ok(())
    }
}
