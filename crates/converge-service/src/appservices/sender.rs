//! One appservice's deliveries: a filler that follows the committed stream and queues what
//! concerns the appservice (its position moves with the rows it queued, in one store
//! transaction), and a sender that sends the queue in order, as transactions of at most
//! 100 items under IDs that never change meaning, retried with backoff until the
//! appservice answers 2xx. Typing is held in memory and rides along.
//!
//! An appservice is interested in an event when the sender, or the target of a membership
//! event, is one of its users, when the room is in its room namespace or has an alias in its
//! alias namespace, or when one of its users is joined to the room (room state as it is now).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use converge_core::appservice::{AppService, Claim};
use converge_core::auth::Membership;
use converge_core::{StreamPos, pdu};
use converge_store::QueuedKind;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

use super::{AppServices, backoff};
use crate::error::Result;

/// Items in one transaction, at most.
const TXN_ITEMS: u32 = 100;
/// Stream positions the filler reads at a time.
const FILL_BATCH: u32 = 500;
/// Rows an appservice's queue may hold; past it the filler waits (nothing is lost: it
/// reads the stream again from where it stopped).
const MAX_QUEUE: i64 = 100_000;
/// Rooms whose interest is remembered, at most.
const MAX_CACHED_ROOMS: usize = 10_000;
/// Event types whose arrival can change which rooms interest an appservice.
const INTEREST_TYPES: [&str; 3] = ["m.room.member", "m.room.canonical_alias", "m.room.create"];

/// Counters for `/metrics` and the admin API.
#[derive(Clone, Debug, Default)]
pub struct TxnStats {
    pub sent: u64,
    pub failed: u64,
    pub latency_seconds: f64,
}

impl TxnStats {
    pub fn mean_latency_ms(&self) -> Option<f64> {
        (self.sent > 0)
            .then(|| (self.latency_seconds * 1000.0 / self.sent as f64 * 10.0).round() / 10.0)
    }
}

/// A transaction's ID, its body, and the to-device messages it carries (user, device,
/// position), removed once the appservice takes it.
type InFlight = (i64, Vec<u8>, Vec<(String, String, StreamPos)>);

pub(super) struct Sender {
    services: Arc<AppServices>,
    service: Arc<AppService>,
    /// Whether each room interests the appservice, as far as its members and aliases go.
    rooms: HashMap<String, bool>,
    /// Typing in interesting rooms not sent yet: room → who types.
    typing: BTreeMap<String, Vec<String>>,
    /// The transaction being sent, as sent the first time, so a retry is the same bytes.
    in_flight: Option<InFlight>,
}

impl Sender {
    pub(super) fn new(services: Arc<AppServices>, service: Arc<AppService>) -> Self {
        Self {
            services,
            service,
            rooms: HashMap::new(),
            typing: BTreeMap::new(),
            in_flight: None,
        }
    }

