//! What push-rule evaluation costs per event in a room of many members, measured in process
//! with Converge's own evaluator (`converge-core`) the way the send path uses it: one
//! flattened event and one context per event, each member's compiled rules from a cache,
//! evaluated with their display name, and the notifying members' actions serialised.
//!
//! Only Converge has this figure; the `big_room` scenario gives the server's whole CPU per
//! event in such a room, and the report sets the two side by side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use converge_core::power_levels::PowerLevels;
use converge_core::push::{
    CompiledRules, FlattenedEvent, PushContext, insert_legacy_mention_rules,
};
use ruma::UserId;
use ruma::push::Ruleset;
use serde_json::{Value, json};

/// Evaluates `events` messages from one sender for `members` members with the server's
/// default rules, and returns microseconds per event and how many members each notified.
pub fn measure(members: usize, events: usize) -> Result<Value, String> {
    let users: Vec<String> = (0..members)
        .map(|n| format!("@member{n}:bench.example"))
        .collect();
    let names: Vec<String> = (0..members).map(|n| format!("Member {n}")).collect();
    let cache: Mutex<HashMap<String, Arc<CompiledRules>>> = Mutex::default();
    for user in &users {
        let id = UserId::parse(user.as_str()).map_err(|e| e.to_string())?;
        let mut ruleset = Ruleset::server_default(&id);
        insert_legacy_mention_rules(&mut ruleset, &id);
        cache
            .lock()
            .expect("not poisoned")
            .insert(user.clone(), Arc::new(CompiledRules::new(&ruleset, &id)));
    }
    let sender = users[0].clone();
    let power_levels =
        PowerLevels::from_content(Some(&json!({ "users": { &sender: 100 } })), &sender)
            .map_err(|e| e.to_string())?;
    let mut notified = 0usize;
    let started = Instant::now();
    for n in 0..events {
        let event = json!({
            "type": "m.room.message",
            "sender": sender,
            "room_id": "!bench:bench.example",
            "event_id": format!("$event{n}"),
            "origin_server_ts": 1_700_000_000_000u64 + n as u64,
            "content": { "msgtype": "m.text", "body": format!("message {n} about the weekly build") },
        });
        let flattened = FlattenedEvent::new(&event);
        let context = PushContext::new(&power_levels, &sender, members as u64);
        let mut actions = Vec::new();
        for (user, name) in users.iter().zip(&names).skip(1) {
            let rules = cache.lock().expect("not poisoned").get(user).cloned();
            let Some(rules) = rules else { continue };
            let outcome = rules.evaluate(&flattened, &context.with_display_name(Some(name)));
            if outcome.notify {
                actions.push(serde_json::to_string(outcome.actions).unwrap_or_default());
            }
        }
        notified = actions.len();
    }
    let per_event = started.elapsed().as_secs_f64() / events.max(1) as f64;
    Ok(json!({
        "members": members,
        "events": events,
        "notified_per_event": notified,
        "us_per_event": (per_event * 1e6 * 10.0).round() / 10.0,
    }))
}
