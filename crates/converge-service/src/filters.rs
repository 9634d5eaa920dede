//! Filters: stored per user (`POST /user/{userId}/filter`) or given inline, and what sync
//! and `/messages` take from them.

use converge_store::Store;
use ruma::api::client::filter::{FilterDefinition, RoomEventFilter};

use super::timeline::EventFilter;
use crate::caller::Caller;
use crate::error::{Error, Result};

/// The largest filter accepted, in bytes of JSON.
const MAX_FILTER_BYTES: usize = 16 * 1024;
/// Timeline events per room in a sync when the filter says nothing.
pub const DEFAULT_TIMELINE_LIMIT: u32 = 10;

/// What a sync takes from a filter.
#[derive(Clone, Debug)]
pub struct SyncFilter {
    pub timeline_limit: u32,
    pub timeline: EventFilter,
    pub lazy_load_members: bool,
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub include_leave: bool,
    pub presence: bool,
    pub account_data: bool,
    pub ephemeral: bool,
    /// Notification counts per thread (`unread_thread_notifications`).
    pub thread_counts: bool,
}

impl Default for SyncFilter {
    fn default() -> Self {
        Self {
            timeline_limit: DEFAULT_TIMELINE_LIMIT,
            timeline: EventFilter::default(),
            lazy_load_members: false,
            rooms: None,
            not_rooms: Vec::new(),
            include_leave: false,
            presence: true,
            account_data: true,
            ephemeral: true,
            thread_counts: false,
        }
    }
}

/// The part of a `RoomEventFilter` that selects events.
pub fn event_filter(filter: &RoomEventFilter) -> EventFilter {
    EventFilter {
        types: filter.types.clone(),
        not_types: filter.not_types.clone(),
        senders: filter
            .senders
            .as_ref()
            .map(|s| s.iter().map(ToString::to_string).collect()),
        not_senders: filter.not_senders.iter().map(ToString::to_string).collect(),
        lazy_load_members: !filter.lazy_load_options.is_disabled(),
    }
}

impl From<&FilterDefinition> for SyncFilter {
    fn from(definition: &FilterDefinition) -> Self {
        let room = &definition.room;
        // An empty `types` list means "none of them".
        let enabled = |types: &Option<Vec<String>>| types.as_ref().is_none_or(|t| !t.is_empty());
        Self {
            timeline_limit: room
                .timeline
                .limit
                .map_or(DEFAULT_TIMELINE_LIMIT, |l| {
                    u32::try_from(u64::from(l)).unwrap_or(u32::MAX)
                })
                .clamp(1, super::timeline::MAX_PAGE),
            timeline: event_filter(&room.timeline),
            lazy_load_members: !room.state.lazy_load_options.is_disabled(),
            rooms: room
                .rooms
                .as_ref()
                .map(|r| r.iter().map(ToString::to_string).collect()),
            not_rooms: room.not_rooms.iter().map(ToString::to_string).collect(),
            include_leave: room.include_leave,
            presence: enabled(&definition.presence.types),
            account_data: enabled(&definition.account_data.types),
            ephemeral: enabled(&room.ephemeral.types),
            thread_counts: room.timeline.unread_thread_notifications,
        }
    }
}

pub struct Filters {
    store: Store,
}

impl Filters {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// `POST /user/{userId}/filter`.
    pub async fn create(
        &self,
        caller: &Caller,
        user_id: &str,
        definition: &FilterDefinition,
    ) -> Result<String> {
        if caller.user_id.as_str() != user_id {
            return Err(Error::forbidden("you can only make filters for yourself"));
        }
        let json = serde_json::to_string(definition).map_err(Error::internal)?;
        if json.len() > MAX_FILTER_BYTES {
            return Err(Error::TooLarge {
                limit: MAX_FILTER_BYTES as u64,
            });
        }
        Ok(self.store.create_filter(user_id, &json).await?.to_string())
    }

    /// `GET /user/{userId}/filter/{filterId}`.
    pub async fn get(
        &self,
        caller: &Caller,
        user_id: &str,
        filter_id: &str,
    ) -> Result<FilterDefinition> {
        if caller.user_id.as_str() != user_id {
            return Err(Error::forbidden("you can only read your own filters"));
        }
        let missing = || Error::NotFound("no such filter".into());
        let id: i64 = filter_id.parse().map_err(|_| missing())?;
        let json = self.store.filter(user_id, id).await?.ok_or_else(missing)?;
        serde_json::from_str(&json).map_err(Error::internal)
    }
}
