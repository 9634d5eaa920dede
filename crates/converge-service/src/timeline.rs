//! Reading rooms: single events, history pages, context, relations, state and members,
//! each limited to what the reader may see.
//!
//! History visibility is judged at each event, exactly as the spec says (see
//! [`converge_core::visibility`]): the room's setting and the reader's membership as they
//! were at the event. A [`View`] holds what one user may see of one room.

use std::collections::HashSet;
use std::sync::Arc;

use converge_core::visibility::{HistoryVisibility, VisibilityHistory};
use converge_core::{Membership, PersistedEvent, StreamPos, pdu};
use converge_store::{Direction, Store};
use serde_json::{Value, json};

use super::now_ms;
use super::rooms::Rooms;
use super::token::{SyncToken, page_token};
use crate::caller::Caller;
use crate::error::{Error, Result};

/// The most events one page may hold.
pub const MAX_PAGE: u32 = 1000;

/// Which events of a page a client wants (a subset of the spec's `RoomEventFilter`).
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub lazy_load_members: bool,
}

impl EventFilter {
    pub fn allows(&self, event: &PersistedEvent) -> bool {
        let type_matches = |pattern: &String| glob(pattern, &event.event_type);
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(type_matches))
            && !self.not_types.iter().any(type_matches)
            && self
                .senders
                .as_ref()
                .is_none_or(|s| s.contains(&event.sender))
            && !self.not_senders.contains(&event.sender)
    }
}

/// Matches `m.room.*`-style patterns: `*` stands for any run of characters.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            value.starts_with(prefix)
                && (0..=value.len() - prefix.len()).any(|i| {
                    value.is_char_boundary(prefix.len() + i)
                        && glob(rest, &value[prefix.len() + i..])
                })
        }
    }
}

/// Where a page of history starts and ends, which way it goes and how long it is.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub backward: bool,
    pub limit: u32,
}

/// Which relations `/relations` lists.
#[derive(Clone, Copy, Debug, Default)]
pub struct RelationKind<'a> {
    pub rel_type: Option<&'a str>,
    pub event_type: Option<&'a str>,
}

/// A page of history.
pub struct Page {
    pub start: String,
    pub end: Option<String>,
    pub chunk: Vec<Value>,
    pub state: Vec<Value>,
}

/// An event with what came around it.
pub struct Context {
    pub event: Value,
    pub before: Vec<Value>,
    pub after: Vec<Value>,
    pub start: String,
    pub end: String,
    pub state: Vec<Value>,
}

pub struct Timeline {
    store: Store,
    rooms: Arc<Rooms>,
}

/// The client form of a stored event, as `viewer` sees it.
pub fn client_event(event: &PersistedEvent, viewer: Option<&Caller>) -> Value {
    let mut unsigned = event
        .unsigned
        .as_deref()
        .and_then(|u| serde_json::from_str::<Value>(u).ok())
        .unwrap_or_else(|| json!({}));
    unsigned["age"] = json!((now_ms() - event.origin_server_ts).max(0));
    if let (Some((device, key)), Some(viewer)) = (&event.txn, viewer)
        && event.sender == viewer.user_id.as_str()
        && device == viewer.device_id.as_str()
        && let Some((_, txn_id)) = key.rsplit_once('|')
    {
        unsigned["transaction_id"] = json!(txn_id);
    }
    if let Some(because) = event
        .redacted_because
        .as_deref()
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
    {
        unsigned["redacted_because"] = because;
    }
    pdu::client_event(&event.event_id, &event.json, Some(unsigned)).unwrap_or_else(|err| {
        tracing::error!(event_id = %event.event_id, error = %err, "stored event is not valid JSON");
        json!({ "event_id": event.event_id, "type": event.event_type, "sender": event.sender, "content": {} })
    })
}

impl Timeline {
    pub fn new(store: Store, rooms: Arc<Rooms>) -> Self {
        Self { store, rooms }
    }

