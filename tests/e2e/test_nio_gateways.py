# End-to-end tests of the webhook gateway by chat: matrix-nio users, the gateway bot and plain HTTP POSTs against a real `converge serve`.
"""Incoming webhooks made the way a person makes them: in a room with the gateway bot
(@converge:localhost) invited, a room admin types `!webhook new` through nio's room_send, the
bot answers with an m.notice replying to the command that holds the hook's URL and secret,
and a POST to that URL (urllib, as any CI job would) becomes a Markdown message from the
hook's virtual user (@hook-<id>) that the other member's nio client receives through
sync_forever. Then every refusal of the hook endpoint (invalid JSON, unknown hook, bad
`X-Converge-Signature`, a replayed signed request) next to one correctly signed POST, and
the bot's refusal of a member without the power to change room state.

Every test registers its own users on the module's server (the `server` fixture in
conftest.py), so the tests are independent of each other and of their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
import uuid

import pytest
from nio import (
    AsyncClient,
    JoinedMembersResponse,
    JoinResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMemberEvent,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
)

from e2e_support import (
    PASSWORD,
    SERVER_NAME,
    Server,
    fresh_username,
    join_room,
    nio_client,
    run,
)

SYNC_POLL_MS = 1000
SYNC_DEADLINE_S = 15.0
HTTP_TIMEOUT_S = 15.0

BOT = f"@converge:{SERVER_NAME}"
HOOK_PATH = re.compile(r"/_converge/hooks/[a-z0-9]+")
SECRET = re.compile(r"Secret: `([^`]+)`")


# --------------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def new_user(server: Server, prefix: str):
    """A freshly registered user whose nio client holds the new access token."""
    async with nio_client(server) as client:
        resp = await client.register(fresh_username(prefix), PASSWORD, device_name=f"{prefix} device")
        assert client.logged_in, f"register failed: {resp}"
        yield client


async def sync_until(client: AsyncClient, check, what: str, deadline_s: float = SYNC_DEADLINE_S):
    """Incremental (long-polling) syncs until check(response) returns something truthy."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        resp = await client.sync(timeout=SYNC_POLL_MS)
        assert isinstance(resp, SyncResponse), f"sync failed: {resp}"
        found = check(resp)
        if found:
            return found
    pytest.fail(f"{client.user_id} did not see {what} within {deadline_s}s of syncing", pytrace=False)


def timeline(resp: SyncResponse, room_id: str) -> list:
    room = resp.rooms.join.get(room_id)
    return list(room.timeline.events) if room is not None else []


def content_of(event) -> dict:
    return event.source.get("content", {})


async def send_text(client: AsyncClient, room_id: str, body: str) -> str:
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(resp, RoomSendResponse), f"{client.user_id} could not send {body!r}: {resp}"
    assert resp.event_id.startswith("$"), resp.event_id
    return resp.event_id


@contextlib.asynccontextmanager
async def room_with_bot(server: Server):
    """alice creates a room, bob joins it, alice invites the gateway bot and both have
    synced past the bot's join. Yields (alice, bob, room_id)."""
    async with new_user(server, "alice") as alice, new_user(server, "bob") as bob:
        created = await alice.room_create(preset=RoomPreset.private_chat, invite=[bob.user_id])
        assert isinstance(created, RoomCreateResponse), f"createRoom failed: {created}"
        room_id = created.room_id
        joined = await join_room(bob, room_id)
        assert isinstance(joined, JoinResponse), f"bob could not join: {joined}"

        invited = await alice.room_invite(room_id, BOT)
        assert isinstance(invited, RoomInviteResponse), f"inviting the bot failed: {invited}"

        def bot_joined(resp):
            return any(
                isinstance(e, RoomMemberEvent) and e.state_key == BOT and e.membership == "join"
                for e in timeline(resp, room_id)
            )

        # The bot accepts the invite by itself; both members see it arrive.
        await sync_until(alice, bot_joined, "the bot's join")
        await sync_until(bob, bot_joined, "the bot's join")
        yield alice, bob, room_id


