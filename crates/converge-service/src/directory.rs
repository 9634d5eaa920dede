//! Room aliases, the public room directory and the user directory.

use std::sync::Arc;

use converge_core::Membership;
use converge_store::Store;
use serde_json::{Value, json};

use super::now_ms;
use super::rooms::Rooms;
use crate::caller::Caller;
use crate::error::{Error, Result};

/// The most rooms or users one directory page returns.
const MAX_PAGE: usize = 500;

pub struct Directory {
    store: Store,
    rooms: Arc<Rooms>,
    server_name: String,
}

/// One page of the public room directory.
pub struct PublicRooms {
    pub chunk: Vec<Value>,
    pub next_batch: Option<String>,
    pub prev_batch: Option<String>,
    pub total: usize,
}

impl Directory {
    pub fn new(store: Store, rooms: Arc<Rooms>, server_name: String) -> Self {
        Self {
            store,
            rooms,
            server_name,
        }
    }

    fn check_local_alias(&self, alias: &str) -> Result<()> {
        let valid = ruma::RoomAliasId::parse(alias).is_ok();
        if !valid {
            return Err(Error::InvalidParam(format!("{alias} is not a room alias")));
        }
        if !alias.ends_with(&format!(":{}", self.server_name)) {
            return Err(Error::InvalidParam("aliases must be on this server".into()));
        }
        Ok(())
    }

    /// `PUT /directory/room/{roomAlias}`: members may name the rooms they are in.
    pub async fn create_alias(&self, caller: &Caller, alias: &str, room_id: &str) -> Result<()> {
        self.check_local_alias(alias)?;
        self.rooms
            .refuse_alias(alias, caller.appservice.as_ref().map(|s| s.id()))?;
        self.rooms
            .require_joined(room_id, caller.user_id.as_str())
            .await?;
        if !self
            .store
            .create_alias(alias, room_id, caller.user_id.as_str(), now_ms())
            .await?
        {
            return Err(Error::AliasExists);
        }
        Ok(())
    }

    /// `GET /directory/room/{roomAlias}`.
    pub async fn resolve_alias(&self, alias: &str) -> Result<(String, Vec<String>)> {
        let room_id = self.rooms.resolve(alias).await?;
        Ok((room_id, vec![self.server_name.clone()]))
    }

    /// `DELETE /directory/room/{roomAlias}`: its creator, a server admin, or a room member
    /// with power over the canonical alias.
    pub async fn delete_alias(&self, caller: &Caller, alias: &str) -> Result<()> {
        let (room_id, creator) = self
            .store
            .alias(alias)
            .await?
            .ok_or_else(|| Error::NotFound("no room has this alias".into()))?;
        let may = caller.is_admin
            || creator == caller.user_id.as_str()
            || self.may_manage(caller, &room_id).await?;
        if !may {
            return Err(Error::forbidden("you may not remove this alias"));
        }
        self.store.delete_alias(alias).await?;
        Ok(())
    }

    /// Whether the caller could change the room's canonical alias.
    async fn may_manage(&self, caller: &Caller, room_id: &str) -> Result<bool> {
        let user = caller.user_id.as_str();
        self.rooms
            .snapshot(room_id, |room| {
                let Ok(levels) = converge_core::auth::current_power_levels(room.version, room)
                else {
                    return false;
                };
                room.membership(user) == Membership::Join
                    && levels.user_level(user) >= levels.event_level("m.room.canonical_alias", true)
            })
            .await
    }

    /// `GET /rooms/{roomId}/aliases`.
    pub async fn room_aliases(&self, caller: &Caller, room_id: &str) -> Result<Vec<String>> {
        self.rooms
            .require_joined(room_id, caller.user_id.as_str())
            .await?;
        Ok(self.store.room_aliases(room_id).await?)
    }

    /// `PUT /directory/list/room/{roomId}`.
    pub async fn set_visibility(&self, caller: &Caller, room_id: &str, public: bool) -> Result<()> {
        if !(caller.is_admin || self.may_manage(caller, room_id).await?) {
            return Err(Error::forbidden(
                "you may not change this room's directory visibility",
            ));
        }
        Ok(self.store.set_room_public(room_id, public).await?)
    }

