//! Gateways: foreign systems (webhooks, MQTT devices, ...) that take part in rooms as
//! virtual users.
//!
//! A gateway is built from its config section by [`Gateways::start`], runs as tasks that
//! stop on [`Gateways::shutdown`], and acts only through the service layer: its virtual
//! users join rooms and send events with [`crate::service::rooms::Rooms::send`], under
//! the same auth rules as any client. What a gateway keeps for itself (registries, an
//! outbox, telemetry) lives in its own tables. Each reports [`Stats`] for
//! `/_converge/health` and `/metrics`. The [`bot`] reads room messages through a durable
//! [`feed`] and hands `!<gateway> ...` commands to the gateway they name.

pub mod bot;
pub mod feed;
pub mod markdown;
pub mod mqtt;
pub mod signature;
mod stats;
pub mod webhooks;

use std::sync::{Arc, Mutex};

use converge_core::auth;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use stats::{LogThrottle, Stats};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::{CreateRoom, NewEvent};

/// The power a user needs in a room to manage its gateways: that of sending this state
/// event type (the room's `state_default` unless its power levels name the type).
pub const MANAGE_EVENT_TYPE: &str = "io.converge.gateways";

/// Who asks for a change to a room's gateways: a user, who may be a server admin.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub user_id: &'a str,
    pub server_admin: bool,
}

/// What every gateway acts through: the services, and who the bot is.
pub struct Context {
    pub services: Arc<Services>,
    /// The bot's user ID.
    pub bot: String,
    /// The URL clients reach this server at, for webhook URLs.
    pub base_url: String,
}

impl Context {
    /// Creates the account of a virtual user if it does not exist yet.
    pub async fn virtual_user(&self, localpart: &str, displayname: &str) -> Result<String> {
        self.services
            .accounts
            .ensure_virtual_user(localpart, displayname)
            .await
    }

    /// Makes `user` a joined member of `room_id`, invited by `actor` if needed.
    pub async fn bring_in(&self, room_id: &str, actor: &str, user: &str) -> Result<()> {
        let rooms = &self.services.rooms;
        let membership = rooms
            .snapshot(room_id, |room| room.membership(user))
            .await?;
        if membership == auth::Membership::Join {
            return Ok(());
        }
        if membership != auth::Membership::Invite {
            rooms.invite(room_id, actor, user, None, false).await?;
        }
        rooms.join(room_id, user, None).await?;
        Ok(())
    }

    /// Whether `user` is joined to the room and may send `event_type` there.
    pub async fn may_send(
        &self,
        room_id: &str,
        user: &str,
        event_type: &str,
        state: bool,
    ) -> Result<bool> {
        self.services
            .rooms
            .snapshot(room_id, |room| {
                if room.membership(user) != auth::Membership::Join {
                    return false;
                }
                auth::current_power_levels(room.version, room).is_ok_and(|levels| {
                    levels.user_level(user) >= levels.event_level(event_type, state)
                })
            })
            .await
    }

    /// Refuses unless `user` may manage the room's gateways.
    pub async fn require_manager(&self, room_id: &str, user: &str) -> Result<()> {
        if self
            .may_send(room_id, user, MANAGE_EVENT_TYPE, true)
            .await?
        {
            Ok(())
        } else {
            Err(Error::forbidden(
                "managing this room's gateways needs the power to change its state",
            ))
        }
    }

    /// Refuses unless `actor` is a server admin or may manage the room's gateways.
    pub async fn authorize(&self, room_id: &str, actor: Actor<'_>) -> Result<()> {
        if actor.server_admin {
            return Ok(());
        }
        self.require_manager(room_id, actor.user_id).await
    }

    /// Sends `text` to `user` alone, in a direct room with the bot (made on first use), so
    /// credentials never show in a shared room.
    pub async fn tell_privately(&self, user: &str, text: &str) -> Result<()> {
        let room_id = match self.direct_room(user).await? {
            Some(room_id) => room_id,
            None => {
                let rooms = &self.services.rooms;
                let profile = rooms.member_profile(&self.bot).await?;
                let request = CreateRoom {
                    invite: vec![user.to_owned()],
                    is_direct: true,
                    preset: Some("trusted_private_chat".into()),
                    name: Some("Converge gateways".into()),
                    ..CreateRoom::default()
                };
                rooms.create(&self.bot, request, profile).await?
            }
        };
        self.notice(&room_id, &self.bot, text, None, None).await?;
        Ok(())
    }

