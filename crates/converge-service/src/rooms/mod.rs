//! Rooms: creating them, changing membership, and the one path every event takes into a
//! room — auth rules, hashing and signing, the ordered writer, then the wake-ups.

mod create;
mod membership;
pub mod state;
mod upgrade;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use converge_core::auth::{self, Candidate};
use converge_core::pdu::{self, EventDraft, PduError};
use converge_core::{PersistedEvent, RoomVersion, StreamPos};
use converge_store::{EventWrite, NewRoom, Redaction, Store, WriteOp};
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};

pub use create::CreateRoom;
use state::RoomState;
pub use state::StateEntry;

use super::notifier::Notifier;
use super::now_ms;
use crate::error::{Error, Result};
use crate::push::{PushRules, Recipient};

/// A room's state behind the lock that serialises its events.
type RoomHandle = Arc<tokio::sync::Mutex<RoomState>>;

/// Event types that count as activity for the room list (MSC4186's `bump_stamp`).
pub const BUMP_TYPES: [&str; 7] = [
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon_info",
];
/// Rooms whose bump stamp is remembered, at most.
const MAX_CACHED_BUMPS: usize = 100_000;

/// What a new event says, before the room decides on its place and signature.
#[derive(Debug)]
pub struct NewEvent<'a> {
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub content: Value,
    /// The sending device and the client's transaction ID, for idempotent sends.
    pub txn: Option<(&'a str, &'a str)>,
    pub redacts: Option<&'a str>,
    /// The timestamp an application service gives the event (`?ts=`), instead of now.
    pub ts: Option<i64>,
}

impl<'a> NewEvent<'a> {
    pub fn state(event_type: &'a str, state_key: &'a str, content: Value) -> Self {
        Self {
            event_type,
            state_key: Some(state_key),
            content,
            txn: None,
            redacts: None,
            ts: None,
        }
    }

    pub fn message(event_type: &'a str, content: Value) -> Self {
        Self {
            event_type,
            state_key: None,
            content,
            txn: None,
            redacts: None,
            ts: None,
        }
    }
}

pub struct Rooms {
    store: Store,
    server_name: String,
    key: Ed25519KeyPair,
    notifier: Arc<dyn Notifier>,
    /// Decides whom each new event notifies.
    push: Arc<PushRules>,
    /// Application services, asked about users and aliases they may know.
    appservices: Arc<crate::appservices::Registrations>,
    /// Rooms whose state is in memory. Entries are never stale: only `send` changes a
    /// room, and it updates the entry under the room's lock.
    cache: Mutex<HashMap<String, RoomHandle>>,
    /// Each room's newest committed write (events, receipts) since this process started,
    /// and how many writes are queued but not yet committed, so a sync can skip rooms
    /// where nothing happened. A write is counted before it is queued, so a sync never
    /// sees a stream position that is ahead of what this map admits to.
    activity: Mutex<HashMap<String, Activity>>,
    /// Each room's newest [`BUMP_TYPES`] event, as far as it was read or sent.
    bumps: Mutex<HashMap<String, StreamPos>>,
    /// Transactions whose events are queued but maybe not yet committed, so a retried
    /// request returns the same event even before the first commit finished.
    pending_txns: Mutex<HashMap<(String, String, String), String>>,
    /// Events queued but maybe not yet committed, so that a redaction (or anything else
    /// that looks an event up) finds one its sender just got an ID for.
    queued_events: Mutex<HashMap<String, PersistedEvent>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Activity {
    newest: StreamPos,
    in_flight: u32,
}

/// An event queued in the writer, not yet known to be committed.
struct Queued {
    event_id: String,
    /// Whether the event moves the room up the room list (a [`BUMP_TYPES`] event).
    bumps: bool,
    /// The (type, state key) of a state event, whose place in the cached state learns
    /// its stream position at the commit.
    state: Option<(String, String)>,
    /// `None` when the event already existed (a repeated transaction).
    write: Option<converge_store::PendingWrite>,
    interested: Vec<String>,
    txn_key: Option<(String, String, String)>,
    room_id: String,
}

impl Rooms {
    pub fn new(
        store: Store,
        server_name: String,
        key: Ed25519KeyPair,
        notifier: Arc<dyn Notifier>,
        push: Arc<PushRules>,
        appservices: Arc<crate::appservices::Registrations>,
    ) -> Self {
        Self {
            store,
            server_name,
            key,
            notifier,
            push,
            appservices,
            cache: Mutex::default(),
            activity: Mutex::default(),
            bumps: Mutex::default(),
            pending_txns: Mutex::default(),
            queued_events: Mutex::default(),
        }
    }