async def command(client: AsyncClient, room_id: str, text: str):
    """Sends a `!...` command and returns the bot's reply to it (an m.notice), seen
    through the sender's own sync."""
    command_id = await send_text(client, room_id, text)

    def reply(resp):
        for e in timeline(resp, room_id):
            relates = content_of(e).get("m.relates_to", {})
            if e.sender == BOT and relates.get("m.in_reply_to", {}).get("event_id") == command_id:
                return e
        return None

    event = await sync_until(client, reply, f"the bot's reply to {text!r}")
    assert content_of(event).get("msgtype") == "m.notice", event.source
    return event


async def private_answer(client: AsyncClient, needle: str) -> str:
    """The body of the bot's direct message to client that contains needle; the bot's
    invite to its direct room is accepted on the way."""
    deadline = time.monotonic() + SYNC_DEADLINE_S
    while time.monotonic() < deadline:
        resp = await client.sync(timeout=SYNC_POLL_MS)
        assert isinstance(resp, SyncResponse), f"sync failed: {resp}"
        # The invite may have come with an earlier sync; nio remembers it.
        for room_id in set(resp.rooms.invite) | set(client.invited_rooms):
            joined = await join_room(client, room_id)
            assert isinstance(joined, JoinResponse), f"joining the bot's direct room failed: {joined}"
        for room_id in resp.rooms.join:
            for e in timeline(resp, room_id):
                text = content_of(e).get("body", "")
                if e.sender == BOT and needle in text:
                    return text
    pytest.fail(f"{client.user_id} got no direct message with {needle!r}", pytrace=False)


def hook_from_reply(server: Server, body: str) -> tuple[str, str]:
    """The hook's path and secret, out of the bot's direct message after `!webhook new`."""
    path = HOOK_PATH.search(body)
    secret = SECRET.search(body)
    assert path and secret, f"no hook URL and secret in the bot's reply: {body!r}"
    # The URL given is this server's own base URL (no public_base_url is configured).
    assert f"`{server.url}{path.group(0)}`" in body, body
    return path.group(0), secret.group(1)


def hook_user(path: str) -> str:
    return f"@hook-{path.rsplit('/', 1)[1]}:{SERVER_NAME}"


def post_hook(
    server: Server, path: str, body: bytes, signature: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict]:
    """POSTs body to the hook endpoint and returns (HTTP status, JSON answer)."""
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-Converge-Signature"] = signature
    request = urllib.request.Request(server.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.load(e)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


# --------------------------------------------------------------------------- tests


def test_hook_made_in_chat_posts_markdown_a_member_syncs(server):
    async def body():
        async with room_with_bot(server) as (alice, bob, room_id):
            reply = await command(alice, room_id, "!webhook new")
            assert "direct message" in reply.body and "Secret" not in reply.body, reply.body
            path, secret = hook_from_reply(server, await private_answer(alice, "Secret:"))
            assert len(secret) >= 16, secret
            user = hook_user(path)

            # Bob's client listens with sync_forever and an event callback, as a bot or
            # an app would, while the hook is POSTed from outside.
            arrived = asyncio.Event()
            from_hook: list[RoomMessageText] = []

            def on_text(room, event):
                if room.room_id == room_id and event.sender.startswith("@hook-"):
                    from_hook.append(event)
                    arrived.set()

            bob.add_event_callback(on_text, RoomMessageText)
            listener = asyncio.create_task(bob.sync_forever(timeout=SYNC_POLL_MS))
            try:
                status, answer = await asyncio.to_thread(
                    post_hook, server, path, json.dumps({"text": "**hello** from CI"}).encode()
                )
                assert status == 200, answer
                event_id = answer.get("event_id", "")
                assert event_id.startswith("$"), answer
                try:
                    await asyncio.wait_for(arrived.wait(), SYNC_DEADLINE_S)
                except asyncio.TimeoutError:
                    pytest.fail(
                        f"bob's sync_forever did not deliver the hook's message within {SYNC_DEADLINE_S}s",
                        pytrace=False,
                    )
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

            assert [e.event_id for e in from_hook] == [event_id], [e.source for e in from_hook]
            message = from_hook[0]
            assert message.sender == user
            assert message.body == "**hello** from CI"
            assert message.format == "org.matrix.custom.html"
            assert message.formatted_body == "<strong>hello</strong> from CI"
            assert content_of(message).get("msgtype") == "m.text", message.source
            # The hook's virtual user is a member like any other, in bob's room state.
            assert user in bob.rooms[room_id].users, bob.rooms[room_id].users

            members = await alice.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), members
            assert {m.user_id for m in members.members} == {alice.user_id, bob.user_id, BOT, user}

    run(body())


