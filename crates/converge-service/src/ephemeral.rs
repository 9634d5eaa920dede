//! Typing notifications and presence: kept in memory, never persisted.
//!
//! Both advance one ephemeral serial, the second half of a sync token, so a sync knows
//! whether anything changed since the client's last token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::now_ms;

/// The longest a typing notification lasts without being renewed.
pub const MAX_TYPING: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct Presence {
    pub state: String,
    pub status_msg: Option<String>,
    pub last_active_ms: i64,
    /// The serial at which this presence last changed.
    pub serial: i64,
}

impl Presence {
    /// The `content` of an `m.presence` event.
    pub fn content(&self) -> Value {
        let mut content = json!({
            "presence": self.state,
            "last_active_ago": (now_ms() - self.last_active_ms).max(0),
            "currently_active": self.state == "online",
        });
        if let Some(msg) = &self.status_msg {
            content["status_msg"] = json!(msg);
        }
        content
    }
}

#[derive(Default)]
struct State {
    serial: i64,
    /// room → user → when their typing ends.
    typing: HashMap<String, HashMap<String, Instant>>,
    /// room → the serial at which its typing set last changed.
    typing_changed: HashMap<String, i64>,
    presence: HashMap<String, Presence>,
}

pub struct Ephemeral {
    state: Mutex<State>,
    /// The rooms whose typing set changes, for followers other than syncs (appservices).
    typing_changes: tokio::sync::broadcast::Sender<String>,
}

impl Default for Ephemeral {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            typing_changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl Ephemeral {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells of every room whose typing set changes (a lagging receiver misses some).
    pub fn subscribe_typing(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.typing_changes.subscribe()
    }

    /// The current ephemeral serial.
    pub fn serial(&self) -> i64 {
        self.lock().serial
    }

    /// Starts or stops `user` typing in `room`. Returns whether anything changed.
    pub fn set_typing(&self, room: &str, user: &str, typing: bool, timeout: Duration) -> bool {
        let mut state = self.lock();
        let users = state.typing.entry(room.to_owned()).or_default();
        let changed = if typing {
            users
                .insert(user.to_owned(), Instant::now() + timeout.min(MAX_TYPING))
                .is_none()
        } else {
            users.remove(user).is_some()
        };
        if changed {
            state.serial += 1;
            let serial = state.serial;
            state.typing_changed.insert(room.to_owned(), serial);
            // Nobody listening is fine.
            let _ = self.typing_changes.send(room.to_owned());
        }
        changed
    }

    /// Who is typing in `room`, if that changed after `since` (always for `since = 0`).
    pub fn typing(&self, room: &str, since: i64) -> Option<Vec<String>> {
        let mut state = self.lock();
        let now = Instant::now();
        let mut expired = false;
        if let Some(users) = state.typing.get_mut(room) {
            let before = users.len();
            users.retain(|_, until| *until > now);
            expired = users.len() != before;
        }
        if expired {
            state.serial += 1;
            let serial = state.serial;
            state.typing_changed.insert(room.to_owned(), serial);
            let _ = self.typing_changes.send(room.to_owned());
        }
        let changed = state.typing_changed.get(room).copied().unwrap_or(0);
        if since != 0 && changed <= since {
            return None;
        }
        let mut users: Vec<String> = state
            .typing
            .get(room)
            .map(|u| u.keys().cloned().collect())
            .unwrap_or_default();
        users.sort();
        Some(users)
    }

    /// Sets a user's presence. Returns whether it changed (a refresh of `last_active`
    /// alone is not a change worth waking anyone for).
    pub fn set_presence(
        &self,
        user: &str,
        presence: &str,
        status_msg: Option<Option<String>>,
    ) -> bool {
        let mut state = self.lock();
        let serial = state.serial + 1;
        let now = now_ms();
        let entry = state
            .presence
            .entry(user.to_owned())
            .or_insert_with(|| Presence {
                state: "offline".into(),
                status_msg: None,
                last_active_ms: now,
                serial: 0,
            });
        let mut changed = entry.state != presence;
        entry.state = presence.to_owned();
        if presence == "online" {
            entry.last_active_ms = now;
        }
        if let Some(msg) = status_msg {
            changed |= entry.status_msg != msg;
            entry.status_msg = msg;
        }
        if changed {
            entry.serial = serial;
            state.serial = serial;
        }
        changed
    }

    /// A user's presence (offline if never seen).
    pub fn presence(&self, user: &str) -> Presence {
        self.lock().presence.get(user).cloned().unwrap_or(Presence {
            state: "offline".into(),
            status_msg: None,
            last_active_ms: 0,
            serial: 0,
        })
    }

    /// Presence of `users` that changed after `since`.
    pub fn presence_since<'a>(
        &self,
        users: impl Iterator<Item = &'a str>,
        since: i64,
    ) -> Vec<(String, Presence)> {
        let state = self.lock();
        users
            .filter_map(|user| {
                state
                    .presence
                    .get(user)
                    .filter(|p| p.serial > since)
                    .map(|p| (user.to_owned(), p.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_changes_advance_the_serial() {
        let eph = Ephemeral::default();
        assert_eq!(eph.typing("!r", 0), Some(vec![]));
        assert!(eph.set_typing("!r", "@a", true, Duration::from_secs(30)));
        let serial = eph.serial();
        assert_eq!(eph.typing("!r", 0), Some(vec!["@a".to_owned()]));
        assert_eq!(
            eph.typing("!r", serial),
            None,
            "nothing new since the client's serial"
        );
        assert!(
            !eph.set_typing("!r", "@a", true, Duration::from_secs(30)),
            "renewing is no change"
        );
        assert!(eph.set_typing("!r", "@a", false, Duration::ZERO));
        assert_eq!(eph.typing("!r", serial), Some(vec![]));
    }

    #[test]
    fn typing_expires() {
        let eph = Ephemeral::default();
        eph.set_typing("!r", "@a", true, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(eph.typing("!r", 0), Some(vec![]));
    }

    #[test]
    fn presence_changes_are_reported_once() {
        let eph = Ephemeral::default();
        assert_eq!(eph.presence("@a").state, "offline");
        assert!(eph.set_presence("@a", "online", None));
        let serial = eph.serial();
        assert!(!eph.set_presence("@a", "online", None));
        assert_eq!(eph.presence_since(["@a", "@b"].into_iter(), 0).len(), 1);
        assert!(eph.presence_since(["@a"].into_iter(), serial).is_empty());
        assert!(eph.set_presence("@a", "online", Some(Some("busy".into()))));
        assert_eq!(eph.presence("@a").content()["status_msg"], "busy");
    }
}
