//! A durable reader of the events the bot can see: the rooms it has joined and its own
//! invites. Each reader keeps its position in the store under its own name, so after a
//! restart or a crash it continues where it stopped, and sleeps until the notifier wakes
//! the bot.

use std::sync::Arc;
use std::time::Duration;

use converge_core::{PersistedEvent, StreamPos};
use tokio::sync::{Notify, watch};

use super::Context;
use crate::error::Result;

/// Events read per batch.
const BATCH: u32 = 200;
/// A reader also looks without a wake-up this often, as a safety net.
const IDLE_POLL: Duration = Duration::from_secs(30);

pub struct Feed {
    context: Arc<Context>,
    name: &'static str,
    pos: StreamPos,
    wake: Arc<Notify>,
}

impl Feed {
    /// Opens the reader `name`. A reader that never ran starts at the stream's end: it
    /// sees only what happens from now on.
    pub async fn open(context: Arc<Context>, name: &'static str) -> Result<Self> {
        let store = &context.services.store;
        let pos = match store.gateway_cursor(name).await? {
            Some(pos) => pos,
            None => {
                let end = *store.stream_position().borrow();
                store.set_gateway_cursor(name, end).await?;
                end
            }
        };
        let wake = context.services.notifier.subscribe(&context.bot);
        Ok(Self {
            context,
            name,
            pos,
            wake,
        })
    }

    /// The next events after the reader's position, waiting until there are some;
    /// `None` once `stop` is set.
    pub async fn next(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Vec<(StreamPos, PersistedEvent)>> {
        loop {
            if *stop.borrow() {
                return None;
            }
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self
                .context
                .services
                .store
                .events_visible_to(&self.context.bot, self.pos, BATCH)
                .await
            {
                Ok(batch) if !batch.is_empty() => return Some(batch),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(reader = self.name, error = %err, "gateway feed cannot read events");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Records that everything up to `pos` is handled.
    pub async fn advance(&mut self, pos: StreamPos) -> Result<()> {
        self.context
            .services
            .store
            .set_gateway_cursor(self.name, pos)
            .await?;
        self.pos = pos;
        Ok(())
    }
}
