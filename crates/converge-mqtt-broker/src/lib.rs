//! An embedded MQTT 3.1.1 broker, so one binary serves devices with nothing else
//! installed (`[gateways.mqtt.broker] enabled = true`).
//!
//! It is deliberately small: clean sessions only, QoS 0 and 1 (QoS 2 publishes are
//! accepted and delivered at QoS 1), retained messages and last wills in memory. Every
//! client must log in: the gateway with a secret made at start, each device with the ID
//! and password it got when it was added. A device may publish only to its own
//! `telemetry`, `status` and `acks` topics and subscribe only to its own `commands`, so no
//! device can speak for another. Packets are parsed with rumqttc's codec.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, QoS, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Who a connection logged in as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Converge's own gateway client: may publish and subscribe anywhere.
    Gateway,
    Device(String),
}

/// Checks a login; `None` refuses it.
pub type Authenticate = Arc<dyn Fn(&str, &str) -> Option<Identity> + Send + Sync>;

/// Time a new connection has to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets queued for one slow client before further ones are dropped.
const OUTGOING_QUEUE: usize = 1024;
/// How long a publisher waits for a subscriber's full queue before the message is dropped
/// for that subscriber.
const SLOW_CLIENT: Duration = Duration::from_secs(2);
/// Subscriptions one client may hold.
const MAX_SUBSCRIPTIONS: usize = 64;

pub struct Broker {
    prefix: String,
    max_packet: usize,
    max_connections: usize,
    authenticate: Authenticate,
    state: Mutex<State>,
    /// Messages not delivered to a client whose queue was full.
    pub dropped: AtomicU64,
}

#[derive(Default)]
struct State {
    clients: HashMap<String, Client>,
    retained: BTreeMap<String, Publish>,
    next_connection: u64,
}

struct Client {
    connection: u64,
    identity: Identity,
    subscriptions: Vec<(String, QoS)>,
    outgoing: mpsc::Sender<Packet>,
    next_pkid: u16,
}

impl Broker {
    pub fn new(
        prefix: &str,
        max_packet: usize,
        max_connections: usize,
        authenticate: Authenticate,
    ) -> Arc<Self> {
        Arc::new(Self {
            prefix: prefix.to_owned(),
            max_packet,
            max_connections,
            authenticate,
            state: Mutex::default(),
            dropped: AtomicU64::new(0),
        })
    }

