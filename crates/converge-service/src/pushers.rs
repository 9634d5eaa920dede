//! Pushers: where a user's notifications are delivered (HTTP push gateways, such as the
//! one behind a phone app), and the task that delivers them from the notifications stored
//! with each event — a durable outbox, at least once, in order, retried with backoff, and
//! never to an address the SSRF policy refuses. What is waiting follows the user's
//! membership when it goes out, as `GET /notifications` does: an invite accepted before its
//! push went out, or a room left meanwhile, is not pushed any more.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#push-notifications> (pushers)
//! and the push gateway API <https://spec.matrix.org/v1.16/push-gateway-api/>.

use std::sync::Arc;
use std::time::Duration;

use converge_core::Membership;
use converge_store::{NotificationRow, PusherRow, Store};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::caller::Caller;
use crate::config::PushConfig;
use crate::error::{Error, Result};
use crate::fetch::{BLOCKED, Policy, backoff, was_blocked};
use crate::now_ms;
use crate::rooms::Rooms;

/// Pushers one user may have.
const MAX_PUSHERS_PER_USER: usize = 50;
/// Notifications read per pusher at once.
const BATCH: u32 = 50;
/// The longest the deliverer sleeps when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// What `POST /pushers/set` asks for.
#[derive(Debug, Default)]
pub struct PusherRequest {
    /// `None` deletes the pusher.
    pub kind: Option<String>,
    pub app_id: String,
    pub pushkey: String,
    pub app_display_name: String,
    pub device_display_name: String,
    pub profile_tag: Option<String>,
    pub lang: String,
    pub data: Value,
    pub append: bool,
}

pub struct Pushers {
    store: Store,
    rooms: Arc<Rooms>,
    policy: Policy,
    client: reqwest::Client,
    max_retry_interval: Duration,
    /// Wakes the deliverer when a pusher is added.
    changed: tokio::sync::Notify,
}

impl Pushers {
    pub fn new(
        store: Store,
        rooms: Arc<Rooms>,
        config: &PushConfig,
    ) -> std::result::Result<Self, String> {
        let policy = Policy::new(&config.allow, &config.deny)?;
        let client = policy.client(config.timeout, "push")?;
        Ok(Self {
            store,
            rooms,
            policy,
            client,
            max_retry_interval: config.max_retry_interval,
            changed: tokio::sync::Notify::new(),
        })
    }

