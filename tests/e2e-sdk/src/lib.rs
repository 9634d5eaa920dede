//! Shared helpers for the matrix-sdk-ui end-to-end tests: accounts, rooms, bounded waits.
//!
//! The tests drive a running homeserver (`$HOMESERVER_URL`, open registration) through
//! matrix-sdk 0.19 with in-memory stores, and the room list and timelines through
//! matrix-sdk-ui's `SyncService`, the way Element X does.

// The timeline's futures are nested too deeply for rustc's default query depth.
#![recursion_limit = "256"]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{Stream, StreamExt as _};
use matrix_sdk::ruma::api::client::account::register;
use matrix_sdk::ruma::api::client::membership::join_room_by_id;
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, RoomId};
use matrix_sdk::sliding_sync::VersionBuilder;
use matrix_sdk::{Client, Room};
use matrix_sdk_ui::eyeball_im::{Vector, VectorDiff};
use matrix_sdk_ui::room_list_service::{RoomListItem, filters::new_filter_non_left};
use matrix_sdk_ui::sync_service::{self, SyncService};
use matrix_sdk_ui::timeline::{Timeline, TimelineItem};

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// The homeserver under test.
pub fn homeserver_url() -> String {
    std::env::var("HOMESERVER_URL")
        .expect("HOMESERVER_URL must name the homeserver to test, e.g. http://127.0.0.1:8008")
}

/// A user name no other test (or earlier run against the same server) has taken.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("e2e-sdk-{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// A client for the homeserver, with in-memory stores, finding simplified sliding sync
/// through `/versions` as Element X does.
pub async fn new_client() -> Result<Client> {
    // matrix-sdk builds reqwest with rustls but no crypto provider; reqwest panics when it
    // builds a client without one (even for plain http). A second install is refused: fine.
    // (ring's provider is deprecated for lacking post-quantum key exchange; the tests speak
    // plain http, so no TLS handshake ever happens.)
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .homeserver_url(homeserver_url())
        .sliding_sync_version_builder(VersionBuilder::DiscoverNative)
        .build()
        .await
        .context("building the client (does /versions advertise org.matrix.simplified_msc3575?)")
}

/// Registers a new account (answering the `m.login.dummy` stage) and returns a client
/// logged in as it, on a new device.
pub async fn register_user(prefix: &str) -> Result<Client> {
    let client = new_client().await?;
    let username = unique_name(prefix);
    let mut request = register::v3::Request::new();
    request.username = Some(username.clone());
    request.password = Some(format!("pw-{username}"));
    request.initial_device_display_name = Some(format!("converge-e2e-sdk {prefix}"));
    let auth = client.matrix_auth();
    let mut attempt = auth.register(request.clone()).await;
    for _ in 0..5 {
        let Err(err) = &attempt else { break };
        let Some(info) = err.as_uiaa_response() else {
            break;
        };
        let can_do = |f: &uiaa::AuthFlow| {
            f.stages
                .iter()
                .all(|s| *s == uiaa::AuthType::Dummy || info.completed.contains(s))
        };
        if !info.flows.iter().any(can_do) {
            bail!(
                "register {username}: no flow with only m.login.dummy in {:?}",
                info.flows
            );
        }
        let mut dummy = uiaa::Dummy::new();
        dummy.session = info.session.clone();
        request.auth = Some(uiaa::AuthData::Dummy(dummy));
        attempt = auth.register(request.clone()).await;
    }
    attempt.with_context(|| format!("register {username}"))?;
    if !client.matrix_auth().logged_in() {
        bail!("register {username}: the response held no access token");
    }
    Ok(client)
}

/// Creates a public room named `name`, optionally encrypted.
pub async fn create_room(client: &Client, name: &str, encrypted: bool) -> Result<Room> {
    use matrix_sdk::ruma::events::InitialStateEvent;
    use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;

    let mut request = create_room::v3::Request::new();
    request.name = Some(name.to_owned());
    request.preset = Some(create_room::v3::RoomPreset::PublicChat);
    if encrypted {
        request.initial_state = vec![
            InitialStateEvent::with_empty_state_key(
                RoomEncryptionEventContent::with_recommended_defaults(),
            )
            .to_raw_any(),
        ];
    }
    client
        .create_room(request)
        .await
        .with_context(|| format!("create room {name:?}"))
}

/// Joins a room with a bare `/join` request, so the joining client only learns of the room
/// from its own sync.
pub async fn join_quietly(client: &Client, room_id: &RoomId) -> Result<()> {
    client
        .send(join_room_by_id::v3::Request::new(room_id.to_owned()))
        .await
        .with_context(|| format!("join {room_id}"))?;
    Ok(())
}

/// Sends a plain-text message and returns its event id.
pub async fn send_text(room: &Room, body: &str) -> Result<OwnedEventId> {
    send(room, RoomMessageEventContent::text_plain(body)).await
}

