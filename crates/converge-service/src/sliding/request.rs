//! What a sliding sync request asks for (MSC4186), in the service's terms, checked and
//! clamped before any work: lists with their ranges, filters and room details, room
//! subscriptions, and the extensions with their scopes.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::error::{Error, Result};

/// Lists one request may hold.
pub const MAX_LISTS: usize = 100;
/// Ranges one list may hold.
pub const MAX_RANGES: usize = 100;
/// Room subscriptions one request may hold.
pub const MAX_SUBSCRIPTIONS: usize = 1_000;
/// `required_state` entries one list or subscription may hold.
pub const MAX_REQUIRED_STATE: usize = 1_000;
/// The most timeline events sent for one room; larger limits are clamped to it.
pub const MAX_TIMELINE_LIMIT: u32 = 100;
/// The longest `conn_id`.
pub const MAX_CONN_ID_LEN: usize = 256;

/// One sliding sync request.
#[derive(Debug, Default)]
pub struct SlidingRequest {
    /// Names the connection among the device's (`""` when the client gave none).
    pub conn_id: String,
    /// The position the client is at; `None` starts the connection afresh.
    pub pos: Option<String>,
    /// Echoed back so the client can match the response.
    pub txn_id: Option<String>,
    pub timeout: Duration,
    /// `online`, `unavailable` or `offline`; `None` leaves presence alone.
    pub set_presence: Option<String>,
    pub lists: BTreeMap<String, ListRequest>,
    pub subscriptions: BTreeMap<String, RoomConfig>,
    pub extensions: Extensions,
}

/// One list: a window (`ranges`) over the user's rooms that pass `filters`, newest first.
#[derive(Debug, Default, Clone)]
pub struct ListRequest {
    /// Inclusive index ranges, sorted and merged by [`SlidingRequest::check`].
    pub ranges: Vec<(u64, u64)>,
    pub room: RoomConfig,
    pub filters: ListFilters,
}

/// What is sent of each room in a list or subscription.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub struct RoomConfig {
    pub timeline_limit: u32,
    pub required_state: RequiredState,
}

impl RoomConfig {
    /// The union of two configurations (a room in two lists gets what both ask for).
    pub fn merge(&mut self, other: &RoomConfig) {
        self.timeline_limit = self.timeline_limit.max(other.timeline_limit);
        self.required_state.merge(&other.required_state);
    }
}

/// `[event_type, state_key]` pairs of the state to send; `*` matches any type or key,
/// `$ME` is the user and `$LAZY` (for members) the senders of the timeline sent.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub struct RequiredState(Vec<(String, String)>);

pub const WILDCARD: &str = "*";
pub const ME: &str = "$ME";
pub const LAZY: &str = "$LAZY";

impl RequiredState {
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.sort();
        pairs.dedup();
        Self(pairs)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn merge(&mut self, other: &RequiredState) {
        self.0.extend(other.0.iter().cloned());
        self.0.sort();
        self.0.dedup();
    }

    /// Whether the state event (`event_type`, `state_key`) is asked for, for `user`,
    /// given the senders (`lazy`) whose membership `$LAZY` asks for.
    pub fn wants(
        &self,
        event_type: &str,
        state_key: &str,
        user: &str,
        lazy: &HashSet<&str>,
    ) -> bool {
        self.0.iter().any(|(t, k)| {
            (t == WILDCARD || t == event_type)
                && match k.as_str() {
                    WILDCARD => true,
                    ME => state_key == user,
                    LAZY => event_type == "m.room.member" && lazy.contains(state_key),
                    key => key == state_key,
                }
        })
    }

    /// Whether the entries name exact `(type, key)` pairs only, so the room's state need
    /// not be walked: those pairs, with `$ME` resolved (`$LAZY` is answered separately).
    pub fn exact_keys<'a>(&'a self, user: &'a str) -> Option<Vec<(&'a str, &'a str)>> {
        let mut out = Vec::with_capacity(self.0.len());
        for (t, k) in &self.0 {
            match (t.as_str(), k.as_str()) {
                (WILDCARD, _) | (_, WILDCARD) => return None,
                (_, LAZY) => {}
                (t, ME) => out.push((t, user)),
                (t, k) => out.push((t, k)),
            }
        }
        Some(out)
    }

    /// Whether `$LAZY` members are asked for.
    pub fn lazy_members(&self) -> bool {
        self.0
            .iter()
            .any(|(t, k)| t == "m.room.member" && k == LAZY)
    }
}

