//! Simplified sliding sync (MSC4186): the room list a client shows, a window at a time,
//! and what changed in the rooms it is looking at, with the extensions Element X needs.
//!
//! MSC: <https://github.com/matrix-org/matrix-spec-proposals/pull/4186>. Each request
//! names a connection position ([`conn`]); the response holds each room of the windows
//! and subscriptions that is new to the connection (`initial`) or changed since it was
//! last sent, the list counts, and the extensions. Rooms are ordered by their newest
//! event of a [`BUMP_TYPES`](crate::rooms::BUMP_TYPES) type (`bump_stamp`). A request with nothing new waits, like
//! `/sync`, until something is or the timeout passes.

pub mod conn;
pub mod request;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use converge_core::{Membership, StreamPos};
use converge_store::{Direction, MembershipRow, Store};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use serde_json::{Map, Value, json};

use crate::caller::Caller;
use crate::e2ee::E2ee;
use crate::ephemeral::Ephemeral;
use crate::error::{Error, Result};
use crate::notifier::Notifier;
use crate::push::PushRules;
use crate::rooms::{Rooms, StateEntry};
use crate::sync::{MAX_TIMEOUT, Sync, receipt_event, stripped_state, with_default_push_rules};
use crate::timeline::{client_event, load_view};
use crate::token::{SyncToken, page_token};
use conn::{ConnKey, Connections, Lookup, SentRoom, Snapshot};
use request::{ListFilters, RoomConfig, Scope, SlidingRequest};

/// Heroes sent for a room without a name.
const MAX_HEROES: usize = 5;
/// Rooms of one response read from the store at the same time, at most.
const ROOMS_AT_ONCE: usize = 8;

pub struct SlidingSync {
    store: Store,
    rooms: Arc<Rooms>,
    ephemeral: Arc<Ephemeral>,
    notifier: Arc<dyn Notifier>,
    push: Arc<PushRules>,
    e2ee: Arc<E2ee>,
    /// For presence and the shutdown signal, shared with `/sync`.
    sync: Arc<Sync>,
    connections: Connections,
}

/// A room the user may see in a list: joined, invited, or left since the connection's
/// last response (sent once more so the client learns of it).
struct Candidate {
    row: MembershipRow,
    membership: Membership,
    /// The room-list order: the newest bumping event, or the membership change.
    bump: StreamPos,
}

/// What the room's in-memory state tells a list filter and the room's entry.
#[derive(Default)]
struct Facts {
    name: Option<String>,
    avatar: Option<String>,
    encrypted: bool,
    room_type: Option<String>,
    joined: usize,
    invited: usize,
    heroes: Vec<Value>,
    is_direct_invite: bool,
}

/// Where a room of the response came from, for the extensions' scopes.
#[derive(Default)]
struct Placement {
    config: RoomConfig,
    lists: Vec<String>,
    subscribed: bool,
}

impl SlidingSync {
    pub fn new(
        store: Store,
        rooms: Arc<Rooms>,
        ephemeral: Arc<Ephemeral>,
        notifier: Arc<dyn Notifier>,
        push: Arc<PushRules>,
        e2ee: Arc<E2ee>,
        sync: Arc<Sync>,
    ) -> Self {
        Self {
            store,
            rooms,
            ephemeral,
            notifier,
            push,
            e2ee,
            sync,
            connections: Connections::default(),
        }
    }

    /// Connections held now (for metrics and tests).
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Forgets a device's connections (it logged out or was deleted).
    pub fn drop_device(&self, user: &str, device: &str) {
        self.connections.drop_device(user, device);
    }

