//! An end-to-end encrypted message decrypts in the recipient's timeline: the room key comes
//! through the sliding-sync `to_device` extension of the SyncService's encryption sync.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use converge_e2e_sdk::{
    create_room, join_quietly, non_left_rooms, open_timeline, register_user, start_sync,
    watch_timeline, within,
};
use matrix_sdk::ruma::api::client::keys::get_keys;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_message_decrypts_in_the_timeline() -> Result<()> {
    let alice = register_user("alice").await?;
    let bob = register_user("bob").await?;
    let alice_id = alice.user_id().context("alice's user id")?.to_owned();
    let alice_device = alice.device_id().context("alice's device id")?.to_owned();
    let bob_id = bob.user_id().context("bob's user id")?.to_owned();

    // Each one's SyncService: the room list sync, and the encryption sync that uploads the
    // device's keys and receives its to-device messages (bob's keeps his own device keys on
    // the server; without them his client waits for a key query of himself before sending).
    let sync = start_sync(&alice).await?;
    let bob_sync = start_sync(&bob).await?;

    let room = create_room(&bob, "secrets", true).await?;
    join_quietly(&alice, room.room_id()).await?;
    let room_id = room.room_id().to_owned();

    // Bob can only encrypt for alice's device once its keys are on the server. There is no
    // stream for another client's uploads, so ask the server (a bare /keys/query, which
    // leaves bob's crypto state alone) until it lists the device.
    within("alice's device keys on the server", async {
        loop {
            let mut request = get_keys::v3::Request::new();
            request.device_keys = BTreeMap::from([(alice_id.clone(), vec![])]);
            let response = bob.send(request).await.context("/keys/query")?;
            if response
                .device_keys
                .get(&alice_id)
                .is_some_and(|devices| devices.contains_key(&alice_device))
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await?;

    let secret = "the eagle lands at midnight";
    let sent = room
        .send(RoomMessageEventContent::text_plain(secret))
        .await
        .context("bob sends the encrypted message")?;
    assert!(
        sent.encryption_info.is_some(),
        "bob's client sent the message unencrypted: it does not see the room as encrypted"
    );
    let event_id = sent.response.event_id;

    let service = sync.room_list_service();
    let all_rooms = service.all_rooms().await?;
    let mut list = non_left_rooms(&all_rooms, 20);
    list.wait_until(
        "the encrypted room in alice's room list",
        |shown| match shown.iter().find(|r| r.room_id() == room_id) {
            Some(r) if r.encryption_state().is_encrypted() => Ok(()),
            Some(_) => Err("the room is listed but not known to be encrypted".into()),
            None => Err(format!("{} rooms shown, not {room_id}", shown.len())),
        },
    )
    .await?;

    let timeline = open_timeline(&alice, &sync, &room_id).await?;
    let mut view = watch_timeline(&timeline).await;
    view.wait_until("bob's message, decrypted, in alice's timeline", |items| {
        let Some(event) = items
            .iter()
            .filter_map(|i| i.as_event())
            .find(|e| e.event_id() == Some(&*event_id))
        else {
            return Err(format!(
                "event {event_id} not in the timeline ({} items)",
                items.len()
            ));
        };
        if event.content().is_unable_to_decrypt() {
            return Err("the event is still unable to decrypt".into());
        }
        let body = event.content().as_message().map(|m| m.body().to_owned());
        if body.as_deref() != Some(secret) {
            return Err(format!("the event shows {body:?}"));
        }
        if event.sender() != bob_id {
            return Err(format!("the event's sender is {}", event.sender()));
        }
        if event.encryption_info().is_none() {
            return Err("the event shows no encryption info: it was not decrypted".into());
        }
        Ok(())
    })
    .await?;
    sync.stop().await;
    bob_sync.stop().await;
    Ok(())
}