    /// What `user` may see of `room_id`; `Forbidden` for someone who never was in the
    /// room (and cannot peek: it is not world-readable).
    pub async fn view(&self, user: &str, room_id: &str) -> Result<View> {
        let view = load_view(&self.store, &self.rooms, user, room_id).await?;
        if !view.ever_member && !view.world_readable_now {
            return Err(Error::forbidden("you are not in this room"));
        }
        Ok(view)
    }

    /// One event as `caller` sees it, if it exists in the room and they may see it.
    pub async fn visible_event(
        &self,
        caller: &Caller,
        room_id: &str,
        event_id: &str,
    ) -> Result<Option<Value>> {
        let view = load_view(&self.store, &self.rooms, caller.user_id.as_str(), room_id).await?;
        Ok(match self.store.event(event_id).await? {
            Some((pos, event)) if event.room_id == room_id && view.visible(pos, &event) => {
                Some(client_event(&event, Some(caller)))
            }
            _ => None,
        })
    }

    /// `GET /rooms/{roomId}/event/{eventId}`.
    pub async fn event(&self, caller: &Caller, room_id: &str, event_id: &str) -> Result<Value> {
        self.view(caller.user_id.as_str(), room_id).await?;
        self.visible_event(caller, room_id, event_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such event in this room".into()))
    }

    /// `GET /rooms/{roomId}/messages`.
    pub async fn messages(
        &self,
        caller: &Caller,
        room_id: &str,
        page: PageRequest<'_>,
        filter: &EventFilter,
    ) -> Result<Page> {
        let PageRequest {
            from,
            to,
            backward,
            limit,
        } = page;
        let view = self.view(caller.user_id.as_str(), room_id).await?;
        let until = view.readable_until;
        let current = *self.store.stream_position().borrow();
        let from = match from {
            Some(token) => SyncToken::parse(token)?.pos,
            None if backward => current,
            None => StreamPos(0),
        };
        let to = to.map(SyncToken::parse).transpose()?.map(|t| t.pos);
        let limit = limit.clamp(1, MAX_PAGE);
        let (mut lower, mut upper) = if backward {
            (to.unwrap_or(StreamPos(0)), from.min(until))
        } else {
            (from, to.unwrap_or(current).min(until).min(current))
        };
        let direction = if backward {
            Direction::Backward
        } else {
            Direction::Forward
        };
        let mut chunk = Vec::new();
        let mut exhausted = false;
        // Filtered-out events do not count; read on a few times to fill the page.
        for _ in 0..8 {
            if lower >= upper {
                exhausted = true;
                break;
            }
            let events = self
                .store
                .room_events(room_id, lower, upper, limit, direction)
                .await?;
            let fetched = events.len();
            for (pos, event) in events {
                if backward {
                    upper = StreamPos(pos.0 - 1)
                } else {
                    lower = pos
                }
                if filter.allows(&event) && view.visible(pos, &event) {
                    chunk.push((pos, event));
                    if chunk.len() as u32 == limit {
                        break;
                    }
                }
            }
            if (fetched as u32) < limit {
                exhausted = true;
                break;
            }
            if chunk.len() as u32 == limit {
                break;
            }
        }
        let end = (!exhausted).then(|| page_token(if backward { upper } else { lower }));
        let state = if filter.lazy_load_members {
            let senders: HashSet<&str> = chunk.iter().map(|(_, e)| e.sender.as_str()).collect();
            self.member_events(room_id, senders.into_iter()).await?
        } else {
            Vec::new()
        };
        Ok(Page {
            start: page_token(if backward { from.min(until) } else { from }),
            end,
            chunk: chunk
                .iter()
                .map(|(_, e)| client_event(e, Some(caller)))
                .collect(),
            state,
        })
    }

    /// The current member events of `users` in a room.
    pub async fn member_events<'a>(
        &self,
        room_id: &str,
        users: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<Value>> {
        let ids: Vec<String> = {
            let wanted: Vec<&str> = users.collect();
            self.rooms
                .snapshot(room_id, |room| {
                    wanted
                        .iter()
                        .filter_map(|u| room.get("m.room.member", u).map(|e| e.event_id.clone()))
                        .collect()
                })
                .await?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((_, event)) = self.store.event(&id).await? {
                out.push(client_event(&event, None));
            }
        }
        Ok(out)
    }

    /// `GET /rooms/{roomId}/context/{eventId}`.
    pub async fn context(
        &self,
        caller: &Caller,
        room_id: &str,
        event_id: &str,
        limit: u32,
        filter: &EventFilter,
    ) -> Result<Context> {
        let view = self.view(caller.user_id.as_str(), room_id).await?;
        let until = view.readable_until;
        let (pos, event) = match self.store.event(event_id).await? {
            Some((pos, event)) if event.room_id == room_id && view.visible(pos, &event) => {
                (pos, event)
            }
            _ => return Err(Error::NotFound("no such event in this room".into())),
        };
        let limit = limit.min(MAX_PAGE);
        let half_before = limit / 2;
        let half_after = limit - half_before;
        let before: Vec<_> = self
            .store
            .room_events(
                room_id,
                StreamPos(0),
                StreamPos(pos.0 - 1),
                half_before.max(1),
                Direction::Backward,
            )
            .await?
            .into_iter()
            .take(half_before as usize)
            .filter(|(p, e)| filter.allows(e) && view.visible(*p, e))
            .collect();
        let current = *self.store.stream_position().borrow();
        let after: Vec<_> = self
            .store
            .room_events(
                room_id,
                pos,
                until.min(current),
                half_after.max(1),
                Direction::Forward,
            )
            .await?
            .into_iter()
            .take(half_after as usize)
            .filter(|(p, e)| filter.allows(e) && view.visible(*p, e))
            .collect();
        let start = page_token(StreamPos(before.last().map_or(pos.0, |(p, _)| p.0) - 1));
        let end = page_token(after.last().map_or(pos, |(p, _)| *p));
        let state = self.state(caller, room_id).await?;
        Ok(Context {
            event: client_event(&event, Some(caller)),
            before: before
                .iter()
                .map(|(_, e)| client_event(e, Some(caller)))
                .collect(),
            after: after
                .iter()
                .map(|(_, e)| client_event(e, Some(caller)))
                .collect(),
            start,
            end,
            state,
        })
    }

    /// `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`, newest first
    /// (`dir=b`, the default) or oldest first (`dir=f`).
    pub async fn relations(
        &self,
        caller: &Caller,
        room_id: &str,
        event_id: &str,
        kind: RelationKind<'_>,
        page: PageRequest<'_>,
    ) -> Result<(Vec<Value>, Option<String>)> {
        let RelationKind {
            rel_type,
            event_type,
        } = kind;
        let PageRequest {
            from,
            to,
            backward,
            limit,
        } = page;
        let view = self.view(caller.user_id.as_str(), room_id).await?;
        let until = view.readable_until;
        if !self
            .store
            .event(event_id)
            .await?
            .is_some_and(|(p, e)| e.room_id == room_id && view.visible(p, &e))
        {
            return Err(Error::NotFound("no such event in this room".into()));
        }
        // A token names the position just before the next event to read: going back,
        // events before it and it; going forward, events after it.
        let limit = limit.clamp(1, MAX_PAGE);
        let from = from.map(SyncToken::parse).transpose()?.map(|t| t.pos);
        let to = to.map(SyncToken::parse).transpose()?.map(|t| t.pos);
        let readable_end = StreamPos(until.0.saturating_add(1));
        let (after, before, direction) = if backward {
            (
                to.unwrap_or(StreamPos(0)),
                from.map_or(readable_end, |p| StreamPos(p.0 + 1))
                    .min(readable_end),
                Direction::Backward,
            )
        } else {
            (
                from.unwrap_or(StreamPos(0)),
                to.map_or(readable_end, |p| StreamPos(p.0 + 1))
                    .min(readable_end),
                Direction::Forward,
            )
        };
        let events = self
            .store
            .relations(room_id, event_id, after, before, limit, direction)
            .await?;
        let next = (events.len() as u32 == limit).then(|| {
            let last = events.last().map_or(0, |(p, _)| p.0);
            page_token(StreamPos(if backward { last - 1 } else { last }))
        });
        let chunk = events
            .iter()
            .filter(|(p, e)| view.visible(*p, e))
            .filter(|(_, e)| {
                rel_type.is_none_or(|r| e.relation.as_ref().is_some_and(|(_, t)| t == r))
            })
            .filter(|(_, e)| event_type.is_none_or(|t| e.event_type == t))
            .map(|(_, e)| client_event(e, Some(caller)))
            .collect();
        Ok((chunk, next))
    }

    /// `GET /rooms/{roomId}/state`: the current state, for members.
    pub async fn state(&self, caller: &Caller, room_id: &str) -> Result<Vec<Value>> {
        self.view(caller.user_id.as_str(), room_id).await?;
        let events = self.store.room_state(room_id).await?;
        Ok(events.iter().map(|(_, e)| client_event(e, None)).collect())
    }

    /// `GET /rooms/{roomId}/state/{eventType}/{stateKey}`: one state event's content.
    pub async fn state_event(
        &self,
        caller: &Caller,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Value> {
        self.view(caller.user_id.as_str(), room_id).await?;
        self.rooms
            .snapshot(room_id, |room| {
                room.get(event_type, state_key).map(|e| e.content.clone())
            })
            .await?
            .ok_or_else(|| Error::NotFound("no such state event".into()))
    }

    /// `GET /rooms/{roomId}/state/{eventType}/{stateKey}?format=event`: the whole event.
    pub async fn state_event_whole(
        &self,
        caller: &Caller,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Value> {
        self.view(caller.user_id.as_str(), room_id).await?;
        let missing = || Error::NotFound("no such state event".into());
        let event_id = self
            .rooms
            .snapshot(room_id, |room| {
                room.get(event_type, state_key).map(|e| e.event_id.clone())
            })
            .await?
            .ok_or_else(missing)?;
        let (_, event) = self.rooms.event(&event_id).await?.ok_or_else(missing)?;
        Ok(client_event(&event, Some(caller)))
    }

    /// `GET /rooms/{roomId}/members`, filtered by membership.
    pub async fn members(
        &self,
        caller: &Caller,
        room_id: &str,
        membership: Option<&str>,
        not_membership: Option<&str>,
    ) -> Result<Vec<Value>> {
        self.view(caller.user_id.as_str(), room_id).await?;
        let events = self.store.room_state(room_id).await?;
        Ok(events
            .iter()
            .filter(|(_, e)| e.event_type == "m.room.member")
            .map(|(_, e)| client_event(e, None))
            .filter(|e| {
                let m = e["content"]["membership"].as_str().unwrap_or_default();
                membership.is_none_or(|want| m == want)
                    && not_membership.is_none_or(|skip| m != skip)
            })
            .collect())
    }

    /// `GET /rooms/{roomId}/joined_members`: user → (display name, avatar URL).
    pub async fn joined_members(
        &self,
        caller: &Caller,
        room_id: &str,
    ) -> Result<Vec<(String, Option<String>, Option<String>)>> {
        self.rooms
            .require_joined(room_id, caller.user_id.as_str())
            .await?;
        self.rooms
            .snapshot(room_id, |room| {
                room.members(Membership::Join)
                    .map(|user| {
                        let content = &room
                            .get("m.room.member", user)
                            .expect("a member has a member event")
                            .content;
                        let field = |name: &str| {
                            content.get(name).and_then(Value::as_str).map(str::to_owned)
                        };
                        (user.to_owned(), field("displayname"), field("avatar_url"))
                    })
                    .collect()
            })
            .await
    }

    /// `GET /joined_rooms`.
    pub async fn joined_rooms(&self, caller: &Caller) -> Result<Vec<String>> {
        self.rooms.joined_rooms(caller.user_id.as_str()).await
    }
}

/// What one user may see of one room.
pub struct View {
    user: String,
    /// Whether the user ever had a membership (or an invite) in the room.
    pub ever_member: bool,
    /// Whether the room is world-readable now (anyone may peek).
    pub world_readable_now: bool,
    /// Nothing after this position is visible (the user left, or stays `i64::MAX`): a bound
    /// that saves reading what would be filtered out anyway.
    pub readable_until: StreamPos,
    /// Events from here on are visible without looking further: the user joined here and
    /// is still joined.
    joined_since: Option<StreamPos>,
    history: VisibilityHistory,
}

impl View {
    /// Whether the user may see `event`, which is at `pos`.
    pub fn visible(&self, pos: StreamPos, event: &PersistedEvent) -> bool {
        if self.joined_since.is_some_and(|since| pos >= since) {
            return true;
        }
        let sets = (event.event_type == "m.room.history_visibility"
            && event.state_key.as_deref() == Some(""))
        .then(|| {
            let content = serde_json::from_str::<Value>(&event.json)
                .map(|pdu| pdu["content"]["history_visibility"].clone())
                .unwrap_or_default();
            HistoryVisibility::parse(content.as_str())
        });
        let own_membership =
            event.event_type == "m.room.member" && event.state_key.as_deref() == Some(&self.user);
        self.history.visible(pos.0, sets, own_membership)
    }
}

/// Loads what `user` may see of `room_id`: the room's history-visibility settings and the
/// user's memberships over time.
pub async fn load_view(store: &Store, rooms: &Rooms, user: &str, room_id: &str) -> Result<View> {
    let (membership, world_readable_now) = rooms
        .snapshot(room_id, |room| {
            (
                room.membership(user),
                room.content_str("m.room.history_visibility", "history_visibility")
                    == Some("world_readable"),
            )
        })
        .await?;
    let (settings, memberships) = store.visibility_changes(room_id, user).await?;
    let memberships: Vec<(i64, Membership)> = memberships
        .iter()
        .map(|(pos, m)| (pos.0, Membership::parse(m).unwrap_or(Membership::Leave)))
        .collect();
    let joined_since = (membership == Membership::Join)
        .then(|| {
            memberships
                .iter()
                .rev()
                .take_while(|(_, m)| *m == Membership::Join)
                .last()
                .map(|(pos, _)| StreamPos(*pos))
        })
        .flatten();
    let readable_until = match (membership, memberships.last()) {
        (Membership::Leave | Membership::Ban, Some((pos, _))) if !world_readable_now => {
            StreamPos(*pos)
        }
        _ => StreamPos(i64::MAX),
    };
    let settings = settings
        .iter()
        .map(|(pos, s)| (pos.0, HistoryVisibility::parse(Some(s))))
        .collect();
    Ok(View {
        user: user.to_owned(),
        ever_member: !memberships.is_empty(),
        world_readable_now,
        readable_until,
        joined_since,
        history: VisibilityHistory::new(settings, memberships),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns() {
        for (pattern, value, expected) in [
            ("m.room.message", "m.room.message", true),
            ("m.room.*", "m.room.message", true),
            ("m.room.*", "m.reaction", false),
            ("*", "anything", true),
            ("m.*.member", "m.room.member", true),
            ("m.room.message", "m.room.messages", false),
        ] {
            assert_eq!(glob(pattern, value), expected, "{pattern} ~ {value}");
        }
    }
}
