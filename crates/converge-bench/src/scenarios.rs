//! The benchmark scenarios. Each is bounded in count and time and returns its figures as
//! JSON; `Plan` says how big each one is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::client::{Client, Result, Session, urlencode};
use crate::procfs;
use crate::stats::{ms, summary};

/// How big each scenario is.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seq_sends: usize,
    pub senders: usize,
    pub sends_per_sender: usize,
    pub listeners: usize,
    pub rate_per_s: f64,
    pub delivery_secs: f64,
    pub fanout: usize,
    pub fanout_messages: usize,
    pub rooms: usize,
    pub history: usize,
    pub idle_clients: usize,
    /// MQTT devices and telemetry samples each publishes (the `mqtt` scenario).
    pub mqtt_devices: usize,
    pub mqtt_samples: usize,
    /// `/keys/query` for this many users' devices; `/keys/claim` from this many devices.
    pub keys_query_users: usize,
    pub keys_claim_devices: usize,
    /// To-device messages: devices each message goes to, and how many are sent.
    pub to_device_devices: usize,
    pub to_device_rounds: usize,
    /// The big room: its members, and the messages sent into it (and into a two-member
    /// room, for comparison).
    pub big_room_members: usize,
    pub big_room_sends: usize,
    /// Sliding sync: the rooms the user is in, and the samples of each measurement.
    pub sliding_rooms: usize,
    pub sliding_samples: usize,
    /// Every scenario stops by itself after this long.
    pub deadline: Duration,
}

impl Plan {
    /// The sizes the targets in the issue are stated for.
    pub fn full() -> Self {
        Self {
            seq_sends: 300,
            senders: 32,
            sends_per_sender: 100,
            listeners: 100,
            rate_per_s: 500.0,
            delivery_secs: 4.0,
            fanout: 1000,
            fanout_messages: 10,
            rooms: 100,
            history: 50,
            idle_clients: 10_000,
            mqtt_devices: 10,
            mqtt_samples: 1000,
            keys_query_users: 1000,
            keys_claim_devices: 100,
            to_device_devices: 100,
            to_device_rounds: 20,
            big_room_members: 1000,
            big_room_sends: 200,
            sliding_rooms: 1000,
            sliding_samples: 20,
            deadline: Duration::from_secs(300),
        }
    }

    /// A tiny run that exercises every code path in seconds (CI uses it).
    pub fn smoke() -> Self {
        Self {
            seq_sends: 10,
            senders: 4,
            sends_per_sender: 5,
            listeners: 3,
            rate_per_s: 20.0,
            delivery_secs: 0.5,
            fanout: 5,
            fanout_messages: 2,
            rooms: 3,
            history: 3,
            idle_clients: 20,
            mqtt_devices: 2,
            mqtt_samples: 20,
            keys_query_users: 5,
            keys_claim_devices: 3,
            to_device_devices: 3,
            to_device_rounds: 2,
            big_room_members: 5,
            big_room_sends: 5,
            sliding_rooms: 25,
            sliding_samples: 3,
            deadline: Duration::from_secs(60),
        }
    }
}

/// The server's CPU time over a stretch of work, from `/proc` (when its PID is known).
struct CpuMeter {
    pid: Option<u32>,
    before: Option<f64>,
}

impl CpuMeter {
    fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            before: pid.and_then(procfs::cpu_seconds),
        }
    }

    /// Milliseconds of server CPU per item since `start`, to three decimals.
    fn ms_per(&self, items: usize) -> Option<f64> {
        let after = self.pid.and_then(procfs::cpu_seconds)?;
        let seconds = after - self.before?;
        Some((seconds * 1000.0 / items.max(1) as f64 * 1000.0).round() / 1000.0)
    }
}

pub struct Bench {
    pub client: Client,
    /// The server's process, for memory and CPU readings.
    pub pid: Option<u32>,
    pub plan: Plan,
    users: Vec<Session>,
    run_id: String,
}

/// Every benchmark user's password.
const PASSWORD: &str = "bench-password-1";

fn now_id() -> String {
    format!("{:x}", rand::random::<u32>())
}

