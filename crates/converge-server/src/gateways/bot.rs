//! The gateway bot: accepts invites, reads the rooms it is in, and hands `!webhook ...`
//! and `!device ...` messages (and `io.converge.device.command` events) to the gateway
//! they name, answering in the room.
//!
//! Commands run at most once: the bot stores its position before it acts on a batch, so
//! a crash never repeats a command (an admin may have to repeat one instead).

use std::sync::Arc;
use std::time::Duration;

use converge_core::PersistedEvent;
use serde_json::Value;
use tokio::sync::watch;

use super::feed::Feed;
use super::{Context, Gateways, mqtt};
use crate::error::{Error, Result};

const HELP: &str = "I manage this room's gateways. Commands (changing them needs the power to change room state):\n\
- `!webhook new [signed]`, `!webhook list`, `!webhook revoke <id>`: incoming webhooks\n\
- `!webhook subscribe <url> [types=<t1,t2>] [prefix=<text>|regex=<re>]`, `!webhook subscriptions`, `!webhook unsubscribe <id>`: outgoing webhooks\n\
- `!device add <id>`, `!device list`, `!device remove <id>`: MQTT devices\n\
- `!device <id> <command> [json args]`: send a command to a device (needs the power to send `io.converge.device.command`)\n\
- `!device <id> alert <field> <op> <number>`, `!device <id> alerts`, `!device <id> alert clear`: alerts";

pub async fn run(gateways: Arc<Gateways>, mut stop: watch::Receiver<bool>) {
    let context = gateways.context.clone();
    let mut feed = loop {
        match Feed::open(context.clone(), "bot").await {
            Ok(feed) => break feed,
            Err(err) => {
                tracing::warn!(error = %err, "the gateway bot cannot start; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    while let Some(batch) = feed.next(&mut stop).await {
        let Some((last, _)) = batch.last() else {
            continue;
        };
        if let Err(err) = feed.advance(*last).await {
            tracing::warn!(error = %err, "the gateway bot cannot store its position");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        for (_, event) in &batch {
            handle(&gateways, &context, event).await;
        }
    }
}

async fn handle(gateways: &Gateways, context: &Context, event: &PersistedEvent) {
    let Ok(pdu) = serde_json::from_str::<Value>(&event.json) else {
        return;
    };
    let content = &pdu["content"];
    match event.event_type.as_str() {
        "m.room.member" => {
            let invited = event.state_key.as_deref() == Some(context.bot.as_str())
                && content["membership"] == "invite";
            if invited
                && let Err(err) = context
                    .services
                    .rooms
                    .join(&event.room_id, &context.bot, None)
                    .await
            {
                tracing::warn!(room = %event.room_id, error = %err, "the gateway bot cannot join");
            }
        }
        "m.room.message" if !context.services.accounts.is_virtual(&event.sender) => {
            let Some(body) = content["body"].as_str() else {
                return;
            };
            let Some((word, args)) = parse_command(body) else {
                return;
            };
            let result = match word {
                "webhook" => {
                    gateways
                        .webhooks
                        .command(&event.room_id, &event.sender, args)
                        .await
                }
                "device" => match &gateways.mqtt {
                    Some(mqtt) => {
                        mqtt.command(&event.room_id, &event.sender, &event.event_id, args)
                            .await
                    }
                    None => Err(Error::forbidden(
                        "the MQTT gateway is not enabled on this server",
                    )),
                },
                "converge" | "help" => Ok(HELP.to_owned()),
                _ => return,
            };
            reply(context, event, result).await;
        }
        mqtt::COMMAND_EVENT if !context.services.accounts.is_virtual(&event.sender) => {
            let Some(mqtt) = &gateways.mqtt else { return };
            let result = mqtt
                .command_event(&event.room_id, &event.sender, &event.event_id, content)
                .await;
            if result.is_err() {
                reply(context, event, result).await;
            }
        }
        _ => {}
    }
}

/// Answers a command in its room, as a reply to it.
async fn reply(context: &Context, event: &PersistedEvent, result: Result<String>) {
    let text = match result {
        Ok(text) => text,
        Err(Error::Internal(detail)) => {
            tracing::error!(%detail, "a gateway command failed");
            "⚠️ Something went wrong on the server; the command was not carried out.".to_owned()
        }
        Err(err) => format!("⚠️ {err}"),
    };
    if let Err(err) = context
        .notice(
            &event.room_id,
            &context.bot,
            &text,
            Some(&event.event_id),
            None,
        )
        .await
    {
        tracing::warn!(room = %event.room_id, error = %err, "the gateway bot cannot answer");
    }
}

/// `!word rest` → `(word, rest)`.
pub fn parse_command(body: &str) -> Option<(&str, &str)> {
    let rest = body.trim().strip_prefix('!')?;
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some((word, args.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_into_word_and_arguments() {
        assert_eq!(parse_command("!webhook new"), Some(("webhook", "new")));
        assert_eq!(
            parse_command("  !device  k1 reboot {\"a\":1} "),
            Some(("device", "k1 reboot {\"a\":1}"))
        );
        assert_eq!(parse_command("!help"), Some(("help", "")));
        assert_eq!(parse_command("hello !webhook"), None);
    }
}