    /// Refuses an alias an application service owns exclusively to anyone but it.
    pub fn refuse_alias(&self, alias: &str, appservice: Option<&str>) -> Result<()> {
        self.appservices.refuse_alias(alias, appservice)
    }

    /// An event by ID, committed or still queued, with its position (`None` while queued).
    pub async fn event(
        &self,
        event_id: &str,
    ) -> Result<Option<(Option<StreamPos>, PersistedEvent)>> {
        let queued = self
            .queued_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(event_id)
            .cloned();
        if let Some(event) = queued {
            return Ok(Some((None, event)));
        }
        Ok(self
            .store
            .event(event_id)
            .await?
            .map(|(pos, event)| (Some(pos), event)))
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The room's state handle, loading it from the store on first use.
    pub async fn handle(&self, room_id: &str) -> Result<RoomHandle> {
        if let Some(handle) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room_id)
        {
            return Ok(handle.clone());
        }
        let row = self
            .store
            .room(room_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such room".into()))?;
        let version = RoomVersion::parse(&row.room_version).ok_or_else(|| {
            Error::internal(format!(
                "room {room_id} has unknown version {}",
                row.room_version
            ))
        })?;
        let rows = self.store.room_state(room_id).await?;
        let latest = self.store.room_latest_event(room_id).await?;
        let loaded = Arc::new(tokio::sync::Mutex::new(RoomState::load(
            room_id, version, rows, latest,
        )));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Another request may have loaded it meanwhile; keep the first so one lock rules.
        Ok(cache.entry(room_id.to_owned()).or_insert(loaded).clone())
    }

    /// Gives a cached state entry the stream position its event was committed at (until
    /// then it sorts after every position).
    async fn state_committed(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        event_id: &str,
        pos: StreamPos,
    ) {
        let handle = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room_id)
            .cloned();
        if let Some(handle) = handle {
            let mut room = handle.lock().await;
            if let Some(entry) = room
                .state
                .get_mut(&(event_type.to_owned(), state_key.to_owned()))
                && entry.event_id == event_id
            {
                entry.pos = pos;
            }
        }
    }

    fn forget_cached(&self, room_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room_id);
    }

    /// Sends an event into a room as `sender`: checks it against the room's auth rules,
    /// builds and signs it, queues it behind the room's earlier events and waits until it
    /// is durably committed. The room's lock is held only until the event is queued, so
    /// many events of one room share a commit.
    pub async fn send(
        &self,
        room_id: &str,
        sender: &str,
        event: NewEvent<'_>,
    ) -> Result<(String, StreamPos)> {
        let handle = self.handle(room_id).await?;
        let queued = {
            let mut room = handle.lock().await;
            self.queue(&mut room, sender, event).await?
        };
        self.finish(queued).await
    }

