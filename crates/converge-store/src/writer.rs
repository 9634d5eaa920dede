//! The ordered writer: the one task that appends to the event stream.
//!
//! Callers queue a [`WriteOp`] and wait. The task takes everything queued (up to a batch
//! limit), assigns consecutive stream positions, writes the batch in one transaction and
//! acknowledges each caller only after the commit returned — group commit: one fsync for
//! many writes, and an acknowledged write is durable. If a batch fails, its writes are
//! retried one by one so that only the faulty write fails.

use std::collections::BTreeMap;

use converge_core::{PersistedEvent, StreamPos};
use sqlx::Row;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::StoreError;
use crate::db::{BeginWrite, Db, on_pool};

/// One write that gets a stream position.
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Appends a room event, with what it changes.
    Event(Box<EventWrite>),
    /// Sets a user's global (`room_id: None`) or per-room account data.
    AccountData {
        user_id: String,
        room_id: Option<String>,
        data_type: String,
        content: String,
    },
    /// Moves a user's receipt of one type in a room (in one thread, or unthreaded: `""`)
    /// to an event.
    Receipt {
        room_id: String,
        receipt_type: String,
        user_id: String,
        thread_id: String,
        event_id: String,
        ts: i64,
    },
    /// Queues to-device messages: `(user, device, content)` each, from `sender`.
    ToDevice {
        sender: String,
        event_type: String,
        messages: Vec<(String, String, String)>,
        /// The sending device's transaction, recorded so a retry is not delivered twice.
        txn: Option<(String, String)>,
    },
    /// A user's devices or keys changed: their co-members' syncs list them in
    /// `device_lists.changed`.
    DeviceListChange { user_id: String },
}

/// A notification: what an event means for a user whose push rules say it notifies them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub highlight: bool,
    /// The actions as JSON, for pushers and `/notifications`.
    pub actions: String,
}

/// What the push rules of an event's recipients decided, stored once per event: one outcome
/// for the room's joined members, and the recipients whose rules decided otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventNotifications {
    /// `main`, or the thread root's event ID.
    pub thread_id: String,
    /// The outcome for every member joined when the event was sent (other than its sender)
    /// who is not in `exceptions`; `None`: the event does not notify them.
    pub members: Option<Notification>,
    /// Recipients (members, or an invitee for their invite) with a different outcome.
    pub exceptions: Vec<(String, Option<Notification>)>,
}

impl EventNotifications {
    /// Whether the event notifies anyone, and so needs storing.
    pub fn notifies_anyone(&self) -> bool {
        self.members.is_some() || self.exceptions.iter().any(|(_, n)| n.is_some())
    }
}

/// A room event and the rows it changes besides the stream.
#[derive(Clone, Debug, Default)]
pub struct EventWrite {
    pub event: PersistedEvent,
    /// For `m.room.create`: the room to record.
    pub new_room: Option<NewRoom>,
    /// For `m.room.member`: the user and their new membership.
    pub membership: Option<(String, String)>,
    /// For a redaction: what happens to the redacted event.
    pub redaction: Option<Redaction>,
    /// Whom this event notifies, and how.
    pub notifications: Option<EventNotifications>,
}

/// The change a redaction makes to the event it redacts.
#[derive(Clone, Debug, Default)]
pub struct Redaction {
    pub target: String,
    /// The target's PDU after the redaction algorithm.
    pub redacted_json: String,
    /// The client form of the redaction event, served as `unsigned.redacted_because`.
    pub because: String,
}

/// A room, as recorded when its create event is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRoom {
    pub room_id: String,
    pub room_version: String,
    pub creator: String,
    pub created_ts: i64,
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

/// A write that is queued in order but not yet known to be committed.
pub struct PendingWrite(oneshot::Receiver<Result<StreamPos, StoreError>>);

impl PendingWrite {
    /// Waits for the commit and returns the write's stream position.
    pub async fn committed(self) -> Result<StreamPos, StoreError> {
        self.0.await.map_err(|_| StoreError::Closed)?
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
        self.enqueue(op).await?.committed().await
    }

    pub(crate) async fn enqueue(&self, op: WriteOp) -> Result<PendingWrite, StoreError> {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Message::Write(op, done))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(PendingWrite(result))
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