    /// `GET /directory/list/room/{roomId}`.
    pub async fn visibility(&self, room_id: &str) -> Result<bool> {
        Ok(self
            .store
            .room(room_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such room".into()))?
            .is_public)
    }

    /// `GET/POST /publicRooms`: published rooms, most members first, optionally filtered
    /// by a search term over name, topic and alias.
    pub async fn public_rooms(
        &self,
        limit: Option<usize>,
        since: Option<&str>,
        term: Option<&str>,
    ) -> Result<PublicRooms> {
        let offset = match since {
            Some(token) => token
                .parse::<usize>()
                .map_err(|_| Error::InvalidParam("bad since token".into()))?,
            None => 0,
        };
        let term = term.map(str::to_lowercase).filter(|t| !t.is_empty());
        let mut chunk = Vec::new();
        for room_id in self.store.public_rooms().await? {
            let entry = self
                .rooms
                .snapshot(&room_id, |room| {
                    let text = |t: &str, f: &str| room.content_str(t, f).map(str::to_owned);
                    let mut entry = json!({
                        "room_id": room_id,
                        "num_joined_members": room.members(Membership::Join).count(),
                        "world_readable": room.content_str("m.room.history_visibility", "history_visibility") == Some("world_readable"),
                        "guest_can_join": room.content_str("m.room.guest_access", "guest_access") == Some("can_join"),
                        "join_rule": text("m.room.join_rules", "join_rule").unwrap_or_else(|| "invite".into()),
                    });
                    for (key, value) in [
                        ("name", text("m.room.name", "name")),
                        ("topic", text("m.room.topic", "topic")),
                        ("canonical_alias", text("m.room.canonical_alias", "alias")),
                        ("avatar_url", text("m.room.avatar", "url")),
                        ("room_type", text("m.room.create", "type")),
                    ] {
                        if let Some(value) = value {
                            entry[key] = json!(value);
                        }
                    }
                    entry
                })
                .await?;
            let matches = term.as_deref().is_none_or(|term| {
                ["name", "topic", "canonical_alias"].iter().any(|k| {
                    entry[*k]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(term))
                })
            });
            if matches {
                chunk.push(entry);
            }
        }
        chunk.sort_by(|a, b| {
            b["num_joined_members"]
                .as_u64()
                .cmp(&a["num_joined_members"].as_u64())
                .then_with(|| a["room_id"].as_str().cmp(&b["room_id"].as_str()))
        });
        let total = chunk.len();
        let limit = limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let page: Vec<Value> = chunk.into_iter().skip(offset).take(limit).collect();
        let next_batch = (offset + page.len() < total).then(|| (offset + page.len()).to_string());
        let prev_batch = (offset > 0).then(|| offset.saturating_sub(limit).to_string());
        Ok(PublicRooms {
            chunk: page,
            next_batch,
            prev_batch,
            total,
        })
    }

    /// `POST /user_directory/search`: local users whose ID or display name contains the
    /// term. Every local user is searched, which includes everyone the spec asks for
    /// (people sharing a room with the searcher, and members of public rooms).
    pub async fn search_users(&self, term: &str, limit: usize) -> Result<(Vec<Value>, bool)> {
        let limit = limit.clamp(1, MAX_PAGE);
        let term = term.trim().trim_start_matches('@');
        let term = term.split(':').next().unwrap_or_default();
        let found = self.store.search_users(term, limit as u32 + 1).await?;
        let limited = found.len() > limit;
        let results = found
            .into_iter()
            .take(limit)
            .map(|(localpart, displayname, avatar_url)| {
                let mut user = json!({ "user_id": format!("@{localpart}:{}", self.server_name) });
                if let Some(name) = displayname {
                    user["display_name"] = json!(name);
                }
                if let Some(url) = avatar_url {
                    user["avatar_url"] = json!(url);
                }
                user
            })
            .collect();
        Ok((results, limited))
    }
}
