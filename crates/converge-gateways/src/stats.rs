//! What each gateway counts (for `/metrics` and health), and a throttle so a flood of bad
//! input is logged once per interval, not once per message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A gateway's counters.
pub struct Stats {
    pub name: &'static str,
    /// Messages that came in from the foreign side (webhook POSTs, MQTT publishes).
    pub messages_in: AtomicU64,
    /// Messages sent out to the foreign side (deliveries, MQTT commands).
    pub messages_out: AtomicU64,
    pub errors: AtomicU64,
    /// Inputs dropped as malformed, oversized or unknown.
    pub dropped: AtomicU64,
    /// For gateways holding a connection: whether it is up.
    connected: Option<AtomicBool>,
}

impl Stats {
    pub fn new(name: &'static str, has_connection: bool) -> Self {
        Self {
            name,
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            connected: has_connection.then(|| AtomicBool::new(false)),
        }
    }

    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_connected(&self, up: bool) {
        if let Some(connected) = &self.connected {
            connected.store(up, Ordering::Relaxed);
        }
    }

    pub fn connected(&self) -> Option<bool> {
        self.connected.as_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// The counters as `(metric suffix, help, value)`.
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 4] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "messages_in_total",
                "Messages received from outside.",
                get(&self.messages_in),
            ),
            (
                "messages_out_total",
                "Messages sent outside.",
                get(&self.messages_out),
            ),
            (
                "errors_total",
                "Errors while handling messages.",
                get(&self.errors),
            ),
            (
                "dropped_total",
                "Inputs dropped as malformed, oversized or unknown.",
                get(&self.dropped),
            ),
        ]
    }

    /// This gateway's health report and whether it is well.
    pub fn health(&self) -> (Value, bool) {
        let ok = self.connected().unwrap_or(true);
        let mut report = json!({ "ok": ok });
        for (name, _, value) in self.counters() {
            report[name.trim_end_matches("_total")] = json!(value);
        }
        if let Some(connected) = self.connected() {
            report["connected"] = json!(connected);
        }
        (report, ok)
    }
}

/// Lets one log line per reason through per interval, and says how many were held back.
pub struct LogThrottle {
    interval: Duration,
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::default(),
        }
    }

    /// `Some(suppressed since the last line)` if a line for `reason` may be logged now.
    pub fn allow(&self, reason: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(reason) {
            Some((at, suppressed)) if now.duration_since(*at) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let held = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(held)
            }
            None => {
                last.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_line_through_per_interval() {
        let throttle = LogThrottle::new(Duration::from_millis(50));
        assert_eq!(throttle.allow("bad json"), Some(0));
        assert_eq!(throttle.allow("bad json"), None);
        assert_eq!(throttle.allow("bad json"), None);
        assert_eq!(throttle.allow("too big"), Some(0), "reasons are separate");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(throttle.allow("bad json"), Some(2));
    }

    #[test]
    fn health_follows_the_connection() {
        let stats = Stats::new("mqtt", true);
        assert!(!stats.health().1);
        stats.set_connected(true);
        Stats::add(&stats.dropped);
        let (report, ok) = stats.health();
        assert!(ok);
        assert_eq!(report["dropped"], 1);
        assert_eq!(report["connected"], true);
        assert!(Stats::new("webhooks", false).health().1);
    }
}
