//! What push-rule evaluation costs per event in a room of many members, measured in process
//! on the server's own code path: `PushRules::evaluate` of a real `Services` (on a throwaway
//! SQLite store), with each member's rules already cached, as the send path calls it.
//!
//! Only Converge has this figure; the `big_room` scenario gives the server's whole CPU per
//! event in such a room, and the report sets the two side by side.

use std::time::Instant;

use converge_core::PowerLevels;
use converge_service::Services;
use converge_service::config::Config;
use converge_service::push::Recipient;
use serde_json::{Value, json};

/// Evaluates `events` messages from one sender for `members` members on the server's
/// default rules, and returns microseconds per event and how many members each notified.
pub async fn measure(members: usize, events: usize) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("converge-push-cost-{}", std::process::id()));
    let config = Config {
        server_name: "bench.example".into(),
        data_dir: dir.clone(),
        ..Config::default()
    };
    let services = Services::open(&config, Vec::new()).await?;
    let users: Vec<String> = (0..members)
        .map(|n| format!("@member{n}:bench.example"))
        .collect();
    let names: Vec<String> = (0..members).map(|n| format!("Member {n}")).collect();
    let recipients: Vec<Recipient<'_>> = users
        .iter()
        .zip(&names)
        .map(|(user_id, name)| Recipient {
            user_id,
            display_name: Some(name),
        })
        .collect();
    let sender = users[0].clone();
    let power_levels =
        PowerLevels::from_content(Some(&json!({ "users": { &sender: 100 } })), &sender)
            .map_err(|e| e.to_string())?;
    let event = |n: usize| {
        json!({
            "type": "m.room.message",
            "sender": sender,
            "room_id": "!bench:bench.example",
            "event_id": format!("$event{n}"),
            "origin_server_ts": 1_700_000_000_000u64 + n as u64,
            "content": {
                "msgtype": "m.text",
                "body": format!("message {n} about the weekly build"),
                "m.mentions": {},
            },
        })
    };
    let evaluate = |n: usize| {
        let event = event(n);
        let (services, recipients, power_levels) = (&services, &recipients, &power_levels);
        async move {
            services
                .push
                .evaluate(&event, recipients, None, power_levels, members as u64)
                .await
                .map_err(|e| e.to_string())
        }
    };
    // The first event loads and compiles everyone's rules; the send path finds them cached.
    evaluate(0).await?;
    let mut notified = 0;
    let started = Instant::now();
    for n in 1..=events {
        let outcome = evaluate(n).await?;
        let loud = outcome
            .exceptions
            .iter()
            .filter(|(_, n)| n.is_some())
            .count();
        let by_default = outcome
            .members
            .as_ref()
            .map_or(0, |_| members - 1 - outcome.exceptions.len());
        notified = loud + by_default;
    }
    let per_event = started.elapsed().as_secs_f64() / events.max(1) as f64;
    services.close_store().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "members": members,
        "events": events,
        "notified_per_event": notified,
        "us_per_event": (per_event * 1e6 * 10.0).round() / 10.0,
    }))
}
