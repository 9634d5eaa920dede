//! The ordered writer: the one task that appends to the event stream.
//!
//! Callers queue a [`WriteOp`] and wait. The task takes everything queued (up to a batch
//! limit), assigns consecutive stream positions, writes the batch in one transaction and
//! acknowledges each caller only after the commit returned — group commit: one fsync for
//! many writes, and an acknowledged write is durable. If a batch fails, its writes are
//! retried one by one so that only the faulty write fails.

use converge_core::{PersistedEvent, StreamPos};
use sqlx::Row;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::StoreError;
use crate::db::{Db, on_pool};

/// One write that gets a stream position.
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Appends a room event.
    Event(PersistedEvent),
}

/// How the writer batches.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The most writes committed in one transaction.
    pub max_batch: usize,
    /// How many writes may wait in the queue before callers wait for room.
    pub queue_depth: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue_depth: 8192,
        }
    }
}

enum Message {
    Write(WriteOp, oneshot::Sender<Result<StreamPos, StoreError>>),
    Shutdown,
}

/// Counters of what the writer has done, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Writes committed (each commit holds one or more).
    pub writes: u64,
}

pub(crate) struct WriterHandle {
    queue: mpsc::Sender<Message>,
    stats: watch::Receiver<WriterStats>,
    position: watch::Receiver<StreamPos>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    pub(crate) async fn append(&self, op: WriteOp) -> Result<StreamPos, StoreError> {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Message::Write(op, done))
            .await
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<StreamPos> {
        self.position.clone()
    }

    pub(crate) fn stats(&self) -> WriterStats {
        *self.stats.borrow()
    }

    pub(crate) async fn shutdown(&self) {
        let Some(task) = self.task.lock().await.take() else {
            return;
        };
        // Everything queued before the shutdown message is still written.
        let _ = self.queue.send(Message::Shutdown).await;
        let _ = task.await;
    }
}

pub(crate) async fn spawn(db: Db, config: WriterConfig) -> Result<WriterHandle, StoreError> {
    let last = on_pool!(&db, pool => {
        sqlx::query("SELECT COALESCE(MAX(stream_pos), 0) AS pos FROM events")
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("pos")?
    });
    let (queue, receiver) = mpsc::channel(config.queue_depth.max(1));
    let (position_tx, position) = watch::channel(StreamPos(last));
    let (stats_tx, stats) = watch::channel(WriterStats::default());
    let writer = Writer {
        db,
        next: last + 1,
        max_batch: config.max_batch.max(1),
        position: position_tx,
        stats: stats_tx,
    };
    let task = tokio::spawn(writer.run(receiver));
    Ok(WriterHandle {
        queue,
        stats,
        position,
        task: Mutex::new(Some(task)),
    })
}

struct Writer {
    db: Db,
    /// The position the next committed write gets. Only advanced after a commit.
    next: i64,
    max_batch: usize,
    position: watch::Sender<StreamPos>,
    stats: watch::Sender<WriterStats>,
}

type Pending = (WriteOp, oneshot::Sender<Result<StreamPos, StoreError>>);

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        let mut batch: Vec<Pending> = Vec::with_capacity(self.max_batch);
        let mut stopping = false;
        while !stopping {
            match receiver.recv().await {
                Some(Message::Write(op, done)) => batch.push((op, done)),
                Some(Message::Shutdown) | None => break,
            }
            while batch.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(Message::Write(op, done)) => batch.push((op, done)),
                    Ok(Message::Shutdown) => {
                        stopping = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut batch).await;
        }
        tracing::debug!("ordered writer stopped");
    }

    async fn commit(&mut self, batch: &mut Vec<Pending>) {
        let ops: Vec<&WriteOp> = batch.iter().map(|(op, _)| op).collect();
        let before = self.next;
        match write_batch(&self.db, self.next, &ops).await {
            Ok(()) => {
                self.stats.send_modify(|s| s.commits += 1);
                for (op, done) in batch.drain(..) {
                    drop(op);
                    let _ = done.send(Ok(StreamPos(self.next)));
                    self.next += 1;
                }
            }
            Err(err) if batch.len() == 1 => {
                let (_, done) = batch.pop().expect("batch has one write");
                let _ = done.send(Err(err));
            }
            Err(err) => {
                tracing::warn!(error = %err, size = batch.len(), "batch failed, retrying writes one by one");
                for (op, done) in batch.drain(..) {
                    let result = write_batch(&self.db, self.next, &[&op]).await.map(|()| {
                        self.stats.send_modify(|s| s.commits += 1);
                        self.next += 1;
                        StreamPos(self.next - 1)
                    });
                    let _ = done.send(result);
                }
            }
        }
        let written = (self.next - before) as u64;
        self.stats.send_modify(|s| s.writes += written);
        self.position.send_replace(StreamPos(self.next - 1));
    }
}

/// Writes `ops` at consecutive positions from `first` in one transaction.
async fn write_batch(db: &Db, first: i64, ops: &[&WriteOp]) -> Result<(), StoreError> {
    on_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        for (pos, op) in (first..).zip(ops) {
            match op {
                WriteOp::Event(event) => {
                    sqlx::query(
                        "INSERT INTO events (stream_pos, event_id, room_id, sender, event_type, \
                         state_key, origin_server_ts, json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(pos)
                    .bind(&event.event_id)
                    .bind(&event.room_id)
                    .bind(&event.sender)
                    .bind(&event.event_type)
                    .bind(&event.state_key)
                    .bind(event.origin_server_ts)
                    .bind(&event.json)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if StoreError::is_unique_violation(&e) { StoreError::DuplicateEvent } else { e.into() }
                    })?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    })
}