    /// `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`.
    pub async fn sync(&self, caller: &Caller, mut request: SlidingRequest) -> Result<Value> {
        request.check()?;
        let user = caller.user_id.as_str();
        if let Some(presence) = &request.set_presence {
            self.sync.touch_presence(user, presence).await?;
        }
        let key = ConnKey {
            user: user.to_owned(),
            device: caller.device_id.to_string(),
            conn_id: request.conn_id.clone(),
        };
        let base = match self.connections.lookup(&key, request.pos.as_deref()) {
            Lookup::Found(snapshot) => snapshot,
            Lookup::Unknown => return Err(Error::UnknownPos),
        };
        let notify = self.notifier.subscribe(user);
        let mut closing = self.sync.closing();
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
            let (mut response, news, snapshot) = self.compute(caller, &request, &base, now).await?;
            let first = base.token.is_none();
            if news || first || tokio::time::Instant::now() >= deadline || *closing.borrow() {
                let pos = self
                    .connections
                    .record(&key, request.pos.as_deref(), snapshot);
                response["pos"] = json!(pos);
                if let Some(txn_id) = &request.txn_id {
                    response["txn_id"] = json!(txn_id);
                }
                return Ok(response);
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = closing.changed() => {}
            }
        }
    }

    /// The response from `base` to `now`, whether it holds anything new, and the
    /// connection's snapshot after it.
    async fn compute(
        &self,
        caller: &Caller,
        request: &SlidingRequest,
        base: &Snapshot,
        now: SyncToken,
    ) -> Result<(Value, bool, Snapshot)> {
        let user = caller.user_id.as_str();
        let mut next = Snapshot {
            token: Some(now),
            rooms: base.rooms.clone(),
            counts: HashMap::new(),
        };
        let mut news = false;

        let candidates = self.candidates(user, base, now).await?;
        // `is_dm` is sent with each new room and filtered on.
        let direct = if !request.lists.is_empty() || !request.subscriptions.is_empty() {
            self.direct_rooms(user).await?
        } else {
            HashSet::new()
        };
        let needs_facts = request.lists.values().any(|l| l.filters.needs_room_facts());
        let mut facts: HashMap<String, Facts> = HashMap::new();
        if needs_facts {
            for c in &candidates {
                let f = self.facts(&c.row.room_id, user).await?;
                facts.insert(c.row.room_id.clone(), f);
            }
        }

        // The lists: each a filtered view of the candidates, and its windows.
        let mut placements: BTreeMap<String, Placement> = BTreeMap::new();
        let mut lists = Map::new();
        for (name, list) in &request.lists {
            let rooms: Vec<&Candidate> = candidates
                .iter()
                .filter(|c| passes(&list.filters, c, &direct, facts.get(&c.row.room_id)))
                .collect();
            let count = rooms.len() as u64;
            if base.counts.get(name) != Some(&count) {
                news = true;
            }
            next.counts.insert(name.clone(), count);
            lists.insert(name.clone(), json!({ "count": count }));
            for &(start, end) in &list.ranges {
                if start >= count {
                    continue;
                }
                for c in &rooms[start as usize..=(end.min(count - 1) as usize)] {
                    let placement = placements.entry(c.row.room_id.clone()).or_default();
                    placement.config.merge(&list.room);
                    placement.lists.push(name.clone());
                }
            }
        }
        let by_id: HashMap<&str, &Candidate> = candidates
            .iter()
            .map(|c| (c.row.room_id.as_str(), c))
            .collect();
        for (room_id, config) in &request.subscriptions {
            // Rooms the user is not in are not theirs to subscribe to: left out.
            if by_id.contains_key(room_id.as_str()) {
                let placement = placements.entry(room_id.clone()).or_default();
                placement.config.merge(config);
                placement.subscribed = true;
            }
        }

        // The rooms are read a few at a time: each needs a handful of store reads, and
        // waiting for them one room after another would add up their round trips.
        let reads: Vec<_> = placements
            .iter()
            .map(|(room_id, placement)| {
                let candidate = by_id[room_id.as_str()];
                let sent = base.rooms.get(room_id);
                self.room(
                    caller,
                    candidate,
                    &placement.config,
                    sent,
                    base.token,
                    now,
                    &direct,
                )
            })
            .collect();
        let built: Vec<(Option<Value>, SentRoom)> = stream::iter(reads)
            .buffered(ROOMS_AT_ONCE)
            .try_collect()
            .await?;
        let mut rooms = Map::new();
        for (room_id, (section, sent_now)) in placements.keys().zip(built) {
            if let Some(section) = section {
                news = true;
                rooms.insert(room_id.clone(), section);
            }
            next.rooms.insert(room_id.clone(), sent_now);
        }
        // A room left since the last response was sent with it; it is now out of the list.
        next.rooms.retain(|room_id, sent| {
            !matches!(sent.membership.as_str(), "leave" | "ban") || placements.contains_key(room_id)
        });

        let (extensions, extension_news) = self
            .extensions(caller, request, base, now, &candidates, &placements)
            .await?;
        news |= extension_news;
        let response = json!({ "lists": lists, "rooms": rooms, "extensions": extensions });
        Ok((response, news, next))
    }

    /// The rooms that may appear in a list, newest first.
    async fn candidates(
        &self,
        user: &str,
        base: &Snapshot,
        now: SyncToken,
    ) -> Result<Vec<Candidate>> {
        let rows = self.store.user_memberships(user).await?;
        let since = base.token.map(|t| t.pos);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if row.forgotten || row.stream_pos > now.pos {
                continue;
            }
            let Some(membership) = Membership::parse(&row.membership) else {
                continue;
            };
            let keep = match membership {
                Membership::Join | Membership::Invite => true,
                // Once more, for a connection that was sent the room before.
                Membership::Leave | Membership::Ban => {
                    since.is_some_and(|s| row.changed_pos > s)
                        && base
                            .rooms
                            .get(&row.room_id)
                            .is_some_and(|r| !matches!(r.membership.as_str(), "leave" | "ban"))
                }
                Membership::Knock => false,
            };
            if keep {
                out.push(Candidate {
                    bump: row.changed_pos,
                    membership,
                    row,
                });
            }
        }
        let joined: Vec<&str> = out
            .iter()
            .filter(|c| c.membership == Membership::Join)
            .map(|c| c.row.room_id.as_str())
            .collect();
        let bumps = self.rooms.bump_stamps(user, &joined).await?;
        for c in &mut out {
            if let Some(bump) = bumps.get(&c.row.room_id) {
                c.bump = c.bump.max(*bump);
            }
        }
        out.sort_by(|a, b| {
            b.bump
                .cmp(&a.bump)
                .then_with(|| a.row.room_id.cmp(&b.row.room_id))
        });
        Ok(out)
    }

    /// The rooms `m.direct` names as direct chats.
    async fn direct_rooms(&self, user: &str) -> Result<HashSet<String>> {
        let content = self.store.account_data(user, None, "m.direct").await?;
        let content: Value = content
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(Value::Null);
        Ok(content
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect())
    }

    /// Name, avatar, counts, heroes and the filters' facts, from the room's state.
    async fn facts(&self, room_id: &str, user: &str) -> Result<Facts> {
        self.rooms
            .snapshot(room_id, |room| {
                let name = room
                    .content_str("m.room.name", "name")
                    .filter(|n| !n.is_empty());
                let mut heroes = Vec::new();
                if name.is_none() {
                    let mut members: Vec<&str> = room
                        .members(Membership::Join)
                        .chain(room.members(Membership::Invite))
                        .filter(|m| *m != user)
                        .collect();
                    members.sort_unstable();
                    for member in members.into_iter().take(MAX_HEROES) {
                        let mut hero = json!({ "user_id": member });
                        if let Some(entry) = room.get("m.room.member", member) {
                            for (from, to) in
                                [("displayname", "displayname"), ("avatar_url", "avatar_url")]
                            {
                                if let Some(v) = entry.content.get(from).and_then(Value::as_str) {
                                    hero[to] = json!(v);
                                }
                            }
                        }
                        heroes.push(hero);
                    }
                }
                Facts {
                    name: name.map(str::to_owned),
                    avatar: room
                        .content_str("m.room.avatar", "url")
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned),
                    encrypted: room.get("m.room.encryption", "").is_some(),
                    room_type: room.content_str("m.room.create", "type").map(str::to_owned),
                    joined: room.members(Membership::Join).count(),
                    invited: room.members(Membership::Invite).count(),
                    heroes,
                    is_direct_invite: room
                        .get("m.room.member", user)
                        .and_then(|e| e.content.get("is_direct"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                }
            })
            .await
    }

    /// One room's entry, or `None` if the connection already has everything it holds;
    /// and what the connection has been sent of it after this response.
    #[allow(clippy::too_many_arguments)]
    async fn room(
        &self,
        caller: &Caller,
        candidate: &Candidate,
        config: &RoomConfig,
        sent: Option<&SentRoom>,
        base: Option<SyncToken>,
        now: SyncToken,
        direct: &HashSet<String>,
    ) -> Result<(Option<Value>, SentRoom)> {
        let user = caller.user_id.as_str();
        let room_id = candidate.row.room_id.as_str();
        let config_hash = {
            let mut h = DefaultHasher::new();
            config.hash(&mut h);
            h.finish()
        };
        let membership = candidate.row.membership.clone();
        let initial = sent.is_none_or(|s| s.membership != membership);
        let mut sent_now = SentRoom {
            pos: now.pos,
            membership: membership.clone(),
            config_hash,
            timeline_limit: config.timeline_limit,
            notifications: sent.map_or((0, 0), |s| s.notifications),
        };
        let reconfigured = sent.is_some_and(|s| s.config_hash != config_hash);
        if let Some(s) = sent
            && !initial
            && !reconfigured
            && self.rooms.quiet_since(room_id, s.pos)
        {
            return Ok((None, sent_now));
        }
        let facts = self.facts(room_id, user).await?;
        let is_dm = direct.contains(room_id) || facts.is_direct_invite;

        if candidate.membership == Membership::Invite {
            if !initial {
                return Ok((None, sent_now));
            }
            let section = json!({
                "initial": true,
                "invite_state": stripped_state(&self.rooms, room_id, user).await?,
                "bump_stamp": candidate.bump.0,
                "is_dm": is_dm,
            });
            return Ok((Some(section), sent_now));
        }

        // Joined, or left since the last response (then only up to the leave).
        let until = if candidate.membership == Membership::Join {
            now.pos
        } else {
            candidate.row.stream_pos
        };
        // A timeline limit raised since the room was sent (the client opened the room) sends
        // the latest events again, flagged, so the client replaces what it had (MSC4186).
        let expanded = !initial && sent.is_some_and(|s| config.timeline_limit > s.timeline_limit);
        let from_start = initial || expanded;
        let after = if from_start {
            StreamPos(0)
        } else {
            sent.map_or(StreamPos(0), |s| s.pos)
        };
        let limit = config.timeline_limit;
        let mut events = self
            .store
            .room_events(room_id, after, until, limit + 1, Direction::Backward)
            .await?;
        let limited = events.len() as u32 > limit;
        events.truncate(limit as usize);
        events.reverse();
        if from_start
            && events
                .first()
                .is_some_and(|(p, _)| *p < candidate.row.changed_pos)
        {
            let view = load_view(&self.store, &self.rooms, user, room_id).await?;
            events.retain(|(p, e)| view.visible(*p, e));
        }
        let prev_batch = page_token(StreamPos(events.first().map_or(until.0, |(p, _)| p.0 - 1)));
        let num_live = base.map_or(0, |b| events.iter().filter(|(p, _)| *p > b.pos).count());

        // Required state: all that is asked for when the room is new to the connection
        // (or more is asked for), else what changed since it was sent.
        // Clients read a room's state from `required_state` only, so state events of the
        // timeline are sent there too. `$LAZY` covers the timeline's senders and members.
        let lazy: HashSet<&str> = events
            .iter()
            .flat_map(|(_, e)| {
                let member = (e.event_type == "m.room.member")
                    .then_some(e.state_key.as_deref())
                    .flatten();
                std::iter::once(e.sender.as_str()).chain(member)
            })
            .collect();
        let whole = initial || reconfigured;
        let required = &config.required_state;
        // A room left is shown as it was up to the leave.
        let joined = candidate.membership == Membership::Join;
        let wanted: Vec<String> = self
            .rooms
            .snapshot(room_id, |room| {
                let mut out = Vec::new();
                let mut push = |entry: &StateEntry, is_lazy: bool| {
                    let fresh = whole || entry.pos > after || is_lazy;
                    if fresh && (joined || entry.pos <= until) {
                        out.push(entry.event_id.clone());
                    }
                };
                match required.exact_keys(user) {
                    Some(keys) => {
                        for (t, k) in keys {
                            if let Some(entry) = room.get(t, k) {
                                push(entry, false);
                            }
                        }
                        if required.lazy_members() {
                            for sender in &lazy {
                                if let Some(entry) = room.get("m.room.member", sender) {
                                    push(entry, true);
                                }
                            }
                        }
                    }
                    None => {
                        for ((t, k), entry) in &room.state {
                            if required.wants(t, k, user, &lazy) {
                                let is_lazy = t == "m.room.member" && lazy.contains(k.as_str());
                                push(entry, is_lazy);
                            }
                        }
                    }
                }
                out.sort_unstable();
                out.dedup();
                out
            })
            .await?;
        let state = if wanted.is_empty() {
            Vec::new()
        } else {
            let ids: Vec<&str> = wanted.iter().map(String::as_str).collect();
            self.store.events_by_id(&ids).await?
        };

        let unread = self
            .push
            .unread(user, room_id, candidate.row.changed_pos, false)
            .await?;
        sent_now.notifications = (unread.notifications, unread.highlights);
        let counts_changed = sent.is_none_or(|s| s.notifications != sent_now.notifications);
        if !whole && events.is_empty() && state.is_empty() && !counts_changed {
            return Ok((None, sent_now));
        }

        let mut section = json!({
            "timeline": events.iter().map(|(_, e)| client_event(e, Some(caller))).collect::<Vec<_>>(),
            "required_state": state.iter().map(|e| client_event(e, None)).collect::<Vec<_>>(),
            "prev_batch": prev_batch,
            "limited": limited,
            "num_live": num_live,
            "bump_stamp": candidate.bump.0,
            "joined_count": facts.joined,
            "invited_count": facts.invited,
            "notification_count": unread.notifications,
            "highlight_count": unread.highlights,
        });
        if initial {
            section["initial"] = json!(true);
            section["is_dm"] = json!(is_dm);
        }
        if expanded {
            section["unstable_expanded_timeline"] = json!(true);
        }
        if let Some(name) = &facts.name {
            section["name"] = json!(name);
        }
        match &facts.avatar {
            Some(avatar) => section["avatar"] = json!(avatar),
            // Unset since the room was sent: say so (an absent field means unchanged).
            None if !initial => section["avatar"] = Value::Null,
            None => {}
        }
        if facts.name.is_none() && !facts.heroes.is_empty() {
            section["heroes"] = json!(facts.heroes);
        }
        Ok((Some(section), sent_now))
    }

    /// The extensions' part of the response, and whether it holds anything new.
    async fn extensions(
        &self,
        caller: &Caller,
        request: &SlidingRequest,
        base: &Snapshot,
        now: SyncToken,
        candidates: &[Candidate],
        placements: &BTreeMap<String, Placement>,
    ) -> Result<(Value, bool)> {
        let user = caller.user_id.as_str();
        let ext = &request.extensions;
        let mut out = Map::new();
        let mut news = false;
        let since = base.token;

        if let Some(to_device) = &ext.to_device {
            let acknowledged = match to_device.since.as_deref() {
                None => StreamPos(0),
                Some(s) => StreamPos(s.parse().map_err(|_| {
                    Error::InvalidParam("to_device.since is not a position this server gave".into())
                })?),
            };
            let (events, delivered) = self.e2ee.inbox(caller, acknowledged, now.pos).await?;
            news |= !events.is_empty();
            out.insert(
                "to_device".into(),
                json!({ "next_batch": delivered.0.to_string(), "events": events }),
            );
        }

        if ext.e2ee {
            let device = caller.device_id.as_str();
            let mut e2ee = json!({
                "device_one_time_keys_count": self.e2ee.one_time_key_counts(user, device).await?,
                "device_unused_fallback_key_types": self.e2ee.unused_fallback_key_types(user, device).await?,
            });
            if let Some(since) = since {
                let mut joined = Vec::new();
                let mut left = Vec::new();
                for c in candidates.iter().filter(|c| c.row.changed_pos > since.pos) {
                    let members = self
                        .rooms
                        .snapshot(&c.row.room_id, |r| {
                            r.members(Membership::Join)
                                .map(str::to_owned)
                                .collect::<Vec<_>>()
                        })
                        .await?;
                    match c.membership {
                        Membership::Join => joined.push(members),
                        Membership::Leave | Membership::Ban => left.push(members),
                        _ => {}
                    }
                }
                let delta = self
                    .e2ee
                    .changes(caller, since, now, &joined, &left)
                    .await?;
                if !delta.is_empty() {
                    news = true;
                    e2ee["device_lists"] = json!({ "changed": delta.changed, "left": delta.left });
                }
            }
            out.insert("e2ee".into(), e2ee);
        }

        // The rooms each per-room extension covers.
        let in_scope = |scope: &Scope| -> Vec<&str> {
            placements
                .iter()
                .filter(|(room_id, p)| {
                    p.lists.iter().any(|l| scope.covers_list(l))
                        || (p.subscribed && scope.covers_subscription(room_id))
                })
                .map(|(room_id, _)| room_id.as_str())
                .collect()
        };
        // What the connection knew of a room before: from when on it needs updates.
        let known_since = |room_id: &str| -> Option<SyncToken> {
            since.filter(|_| {
                base.rooms
                    .get(room_id)
                    .is_some_and(|r| r.membership == "join")
            })
        };
        let joined: HashSet<&str> = candidates
            .iter()
            .filter(|c| c.membership == Membership::Join)
            .map(|c| c.row.room_id.as_str())
            .collect();

        if let Some(scope) = &ext.account_data {
            let rows = self
                .store
                .account_data_since(user, since.map_or(StreamPos(0), |s| s.pos))
                .await?;
            let scoped: HashSet<&str> = in_scope(scope).into_iter().collect();
            let mut global = Vec::new();
            let mut rooms: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            let mut room_event = |room_id: &str, event: Value| {
                rooms.entry(room_id.to_owned()).or_default().push(event);
            };
            for row in rows.iter().filter(|r| r.stream_pos <= now.pos) {
                let event = json!({
                    "type": row.data_type,
                    "content": serde_json::from_str::<Value>(&row.content).unwrap_or_else(|_| json!({})),
                });
                match &row.room_id {
                    None => global.push(event),
                    Some(room_id) if scoped.contains(room_id.as_str()) => {
                        room_event(room_id, event)
                    }
                    Some(_) => {}
                }
            }
            // Rooms new to the connection get their older account data too.
            let newcomers: HashSet<&str> = scoped
                .iter()
                .copied()
                .filter(|r| since.is_some() && known_since(r).is_none())
                .collect();
            if !newcomers.is_empty() {
                for row in self.store.account_data_since(user, StreamPos(0)).await? {
                    if let Some(room_id) = &row.room_id
                        && newcomers.contains(room_id.as_str())
                        && row.stream_pos <= since.map_or(StreamPos(0), |s| s.pos)
                    {
                        room_event(
                            room_id,
                            json!({
                                "type": row.data_type,
                                "content": serde_json::from_str::<Value>(&row.content).unwrap_or_else(|_| json!({})),
                            }),
                        );
                    }
                }
            }
            if since.is_none() {
                with_default_push_rules(&mut global, caller);
            }
            news |= !global.is_empty() || !rooms.is_empty();
            out.insert(
                "account_data".into(),
                json!({ "global": global, "rooms": rooms }),
            );
        }

        if let Some(scope) = &ext.receipts {
            let mut rooms = Map::new();
            for room_id in in_scope(scope).into_iter().filter(|r| joined.contains(r)) {
                let after = known_since(room_id).map_or(StreamPos(0), |s| s.pos);
                if after > StreamPos(0) && self.rooms.quiet_since(room_id, after) {
                    continue;
                }
                let receipts = self.store.receipts_since(room_id, after).await?;
                if let Some(event) = receipt_event(&receipts, user, now.pos) {
                    rooms.insert(room_id.to_owned(), event);
                }
            }
            news |= !rooms.is_empty();
            out.insert("receipts".into(), json!({ "rooms": rooms }));
        }

        if let Some(scope) = &ext.typing {
            let mut rooms = Map::new();
            for room_id in in_scope(scope).into_iter().filter(|r| joined.contains(r)) {
                let known = known_since(room_id);
                let after = known.map_or(0, |s| s.eph);
                if let Some(typing) = self.ephemeral.typing(room_id, after)
                    && (known.is_some() || !typing.is_empty())
                {
                    rooms.insert(
                        room_id.to_owned(),
                        json!({ "type": "m.typing", "content": { "user_ids": typing } }),
                    );
                }
            }
            news |= !rooms.is_empty();
            out.insert("typing".into(), json!({ "rooms": rooms }));
        }
        Ok((Value::Object(out), news))
    }
}

/// Whether a room belongs in a list with these filters.
fn passes(
    filters: &ListFilters,
    c: &Candidate,
    direct: &HashSet<String>,
    facts: Option<&Facts>,
) -> bool {
    let invited = c.membership == Membership::Invite;
    if filters.is_invite.is_some_and(|want| want != invited) {
        return false;
    }
    if let Some(want) = filters.is_dm {
        let is_dm = direct.contains(&c.row.room_id) || facts.is_some_and(|f| f.is_direct_invite);
        if want != is_dm {
            return false;
        }
    }
    let Some(facts) = facts else {
        return true;
    };
    if filters
        .is_encrypted
        .is_some_and(|want| want != facts.encrypted)
    {
        return false;
    }
    if !filters.room_types.is_empty() && !filters.room_types.contains(&facts.room_type) {
        return false;
    }
    !filters.not_room_types.contains(&facts.room_type)
}
