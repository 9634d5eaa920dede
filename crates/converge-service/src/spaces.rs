//! Spaces: walking a space's tree of rooms for `GET /rooms/{roomId}/hierarchy`.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#spaces>. The walk is depth-first
//! from the requested room, following the valid `m.space.child` events (a room ID as state
//! key, a non-empty `via`) of rooms whose type is `m.space`, children in the spec's order.
//! A room is listed when the requester may see its summary: they are joined or invited, its
//! history is world-readable, anyone may join or knock, or it is restricted to a room they
//! are joined to. Everything is bounded: the depth, the rooms one request visits, the
//! children followed per space and the page. The pagination token holds the number of
//! listed rooms already returned and the walk's parameters, so it needs no server state.

use std::collections::HashSet;
use std::sync::Arc;

use converge_core::{Membership, PersistedEvent};
use converge_store::Store;
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::rooms::Rooms;
use crate::rooms::state::RoomState;

/// Rooms per page when the client names no limit, and the most it may ask for.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;
/// How deep the walk goes below the requested room, at most.
pub const MAX_DEPTH: u32 = 10;
/// The most rooms one request looks at, listed or not, so a huge or looping tree costs a
/// bounded amount of work per page.
pub const MAX_WALK: usize = 500;
/// The most children of one space that are shown and followed.
pub const MAX_CHILDREN: usize = 100;
/// `order` keys longer than this are invalid and sort as if absent.
const MAX_ORDER_CHARS: usize = 50;

/// What `/hierarchy` was asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct HierarchyRequest<'a> {
    pub from: Option<&'a str>,
    pub limit: Option<u32>,
    pub max_depth: Option<u32>,
    pub suggested_only: bool,
}

/// One page of a space's tree.
pub struct HierarchyPage {
    /// Room summaries with their `children_state`, in walk order.
    pub rooms: Vec<Value>,
    pub next_batch: Option<String>,
}

pub struct Spaces {
    store: Store,
    rooms: Arc<Rooms>,
}

/// A valid `m.space.child` event.
struct Child {
    room_id: String,
    suggested: bool,
    /// The stripped event with its `origin_server_ts`, as `children_state` lists it.
    stripped: Value,
}

/// A pagination token: how many listed rooms came before, and the walk it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token {
    offset: usize,
    max_depth: u32,
    suggested_only: bool,
}

impl Token {
    fn parse(token: &str) -> Result<Self> {
        let invalid = || Error::InvalidParam(format!("{token:?} is not a valid token"));
        let mut parts = token.strip_prefix('h').ok_or_else(invalid)?.split('_');
        let mut number = || -> Result<usize> {
            parts
                .next()
                .and_then(|p| p.parse::<usize>().ok())
                .ok_or_else(invalid)
        };
        let offset = number()?;
        let max_depth = u32::try_from(number()?).map_err(|_| invalid())?;
        let suggested_only = match number()? {
            0 => false,
            1 => true,
            _ => return Err(invalid()),
        };
        if offset > MAX_WALK || max_depth > MAX_DEPTH || parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self {
            offset,
            max_depth,
            suggested_only,
        })
    }

    fn render(self) -> String {
        format!(
            "h{}_{}_{}",
            self.offset,
            self.max_depth,
            u8::from(self.suggested_only)
        )
    }
}

impl Spaces {
    pub fn new(store: Store, rooms: Arc<Rooms>) -> Self {
        Self { store, rooms }
    }

    /// `GET /rooms/{roomId}/hierarchy`.
    pub async fn hierarchy(
        &self,
        caller: &Caller,
        room_id: &str,
        request: HierarchyRequest<'_>,
    ) -> Result<HierarchyPage> {
        let max_depth = request.max_depth.unwrap_or(MAX_DEPTH).min(MAX_DEPTH);
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
        let suggested_only = request.suggested_only;
        let offset = match request.from {
            Some(token) => {
                let token = Token::parse(token)?;
                if token.max_depth != max_depth || token.suggested_only != suggested_only {
                    return Err(Error::InvalidParam(
                        "suggested_only and max_depth cannot change on paginated requests".into(),
                    ));
                }
                token.offset
            }
            None => 0,
        };
        let user = caller.user_id.as_str();
        let joined: HashSet<String> = self.rooms.joined_rooms(user).await?.into_iter().collect();

        let mut stack = vec![(room_id.to_owned(), 0u32)];
        let mut seen = HashSet::new();
        let mut listed = 0usize;
        let mut page = Vec::new();
        let mut more = false;
        while let Some((current, depth)) = stack.pop() {
            if !seen.insert(current.clone()) {
                // Loops are forbidden but possible; a room appears once per page.
                continue;
            }
            if seen.len() > MAX_WALK {
                break;
            }
            let is_root = current == room_id;
            let summary = match self
                .rooms
                .snapshot(&current, |room| summarize(room, user, &joined))
                .await
            {
                Ok(summary) => summary,
                Err(Error::NotFound(_)) => None,
                Err(err) => return Err(err),
            };
            let Some((mut summary, is_space)) = summary else {
                if is_root {
                    return Err(Error::forbidden("you may not view this room"));
                }
                continue;
            };
            if page.len() == limit {
                more = true;
                break;
            }
            let children = if is_space {
                self.children(&current).await?
            } else {
                Vec::new()
            };
            if listed >= offset {
                summary["children_state"] =
                    Value::Array(children.iter().map(|c| c.stripped.clone()).collect());
                page.push(summary);
            }
            listed += 1;
            if depth < max_depth {
                for child in children.iter().rev() {
                    if !suggested_only || child.suggested {
                        stack.push((child.room_id.clone(), depth + 1));
                    }
                }
            }
        }
        let next_batch = more.then(|| {
            Token {
                offset: listed,
                max_depth,
                suggested_only,
            }
            .render()
        });
        Ok(HierarchyPage {
            rooms: page,
            next_batch,
        })
    }

