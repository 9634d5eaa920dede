//! Room upgrades: replacing a room with a new one of another room version.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#room-upgrades>. The server checks
//! the caller may send `m.room.tombstone`, creates the replacement (its create event names
//! the old room as `predecessor` and keeps the room `type`), copies the transferable state,
//! moves the local aliases and the directory listing, sends the tombstone into the old room
//! and raises the old room's `events_default` and `invite` levels so it falls quiet. Every
//! event goes through the rooms' one sending path and its auth rules.

use converge_core::auth;
use converge_core::{Membership, RoomVersion};
use serde_json::{Map, Value, json};

use super::{NewEvent, Rooms};
use crate::error::{Error, Result};

/// State copied to the new room when the old room has it with an empty state key: the
/// spec's recommended list, plus the canonical alias (whose aliases move along).
const TRANSFERRED: &[&str] = &[
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.canonical_alias",
];

/// Space relations, keyed by room ID, copied so a space stays a space of the same rooms and
/// a room stays in its spaces.
const SPACE_RELATIONS: &[&str] = &["m.space.child", "m.space.parent"];

/// The most space relations and bans one upgrade copies, so an upgrade sends a bounded
/// number of events; beyond that the first by room or user ID are kept, and a warning logged.
const MAX_RELATIONS: usize = 500;
const MAX_BANS: usize = 1000;

/// What the upgrade takes from the old room, read under its lock.
struct OldRoom {
    create: Map<String, Value>,
    latest: String,
    power_levels: Option<Value>,
    /// `(type, state_key, content)` of the state copied, in the order it is sent.
    state: Vec<(String, String, Value)>,
    /// Users banned from the old room, who stay banned from the new one.
    banned: Vec<(String, Option<String>)>,
}

