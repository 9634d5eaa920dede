//! Element X's room list over simplified sliding sync: recency order, unread counts, and an
//! old room moving to the top when a message arrives.

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use converge_e2e_sdk::{
    create_room, join_quietly, non_left_rooms, register_user, room_ids, send, send_text, start_sync,
};
use matrix_sdk::Room;
use matrix_sdk::ruma::OwnedRoomId;
use matrix_sdk::ruma::events::Mentions;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk_ui::eyeball_im::Vector;
use matrix_sdk_ui::room_list_service::{RoomListItem, RoomListLoadingState};

/// Bob creates `n` rooms named "room 00", "room 01", … and alice joins each; returns them
/// in creation order. Nothing is sent yet, so no room is newer than another by its messages.
async fn shared_rooms(
    alice: &matrix_sdk::Client,
    bob: &matrix_sdk::Client,
    n: usize,
) -> Result<Vec<Room>> {
    let mut rooms = Vec::with_capacity(n);
    for i in 0..n {
        let room = create_room(bob, &format!("room {i:02}"), false).await?;
        join_quietly(alice, room.room_id()).await?;
        rooms.push(room);
    }
    Ok(rooms)
}

/// Each room's creation index, and the rooms newest first (the order the list must show
/// once each room got a message in creation order).
fn creation_order(rooms: &[Room]) -> (HashMap<OwnedRoomId, usize>, Vec<OwnedRoomId>) {
    let index = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.room_id().to_owned(), i))
        .collect();
    let newest_first = rooms.iter().rev().map(|r| r.room_id().to_owned()).collect();
    (index, newest_first)
}

/// Describes the rooms shown by their creation index, for failure messages.
fn describe(shown: &[OwnedRoomId], index: &HashMap<OwnedRoomId, usize>) -> String {
    let names: Vec<String> = shown
        .iter()
        .map(|id| {
            index
                .get(id)
                .map_or_else(|| format!("unknown {id}"), |i| i.to_string())
        })
        .collect();
    format!("[{}]", names.join(", "))
}

/// Whether the rooms shown are exactly `expected`, in order, each with a server-given
/// recency stamp (bump_stamp) that is lower than the one above it.
fn check_order(
    shown: &Vector<RoomListItem>,
    expected: &[OwnedRoomId],
    index: &HashMap<OwnedRoomId, usize>,
) -> Result<(), String> {
    let ids = room_ids(shown);
    if ids != expected {
        return Err(format!(
            "rooms shown by creation index: {} (expected {})",
            describe(&ids, index),
            describe(expected, index)
        ));
    }
    let stamps: Vec<Option<u64>> = shown
        .iter()
        .map(|r| r.recency_stamp().map(u64::from))
        .collect();
    if stamps.iter().any(Option::is_none) || stamps.windows(2).any(|w| w[0] <= w[1]) {
        return Err(format!(
            "recency stamps (bump_stamp) not strictly decreasing down the list: {stamps:?}"
        ));
    }
    Ok(())
}

/// A user in 50 rooms sees them newest message first, each with the number of
/// notifications and highlights (mentions) the server counted for what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_rooms_in_recency_order_with_unread_counts() -> Result<()> {
    const ROOMS: usize = 50;
    let alice = register_user("alice").await?;
    let bob = register_user("bob").await?;
    let alice_id = alice.user_id().context("alice's user id")?.to_owned();
    let rooms = shared_rooms(&alice, &bob, ROOMS).await?;

    // Room by room, room 0 first: room i gets 1 + i % 3 messages, and in every 7th room
    // the last one mentions alice. So room 49 has the newest message and room 0 the oldest.
    let mut expected_counts: HashMap<OwnedRoomId, (u64, u64)> = HashMap::new();
    for (i, room) in rooms.iter().enumerate() {
        let messages = 1 + i % 3;
        let mention = i % 7 == 0;
        for m in 0..messages {
            let mut content =
                RoomMessageEventContent::text_plain(format!("message {m} in room {i}"));
            if mention && m + 1 == messages {
                content = content.add_mentions(Mentions::with_user_ids([alice_id.clone()]));
            }
            send(room, content).await?;
        }
        expected_counts.insert(room.room_id().to_owned(), (messages as u64, mention as u64));
    }
    let (index, newest_first) = creation_order(&rooms);

    let sync = start_sync(&alice).await?;
    let service = sync.room_list_service();
    let all_rooms = service.all_rooms().await?;
    let mut list = non_left_rooms(&all_rooms, 100);
    list.wait_until(
        "the 50 rooms, newest message first, with their unread counts",
        |shown| {
            check_order(shown, &newest_first, &index)?;
            let wrong: Vec<String> = shown
                .iter()
                .filter_map(|room| {
                    let counts = room.unread_notification_counts();
                    let got = (counts.notification_count, counts.highlight_count);
                    let want = expected_counts[room.room_id()];
                    (got != want).then(|| {
                        format!(
                            "room {}: (notifications, highlights) = {got:?}, expected {want:?}",
                            index[room.room_id()]
                        )
                    })
                })
                .collect();
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(wrong.join("; "))
            }
        },
    )
    .await?;

    // The list's count, from the server, once it is fully loaded.
    let loading = all_rooms.loading_state().get();
    assert_eq!(
        loading,
        RoomListLoadingState::Loaded {
            maximum_number_of_rooms: Some(ROOMS as u32)
        },
        "the all_rooms list count"
    );
    sync.stop().await;
    Ok(())
}

/// A message from someone else into the oldest room of the list moves it to the top, and
/// its unread count goes up; the other rooms keep their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_message_moves_an_old_room_to_the_top() -> Result<()> {
    // More rooms than Element X's first window (0..=19), so the oldest one is only loaded
    // when the list grows.
    const ROOMS: usize = 25;
    let alice = register_user("alice").await?;
    let bob = register_user("bob").await?;
    let rooms = shared_rooms(&alice, &bob, ROOMS).await?;
    for (i, room) in rooms.iter().enumerate() {
        send_text(room, &format!("hello {i}")).await?;
    }
    let (index, newest_first) = creation_order(&rooms);

    let sync = start_sync(&alice).await?;
    let service = sync.room_list_service();
    let all_rooms = service.all_rooms().await?;
    let mut list = non_left_rooms(&all_rooms, 100);
    list.wait_until("the rooms, newest message first", |shown| {
        check_order(shown, &newest_first, &index)
    })
    .await?;

    // The sync is now long-polling; bob wakes up the oldest room.
    let oldest = &rooms[0];
    send_text(oldest, "wake up").await?;
    let mut moved = vec![oldest.room_id().to_owned()];
    moved.extend(newest_first[..ROOMS - 1].iter().cloned());
    list.wait_until("the oldest room at the top with 2 unread", |shown| {
        check_order(shown, &moved, &index)?;
        let top = shown[0].unread_notification_counts();
        if top.notification_count != 2 {
            return Err(format!(
                "the woken room shows {} notifications, expected 2",
                top.notification_count
            ));
        }
        Ok(())
    })
    .await?;
    sync.stop().await;
    Ok(())
}