impl Bench {
    pub fn new(base: &str, pid: Option<u32>, plan: Plan) -> Self {
        Self {
            client: Client::new(base),
            pid,
            plan,
            users: Vec::new(),
            run_id: now_id(),
        }
    }

    fn rss(&self) -> Option<u64> {
        self.pid.and_then(procfs::rss_kib)
    }

    /// Registers the users every scenario shares, a few at a time.
    pub async fn register_users(&mut self) -> Result<Value> {
        let needed = self
            .plan
            .senders
            .max(self.plan.listeners)
            .max(self.plan.fanout)
            .max(self.plan.keys_query_users)
            .max(self.plan.keys_claim_devices)
            .max(self.plan.to_device_devices)
            .max(self.plan.big_room_members)
            + 2;
        let started = Instant::now();
        let mut users = Vec::with_capacity(needed);
        for batch in (0..needed).collect::<Vec<_>>().chunks(16) {
            let results = join_all(batch.iter().map(|n| {
                let client = self.client.clone();
                let name = format!("bench{}u{n}", self.run_id);
                async move { client.register(&name, PASSWORD).await }
            }))
            .await;
            for result in results {
                users.push(result?);
            }
        }
        self.users = users;
        Ok(json!({ "users": needed, "seconds": started.elapsed().as_secs_f64() }))
    }

    async fn room_with(&self, members: &[Session]) -> Result<String> {
        let owner = &self.users[0];
        let room = self
            .client
            .create_room(owner, json!({ "preset": "public_chat" }))
            .await?;
        for chunk in members.chunks(32) {
            let joins = chunk
                .iter()
                .filter(|m| m.user_id != owner.user_id)
                .map(|m| self.client.join(m, &room));
            for result in join_all(joins).await {
                result?;
            }
        }
        Ok(room)
    }

    /// Sends `count` messages into `room` one at a time as the room's owner; the
    /// latencies, and the server's CPU time per message.
    async fn send_one_by_one(&self, room: &str, count: usize, tag: &str) -> Result<Value> {
        let user = &self.users[0];
        let mut samples = Vec::with_capacity(count);
        let deadline = Instant::now() + self.plan.deadline;
        let cpu = CpuMeter::start(self.pid);
        for n in 0..count {
            if Instant::now() > deadline {
                break;
            }
            let started = Instant::now();
            self.client
                .send(
                    user,
                    room,
                    &format!("{tag}{n}"),
                    &json!({ "msgtype": "m.text", "body": format!("{tag} {n}") }),
                )
                .await?;
            samples.push(started.elapsed());
        }
        let sent = samples.len();
        let mut result = summary(&mut samples);
        result["cpu_ms_per_event"] = json!(cpu.ms_per(sent));
        Ok(result)
    }

    /// Sequential send latency: one user, one room, one send at a time.
    pub async fn sequential_send(&self) -> Result<Value> {
        let room = self.room_with(&[]).await?;
        self.send_one_by_one(&room, self.plan.seq_sends, "seq")
            .await
    }

    /// Sending into a room of `big_room_members` members, one message at a time, against
    /// the same in a room of two: what each member costs the send path (push rules are
    /// evaluated for every member of the room).
    pub async fn big_room(&self) -> Result<Value> {
        let members = &self.users[..self.plan.big_room_members.min(self.users.len())];
        let big = self.room_with(members).await?;
        let small = self.room_with(&self.users[1..2]).await?;
        let sends = self.plan.big_room_sends;
        let big_result = self.send_one_by_one(&big, sends, "big").await?;
        let small_result = self.send_one_by_one(&small, sends, "small").await?;
        Ok(json!({
            "members": members.len(),
            "sends": sends,
            "p50_ms": big_result["p50_ms"],
            "p99_ms": big_result["p99_ms"],
            "cpu_ms_per_event": big_result["cpu_ms_per_event"],
            "two_member_p50_ms": small_result["p50_ms"],
            "two_member_cpu_ms_per_event": small_result["cpu_ms_per_event"],
        }))
    }

