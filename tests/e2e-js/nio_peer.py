# matrix-nio peer for nio-interop.test.mjs: joins an encrypted room, decrypts the js-sdk's message, replies encrypted.
#
# Usage: nio_peer.py HOMESERVER USERNAME PASSWORD ROOM_ID EXPECTED_SENDER EXPECTED_BODY REPLY_BODY
# Reports progress as JSON lines on stdout: {"ready": device_id}, {"received": {...}}, {"sent": {...}}, or {"error": msg}.
import asyncio
import json
import shutil
import sys
import tempfile

from nio import AsyncClient, AsyncClientConfig, JoinError, LoginResponse, MegolmEvent, RoomMessageText, RoomSendResponse, SyncError

TIMEOUT_S = 90
phase = "starting"


def emit(**msg):
    print(json.dumps(msg), flush=True)


async def run(client, password, room_id, sender, expected_body, reply_body):
    global phase
    phase = "logging in"
    login = await client.login(password, device_name="e2e-js nio peer")
    if not isinstance(login, LoginResponse):
        raise RuntimeError(f"login failed: {login}")
    if client.should_upload_keys:
        await client.keys_upload()
    phase = f"joining {room_id}"
    joined = await client.join(room_id)
    if isinstance(joined, JoinError):
        raise RuntimeError(f"join failed: {joined}")
    emit(ready=client.device_id)

    # Sync until the js-sdk's message arrives; nio decrypts it during sync processing.
    phase = f"the message {expected_body!r} from {sender}"
    while True:
        sync = await client.sync(timeout=5000)
        if isinstance(sync, SyncError):
            raise RuntimeError(f"sync failed: {sync}")
        if client.should_upload_keys:
            await client.keys_upload()
        room = sync.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if event.sender != sender:
                continue
            if isinstance(event, MegolmEvent):
                raise RuntimeError(f"could not decrypt {event.event_id} (megolm session {event.session_id})")
            if isinstance(event, RoomMessageText) and event.body == expected_body:
                emit(received={"event_id": event.event_id, "body": event.body, "decrypted": event.decrypted})
                break
        else:
            continue
        break

    phase = "sending the reply"
    if not client.rooms[room_id].encrypted:
        raise RuntimeError("nio does not see the room as encrypted")
    sent = await client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": reply_body}, ignore_unverified_devices=True
    )
    if not isinstance(sent, RoomSendResponse):
        raise RuntimeError(f"room_send failed: {sent}")
    emit(sent={"event_id": sent.event_id})


async def main():
    homeserver, username, password, room_id, sender, expected_body, reply_body = sys.argv[1:8]
    store = tempfile.mkdtemp(prefix="e2e-nio-")
    client = AsyncClient(homeserver, username, store_path=store, config=AsyncClientConfig(encryption_enabled=True))
    try:
        await asyncio.wait_for(run(client, password, room_id, sender, expected_body, reply_body), TIMEOUT_S)
    except asyncio.TimeoutError:
        emit(error=f"timed out after {TIMEOUT_S} s at: {phase}")
        return 1
    except Exception as e:  # reported to the node side, which fails the test with this message
        emit(error=f"{type(e).__name__}: {e}")
        return 1
    finally:
        await client.close()
        shutil.rmtree(store, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
