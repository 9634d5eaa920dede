//! The MQTT gateway: devices on a broker become virtual users (`@device-<id>`) of the room
//! they are bound to.
//!
//! Topics under `<prefix>/devices/<id>/`: `telemetry` (JSON; coalesced into the state
//! event `io.converge.device` at most once a second, every sample kept in a bounded
//! table: [`telemetry`]), `status` (`online`/`offline`, retained, the device's last will;
//! changes post a notice: [`status`]), `commands` (published by us: [`devices`]) and
//! `acks` (posted back as replies: [`acks`]). [`link`] holds the connection, which is
//! re-established with backoff whenever the broker goes away; [`embedded`] runs the
//! built-in broker when configured.

mod acks;
mod alerts;
pub mod config;
mod devices;
mod embedded;
mod link;
mod routes;
mod status;
pub mod tables;
mod telemetry;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use converge_core::PersistedEvent;
use converge_service::{Error, Result};
use futures_util::future::BoxFuture;
use rumqttc::{AsyncClient, EventLoop, MqttOptions};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Build, Command, Component, Context, Gateway, LogThrottle, Route, Stats};
use alerts::Alert;
use config::MqttConfig;
pub use embedded::password_hash;
use embedded::{Embedded, GATEWAY_LOGIN};
use tables::{DeviceRow, Store, TelemetryRow};

/// The MQTT gateway in the registry.
pub static COMPONENT: Component = Component {
    name: "mqtt",
    user_prefix: Some("device-"),
    commands: &["device"],
    event_types: &[COMMAND_EVENT],
    help: "- `!device add <id>`, `!device list`, `!device remove <id>`: MQTT devices\n\
- `!device <id> <command> [json args]`: send a command to a device (needs the power to send `io.converge.device.command`)\n\
- `!device <id> alert <field> <op> <number>`, `!device <id> alerts`, `!device <id> alert clear`: alerts",
    migrations: tables::MIGRATIONS,
    example_config: include_str!("config.example.toml"),
    check_config: |section| MqttConfig::parse(section).map(drop),
    build: |build| Box::pin(Mqtt::build(build)),
};

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
    store: Store,
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
    /// The embedded broker, when it runs.
    broker: Option<Embedded>,
}

impl Gateway for Mqtt {
    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn health(&self) -> (Value, bool) {
        let (mut report, ok) = self.stats.health();
        if let Some(broker) = &self.broker {
            report["broker"] = broker.report();
        }
        (report, ok)
    }

    fn routes(self: Arc<Self>) -> Vec<Route> {
        routes::routes(self)
    }

    fn command<'a>(&'a self, command: Command<'a>) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.command(
            command.room_id,
            command.sender,
            command.event_id,
            command.args,
        ))
    }

    fn event<'a>(&'a self, event: &'a PersistedEvent) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let pdu: Value = serde_json::from_str(&event.json).map_err(Error::internal)?;
            self.command_event(
                &event.room_id,
                &event.sender,
                &event.event_id,
                &pdu["content"],
            )
            .await
        })
    }

    /// Starts the connection and the flusher.
    fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
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
        if let Some(task) = self.broker.as_ref().and_then(Embedded::take_task) {
            tasks.push(task);
        }
        tasks
    }
}

impl Mqtt {
    /// Loads the registered devices and prepares the connection (made by `spawn`), or
    /// `None` when `[gateways.mqtt]` is not enabled.
    async fn build(build: Build) -> Result<Option<Arc<dyn Gateway>>> {
        let config = MqttConfig::parse(&build.config)
            .map_err(|(key, message)| Error::internal(format!("gateways.mqtt.{key}: {message}")))?;
        if !config.enabled {
            return Ok(None);
        }
        let broker = if config.broker.enabled {
            Some(Embedded::start(&config.broker, &config.topic_prefix, build.stop).await?)
        } else {
            None
        };
        let (host, port) = match &broker {
            Some(broker) => (broker.host(), broker.addr.port()),
            None => config.address().map_err(Error::internal)?,
        };
        let mut options = MqttOptions::new(&config.client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some(broker) = &broker {
            options.set_credentials(GATEWAY_LOGIN, &broker.gateway_secret);
        } else if !config.username.is_empty() {
            options.set_credentials(&config.username, &config.password);
        }
        let (client, eventloop) = AsyncClient::new(options, 256);
        let mqtt = Arc::new(Self {
            context: build.context,
            store: Store::new(build.tables),
            config,
            client,
            eventloop: Mutex::new(Some(eventloop)),
            stats: Stats::new("mqtt", true),
            throttle: LogThrottle::new(Duration::from_secs(60)),
            devices: Mutex::default(),
            samples: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
            broker,
        });
        for row in mqtt.store.devices(None).await? {
            mqtt.load_device(row).await;
        }
        Ok(Some(mqtt))
    }

    /// Where devices log in, when the embedded broker runs (and so they need a password).
    pub fn embedded_broker(&self) -> Option<SocketAddr> {
        self.broker.as_ref().map(|b| b.addr)
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
        if let (Some(broker), Some(hash)) = (&self.broker, &row.secret_hash) {
            broker.allow(&row.device_id, hash);
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
}