    /// Checks for a repeated transaction, then prepares and queues the event. The caller
    /// holds the room's lock.
    async fn queue(
        &self,
        room: &mut RoomState,
        sender: &str,
        event: NewEvent<'_>,
    ) -> Result<Queued> {
        let txn = event.txn.map(|(device, txn_id)| {
            (
                device.to_owned(),
                format!("{}|{}|{txn_id}", room.room_id, event.event_type),
            )
        });
        if let Some((device, key)) = &txn {
            let txn_key = (sender.to_owned(), device.clone(), key.clone());
            let pending = self
                .pending_txns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&txn_key)
                .cloned();
            let existing = match pending {
                Some(event_id) => Some(event_id),
                None => self.store.event_by_txn(sender, device, key).await?,
            };
            if let Some(event_id) = existing {
                return Ok(Queued {
                    event_id,
                    bumps: false,
                    state: None,
                    write: None,
                    interested: Vec::new(),
                    txn_key: None,
                    room_id: room.room_id.clone(),
                });
            }
        }
        let (write, interested) = self.prepare(room, sender, &event, txn.clone()).await?;
        let event_id = write.event.event_id.clone();
        let txn_key = txn.map(|(device, key)| (sender.to_owned(), device, key));
        if let Some(txn_key) = &txn_key {
            self.pending_txns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(txn_key.clone(), event_id.clone());
        }
        self.begin_write(&room.room_id);
        self.queued_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(event_id.clone(), write.event.clone());
        let pending = self.store.enqueue(WriteOp::Event(Box::new(write))).await;
        let pending = match pending {
            Ok(pending) => pending,
            Err(err) => {
                self.end_write(&room.room_id, None);
                self.queued_events
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&event_id);
                self.forget_cached(&room.room_id);
                return Err(err.into());
            }
        };
        Ok(Queued {
            event_id,
            bumps: BUMP_TYPES.contains(&event.event_type),
            state: event
                .state_key
                .map(|k| (event.event_type.to_owned(), k.to_owned())),
            write: Some(pending),
            interested,
            txn_key,
            room_id: room.room_id.clone(),
        })
    }

    /// Waits for a queued event's commit, then wakes whoever it concerns.
    async fn finish(&self, queued: Queued) -> Result<(String, StreamPos)> {
        let Some(write) = queued.write else {
            // A repeated transaction: answer with the event it created, once the first
            // request's commit is through (the retry may overtake it).
            let pos = self.committed_position(&queued.event_id).await?;
            return Ok((queued.event_id, pos));
        };
        let result = write.committed().await;
        self.end_write(&queued.room_id, result.as_ref().ok().copied());
        self.queued_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&queued.event_id);
        if let Some(txn_key) = &queued.txn_key {
            self.pending_txns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(txn_key);
        }
        match result {
            Ok(pos) => {
                if let Some((event_type, state_key)) = &queued.state {
                    self.state_committed(
                        &queued.room_id,
                        event_type,
                        state_key,
                        &queued.event_id,
                        pos,
                    )
                    .await;
                }
                if queued.bumps {
                    let mut bumps = self.bumps.lock().unwrap_or_else(|e| e.into_inner());
                    let stamp = bumps.entry(queued.room_id.clone()).or_default();
                    *stamp = (*stamp).max(pos);
                }
                self.notifier
                    .notify(&mut queued.interested.iter().map(String::as_str));
                Ok((queued.event_id, pos))
            }
            Err(err) => {
                // The cached state already holds the event; reload the room from the store.
                self.forget_cached(&queued.room_id);
                Err(err.into())
            }
        }
    }

    /// The position of an event that is committed or about to be: waits (boundedly) while it
    /// is still queued.
    async fn committed_position(&self, event_id: &str) -> Result<StreamPos> {
        let mut committed = self.store.stream_position();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // Looked at before the store: an event leaves the queue only once committed,
            // so if it was gone here, the store has it below.
            let queued = self
                .queued_events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(event_id);
            if let Some((pos, _)) = self.store.event(event_id).await? {
                return Ok(pos);
            }
            if !queued {
                return Err(Error::internal("a transaction's event is missing"));
            }
            tokio::select! {
                _ = committed.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Error::internal("a transaction's event was not committed in time"));
                }
            }
        }
    }

    /// Checks, builds and signs an event, and applies it to the cached state. Returns the
    /// write for the store and the users to wake.
    async fn prepare(
        &self,
        room: &mut RoomState,
        sender: &str,
        event: &NewEvent<'_>,
        txn: Option<(String, String)>,
    ) -> Result<(EventWrite, Vec<String>)> {
        let version = room.version;
        let candidate = Candidate {
            room_id: &room.room_id,
            event_type: event.event_type,
            state_key: event.state_key,
            sender,
            content: &event.content,
            is_first: room.latest.is_none(),
        };
        auth::check(version, &candidate, room).map_err(|e| Error::forbidden(e.reason()))?;
        let mut redaction = None;
        if let Some(target) = event.redacts {
            redaction = self.redaction_of(room, sender, target).await?;
        }
        let auth_events: Vec<String> = auth::auth_event_keys(&candidate)
            .into_iter()
            .filter_map(|(t, k)| room.get(&t, &k).map(|e| e.event_id.clone()))
            .collect();
        let prev_events: Vec<String> = room.latest.iter().cloned().collect();
        let ts = event.ts.unwrap_or_else(now_ms);
        let depth = room.depth + 1;
        let draft = EventDraft {
            room_id: &room.room_id,
            sender,
            event_type: event.event_type,
            state_key: event.state_key,
            content: &event.content,
            prev_events: &prev_events,
            auth_events: &auth_events,
            depth,
            origin_server_ts: ts,
            redacts: event.redacts,
        };
        let signed =
            pdu::build(version, &draft, &self.server_name, &self.key).map_err(|e| match e {
                PduError::TooLarge => Error::TooLarge {
                    limit: pdu::MAX_PDU_BYTES as u64,
                },
                PduError::ContentNotObject | PduError::NotCanonical(_) => {
                    Error::BadJson(e.to_string())
                }
                PduError::Signing(_) => Error::internal(e),
            })?;

        // What a client sees of the state this event replaces.
        let replaced = event
            .state_key
            .and_then(|key| room.get(event.event_type, key));
        let unsigned = replaced.map(|old| {
            json!({ "replaces_state": old.event_id, "prev_content": old.content, "prev_sender": old.sender }).to_string()
        });
        let relation = event.content.get("m.relates_to").and_then(|r| {
            Some((
                r.get("event_id")?.as_str()?.to_owned(),
                r.get("rel_type")?.as_str()?.to_owned(),
            ))
        });
        let membership = (event.event_type == "m.room.member")
            .then(|| {
                let membership = event.content.get("membership")?.as_str()?;
                Some((event.state_key?.to_owned(), membership.to_owned()))
            })
            .flatten();
        let new_room = (event.event_type == "m.room.create").then(|| NewRoom {
            room_id: room.room_id.clone(),
            room_version: version.as_str().to_owned(),
            creator: sender.to_owned(),
            created_ts: ts,
        });
        let persisted = PersistedEvent {
            event_id: signed.event_id.clone(),
            room_id: room.room_id.clone(),
            sender: sender.to_owned(),
            event_type: event.event_type.to_owned(),
            state_key: event.state_key.map(str::to_owned),
            origin_server_ts: ts,
            json: signed.json,
            depth,
            unsigned,
            txn,
            relation,
            redacted_because: None,
        };

        let push_actions = self
            .push_actions(room, &persisted, membership.as_ref())
            .await?;

        // Everyone who could see the room before, and the member whose membership changes.
        let mut interested = room.interested();
        if let Some((user, _)) = &membership {
            interested.push(user.clone());
        }
        if let Some(redaction) = &mut redaction {
            let because = pdu::client_event(&persisted.event_id, &persisted.json, None)
                .map_err(Error::internal)?;
            redaction.because = because.to_string();
            // A redacted state event changes the room's state content too.
            let target = redaction.target.clone();
            if let Some(((t, k), entry)) = room
                .state
                .iter()
                .find(|(_, e)| e.event_id == target)
                .map(|(k, e)| (k.clone(), e.clone()))
            {
                let content = serde_json::from_str::<Value>(&redaction.redacted_json)
                    .ok()
                    .and_then(|mut pdu| pdu.get_mut("content").map(Value::take))
                    .unwrap_or_default();
                room.set(&t, &k, StateEntry { content, ..entry });
            }
        }
        if let Some(key) = event.state_key {
            room.set(
                event.event_type,
                key,
                StateEntry {
                    event_id: persisted.event_id.clone(),
                    sender: sender.to_owned(),
                    content: event.content.clone(),
                    // The real position is known after the commit, which sets it
                    // (`state_committed`); until then it sorts after every sync token.
                    pos: StreamPos(i64::MAX),
                },
            );
        }
        room.latest = Some(persisted.event_id.clone());
        room.depth = depth;
        Ok((
            EventWrite {
                event: persisted,
                new_room,
                membership,
                redaction,
                notifications: push_actions,
            },
            interested,
        ))
    }

    /// Whom a new event notifies: the room's joined members (and an invitee, for their
    /// invite) by their push rules, with the room's state before the event.
    async fn push_actions(
        &self,
        room: &RoomState,
        event: &PersistedEvent,
        membership: Option<&(String, String)>,
    ) -> Result<Option<converge_store::EventNotifications>> {
        let Ok(client) = pdu::client_event(&event.event_id, &event.json, None) else {
            return Ok(None);
        };
        let names: Vec<(String, Option<String>)> = room
            .members(auth::Membership::Join)
            .map(|user| {
                let name = room
                    .get("m.room.member", user)
                    .and_then(|e| e.content.get("displayname"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                (user.to_owned(), name)
            })
            .collect();
        let member_count = names.len() as u64;
        let mut recipients: Vec<Recipient<'_>> = names
            .iter()
            .map(|(user, name)| Recipient {
                user_id: user,
                display_name: name.as_deref(),
            })
            .collect();
        let invitee = membership
            .filter(|(_, kind)| kind == "invite")
            .map(|(invitee, _)| invitee.as_str());
        if let Some(invitee) = invitee {
            recipients.push(Recipient {
                user_id: invitee,
                display_name: None,
            });
        }
        // A room whose power levels cannot be read (none is ever accepted so) notifies no one.
        let Ok(power_levels) = auth::current_power_levels(room.version, room) else {
            return Ok(None);
        };
        let notifications = self
            .push
            .evaluate(&client, &recipients, invitee, &power_levels, member_count)
            .await?;
        Ok(notifications.notifies_anyone().then_some(notifications))
    }

    /// What redacting `target` changes, after checking the redaction is allowed.
    async fn redaction_of(
        &self,
        room: &RoomState,
        sender: &str,
        target: &str,
    ) -> Result<Option<Redaction>> {
        // An event still being committed can be redacted too: the redaction is queued
        // after it, so it commits after it.
        let Some((_, original)) = self.event(target).await? else {
            return Err(Error::NotFound("the event to redact does not exist".into()));
        };
        if original.room_id != room.room_id {
            return Err(Error::NotFound(
                "the event to redact is not in this room".into(),
            ));
        }
        if !auth::may_redact(room.version, room, sender, &original.sender) {
            return Err(Error::forbidden(
                "you may not redact other users' events in this room",
            ));
        }
        let redacted_json =
            pdu::redact_pdu(room.version, &original.json).map_err(Error::internal)?;
        Ok(Some(Redaction {
            target: target.to_owned(),
            redacted_json,
            because: String::new(),
        }))
    }

    /// The current state of a room, for reading.
    pub async fn snapshot<T>(
        &self,
        room_id: &str,
        read: impl FnOnce(&RoomState) -> T,
    ) -> Result<T> {
        let handle = self.handle(room_id).await?;
        let room = handle.lock().await;
        Ok(read(&room))
    }

    /// Refuses unless `user_id` is joined to the room: the check of every operation that
    /// only members may do.
    pub async fn require_joined(&self, room_id: &str, user_id: &str) -> Result<()> {
        let membership = self
            .snapshot(room_id, |room| room.membership(user_id))
            .await?;
        if membership != auth::Membership::Join {
            return Err(Error::forbidden("you are not in this room"));
        }
        Ok(())
    }

    /// The rooms `user_id` is joined to.
    pub async fn joined_rooms(&self, user_id: &str) -> Result<Vec<String>> {
        let rows = self.store.user_memberships(user_id).await?;
        Ok(rows
            .into_iter()
            .filter(|m| m.membership == "join")
            .map(|m| m.room_id)
            .collect())
    }

    /// Counts a write to a room that is about to be queued.
    pub fn begin_write(&self, room_id: &str) {
        let mut activity = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        activity.entry(room_id.to_owned()).or_default().in_flight += 1;
    }

    /// Marks a counted write as done, committed at `pos` or failed (`None`).
    pub fn end_write(&self, room_id: &str, pos: Option<StreamPos>) {
        let mut activity = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        let entry = activity.entry(room_id.to_owned()).or_default();
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if let Some(pos) = pos {
            entry.newest = entry.newest.max(pos);
        }
    }

    /// Whether nothing was written to a room after `since`, as far as this process knows
    /// for certain (it knows nothing of rooms not written to since it started).
    pub fn quiet_since(&self, room_id: &str, since: StreamPos) -> bool {
        self.activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room_id)
            .is_some_and(|a| a.in_flight == 0 && a.newest <= since)
    }

    /// The position of the newest event that counts as activity for the room list
    /// ([`BUMP_TYPES`]) of each of `rooms` (the user's): from memory, else read for all the
    /// user's rooms at once, then kept current by `send`.
    pub async fn bump_stamps(
        &self,
        user: &str,
        rooms: &[&str],
    ) -> Result<HashMap<String, StreamPos>> {
        let mut out = HashMap::with_capacity(rooms.len());
        let mut missing = false;
        {
            let bumps = self.bumps.lock().unwrap_or_else(|e| e.into_inner());
            for room in rooms {
                match bumps.get(*room) {
                    Some(stamp) => {
                        out.insert((*room).to_owned(), *stamp);
                    }
                    None => missing = true,
                }
            }
        }
        if !missing {
            return Ok(out);
        }
        let read = self.store.bump_positions(user, &BUMP_TYPES).await?;
        let mut bumps = self.bumps.lock().unwrap_or_else(|e| e.into_inner());
        if bumps.len() + read.len() > MAX_CACHED_BUMPS {
            bumps.clear();
        }
        for (room, stamp) in read {
            // A send that committed meanwhile may already have moved it on.
            let entry = bumps.entry(room).or_insert(stamp);
            *entry = (*entry).max(stamp);
        }
        for room in rooms {
            if let Some(stamp) = bumps.get(*room) {
                out.insert((*room).to_owned(), *stamp);
            }
        }
        Ok(out)
    }

    /// A new room ID on this server.
    fn new_room_id(&self) -> String {
        format!("!{}:{}", crate::ids::random_id(18), self.server_name)
    }
}
