//! The gateway bot: accepts invites, reads the rooms it is in, and hands `!<word> ...`
//! messages (`!webhook`, `!device`, ...) and the event types a gateway claims to that
//! gateway, answering in the room.
//!
//! Commands run at most once: the bot stores its position before it acts on a batch, so
//! a crash never repeats a command (an admin may have to repeat one instead).

use std::sync::Arc;
use std::time::Duration;

use converge_core::PersistedEvent;
use serde_json::Value;
use tokio::sync::watch;

use converge_service::{Error, Result};
use converge_store::Tables;

use crate::feed::Feed;
use crate::{Command, Context, Gateways, registry};

/// The first lines of `!help`; each gateway adds its own.
const HELP: &str =
    "I manage this room's gateways. Commands (changing them needs the power to change room state):";

pub async fn run(gateways: Arc<Gateways>, tables: Tables, mut stop: watch::Receiver<bool>) {
    let context = gateways.context.clone();
    let mut feed = loop {
        match Feed::open(context.clone(), tables.clone(), "bot").await {
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
    let from_person = !context.services.reserved.is_virtual(&event.sender);
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
        "m.room.message" if from_person => {
            let Some(body) = content["body"].as_str() else {
                return;
            };
            let Some((word, args)) = parse_command(body) else {
                return;
            };
            let result = if matches!(word, "converge" | "help") {
                Ok(help())
            } else {
                match gateways.for_command(word) {
                    Ok(Some(gateway)) => {
                        gateway
                            .command(Command {
                                room_id: &event.room_id,
                                sender: &event.sender,
                                event_id: &event.event_id,
                                word,
                                args,
                            })
                            .await
                    }
                    Ok(None) => return,
                    Err(err) => Err(err),
                }
            };
            reply(context, event, result).await;
        }
        event_type if from_person => {
            let Some(gateway) = gateways.for_event(event_type) else {
                return;
            };
            if let Err(err) = gateway.event(event).await {
                reply(context, event, Err(err)).await;
            }
        }
        _ => {}
    }
}

/// `!help`: the bot's introduction and every gateway's commands.
fn help() -> String {
    let mut text = HELP.to_owned();
    for component in registry::ALL {
        text.push('\n');
        text.push_str(component.help.trim_end());
    }
    text
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

    #[test]
    fn help_lists_every_gateway() {
        let text = help();
        assert!(text.starts_with(HELP));
        for component in registry::ALL {
            assert!(
                text.contains(component.help.trim_end()),
                "{}",
                component.name
            );
        }
    }
}
