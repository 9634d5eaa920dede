//! The MQTT gateway: devices on a broker become virtual users (`@device-<id>`) of the room
//! they are bound to.
//!
//! Topics under `<prefix>/devices/<id>/`: `telemetry` (JSON; coalesced into the state
//! event `io.converge.device` at most once a second, every sample kept in a bounded
//! table), `status` (`online`/`offline`, retained, the device's last will; changes post a
//! notice), `commands` (published by us) and `acks` (posted back as replies). The
//! connection is re-established with backoff whenever the broker goes away.

mod alerts;
pub mod broker;
mod devices;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use converge_store::{DeviceRow, TelemetryRow};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use alerts::Alert;

use super::{Context, LogThrottle, Stats, random_id};
use crate::config::MqttConfig;
use crate::error::{Error, Result};
use crate::service::now_ms;
use crate::service::rooms::NewEvent;
use broker::{Broker, Identity};

/// The state event holding a device's latest values (state key: the device ID).
pub const STATE_EVENT: &str = "io.converge.device";
/// An event that commands a device: `{"device_id", "command", "args"}`.
pub const COMMAND_EVENT: &str = "io.converge.device.command";

/// Most keys and bytes of a device's merged values in its state event.
const MAX_STATE_KEYS: usize = 200;
const MAX_STATE_BYTES: usize = 32 * 1024;
/// Samples held between two writes; more are dropped (and counted).
const MAX_PENDING_SAMPLES: usize = 50_000;
/// Status notices a device may cause per minute; later changes update its state only.
const STATUS_NOTICES_PER_MINUTE: usize = 5;
/// How often coalesced telemetry is written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The longest wait before reconnecting to the broker.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Packets larger than this break the connection (the client library's limit); the
/// configured payload limit, far below, drops them politely first.
const MAX_PACKET: usize = 1024 * 1024;

/// What the gateway knows of a registered device.
struct Device {
    row: DeviceRow,
    alerts: Vec<Alert>,
    /// Whether each alert held at the last sample.
    alert_state: Vec<Option<bool>>,
    values: Map<String, Value>,
    last_seen: Option<i64>,
    online: Option<bool>,
    /// The state event is behind the values.
    dirty: bool,
    /// When the latest status notices were posted, to hush a flapping device.
    status_notices: std::collections::VecDeque<std::time::Instant>,
}

pub struct Mqtt {
    context: Arc<Context>,
    config: MqttConfig,
    client: AsyncClient,
    eventloop: Mutex<Option<EventLoop>>,
    stats: Stats,
    throttle: LogThrottle,
    devices: Mutex<HashMap<String, Device>>,
    /// Samples not yet written to the store.
    samples: Mutex<Vec<TelemetryRow>>,
    /// Held while a state event is taken and sent, so a newer state is never overtaken
    /// by an older one.
    flushing: tokio::sync::Mutex<()>,
    broker: Option<Embedded>,
    /// Each device's password hash, for the embedded broker's logins.
    secrets: Secrets,
}

/// The embedded broker, when it runs.
struct Embedded {
    broker: Arc<Broker>,
    addr: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
}

type Secrets = Arc<Mutex<HashMap<String, String>>>;

/// The gateway's own login on the embedded broker (`$` is never in a device ID).
const GATEWAY_LOGIN: &str = "$converge";

/// Checks logins on the embedded broker: the gateway's secret, or a device's password
/// against its stored hash, in constant time.
fn authenticator(secrets: Secrets, gateway_secret: String) -> broker::Authenticate {
    Arc::new(move |username: &str, password: &str| {
        if username == GATEWAY_LOGIN {
            return same(password.as_bytes(), gateway_secret.as_bytes())
                .then_some(Identity::Gateway);
        }
        let offered = password_hash(password);
        let secrets = secrets.lock().unwrap_or_else(|e| e.into_inner());
        let stored = secrets.get(username)?;
        same(offered.as_bytes(), stored.as_bytes()).then(|| Identity::Device(username.to_owned()))
    })
}

/// SHA-256 of a device password, in hex.
pub fn password_hash(password: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(password.as_bytes()))
}

