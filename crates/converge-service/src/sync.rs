//! `GET /sync`: everything new for a user since their last token, waiting for it if there
//! is nothing yet.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#get_matrixclientv3sync>. The token
//! is a position in the one stream (events, account data, receipts) plus the ephemeral
//! serial (typing, presence); a sync reads what lies between the client's token and now.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

use converge_core::{Membership, PersistedEvent, StreamPos};
use converge_store::{Direction, MembershipRow, ReceiptRow, Store};
use serde_json::{Map, Value, json};

use super::ephemeral::Ephemeral;
use super::filters::SyncFilter;
use super::notifier::Notifier;
use super::rooms::Rooms;
use super::timeline::{client_event, load_view};
use super::token::{SyncToken, page_token};
use crate::caller::Caller;
use crate::device_lists::DeviceListDelta;
use crate::e2ee::E2ee;
use crate::error::{Error, Result};
use crate::push::PushRules;

/// Joined rooms read from the store at once during a sync.
const ROOMS_IN_PARALLEL: usize = 8;

/// The longest a sync waits for something new.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// State event types shown for an invite (the spec's recommended stripped state).
const INVITE_STATE: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

pub struct SyncRequest {
    pub since: Option<SyncToken>,
    pub full_state: bool,
    pub timeout: Duration,
    pub filter: SyncFilter,
    /// `online`, `unavailable` or `offline`; `None` leaves presence alone.
    pub set_presence: Option<String>,
}

pub struct Sync {
    /// Set when the server shuts down, so long-polls answer at once instead of holding
    /// the shutdown up.
    closing: tokio::sync::watch::Sender<bool>,
    store: Store,
    rooms: Arc<Rooms>,
    ephemeral: Arc<Ephemeral>,
    notifier: Arc<dyn Notifier>,
    /// Unread counts come from the push rules' decisions.
    push: Arc<PushRules>,
    /// To-device messages, device lists and one-time key counts.
    e2ee: Arc<E2ee>,
}

impl Sync {
    pub fn new(
        store: Store,
        rooms: Arc<Rooms>,
        ephemeral: Arc<Ephemeral>,
        notifier: Arc<dyn Notifier>,
        push: Arc<PushRules>,
        e2ee: Arc<E2ee>,
    ) -> Self {
        Self {
            closing: tokio::sync::watch::Sender::new(false),
            store,
            rooms,
            ephemeral,
            notifier,
            push,
            e2ee,
        }
    }

    /// `PUT /rooms/{roomId}/typing/{userId}`: starts or stops the caller typing, waking
    /// the room's members; a typing notice that runs out wakes them again when it ends.
    pub async fn set_typing(
        self: &Arc<Self>,
        caller: &Caller,
        room_id: &str,
        typing: bool,
        timeout: Duration,
    ) -> Result<()> {
        let user = caller.user_id.as_str();
        let (membership, interested) = self
            .rooms
            .snapshot(room_id, |room| (room.membership(user), room.interested()))
            .await?;
        if membership != Membership::Join {
            return Err(Error::forbidden("you are not in this room"));
        }
        if self.ephemeral.set_typing(room_id, user, typing, timeout) {
            self.notifier
                .notify(&mut interested.iter().map(String::as_str));
        }
        if typing {
            let sync = Arc::clone(self);
            let room_id = room_id.to_owned();
            let ends = timeout.min(crate::ephemeral::MAX_TYPING) + Duration::from_millis(50);
            tokio::spawn(async move {
                tokio::time::sleep(ends).await;
                // Reading the room's typing set drops who ran out (and counts that as a
                // change); wake the members only if somebody did.
                let before = sync.ephemeral.serial();
                sync.ephemeral.typing(&room_id, 0);
                if sync.ephemeral.serial() != before
                    && let Ok(interested) = sync.rooms.snapshot(&room_id, |r| r.interested()).await
                {
                    sync.notifier
                        .notify(&mut interested.iter().map(String::as_str));
                }
            });
        }
        Ok(())
    }

    /// Ends every waiting sync (with what it has) and every later wait.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Turns true when the server shuts down (long-polls then answer at once).
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// The presence a syncing client sets (`set_presence`): `offline` changes nothing.
    pub async fn touch_presence(&self, user: &str, presence: &str) -> Result<()> {
        if presence != "offline" && self.ephemeral.set_presence(user, presence, None) {
            self.notify_co_members(user).await?;
        }
        Ok(())
    }