impl Rooms {
    /// Upgrades `room_id` to `new_version` on behalf of `caller`; returns the new room's ID.
    pub async fn upgrade(&self, caller: &str, room_id: &str, new_version: &str) -> Result<String> {
        let version = RoomVersion::parse(new_version).ok_or(Error::UnsupportedRoomVersion)?;
        let old = self
            .snapshot(room_id, |room| -> Result<OldRoom> {
                if room.membership(caller) != Membership::Join {
                    return Err(Error::forbidden("you are not in this room"));
                }
                let levels = auth::current_power_levels(room.version, room)
                    .map_err(|e| Error::forbidden(e.reason()))?;
                let needed = levels.event_level("m.room.tombstone", true);
                if levels.user_level(caller) < needed {
                    return Err(Error::forbidden(format!(
                        "upgrading needs power level {needed}, to send m.room.tombstone"
                    )));
                }
                let content = |event_type: &str, key: &str| {
                    room.get(event_type, key)
                        .map(|e| e.content.clone())
                        .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
                };
                let mut state: Vec<(String, String, Value)> = TRANSFERRED
                    .iter()
                    .filter_map(|t| Some(((*t).to_owned(), String::new(), content(t, "")?)))
                    .collect();
                let mut relations: Vec<_> = room
                    .state
                    .keys()
                    .filter(|(t, k)| SPACE_RELATIONS.contains(&t.as_str()) && k.starts_with('!'))
                    .filter_map(|(t, k)| Some((t.clone(), k.clone(), content(t, k)?)))
                    .collect();
                relations.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
                if relations.len() > MAX_RELATIONS {
                    tracing::warn!(room = %room.room_id, count = relations.len(), "upgrade copies only the first {MAX_RELATIONS} space relations");
                    relations.truncate(MAX_RELATIONS);
                }
                state.extend(relations);
                let mut banned: Vec<_> = room
                    .members(Membership::Ban)
                    .map(|user| {
                        let reason = room
                            .get("m.room.member", user)
                            .and_then(|e| e.content.get("reason")?.as_str().map(str::to_owned));
                        (user.to_owned(), reason)
                    })
                    .collect();
                banned.sort();
                if banned.len() > MAX_BANS {
                    tracing::warn!(room = %room.room_id, count = banned.len(), "upgrade copies only the first {MAX_BANS} bans");
                    banned.truncate(MAX_BANS);
                }
                Ok(OldRoom {
                    create: room
                        .get("m.room.create", "")
                        .and_then(|e| e.content.as_object().cloned())
                        .unwrap_or_default(),
                    latest: room
                        .latest
                        .clone()
                        .ok_or_else(|| Error::internal("a joined room has no events"))?,
                    power_levels: room
                        .get("m.room.power_levels", "")
                        .map(|e| e.content.clone()),
                    state,
                    banned,
                })
            })
            .await??;

        let new_room = self.new_room_id();
        let mut create = Map::new();
        create.insert("room_version".into(), json!(version.as_str()));
        if !version.creator_is_create_sender() {
            create.insert("creator".into(), json!(caller));
        }
        create.insert(
            "predecessor".into(),
            json!({ "room_id": room_id, "event_id": old.latest }),
        );
        for key in ["type", "m.federate"] {
            if let Some(value) = old.create.get(key) {
                create.insert(key.into(), value.clone());
            }
        }
        let mut member = self.member_profile(caller).await?;
        member["membership"] = json!("join");

        // The caller may hold less power than some state needs (the tombstone level can be
        // below state_default): they get that much while the room is set up, and the old
        // levels are restored last.
        // A room without power levels gives its creator 100; the new room says so outright,
        // since there the levels event always exists.
        let levels = old
            .power_levels
            .clone()
            .unwrap_or_else(|| json!({ "users": { caller: 100 } }));
        let caller_level = levels
            .get("users")
            .and_then(|u| u.get(caller))
            .and_then(Value::as_i64);
        let needed = highest_level(&levels).max(caller_level.unwrap_or(0));
        let raised = caller_level != Some(needed);
        let mut initial_levels = levels.clone();
        if raised {
            if !initial_levels["users"].is_object() {
                initial_levels["users"] = json!({});
            }
            initial_levels["users"][caller] = json!(needed);
        }

        let mut events = vec![
            NewEvent::state("m.room.create", "", Value::Object(create)),
            NewEvent::state("m.room.member", caller, member),
            NewEvent::state("m.room.power_levels", "", initial_levels.clone()),
        ];
        for (event_type, state_key, content) in &old.state {
            events.push(NewEvent::state(event_type, state_key, content.clone()));
        }
        // Bans carry over, except of users the caller could not ban (their level is not
        // below the caller's), which the auth rules would refuse.
        let new_levels = converge_core::PowerLevels::from_content(Some(&initial_levels), caller)
            .map_err(|e| Error::forbidden(e.reason()))?;
        for (user, reason) in old
            .banned
            .iter()
            .filter(|(user, _)| new_levels.user_level(user) < needed)
        {
            let mut content = json!({ "membership": "ban" });
            if let Some(reason) = reason {
                content["reason"] = json!(reason);
            }
            events.push(NewEvent::state("m.room.member", user, content));
        }
        if raised {
            events.push(NewEvent::state("m.room.power_levels", "", levels.clone()));
        }
        self.create_with(&new_room, version, caller, events, None)
            .await?;

        let moved = self.store.move_aliases(room_id, &new_room).await?;
        if self
            .store
            .room(room_id)
            .await?
            .is_some_and(|row| row.is_public)
        {
            self.store.set_room_public(&new_room, true).await?;
            self.store.set_room_public(room_id, false).await?;
        }
        self.send(
            room_id,
            caller,
            NewEvent::state(
                "m.room.tombstone",
                "",
                json!({ "body": "This room has been replaced", "replacement_room": new_room }),
            ),
        )
        .await?;

        // Quieten the old room, if the caller may: nobody below moderator speaks or invites.
        let users_default = levels
            .get("users_default")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let restricted = 50.max(users_default.saturating_add(1));
        let mut quiet = levels;
        let mut changed = false;
        for key in ["events_default", "invite"] {
            let current = quiet.get(key).and_then(Value::as_i64).unwrap_or(0);
            if current < restricted {
                quiet[key] = json!(restricted);
                changed = true;
            }
        }
        if changed
            && let Err(err) = self
                .send(
                    room_id,
                    caller,
                    NewEvent::state("m.room.power_levels", "", quiet),
                )
                .await
        {
            tracing::warn!(room = %room_id, error = %err, "could not restrict the upgraded room's power levels");
        }
        tracing::info!(old = %room_id, new = %new_room, %caller, version = %version, aliases = moved, "room upgraded");
        Ok(new_room)
    }
}

/// The highest level any action needs under a power levels content (the defaults where a
/// level is absent), so a user holding it can send everything the upgrade copies.
fn highest_level(levels: &Value) -> i64 {
    let top = [
        "state_default",
        "events_default",
        "ban",
        "kick",
        "redact",
        "invite",
    ]
    .iter()
    .map(|key| {
        levels
            .get(*key)
            .and_then(Value::as_i64)
            .unwrap_or(match *key {
                "state_default" | "ban" | "kick" | "redact" => 50,
                _ => 0,
            })
    })
    .max()
    .unwrap_or(0);
    let events = levels
        .get("events")
        .and_then(Value::as_object)
        .map(|events| events.values().filter_map(Value::as_i64).max().unwrap_or(0))
        .unwrap_or(0);
    top.max(events)
}
