//! The device registry and what people do with devices: `!device add|list|remove`,
//! commands, alert rules, and reading telemetry back. Chat and the admin API share these.

use serde_json::{Value, json};

use converge_service::ids::random_id;
use converge_service::rooms::NewEvent;
use converge_service::{Error, Result, now_ms};

use super::tables::{DeviceRow, TelemetryRow};
use super::{Alert, COMMAND_EVENT, Mqtt, STATE_EVENT, password_hash};
use crate::Actor;

/// Most alert rules per device.
const MAX_ALERTS: usize = 20;
/// Most samples one telemetry read returns.
pub const MAX_TELEMETRY_READ: u32 = 10_000;

/// Device IDs: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit, so they are
/// valid in user IDs and in MQTT topics.
pub fn valid_device_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

impl Mqtt {
    /// Registers a device in a room: its virtual user joins (invited by `actor`) and is
    /// given the power to update the device's state event. Returns the device and its
    /// password for the embedded broker (shown once; only its hash is kept).
    pub async fn add_device(
        &self,
        room_id: &str,
        actor: Actor<'_>,
        device_id: &str,
    ) -> Result<(DeviceRow, String)> {
        self.context.authorize(room_id, actor).await?;
        if !valid_device_id(device_id) {
            return Err(Error::InvalidParam(
                "a device ID is 1-64 characters of a-z, 0-9, '.', '_' and '-'".into(),
            ));
        }
        let store = &self.store;
        if store.device(device_id).await?.is_some() {
            return Err(Error::InvalidParam(format!(
                "device {device_id} is already registered"
            )));
        }
        let user_id = self
            .context
            .virtual_user(&format!("device-{device_id}"), device_id)
            .await?;
        self.context
            .bring_in(room_id, actor.user_id, &user_id)
            .await?;
        self.grant_state_power(room_id, actor.user_id, &user_id)
            .await?;
        let password = random_id(32);
        let row = DeviceRow {
            device_id: device_id.to_owned(),
            room_id: room_id.to_owned(),
            user_id,
            alerts: "[]".into(),
            secret_hash: Some(password_hash(&password)),
            created_by: actor.user_id.to_owned(),
            created_ts: now_ms(),
        };
        store.insert_device(&row).await?;
        self.load_device(row.clone()).await;
        tracing::info!(
            device = device_id,
            room = room_id,
            by = actor.user_id,
            "device added"
        );
        Ok((row, password))
    }

    /// Raises `user` to the level the device state event needs, as `actor` (whose own
    /// power the room's auth rules check). A room without a level for device commands
    /// gets one: the same level, so by default only moderators command devices.
    async fn grant_state_power(&self, room_id: &str, actor: &str, user: &str) -> Result<()> {
        let rooms = &self.context.services.rooms;
        let (needed, has, content) = rooms
            .snapshot(room_id, |room| {
                let levels = converge_core::auth::current_power_levels(room.version, room).ok()?;
                let content = room
                    .get("m.room.power_levels", "")
                    .map(|e| e.content.clone())?;
                Some((
                    levels.event_level(STATE_EVENT, true),
                    levels.user_level(user),
                    content,
                ))
            })
            .await?
            .ok_or_else(|| Error::forbidden("the room has no power levels to grant the device"))?;
        let command_level_set = content["events"].get(COMMAND_EVENT).is_some();
        if has >= needed && command_level_set {
            return Ok(());
        }
        let mut content = content;
        for map in ["users", "events"] {
            if !content[map].is_object() {
                content[map] = json!({});
            }
        }
        if has < needed {
            content["users"][user] = json!(needed);
        }
        if !command_level_set {
            content["events"][COMMAND_EVENT] = json!(needed);
        }
        rooms
            .send(room_id, actor, NewEvent::state("m.room.power_levels", "", content))
            .await
            .map_err(|err| match err {
                Error::Forbidden(reason) => Error::forbidden(format!(
                    "the device needs power level {needed} to post its state, and you cannot grant it: {reason}"
                )),
                other => other,
            })?;
        Ok(())
    }

    pub async fn devices(&self, room_id: &str, actor: Actor<'_>) -> Result<Vec<DeviceRow>> {
        self.context.authorize(room_id, actor).await?;
        self.store.devices(Some(room_id)).await
    }