    pub async fn sync(&self, caller: &Caller, request: SyncRequest) -> Result<Value> {
        let user = caller.user_id.as_str();
        if let Some(presence) = &request.set_presence {
            self.touch_presence(user, presence).await?;
        }
        let notify = self.notifier.subscribe(user);
        let mut closing = self.closing.subscribe();
        let deadline = tokio::time::Instant::now() + request.timeout.min(MAX_TIMEOUT);
        loop {
            // Listen before reading, so nothing written in between is missed.
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let pos = *self.store.stream_position().borrow();
            let now = SyncToken {
                pos,
                eph: self.ephemeral.serial(),
                to_device: pos,
            };
            let (response, has_news) = self.compute(caller, &request, now).await?;
            let done = has_news || request.since.is_none() || request.full_state;
            if done || tokio::time::Instant::now() >= deadline || *closing.borrow() {
                return Ok(response);
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = closing.changed() => {}
            }
        }
    }

    /// `PUT /presence/{userId}/status`: sets presence and wakes whoever shares a room.
    pub async fn set_presence(
        &self,
        user: &str,
        presence: &str,
        status_msg: Option<String>,
    ) -> Result<()> {
        if self
            .ephemeral
            .set_presence(user, presence, Some(status_msg))
        {
            self.notify_co_members(user).await?;
        }
        Ok(())
    }

    /// Wakes everyone sharing a room with `user` (their presence changed).
    async fn notify_co_members(&self, user: &str) -> Result<()> {
        let mut users = HashSet::new();
        for row in self.store.user_memberships(user).await? {
            if row.membership == "join" {
                let members = self
                    .rooms
                    .snapshot(&row.room_id, |room| room.interested())
                    .await?;
                users.extend(members);
            }
        }
        self.notifier.notify(&mut users.iter().map(String::as_str));
        Ok(())
    }