def test_hook_refusals_leave_only_the_accepted_message(server):
    async def body():
        async with room_with_bot(server) as (alice, bob, room_id):
            reply = await command(alice, room_id, "!webhook new")
            assert "direct message" in reply.body and "Secret" not in reply.body, reply.body
            path, secret = hook_from_reply(server, await private_answer(alice, "Secret:"))

            status, answer = post_hook(server, path, b'{"text": "unterminated')
            assert (status, answer.get("errcode")) == (400, "M_NOT_JSON"), (status, answer)

            unknown = f"/_converge/hooks/{uuid.uuid4().hex[:24]}"
            status, answer = post_hook(server, unknown, json.dumps({"text": "lost"}).encode())
            assert (status, answer.get("errcode")) == (404, "M_NOT_FOUND"), (status, answer)

            forged = json.dumps({"text": "forged"}).encode()
            status, answer = post_hook(server, path, forged, signature=sign("not-" + secret, forged))
            assert (status, answer.get("errcode")) == (401, "M_UNAUTHORIZED"), (status, answer)

            # A signature made for one body does not carry over to another.
            status, answer = post_hook(
                server, path, json.dumps({"text": "tampered"}).encode(), signature=sign(secret, forged)
            )
            assert (status, answer.get("errcode")) == (401, "M_UNAUTHORIZED"), (status, answer)

            signed = json.dumps({"text": "signed and sealed"}).encode()
            signature = sign(secret, signed)
            status, answer = post_hook(server, path, signed, signature=signature)
            assert status == 200, answer
            accepted = answer.get("event_id", "")
            assert accepted.startswith("$"), answer

            # The very same signed request again is a replay.
            status, answer = post_hook(server, path, signed, signature=signature)
            assert (status, answer.get("errcode")) == (401, "M_UNAUTHORIZED"), (status, answer)

            # Everything above was answered before this fence was sent, so whatever the
            # POSTs put in the room comes before it in bob's timeline.
            fence = await send_text(alice, room_id, "fence")
            seen = []

            def until_fence(resp):
                seen.extend(timeline(resp, room_id))
                return any(e.event_id == fence for e in seen)

            await sync_until(bob, until_fence, "alice's fence message")
            messages = [
                e for e in seen
                if e.sender.startswith("@hook-") and e.source.get("type") == "m.room.message"
            ]
            assert [e.event_id for e in messages] == [accepted], [e.source for e in messages]
            assert messages[0].sender == hook_user(path)
            assert messages[0].body == "signed and sealed"

    run(body())


def test_member_without_power_is_refused_by_the_bot(server):
    async def body():
        async with room_with_bot(server) as (alice, bob, room_id):
            reply = await command(bob, room_id, "!webhook new")
            assert reply.body.startswith("⚠️"), reply.body
            assert "power" in reply.body, reply.body
            assert not HOOK_PATH.search(reply.body), reply.body

            # No hook was made: no virtual user came into the room.
            fence = await send_text(alice, room_id, "fence")
            seen = []

            def until_fence(resp):
                seen.extend(timeline(resp, room_id))
                return any(e.event_id == fence for e in seen)

            await sync_until(alice, until_fence, "her fence message")
            strays = [
                e.source for e in seen
                if e.sender.startswith("@hook-") or (e.source.get("state_key") or "").startswith("@hook-")
            ]
            assert not strays, strays
            members = await alice.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), members
            assert {m.user_id for m in members.members} == {alice.user_id, bob.user_id, BOT}

    run(body())