    fn id(&self) -> &str {
        self.service.id()
    }

    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut position = self.services.store.stream_position();
        let mut typing = self.services.ephemeral.subscribe_typing();
        let mut wait = Duration::ZERO;
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = position.changed() => {}
                room = typing.recv() => self.note_typing(room).await,
                _ = self.services.wake.notified() => {}
                _ = stop.changed() => continue,
            }
            wait = match self.step().await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(appservice = self.id(), error = %err, "appservice delivery failed; retrying");
                    Duration::from_secs(5)
                }
            };
        }
    }

    /// Remembers who types in a room the appservice cares about.
    async fn note_typing(
        &mut self,
        room: std::result::Result<String, broadcast::error::RecvError>,
    ) {
        let Ok(room) = room else { return };
        if !self.service.wants_ephemeral() {
            return;
        }
        if matches!(self.room_interest(&room).await, Ok(true)) {
            let users = self.services.ephemeral.typing(&room, 0).unwrap_or_default();
            self.typing.insert(room, users);
        }
    }

    /// Fills the queue, then sends one transaction if one is due. Returns how long to
    /// wait before the next step when nothing wakes the sender sooner.
    async fn step(&mut self) -> Result<Duration> {
        let filled_all = self.fill().await?;
        let state = self
            .services
            .store
            .appservice_state(self.id(), StreamPos(0))
            .await?;
        let now = crate::now_ms();
        if state.retry_at > now {
            return Ok(Duration::from_millis((state.retry_at - now) as u64));
        }
        let sent = self.send(state.failures).await?;
        if sent || !filled_all {
            return Ok(Duration::ZERO);
        }
        // Failed (wait for the retry time) or nothing to send (wait for the stream).
        let state = self
            .services
            .store
            .appservice_state(self.id(), StreamPos(0))
            .await?;
        let now = crate::now_ms();
        Ok(if state.retry_at > now {
            Duration::from_millis((state.retry_at - now) as u64)
        } else {
            Duration::from_secs(30)
        })
    }

    /// Queues what the appservice wants from the stream since its position, a batch at a
    /// time. Returns whether it caught up.
    async fn fill(&mut self) -> Result<bool> {
        let store = self.services.store.clone();
        let state = store.appservice_state(self.id(), StreamPos(0)).await?;
        let committed = *store.stream_position().borrow();
        if state.stream_pos >= committed {
            return Ok(true);
        }
        if store.appservice_queue_len(self.id()).await? >= MAX_QUEUE {
            return Ok(true);
        }
        let events = store.events_after(state.stream_pos, FILL_BATCH).await?;
        let caught_up = (events.len() as u32) < FILL_BATCH;
        let upto = if caught_up {
            committed
        } else {
            events.last().map_or(committed, |(pos, _)| *pos)
        };
        let mut items = Vec::new();
        for (pos, event) in events.iter().filter(|(pos, _)| *pos <= upto) {
            if INTEREST_TYPES.contains(&event.event_type.as_str()) {
                self.rooms.remove(&event.room_id);
            }
            if self.interested(event).await? {
                items.push((*pos, QueuedKind::Event));
            }
        }
        if self.service.wants_ephemeral() {
            for receipt in store.receipts_between(state.stream_pos, upto).await? {
                if self.room_interest(&receipt.room_id).await? {
                    items.push((receipt.stream_pos, QueuedKind::Receipt));
                }
            }
        }
        if self.service.registration.msc3202 {
            for message in store.to_device_between(state.stream_pos, upto).await? {
                if self.service.claims_user(&message.user_id, Claim::Any) {
                    items.push((message.stream_pos, QueuedKind::ToDevice));
                }
            }
            for (pos, user) in store
                .device_list_changes_between(state.stream_pos, upto)
                .await?
            {
                let shares_a_room = store
                    .co_members(&user)
                    .await?
                    .iter()
                    .any(|member| self.service.claims_user(member, Claim::Any));
                if shares_a_room {
                    items.push((pos, QueuedKind::DeviceList));
                }
            }
        }
        items.sort_by_key(|(pos, _)| *pos);
        items.dedup_by_key(|(pos, _)| *pos);
        store.queue_for_appservice(self.id(), &items, upto).await?;
        Ok(caught_up)
    }

    async fn interested(&mut self, event: &converge_core::PersistedEvent) -> Result<bool> {
        let s = &self.service;
        if s.claims_user(&event.sender, Claim::Any)
            || s.claims_room(&event.room_id, Claim::Any)
            || (event.event_type == "m.room.member"
                && event
                    .state_key
                    .as_deref()
                    .is_some_and(|target| s.claims_user(target, Claim::Any)))
        {
            return Ok(true);
        }
        self.room_interest(&event.room_id).await
    }

    /// Whether one of the appservice's users is joined to the room, or the room has an
    /// alias in its namespaces; remembered until a membership or alias event arrives.
    async fn room_interest(&mut self, room_id: &str) -> Result<bool> {
        if let Some(known) = self.rooms.get(room_id) {
            return Ok(*known);
        }
        let service = self.service.clone();
        let by_state = self
            .services
            .rooms
            .snapshot(room_id, |room| {
                room.members(Membership::Join)
                    .any(|member| service.claims_user(member, Claim::Any))
                    || room
                        .get("m.room.canonical_alias", "")
                        .and_then(|e| e.content.get("alias"))
                        .and_then(Value::as_str)
                        .is_some_and(|alias| service.claims_alias(alias, Claim::Any))
            })
            .await
            .unwrap_or(false);
        let interested = by_state
            || self
                .services
                .store
                .room_aliases(room_id)
                .await?
                .iter()
                .any(|alias| service.claims_alias(alias, Claim::Any));
        if self.rooms.len() >= MAX_CACHED_ROOMS {
            self.rooms.clear();
        }
        self.rooms.insert(room_id.to_owned(), interested);
        Ok(interested)
    }

    /// Sends the transaction being sent, or forms the next one. Returns whether one was
    /// sent successfully.
    async fn send(&mut self, failures: i64) -> Result<bool> {
        let store = self.services.store.clone();
        let state = store.appservice_state(self.id(), StreamPos(0)).await?;
        let (txn_id, body, to_device) = match self.in_flight.take() {
            Some(flight) if flight.0 == state.next_txn => flight,
            _ => {
                let rows = store
                    .appservice_queue(self.id(), state.txn_last_pos, TXN_ITEMS)
                    .await?;
                if rows.is_empty() && self.typing.is_empty() {
                    return Ok(false);
                }
                let last = rows
                    .last()
                    .map_or(state.txn_last_pos.unwrap_or_default(), |(pos, _)| *pos);
                let (txn_id, last) = store.begin_appservice_txn(self.id(), last).await?;
                let rows: Vec<_> = rows.into_iter().filter(|(pos, _)| *pos <= last).collect();
                let (body, to_device) = self.body(&rows).await?;
                (txn_id, body, to_device)
            }
        };
        let url = format!(
            "{}/_matrix/app/v1/transactions/{txn_id}",
            self.service
                .registration
                .url
                .as_deref()
                .unwrap_or_default()
                .trim_end_matches('/')
        );
        let started = Instant::now();
        let answer = self
            .services
            .registrations
            .http
            .put(&url)
            .bearer_auth(&self.service.registration.hs_token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let outcome = match answer {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("the appservice answered {}", response.status())),
            Err(err) => Err(err.to_string()),
        };
        {
            let mut stats = self
                .services
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let entry = stats.entry(self.id().to_owned()).or_default();
            if outcome.is_ok() {
                entry.sent += 1;
                entry.latency_seconds += started.elapsed().as_secs_f64();
            } else {
                entry.failed += 1;
            }
        }
        match outcome {
            Ok(()) => {
                store
                    .complete_appservice_txn(self.id(), txn_id, &to_device, crate::now_ms())
                    .await?;
                Ok(true)
            }
            Err(reason) => {
                let wait = backoff(failures + 1, self.services.config.max_retry_interval);
                tracing::warn!(appservice = self.id(), txn = txn_id, error = %reason, retry_in_s = wait.as_secs(), "appservice transaction failed");
                store
                    .fail_appservice_txn(
                        self.id(),
                        crate::now_ms() + wait.as_millis() as i64,
                        &reason,
                    )
                    .await?;
                self.in_flight = Some((txn_id, body, to_device));
                Ok(false)
            }
        }
    }

    /// The transaction's body for these queue rows, with the typing held in memory; and
    /// the to-device messages it carries (deleted once it is taken).
    async fn body(
        &mut self,
        rows: &[(StreamPos, QueuedKind)],
    ) -> Result<(Vec<u8>, Vec<(String, String, StreamPos)>)> {
        let store = self.services.store.clone();
        let mut events = Vec::new();
        let mut ephemeral = Vec::new();
        let mut to_device = Vec::new();
        let mut carried = Vec::new();
        let mut changed = Vec::new();
        let mut key_counts: BTreeMap<(String, String), ()> = BTreeMap::new();
        for (pos, kind) in rows {
            match kind {
                QueuedKind::Event => {
                    if let Some(event) = store.event_at(*pos).await? {
                        let unsigned = event
                            .unsigned
                            .as_deref()
                            .and_then(|u| serde_json::from_str(u).ok());
                        if let Ok(client) =
                            pdu::client_event(&event.event_id, &event.json, unsigned)
                        {
                            events.push(client);
                        }
                    }
                }
                QueuedKind::Receipt => {
                    if let Some(r) = store.receipt_at(*pos).await? {
                        let mut entry = json!({ "ts": r.ts });
                        if !r.thread_id.is_empty() {
                            entry["thread_id"] = json!(r.thread_id);
                        }
                        ephemeral.push(json!({
                            "type": "m.receipt",
                            "room_id": r.room_id,
                            "content": { r.event_id: { r.receipt_type: { r.user_id: entry } } },
                        }));
                    }
                }
                QueuedKind::ToDevice => {
                    for m in store.to_device_at(*pos).await? {
                        if !self.service.claims_user(&m.user_id, Claim::Any) {
                            continue;
                        }
                        let content: Value = serde_json::from_str(&m.content).unwrap_or_default();
                        to_device.push(json!({
                            "type": m.event_type,
                            "sender": m.sender,
                            "to_user_id": m.user_id,
                            "to_device_id": m.device_id,
                            "content": content,
                        }));
                        key_counts.insert((m.user_id.clone(), m.device_id.clone()), ());
                        carried.push((m.user_id, m.device_id, m.stream_pos));
                    }
                }
                QueuedKind::DeviceList => {
                    for (_, user) in store
                        .device_list_changes_between(StreamPos(pos.0 - 1), *pos)
                        .await?
                    {
                        if !changed.contains(&user) {
                            changed.push(user);
                        }
                    }
                }
            }
        }
        for (room_id, users) in std::mem::take(&mut self.typing) {
            ephemeral.push(json!({
                "type": "m.typing",
                "room_id": room_id,
                "content": { "user_ids": users },
            }));
        }
        let mut body = Map::new();
        body.insert("events".into(), Value::Array(events));
        if self.service.wants_ephemeral() {
            body.insert("ephemeral".into(), Value::Array(ephemeral.clone()));
            body.insert(
                "de.sorunome.msc2409.ephemeral".into(),
                Value::Array(ephemeral),
            );
        }
        if self.service.registration.msc3202 {
            let mut counts = Map::new();
            let mut fallbacks = Map::new();
            for (user, device) in key_counts.keys() {
                let algorithms: Map<String, Value> = store
                    .one_time_key_counts(user, device)
                    .await?
                    .into_iter()
                    .map(|(alg, n)| (alg, json!(n)))
                    .collect();
                counts.entry(user.clone()).or_insert_with(|| json!({}))[device] =
                    Value::Object(algorithms);
                fallbacks.entry(user.clone()).or_insert_with(|| json!({}))[device] =
                    json!(store.unused_fallback_algorithms(user, device).await?);
            }
            let lists = json!({ "changed": changed, "left": [] });
            for (stable, unstable, value) in [
                (
                    "to_device",
                    "de.sorunome.msc2409.to_device",
                    Value::Array(to_device),
                ),
                ("device_lists", "org.matrix.msc3202.device_lists", lists),
                (
                    "device_one_time_keys_count",
                    "org.matrix.msc3202.device_one_time_keys_count",
                    Value::Object(counts),
                ),
                (
                    "device_unused_fallback_key_types",
                    "org.matrix.msc3202.device_unused_fallback_key_types",
                    Value::Object(fallbacks),
                ),
            ] {
                body.insert(stable.into(), value.clone());
                body.insert(unstable.into(), value);
            }
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_else(|_| b"{}".to_vec());
        Ok((bytes, carried))
    }
}
