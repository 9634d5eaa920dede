//! Gateways: foreign systems (webhooks, MQTT devices, ...) that take part in rooms as
//! virtual users.
//!
//! Each gateway is a component: a folder here with a [`Component`] entry in the
//! [`registry`] (its name, config section, tables, reserved user prefix, chat commands) and
//! a type implementing [`Gateway`] (its routes, command handling, stats, health and tasks).
//! [`Gateways::start`] builds every enabled one from its config section; its tasks stop on
//! [`Gateways::shutdown`], before the store closes.
//!
//! Gateways act only through the service layer: their virtual users join rooms and send
//! events with `Rooms::send`, under the same auth rules as any client, and read rooms
//! through `EventStream`. What a gateway keeps for itself lives in its own tables, reached
//! through the `Tables` handle it is built with. The [`bot`] reads room messages through a
//! durable [`feed`] and hands `!<word> ...` commands to the gateway that claims the word.

pub mod bot;
mod context;
pub mod feed;
pub mod http;
pub mod markdown;
pub mod mqtt;
pub mod registry;
pub mod signature;
mod stats;
pub mod webhooks;

use std::sync::{Arc, Mutex};

use converge_core::PersistedEvent;
use converge_service::config::GatewaysConfig;
use converge_service::{Error, Result, Services};
use converge_store::{Migration, Tables};
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use context::{Actor, Context, MANAGE_EVENT_TYPE};
pub use http::{Access, Request, Route};
pub use stats::{LogThrottle, Stats};

/// A running gateway.
pub trait Gateway: Send + Sync + 'static {
    /// Its counters, for `/_converge/health` and `/metrics`.
    fn stats(&self) -> &Stats;

    /// Its part of the health report, and whether it is well.
    fn health(&self) -> (Value, bool) {
        self.stats().health()
    }

    /// The HTTP endpoints it serves.
    fn routes(self: Arc<Self>) -> Vec<Route> {
        Vec::new()
    }

    /// Runs a chat command (`!<word> <args>`, `word` one of the component's
    /// [`Component::commands`]) and returns the answer to post.
    fn command<'a>(&'a self, command: Command<'a>) -> BoxFuture<'a, Result<String>>;

    /// Handles an event of one of the component's [`Component::event_types`]; an error
    /// is posted as a reply.
    fn event<'a>(&'a self, _event: &'a PersistedEvent) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Starts its tasks; they end when `stop` turns true.
    fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>>;
}

/// A chat command for a gateway, as the bot read it from a room.
#[derive(Clone, Copy, Debug)]
pub struct Command<'a> {
    pub room_id: &'a str,
    pub sender: &'a str,
    pub event_id: &'a str,
    /// The command's word (`webhook` in `!webhook new`).
    pub word: &'a str,
    /// What follows the word.
    pub args: &'a str,
}

/// What a gateway's builder gets.
pub struct Build {
    pub context: Arc<Context>,
    /// The gateway's own tables, migrated.
    pub tables: Tables,
    /// Its config section (`[gateways.<name>]`), all defaults if absent.
    pub config: toml::Value,
    /// Ends the gateway's tasks (and anything it listens on) at shutdown.
    pub stop: watch::Receiver<bool>,
}

/// What building a gateway yields: the running gateway, or `None` when it is disabled.
pub type Built = BoxFuture<'static, Result<Option<Arc<dyn Gateway>>>>;

/// A gateway as the registry knows it, before it runs: one line in [`registry::ALL`].
pub struct Component {
    /// Its name: its config section `[gateways.<name>]`, its stats and its tables' owner.
    pub name: &'static str,
    /// The localpart prefix of its virtual users; nobody may register such a name.
    pub user_prefix: Option<&'static str>,
    /// The words of its chat commands (`!<word> ...`).
    pub commands: &'static [&'static str],
    /// Room event types the bot hands to it.
    pub event_types: &'static [&'static str],
    /// Lines for the bot's `!help`.
    pub help: &'static str,
    /// Its tables.
    pub migrations: &'static [Migration],
    /// Its config section with every key at its default, commented, for
    /// `converge config example`.
    pub example_config: &'static str,
    /// Checks its config section; the error is `(key within the section, message)`.
    pub check_config: fn(&toml::Value) -> std::result::Result<(), (String, String)>,
    /// Builds it, or `None` if its section leaves it disabled.
    pub build: fn(Build) -> Built,
}

/// Reads a gateway's config section into its type, naming the key of any error.
pub fn parse_section<T: serde::de::DeserializeOwned>(
    section: &toml::Value,
) -> std::result::Result<T, (String, String)> {
    serde_path_to_error::deserialize(section.clone())
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
}