    /// Builds the response for the range (`since`, `now`]; the flag says whether it holds
    /// anything new.
    async fn compute(
        &self,
        caller: &Caller,
        request: &SyncRequest,
        now: SyncToken,
    ) -> Result<(Value, bool)> {
        let user = caller.user_id.as_str();
        let since = request.since;
        let filter = &request.filter;
        let mut join = Map::new();
        let mut invite = Map::new();
        let mut leave = Map::new();
        let mut knock = Map::new();
        let mut co_members: HashSet<String> = HashSet::new();
        let mut news = false;

        let account_data = match (filter.account_data, since) {
            (true, Some(since)) => self.store.account_data_since(user, since.pos).await?,
            (true, None) => self.store.account_data_since(user, StreamPos(0)).await?,
            (false, _) => Vec::new(),
        };
        let mut room_account_data: HashMap<String, Vec<Value>> = HashMap::new();
        let mut global_account_data: Vec<Value> = Vec::new();
        for row in account_data.into_iter().filter(|r| r.stream_pos <= now.pos) {
            let content: Value = serde_json::from_str(&row.content).unwrap_or_else(|_| json!({}));
            let event = json!({ "type": row.data_type, "content": content });
            match row.room_id {
                Some(room_id) => room_account_data.entry(room_id).or_default().push(event),
                None => global_account_data.push(event),
            }
        }

        let mut joined_rows = Vec::new();
        for row in self.store.user_memberships(user).await? {
            if row.forgotten || row.stream_pos > now.pos || !room_selected(filter, &row.room_id) {
                continue;
            }
            // A profile change (join → join) is no new membership: only a change of kind
            // makes the room new to the client.
            let changed_since = since.is_none_or(|s| row.changed_pos > s.pos);
            match Membership::parse(&row.membership) {
                Some(Membership::Join) => {
                    // Co-members only matter for presence; collecting them copies every
                    // member's ID on each sync, so skip it when presence is filtered out.
                    if filter.presence {
                        co_members.extend(
                            self.rooms
                                .snapshot(&row.room_id, |r| {
                                    r.members(Membership::Join)
                                        .map(str::to_owned)
                                        .collect::<Vec<_>>()
                                })
                                .await?,
                        );
                    }
                    let data = room_account_data.remove(&row.room_id);
                    joined_rows.push((row, data));
                }
                Some(Membership::Invite) if changed_since => {
                    news = true;
                    invite.insert(row.room_id.clone(), json!({ "invite_state": { "events": self.stripped_state(&row.room_id, user).await? } }));
                }
                Some(Membership::Knock) if changed_since => {
                    news = true;
                    knock.insert(row.room_id.clone(), json!({ "knock_state": { "events": self.stripped_state(&row.room_id, user).await? } }));
                }
                Some(Membership::Leave | Membership::Ban)
                    if changed_since && (since.is_some() || filter.include_leave) =>
                {
                    news = true;
                    leave.insert(
                        row.room_id.clone(),
                        self.left_room(caller, &row, since, filter).await?,
                    );
                }
                _ => {}
            }
        }

        // Joined rooms are read a few at a time: the store answers them in parallel.
        // Device lists change for the members of rooms joined or left since the token.
        let mut newly_joined: Vec<String> = Vec::new();
        let sections = futures_util::stream::iter(joined_rows.into_iter().map(|(row, data)| {
            let changed_since = since.is_none_or(|s| row.changed_pos > s.pos);
            // A room is new to the client if it joined since its token; `full_state` resends
            // the state but the timeline still starts at the token.
            let initial = since.is_none() || changed_since;
            let scope = RoomScope {
                initial,
                full_state: initial || request.full_state,
            };
            async move {
                let section = self
                    .joined_room(caller, &row, since, now, scope, filter, data)
                    .await;
                (row.room_id, section)
            }
        }))
        .buffer_unordered(ROOMS_IN_PARALLEL)
        .collect::<Vec<_>>()
        .await;
        for (room_id, section) in sections {
            if let Some(section) = section? {
                news = true;
                join.insert(room_id, section);
            }
        }
        if let Some(since) = since {
            for row in self.store.user_memberships(user).await? {
                if row.membership == "join"
                    && row.changed_pos > since.pos
                    && row.changed_pos <= now.pos
                {
                    newly_joined.push(row.room_id);
                }
            }
        }

        let presence: Vec<Value> = if filter.presence {
            self.ephemeral
                .presence_since(co_members.iter().map(String::as_str), since.map_or(0, |s| s.eph))
                .into_iter()
                .filter(|(other, _)| other != user)
                .map(|(other, p)| json!({ "type": "m.presence", "sender": other, "content": p.content() }))
                .collect()
        } else {
            Vec::new()
        };
        if since.is_none() && filter.account_data {
            with_default_push_rules(&mut global_account_data, caller);
        }

        // End-to-end encryption: the device's to-device messages, whose keys to refetch,
        // and the device's key counts.
        let acknowledged = since.map_or(StreamPos(0), |s| s.to_device);
        let (to_device, delivered) = self.e2ee.inbox(caller, acknowledged, now.pos).await?;
        let device_lists = match since {
            Some(since) => {
                let members = |rooms: &[String]| {
                    let rooms = rooms.to_vec();
                    async move {
                        let mut out = Vec::with_capacity(rooms.len());
                        for room in rooms {
                            out.push(
                                self.rooms
                                    .snapshot(&room, |r| {
                                        r.members(Membership::Join)
                                            .map(str::to_owned)
                                            .collect::<Vec<_>>()
                                    })
                                    .await?,
                            );
                        }
                        Ok::<_, Error>(out)
                    }
                };
                let joined_members = members(&newly_joined).await?;
                let left_rooms: Vec<String> = leave.keys().cloned().collect();
                let left_members = members(&left_rooms).await?;
                self.e2ee
                    .changes(caller, since, now, &joined_members, &left_members)
                    .await?
            }
            None => DeviceListDelta::default(),
        };
        let device = caller.device_id.as_str();
        let counts = self.e2ee.one_time_key_counts(user, device).await?;
        let fallback = self.e2ee.unused_fallback_key_types(user, device).await?;
        news |= !presence.is_empty()
            || !global_account_data.is_empty()
            || !to_device.is_empty()
            || !device_lists.is_empty();
        let next = SyncToken {
            to_device: delivered,
            ..now
        };
        let response = json!({
            "next_batch": next.to_string(),
            "rooms": { "join": join, "invite": invite, "leave": leave, "knock": knock },
            "account_data": { "events": global_account_data },
            "presence": { "events": presence },
            "to_device": { "events": to_device },
            "device_lists": { "changed": device_lists.changed, "left": device_lists.left },
            "device_one_time_keys_count": counts,
            "device_unused_fallback_key_types": fallback,
            "org.matrix.msc2732.device_unused_fallback_key_types": fallback,
        });
        Ok((response, news))
    }