    /// Commits a batch. The committed position is published before any caller is
    /// acknowledged, so whoever got an acknowledgement can already read what it wrote
    /// through the stream.
    async fn commit(&mut self, batch: &mut Vec<Pending>) {
        let ops: Vec<&WriteOp> = batch.iter().map(|(op, _)| op).collect();
        let first = self.next;
        match write_batch(&self.db, first, &ops).await {
            Ok(()) => {
                let count = batch.len() as i64;
                self.advance(count, 1);
                for ((_, done), pos) in batch.drain(..).zip(first..) {
                    let _ = done.send(Ok(StreamPos(pos)));
                }
            }
            Err(err) if batch.len() == 1 => {
                let (_, done) = batch.pop().expect("batch has one write");
                let _ = done.send(Err(err));
            }
            Err(err) => {
                tracing::warn!(error = %err, size = batch.len(), "batch failed, retrying writes one by one");
                for (op, done) in batch.drain(..) {
                    let pos = self.next;
                    let result = write_batch(&self.db, pos, &[&op]).await.map(|()| {
                        self.advance(1, 1);
                        StreamPos(pos)
                    });
                    let _ = done.send(result);
                }
            }
        }
    }

    /// Moves the stream on by `writes` committed in `commits` transactions.
    fn advance(&mut self, writes: i64, commits: u64) {
        self.next += writes;
        self.stats.send_modify(|s| {
            s.commits += commits;
            s.writes += writes as u64;
        });
        self.position.send_replace(StreamPos(self.next - 1));
    }
}