    /// Listens on `addr` until `stop`; returns the bound address and the accept task.
    pub async fn listen(
        self: &Arc<Self>,
        addr: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let broker = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.changed() => return,
                };
                match accepted {
                    Ok((stream, _)) => {
                        let (broker, stop) = (broker.clone(), stop.clone());
                        tokio::spawn(async move { broker.connection(stream, stop).await });
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "the MQTT broker cannot accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tracing::info!(%bound, "embedded MQTT broker listening");
        Ok((bound, task))
    }

    /// Ends every connection logged in as `device` (when it is removed): dropping a
    /// client's queue closes its connection, without its will.
    pub fn disconnect_device(&self, device: &str) {
        let mut state = self.lock();
        state
            .clients
            .retain(|_, client| client.identity != Identity::Device(device.to_owned()));
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves one connection: CONNECT and login, then packets until it ends.
    async fn connection(self: Arc<Self>, mut stream: TcpStream, mut stop: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let mut buffer = BytesMut::with_capacity(4096);
        let first = tokio::time::timeout(
            CONNECT_TIMEOUT,
            read_packet(&mut stream, &mut buffer, self.max_packet),
        )
        .await;
        let Ok(Ok(Some(Packet::Connect(connect)))) = first else {
            return;
        };
        let refuse = |code| Packet::ConnAck(ConnAck::new(code, false));
        if connect.protocol != rumqttc::Protocol::V4 {
            let _ = write_packet(
                &mut stream,
                &refuse(ConnectReturnCode::RefusedProtocolVersion),
            )
            .await;
            return;
        }
        let identity = connect
            .login
            .as_ref()
            .and_then(|login| (self.authenticate)(&login.username, &login.password));
        let Some(identity) = identity else {
            let _ =
                write_packet(&mut stream, &refuse(ConnectReturnCode::BadUserNamePassword)).await;
            return;
        };
        let will_allowed = connect
            .last_will
            .as_ref()
            .is_none_or(|will| self.may_publish(&identity, &will.topic));
        if !will_allowed || connect.client_id.is_empty() {
            let _ = write_packet(&mut stream, &refuse(ConnectReturnCode::NotAuthorized)).await;
            return;
        }
        let (outgoing, mut queued) = mpsc::channel(OUTGOING_QUEUE);
        let connection = {
            let mut state = self.lock();
            let full = state.clients.len() >= self.max_connections
                && !state.clients.contains_key(&connect.client_id);
            if full {
                None
            } else {
                state.next_connection += 1;
                let connection = state.next_connection;
                // A client ID already connected is taken over: the old connection ends.
                let client = Client {
                    connection,
                    identity: identity.clone(),
                    subscriptions: Vec::new(),
                    outgoing,
                    next_pkid: 0,
                };
                state.clients.insert(connect.client_id.clone(), client);
                Some(connection)
            }
        };
        let Some(connection) = connection else {
            let _ = write_packet(&mut stream, &refuse(ConnectReturnCode::ServiceUnavailable)).await;
            return;
        };
        if write_packet(
            &mut stream,
            &Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
        )
        .await
        .is_err()
        {
            self.forget(&connect.client_id, connection);
            return;
        }
        let keep_alive = match connect.keep_alive {
            0 => Duration::from_secs(24 * 60 * 60),
            secs => Duration::from_millis(u64::from(secs) * 1500),
        };
        let mut clean = false;
        loop {
            tokio::select! {
                read = tokio::time::timeout(keep_alive, read_packet(&mut stream, &mut buffer, self.max_packet)) => {
                    let Ok(Ok(Some(packet))) = read else { break };
                    match self.handle(&identity, &connect.client_id, packet).await {
                        Reply::Send(reply) => if write_packet(&mut stream, &reply).await.is_err() { break },
                        Reply::Nothing => {}
                        Reply::Disconnect => { clean = true; break }
                        Reply::Close => break,
                    }
                }
                packet = queued.recv() => {
                    // `None`: another connection took the client ID over, or the device
                    // was removed.
                    let Some(packet) = packet else { clean = true; break };
                    if write_packet(&mut stream, &packet).await.is_err() { break }
                }
                _ = stop.changed() => { clean = true; break }
            }
        }
        self.forget(&connect.client_id, connection);
        if !clean && let Some(will) = connect.last_will {
            let mut publish = Publish::new(will.topic, will.qos, will.message.to_vec());
            publish.retain = will.retain;
            self.route(publish).await;
        }
    }

    /// Drops a client's entry unless a newer connection took its ID.
    fn forget(&self, client_id: &str, connection: u64) {
        let mut state = self.lock();
        if state
            .clients
            .get(client_id)
            .is_some_and(|c| c.connection == connection)
        {
            state.clients.remove(client_id);
        }
    }

    async fn handle(&self, identity: &Identity, client_id: &str, packet: Packet) -> Reply {
        match packet {
            Packet::Publish(publish) => {
                let reply = match publish.qos {
                    QoS::AtMostOnce => Reply::Nothing,
                    QoS::AtLeastOnce => Reply::Send(Packet::PubAck(PubAck::new(publish.pkid))),
                    QoS::ExactlyOnce => Reply::Send(Packet::PubRec(PubRec::new(publish.pkid))),
                };
                if valid_topic(&publish.topic) && self.may_publish(identity, &publish.topic) {
                    self.route(publish).await;
                } else {
                    // Acknowledged but not delivered, as MQTT 3.1.1 allows.
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                reply
            }
            Packet::PubRel(rel) => Reply::Send(Packet::PubComp(PubComp::new(rel.pkid))),
            Packet::Subscribe(subscribe) => {
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                let mut retained = Vec::new();
                {
                    let mut state = self.lock();
                    let State {
                        clients,
                        retained: kept,
                        ..
                    } = &mut *state;
                    let Some(client) = clients.get_mut(client_id) else {
                        return Reply::Close;
                    };
                    for filter in subscribe.filters {
                        let qos = lower(filter.qos, QoS::AtLeastOnce);
                        let known = client.subscriptions.iter().any(|(f, _)| *f == filter.path);
                        let allowed = valid_filter(&filter.path)
                            && self.may_subscribe(identity, &filter.path)
                            && (known || client.subscriptions.len() < MAX_SUBSCRIPTIONS);
                        if !allowed {
                            codes.push(SubscribeReasonCode::Failure);
                            continue;
                        }
                        client.subscriptions.retain(|(f, _)| *f != filter.path);
                        for (topic, message) in kept.iter() {
                            if matches(&filter.path, topic) {
                                retained.push((message.clone(), qos));
                            }
                        }
                        client.subscriptions.push((filter.path, qos));
                        codes.push(SubscribeReasonCode::Success(qos));
                    }
                    for (message, qos) in retained {
                        let out = outgoing(client, message, qos, true);
                        if client.outgoing.try_send(out).is_err() {
                            self.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                // The SubAck goes out before the retained messages queued above.
                Reply::Send(Packet::SubAck(SubAck::new(subscribe.pkid, codes)))
            }
            Packet::Unsubscribe(unsubscribe) => {
                if let Some(client) = self.lock().clients.get_mut(client_id) {
                    client
                        .subscriptions
                        .retain(|(f, _)| !unsubscribe.topics.contains(f));
                }
                Reply::Send(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
            }
            Packet::PingReq => Reply::Send(Packet::PingResp),
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) => Reply::Nothing,
            Packet::Disconnect => Reply::Disconnect,
            // A second CONNECT or a server's packet from a client breaks the protocol.
            _ => Reply::Close,
        }
    }

    /// Keeps a retained message and hands a publish to every matching subscriber. A
    /// subscriber whose queue is full holds the publisher back (so a burst is delivered,
    /// not dropped) for at most [`SLOW_CLIENT`]; then the message is dropped for it.
    async fn route(&self, publish: Publish) {
        let deliveries: Vec<(mpsc::Sender<Packet>, Packet)> = {
            let mut state = self.lock();
            if publish.retain {
                if publish.payload.is_empty() {
                    state.retained.remove(&publish.topic);
                } else {
                    state
                        .retained
                        .insert(publish.topic.clone(), publish.clone());
                }
            }
            state
                .clients
                .values_mut()
                .filter_map(|client| {
                    let granted = client
                        .subscriptions
                        .iter()
                        .filter(|(filter, _)| matches(filter, &publish.topic))
                        .map(|(_, qos)| *qos)
                        .reduce(|a, b| if a >= b { a } else { b })?;
                    let out = outgoing(client, publish.clone(), lower(granted, publish.qos), false);
                    Some((client.outgoing.clone(), out))
                })
                .collect()
        };
        for (queue, packet) in deliveries {
            if !matches!(
                tokio::time::timeout(SLOW_CLIENT, queue.send(packet)).await,
                Ok(Ok(()))
            ) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn device_topic(&self, device: &str, kind: &str) -> String {
        format!("{}/devices/{device}/{kind}", self.prefix)
    }

    fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        match identity {
            Identity::Gateway => true,
            Identity::Device(id) => ["telemetry", "status", "acks"]
                .iter()
                .any(|kind| topic == self.device_topic(id, kind)),
        }
    }

    fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool {
        match identity {
            Identity::Gateway => true,
            Identity::Device(id) => filter == self.device_topic(id, "commands"),
        }
    }
}

enum Reply {
    Send(Packet),
    Nothing,
    /// The client said DISCONNECT: no will.
    Disconnect,
    /// A protocol violation: close, publishing the will.
    Close,
}

/// The lower of two QoS levels.
fn lower(a: QoS, b: QoS) -> QoS {
    if a <= b { a } else { b }
}

/// The copy of `message` a client receives, with the next packet ID when at QoS 1.
fn outgoing(client: &mut Client, mut message: Publish, qos: QoS, retain: bool) -> Packet {
    message.qos = qos;
    message.retain = retain;
    message.dup = false;
    message.pkid = if qos == QoS::AtMostOnce {
        0
    } else {
        client.next_pkid = client.next_pkid.checked_add(1).unwrap_or(1);
        client.next_pkid
    };
    Packet::Publish(message)
}

/// Reads one packet; `Ok(None)` when the peer closed the connection.
async fn read_packet(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    max: usize,
) -> std::io::Result<Option<Packet>> {
    loop {
        match Packet::read(buffer, max) {
            Ok(packet) => return Ok(Some(packet)),
            Err(rumqttc::Error::InsufficientBytes(_)) => {}
            Err(err) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    err.to_string(),
                ));
            }
        }
        if stream.read_buf(buffer).await? == 0 {
            return Ok(None);
        }
    }
}

async fn write_packet(stream: &mut TcpStream, packet: &Packet) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(packet.size() + 5);
    packet
        .write(&mut out, usize::MAX)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    stream.write_all(&out).await
}

/// Topic names: non-empty, no wildcards.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// Topic filters: `+` fills a whole level, `#` only the last one.
fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i == levels.len() - 1,
        "+" => true,
        other => !other.contains(['+', '#']),
    })
}