    /// `GET /pushers`.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<PusherRow>> {
        Ok(self.store.pushers(Some(caller.user_id.as_str())).await?)
    }

    /// `POST /pushers/set`: creates, updates or (with `kind: null`) deletes a pusher.
    pub async fn set(&self, caller: &Caller, request: PusherRequest) -> Result<()> {
        let user = caller.user_id.as_str();
        if request.app_id.is_empty() || request.app_id.len() > 64 {
            return Err(Error::InvalidParam("app_id must be 1 to 64 bytes".into()));
        }
        if request.pushkey.is_empty() || request.pushkey.len() > 512 {
            return Err(Error::InvalidParam("pushkey must be 1 to 512 bytes".into()));
        }
        let Some(kind) = request.kind else {
            self.store
                .delete_pusher(user, &request.app_id, &request.pushkey)
                .await?;
            return Ok(());
        };
        if kind != "http" {
            return Err(Error::InvalidParam(format!(
                "pushers of kind {kind:?} are not supported here; use \"http\""
            )));
        }
        let url = request.data["url"]
            .as_str()
            .ok_or_else(|| Error::MissingParam("an http pusher needs data.url".into()))?;
        let parsed = url::Url::parse(url)
            .map_err(|_| Error::InvalidParam("data.url is not a valid URL".into()))?;
        if !parsed.path().ends_with("/_matrix/push/v1/notify") {
            return Err(Error::InvalidParam(
                "data.url must end with /_matrix/push/v1/notify".into(),
            ));
        }
        self.policy.check_url(&parsed).map_err(|reason| {
            Error::InvalidParam(format!(
                "data.url: {reason}; push gateways may not be there"
            ))
        })?;
        let data = request.data.to_string();
        if data.len() > 4096 {
            return Err(Error::InvalidParam("data is larger than 4096 bytes".into()));
        }
        let existing = self.store.pushers(Some(user)).await?;
        let new = !existing
            .iter()
            .any(|p| p.app_id == request.app_id && p.pushkey == request.pushkey);
        if new && existing.len() >= MAX_PUSHERS_PER_USER {
            return Err(Error::LimitExceeded {
                retry_after_ms: 60_000,
            });
        }
        let pusher = PusherRow {
            user_id: user.to_owned(),
            app_id: request.app_id,
            pushkey: request.pushkey,
            kind,
            app_display_name: request.app_display_name,
            device_display_name: request.device_display_name,
            profile_tag: request.profile_tag,
            lang: request.lang,
            data,
            created_ts: now_ms(),
            // Only notifications from now on are delivered.
            delivered_pos: *self.store.stream_position().borrow(),
            failures: 0,
            retry_at: 0,
            last_error: None,
        };
        self.store.set_pusher(&pusher, !request.append).await?;
        self.changed.notify_one();
        Ok(())
    }

    /// Delivers notifications to every pusher until `stop`: woken by new commits, each
    /// pusher's queue in order from its delivered position.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut committed = self.store.stream_position();
        while !*stop.borrow() {
            let mut sleep = IDLE_POLL;
            match self.store.pushers(None).await {
                Ok(pushers) => {
                    let now = now_ms();
                    for pusher in pushers {
                        if pusher.retry_at > now {
                            sleep =
                                sleep.min(Duration::from_millis((pusher.retry_at - now) as u64));
                            continue;
                        }
                        match self.drain(&pusher).await {
                            Ok(Some(retry_in)) => sleep = sleep.min(retry_in),
                            Ok(None) => {}
                            Err(err) => {
                                tracing::warn!(error = %err, "push delivery could not read or record")
                            }
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot read the pushers"),
            }
            tokio::select! {
                _ = committed.changed() => {}
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Delivers one pusher's waiting notifications, in order, until one fails; then says
    /// when to try again.
    async fn drain(&self, pusher: &PusherRow) -> Result<Option<Duration>> {
        let mut delivered = pusher.delivered_pos;
        let mut failures = pusher.failures;
        loop {
            let batch = self
                .store
                .notifications_after(&pusher.user_id, delivered, BATCH)
                .await?;
            if batch.is_empty() {
                return Ok(None);
            }
            for row in &batch {
                match self.deliver(pusher, row).await {
                    Ok(Delivery::Done) => {
                        delivered = row.stream_pos;
                        self.store.pusher_delivered(pusher, delivered).await?;
                    }
                    Ok(Delivery::Rejected) => {
                        tracing::info!(app_id = %pusher.app_id, "the push gateway rejected a pushkey; removing the pusher");
                        self.store
                            .delete_pusher(&pusher.user_id, &pusher.app_id, &pusher.pushkey)
                            .await?;
                        return Ok(None);
                    }
                    Err(reason) => {
                        failures += 1;
                        let wait = backoff(failures, self.max_retry_interval);
                        tracing::warn!(app_id = %pusher.app_id, error = %reason, retry_in = ?wait, "push delivery failed");
                        self.store
                            .pusher_failed(pusher, now_ms() + wait.as_millis() as i64, &reason)
                            .await?;
                        return Ok(Some(wait));
                    }
                }
            }
            if batch.len() < BATCH as usize {
                return Ok(None);
            }
        }
    }

    /// POSTs one notification in the push gateway format.
    async fn deliver(
        &self,
        pusher: &PusherRow,
        row: &NotificationRow,
    ) -> std::result::Result<Delivery, String> {
        let data: Value = serde_json::from_str(&pusher.data).unwrap_or_default();
        let url = data["url"].as_str().ok_or("the pusher has no URL")?;
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        self.policy.check_url(&url)?;
        let body = self
            .notification(pusher, row, &data)
            .await
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|err| {
                if was_blocked(&err) {
                    BLOCKED.to_owned()
                } else {
                    err.without_url().to_string()
                }
            })?;
        if !response.status().is_success() {
            return Err(format!("the push gateway answered {}", response.status()));
        }
        let answer: Value = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let rejected = answer["rejected"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|k| k == pusher.pushkey.as_str()));
        Ok(if rejected {
            Delivery::Rejected
        } else {
            Delivery::Done
        })
    }

    /// The push gateway's `notification` for one stored notification.
    async fn notification(
        &self,
        pusher: &PusherRow,
        row: &NotificationRow,
        data: &Value,
    ) -> Result<Value> {
        let actions: Value = serde_json::from_str(&row.actions).unwrap_or(json!([]));
        let tweaks: serde_json::Map<String, Value> = actions
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some((
                    a["set_tweak"].as_str()?.to_owned(),
                    a.get("value").cloned().unwrap_or(json!(true)),
                ))
            })
            .collect();
        let mut device_data = data.clone();
        if let Some(map) = device_data.as_object_mut() {
            map.remove("url");
        }
        let device = json!({
            "app_id": pusher.app_id,
            "pushkey": pusher.pushkey,
            "pushkey_ts": pusher.created_ts / 1000,
            "data": device_data,
            "tweaks": tweaks,
        });
        let unread = self.store.unread_total(&pusher.user_id).await?;
        let prio = if tweaks.contains_key("highlight") || tweaks.contains_key("sound") {
            "high"
        } else {
            "low"
        };
        let mut notification = json!({
            "event_id": row.event_id,
            "room_id": row.room_id,
            "counts": { "unread": unread },
            "devices": [device],
            "prio": prio,
        });
        if data["format"] == "event_id_only" {
            return Ok(json!({ "notification": notification }));
        }
        if let Some((_, event)) = self.store.event(&row.event_id).await? {
            let pdu: Value = serde_json::from_str(&event.json).unwrap_or_default();
            notification["type"] = json!(event.event_type);
            notification["sender"] = json!(event.sender);
            notification["content"] = pdu["content"].clone();
            notification["user_is_target"] =
                json!(event.state_key.as_deref() == Some(pusher.user_id.as_str()));
            let (sender_name, room_name, alias) = self
                .rooms
                .snapshot(&row.room_id, |room| {
                    let name = |t: &str, f: &str| room.content_str(t, f).map(str::to_owned);
                    let sender = room
                        .get("m.room.member", &event.sender)
                        .filter(|_| room.membership(&event.sender) != Membership::Leave)
                        .and_then(|e| e.content.get("displayname"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    (
                        sender,
                        name("m.room.name", "name"),
                        name("m.room.canonical_alias", "alias"),
                    )
                })
                .await?;
            if let Some(name) = sender_name {
                notification["sender_display_name"] = json!(name);
            }
            if let Some(name) = room_name {
                notification["room_name"] = json!(name);
            }
            if let Some(alias) = alias {
                notification["room_alias"] = json!(alias);
            }
        }
        Ok(json!({ "notification": notification }))
    }
}

enum Delivery {
    Done,
    /// The gateway says the pushkey is no longer valid.
    Rejected,
}