/// Which rooms a list holds (`None`: no condition).
#[derive(Debug, Default, Clone)]
pub struct ListFilters {
    pub is_dm: Option<bool>,
    pub is_encrypted: Option<bool>,
    pub is_invite: Option<bool>,
    /// Room types to include (`None` in the list is a room without a type).
    pub room_types: Vec<Option<String>>,
    pub not_room_types: Vec<Option<String>>,
}

impl ListFilters {
    pub fn needs_room_facts(&self) -> bool {
        self.is_encrypted.is_some()
            || self.is_dm.is_some()
            || !self.room_types.is_empty()
            || !self.not_room_types.is_empty()
    }
}

/// The extensions asked for; `None` is disabled.
#[derive(Debug, Default)]
pub struct Extensions {
    pub to_device: Option<ToDevice>,
    pub e2ee: bool,
    pub account_data: Option<Scope>,
    pub receipts: Option<Scope>,
    pub typing: Option<Scope>,
}

#[derive(Debug, Default)]
pub struct ToDevice {
    /// The `next_batch` of the last to-device response the client processed.
    pub since: Option<String>,
}

/// The rooms a per-room extension covers: those of the named lists (all lists when
/// `None`) and the named subscriptions (all when `None`; `*` is all too).
#[derive(Debug, Default, Clone)]
pub struct Scope {
    pub lists: Option<Vec<String>>,
    pub rooms: Option<Vec<String>>,
}

impl Scope {
    pub fn covers_list(&self, list: &str) -> bool {
        self.lists
            .as_ref()
            .is_none_or(|lists| lists.iter().any(|l| l == list || l == WILDCARD))
    }

    pub fn covers_subscription(&self, room_id: &str) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == room_id || r == WILDCARD))
    }
}

impl SlidingRequest {
    /// Refuses what cannot be served (too many lists, ranges or state entries, a reversed
    /// range, an over-long `conn_id`) and clamps what can (`timeline_limit`); sorts and
    /// merges each list's ranges.
    pub fn check(&mut self) -> Result<()> {
        if self.conn_id.len() > MAX_CONN_ID_LEN {
            return Err(Error::InvalidParam(format!(
                "conn_id is longer than {MAX_CONN_ID_LEN} bytes"
            )));
        }
        if self.lists.len() > MAX_LISTS {
            return Err(Error::InvalidParam(format!(
                "{} lists asked for; at most {MAX_LISTS}",
                self.lists.len()
            )));
        }
        if self.subscriptions.len() > MAX_SUBSCRIPTIONS {
            return Err(Error::InvalidParam(format!(
                "{} room subscriptions asked for; at most {MAX_SUBSCRIPTIONS}",
                self.subscriptions.len()
            )));
        }
        for (name, list) in &mut self.lists {
            if list.ranges.len() > MAX_RANGES {
                return Err(Error::InvalidParam(format!(
                    "list {name:?} has {} ranges; at most {MAX_RANGES}",
                    list.ranges.len()
                )));
            }
            if let Some((start, end)) = list.ranges.iter().find(|(s, e)| s > e) {
                return Err(Error::InvalidParam(format!(
                    "list {name:?} has the reversed range [{start}, {end}]"
                )));
            }
            list.ranges = merge_ranges(std::mem::take(&mut list.ranges));
            check_room_config(&mut list.room, &format!("list {name:?}"))?;
        }
        for (room_id, config) in &mut self.subscriptions {
            check_room_config(config, &format!("the subscription to {room_id}"))?;
        }
        Ok(())
    }
}

fn check_room_config(config: &mut RoomConfig, what: &str) -> Result<()> {
    if config.required_state.0.len() > MAX_REQUIRED_STATE {
        return Err(Error::InvalidParam(format!(
            "{what} asks for {} required_state entries; at most {MAX_REQUIRED_STATE}",
            config.required_state.0.len()
        )));
    }
    config.timeline_limit = config.timeline_limit.min(MAX_TIMELINE_LIMIT);
    Ok(())
}

