//! Reading the committed event stream, for components that follow it rather than a user's
//! sync: the gateways' feeds and outboxes.

use converge_core::{PersistedEvent, StreamPos};
use converge_store::{Direction, Store};
use tokio::sync::watch;

use crate::error::Result;

pub struct EventStream {
    store: Store,
}

impl EventStream {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The highest committed position; the receiver wakes when it grows.
    pub fn position(&self) -> watch::Receiver<StreamPos> {
        self.store.stream_position()
    }

    /// Events after `after`, oldest first, at most `limit`, in the rooms `user_id` is
    /// joined to now, plus membership events about `user_id` anywhere (so invites show).
    pub async fn visible_to(
        &self,
        user_id: &str,
        after: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>> {
        Ok(self.store.events_visible_to(user_id, after, limit).await?)
    }

    /// Events of every room with `after < position <= until`, oldest first, at most `limit`.
    pub async fn between(
        &self,
        after: StreamPos,
        until: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>> {
        let mut events = self.store.events_after(after, limit).await?;
        events.retain(|(pos, _)| *pos <= until);
        Ok(events)
    }

    /// One room's events with `after < position <= until`, oldest first, at most `limit`.
    pub async fn in_room(
        &self,
        room_id: &str,
        after: StreamPos,
        until: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>> {
        Ok(self
            .store
            .room_events(room_id, after, until, limit, Direction::Forward)
            .await?)
    }

    /// One event by its ID, with its position.
    pub async fn event(&self, event_id: &str) -> Result<Option<(StreamPos, PersistedEvent)>> {
        Ok(self.store.event(event_id).await?)
    }
}
