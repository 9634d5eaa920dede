//! Finding events in a room's history other than by paging: the event nearest a moment
//! (`timestamp_to_event`) and the room's threads (`/threads`).
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1roomsroomidtimestamp_to_event>
//! and <https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1roomsroomidthreads>.
//! What a reader may see is decided by [`Timeline`]'s history visibility, event by event, the
//! same as for `/messages`; a room the reader may not view (or that does not exist) is
//! `M_FORBIDDEN`.

use std::sync::Arc;

use converge_core::StreamPos;
use converge_store::{Direction, Store};
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::timeline::{Timeline, View, client_event};
use crate::token::{SyncToken, page_token};

/// Events `timestamp_to_event` reads per batch, and the most batches it reads: events the
/// reader may not see are skipped, but not without bound. The first batch is small, since the
/// nearest event is usually visible.
const NEAR_FIRST_BATCH: u32 = 8;
const NEAR_BATCH: u32 = 100;
const NEAR_BATCHES: usize = 10;

/// Threads per page when the client names no limit, and the most it may ask for.
pub const DEFAULT_THREADS: u32 = 20;
pub const MAX_THREADS: u32 = 100;

/// Which threads `/threads` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThreadFilter {
    #[default]
    All,
    /// Threads the reader started or replied to.
    Participated,
}

/// A page of thread roots, each with its bundled `m.thread` summary.
pub struct ThreadPage {
    pub chunk: Vec<Value>,
    pub next_batch: Option<String>,
}

pub struct History {
    store: Store,
    timeline: Arc<Timeline>,
}

impl History {
    pub fn new(store: Store, timeline: Arc<Timeline>) -> Self {
        Self { store, timeline }
    }

    /// What the caller may see of the room; an unknown room is forbidden like any other the
    /// caller cannot view, so the answer says nothing about existence.
    async fn view(&self, caller: &Caller, room_id: &str) -> Result<View> {
        match self.timeline.view(caller.user_id.as_str(), room_id).await {
            Err(Error::NotFound(_)) => Err(Error::forbidden("you may not view this room")),
            other => other,
        }
    }

    /// `GET /rooms/{roomId}/timestamp_to_event`: the visible event closest to `ts` in the
    /// direction asked, as `(event_id, origin_server_ts)`.
    pub async fn event_at(
        &self,
        caller: &Caller,
        room_id: &str,
        ts: i64,
        forward: bool,
    ) -> Result<(String, i64)> {
        let view = self.view(caller, room_id).await?;
        let direction = if forward {
            Direction::Forward
        } else {
            Direction::Backward
        };
        // Everything at `ts` counts: start just before its first position going forward,
        // just after its last going back.
        let mut cursor = (ts, StreamPos(if forward { 0 } else { i64::MAX }));
        for round in 0..NEAR_BATCHES {
            let size = if round == 0 {
                NEAR_FIRST_BATCH
            } else {
                NEAR_BATCH
            };
            let batch = self
                .store
                .events_near_ts(room_id, cursor, direction, view.readable_until, size)
                .await?;
            let full = batch.len() as u32 == size;
            if let Some((_, event)) = batch.iter().find(|(pos, e)| view.visible(*pos, e)) {
                return Ok((event.event_id.clone(), event.origin_server_ts));
            }
            match batch.last() {
                Some((pos, event)) if full => cursor = (event.origin_server_ts, *pos),
                _ => break,
            }
        }
        Err(Error::NotFound(format!(
            "no event from {ts} {} in this room",
            if forward { "onwards" } else { "backwards" }
        )))
    }

    /// `GET /rooms/{roomId}/threads`: thread roots, the thread with the newest reply first.
    pub async fn threads(
        &self,
        caller: &Caller,
        room_id: &str,
        filter: ThreadFilter,
        from: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ThreadPage> {
        let view = self.view(caller, room_id).await?;
        // A token names the newest reply of the last thread shown; the next page holds the
        // threads whose newest reply is older.
        let before = match from {
            Some(token) => SyncToken::parse(token)?.pos,
            None => StreamPos(i64::MAX),
        };
        let limit = limit.unwrap_or(DEFAULT_THREADS).clamp(1, MAX_THREADS);
        let user = caller.user_id.as_str();
        let rows = self
            .store
            .thread_roots(
                room_id,
                user,
                view.readable_until,
                before,
                filter == ThreadFilter::Participated,
                limit,
            )
            .await?;
        let next_batch = (rows.len() as u32 == limit)
            .then(|| rows.last().map(|t| page_token(t.latest_pos)))
            .flatten();
        let mut chunk = Vec::with_capacity(rows.len());
        for thread in rows {
            // A thread whose root or newest reply the reader may not see is left out; the
            // count is of every reply up to what the reader may read.
            let (Some((root_pos, root)), Some((latest_pos, latest))) = (
                self.store.event(&thread.root_id).await?,
                self.store.event(&thread.latest_id).await?,
            ) else {
                continue;
            };
            if !(view.visible(root_pos, &root) && view.visible(latest_pos, &latest)) {
                continue;
            }
            let mut event = client_event(&root, Some(caller));
            event["unsigned"]["m.relations"]["m.thread"] = json!({
                "latest_event": client_event(&latest, Some(caller)),
                "count": thread.count,
                "current_user_participated": thread.participated,
            });
            chunk.push(event);
        }
        Ok(ThreadPage { chunk, next_batch })
    }
}
