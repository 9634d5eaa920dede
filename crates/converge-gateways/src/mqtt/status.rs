//! Device status: `online`/`offline` messages (retained, and the device's last will)
//! update the state event at once and post a notice, at most a few a minute per device.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Mqtt, STATUS_NOTICES_PER_MINUTE};

impl Mqtt {
    /// An online/offline status: a change is written at once and announced.
    pub(super) fn on_status(self: &Arc<Self>, device_id: &str, online: bool) {
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        let Some(device) = devices.get_mut(device_id) else {
            return;
        };
        if device.online == Some(online) {
            return;
        }
        device.online = Some(online);
        device.dirty = true;
        let now = std::time::Instant::now();
        let notices = &mut device.status_notices;
        while notices
            .front()
            .is_some_and(|at| now.duration_since(*at) > Duration::from_secs(60))
        {
            notices.pop_front();
        }
        let announce = notices.len() < STATUS_NOTICES_PER_MINUTE;
        if announce {
            notices.push_back(now);
        }
        let (room, user) = (device.row.room_id.clone(), device.row.user_id.clone());
        let text = if online {
            format!("🟢 **{device_id}** is online")
        } else {
            format!("🔴 **{device_id}** is offline")
        };
        drop(devices);
        let mqtt = self.clone();
        let device_id = device_id.to_owned();
        tokio::spawn(async move {
            mqtt.flush_device(&device_id).await;
            if announce {
                mqtt.post_notice(&room, &user, &text, None).await;
            }
        });
    }
}

/// `online`/`offline` (also `1`/`0`, `true`/`false`, `{"online": bool}` or
/// `{"status": "online"}`).
pub(super) fn parse_status(json: Option<&Value>, raw: &[u8]) -> Option<bool> {
    match json {
        Some(Value::Bool(b)) => return Some(*b),
        Some(Value::Number(n)) => return n.as_i64().map(|n| n != 0),
        Some(Value::Object(o)) => {
            return o
                .get("online")
                .and_then(Value::as_bool)
                .or_else(|| parse_status(None, o.get("status")?.as_str()?.as_bytes()));
        }
        _ => {}
    }
    let text = std::str::from_utf8(raw)
        .ok()?
        .trim()
        .trim_matches('"')
        .to_ascii_lowercase();
    match text.as_str() {
        "online" | "up" | "connected" => Some(true),
        "offline" | "down" | "disconnected" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn status_payloads() {
        let parse =
            |raw: &str| parse_status(serde_json::from_str(raw).ok().as_ref(), raw.as_bytes());
        assert_eq!(parse("online"), Some(true));
        assert_eq!(parse("OFFLINE"), Some(false));
        assert_eq!(parse("\"online\""), Some(true));
        assert_eq!(parse("1"), Some(true));
        assert_eq!(parse("false"), Some(false));
        assert_eq!(parse(r#"{"online": true}"#), Some(true));
        assert_eq!(parse(r#"{"status": "offline"}"#), Some(false));
        assert_eq!(parse("maybe"), None);
        assert_eq!(parse("{}"), None);
    }
}