/// Sends a message and returns its event id.
pub async fn send(room: &Room, content: RoomMessageEventContent) -> Result<OwnedEventId> {
    let response = room
        .send(content)
        .await
        .with_context(|| format!("send a message to {}", room.room_id()))?;
    Ok(response.response.event_id)
}

/// Builds and starts a `SyncService` for `client` (room list and encryption syncs), and
/// waits until it says it is running.
pub async fn start_sync(client: &Client) -> Result<SyncService> {
    let sync = SyncService::builder(client.clone())
        .build()
        .await
        .context("build the SyncService")?;
    sync.start().await;
    let mut state = sync.state();
    within("the SyncService to run", async {
        loop {
            match state.get() {
                sync_service::State::Running => return Ok(()),
                sync_service::State::Error(err) => bail!("the SyncService failed: {err}"),
                _ => {}
            }
            state
                .next()
                .await
                .context("the SyncService state stream ended")?;
        }
    })
    .await?;
    Ok(sync)
}

/// Opens a room as Element X does: subscribes to it through the room list service (a
/// higher timeline_limit than the list's) and builds its timeline.
pub async fn open_timeline(
    client: &Client,
    sync: &SyncService,
    room_id: &RoomId,
) -> Result<Timeline> {
    use matrix_sdk_ui::timeline::RoomExt as _;
    sync.room_list_service()
        .set_room_subscriptions(&[room_id])
        .await;
    let room = client
        .get_room(room_id)
        .with_context(|| format!("the client knows {room_id}"))?;
    room.timeline().await.context("build the timeline")
}

/// Runs `fut`, failing with `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(result) => result.with_context(|| format!("while waiting for {what}")),
        Err(_) => Err(anyhow!("timed out after {WAIT:?} waiting for {what}")),
    }
}

/// A vector the SDK keeps current through a stream of diffs (a room list, a timeline),
/// with a bounded wait for a condition on it.
pub struct LiveVector<T: Clone, S> {
    /// What it is, for failure messages ("room list", "timeline").
    name: &'static str,
    stream: S,
    pub items: Vector<T>,
}

impl<T: Clone, S> LiveVector<T, S>
where
    S: Stream<Item = Vec<VectorDiff<T>>> + Unpin,
{
    pub fn new(name: &'static str, items: Vector<T>, stream: S) -> Self {
        Self {
            name,
            stream,
            items,
        }
    }

    /// Applies diffs until `check` returns `Ok` for the items, for at most [`WAIT`]; on
    /// timeout the error is `check`'s last complaint.
    pub async fn wait_until<R>(
        &mut self,
        what: &str,
        mut check: impl FnMut(&Vector<T>) -> std::result::Result<R, String>,
    ) -> Result<R> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let complaint = match check(&self.items) {
                Ok(value) => return Ok(value),
                Err(complaint) => complaint,
            };
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(diffs)) => {
                    for diff in diffs {
                        diff.apply(&mut self.items);
                    }
                }
                Ok(None) => bail!(
                    "the {} stream ended while waiting for {what}: {complaint}",
                    self.name
                ),
                Err(_) => bail!("timed out after {WAIT:?} waiting for {what}: {complaint}"),
            }
        }
    }
}

/// The room list of a running `SyncService`, under Element X's default "all non-left
/// rooms" filter, `page_size` rooms a page; call with the service's `all_rooms()` list.
pub fn non_left_rooms(
    all_rooms: &matrix_sdk_ui::room_list_service::RoomList,
    page_size: usize,
) -> LiveVector<RoomListItem, impl Stream<Item = Vec<VectorDiff<RoomListItem>>> + Unpin + '_> {
    let (stream, controller) = all_rooms.entries_with_dynamic_adapters(page_size);
    let stream = Box::pin(stream);
    // The stream yields nothing until a filter is set; setting it needs the stream alive.
    assert!(
        controller.set_filter(Box::new(new_filter_non_left())),
        "the room list stream was dropped before its filter was set"
    );
    LiveVector::new("room list", Vector::new(), stream)
}

/// The room ids of the rooms shown, in order.
pub fn room_ids(rooms: &Vector<RoomListItem>) -> Vec<OwnedRoomId> {
    rooms.iter().map(|r| r.room_id().to_owned()).collect()
}

/// The text bodies of the message items of a timeline, oldest first.
pub fn message_bodies(items: &Vector<Arc<TimelineItem>>) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| item.as_event())
        .filter_map(|event| event.content().as_message().map(|m| m.body().to_owned()))
        .collect()
}

/// Subscribes to a timeline's items.
pub async fn watch_timeline(
    timeline: &Timeline,
) -> LiveVector<
    Arc<TimelineItem>,
    impl Stream<Item = Vec<VectorDiff<Arc<TimelineItem>>>> + Unpin + use<>,
> {
    let (items, stream) = timeline.subscribe().await;
    LiveVector::new("timeline", items, Box::pin(stream))
}