    /// A joined room's section, or `None` if nothing in it is new.
    #[allow(clippy::too_many_arguments)]
    async fn joined_room(
        &self,
        caller: &Caller,
        row: &MembershipRow,
        since: Option<SyncToken>,
        now: SyncToken,
        scope: RoomScope,
        filter: &SyncFilter,
        account_data: Option<Vec<Value>>,
    ) -> Result<Option<Value>> {
        let RoomScope {
            initial,
            full_state,
        } = scope;
        // Nothing written to the room since the client's token, no typing change and no
        // account data: skip it without touching the store.
        if let (false, false, Some(since)) = (initial, full_state, since)
            && account_data.is_none()
            && self.rooms.quiet_since(&row.room_id, since.pos)
            && (!filter.ephemeral || self.ephemeral.typing(&row.room_id, since.eph).is_none())
        {
            return Ok(None);
        }
        let user = caller.user_id.as_str();
        let room_id = row.room_id.as_str();
        let after = if initial {
            StreamPos(0)
        } else {
            since.map_or(StreamPos(0), |s| s.pos)
        };
        let limit = filter.timeline_limit;
        let mut events = self
            .store
            .room_events(room_id, after, now.pos, limit + 1, Direction::Backward)
            .await?;
        let limited = events.len() as u32 > limit;
        events.truncate(limit as usize);
        events.reverse();
        let prev_batch = page_token(StreamPos(
            events.first().map_or(now.pos.0, |(p, _)| p.0 - 1),
        ));
        // A room new to the client may show events from before the user joined: those
        // follow the room's history visibility, judged at each event.
        let view = if initial && events.first().is_some_and(|(p, _)| *p < row.changed_pos) {
            Some(load_view(&self.store, &self.rooms, user, room_id).await?)
        } else {
            None
        };
        let timeline: Vec<&(StreamPos, PersistedEvent)> = events
            .iter()
            .filter(|(_, e)| filter.timeline.allows(e))
            .filter(|(p, e)| view.as_ref().is_none_or(|v| v.visible(*p, e)))
            .collect();

        let in_timeline: HashSet<&str> =
            timeline.iter().map(|(_, e)| e.event_id.as_str()).collect();
        let senders: HashSet<&str> = timeline
            .iter()
            .map(|(_, e)| e.sender.as_str())
            .chain(std::iter::once(user))
            .collect();
        let state_since = since.map_or(StreamPos(0), |s| s.pos);
        let state: Vec<Value> = if full_state || limited {
            // An incremental sync only needs the state that changed in the gap.
            let current = if full_state {
                self.store.room_state(room_id).await?
            } else {
                self.store.room_state_since(room_id, state_since).await?
            };
            current
                .iter()
                .filter(|(pos, e)| !in_timeline.contains(e.event_id.as_str()) && *pos <= now.pos)
                .filter(|(pos, _)| full_state || *pos > state_since)
                .filter(|(_, e)| {
                    !(filter.lazy_load_members
                        && e.event_type == "m.room.member"
                        && !e.state_key.as_deref().is_some_and(|k| senders.contains(k)))
                })
                .map(|(_, e)| client_event(e, None))
                .collect()
        } else {
            Vec::new()
        };

        let mut ephemeral = Vec::new();
        if filter.ephemeral {
            if let Some(typing) = self.ephemeral.typing(
                room_id,
                if initial {
                    0
                } else {
                    since.map_or(0, |s| s.eph)
                },
            ) {
                if initial && typing.is_empty() {
                    // Nobody typing is only news if somebody was.
                } else {
                    ephemeral
                        .push(json!({ "type": "m.typing", "content": { "user_ids": typing } }));
                }
            }
            let receipts = self.store.receipts_since(room_id, after).await?;
            ephemeral.extend(receipt_event(&receipts, user, now.pos));
        }
        let account_data = account_data.unwrap_or_default();
        let has_news = full_state
            || !timeline.is_empty()
            || !state.is_empty()
            || !ephemeral.is_empty()
            || !account_data.is_empty();
        if !has_news {
            return Ok(None);
        }

        let (joined, invited, heroes) = self
            .rooms
            .snapshot(room_id, |room| {
                let joined: Vec<String> =
                    room.members(Membership::Join).map(str::to_owned).collect();
                let invited = room.members(Membership::Invite).count();
                let mut heroes: Vec<String> =
                    joined.iter().filter(|u| *u != user).cloned().collect();
                heroes.sort();
                heroes.truncate(5);
                (joined.len(), invited, heroes)
            })
            .await?;
        let unread = self
            .push
            .unread(user, room_id, row.changed_pos, filter.thread_counts)
            .await?;
        let mut section = json!({
            "timeline": {
                "events": timeline.iter().map(|(_, e)| client_event(e, Some(caller))).collect::<Vec<_>>(),
                "limited": limited,
                "prev_batch": prev_batch,
            },
            "state": { "events": state },
            "ephemeral": { "events": ephemeral },
            "account_data": { "events": account_data },
            "unread_notifications": {
                "notification_count": unread.notifications,
                "highlight_count": unread.highlights,
            },
            "summary": {
                "m.joined_member_count": joined,
                "m.invited_member_count": invited,
                "m.heroes": heroes,
            },
        });
        if filter.thread_counts {
            let threads: serde_json::Map<String, Value> = unread
                .threads
                .iter()
                .map(|(root, (n, h))| {
                    (
                        root.clone(),
                        json!({ "notification_count": n, "highlight_count": h }),
                    )
                })
                .collect();
            section["unread_thread_notifications"] = Value::Object(threads);
        }
        Ok(Some(section))
    }

