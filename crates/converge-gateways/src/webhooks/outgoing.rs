//! Outgoing webhooks: a durable outbox in the store, filled from what the bot sees and
//! drained by POSTs.
//!
//! The filler reads events after its stored position and, in one transaction, queues a
//! delivery for every subscription that wants the event and moves its position: a crash
//! loses nothing and queues nothing twice. The deliverer POSTs each subscription's queue
//! in order, signed like incoming hooks, with the event ID as idempotency key; a failure
//! keeps the item and retries the subscription with exponential backoff. Delivery is at
//! least once (a crash between the POST and the dequeue repeats one item).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use converge_core::{PersistedEvent, StreamPos, pdu};
use converge_service::fetch::{BLOCKED, backoff, was_blocked};
use converge_service::{Result, now_ms};
use converge_store::Statement;
use regex::Regex;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::tables::{Store, SubscriptionRow};
use super::{Webhooks, compile, origin};
use crate::feed::{cursor, set_cursor};
use crate::{Stats, signature};

/// The outbox filler's name for its stored position.
const OUTBOX_READER: &str = "webhooks.outbox";
/// How often the filler stores its position when it queued nothing.
const CURSOR_EVERY: Duration = Duration::from_secs(10);
/// Events the filler reads at once.
const OUTBOX_BATCH: u32 = 500;
/// The longest the deliverer sleeps without a wake-up (a queue whose drain was ending
/// when it grew waits at most this long).
const IDLE_POLL: Duration = Duration::from_secs(2);