    /// `/keys/query` for `keys_query_users` users and `/keys/claim` of one key from each of
    /// `keys_claim_devices` devices (see [`crate::e2ee::keys`]).
    pub async fn keys(&self) -> Result<Value> {
        crate::e2ee::keys(
            &self.client,
            &self.users,
            self.plan.keys_query_users,
            self.plan.keys_claim_devices,
        )
        .await
    }

    /// A to-device message to `to_device_devices` devices at once, `to_device_rounds` times
    /// (see [`crate::e2ee::to_device`]).
    pub async fn to_device(&self) -> Result<Value> {
        let listeners: Vec<Session> = self
            .users
            .iter()
            .skip(1)
            .take(self.plan.to_device_devices)
            .cloned()
            .collect();
        crate::e2ee::to_device(
            &self.client,
            &self.users[0],
            &listeners,
            self.plan.to_device_rounds,
            self.plan.deadline,
        )
        .await
    }

    /// Concurrent send throughput: `senders` users sending into one room at once; also
    /// the server's CPU time per event and its memory under load.
    pub async fn concurrent_send(&self) -> Result<Value> {
        let senders: Vec<Session> = self.users.iter().take(self.plan.senders).cloned().collect();
        let room = self.room_with(&senders).await?;
        let cpu = CpuMeter::start(self.pid);
        let peak_rss = Arc::new(Mutex::new(self.rss().unwrap_or(0)));
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let (pid, peak, sampling) = (self.pid, peak_rss.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(rss) = pid.and_then(procfs::rss_kib) {
                        let mut peak = peak.lock().expect("not poisoned");
                        *peak = (*peak).max(rss);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let started = Instant::now();
        let deadline = started + self.plan.deadline;
        let per_sender = self.plan.sends_per_sender;
        let tasks = senders.iter().enumerate().map(|(i, sender)| {
            let (client, room, sender) = (self.client.clone(), room.clone(), sender.clone());
            async move {
                let mut sent = 0usize;
                for n in 0..per_sender {
                    if Instant::now() > deadline {
                        break;
                    }
                    let content = json!({ "msgtype": "m.text", "body": format!("c{i} {n}") });
                    if matches!(
                        client
                            .try_send(&sender, &room, &format!("c{i}n{n}"), &content)
                            .await,
                        Ok((200, _))
                    ) {
                        sent += 1;
                    }
                }
                sent
            }
        });
        let sent: usize = join_all(tasks).await.into_iter().sum();
        let elapsed = started.elapsed();
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = sampler.await;
        let peak = *peak_rss.lock().expect("not poisoned");
        Ok(json!({
            "senders": senders.len(),
            "events": sent,
            "seconds": elapsed.as_secs_f64(),
            "events_per_s": (sent as f64 / elapsed.as_secs_f64()).round(),
            "cpu_ms_per_event": cpu.ms_per(sent),
            "rss_under_load_kib": (peak > 0).then_some(peak),
        }))
    }

    /// Incoming webhook throughput (Converge's gateway; other servers have none):
    /// `senders` posters send `sends_per_sender` POSTs each into one hook; a POST is
    /// answered once its message is committed. Latency per POST, posts per second and
    /// the server's CPU time per post.
    pub async fn webhook(&self) -> Result<Value> {
        let owner = &self.users[0];
        let room = self.room_with(&[]).await?;
        let admin = format!("/_converge/admin/v1/rooms/{}/webhooks", urlencode(&room));
        let (status, hook) = self
            .client
            .post_root(&admin, Some(&owner.token), &json!({}))
            .await?;
        if status != 200 {
            return Err(format!(
                "the server made no webhook (HTTP {status}): {hook}"
            ));
        }
        let path = format!(
            "/_converge/hooks/{}",
            hook["hook_id"].as_str().unwrap_or_default()
        );
        let cpu = CpuMeter::start(self.pid);
        let started = Instant::now();
        let deadline = started + self.plan.deadline;
        let per_poster = self.plan.sends_per_sender;
        let posters = (0..self.plan.senders).map(|i| {
            let (client, path) = (self.client.clone(), path.clone());
            async move {
                let mut latencies = Vec::with_capacity(per_poster);
                for n in 0..per_poster {
                    if Instant::now() > deadline {
                        break;
                    }
                    let sent = Instant::now();
                    let body = json!({ "text": format!("**build** {i}.{n} passed") });
                    if matches!(client.post_root(&path, None, &body).await, Ok((200, _))) {
                        latencies.push(sent.elapsed());
                    }
                }
                latencies
            }
        });
        let mut latencies: Vec<Duration> = join_all(posters).await.into_iter().flatten().collect();
        let elapsed = started.elapsed();
        let posted = latencies.len();
        let mut result = summary(&mut latencies);
        result["posters"] = json!(self.plan.senders);
        result["posts"] = json!(posted);
        result["posts_per_s"] = json!((posted as f64 / elapsed.as_secs_f64()).round());
        result["cpu_ms_per_post"] = json!(cpu.ms_per(posted));
        Ok(result)
    }

    /// MQTT telemetry ingestion (Converge's gateway): `mqtt_devices` devices registered in
    /// one room each publish `mqtt_samples` samples as fast as one client can; measured
    /// until every sample is stored (read back through the telemetry API) and every
    /// device's state event shows its last sample.
    pub async fn mqtt(&self, broker: (&str, u16), prefix: &str) -> Result<Value> {
        use rumqttc::{AsyncClient, MqttOptions, QoS};
        let owner = &self.users[0];
        let room = self.room_with(&[]).await?;
        let admin = format!("/_converge/admin/v1/rooms/{}/devices", urlencode(&room));
        // Each device: its ID and, where the broker checks logins (Converge's embedded
        // one), its password.
        let mut devices = Vec::with_capacity(self.plan.mqtt_devices);
        for i in 0..self.plan.mqtt_devices {
            let id = format!("bench-{}-{i}", self.run_id);
            let (status, body) = self
                .client
                .post_root(&admin, Some(&owner.token), &json!({ "device_id": id }))
                .await?;
            if status != 200 {
                return Err(format!(
                    "the server registered no device (HTTP {status}): {body}"
                ));
            }
            let password = body["mqtt_password"].as_str().map(str::to_owned);
            devices.push((id, password));
        }
        // One connection per device when logins are checked, else one for all.
        let mut clients = Vec::new();
        let mut pumps = Vec::new();
        let logins: Vec<Option<&(String, Option<String>)>> =
            if devices.iter().any(|(_, p)| p.is_some()) {
                devices.iter().map(Some).collect()
            } else {
                vec![None]
            };
        for login in logins {
            let name = login.map_or("all", |(id, _)| id.as_str());
            let mut options =
                MqttOptions::new(format!("bench-{}-{name}", self.run_id), broker.0, broker.1);
            options.set_keep_alive(Duration::from_secs(30));
            if let Some((id, Some(password))) = login {
                options.set_credentials(id.clone(), password.clone());
            }
            let (client, mut eventloop) = AsyncClient::new(options, 1024);
            pumps.push(tokio::spawn(async move {
                while eventloop.poll().await.is_ok() {}
            }));
            clients.push(client);
        }
        let samples = self.plan.mqtt_samples;
        let cpu = CpuMeter::start(self.pid);
        let started = Instant::now();
        for n in 0..samples {
            for (i, (id, _)) in devices.iter().enumerate() {
                let payload = json!({ "seq": n, "temp": 20 + (n % 10) }).to_string();
                clients[i % clients.len()]
                    .publish(
                        format!("{prefix}/devices/{id}/telemetry"),
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .map_err(|e| format!("publish: {e}"))?;
            }
        }
        let published = started.elapsed();
        let deadline = started + self.plan.deadline;
        let mut stored_at = None;
        let mut state_at = None;
        while (stored_at.is_none() || state_at.is_none()) && Instant::now() < deadline {
            let mut stored = 0;
            let mut current = 0;
            for (id, _) in &devices {
                let path =
                    format!("/_converge/client/v1/devices/{id}/telemetry?from=0&limit=10000");
                let (_, body) = self.client.get_root(&path, Some(&owner.token)).await?;
                stored += body["samples"].as_array().map_or(0, Vec::len);
                let state = format!(
                    "/_matrix/client/v3/rooms/{}/state/io.converge.device/{id}",
                    urlencode(&room)
                );
                let (_, content) = self.client.get_root(&state, Some(&owner.token)).await?;
                current += usize::from(content["values"]["seq"] == json!(samples - 1));
            }
            if stored_at.is_none() && stored == samples * devices.len() {
                stored_at = Some(started.elapsed());
            }
            if state_at.is_none() && current == devices.len() {
                state_at = Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for client in &clients {
            let _ = client.disconnect().await;
        }
        for pump in pumps {
            pump.abort();
        }
        let total = samples * devices.len();
        Ok(json!({
            "devices": devices.len(),
            "samples": total,
            "publish_ms": ms(published),
            "all_stored_ms": stored_at.map(ms),
            "state_current_ms": state_at.map(ms),
            "stored_per_s": stored_at.map(|t| (total as f64 / t.as_secs_f64()).round()),
            "cpu_ms_per_sample": cpu.ms_per(total),
        }))
    }

    /// Delivery latency from send to `/sync`: `listeners` users long-poll one room while
    /// one user sends `messages` events `interval` apart.
    pub async fn delivery(
        &self,
        listeners: usize,
        messages: usize,
        interval: Duration,
    ) -> Result<Value> {
        let members: Vec<Session> = self.users.iter().skip(1).take(listeners).cloned().collect();
        let room = self.room_with(&members).await?;
        let sender = self.users[0].clone();
        let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let deadline = Instant::now() + self.plan.deadline;
        // Every listener first catches up, so only new events count.
        let mut tokens = Vec::with_capacity(members.len());
        for chunk in members.chunks(64) {
            let syncs = chunk.iter().map(|m| {
                self.client
                    .sync(m, None, 0, Some(r#"{"room":{"timeline":{"limit":1}}}"#))
            });
            for result in join_all(syncs).await {
                tokens.push(
                    result?["next_batch"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
        let listening = members.iter().zip(tokens).map(|(member, token)| {
            let (client, member, sent_at, latencies, room) = (
                self.client.clone(),
                member.clone(),
                sent_at.clone(),
                latencies.clone(),
                room.clone(),
            );
            tokio::spawn(async move {
                let mut since = token;
                let mut seen = 0;
                while seen < messages && Instant::now() < deadline {
                    let Ok(response) = client.sync(&member, Some(&since), 10_000, None).await
                    else {
                        break;
                    };
                    let arrived = Instant::now();
                    since = response["next_batch"].as_str().unwrap_or(&since).to_owned();
                    let events = response["rooms"]["join"][&room]["timeline"]["events"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    for event in events {
                        if let Some(id) = event["content"]["bench_id"].as_str()
                            && let Some(at) = sent_at.lock().expect("not poisoned").get(id)
                        {
                            latencies.lock().expect("not poisoned").push(arrived - *at);
                            seen += 1;
                        }
                    }
                }
            })
        });
        let listening: Vec<_> = listening.collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let mut next = Instant::now();
        for n in 0..messages {
            tokio::time::sleep_until(next.into()).await;
            next += interval;
            let id = format!("d{n}");
            sent_at
                .lock()
                .expect("not poisoned")
                .insert(id.clone(), Instant::now());
            let content =
                json!({ "msgtype": "m.text", "body": format!("delivery {n}"), "bench_id": id });
            self.client
                .send(&sender, &room, &format!("d{}n{n}", self.run_id), &content)
                .await?;
        }
        for task in listening {
            let _ = task.await;
        }
        let elapsed = started.elapsed();
        let mut samples = latencies.lock().expect("not poisoned").clone();
        let delivered = samples.len();
        let mut result = summary(&mut samples);
        result["listeners"] = json!(members.len());
        result["messages"] = json!(messages);
        result["expected"] = json!(members.len() * messages);
        result["deliveries_per_s"] = json!((delivered as f64 / elapsed.as_secs_f64()).round());
        Ok(result)
    }

    /// Initial sync of a user in `rooms` rooms with `history` messages each, with and
    /// without a lazy-loading filter (median of five), each sample on a fresh device: a
    /// server that caches a sync per device must compute it anew.
    pub async fn initial_sync(&self) -> Result<Value> {
        let owner = self.users[0].clone();
        let reader = self.users[1].clone();
        let mut rooms = Vec::with_capacity(self.plan.rooms);
        for _ in 0..self.plan.rooms {
            rooms.push(self.room_with(std::slice::from_ref(&reader)).await?);
        }
        for chunk in rooms.chunks(8) {
            let fills = chunk.iter().map(|room| {
                let (client, owner, room) = (self.client.clone(), owner.clone(), room.clone());
                let history = self.plan.history;
                async move {
                    for n in 0..history {
                        client
                            .send(
                                &owner,
                                &room,
                                &format!("h{n}"),
                                &json!({ "msgtype": "m.text", "body": format!("history {n}") }),
                            )
                            .await?;
                    }
                    Ok::<_, String>(())
                }
            });
            for result in join_all(fills).await {
                result?;
            }
        }
        let lazy = r#"{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":10}}}"#;
        let expected_rooms = self.plan.rooms;
        let timed = |filter: Option<&'static str>| {
            let (client, reader) = (self.client.clone(), reader.clone());
            async move {
                let mut samples = Vec::new();
                for _ in 0..5 {
                    let device = client.login(&reader.user_id, PASSWORD).await?;
                    let started = Instant::now();
                    let response = client.sync(&device, None, 0, filter).await?;
                    samples.push(started.elapsed());
                    // A sync that missed rooms would be fast for the wrong reason.
                    let joined = response["rooms"]["join"].as_object().map_or(0, |r| r.len());
                    if joined < expected_rooms {
                        return Err(format!(
                            "initial sync listed {joined} of {expected_rooms} rooms"
                        ));
                    }
                }
                samples.sort();
                Ok::<_, String>(ms(samples[samples.len() / 2]))
            }
        };
        let plain = timed(None).await?;
        let lazy_ms = timed(Some(lazy)).await?;
        Ok(
            json!({ "rooms": self.plan.rooms, "messages_per_room": self.plan.history, "full_ms": plain, "lazy_ms": lazy_ms }),
        )
    }

    /// Simplified sliding sync for a user in `sliding_rooms` rooms (see [`crate::sliding`]);
    /// a server without it is reported as such.
    pub async fn sliding_sync(&self) -> Result<Value> {
        if !crate::sliding::supported(&self.client).await? {
            return Ok(json!({ "supported": false }));
        }
        let (owner, reader) = (&self.users[0], &self.users[1]);
        let started = Instant::now();
        let rooms =
            crate::sliding::fill(&self.client, owner, reader, self.plan.sliding_rooms).await?;
        let setup_s = started.elapsed().as_secs_f64();
        let mut result = crate::sliding::run(
            &self.client,
            owner,
            reader,
            PASSWORD,
            &rooms,
            self.plan.sliding_samples,
        )
        .await?;
        result["supported"] = json!(true);
        result["setup_s"] = json!(setup_s.round());
        Ok(result)
    }

    /// Server memory with many idle long-polling clients.
    pub async fn idle_long_polls(&self) -> Result<Value> {
        let user = self.users[0].clone();
        let since = self
            .client
            .sync(&user, None, 0, Some(r#"{"room":{"timeline":{"limit":1}}}"#))
            .await?["next_batch"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let before = self.rss();
        let polls: Vec<_> = (0..self.plan.idle_clients)
            .map(|_| {
                let (client, user, since) = (self.client.clone(), user.clone(), since.clone());
                tokio::spawn(async move { client.sync(&user, Some(&since), 60_000, None).await })
            })
            .collect();
        // Let every request arrive and settle into waiting.
        tokio::time::sleep(Duration::from_millis(
            1500 + self.plan.idle_clients as u64 / 4,
        ))
        .await;
        let during = self.rss();
        let finished_early = polls.iter().filter(|p| p.is_finished()).count();
        for poll in &polls {
            poll.abort();
        }
        Ok(json!({
            "clients": self.plan.idle_clients,
            "finished_early": finished_early,
            "rss_before_kib": before,
            "rss_with_clients_kib": during,
        }))
    }
}
