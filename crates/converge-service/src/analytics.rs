//! Analytics for server admins: messages per day and per room, daily and monthly active
//! users, media stored, and the gateways' traffic per day.
//!
//! The store keeps the figures as the server goes (per room and day by the ordered writer,
//! active users with each device's last-seen time), so a report reads small tables by day.
//! Gateway traffic is counted here in memory and added to the store's daily counters every
//! few seconds and at shutdown: a crash loses at most those seconds of counts, never data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use converge_store::{DAY_MS, DayCount, Store};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::admin::require_admin;
use crate::caller::Caller;
use crate::error::Result;
use crate::rooms::Rooms;

/// The gateway counters a report shows, in order.
pub const GATEWAY_COUNTERS: [&str; 5] = [
    "hook_posts",
    "device_samples",
    "commands",
    "deliveries",
    "delivery_failures",
];
/// How often counted traffic is stored.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// The longest report, in days.
const MAX_DAYS: u32 = 366;
/// Rooms in the top list and the per-room chart.
const TOP_ROOMS: u32 = 10;

pub struct Analytics {
    store: Store,
    rooms: Arc<Rooms>,
    /// Counts not stored yet, by day and name.
    pending: Mutex<HashMap<(i64, &'static str), i64>>,
}

impl Analytics {
    pub fn new(store: Store, rooms: Arc<Rooms>) -> Self {
        Self {
            store,
            rooms,
            pending: Mutex::default(),
        }
    }

    /// Counts `n` of something a gateway did today (one of [`GATEWAY_COUNTERS`]).
    pub fn count(&self, name: &'static str, n: i64) {
        let day = crate::now_ms().div_euclid(DAY_MS);
        *self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((day, name))
            .or_default() += n;
    }

    /// Stores the counts so far. Counts that cannot be stored now are kept for next time.
    pub async fn flush(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() {
            return;
        }
        let counts: Vec<(i64, &str, i64)> = pending
            .iter()
            .map(|(&(day, name), &n)| (day, name, n))
            .collect();
        if let Err(err) = self.store.add_counters(&counts).await {
            tracing::warn!(error = %err, "could not store the gateway counters; keeping them");
            let mut kept = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (key, n) in pending {
                *kept.entry(key).or_default() += n;
            }
        }
    }

    /// Stores the counts every few seconds until `stop`, then once more.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
                _ = stop.changed() => {}
            }
            self.flush().await;
        }
    }

    /// `GET /_converge/admin/v1/analytics?days=`: the last `days` days, today included.
    pub async fn report(&self, caller: &Caller, days: Option<u32>) -> Result<Value> {
        require_admin(caller)?;
        self.flush().await;
        let days = days.unwrap_or(30).clamp(1, MAX_DAYS);
        let today = crate::now_ms().div_euclid(DAY_MS);
        let from = today - i64::from(days) + 1;
        let series = |counts: Vec<DayCount>| {
            let by_day: HashMap<i64, i64> = counts.into_iter().map(|c| (c.day, c.count)).collect();
            (from..=today)
                .map(|day| json!({ "day": date(day), "count": by_day.get(&day).copied().unwrap_or(0) }))
                .collect::<Vec<_>>()
        };
        let mut top_rooms = Vec::new();
        let mut per_room = Vec::new();
        for (room_id, messages) in self.store.top_rooms(from, TOP_ROOMS).await? {
            for day in self.store.room_messages_per_day(&room_id, from).await? {
                per_room
                    .push(json!({ "day": date(day.day), "room_id": room_id, "count": day.count }));
            }
            let name = self
                .rooms
                .snapshot(&room_id, |room| {
                    room.get("m.room.name", "")
                        .and_then(|e| e.content.get("name"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .await
                .ok()
                .flatten();
            top_rooms.push(json!({ "room_id": room_id, "name": name, "messages": messages }));
        }
        let mut gateways: HashMap<&str, Vec<DayCount>> = HashMap::new();
        for (day, name, count) in self.store.counters(from).await? {
            if let Some(known) = GATEWAY_COUNTERS.iter().find(|n| **n == name) {
                gateways
                    .entry(known)
                    .or_default()
                    .push(DayCount { day, count });
            }
        }
        let gateways: serde_json::Map<String, Value> = GATEWAY_COUNTERS
            .iter()
            .map(|name| {
                let counts = gateways.remove(name).unwrap_or_default();
                ((*name).to_owned(), json!(series(counts)))
            })
            .collect();
        let (media_count, media_bytes) = self.store.media_totals().await?;
        Ok(json!({
            "days": days,
            "from": date(from),
            "to": date(today),
            "messages_per_day": series(self.store.messages_per_day(from).await?),
            "messages_per_room_per_day": per_room,
            "daily_active_users": series(self.store.daily_active_users(from).await?),
            "monthly_active_users": self.store.active_users_since(today - 29).await?,
            "media": { "count": media_count, "bytes": media_bytes },
            "gateways": gateways,
            "top_rooms": top_rooms,
        }))
    }
}

/// A day since the Unix epoch as `YYYY-MM-DD` (the proleptic Gregorian calendar, UTC).
fn date(day: i64) -> String {
    // Howard Hinnant's days-to-civil: eras of 400 years, each 146,097 days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(59), "1970-03-01");
        assert_eq!(date(11_016), "2000-02-29");
        assert_eq!(date(20_788), "2026-12-01");
        assert_eq!(date(-1), "1969-12-31");
    }
}