impl Webhooks {
    /// Queues deliveries for new events of subscribed rooms, forever (until `stop`).
    ///
    /// The filler follows the committed stream itself (not the bot's rooms), so a room's
    /// outgoing webhooks keep delivering whoever is in the room. Its position is stored
    /// together with the deliveries it queues; a stretch without deliveries is only
    /// remembered in memory, since reading it again after a crash queues nothing.
    pub(super) async fn fill_outbox(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let store = self.store.clone();
        let mut committed = self.context.services.stream.position();
        // The stored position, and the subscriptions caught up to it.
        let (mut pos, mut seen) = loop {
            let version = self.subscriptions_changed.load(Ordering::Acquire);
            let loaded = async {
                let pos = cursor(store.tables(), OUTBOX_READER).await?;
                let subs = store.subscriptions(None).await?;
                Ok::<_, converge_service::Error>((pos, subs))
            };
            match loaded.await {
                Ok((pos, subs)) => {
                    let mut seen = Filters::default();
                    seen.known.extend(subs.iter().map(|s| s.sub_id.clone()));
                    seen.subs = Arc::new(subs);
                    seen.version = Some(version);
                    break (pos.unwrap_or_else(|| *committed.borrow()), seen);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the outbox position; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        };
        let (mut stored, mut stored_at) = (pos, std::time::Instant::now());
        while !*stop.borrow() {
            let end = *committed.borrow_and_update();
            let mut more = false;
            if end > pos {
                match self.queue_deliveries(pos, end, &mut seen).await {
                    Ok((upto, full, queued)) => {
                        pos = upto;
                        more = full;
                        if queued {
                            (stored, stored_at) = (pos, std::time::Instant::now());
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot queue outgoing webhook deliveries");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            // Now and then the position is stored without deliveries too, so a restart
            // does not read a long stretch again.
            if pos > stored && stored_at.elapsed() > CURSOR_EVERY {
                match store
                    .tables()
                    .transaction(&[set_cursor(OUTBOX_READER, pos)])
                    .await
                {
                    Ok(_) => (stored, stored_at) = (pos, std::time::Instant::now()),
                    Err(err) => tracing::warn!(error = %err, "cannot store the outbox position"),
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = committed.changed() => {}
                _ = stop.changed() => {}
            }
        }
        if pos > stored {
            let _ = store
                .tables()
                .transaction(&[set_cursor(OUTBOX_READER, pos)])
                .await;
        }
    }

    /// Queues what subscriptions want of the events in `(after, end]` (one batch) and
    /// returns how far that got, whether the batch was full and whether anything was
    /// queued (which stored the position too).
    async fn queue_deliveries(
        &self,
        after: StreamPos,
        end: StreamPos,
        seen: &mut Filters,
    ) -> Result<(StreamPos, bool, bool)> {
        let store = &self.store;
        let stream = &self.context.services.stream;
        if self.subscription_count.load(Ordering::Relaxed) == 0 {
            return Ok((end, false, false));
        }
        let version = self.subscriptions_changed.load(Ordering::Acquire);
        if seen.version != Some(version) {
            seen.subs = Arc::new(store.subscriptions(None).await?);
            seen.version = Some(version);
        }
        let subs = seen.subs.clone();
        let batch = stream.between(after, end, OUTBOX_BATCH).await?;
        let full = batch.len() == OUTBOX_BATCH as usize;
        let upto = match batch.last() {
            Some(&(last, _)) if full => last,
            _ => end,
        };
        let mut deliveries = Vec::new();
        // Subscriptions seen for the first time; known only once their catch-up is queued.
        let mut new = Vec::new();
        for sub in subs.iter() {
            if seen.known.contains(&sub.sub_id) {
                continue;
            }
            new.push(sub.sub_id.clone());
            if sub.after_pos < after {
                // Made while the filler was reading past its start: catch its room up.
                let missed = stream
                    .in_room(&sub.room_id, sub.after_pos, after, OUTBOX_BATCH)
                    .await?;
                for (pos, event) in &missed {
                    if event.sender != self.context.bot
                        && wants(sub, seen.pattern(sub).as_ref(), event)
                    {
                        deliveries.push((sub.sub_id.clone(), *pos, event.event_id.clone()));
                    }
                }
            }
        }
        for (pos, event) in &batch {
            // The bot's answers are no room conversation.
            if event.sender == self.context.bot {
                continue;
            }
            for sub in subs
                .iter()
                .filter(|s| s.room_id == event.room_id && *pos > s.after_pos)
            {
                if wants(sub, seen.pattern(sub).as_ref(), event) {
                    deliveries.push((sub.sub_id.clone(), *pos, event.event_id.clone()));
                }
            }
        }
        let queued = !deliveries.is_empty();
        if queued {
            // The deliveries and the filler's new position commit together: a crash
            // leaves both or neither.
            let mut statements: Vec<Statement> = deliveries
                .iter()
                .map(|(sub_id, pos, event_id)| Store::queue_delivery(sub_id, *pos, event_id))
                .collect();
            statements.push(set_cursor(OUTBOX_READER, upto));
            store.tables().transaction(&statements).await?;
            self.outbox_grew.notify_one();
        }
        seen.known.extend(new);
        Ok((upto, full, queued))
    }

    /// Drains every subscription's queue whose retry time has come, forever: one task per
    /// subscription, so a slow target delays only its own deliveries.
    pub(super) async fn deliver(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
        while !*stop.borrow() {
            let grew = self.outbox_grew.notified();
            tokio::pin!(grew);
            grew.as_mut().enable();
            running.retain(|_, task| !task.is_finished());
            let mut sleep = IDLE_POLL;
            match self.store.subscriptions(None).await {
                Ok(subs) => {
                    let now = now_ms();
                    for sub in subs {
                        if sub.retry_at > now {
                            let wait = Duration::from_millis((sub.retry_at - now) as u64);
                            sleep = sleep.min(wait);
                        } else if !running.contains_key(&sub.sub_id) {
                            let (webhooks, stop) = (self.clone(), stop.clone());
                            let id = sub.sub_id.clone();
                            running.insert(
                                id,
                                tokio::spawn(async move { webhooks.drain(&sub, &stop).await }),
                            );
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot read outgoing webhooks"),
            }
            tokio::select! {
                _ = &mut grew => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = stop.changed() => {}
            }
        }
        // Each drain stops after the delivery in flight (bounded by the timeout).
        for (_, task) in running {
            let _ = task.await;
        }
    }

    /// Delivers one subscription's queue in order until it is empty or a POST fails.
    async fn drain(&self, sub: &SubscriptionRow, stop: &watch::Receiver<bool>) {
        let store = &self.store;
        while !*stop.borrow() {
            let (pos, event_id) = match store.outbox_next(&sub.sub_id).await {
                Ok(Some(next)) => next,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the webhook outbox");
                    return;
                }
            };
            let result = match self.context.services.stream.event(&event_id).await {
                Ok(Some((_, event))) => self.post(sub, &event).await,
                // The event is gone (a purge): nothing to deliver.
                Ok(None) => Ok(()),
                Err(err) => Err(format!("store: {err}")),
            };
            let recorded = match &result {
                Ok(()) => {
                    Stats::add(&self.stats.messages_out);
                    self.context.services.analytics.count("deliveries", 1);
                    store.outbox_delivered(&sub.sub_id, pos, now_ms()).await
                }
                Err(reason) => {
                    Stats::add(&self.stats.errors);
                    self.context
                        .services
                        .analytics
                        .count("delivery_failures", 1);
                    if let Some(held) = self.throttle.allow("delivery failed") {
                        tracing::warn!(subscription = %sub.sub_id, target = %origin(&sub.url), error = %reason, suppressed = held, "outgoing webhook delivery failed");
                    }
                    let wait = backoff(sub.failures + 1, self.max_retry_interval);
                    store
                        .outbox_failed(&sub.sub_id, now_ms() + wait.as_millis() as i64, reason)
                        .await
                }
            };
            if let Err(err) = recorded {
                tracing::warn!(error = %err, "cannot record a webhook delivery");
                return;
            }
            if result.is_err() {
                return;
            }
        }
    }

    /// POSTs one event; `Err` says why it did not arrive.
    async fn post(&self, sub: &SubscriptionRow, event: &PersistedEvent) -> Result<(), String> {
        let url = url::Url::parse(&sub.url).map_err(|e| e.to_string())?;
        self.policy.check_url(&url)?;
        let unsigned = event
            .unsigned
            .as_deref()
            .and_then(|u| serde_json::from_str(u).ok());
        let client_event =
            pdu::client_event(&event.event_id, &event.json, unsigned).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&json!({
            "subscription_id": sub.sub_id,
            "room_id": event.room_id,
            "event": client_event,
        }))
        .map_err(|e| e.to_string())?;
        let header = signature::sign(&sub.secret, now_ms() / 1000, &body);
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::HEADER, header)
            .header("x-converge-event-id", &event.event_id)
            .header("idempotency-key", &event.event_id)
            .body(body)
            .send()
            .await
            .map_err(|err| {
                if was_blocked(&err) {
                    BLOCKED.to_owned()
                } else {
                    // Without the URL: errors are shown in the room.
                    err.without_url().to_string()
                }
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the target answered {}", response.status()))
        }
    }
}

/// What the filler remembers of subscriptions: the list as of `version`, which it has
/// seen, and their compiled body patterns.
#[derive(Default)]
struct Filters {
    subs: Arc<Vec<SubscriptionRow>>,
    version: Option<u64>,
    known: HashSet<String>,
    patterns: HashMap<String, Option<Regex>>,
}

impl Filters {
    fn pattern(&mut self, sub: &SubscriptionRow) -> &Option<Regex> {
        self.patterns
            .entry(sub.sub_id.clone())
            .or_insert_with(|| sub.pattern.as_deref().and_then(|p| compile(p).ok()))
    }
}

/// Whether a subscription wants an event: its types, and its body pattern if any.
fn wants(sub: &SubscriptionRow, pattern: Option<&Regex>, event: &PersistedEvent) -> bool {
    if !sub.event_types.is_empty() && !sub.event_types.contains(&event.event_type) {
        return false;
    }
    let Some(pattern) = pattern else {
        return sub.pattern.is_none();
    };
    serde_json::from_str::<Value>(&event.json)
        .ok()
        .and_then(|pdu| {
            pdu["content"]["body"]
                .as_str()
                .map(|body| pattern.is_match(body))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, body: &str) -> PersistedEvent {
        PersistedEvent {
            event_id: "$e".into(),
            room_id: "!r:x".into(),
            sender: "@a:x".into(),
            event_type: event_type.into(),
            state_key: None,
            origin_server_ts: 0,
            json: json!({ "type": event_type, "content": { "body": body } }).to_string(),
            depth: 1,
            unsigned: None,
            txn: None,
            relation: None,
            redacted_because: None,
        }
    }

    #[test]
    fn subscriptions_filter_by_type_and_body() {
        let mut sub = SubscriptionRow {
            sub_id: "s".into(),
            room_id: "!r:x".into(),
            url: "https://e.org".into(),
            secret: "k".into(),
            event_types: vec!["m.room.message".into()],
            pattern: Some("^!deploy".into()),
            created_by: "@a:x".into(),
            created_ts: 0,
            after_pos: StreamPos(0),
            failures: 0,
            retry_at: 0,
            last_error: None,
            last_success_ts: None,
        };
        let re = compile("^!deploy").unwrap();
        assert!(wants(
            &sub,
            Some(&re),
            &event("m.room.message", "!deploy prod")
        ));
        assert!(!wants(&sub, Some(&re), &event("m.room.message", "hello")));
        assert!(!wants(&sub, Some(&re), &event("m.reaction", "!deploy")));
        sub.pattern = None;
        sub.event_types.clear();
        assert!(wants(&sub, None, &event("m.reaction", "anything")));
    }
}