/// The running gateways.
pub struct Gateways {
    pub context: Arc<Context>,
    running: Vec<(&'static Component, Arc<dyn Gateway>)>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Gateways {
    /// Builds every enabled gateway of the registry and starts its tasks and the bot.
    pub async fn start(
        services: Arc<Services>,
        config: &GatewaysConfig,
        base_url: &str,
    ) -> Result<Arc<Self>> {
        let bot = services
            .reserved
            .ensure_virtual_user(&config.bot, "Converge")
            .await?;
        let context = Arc::new(Context {
            services: services.clone(),
            bot,
            base_url: base_url.trim_end_matches('/').to_owned(),
        });
        let (stop, stopped) = watch::channel(false);
        let framework = services
            .component_tables(feed::COMPONENT, feed::MIGRATIONS)
            .await?;
        let mut running = Vec::new();
        for &component in registry::ALL {
            let tables = services
                .component_tables(component.name, component.migrations)
                .await?;
            let build = Build {
                context: context.clone(),
                tables,
                config: config.section(component.name),
                stop: stopped.clone(),
            };
            if let Some(gateway) = (component.build)(build).await? {
                tracing::info!(gateway = component.name, "gateway started");
                running.push((component, gateway));
            }
        }
        let gateways = Arc::new(Self {
            context,
            running,
            stop,
            tasks: Mutex::default(),
        });
        let mut tasks = vec![tokio::spawn(bot::run(
            gateways.clone(),
            framework,
            stopped.clone(),
        ))];
        for (_, gateway) in &gateways.running {
            tasks.extend(gateway.clone().spawn(stopped.clone()));
        }
        *gateways.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        Ok(gateways)
    }

    /// The running gateway named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Gateway>> {
        self.running
            .iter()
            .find(|(component, _)| component.name == name)
            .map(|(_, gateway)| gateway)
    }

    /// Every route of every running gateway.
    pub fn routes(&self) -> Vec<Route> {
        self.running
            .iter()
            .flat_map(|(_, gateway)| gateway.clone().routes())
            .collect()
    }

    /// Every running gateway's counters.
    pub fn stats(&self) -> Vec<&Stats> {
        self.running.iter().map(|(_, g)| g.stats()).collect()
    }

    /// The `gateways` part of the health report, and whether all of them are well.
    pub fn health(&self) -> (Value, bool) {
        let mut report = serde_json::Map::new();
        let mut all_ok = true;
        for (component, gateway) in &self.running {
            let (value, ok) = gateway.health();
            all_ok &= ok;
            report.insert(component.name.to_owned(), value);
        }
        (Value::Object(report), all_ok)
    }

    /// The gateway that takes chat commands starting with `word`: `Ok(None)` when no
    /// component claims the word, an error when its gateway is not enabled.
    fn for_command(&self, word: &str) -> Result<Option<&Arc<dyn Gateway>>> {
        let Some(component) = registry::ALL.iter().find(|c| c.commands.contains(&word)) else {
            return Ok(None);
        };
        self.get(component.name).map(Some).ok_or_else(|| {
            Error::forbidden(format!(
                "the {} gateway is not enabled on this server",
                component.name
            ))
        })
    }

    /// The running gateway that handles events of `event_type`, if any.
    fn for_event(&self, event_type: &str) -> Option<&Arc<dyn Gateway>> {
        self.running
            .iter()
            .find(|(component, _)| component.event_types.contains(&event_type))
            .map(|(_, gateway)| gateway)
    }

    /// Stops every gateway task and waits for them.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "gateway task failed");
            }
        }
    }
}

/// The localpart prefixes every gateway reserves for its virtual users.
pub fn reserved_prefixes() -> Vec<String> {
    registry::ALL
        .iter()
        .filter_map(|c| c.user_prefix.map(str::to_owned))
        .collect()
}

/// Checks the `[gateways]` subsections against the registry: unknown gateways and bad
/// keys are `(full key, message)` errors.
pub fn check_config(config: &GatewaysConfig) -> std::result::Result<(), (String, String)> {
    for name in config.sections.keys() {
        if !registry::ALL.iter().any(|c| c.name == name.as_str()) {
            let known: Vec<&str> = registry::ALL.iter().map(|c| c.name).collect();
            return Err((
                format!("gateways.{name}"),
                format!("no such gateway (known: {})", known.join(", ")),
            ));
        }
    }
    for component in registry::ALL {
        (component.check_config)(&config.section(component.name)).map_err(|(key, message)| {
            let key = if key.is_empty() || key == "." {
                format!("gateways.{}", component.name)
            } else {
                format!("gateways.{}.{key}", component.name)
            };
            (key, message)
        })?;
    }
    Ok(())
}

/// Every gateway's commented config section, for `converge config example`.
pub fn example_config() -> String {
    registry::ALL
        .iter()
        .map(|c| c.example_config.trim_end())
        .collect::<Vec<_>>()
        .join("\n\n")
        + "\n"
}
