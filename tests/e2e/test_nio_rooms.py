# End-to-end tests of rooms, events and /sync: matrix-nio's AsyncClient against a real `converge serve` process.
"""Rooms, membership, messages, pagination, ephemeral events, redaction and power levels,
driven through matrix-nio's public AsyncClient calls (room_create, room_invite, room_send,
sync, room_messages, room_typing, update_receipt_marker, room_read_markers, room_redact,
room_kick, room_ban, room_unban, room_put_state, ...).

Every test registers its own users on the module's server (the `server` fixture in
conftest.py), so the tests are independent of each other and of their order.

"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
from nio import (
    AsyncClient,
    FullyReadEvent,
    InviteMemberEvent,
    InviteNameEvent,
    JoinedMembersResponse,
    JoinError,
    JoinResponse,
    MessageDirection,
    ReceiptEvent,
    RedactedEvent,
    RedactionEvent,
    RoomBanError,
    RoomBanResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventError,
    RoomGetStateEventResponse,
    RoomInviteResponse,
    RoomKickError,
    RoomKickResponse,
    RoomLeaveResponse,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomPutStateError,
    RoomPutStateResponse,
    RoomReadMarkersResponse,
    RoomRedactError,
    RoomRedactResponse,
    RoomSendError,
    RoomSendResponse,
    RoomTypingResponse,
    RoomUnbanResponse,
    SyncResponse,
    TypingNoticeEvent,
    UpdateReceiptMarkerResponse,
)

from e2e_support import (
    PASSWORD,
    SERVER_NAME,
    Server,
    fresh_username,
    join_room,
    nio_client,
    run,
    status_of,
)

SYNC_POLL_MS = 1000
SYNC_DEADLINE_S = 15.0


# --------------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def new_user(server: Server, prefix: str):
    """A freshly registered user whose nio client holds the new access token."""
    async with nio_client(server) as client:
        resp = await client.register(fresh_username(prefix), PASSWORD, device_name=f"{prefix} device")
        assert client.logged_in, f"register failed: {resp}"
        yield client


@contextlib.asynccontextmanager
async def same_account(server: Server, client: AsyncClient):
    """A second nio client on the same device and token, with no sync state of its own."""
    async with nio_client(server) as other:
        other.restore_login(client.user_id, client.device_id, client.access_token)
        yield other


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


def ephemeral(resp: SyncResponse, room_id: str) -> list:
    room = resp.rooms.join.get(room_id)
    return list(room.ephemeral) if room is not None else []


def room_account_data(resp: SyncResponse, room_id: str) -> list:
    room = resp.rooms.join.get(room_id)
    return list(room.account_data) if room is not None else []


def texts(events) -> list[tuple[str, str]]:
    """(sender, body) of the m.text messages among events, in order."""
    return [(e.sender, e.body) for e in events if isinstance(e, RoomMessageText)]


async def send_text(client: AsyncClient, room_id: str, body: str, tx_id: str | None = None) -> str:
    resp = await client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": body}, tx_id=tx_id
    )
    assert isinstance(resp, RoomSendResponse), f"{client.user_id} could not send {body!r}: {resp}"
    assert resp.event_id.startswith("$"), resp.event_id
    return resp.event_id


@contextlib.asynccontextmanager
async def room_with_alice_and_bob(server: Server, **create_args):
    """alice creates a room (private_chat unless told), invites bob, bob joins; both have
    synced past the join. Yields (alice, bob, room_id)."""
    async with new_user(server, "alice") as alice, new_user(server, "bob") as bob:
        create_args.setdefault("preset", RoomPreset.private_chat)
        created = await alice.room_create(invite=[bob.user_id], **create_args)
        assert isinstance(created, RoomCreateResponse), f"createRoom failed: {created}"
        room_id = created.room_id
        joined = await join_room(bob, room_id)
        assert isinstance(joined, JoinResponse), f"bob could not join: {joined}"
        assert joined.room_id == room_id
        await sync_until(bob, lambda r: room_id in r.rooms.join, "the joined room")
        await sync_until(
            alice,
            lambda r: any(
                isinstance(e, RoomMemberEvent) and e.state_key == bob.user_id and e.membership == "join"
                for e in timeline(r, room_id)
            ),
            "bob's join",
        )
        yield alice, bob, room_id


# --------------------------------------------------------------------------- invite and join


def test_create_invite_and_join_through_sync(server):
    async def body():
        async with new_user(server, "alice") as alice, new_user(server, "bob") as bob:
            alias_local = f"den{uuid.uuid4().hex[:8]}"
            created = await alice.room_create(
                name="Alice's den",
                topic="all about alice",
                alias=alias_local,
                preset=RoomPreset.private_chat,
                invite=[bob.user_id],
            )
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id
            assert room_id.startswith("!") and room_id.endswith(f":{SERVER_NAME}"), room_id

            # Bob's sync shows the invite, with stripped state naming the room.
            resp = await sync_until(bob, lambda r: r if room_id in r.rooms.invite else None, "the invite")
            assert room_id in bob.invited_rooms
            assert room_id not in resp.rooms.join
            invite_state = resp.rooms.invite[room_id].invite_state
            invites = [
                e for e in invite_state
                if isinstance(e, InviteMemberEvent) and e.state_key == bob.user_id
            ]
            assert len(invites) == 1, invite_state
            assert invites[0].membership == "invite"
            assert invites[0].sender == alice.user_id
            assert any(isinstance(e, InviteNameEvent) and e.name == "Alice's den" for e in invite_state), invite_state
            assert bob.invited_rooms[room_id].name == "Alice's den"

            # Bob joins through the alias alice asked for.
            joined = await join_room(bob, f"#{alias_local}:{SERVER_NAME}")
            assert isinstance(joined, JoinResponse), f"join by alias failed: {joined}"
            assert joined.room_id == room_id

            resp = await sync_until(bob, lambda r: r if room_id in r.rooms.join else None, "the joined room")
            assert room_id not in bob.invited_rooms
            room = bob.rooms[room_id]
            assert room.name == "Alice's den"
            assert room.topic == "all about alice"
            assert room.canonical_alias == f"#{alias_local}:{SERVER_NAME}"
            assert room.join_rule == "invite"
            assert room.power_levels.get_user_level(alice.user_id) == 100
            assert room.power_levels.get_user_level(bob.user_id) == 0
            assert set(room.users) == {alice.user_id, bob.user_id}, room.users

            # And alice sees bob's join in her timeline.
            await sync_until(
                alice,
                lambda r: any(
                    isinstance(e, RoomMemberEvent)
                    and e.state_key == bob.user_id
                    and e.membership == "join"
                    and e.prev_membership == "invite"
                    for e in timeline(r, room_id)
                ),
                "bob's join",
            )
            members = await alice.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), members
            assert {m.user_id for m in members.members} == {alice.user_id, bob.user_id}

    run(body())


def test_nio_join_without_request_body(server):
    async def body():
        async with new_user(server, "alice") as alice, new_user(server, "bob") as bob:
            created = await alice.room_create(invite=[bob.user_id])
            assert isinstance(created, RoomCreateResponse), created
            joined = await bob.join(created.room_id)
            assert isinstance(joined, JoinResponse), f"nio's join() failed: {joined}"
            assert joined.room_id == created.room_id

    run(body())


def test_invite_after_creation_and_leave(server):
    async def body():
        async with new_user(server, "alice") as alice, new_user(server, "bob") as bob:
            created = await alice.room_create(name="later")
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id
            # Not invited yet: an invite-only room refuses bob.
            refused = await join_room(bob, room_id)
            assert isinstance(refused, JoinError), f"joined an invite-only room uninvited: {refused}"
            assert refused.status_code == "M_FORBIDDEN", refused
            assert status_of(refused) == 403

            invited = await alice.room_invite(room_id, bob.user_id)
            assert isinstance(invited, RoomInviteResponse), invited
            await sync_until(bob, lambda r: room_id in r.rooms.invite, "the invite")
            assert isinstance(await join_room(bob, room_id), JoinResponse)
            await sync_until(bob, lambda r: room_id in r.rooms.join, "the joined room")

            left = await bob.room_leave(room_id)
            assert isinstance(left, RoomLeaveResponse), left
            resp = await sync_until(bob, lambda r: r if room_id in r.rooms.leave else None, "the room under leave")
            leaves = [
                e for e in resp.rooms.leave[room_id].timeline.events
                if isinstance(e, RoomMemberEvent) and e.state_key == bob.user_id
            ]
            assert leaves and leaves[-1].membership == "leave", resp.rooms.leave[room_id].timeline.events
            assert leaves[-1].sender == bob.user_id
            members = await alice.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), members
            assert {m.user_id for m in members.members} == {alice.user_id}

    run(body())


# --------------------------------------------------------------------------- messages and sync


def test_messages_exchanged_through_sync(server):
    async def body():
        async with room_with_alice_and_bob(server) as (alice, bob, room_id):
            sent = []
            for i in range(3):
                for client, who in ((alice, "alice"), (bob, "bob")):
                    text = f"{who} says {i} ({uuid.uuid4().hex[:6]})"
                    await send_text(client, room_id, text)
                    sent.append((client.user_id, text))

            # Each side sees every message, in the order sent, through incremental syncs.
            for client in (alice, bob):
                seen: list[tuple[str, str]] = []

                def check(resp, seen=seen):
                    seen.extend(texts(timeline(resp, room_id)))
                    return len(seen) >= len(sent)

                await sync_until(client, check, "all six messages")
                assert seen == sent, f"{client.user_id} saw {seen}"

            # The same transaction ID from the same device is one event, not two.
            txn = f"txn-{uuid.uuid4().hex}"
            first = await send_text(alice, room_id, "only once", tx_id=txn)
            again = await send_text(alice, room_id, "only once", tx_id=txn)
            assert first == again
            fence = await send_text(alice, room_id, "after the retry")
            seen_events = []

            def until_fence(resp):
                seen_events.extend(timeline(resp, room_id))
                return any(e.event_id == fence for e in seen_events)

            await sync_until(bob, until_fence, "alice's fence message")
            assert [e.event_id for e in seen_events if isinstance(e, RoomMessageText)] == [first, fence]

    run(body())


def test_sync_long_polls_until_an_event_arrives(server):
    async def body():
        async with room_with_alice_and_bob(server) as (alice, bob, room_id):
            # Nothing new: the server holds the request for about the timeout, then answers empty.
            # (An early answer is allowed only when it carries something, e.g. alice's presence.)
            for _ in range(3):
                start = time.monotonic()
                idle = await bob.sync(timeout=1500)
                took = time.monotonic() - start
                assert isinstance(idle, SyncResponse), idle
                assert took < 10, f"idle sync with timeout=1500ms took {took:.2f}s"
                if took >= 1.2:
                    assert timeline(idle, room_id) == [], timeline(idle, room_id)
                    break
                news = (
                    idle.presence_events,
                    idle.account_data_events,
                    idle.rooms.join,
                    idle.rooms.invite,
                    idle.rooms.leave,
                )
                assert any(news), f"sync with timeout=1500ms answered after {took:.2f}s with nothing new"
            else:
                pytest.fail("every idle sync returned early")

            # A message sent while bob waits wakes his sync well before its 20 s timeout.
            async def send_later():
                await asyncio.sleep(0.7)
                return await send_text(alice, room_id, "wake up, bob")

            start = time.monotonic()
            woken, event_id = await asyncio.gather(bob.sync(timeout=20000), send_later())
            took = time.monotonic() - start
            assert isinstance(woken, SyncResponse), woken
            assert took < 10, f"long-polling sync did not return on a new event ({took:.2f}s)"
            assert [e.event_id for e in timeline(woken, room_id)] == [event_id]
            assert texts(timeline(woken, room_id)) == [(alice.user_id, "wake up, bob")]

    run(body())


def test_room_messages_paginate_both_ways(server):
    async def body():
        async with room_with_alice_and_bob(server, name="history") as (alice, bob, room_id):
            sent: list[str] = []  # event IDs in the order sent
            bodies: dict[str, str] = {}
            for i in range(6):
                for client, who in ((alice, "a"), (bob, "b")):
                    text = f"{who}{i}"
                    eid = await send_text(client, room_id, text)
                    sent.append(eid)
                    bodies[eid] = text

            async with same_account(server, bob) as reader:
                # A fresh initial sync with a 3-event timeline: limited, with a prev_batch token.
                init = await reader.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 3}}})
                assert isinstance(init, SyncResponse), init
                tl = init.rooms.join[room_id].timeline
                assert tl.limited is True
                assert tl.prev_batch
                assert [e.event_id for e in tl.events] == sent[-3:]

                # Backwards from prev_batch, 4 at a time, until the server says there is no more.
                pages = []
                token = tl.prev_batch
                for _ in range(20):
                    page = await reader.room_messages(room_id, start=token, direction=MessageDirection.back, limit=4)
                    assert isinstance(page, RoomMessagesResponse), page
                    assert page.start == token
                    assert len(page.chunk) <= 4
                    pages.append(page)
                    if not page.end:
                        break
                    assert page.chunk, "a page with an `end` token must not be empty"
                    token = page.end
                else:
                    pytest.fail("backwards pagination never reached the start of the room")

                backwards = [e for p in pages for e in p.chunk]
                ids_back = [e.event_id for e in backwards]
                assert len(ids_back) == len(set(ids_back)), "an event was returned twice"
                assert not set(ids_back) & set(sent[-3:]), "pagination repeated the sync timeline"
                # Newest first: the messages are exactly the ones before the sync timeline, reversed.
                assert [e.event_id for e in backwards if e.event_id in bodies] == list(reversed(sent[:-3]))
                assert [e.body for e in backwards if isinstance(e, RoomMessageText)] == [
                    bodies[eid] for eid in reversed(sent[:-3])
                ]
                # The oldest event of the room is its creation.
                assert backwards[-1].source["type"] == "m.room.create", backwards[-1].source
                stamps = [e.server_timestamp for e in backwards]
                assert stamps == sorted(stamps, reverse=True), "backwards pages are not newest-first"

                # Forwards from a returned `end`: oldest first, through to the newest message.
                async def forwards_from(start_token):
                    events = []
                    tok = start_token
                    for _ in range(30):
                        page = await reader.room_messages(
                            room_id, start=tok, direction=MessageDirection.front, limit=4
                        )
                        assert isinstance(page, RoomMessagesResponse), page
                        events.extend(page.chunk)
                        if not page.end or not page.chunk:
                            return events
                        tok = page.end
                    pytest.fail("forwards pagination never reached the end of the room")

                def oldest_message_index(upto_page: int) -> int:
                    ids = {e.event_id for p in pages[: upto_page + 1] for e in p.chunk}
                    return min((sent.index(i) for i in ids if i in bodies), default=0)

                with_end = [i for i, p in enumerate(pages) if p.end]
                assert with_end, "no backwards page returned an `end` token"
                for i in (with_end[0], with_end[-1]):
                    fwd = await forwards_from(pages[i].end)
                    ids_fwd = [e.event_id for e in fwd]
                    assert len(ids_fwd) == len(set(ids_fwd)), "an event was returned twice"
                    assert [x for x in ids_fwd if x in bodies] == sent[oldest_message_index(i):], (
                        f"forwards from the end of backwards page {i}"
                    )
                    stamps = [e.server_timestamp for e in fwd]
                    assert stamps == sorted(stamps), "forwards pages are not oldest-first"
                # From the deepest token, forwards pagination covers every message sent.
                assert oldest_message_index(with_end[-1]) == 0, "the deepest `end` token is past a0"

    run(body())


# --------------------------------------------------------------------------- ephemeral events


def test_typing_notifications(server):
    async def body():
        async with room_with_alice_and_bob(server) as (alice, bob, room_id):
            resp = await alice.room_typing(room_id, True, timeout=30000)
            assert isinstance(resp, RoomTypingResponse), resp

            def typing_users(r):
                notices = [e for e in ephemeral(r, room_id) if isinstance(e, TypingNoticeEvent)]
                return notices[-1].users if notices else None

            await sync_until(bob, lambda r: typing_users(r) == [alice.user_id], "alice typing")
            assert bob.rooms[room_id].typing_users == [alice.user_id]

            resp = await alice.room_typing(room_id, False)
            assert isinstance(resp, RoomTypingResponse), resp
            await sync_until(bob, lambda r: typing_users(r) == [], "alice stop typing")
            assert bob.rooms[room_id].typing_users == []

    run(body())


def test_read_receipts_and_markers(server):
    async def body():
        async with room_with_alice_and_bob(server) as (alice, bob, room_id):
            m1 = await send_text(bob, room_id, "first")
            m2 = await send_text(bob, room_id, "second")
            m3 = await send_text(bob, room_id, "third")

            # A public read receipt reaches bob.
            resp = await alice.update_receipt_marker(room_id, m1)
            assert isinstance(resp, UpdateReceiptMarkerResponse), resp

            def receipts(r):
                return [
                    rc for e in ephemeral(r, room_id) if isinstance(e, ReceiptEvent) for rc in e.receipts
                ]

            def alice_read(event_id):
                return lambda r: any(
                    rc.user_id == alice.user_id and rc.event_id == event_id and rc.receipt_type == "m.read"
                    for rc in receipts(r)
                )

            await sync_until(bob, alice_read(m1), "alice's read receipt")
            # nio sends its receipts for the main timeline (`thread_id: "main"`), and the
            # server passes the thread on, so nio files it as a threaded receipt.
            assert bob.rooms[room_id].threaded_read_receipts[alice.user_id]["main"].event_id == m1
            assert alice.user_id not in bob.rooms[room_id].read_receipts

            # The fully-read marker and a private receipt are for alice's eyes only.
            resp = await alice.room_read_markers(room_id, fully_read_event=m2, private_read_event=m2)
            assert isinstance(resp, RoomReadMarkersResponse), resp
            await sync_until(
                alice,
                lambda r: any(
                    isinstance(e, FullyReadEvent) and e.event_id == m2 for e in room_account_data(r, room_id)
                ),
                "her fully-read marker",
            )
            assert alice.rooms[room_id].fully_read_marker == m2

            # Then a public receipt through /read_markers: bob sees it, and nothing private.
            resp = await alice.room_read_markers(room_id, fully_read_event=m3, read_event=m3)
            assert isinstance(resp, RoomReadMarkersResponse), resp
            seen_by_bob = []

            def until_m3(r):
                seen_by_bob.extend(receipts(r))
                assert not [e for e in room_account_data(r, room_id) if isinstance(e, FullyReadEvent)], (
                    "bob was sent a fully-read marker he never set"
                )
                return alice_read(m3)(r)

            await sync_until(bob, until_m3, "alice's receipt through /read_markers")
            leaked = [rc for rc in seen_by_bob if rc.receipt_type != "m.read"]
            assert not leaked, f"bob was sent private receipts: {leaked}"
            assert bob.rooms[room_id].read_receipts[alice.user_id].event_id == m3

    run(body())


# --------------------------------------------------------------------------- redaction


def test_redaction_is_seen_by_the_other_member(server):
    async def body():
        async with room_with_alice_and_bob(server) as (alice, bob, room_id):
            secret = await send_text(alice, room_id, "my password is hunter2")
            await sync_until(
                bob, lambda r: (alice.user_id, "my password is hunter2") in texts(timeline(r, room_id)),
                "the message",
            )

            redacted = await alice.room_redact(room_id, secret, reason="oops")
            assert isinstance(redacted, RoomRedactResponse), redacted
            redaction_id = redacted.event_id

            # Bob's incremental sync carries the redaction event.
            def redaction(r):
                for e in timeline(r, room_id):
                    if isinstance(e, RedactionEvent) and e.redacts == secret:
                        return e
                return None

            event = await sync_until(bob, redaction, "the redaction")
            assert event.event_id == redaction_id
            assert event.sender == alice.user_id
            assert event.reason == "oops"

            # History now holds the message with its content stripped.
            page = await bob.room_messages(room_id, start=bob.next_batch, limit=20)
            assert isinstance(page, RoomMessagesResponse), page
            matches = [e for e in page.chunk if e.event_id == secret]
            assert len(matches) == 1, [e.event_id for e in page.chunk]
            assert isinstance(matches[0], RedactedEvent), matches[0]
            assert matches[0].source["content"] == {}
            assert matches[0].source["unsigned"]["redacted_because"]["event_id"] == redaction_id
            assert "hunter2" not in str(page.chunk)

            fetched = await bob.room_get_event(room_id, secret)
            assert isinstance(fetched, RoomGetEventResponse), fetched
            assert isinstance(fetched.event, RedactedEvent), fetched.event

            # So does a new device's initial sync.
            async with same_account(server, bob) as fresh:
                init = await fresh.sync(timeout=0)
                assert isinstance(init, SyncResponse), init
                events = {e.event_id: e for e in timeline(init, room_id)}
                assert secret in events, "the redacted message is missing from the initial sync"
                assert isinstance(events[secret], RedactedEvent), events[secret]
                assert "hunter2" not in str(init.rooms.join[room_id].timeline.events)

    run(body())


# --------------------------------------------------------------------------- power levels


def test_power_levels_forbid_a_member_to_moderate(server):
    async def body():
        async with room_with_alice_and_bob(server) as (alice, bob, room_id):
            levels = bob.rooms[room_id].power_levels
            assert levels.get_user_level(bob.user_id) == 0
            assert levels.defaults.kick == 50 and levels.defaults.ban == 50

            kick = await bob.room_kick(room_id, alice.user_id, reason="coup")
            assert isinstance(kick, RoomKickError), f"PL 0 kicked the room creator: {kick}"
            assert kick.status_code == "M_FORBIDDEN", kick
            assert status_of(kick) == 403

            ban = await bob.room_ban(room_id, alice.user_id, reason="coup")
            assert isinstance(ban, RoomBanError), f"PL 0 banned the room creator: {ban}"
            assert ban.status_code == "M_FORBIDDEN", ban
            assert status_of(ban) == 403

            # State events need state_default (50): bob may not, alice may.
            denied = await bob.room_put_state(room_id, "org.example.flag", {"v": 1}, state_key="k")
            assert isinstance(denied, RoomPutStateError), f"PL 0 sent a state event: {denied}"
            assert denied.status_code == "M_FORBIDDEN", denied
            allowed = await alice.room_put_state(room_id, "org.example.flag", {"v": 2}, state_key="k")
            assert isinstance(allowed, RoomPutStateResponse), allowed
            state = await bob.room_get_state_event(room_id, "org.example.flag", "k")
            assert isinstance(state, RoomGetStateEventResponse), state
            assert state.content == {"v": 2}

            # Redacting someone else's event needs `redact` (50).
            mine = await send_text(alice, room_id, "alice's words")
            redact = await bob.room_redact(room_id, mine, reason="censor")
            assert isinstance(redact, RoomRedactError), f"PL 0 redacted another user's event: {redact}"
            assert redact.status_code == "M_FORBIDDEN", redact

            members = await alice.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), members
            assert {m.user_id for m in members.members} == {alice.user_id, bob.user_id}

    run(body())


def test_room_name_change_requires_power_level_50(server):
    async def body():
        async with room_with_alice_and_bob(server, name="original") as (alice, bob, room_id):
            denied = await bob.room_put_state(room_id, "m.room.name", {"name": "bob was here"})
            assert isinstance(denied, RoomPutStateError), f"PL 0 renamed the room: {denied}"
            assert denied.status_code == "M_FORBIDDEN", denied
            assert status_of(denied) == 403

            renamed = await alice.room_put_state(room_id, "m.room.name", {"name": "renamed by alice"})
            assert isinstance(renamed, RoomPutStateResponse), renamed
            name = await bob.room_get_state_event(room_id, "m.room.name")
            assert isinstance(name, RoomGetStateEventResponse), name
            assert name.content == {"name": "renamed by alice"}
            await sync_until(bob, lambda r: bob.rooms[room_id].name == "renamed by alice", "the new name")

    run(body())


def test_read_room_name_state_event(server):
    async def body():
        async with room_with_alice_and_bob(server, name="readable") as (alice, bob, room_id):
            name = await bob.room_get_state_event(room_id, "m.room.name")
            assert not isinstance(name, RoomGetStateEventError), name
            assert isinstance(name, RoomGetStateEventResponse), name
            assert name.content == {"name": "readable"}

    run(body())


def test_kicked_member_sees_the_leave(server):
    async def body():
        async with room_with_alice_and_bob(server) as (alice, bob, room_id):
            kick = await alice.room_kick(room_id, bob.user_id, reason="bye bob")
            assert isinstance(kick, RoomKickResponse), kick

            resp = await sync_until(bob, lambda r: r if room_id in r.rooms.leave else None, "the kick")
            assert room_id not in resp.rooms.join
            leaves = [
                e for e in resp.rooms.leave[room_id].timeline.events
                if isinstance(e, RoomMemberEvent) and e.state_key == bob.user_id
            ]
            assert leaves, resp.rooms.leave[room_id].timeline.events
            assert leaves[-1].membership == "leave"
            assert leaves[-1].sender == alice.user_id
            assert leaves[-1].content.get("reason") == "bye bob"

            # Bob is out: he cannot post any more, and alice's member list agrees.
            after = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "still here?"})
            assert isinstance(after, RoomSendError), f"a kicked user could still send: {after}"
            assert after.status_code == "M_FORBIDDEN", after
            members = await alice.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), members
            assert {m.user_id for m in members.members} == {alice.user_id}

    run(body())


def test_banned_user_cannot_join_a_public_room(server):
    async def body():
        async with new_user(server, "alice") as alice, new_user(server, "carol") as carol, new_user(
            server, "dave"
        ) as dave:
            alias_local = f"plaza{uuid.uuid4().hex[:8]}"
            alias = f"#{alias_local}:{SERVER_NAME}"
            created = await alice.room_create(name="Plaza", alias=alias_local, preset=RoomPreset.public_chat)
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id

            ban = await alice.room_ban(room_id, carol.user_id, reason="troll")
            assert isinstance(ban, RoomBanResponse), ban
            member = await alice.room_get_state_event(room_id, "m.room.member", carol.user_id)
            assert isinstance(member, RoomGetStateEventResponse), member
            assert member.content.get("membership") == "ban"

            for target in (room_id, alias):
                refused = await join_room(carol, target)
                assert isinstance(refused, JoinError), f"banned user joined via {target}: {refused}"
                assert refused.status_code == "M_FORBIDDEN", refused
                assert status_of(refused) == 403

            # The room itself is open: an unbanned stranger gets in.
            ok = await join_room(dave, alias)
            assert isinstance(ok, JoinResponse), f"public room refused a stranger: {ok}"

            # After an unban carol can join too.
            unban = await alice.room_unban(room_id, carol.user_id)
            assert isinstance(unban, RoomUnbanResponse), unban
            ok = await join_room(carol, room_id)
            assert isinstance(ok, JoinResponse), f"unbanned user still refused: {ok}"
            members = await alice.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), members
            assert {m.user_id for m in members.members} == {alice.user_id, carol.user_id, dave.user_id}

    run(body())
