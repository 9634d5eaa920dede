//! The context every gateway acts through: the services, the bot's identity, and the
//! helpers gateways share (virtual users, bringing them into rooms, power checks, notices,
//! private messages).

use std::sync::Arc;

use converge_core::auth;
use converge_service::rooms::{CreateRoom, NewEvent};
use converge_service::{Caller, Error, Result, Services};
use serde_json::{Value, json};

use crate::markdown;

/// The power a user needs in a room to manage its gateways: that of sending this state
/// event type (the room's `state_default` unless its power levels name the type).
pub const MANAGE_EVENT_TYPE: &str = "io.converge.gateways";

/// Who asks for a change to a room's gateways: a user, who may be a server admin.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub user_id: &'a str,
    pub server_admin: bool,
}

impl<'a> Actor<'a> {
    /// A caller of the HTTP API, who may be a server admin.
    pub fn of(caller: &'a Caller) -> Self {
        Self {
            user_id: caller.user_id.as_str(),
            server_admin: caller.is_admin,
        }
    }
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
            .reserved
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
        for room_id in self.services.rooms.joined_rooms(&self.bot).await? {
            let is_direct = self
                .services
                .rooms
                .snapshot(&room_id, |room| {
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
                return Ok(Some(room_id));
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
