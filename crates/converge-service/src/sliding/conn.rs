//! Sliding sync connections: what each (user, device, `conn_id`) has been sent, at each
//! position the client may still come back with.
//!
//! A position names a [`Snapshot`] of the connection. The server keeps the snapshot the
//! client last sent back and the one it answered with, so a request whose response was
//! lost can be repeated; an older or unknown position is answered with `M_UNKNOWN_POS`
//! and the client starts over. Connections live in memory, bounded in number per device
//! and in all, and are dropped when idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use converge_core::StreamPos;

use crate::token::SyncToken;

/// Connections one device may hold (the SDK uses one or two).
pub const MAX_PER_DEVICE: usize = 8;
/// Connections held in all; the least recently used is dropped beyond it.
pub const MAX_CONNECTIONS: usize = 20_000;
/// A connection unused for this long is dropped.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// Who a connection belongs to: another device, or another `conn_id`, is another
/// connection, so positions cannot be carried across.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub user: String,
    pub device: String,
    pub conn_id: String,
}

/// What a room's last response told the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentRoom {
    /// The stream position the room was sent up to.
    pub pos: StreamPos,
    /// The user's membership then (a change makes the room new to the client).
    pub membership: String,
    /// The configuration it was sent with (more asked for later sends the rest).
    pub config_hash: u64,
    /// The timeline limit it was sent with: a higher one later sends the latest events again
    /// (an expanded timeline), as a client opening the room asks for more than its list had.
    pub timeline_limit: u32,
    pub notifications: (u64, u64),
}

/// What the client knows at one position.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The streams as of the response; `None` before the first.
    pub token: Option<SyncToken>,
    pub rooms: HashMap<String, SentRoom>,
    /// Each list's room count as last sent.
    pub counts: HashMap<String, u64>,
}

struct Connection {
    /// (position, snapshot), oldest first; at most two.
    snapshots: Vec<(u64, Arc<Snapshot>)>,
    last_used: Instant,
}

/// Every connection of the server.
#[derive(Default)]
pub struct Connections {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    connections: HashMap<ConnKey, Connection>,
    next_pos: u64,
}

/// The outcome of looking a position up.
pub enum Lookup {
    Found(Arc<Snapshot>),
    Unknown,
}

impl Connections {
    /// The snapshot at `pos` of the connection (`None` starts it afresh, forgetting what
    /// it was sent).
    pub fn lookup(&self, key: &ConnKey, pos: Option<&str>) -> Lookup {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pos) = pos else {
            inner.connections.remove(key);
            return Lookup::Found(Arc::default());
        };
        let Ok(pos) = pos.parse::<u64>() else {
            return Lookup::Unknown;
        };
        let now = Instant::now();
        match inner.connections.get_mut(key) {
            Some(conn) if now.duration_since(conn.last_used) < IDLE => {
                conn.last_used = now;
                match conn.snapshots.iter().find(|(p, _)| *p == pos) {
                    Some((_, snapshot)) => Lookup::Found(snapshot.clone()),
                    None => Lookup::Unknown,
                }
            }
            _ => Lookup::Unknown,
        }
    }

    /// Records the snapshot a response from `base` produced and returns its position.
    /// Only `base` and the new snapshot are kept.
    pub fn record(&self, key: &ConnKey, base: Option<&str>, snapshot: Snapshot) -> String {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_pos += 1;
        let pos = inner.next_pos;
        let base: Option<u64> = base.and_then(|b| b.parse().ok());
        let now = Instant::now();
        if !inner.connections.contains_key(key) {
            inner.make_room_for(key, now);
        }
        let conn = inner
            .connections
            .entry(key.clone())
            .or_insert_with(|| Connection {
                snapshots: Vec::new(),
                last_used: now,
            });
        conn.last_used = now;
        conn.snapshots.retain(|(p, _)| Some(*p) == base);
        conn.snapshots.push((pos, Arc::new(snapshot)));
        pos.to_string()
    }

    /// Forgets a device's connections (it logged out).
    pub fn drop_device(&self, user: &str, device: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .connections
            .retain(|k, _| !(k.user == user && k.device == device));
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connections
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Before a new connection of `key`: drops idle connections, the device's least
    /// recently used one beyond [`MAX_PER_DEVICE`] and the server's beyond
    /// [`MAX_CONNECTIONS`].
    fn make_room_for(&mut self, key: &ConnKey, now: Instant) {
        if self.connections.len() >= MAX_CONNECTIONS / 2 {
            self.connections
                .retain(|_, c| now.duration_since(c.last_used) < IDLE);
        }
        let oldest = |conns: &HashMap<ConnKey, Connection>, same_device: bool| {
            conns
                .iter()
                .filter(|(k, _)| !same_device || (k.user == key.user && k.device == key.device))
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone())
        };
        let of_device = self
            .connections
            .keys()
            .filter(|k| k.user == key.user && k.device == key.device)
            .count();
        if of_device >= MAX_PER_DEVICE
            && let Some(k) = oldest(&self.connections, true)
        {
            self.connections.remove(&k);
        }
        if self.connections.len() >= MAX_CONNECTIONS
            && let Some(k) = oldest(&self.connections, false)
        {
            self.connections.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(device: &str, conn: &str) -> ConnKey {
        ConnKey {
            user: "@a:x".into(),
            device: device.into(),
            conn_id: conn.into(),
        }
    }

    fn found(lookup: Lookup) -> Option<Arc<Snapshot>> {
        match lookup {
            Lookup::Found(s) => Some(s),
            Lookup::Unknown => None,
        }
    }

    #[test]
    fn positions_are_per_connection_and_the_last_two_are_kept() {
        let conns = Connections::default();
        let k = key("D", "room-list");
        assert!(found(conns.lookup(&k, None)).unwrap().token.is_none());
        let p1 = conns.record(&k, None, Snapshot::default());
        let p2 = conns.record(&k, Some(&p1), Snapshot::default());
        // The response to p1 may have been lost: p1 still works, and so does p2.
        assert!(found(conns.lookup(&k, Some(&p1))).is_some());
        assert!(found(conns.lookup(&k, Some(&p2))).is_some());
        let p3 = conns.record(&k, Some(&p2), Snapshot::default());
        assert!(found(conns.lookup(&k, Some(&p1))).is_none(), "p1 is gone");
        assert!(found(conns.lookup(&k, Some(&p3))).is_some());
        // Another device or conn_id cannot use these positions.
        assert!(found(conns.lookup(&key("E", "room-list"), Some(&p3))).is_none());
        assert!(found(conns.lookup(&key("D", "encryption"), Some(&p3))).is_none());
        assert!(found(conns.lookup(&k, Some("not a number"))).is_none());
        // Starting over forgets the connection.
        assert!(found(conns.lookup(&k, None)).is_some());
        assert!(found(conns.lookup(&k, Some(&p3))).is_none());
    }

    #[test]
    fn a_device_holds_a_bounded_number_of_connections() {
        let conns = Connections::default();
        let first = conns.record(&key("D", "c0"), None, Snapshot::default());
        for i in 1..=MAX_PER_DEVICE {
            conns.record(&key("D", &format!("c{i}")), None, Snapshot::default());
        }
        assert_eq!(conns.len(), MAX_PER_DEVICE);
        assert!(found(conns.lookup(&key("D", "c0"), Some(&first))).is_none());
        conns.drop_device("@a:x", "D");
        assert!(conns.is_empty());
    }
}
