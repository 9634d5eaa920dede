//! The in-memory current state of a room: what auth checks and new events need.
//!
//! Loaded from the store on first use and updated by the one code path that appends the
//! room's events, under the room's lock, so it always matches what the store will hold.

use std::collections::HashMap;

use converge_core::auth::{AuthState, Membership, StateRef, membership};
use converge_core::{PersistedEvent, RoomVersion, StreamPos};
use serde_json::Value;

/// One current state event.
#[derive(Clone, Debug)]
pub struct StateEntry {
    pub event_id: String,
    pub sender: String,
    pub content: Value,
    pub pos: StreamPos,
}

/// A room's current state and the tip of its history.
pub struct RoomState {
    pub room_id: String,
    pub version: RoomVersion,
    pub state: HashMap<(String, String), StateEntry>,
    /// The newest event, which the next event points at.
    pub latest: Option<String>,
    pub depth: i64,
}

impl AuthState for RoomState {
    fn state(&self, event_type: &str, state_key: &str) -> Option<StateRef<'_>> {
        self.state
            .get(&(event_type.to_owned(), state_key.to_owned()))
            .map(|entry| StateRef {
                sender: &entry.sender,
                content: &entry.content,
            })
    }
}

impl RoomState {
    pub fn new(room_id: &str, version: RoomVersion) -> Self {
        Self {
            room_id: room_id.to_owned(),
            version,
            state: HashMap::new(),
            latest: None,
            depth: 0,
        }
    }

    /// Builds the state from the store's current state rows and newest event.
    pub fn load(
        room_id: &str,
        version: RoomVersion,
        rows: Vec<(StreamPos, PersistedEvent)>,
        latest: Option<(StreamPos, PersistedEvent)>,
    ) -> Self {
        let mut room = Self::new(room_id, version);
        for (pos, event) in rows {
            room.apply(&event, pos);
        }
        if let Some((_, event)) = latest {
            room.latest = Some(event.event_id);
            room.depth = event.depth;
        }
        room
    }

    /// Records a state event (content parsed from its PDU) as current.
    pub fn apply(&mut self, event: &PersistedEvent, pos: StreamPos) {
        let Some(state_key) = &event.state_key else {
            return;
        };
        let content = serde_json::from_str::<Value>(&event.json)
            .ok()
            .and_then(|mut pdu| pdu.get_mut("content").map(Value::take))
            .unwrap_or(Value::Object(Default::default()));
        self.set(
            &event.event_type,
            state_key,
            StateEntry {
                event_id: event.event_id.clone(),
                sender: event.sender.clone(),
                content,
                pos,
            },
        );
    }

    pub fn set(&mut self, event_type: &str, state_key: &str, entry: StateEntry) {
        self.state
            .insert((event_type.to_owned(), state_key.to_owned()), entry);
    }

    pub fn get(&self, event_type: &str, state_key: &str) -> Option<&StateEntry> {
        self.state
            .get(&(event_type.to_owned(), state_key.to_owned()))
    }

    pub fn membership(&self, user: &str) -> Membership {
        membership(self, user)
    }

    /// Users with the given membership.
    pub fn members(&self, wanted: Membership) -> impl Iterator<Item = &str> {
        self.state
            .iter()
            .filter_map(move |((event_type, key), entry)| {
                (event_type == "m.room.member"
                    && entry
                        .content
                        .get("membership")
                        .and_then(Value::as_str)
                        .and_then(Membership::parse)
                        == Some(wanted))
                .then_some(key.as_str())
            })
    }

    /// Everyone a new event in this room concerns: joined, invited and knocking users.
    pub fn interested(&self) -> Vec<String> {
        self.state
            .iter()
            .filter(|((event_type, _), entry)| {
                event_type == "m.room.member"
                    && matches!(
                        entry.content.get("membership").and_then(Value::as_str),
                        Some("join" | "invite" | "knock")
                    )
            })
            .map(|((_, key), _)| key.clone())
            .collect()
    }

    /// A string field of a state event's content (`name`, `topic`, `join_rule`, ...).
    pub fn content_str(&self, event_type: &str, field: &str) -> Option<&str> {
        self.get(event_type, "")?.content.get(field)?.as_str()
    }
}