    /// The direct room the bot made with `user`, if they are both still in it.
    async fn direct_room(&self, user: &str) -> Result<Option<String>> {
        for row in self.services.store.user_memberships(&self.bot).await? {
            if row.membership != "join" {
                continue;
            }
            let is_direct = self
                .services
                .rooms
                .snapshot(&row.room_id, |room| {
                    let mut members: Vec<&str> = room
                        .members(auth::Membership::Join)
                        .chain(room.members(auth::Membership::Invite))
                        .collect();
                    members.sort_unstable();
                    let mut pair = [self.bot.as_str(), user];
                    pair.sort_unstable();
                    auth::room_creator(room.version, room) == Some(self.bot.as_str())
                        && members == pair
                })
                .await?;
            if is_direct {
                return Ok(Some(row.room_id));
            }
        }
        Ok(None)
    }

    /// Posts an `m.notice` as `sender`, as a reply to `reply_to` if given.
    pub async fn notice(
        &self,
        room_id: &str,
        sender: &str,
        text: &str,
        reply_to: Option<&str>,
        extra: Option<(&str, Value)>,
    ) -> Result<String> {
        let mut content = markdown::message_content(text, true);
        content["msgtype"] = json!("m.notice");
        if let Some(event_id) = reply_to {
            content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": event_id } });
        }
        if let Some((key, value)) = extra {
            content[key] = value;
        }
        let (event_id, _) = self
            .services
            .rooms
            .send(
                room_id,
                sender,
                NewEvent::message("m.room.message", content),
            )
            .await?;
        Ok(event_id)
    }
}

/// The running gateways.
pub struct Gateways {
    pub context: Arc<Context>,
    pub webhooks: Arc<webhooks::Webhooks>,
    /// `None` when `[gateways.mqtt]` is not enabled.
    pub mqtt: Option<Arc<mqtt::Mqtt>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Gateways {
    /// Builds every configured gateway and starts its tasks.
    pub async fn start(
        config: &Config,
        services: Arc<Services>,
        base_url: &str,
    ) -> Result<Arc<Self>> {
        let bot = services
            .accounts
            .ensure_virtual_user(&config.gateways.bot, "Converge")
            .await?;
        let context = Arc::new(Context {
            services,
            bot,
            base_url: base_url.trim_end_matches('/').to_owned(),
        });
        let (stop, stopped) = watch::channel(false);
        let webhooks = Arc::new(
            webhooks::Webhooks::new(context.clone(), &config.gateways.webhooks)
                .map_err(Error::internal)?,
        );
        webhooks.load().await?;
        let mqtt = if config.gateways.mqtt.enabled {
            Some(mqtt::Mqtt::new(context.clone(), &config.gateways.mqtt, stopped.clone()).await?)
        } else {
            None
        };
        let gateways = Arc::new(Self {
            context,
            webhooks,
            mqtt,
            stop,
            tasks: Mutex::default(),
        });
        let mut tasks = vec![tokio::spawn(bot::run(gateways.clone(), stopped.clone()))];
        tasks.extend(gateways.webhooks.clone().spawn(stopped.clone()));
        if let Some(mqtt) = &gateways.mqtt {
            tasks.extend(mqtt.clone().spawn(stopped));
        }
        *gateways.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        Ok(gateways)
    }

    /// Every gateway's counters.
    pub fn stats(&self) -> Vec<&Stats> {
        let mut stats = vec![self.webhooks.stats()];
        if let Some(mqtt) = &self.mqtt {
            stats.push(mqtt.stats());
        }
        stats
    }

    /// The `gateways` part of the health report, and whether all of them are well.
    pub fn health(&self) -> (Value, bool) {
        let mut report = serde_json::Map::new();
        let mut all_ok = true;
        for stats in self.stats() {
            let (value, ok) = stats.health();
            all_ok &= ok;
            report.insert(stats.name.to_owned(), value);
        }
        if let Some(broker) = self.mqtt.as_ref().and_then(|m| m.broker_report())
            && let Some(mqtt) = report.get_mut("mqtt")
        {
            mqtt["broker"] = broker;
        }
        (Value::Object(report), all_ok)
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

/// A random identifier of lowercase letters and digits (also valid in localparts and MQTT
/// topics).
pub fn random_id(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
