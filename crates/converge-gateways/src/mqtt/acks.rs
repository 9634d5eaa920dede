//! Acknowledgements: a device's answer to a command (`{"id": <command event ID>, ...}` on
//! its `acks` topic) is posted as a reply to the command.

use serde_json::{Map, Value, json};

use super::Mqtt;
use crate::Stats;

impl Mqtt {
    /// A device's answer to a command: posted as a reply to the command's event.
    pub(super) async fn ack(&self, device_id: &str, mut ack: Map<String, Value>) {
        let Some(Value::String(command_id)) = ack.remove("id") else {
            return;
        };
        let Some((room, user)) = self.device_room(device_id) else {
            return;
        };
        let command = match self.context.services.stream.event(&command_id).await {
            Ok(Some((_, event))) if event.room_id == room => event,
            Ok(_) => {
                return self
                    .drop_input("ack for an unknown command", &self.topic(device_id, "acks"));
            }
            Err(err) => {
                Stats::add(&self.stats.errors);
                tracing::warn!(error = %err, "cannot look up a command");
                return;
            }
        };
        let failed = ack.get("ok") == Some(&Value::Bool(false)) || ack.contains_key("error");
        let detail = if ack.is_empty() {
            String::new()
        } else {
            format!(": `{}`", Value::Object(ack.clone()))
        };
        let text = format!(
            "{} **{device_id}** answered{detail}",
            if failed { "❌" } else { "✅" }
        );
        let extra = (
            "io.converge.device.ack",
            json!({ "device_id": device_id, "ack": ack }),
        );
        if let Err(err) = self
            .context
            .notice(&room, &user, &text, Some(&command.event_id), Some(extra))
            .await
        {
            Stats::add(&self.stats.errors);
            tracing::warn!(device = device_id, error = %err, "cannot post a device's answer");
        }
    }
}