/// Writes `ops` at consecutive positions from `first` in one transaction.
async fn write_batch(db: &Db, first: i64, ops: &[&WriteOp]) -> Result<(), StoreError> {
    on_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        for (pos, op) in (first..).zip(ops) {
            match op {
                WriteOp::Event(write) => {
                    let event = &write.event;
                    let (txn_device, txn_id) = event.txn.clone().unzip();
                    let (relates_to, rel_type) = event.relation.clone().unzip();
                    sqlx::query(
                        "INSERT INTO events (stream_pos, event_id, room_id, sender, event_type, \
                         state_key, origin_server_ts, json, depth, unsigned, txn_device, txn_id, \
                         relates_to, rel_type) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    )
                    .bind(pos)
                    .bind(&event.event_id)
                    .bind(&event.room_id)
                    .bind(&event.sender)
                    .bind(&event.event_type)
                    .bind(&event.state_key)
                    .bind(event.origin_server_ts)
                    .bind(&event.json)
                    .bind(event.depth)
                    .bind(&event.unsigned)
                    .bind(txn_device)
                    .bind(txn_id)
                    .bind(relates_to)
                    .bind(rel_type)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if StoreError::is_unique_violation(&e) { StoreError::DuplicateEvent } else { e.into() }
                    })?;
                    if let Some(room) = &write.new_room {
                        sqlx::query(
                            "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&room.room_id)
                        .bind(&room.room_version)
                        .bind(&room.creator)
                        .bind(room.created_ts)
                        .execute(&mut *tx)
                        .await?;
                    }
                    if let Some(state_key) = &event.state_key {
                        sqlx::query(
                            "INSERT INTO current_state (room_id, event_type, state_key, event_id, stream_pos) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, event_type, state_key) \
                             DO UPDATE SET event_id = excluded.event_id, stream_pos = excluded.stream_pos",
                        )
                        .bind(&event.room_id)
                        .bind(&event.event_type)
                        .bind(state_key)
                        .bind(&event.event_id)
                        .bind(pos)
                        .execute(&mut *tx)
                        .await?;
                    }
                    if let Some((user_id, membership)) = &write.membership {
                        sqlx::query(
                            "INSERT INTO memberships (user_id, room_id, membership, event_id, stream_pos, forgotten, changed_pos) \
                             VALUES ($1, $2, $3, $4, $5, FALSE, $5) ON CONFLICT (user_id, room_id) \
                             DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id, \
                             stream_pos = excluded.stream_pos, forgotten = FALSE, \
                             changed_pos = CASE WHEN memberships.membership = excluded.membership \
                             THEN memberships.changed_pos ELSE excluded.stream_pos END",
                        )
                        .bind(user_id)
                        .bind(&event.room_id)
                        .bind(membership)
                        .bind(&event.event_id)
                        .bind(pos)
                        .execute(&mut *tx)
                        .await?;
                    }
                    if let Some(push) = write.notifications.as_ref().filter(|n| n.notifies_anyone()) {
                        sqlx::query(
                            "INSERT INTO event_push (stream_pos, room_id, event_id, sender, thread_id, ts, \
                             members_notify, highlight, actions) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(pos)
                        .bind(&event.room_id)
                        .bind(&event.event_id)
                        .bind(&event.sender)
                        .bind(&push.thread_id)
                        .bind(event.origin_server_ts)
                        .bind(push.members.is_some())
                        .bind(push.members.as_ref().is_some_and(|n| n.highlight))
                        .bind(push.members.as_ref().map_or("[]", |n| n.actions.as_str()))
                        .execute(&mut *tx)
                        .await?;
                        for (user_id, outcome) in &push.exceptions {
                            sqlx::query(
                                "INSERT INTO event_push_exceptions (stream_pos, user_id, notify, highlight, actions) \
                                 VALUES ($1, $2, $3, $4, $5)",
                            )
                            .bind(pos)
                            .bind(user_id)
                            .bind(outcome.is_some())
                            .bind(outcome.as_ref().is_some_and(|n| n.highlight))
                            .bind(outcome.as_ref().map_or("[]", |n| n.actions.as_str()))
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    if let Some(redaction) = &write.redaction {
                        sqlx::query("UPDATE events SET json = $1, redacted_because = $2 WHERE event_id = $3")
                            .bind(&redaction.redacted_json)
                            .bind(&redaction.because)
                            .bind(&redaction.target)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                WriteOp::AccountData { user_id, room_id, data_type, content } => {
                    sqlx::query(
                        "INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, room_id, data_type) \
                         DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos",
                    )
                    .bind(user_id)
                    .bind(room_id.as_deref().unwrap_or(""))
                    .bind(data_type)
                    .bind(content)
                    .bind(pos)
                    .execute(&mut *tx)
                    .await?;
                }
                WriteOp::Receipt { room_id, receipt_type, user_id, thread_id, event_id, ts } => {
                    sqlx::query(
                        "INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_pos) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (room_id, receipt_type, user_id, thread_id) \
                         DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts, stream_pos = excluded.stream_pos",
                    )
                    .bind(room_id)
                    .bind(receipt_type)
                    .bind(user_id)
                    .bind(thread_id)
                    .bind(event_id)
                    .bind(ts)
                    .bind(pos)
                    .execute(&mut *tx)
                    .await?;
                }
                WriteOp::ToDevice { sender, event_type, messages, txn } => {
                    if let Some((device_id, txn_id)) = txn {
                        let fresh = sqlx::query(
                            "INSERT INTO to_device_txns (sender, device_id, txn_id, created_ts) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(sender)
                        .bind(device_id)
                        .bind(txn_id)
                        .bind(crate::accounts::now_ms())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if fresh == 0 {
                            // A retried transaction: delivered the first time.
                            continue;
                        }
                    }
                    for (user_id, device_id, content) in messages {
                        sqlx::query(
                            "INSERT INTO to_device (user_id, device_id, stream_pos, sender, event_type, content) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(user_id)
                        .bind(device_id)
                        .bind(pos)
                        .bind(sender)
                        .bind(event_type)
                        .bind(content)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                WriteOp::DeviceListChange { user_id } => {
                    sqlx::query("INSERT INTO device_list_changes (stream_pos, user_id) VALUES ($1, $2)")
                        .bind(pos)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        for ((room_id, day), (events, messages)) in room_day_counts(ops) {
            sqlx::query(
                "INSERT INTO room_daily_stats (room_id, day, events, messages) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (room_id, day) DO UPDATE SET events = room_daily_stats.events + excluded.events, \
                 messages = room_daily_stats.messages + excluded.messages",
            )
            .bind(room_id)
            .bind(day)
            .bind(events)
            .bind(messages)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// The event types the analytics count as messages.
const MESSAGE_TYPES: [&str; 3] = ["m.room.message", "m.room.encrypted", "m.sticker"];

/// The events and messages a batch adds to each room's day (UTC days since the epoch), for
/// `room_daily_stats`: one upsert per room and day rather than per event.
fn room_day_counts<'a>(ops: &[&'a WriteOp]) -> BTreeMap<(&'a str, i64), (i64, i64)> {
    let mut counts: BTreeMap<(&str, i64), (i64, i64)> = BTreeMap::new();
    for op in ops {
        if let WriteOp::Event(write) = op {
            let event = &write.event;
            let day = event.origin_server_ts.div_euclid(crate::stats::DAY_MS);
            let entry = counts.entry((event.room_id.as_str(), day)).or_default();
            entry.0 += 1;
            entry.1 += i64::from(MESSAGE_TYPES.contains(&event.event_type.as_str()));
        }
    }
    counts
}
