//! The `sliding_sync` scenario: simplified sliding sync (MSC4186) as Element X uses it, for
//! a user in many rooms: opening the room list, scrolling to the next page, and how soon
//! a new message in any room reaches the long-polling list.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::client::{Client, Result, Session};
use crate::stats::summary;

const PATH: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

/// The room-list request Element X sends: one list, the newest `end + 1` rooms, one
/// timeline event each, and the state its room list shows.
fn room_list(end: usize) -> Value {
    json!({
        "conn_id": "room-list",
        "lists": { "all_rooms": {
            "ranges": [[0, end]],
            "timeline_limit": 1,
            "required_state": [
                ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"],
                ["m.room.member", "$ME"], ["m.room.topic", ""], ["m.room.avatar", ""],
                ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
                ["m.room.join_rules", ""], ["m.room.create", ""], ["m.room.history_visibility", ""]
            ],
            "filters": {}
        }},
        "extensions": {
            "account_data": { "enabled": true },
            "receipts": { "enabled": true, "rooms": ["*"] },
            "typing": { "enabled": true }
        }
    })
}

/// One sliding sync request; its duration and response.
async fn slide(
    client: &Client,
    user: &Session,
    pos: Option<&str>,
    timeout_ms: u64,
    body: &Value,
) -> Result<(Duration, Value)> {
    let mut path = format!("{PATH}?timeout={timeout_ms}");
    if let Some(pos) = pos {
        path.push_str(&format!("&pos={pos}"));
    }
    let started = Instant::now();
    let (status, response) = client.post_root(&path, Some(&user.token), body).await?;
    let took = started.elapsed();
    if status != 200 {
        return Err(format!("sliding sync: HTTP {status}: {response}"));
    }
    Ok((took, response))
}

fn pos_of(response: &Value) -> Result<String> {
    Ok(response["pos"].as_str().ok_or("no pos")?.to_owned())
}

/// Whether the server offers simplified sliding sync at all.
pub async fn supported(client: &Client) -> Result<bool> {
    let (_, versions) = client.get_root("/_matrix/client/versions", None).await?;
    Ok(versions["unstable_features"]["org.matrix.simplified_msc3575"] == true)
}

/// Gives `reader` `rooms` rooms made by `owner`, each with one message (eight at a time).
pub async fn fill(
    client: &Client,
    owner: &Session,
    reader: &Session,
    rooms: usize,
) -> Result<Vec<String>> {
    let mut made = Vec::with_capacity(rooms);
    for batch in (0..rooms).collect::<Vec<_>>().chunks(8) {
        let results = join_all(batch.iter().map(|n| async move {
            let room = client
                .create_room(
                    owner,
                    json!({ "preset": "public_chat", "name": format!("Room {n}") }),
                )
                .await?;
            client.join(reader, &room).await?;
            client
                .send(
                    owner,
                    &room,
                    &format!("s{n}"),
                    &json!({ "msgtype": "m.text", "body": format!("hello {n}") }),
                )
                .await?;
            Ok::<_, String>(room)
        }))
        .await;
        for result in results {
            made.push(result?);
        }
    }
    Ok(made)
}

/// Opens the list (first 20 rooms) and scrolls to the next page on `samples` fresh
/// devices, then times `samples` messages, each into another room, from the send to the
/// long-polling list's response.
pub async fn run(
    client: &Client,
    owner: &Session,
    reader: &Session,
    password: &str,
    rooms: &[String],
    samples: usize,
) -> Result<Value> {
    let page = 20usize;
    let mut open = Vec::with_capacity(samples);
    let mut scroll = Vec::with_capacity(samples);
    let mut last = None;
    for _ in 0..samples {
        // A fresh device each time: nothing the server remembers for the device helps.
        let device = client.login(&reader.user_id, password).await?;
        let (took, first) = slide(client, &device, None, 0, &room_list(page - 1)).await?;
        let count = first["lists"]["all_rooms"]["count"].as_u64().unwrap_or(0) as usize;
        let sent = first["rooms"].as_object().map_or(0, |r| r.len());
        if count < rooms.len() || sent < page.min(rooms.len()) {
            return Err(format!(
                "the room list counted {count} rooms and sent {sent}"
            ));
        }
        open.push(took);
        let (took, next) = slide(
            client,
            &device,
            Some(&pos_of(&first)?),
            0,
            &room_list(2 * page - 1),
        )
        .await?;
        let sent = next["rooms"].as_object().map_or(0, |r| r.len());
        if sent < page.min(rooms.len().saturating_sub(page)) {
            return Err(format!("scrolling sent {sent} new rooms"));
        }
        scroll.push(took);
        last = Some((device, pos_of(&next)?));
    }
    let (device, mut pos) = last.ok_or("no samples")?;

    let mut live = Vec::with_capacity(samples);
    let two_pages = room_list(2 * page - 1);
    for n in 0..samples {
        // Rooms all over the list, most of them outside the window.
        let room = &rooms[(n * 7919) % rooms.len()];
        let poll = slide(client, &device, Some(&pos), 30_000, &two_pages);
        let send = async {
            // Let the poll arrive and wait first.
            tokio::time::sleep(Duration::from_millis(30)).await;
            let started = Instant::now();
            client
                .send(
                    owner,
                    room,
                    &format!("live{n}"),
                    &json!({ "msgtype": "m.text", "body": format!("live {n}") }),
                )
                .await?;
            Ok::<_, String>(started)
        };
        let (polled, started) = tokio::join!(poll, send);
        let (_, response) = polled?;
        let arrived = Instant::now();
        let started = started?;
        pos = pos_of(&response)?;
        if response["rooms"].get(room).is_none() {
            // Woken by something else: wait for the message itself.
            let (_, response) = slide(
                client,
                &device,
                Some(&pos),
                30_000,
                &room_list(2 * page - 1),
            )
            .await?;
            pos = pos_of(&response)?;
            if response["rooms"].get(room).is_none() {
                return Err(format!("the message in {room} never reached the list"));
            }
        }
        live.push(arrived.duration_since(started));
    }
    let (open, scroll, live) = (summary(&mut open), summary(&mut scroll), summary(&mut live));
    Ok(json!({
        "rooms": rooms.len(),
        "open_p50_ms": open["p50_ms"],
        "open_p99_ms": open["p99_ms"],
        "scroll_p50_ms": scroll["p50_ms"],
        "scroll_p99_ms": scroll["p99_ms"],
        "live_p50_ms": live["p50_ms"],
        "live_p99_ms": live["p99_ms"],
        "samples": live["count"],
    }))
}
