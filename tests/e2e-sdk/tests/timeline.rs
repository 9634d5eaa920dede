//! A room's timeline, opened from the sliding-sync room list as Element X does: it shows the
//! latest messages and paginates back to the room's first ones.

use anyhow::{Context as _, Result, bail};
use converge_e2e_sdk::{
    create_room, join_quietly, message_bodies, non_left_rooms, open_timeline, register_user,
    send_text, start_sync, watch_timeline, within,
};
use matrix_sdk_ui::Timeline;
use matrix_sdk_ui::sync_service::SyncService;

const MESSAGES: usize = 60;

/// Alice, syncing with a SyncService, is in a room where bob sent "message 1" … "message
/// 60"; she waits for it in her room list, then opens it as Element X does: subscribes to
/// it (timeline_limit 20 instead of the list's 1) and builds its timeline.
async fn open_a_room_with_history()
-> Result<(matrix_sdk::Client, SyncService, Timeline, Vec<String>)> {
    let alice = register_user("alice").await?;
    let bob = register_user("bob").await?;
    let room = create_room(&bob, "history", false).await?;
    join_quietly(&alice, room.room_id()).await?;
    let expected: Vec<String> = (1..=MESSAGES).map(|i| format!("message {i}")).collect();
    for body in &expected {
        send_text(&room, body).await?;
    }
    let room_id = room.room_id().to_owned();

    let sync = start_sync(&alice).await?;
    let service = sync.room_list_service();
    {
        let all_rooms = service.all_rooms().await?;
        let mut list = non_left_rooms(&all_rooms, 20);
        list.wait_until("the room in alice's room list", |shown| {
            if shown.iter().any(|r| r.room_id() == room_id) {
                Ok(())
            } else {
                Err(format!("{} rooms shown, not {room_id}", shown.len()))
            }
        })
        .await?;
    }
    let timeline = open_timeline(&alice, &sync, &room_id).await?;
    Ok((alice, sync, timeline, expected))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_paginates_back_to_the_first_message() -> Result<()> {
    let (_alice, sync, timeline, expected) = open_a_room_with_history().await?;
    let mut view = watch_timeline(&timeline).await;
    view.wait_until("the newest message in the timeline", |items| {
        let bodies = message_bodies(items);
        match bodies.last() {
            Some(last) if *last == expected[MESSAGES - 1] => Ok(()),
            _ => Err(format!("messages shown: {bodies:?}")),
        }
    })
    .await?;

    // Back-paginate until the SDK says it reached the start of the room.
    let mut pages = 0;
    within("back-pagination to the start of the room", async {
        loop {
            pages += 1;
            if timeline
                .paginate_backwards(20)
                .await
                .context("paginate_backwards")?
            {
                return Ok(());
            }
            if pages > 3 * MESSAGES / 20 + 5 {
                bail!("{pages} pages of 20 and the start of the room is still not reached");
            }
        }
    })
    .await?;

    view.wait_until(
        "all 60 messages, in order, after the timeline start",
        |items| {
            let bodies = message_bodies(items);
            if bodies != expected {
                return Err(format!("{} messages shown: {bodies:?}", bodies.len()));
            }
            if !items.iter().any(|item| item.is_timeline_start()) {
                return Err("no timeline-start item".into());
            }
            Ok(())
        },
    )
    .await?;
    sync.stop().await;
    Ok(())
}

/// Opening the room shows its latest 20 messages without any back-pagination: the room
/// subscription raises the room's timeline_limit from the list's 1 to 20, and MSC4186
/// ("Changes to `timeline_limit`") says the server SHOULD then send the latest 20 events
/// (flagged `unstable_expanded_timeline`), at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_room_shows_its_latest_messages_without_pagination() -> Result<()> {
    let (_alice, sync, timeline, expected) = open_a_room_with_history().await?;
    let mut view = watch_timeline(&timeline).await;
    let latest = &expected[MESSAGES - 20..];
    view.wait_until(
        "the latest 20 messages, from the room subscription alone",
        |items| {
            let bodies = message_bodies(items);
            if bodies.ends_with(latest) {
                Ok(())
            } else {
                Err(format!("{} messages shown: {bodies:?}", bodies.len()))
            }
        },
    )
    .await?;
    sync.stop().await;
    Ok(())
}