    /// The valid children of a space, in the spec's order, at most [`MAX_CHILDREN`].
    async fn children(&self, space: &str) -> Result<Vec<Child>> {
        let events = self
            .store
            .room_state_of_type(space, "m.space.child")
            .await?;
        let mut children: Vec<(Option<String>, i64, Child)> =
            events.iter().filter_map(|(_, e)| child_of(e)).collect();
        // Valid `order` keys first, by code point; then by the event's timestamp; ties by
        // room ID.
        children.sort_by(|(oa, ta, a), (ob, tb, b)| {
            match (oa, ob) {
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                _ => oa.cmp(ob),
            }
            .then(ta.cmp(tb))
            .then_with(|| a.room_id.cmp(&b.room_id))
        });
        children.truncate(MAX_CHILDREN);
        Ok(children.into_iter().map(|(_, _, child)| child).collect())
    }
}

/// A valid child from an `m.space.child` state event: its valid `order` key, timestamp and
/// stripped form.
fn child_of(event: &PersistedEvent) -> Option<(Option<String>, i64, Child)> {
    let room_id = event.state_key.as_deref()?;
    ruma::RoomId::parse(room_id).ok()?;
    let pdu: Value = serde_json::from_str(&event.json).ok()?;
    let content = pdu.get("content")?;
    let via = content.get("via")?.as_array()?;
    if via.is_empty() || !via.iter().all(Value::is_string) {
        return None;
    }
    let order = content
        .get("order")
        .and_then(Value::as_str)
        .filter(|o| {
            o.chars().count() <= MAX_ORDER_CHARS
                && o.chars().all(|c| ('\x20'..='\x7e').contains(&c))
        })
        .map(str::to_owned);
    let suggested = content.get("suggested") == Some(&Value::Bool(true));
    let stripped = json!({
        "type": "m.space.child",
        "state_key": room_id,
        "content": content,
        "sender": event.sender,
        "origin_server_ts": event.origin_server_ts,
    });
    Some((
        order,
        event.origin_server_ts,
        Child {
            room_id: room_id.to_owned(),
            suggested,
            stripped,
        },
    ))
}

/// A room's summary and whether it is a space, if `user` may see it.
fn summarize(room: &RoomState, user: &str, joined: &HashSet<String>) -> Option<(Value, bool)> {
    let text = |event_type: &str, field: &str| room.content_str(event_type, field);
    let world_readable =
        text("m.room.history_visibility", "history_visibility") == Some("world_readable");
    let rule = text("m.room.join_rules", "join_rule").unwrap_or("invite");
    let allowed: Vec<&str> = room
        .get("m.room.join_rules", "")
        .and_then(|e| e.content.get("allow")?.as_array())
        .map(|allow| {
            allow
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) == Some("m.room_membership"))
                .filter_map(|a| a.get("room_id")?.as_str())
                .filter(|id| ruma::RoomId::parse(*id).is_ok())
                .collect()
        })
        .unwrap_or_default();
    let member = matches!(room.membership(user), Membership::Join | Membership::Invite);
    let accessible = member
        || world_readable
        || matches!(rule, "public" | "knock" | "knock_restricted")
        || (rule == "restricted" && allowed.iter().any(|id| joined.contains(*id)));
    if !accessible {
        return None;
    }
    // Only join rules clients know go on the wire; an unknown one lets nobody in, as
    // `invite` does.
    let rule = match rule {
        "public" | "knock" | "invite" | "private" | "restricted" | "knock_restricted" => rule,
        _ => "invite",
    };
    let room_type = text("m.room.create", "type");
    let mut summary = json!({
        "room_id": room.room_id,
        "num_joined_members": room.members(Membership::Join).count(),
        "world_readable": world_readable,
        "guest_can_join": text("m.room.guest_access", "guest_access") == Some("can_join"),
        "join_rule": rule,
        "room_version": room.version.as_str(),
    });
    if matches!(rule, "restricted" | "knock_restricted") {
        summary["allowed_room_ids"] = json!(allowed);
    }
    for (key, value) in [
        ("name", text("m.room.name", "name")),
        ("topic", text("m.room.topic", "topic")),
        ("avatar_url", text("m.room.avatar", "url")),
        ("room_type", room_type),
        ("encryption", text("m.room.encryption", "algorithm")),
        (
            "canonical_alias",
            text("m.room.canonical_alias", "alias")
                .filter(|a| ruma::RoomAliasId::parse(*a).is_ok()),
        ),
    ] {
        if let Some(value) = value {
            summary[key] = json!(value);
        }
    }
    Some((summary, room_type == Some("m.space")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = Token {
            offset: 40,
            max_depth: 3,
            suggested_only: true,
        };
        assert_eq!(token.render(), "h40_3_1");
        assert_eq!(Token::parse(&token.render()).unwrap(), token);
        for bad in [
            "",
            "h",
            "h1",
            "h1_2",
            "h1_2_2",
            "h1_2_1_0",
            "x1_2_1",
            "h-1_2_1",
            "h1_99_0",
            "h100000_1_0",
            "h1_2_x",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad:?}");
        }
    }
}