    async fn stripped_state(&self, room_id: &str, user: &str) -> Result<Vec<Value>> {
        stripped_state(&self.rooms, room_id, user).await
    }

    /// A room the user left (or was removed from) since the last sync: its timeline up to
    /// the leave.
    async fn left_room(
        &self,
        caller: &Caller,
        row: &MembershipRow,
        since: Option<SyncToken>,
        filter: &SyncFilter,
    ) -> Result<Value> {
        let after = since.map_or(StreamPos(0), |s| s.pos);
        let limit = filter.timeline_limit;
        let mut events = self
            .store
            .room_events(
                &row.room_id,
                after,
                row.stream_pos,
                limit + 1,
                Direction::Backward,
            )
            .await?;
        let limited = events.len() as u32 > limit;
        events.truncate(limit as usize);
        events.reverse();
        let prev_batch = page_token(StreamPos(
            events.first().map_or(row.stream_pos.0, |(p, _)| p.0 - 1),
        ));
        let view = load_view(
            &self.store,
            &self.rooms,
            caller.user_id.as_str(),
            &row.room_id,
        )
        .await?;
        Ok(json!({
            "timeline": {
                "events": events
                    .iter()
                    .filter(|(p, e)| filter.timeline.allows(e) && view.visible(*p, e))
                    .map(|(_, e)| client_event(e, Some(caller)))
                    .collect::<Vec<_>>(),
                "limited": limited,
                "prev_batch": prev_batch,
            },
            "state": { "events": [] },
            "account_data": { "events": [] },
        }))
    }
}

/// How much of a joined room a sync sends.
#[derive(Clone, Copy)]
struct RoomScope {
    /// The room is new to the client: its timeline starts from the latest events.
    initial: bool,
    /// All of its current state is sent.
    full_state: bool,
}

fn room_selected(filter: &SyncFilter, room_id: &str) -> bool {
    filter
        .rooms
        .as_ref()
        .is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
        && !filter.not_rooms.iter().any(|r| r == room_id)
}

/// The stripped state shown with an invite or knock.
pub async fn stripped_state(rooms: &Rooms, room_id: &str, user: &str) -> Result<Vec<Value>> {
    rooms
        .snapshot(room_id, |room| {
            INVITE_STATE
                .iter()
                .filter_map(|t| room.get(t, "").map(|e| (*t, "", e)))
                .chain(room.get("m.room.member", user).map(|e| ("m.room.member", user, e)))
                .map(|(t, k, e)| json!({ "type": t, "state_key": k, "content": e.content, "sender": e.sender }))
                .collect()
        })
        .await
}

/// The `m.receipt` event of a room's receipts up to `until`, as `user` may see them (the
/// private ones only if their own); `None` if there are none.
pub fn receipt_event(receipts: &[ReceiptRow], user: &str, until: StreamPos) -> Option<Value> {
    let mut content: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for r in receipts.iter().filter(|r| r.stream_pos <= until) {
        if r.receipt_type == "m.read.private" && r.user_id != user {
            continue;
        }
        let mut receipt = json!({ "ts": r.ts });
        if !r.thread_id.is_empty() {
            receipt["thread_id"] = json!(r.thread_id);
        }
        let by_type = content.entry(r.event_id.as_str()).or_default();
        let users = by_type
            .entry(r.receipt_type.clone())
            .or_insert_with(|| json!({}));
        users[&r.user_id] = receipt;
    }
    (!content.is_empty()).then(|| json!({ "type": "m.receipt", "content": content }))
}

/// Adds the server's default push rules to a first sync's account data unless the user
/// stored their own: clients read their push rules from there.
pub fn with_default_push_rules(global_account_data: &mut Vec<Value>, caller: &Caller) {
    if !global_account_data
        .iter()
        .any(|e| e["type"] == crate::push::PUSH_RULES)
    {
        global_account_data.push(json!({
            "type": crate::push::PUSH_RULES,
            "content": PushRules::default_account_data(&caller.user_id),
        }));
    }
}
