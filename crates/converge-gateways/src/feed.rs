//! A durable reader of the events the bot can see: the rooms it has joined and its own
//! invites. Each reader keeps its position under its own name in the framework's table
//! `gateway_cursors` (any gateway that follows the stream may keep its position there too),
//! so after a restart or a crash it continues where it stopped, and sleeps until the
//! notifier wakes the bot.

use std::sync::Arc;
use std::time::Duration;

use converge_core::{PersistedEvent, StreamPos};
use converge_service::Result;
use converge_store::{Migration, Statement, Tables};
use tokio::sync::{Notify, watch};

use crate::Context;

/// The framework's own tables, as a component.
pub const COMPONENT: &str = "gateways";
/// Databases made before the gateways owned their tables have it already.
pub const MIGRATIONS: &[Migration] = &[Migration::both(
    1,
    "CREATE TABLE IF NOT EXISTS gateway_cursors (\
     name TEXT PRIMARY KEY NOT NULL, stream_pos BIGINT NOT NULL)",
)];

/// Events read per batch.
const BATCH: u32 = 200;
/// A reader also looks without a wake-up this often, as a safety net.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// Where the reader `name` stopped, if it ever ran.
pub async fn cursor(tables: &Tables, name: &str) -> Result<Option<StreamPos>> {
    let row = tables
        .query_opt(
            "SELECT stream_pos FROM gateway_cursors WHERE name = $1",
            &[name.into()],
        )
        .await?;
    Ok(match row {
        Some(row) => Some(StreamPos(row.get("stream_pos")?)),
        None => None,
    })
}

/// The statement that stores the reader `name`'s position, to run alone or in a
/// transaction with what the reader did.
pub fn set_cursor(name: &str, pos: StreamPos) -> Statement {
    Statement::new(
        "INSERT INTO gateway_cursors (name, stream_pos) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET stream_pos = EXCLUDED.stream_pos",
        vec![name.into(), pos.0.into()],
    )
}

pub struct Feed {
    context: Arc<Context>,
    tables: Tables,
    name: &'static str,
    pos: StreamPos,
    wake: Arc<Notify>,
}

impl Feed {
    /// Opens the reader `name`. A reader that never ran starts at the stream's end: it
    /// sees only what happens from now on.
    pub async fn open(context: Arc<Context>, tables: Tables, name: &'static str) -> Result<Self> {
        let pos = match cursor(&tables, name).await? {
            Some(pos) => pos,
            None => {
                let end = *context.services.stream.position().borrow();
                tables.transaction(&[set_cursor(name, end)]).await?;
                end
            }
        };
        let wake = context.services.notifier.subscribe(&context.bot);
        Ok(Self {
            context,
            tables,
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
                .stream
                .visible_to(&self.context.bot, self.pos, BATCH)
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
        self.tables
            .transaction(&[set_cursor(self.name, pos)])
            .await?;
        self.pos = pos;
        Ok(())
    }
}