/// Sorts ranges and merges those that overlap or touch.
fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> RequiredState {
        RequiredState::new(
            p.iter()
                .map(|(t, k)| (t.to_string(), k.to_string()))
                .collect(),
        )
    }

    #[test]
    fn ranges_are_sorted_and_merged() {
        assert_eq!(
            merge_ranges(vec![(10, 19), (0, 9), (5, 7), (30, 40)]),
            vec![(0, 19), (30, 40)]
        );
        assert_eq!(
            merge_ranges(vec![(0, u64::MAX), (3, 4)]),
            vec![(0, u64::MAX)]
        );
    }

    #[test]
    fn bad_requests_are_refused_and_limits_clamped() {
        let mut request = SlidingRequest::default();
        request.lists.insert(
            "all".into(),
            ListRequest {
                ranges: vec![(5, 1)],
                ..Default::default()
            },
        );
        assert!(matches!(request.check(), Err(Error::InvalidParam(m)) if m.contains("reversed")));

        let mut request = SlidingRequest::default();
        for i in 0..=MAX_LISTS {
            request
                .lists
                .insert(format!("l{i}"), ListRequest::default());
        }
        assert!(matches!(request.check(), Err(Error::InvalidParam(_))));

        let mut request = SlidingRequest::default();
        let many = (0..=MAX_REQUIRED_STATE)
            .map(|i| ("t".to_owned(), i.to_string()))
            .collect();
        request.subscriptions.insert(
            "!r:x".into(),
            RoomConfig {
                timeline_limit: 1,
                required_state: RequiredState::new(many),
            },
        );
        assert!(matches!(request.check(), Err(Error::InvalidParam(_))));

        let mut request = SlidingRequest::default();
        request.subscriptions.insert(
            "!r:x".into(),
            RoomConfig {
                timeline_limit: 10_000,
                required_state: RequiredState::default(),
            },
        );
        request.check().unwrap();
        assert_eq!(
            request.subscriptions["!r:x"].timeline_limit,
            MAX_TIMELINE_LIMIT
        );
    }

    #[test]
    fn required_state_matches_wildcards_me_and_lazy_members() {
        let lazy: HashSet<&str> = ["@bob:x"].into();
        let state = pairs(&[
            ("m.room.name", ""),
            ("m.room.member", "$LAZY"),
            ("m.room.member", "$ME"),
        ]);
        assert!(state.wants("m.room.name", "", "@me:x", &lazy));
        assert!(!state.wants("m.room.topic", "", "@me:x", &lazy));
        assert!(state.wants("m.room.member", "@me:x", "@me:x", &lazy));
        assert!(state.wants("m.room.member", "@bob:x", "@me:x", &lazy));
        assert!(!state.wants("m.room.member", "@carol:x", "@me:x", &lazy));
        assert!(state.lazy_members());
        assert_eq!(
            state.exact_keys("@me:x").unwrap(),
            vec![("m.room.member", "@me:x"), ("m.room.name", "")]
        );

        let all = pairs(&[("*", "*")]);
        assert!(all.wants("anything", "at all", "@me:x", &lazy));
        assert!(all.exact_keys("@me:x").is_none());
        let members = pairs(&[("m.room.member", "*")]);
        assert!(members.wants("m.room.member", "@carol:x", "@me:x", &lazy));
        assert!(!members.wants("m.room.name", "", "@me:x", &lazy));
    }

    #[test]
    fn configs_merge_to_what_both_ask() {
        let mut a = RoomConfig {
            timeline_limit: 1,
            required_state: pairs(&[("m.room.name", "")]),
        };
        let b = RoomConfig {
            timeline_limit: 20,
            required_state: pairs(&[("m.room.topic", "")]),
        };
        a.merge(&b);
        assert_eq!(a.timeline_limit, 20);
        assert_eq!(
            a.required_state,
            pairs(&[("m.room.name", ""), ("m.room.topic", "")])
        );
    }
}