/// Compares in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Mqtt {
    /// Loads the registered devices and prepares the connection (made by [`Self::spawn`]).
    pub async fn new(
        context: Arc<Context>,
        config: &MqttConfig,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Self>> {
        let secrets: Secrets = Arc::default();
        let gateway_secret = random_id(32);
        let mut broker = None;
        let (host, port) = if config.broker.enabled {
            let embedded = Broker::new(
                &config.topic_prefix,
                MAX_PACKET,
                config.broker.max_connections,
                authenticator(secrets.clone(), gateway_secret.clone()),
            );
            let listen = config.broker.listen;
            let (bound, task) = embedded.listen(listen, stop).await.map_err(|e| {
                Error::internal(format!(
                    "the embedded MQTT broker cannot listen on {listen}: {e}"
                ))
            })?;
            let host = if bound.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                bound.ip().to_string()
            };
            broker = Some(Embedded {
                broker: embedded,
                addr: bound,
                task: Mutex::new(Some(task)),
            });
            (host, bound.port())
        } else {
            config.address().map_err(Error::internal)?
        };
        let mut options = MqttOptions::new(&config.client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if broker.is_some() {
            options.set_credentials(GATEWAY_LOGIN, gateway_secret);
        } else if !config.username.is_empty() {
            options.set_credentials(&config.username, &config.password);
        }
        let (client, eventloop) = AsyncClient::new(options, 256);
        let mqtt = Arc::new(Self {
            context,
            config: config.clone(),
            client,
            eventloop: Mutex::new(Some(eventloop)),
            stats: Stats::new("mqtt", true),
            throttle: LogThrottle::new(Duration::from_secs(60)),
            devices: Mutex::default(),
            samples: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
            broker,
            secrets,
        });
        for row in mqtt.context.services.store.device_rows(None).await? {
            mqtt.load_device(row).await;
        }
        Ok(mqtt)
    }

    /// The embedded broker's address and clients, if it runs.
    pub fn broker_report(&self) -> Option<Value> {
        self.broker.as_ref().map(|b| {
            json!({
                "listen": b.addr.to_string(),
                "clients": b.broker.clients(),
                "undelivered": b.broker.dropped.load(std::sync::atomic::Ordering::Relaxed),
            })
        })
    }

    /// Ends a removed device's connections to the embedded broker.
    fn disconnect_device(&self, device_id: &str) {
        if let Some(embedded) = &self.broker {
            embedded.broker.disconnect_device(device_id);
        }
    }

    /// Whether devices log in to the embedded broker (and so need their password).
    pub fn embedded_broker(&self) -> Option<SocketAddr> {
        self.broker.as_ref().map(|b| b.addr)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Starts the connection and the flusher.
    pub fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let Some(eventloop) = self
            .eventloop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Vec::new();
        };
        let mut tasks = vec![
            tokio::spawn(self.clone().connection(eventloop, stop.clone())),
            tokio::spawn(self.clone().flusher(stop)),
        ];
        if let Some(task) = self
            .broker
            .as_ref()
            .and_then(|b| b.task.lock().unwrap_or_else(|e| e.into_inner()).take())
        {
            tasks.push(task);
        }
        tasks
    }

    fn topic(&self, device_id: &str, kind: &str) -> String {
        format!("{}/devices/{device_id}/{kind}", self.config.topic_prefix)
    }

    /// Adds a device to the in-memory table, with its last known state from the room.
    async fn load_device(&self, row: DeviceRow) {
        let previous = self
            .context
            .services
            .rooms
            .snapshot(&row.room_id, |room| {
                room.get(STATE_EVENT, &row.device_id)
                    .map(|e| e.content.clone())
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Some(hash) = &row.secret_hash {
            self.secrets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(row.device_id.clone(), hash.clone());
        }
        let alerts: Vec<Alert> = serde_json::from_str(&row.alerts).unwrap_or_default();
        let device = Device {
            alert_state: vec![None; alerts.len()],
            alerts,
            values: previous["values"].as_object().cloned().unwrap_or_default(),
            last_seen: previous["last_seen"].as_i64(),
            online: previous["online"].as_bool(),
            dirty: false,
            status_notices: Default::default(),
            row,
        };
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.row.device_id.clone(), device);
    }

    /// Runs the broker connection until `stop`, reconnecting with backoff.
    async fn connection(
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
    fn drop_input(&self, reason: &'static str, topic: &str) {
        Stats::add(&self.stats.dropped);
        if let Some(held) = self.throttle.allow(reason) {
            tracing::warn!(%topic, reason, suppressed = held, "MQTT message dropped");
        }
    }

    /// Handles one incoming message. Never blocks the connection: room writes are spawned.
    fn on_publish(self: Arc<Self>, publish: Publish) {
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

    /// A telemetry sample: merged into the latest values, kept for charts, checked
    /// against the device's alerts.
    fn on_telemetry(self: &Arc<Self>, device_id: &str, sample: Map<String, Value>) {
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

    /// An online/offline status: a change is written at once and announced.
    fn on_status(self: &Arc<Self>, device_id: &str, online: bool) {
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        let Some(device) = devices.get_mut(device_id) else {
            return;
        };
        if device.online == Some(online) {
            return;
        }
        device.online = Some(online);
        device.dirty = true;
        let now = std::time::Instant::now();
        let notices = &mut device.status_notices;
        while notices
            .front()
            .is_some_and(|at| now.duration_since(*at) > Duration::from_secs(60))
        {
            notices.pop_front();
        }
        let announce = notices.len() < STATUS_NOTICES_PER_MINUTE;
        if announce {
            notices.push_back(now);
        }
        let (room, user) = (device.row.room_id.clone(), device.row.user_id.clone());
        let text = if online {
            format!("🟢 **{device_id}** is online")
        } else {
            format!("🔴 **{device_id}** is offline")
        };
        drop(devices);
        let mqtt = self.clone();
        let device_id = device_id.to_owned();
        tokio::spawn(async move {
            mqtt.flush_device(&device_id).await;
            if announce {
                mqtt.post_notice(&room, &user, &text, None).await;
            }
        });
    }

    /// A device's answer to a command: posted as a reply to the command's event.
    async fn ack(&self, device_id: &str, mut ack: Map<String, Value>) {
        let Some(Value::String(command_id)) = ack.remove("id") else {
            return;
        };
        let Some((room, user)) = self.device_room(device_id) else {
            return;
        };
        let command = match self.context.services.store.event(&command_id).await {
            Ok(Some((_, event))) if event.room_id == room => event,
            Ok(_) => {
                return self
                    .drop_input("ack for an unknown command", &self.topic(device_id, "acks"));
            }
            Err(err) => {
                Stats::add(&self.stats.errors);
                tracing::warn!(error = %err, "cannot look up a command");
                return;
            }
        };
        let failed = ack.get("ok") == Some(&Value::Bool(false)) || ack.contains_key("error");
        let detail = if ack.is_empty() {
            String::new()
        } else {
            format!(": `{}`", Value::Object(ack.clone()))
        };
        let text = format!(
            "{} **{device_id}** answered{detail}",
            if failed { "❌" } else { "✅" }
        );
        let extra = (
            "io.converge.device.ack",
            json!({ "device_id": device_id, "ack": ack }),
        );
        if let Err(err) = self
            .context
            .notice(&room, &user, &text, Some(&command.event_id), Some(extra))
            .await
        {
            Stats::add(&self.stats.errors);
            tracing::warn!(device = device_id, error = %err, "cannot post a device's answer");
        }
    }

    fn device_room(&self, device_id: &str) -> Option<(String, String)> {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(device_id)
            .map(|d| (d.row.room_id.clone(), d.row.user_id.clone()))
    }

    async fn post_notice(&self, room: &str, user: &str, text: &str, reply_to: Option<&str>) {
        if let Err(err) = self.context.notice(room, user, text, reply_to, None).await {
            Stats::add(&self.stats.errors);
            tracing::warn!(%room, error = %err, "a device's notice could not be posted");
        }
    }

    /// Writes the coalesced state of dirty devices and the pending samples, every second.
    async fn flusher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
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
            if !samples.is_empty()
                && let Err(err) = self
                    .context
                    .services
                    .store
                    .append_telemetry(&samples, self.config.max_samples_per_device)
                    .await
            {
                Stats::add(&self.stats.errors);
                tracing::warn!(error = %err, lost = samples.len(), "cannot store telemetry samples");
            }
            if stopping {
                return;
            }
        }
    }

    /// Sends a device's state event if it changed since the last one.
    async fn flush_device(&self, device_id: &str) {
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

    /// Publishes a command to a device.
    async fn publish_command(
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
        Ok(())
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

/// `online`/`offline` (also `1`/`0`, `true`/`false`, `{"online": bool}` or
/// `{"status": "online"}`).
fn parse_status(json: Option<&Value>, raw: &[u8]) -> Option<bool> {
    match json {
        Some(Value::Bool(b)) => return Some(*b),
        Some(Value::Number(n)) => return n.as_i64().map(|n| n != 0),
        Some(Value::Object(o)) => {
            return o
                .get("online")
                .and_then(Value::as_bool)
                .or_else(|| parse_status(None, o.get("status")?.as_str()?.as_bytes()));
        }
        _ => {}
    }
    let text = std::str::from_utf8(raw)
        .ok()?
        .trim()
        .trim_matches('"')
        .to_ascii_lowercase();
    match text.as_str() {
        "online" | "up" | "connected" => Some(true),
        "offline" | "down" | "disconnected" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_events_cannot_hold_become_strings() {
        let value =
            json!({ "t": 21.5, "n": 3, "big": 9007199254740993u64, "deep": [{ "x": -0.5 }] });
        assert_eq!(
            integers_only(value),
            json!({ "t": "21.5", "n": 3, "big": "9007199254740993", "deep": [{ "x": "-0.5" }] })
        );
    }

    #[test]
    fn status_payloads() {
        let parse =
            |raw: &str| parse_status(serde_json::from_str(raw).ok().as_ref(), raw.as_bytes());
        assert_eq!(parse("online"), Some(true));
        assert_eq!(parse("OFFLINE"), Some(false));
        assert_eq!(parse("\"online\""), Some(true));
        assert_eq!(parse("1"), Some(true));
        assert_eq!(parse("false"), Some(false));
        assert_eq!(parse(r#"{"online": true}"#), Some(true));
        assert_eq!(parse(r#"{"status": "offline"}"#), Some(false));
        assert_eq!(parse("maybe"), None);
        assert_eq!(parse("{}"), None);
    }
}
