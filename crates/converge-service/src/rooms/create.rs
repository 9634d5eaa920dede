//! `createRoom`: the events that make a new room, in the spec's order.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#post_matrixclientv3createroom>.

use converge_core::RoomVersion;
use serde_json::{Map, Value, json};

use super::state::RoomState;
use super::{NewEvent, Rooms};
use crate::error::{Error, Result};

/// A `createRoom` request, parsed.
#[derive(Debug, Default)]
pub struct CreateRoom {
    pub creation_content: Option<Map<String, Value>>,
    /// `(type, state_key, content)` of each `initial_state` event.
    pub initial_state: Vec<(String, String, Value)>,
    pub invite: Vec<String>,
    pub is_direct: bool,
    pub name: Option<String>,
    pub power_level_content_override: Option<Map<String, Value>>,
    /// `private_chat`, `public_chat` or `trusted_private_chat`.
    pub preset: Option<String>,
    /// The localpart of an alias to create, `#<this>:server`.
    pub room_alias_name: Option<String>,
    pub room_version: Option<String>,
    pub topic: Option<String>,
    pub public: bool,
    /// The application service creating the room, which may take aliases it owns.
    pub appservice: Option<String>,
}

impl Rooms {
    /// Creates a room with `creator` as its first member and admin.
    pub async fn create(
        &self,
        creator: &str,
        request: CreateRoom,
        profile: Value,
    ) -> Result<String> {
        let version = match &request.room_version {
            Some(v) => RoomVersion::parse(v).ok_or(Error::UnsupportedRoomVersion)?,
            None => RoomVersion::DEFAULT,
        };
        let preset = request.preset.as_deref().unwrap_or(if request.public {
            "public_chat"
        } else {
            "private_chat"
        });
        let (join_rule, guest_access) = match preset {
            "public_chat" => ("public", "forbidden"),
            "private_chat" | "trusted_private_chat" => ("invite", "can_join"),
            other => return Err(Error::BadJson(format!("unknown preset {other:?}"))),
        };
        for user in &request.invite {
            let valid = ruma::UserId::parse(user.as_str()).is_ok();
            if !valid {
                return Err(Error::InvalidParam(format!("{user} is not a user ID")));
            }
        }
        for (event_type, _, content) in &request.initial_state {
            if !content.is_object() {
                return Err(Error::BadJson(format!(
                    "initial_state {event_type} content must be an object"
                )));
            }
            if converge_core::pdu::canonical_len(content)
                .map_err(|e| Error::BadJson(e.to_string()))?
                > converge_core::pdu::MAX_PDU_BYTES
            {
                return Err(Error::TooLarge {
                    limit: converge_core::pdu::MAX_PDU_BYTES as u64,
                });
            }
        }
        let room_id = self.new_room_id();
        let alias = match &request.room_alias_name {
            Some(name) => {
                if name.is_empty() || name.contains([':', '#', ' ', '\t', '\n']) || name.len() > 200
                {
                    return Err(Error::InvalidParam(
                        "room_alias_name must be a plain name".into(),
                    ));
                }
                let alias = format!("#{name}:{}", self.server_name);
                self.appservices
                    .refuse_alias(&alias, request.appservice.as_deref())?;
                if !self
                    .store
                    .create_alias(&alias, &room_id, creator, super::now_ms())
                    .await?
                {
                    return Err(Error::RoomInUse);
                }
                Some(alias)
            }
            None => None,
        };

        let mut create = request.creation_content.unwrap_or_default();
        create.insert("room_version".into(), json!(version.as_str()));
        if version == RoomVersion::V10 {
            create.insert("creator".into(), json!(creator));
        }
        let mut users = Map::new();
        users.insert(creator.to_owned(), json!(100));
        if preset == "trusted_private_chat" {
            for user in &request.invite {
                users.insert(user.clone(), json!(100));
            }
        }
        let mut power_levels = json!({
            "users": users,
            "users_default": 0,
            "events": {
                "m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
                "m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
                "m.room.server_acl": 100, "m.room.encryption": 100,
            },
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 0,
        });
        if let Some(overrides) = request.power_level_content_override {
            for (key, value) in overrides {
                power_levels[key] = value;
            }
        }
        let mut member = profile;
        member["membership"] = json!("join");

        let mut events = vec![
            NewEvent::state("m.room.create", "", Value::Object(create)),
            NewEvent::state("m.room.member", creator, member),
            NewEvent::state("m.room.power_levels", "", power_levels),
        ];
        if let Some(alias) = &alias {
            events.push(NewEvent::state(
                "m.room.canonical_alias",
                "",
                json!({ "alias": alias }),
            ));
        }
        events.push(NewEvent::state(
            "m.room.join_rules",
            "",
            json!({ "join_rule": join_rule }),
        ));
        events.push(NewEvent::state(
            "m.room.history_visibility",
            "",
            json!({ "history_visibility": "shared" }),
        ));
        events.push(NewEvent::state(
            "m.room.guest_access",
            "",
            json!({ "guest_access": guest_access }),
        ));
        for (event_type, state_key, content) in &request.initial_state {
            events.push(NewEvent::state(event_type, state_key, content.clone()));
        }
        if let Some(name) = &request.name {
            events.push(NewEvent::state("m.room.name", "", json!({ "name": name })));
        }
        if let Some(topic) = &request.topic {
            events.push(NewEvent::state(
                "m.room.topic",
                "",
                json!({ "topic": topic }),
            ));
        }
        for user in &request.invite {
            let mut content = json!({ "membership": "invite" });
            if request.is_direct {
                content["is_direct"] = json!(true);
            }
            events.push(NewEvent::state("m.room.member", user, content));
        }

        self.create_with(&room_id, version, creator, events, alias.as_deref())
            .await?;
        if request.public {
            self.store.set_room_public(&room_id, true).await?;
        }
        tracing::info!(room = %room_id, %creator, "room created");
        Ok(room_id)
    }

    /// Makes a new room out of `events`, the first of which is its `m.room.create`, all sent
    /// by `creator` in order under the new room's lock and committed together. If the create
    /// event itself is refused, no trace of the room (nor of its `alias`) is left.
    pub(super) async fn create_with(
        &self,
        room_id: &str,
        version: RoomVersion,
        creator: &str,
        events: Vec<NewEvent<'_>>,
        alias: Option<&str>,
    ) -> Result<()> {
        let handle = std::sync::Arc::new(tokio::sync::Mutex::new(RoomState::new(room_id, version)));
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(room_id.to_owned(), handle.clone());
        let mut queued = Vec::with_capacity(events.len());
        {
            let mut room = handle.lock().await;
            for event in events {
                match self.queue(&mut room, creator, event).await {
                    Ok(q) => queued.push(q),
                    Err(err) => {
                        drop(room);
                        if queued.is_empty() {
                            self.forget_cached(room_id);
                            if let Some(alias) = alias {
                                let _ = self.store.delete_alias(alias).await;
                            }
                        }
                        for q in queued {
                            let _ = self.finish(q).await;
                        }
                        return Err(err);
                    }
                }
            }
        }
        for q in queued {
            self.finish(q).await?;
        }
        Ok(())
    }
}