    /// Unregisters a device; its virtual user leaves the room and its telemetry is deleted.
    pub async fn remove_device(
        &self,
        device_id: &str,
        actor: Actor<'_>,
        in_room: Option<&str>,
    ) -> Result<()> {
        let store = &self.store;
        let row = store
            .device(device_id)
            .await?
            .filter(|d| in_room.is_none_or(|room| d.room_id == room))
            .ok_or_else(|| Error::NotFound("no such device".into()))?;
        self.context.authorize(&row.room_id, actor).await?;
        store.delete_device(device_id).await?;
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(device_id);
        if let Some(broker) = &self.broker {
            broker.revoke(device_id);
        }
        // Samples still buffered must not outlive the device.
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| s.device_id != device_id);
        if let Err(err) = self
            .context
            .services
            .rooms
            .leave(&row.room_id, &row.user_id, None)
            .await
        {
            tracing::warn!(device = device_id, error = %err, "a removed device's user could not leave");
        }
        tracing::info!(device = device_id, by = actor.user_id, "device removed");
        Ok(())
    }

    /// A device's samples between `from` and `to` (ms), for a member of its room.
    pub async fn telemetry(
        &self,
        user_id: &str,
        device_id: &str,
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<TelemetryRow>> {
        let store = &self.store;
        let row = store
            .device(device_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such device".into()))?;
        let member = self
            .context
            .services
            .rooms
            .require_joined(&row.room_id, user_id)
            .await;
        if member.is_err() {
            // Not revealing whether the device exists to outsiders.
            return Err(Error::NotFound("no such device".into()));
        }
        store
            .telemetry(device_id, from, to, limit.min(MAX_TELEMETRY_READ))
            .await
    }

    /// Sends a command to a device bound to `room_id`, if `sender` may command devices
    /// there (the power to send `io.converge.device.command`).
    pub async fn send_command(
        &self,
        room_id: &str,
        sender: &str,
        command_event_id: &str,
        device_id: &str,
        command: &str,
        args: Value,
    ) -> Result<()> {
        if self
            .device_room(device_id)
            .is_none_or(|(room, _)| room != room_id)
        {
            return Err(Error::NotFound(format!(
                "there is no device {device_id} in this room"
            )));
        }
        if !self
            .context
            .may_send(room_id, sender, COMMAND_EVENT, false)
            .await?
        {
            return Err(Error::forbidden(
                "you do not have the power to command devices in this room",
            ));
        }
        if command.is_empty() || command.len() > 100 {
            return Err(Error::InvalidParam(
                "a command is a word of at most 100 characters".into(),
            ));
        }
        self.publish_command(device_id, command, args, command_event_id)
            .await
    }

    /// An `io.converge.device.command` event: `{"device_id", "command", "args"}`.
    pub async fn command_event(
        &self,
        room_id: &str,
        sender: &str,
        event_id: &str,
        content: &Value,
    ) -> Result<()> {
        let device_id = content["device_id"].as_str().unwrap_or_default();
        let command = content["command"].as_str().unwrap_or_default();
        let args = content.get("args").cloned().unwrap_or(Value::Null);
        self.send_command(room_id, sender, event_id, device_id, command, args)
            .await
    }

    /// `!device ...` in a room.
    pub async fn command(
        &self,
        room_id: &str,
        sender: &str,
        event_id: &str,
        args: &str,
    ) -> Result<String> {
        let actor = Actor {
            user_id: sender,
            server_admin: false,
        };
        let mut words = args.split_whitespace();
        let first = words.next().unwrap_or_default();
        let second = words.next();
        match (first, second) {
            ("add", Some(id)) => {
                let (row, password) = self.add_device(room_id, actor, id).await?;
                if let Some(addr) = self.embedded_broker() {
                    let login = format!(
                        "Device `{id}` (in {room_id}) logs in to the MQTT broker at `{addr}` (port {}) with username `{id}` and password `{password}`.",
                        addr.port()
                    );
                    self.context.tell_privately(sender, &login).await?;
                }
                Ok(format!(
                    "Device `{id}` added as {}. It publishes JSON to `{}`, its status to `{}` and receives commands on `{}`.{}",
                    row.user_id,
                    self.topic(id, "telemetry"),
                    self.topic(id, "status"),
                    self.topic(id, "commands"),
                    if self.embedded_broker().is_some() {
                        " I sent you its MQTT password in a direct message."
                    } else {
                        ""
                    }
                ))
            }
            ("remove", Some(id)) => {
                self.remove_device(id, actor, Some(room_id)).await?;
                Ok(format!("Device `{id}` removed."))
            }
            ("list", None) => {
                let rows = self.devices(room_id, actor).await?;
                if rows.is_empty() {
                    return Ok("This room has no devices.".into());
                }
                let devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
                let lines: Vec<String> = rows
                    .iter()
                    .map(|row| {
                        let d = devices.get(&row.device_id);
                        let online = match d.and_then(|d| d.online) {
                            Some(true) => "online",
                            Some(false) => "offline",
                            None => "never seen",
                        };
                        let values = d.map(|d| Value::Object(d.values.clone()).to_string()).unwrap_or_default();
                        format!("- `{}` ({online}) {values}", row.device_id)
                    })
                    .collect();
                Ok(format!("Devices:\n{}", lines.join("\n")))
            }
            (id, Some("alert")) | (id, Some("alerts")) => {
                let rest = args.splitn(3, char::is_whitespace).nth(2).map(str::trim).unwrap_or_default();
                self.alert_command(room_id, actor, id, second == Some("alerts") && rest.is_empty(), rest).await
            }
            (id, Some(command)) => {
                let rest = args
                    .splitn(3, char::is_whitespace)
                    .nth(2)
                    .map(str::trim)
                    .unwrap_or_default();
                let args = if rest.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(rest)
                        .map_err(|_| Error::BadJson("command arguments must be JSON, e.g. {\"level\": 3}".into()))?
                };
                self.send_command(room_id, sender, event_id, id, command, args).await?;
                Ok(format!("➡️ Sent `{command}` to `{id}`."))
            }
            _ => Err(Error::InvalidParam(
                "usage: !device add <id> | list | remove <id> | <id> <command> [json args] | <id> alert <field> <op> <number> | <id> alerts | <id> alert clear".into(),
            )),
        }
    }

    /// `!device <id> alert <rule>`, `... alerts` (list) and `... alert clear`.
    async fn alert_command(
        &self,
        room_id: &str,
        actor: Actor<'_>,
        device_id: &str,
        list: bool,
        rest: &str,
    ) -> Result<String> {
        let store = &self.store;
        let row = store
            .device(device_id)
            .await?
            .filter(|d| d.room_id == room_id)
            .ok_or_else(|| {
                Error::NotFound(format!("there is no device {device_id} in this room"))
            })?;
        let mut alerts: Vec<Alert> = serde_json::from_str(&row.alerts).unwrap_or_default();
        if list {
            if alerts.is_empty() {
                return Ok(format!("`{device_id}` has no alerts."));
            }
            let lines: Vec<String> = alerts.iter().map(|a| format!("- {a}")).collect();
            return Ok(format!("Alerts of `{device_id}`:\n{}", lines.join("\n")));
        }
        self.context.authorize(room_id, actor).await?;
        let answer = if rest == "clear" {
            alerts.clear();
            format!("Alerts of `{device_id}` cleared.")
        } else {
            let alert = Alert::parse(rest).map_err(Error::InvalidParam)?;
            if alerts.len() >= MAX_ALERTS {
                return Err(Error::InvalidParam(format!(
                    "a device has at most {MAX_ALERTS} alerts"
                )));
            }
            let answer = format!("Alert added: `{device_id}` {alert}.");
            alerts.push(alert);
            answer
        };
        self.store_alerts(device_id, alerts).await?;
        Ok(answer)
    }

    /// `PUT /_converge/admin/v1/devices/{device_id}/alerts`: replaces a device's alert
    /// rules, for whoever may change its room's state.
    pub async fn replace_alerts(
        &self,
        device_id: &str,
        actor: Actor<'_>,
        alerts: Vec<Alert>,
    ) -> Result<()> {
        let row = self
            .store
            .device(device_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no device {device_id}")))?;
        self.context.authorize(&row.room_id, actor).await?;
        if alerts.len() > MAX_ALERTS {
            return Err(Error::InvalidParam(format!(
                "a device has at most {MAX_ALERTS} alerts"
            )));
        }
        for alert in &alerts {
            alert.check().map_err(Error::InvalidParam)?;
        }
        self.store_alerts(device_id, alerts).await
    }

    /// Stores a device's alert rules and starts evaluating them afresh.
    async fn store_alerts(&self, device_id: &str, alerts: Vec<Alert>) -> Result<()> {
        let json = serde_json::to_string(&alerts).map_err(Error::internal)?;
        self.store.set_alerts(device_id, &json).await?;
        if let Some(device) = self
            .devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(device_id)
        {
            device.alert_state = vec![None; alerts.len()];
            device.alerts = alerts;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_topic_and_localpart_safe() {
        for good in ["kitchen", "k1", "sensor-2.b_c", &"a".repeat(64)] {
            assert!(valid_device_id(good), "{good}");
        }
        for bad in [
            "",
            "Kitchen",
            "a/b",
            "a+b",
            "a#",
            "-x",
            "a b",
            &"a".repeat(65),
            "ü",
        ] {
            assert!(!valid_device_id(bad), "{bad}");
        }
    }
}