/// Whether a topic filter matches a topic name (MQTT 3.1.1 section 4.7).
fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            exact => {
                if topic_levels.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_the_spec_says() {
        assert!(matches("a/b/c", "a/b/c"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/#", "a"), "# includes the parent level");
        assert!(matches("#", "a/b"));
        assert!(matches("+/+", "/x"), "empty levels count");
        assert!(!matches("#", "$SYS/x"), "wildcards skip $ topics");
        assert!(matches("$SYS/#", "$SYS/x"));
    }

    #[test]
    fn malformed_filters_and_topics_are_refused() {
        for good in ["a", "a/+/b", "a/#", "#", "+", "/"] {
            assert!(valid_filter(good), "{good}");
        }
        for bad in ["", "a/#/b", "a+", "a/b#", "#/a"] {
            assert!(!valid_filter(bad), "{bad}");
        }
        assert!(valid_topic("a/b") && !valid_topic("a/+") && !valid_topic(""));
    }

    #[test]
    fn devices_reach_only_their_own_topics() {
        let broker = Broker::new("cv", 1024, 10, Arc::new(|_: &str, _: &str| None));
        let kitchen = Identity::Device("kitchen".into());
        assert!(broker.may_publish(&kitchen, "cv/devices/kitchen/telemetry"));
        assert!(broker.may_publish(&kitchen, "cv/devices/kitchen/acks"));
        assert!(!broker.may_publish(&kitchen, "cv/devices/garage/telemetry"));
        assert!(!broker.may_publish(&kitchen, "cv/devices/kitchen/commands"));
        assert!(broker.may_subscribe(&kitchen, "cv/devices/kitchen/commands"));
        assert!(!broker.may_subscribe(&kitchen, "cv/devices/+/commands"));
        assert!(!broker.may_subscribe(&kitchen, "#"));
        assert!(broker.may_subscribe(&Identity::Gateway, "cv/devices/+/telemetry"));
    }
}
