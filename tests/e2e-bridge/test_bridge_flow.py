# End-to-end tests of the appservice API with a real mautrix appservice: ping, puppet join, echo, typing, catch-up after a restart and retries after HTTP 500.
"""The bridge scenario of the issue, one test per step, each on a fresh server and bridge.

The appservice is mautrix-python's `AppService` with its `IntentAPI` (see EchoBridge in
bridge_support.py); the Matrix user is matrix-nio's AsyncClient. Besides each test's own
assertions, every test ends with `Recorder.assert_invariants()`: every request the homeserver
made carried `Authorization: Bearer <hs_token>`, a transaction ID never came with different
content, no event was delivered in two transactions, and every pushed event was a full client
event (event_id, room_id, sender, type, origin_server_ts, content).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
from mautrix.errors import MForbidden
from mautrix.types import SpecVersions
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinedMembersResponse,
    RegisterResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMemberEvent,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    RoomTypingResponse,
    SyncResponse,
)

from bridge_support import (
    APPSERVICE_ID,
    BOT_MXID,
    ECHO_PREFIX,
    PASSWORD,
    PUPPET,
    WAIT_S,
    Recorder,
    errcode,
    event_matches,
    fresh_username,
    http_json,
    wait_for_outcome,
    wait_until,
)

# How many times the appservice answers a transaction with HTTP 500 before accepting it.
FAILED_ATTEMPTS = 2


# --------------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def matrix_user(env, prefix: str = "human"):
    """A normally registered user (open registration) in a nio client."""
    # Fail fast instead of nio's default of retrying connection errors and 429s forever.
    config = AsyncClientConfig(max_timeouts=0, max_limit_exceeded=0, encryption_enabled=False)
    client = AsyncClient(env.server.url, config=config)
    try:
        resp = await client.register(fresh_username(prefix), PASSWORD, device_name="e2e-bridge")
        assert isinstance(resp, RegisterResponse), f"registering a normal user failed: {resp}"
        yield client
    finally:
        await client.close()


def timeline(resp: SyncResponse, room_id: str) -> list:
    room = resp.rooms.join.get(room_id)
    return list(room.timeline.events) if room is not None else []


def texts(events) -> list[tuple[str, str]]:
    return [(e.sender, e.body) for e in events if isinstance(e, RoomMessageText)]


async def sync_until(client: AsyncClient, check, what: str, recorder: Recorder, deadline_s: float = WAIT_S):
    """Incremental syncs until check(response) is truthy."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        resp = await client.sync(timeout=1000)
        assert isinstance(resp, SyncResponse), f"sync failed: {resp}"
        found = check(resp)
        if found:
            return found
    pytest.fail(
        f"{client.user_id} did not see {what} within {deadline_s:.0f}s of syncing\n" + recorder.describe(),
        pytrace=False,
    )


async def send_text(client: AsyncClient, room_id: str, body: str) -> str:
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(resp, RoomSendResponse), f"{client.user_id} could not send {body!r}: {resp}"
    return resp.event_id


def puppet_joined(resp: SyncResponse, room_id: str) -> bool:
    return any(
        isinstance(e, RoomMemberEvent) and e.state_key == PUPPET and e.membership == "join"
        for e in timeline(resp, room_id)
    )


async def create_room(client: AsyncClient) -> str:
    created = await client.room_create(preset=RoomPreset.private_chat, name="bridge e2e")
    assert isinstance(created, RoomCreateResponse), f"createRoom failed: {created}"
    return created.room_id


async def room_with_puppet(env, human: AsyncClient) -> str:
    """human creates a room and invites the puppet; returns once the bridge has joined it, the
    human has seen the join, and the appservice got the puppet's join in a transaction."""
    rec = env.recorder
    room_id = await create_room(human)
    invite = await human.room_invite(room_id, PUPPET)
    assert isinstance(invite, RoomInviteResponse), f"inviting {PUPPET} (not registered yet) failed: {invite}"
    invite_event = await wait_until(
        lambda: rec.find_delivered(type="m.room.member", room_id=room_id, state_key=PUPPET, membership="invite"),
        f"the invite of {PUPPET} in a transaction to the appservice",
        rec,
    )
    await wait_for_outcome(rec, "join", invite_event["event_id"], f"{PUPPET} joining after its invite")
    await sync_until(human, lambda r: puppet_joined(r, room_id), f"{PUPPET}'s join", rec)
    await wait_until(
        lambda: rec.find_delivered(type="m.room.member", room_id=room_id, state_key=PUPPET, membership="join"),
        f"{PUPPET}'s own join in a transaction to the appservice",
        rec,
    )
    return room_id


async def step(what: str, coro, recorder: Recorder):
    """Awaits one appservice call; a failure names the step as a mautrix bridge would hit it."""
    try:
        return await coro
    except Exception as e:  # noqa: BLE001 - turned into a readable test failure
        status = getattr(e, "http_status", None)
        code = getattr(e, "errcode", None)
        message = getattr(e, "message", None) or str(e)
        failure = f"{what} failed: {type(e).__name__} HTTP {status} {code}: {message}"
    pytest.fail(f"{failure}\n{recorder.describe()}", pytrace=False)


# --------------------------------------------------------------------------- 1. startup and ping


def test_appservice_starts_and_pings(env):
    rec, reg, bot = env.recorder, env.registration, env.bridge.bot

    async def body():
        # mautrix's bridge startup (mautrix/bridge/matrix.py, wait_for_connection), step by step.
        versions = await step("GET /_matrix/client/versions as the appservice", bot.versions(), rec)
        assert versions.supports_at_least(SpecVersions.V17) or versions.supports("fi.mau.msc2659.stable"), (
            f"/versions lists {[str(v) for v in versions.versions]}: without v1.7 (or the unstable "
            "feature fi.mau.msc2659.stable) mautrix bridges skip the ping"
        )

        async def whoami_unless_forbidden():
            try:
                return await bot.whoami()
            except MForbidden:
                return None

        who = await step("GET /_matrix/client/v3/account/whoami as the appservice bot", whoami_unless_forbidden(), rec)
        if who is None:
            # mautrix registers its bot and asks again when whoami says M_FORBIDDEN.
            await step(f"registering the bot {BOT_MXID}", bot.ensure_registered(), rec)
            who = await step("GET /_matrix/client/v3/account/whoami as the bot, after registering it", bot.whoami(), rec)
        assert who.user_id == BOT_MXID, f"whoami with the as_token answered {who.user_id}, expected {BOT_MXID}"

        txn_id = bot.api.get_txn_id()
        await step(
            f"POST /_matrix/client/v1/appservice/{APPSERVICE_ID}/ping (mautrix bridges exit with "
            "status 16 when it fails)",
            env.bridge.az.ping_self(txn_id),
            rec,
        )
        pings = rec.pings()
        assert len(pings) == 1, f"expected one POST /_matrix/app/v1/ping at the appservice:\n{rec.describe()}"
        assert pings[0].authorization == f"Bearer {reg.hs_token}", f"ping sent {pings[0].authorization!r}"
        assert pings[0].body == {"transaction_id": txn_id}, f"ping body {pings[0].body!r}"
        assert pings[0].status == 200

        # The duration, read without mautrix (whose ping_self turns 0 ms into -1).
        status, resp = await http_json(
            "POST",
            env.server.client_url(f"v1/appservice/{APPSERVICE_ID}/ping"),
            token=reg.as_token,
            body={"transaction_id": "raw-ping"},
        )
        assert status == 200, f"ping answered {status} {resp}"
        assert isinstance(resp.get("duration_ms"), int) and resp["duration_ms"] >= 0, resp
        assert rec.pings()[-1].body == {"transaction_id": "raw-ping"}
        rec.assert_invariants()

    env.run(body())


# --------------------------------------------------------------------------- 2. invite -> join


def test_invited_puppet_is_registered_and_joins(env):
    rec, reg = env.recorder, env.registration

    async def body():
        async with matrix_user(env) as human:
            room_id = await create_room(human)
            invite = await human.room_invite(room_id, PUPPET)
            assert isinstance(invite, RoomInviteResponse), (
                f"inviting {PUPPET} (in the namespace, not registered yet) failed: {invite}"
            )
            invite_event = await wait_until(
                lambda: rec.find_delivered(type="m.room.member", room_id=room_id, state_key=PUPPET, membership="invite"),
                f"the invite of {PUPPET} in a transaction",
                rec,
            )
            assert invite_event["sender"] == human.user_id
            assert any(h.event_id == invite_event["event_id"] for h in rec.handled), (
                "mautrix did not pass the invite to its handlers (could not parse it?)"
            )
            # The bridge's reaction: IntentAPI.ensure_registered() then join_room().
            await wait_for_outcome(rec, "join", invite_event["event_id"], f"{PUPPET} joining after its invite")
            await sync_until(human, lambda r: puppet_joined(r, room_id), f"{PUPPET}'s join", rec)
            members = await human.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), members
            assert PUPPET in {m.user_id for m in members.members}
            # The puppet's own join is pushed too (its user ID is in the namespace).
            await wait_until(
                lambda: rec.find_delivered(type="m.room.member", room_id=room_id, state_key=PUPPET, membership="join"),
                f"{PUPPET}'s join in a transaction",
                rec,
            )

            # Identity assertion: the as_token with ?user_id= acts as the puppet.
            status, who = await http_json(
                "GET", env.server.client_url("v3/account/whoami"), token=reg.as_token, params={"user_id": PUPPET}
            )
            assert status == 200 and who.get("user_id") == PUPPET, f"whoami as the puppet: {status} {who}"

            # Registering the puppet again, exactly as IntentAPI.ensure_registered() asks, is
            # M_USER_IN_USE (mautrix ignores that error; a bridge restarted without its
            # database does this for every puppet).
            status, resp = await http_json(
                "POST",
                env.server.client_url("v3/register"),
                token=reg.as_token,
                params={"kind": "user", "user_id": PUPPET},
                body={"username": "echo_alice", "type": "m.login.application_service", "inhibit_login": True},
            )
            assert (status, errcode(resp)) == (400, "M_USER_IN_USE"), f"registering the puppet again: {status} {resp}"
            rec.assert_invariants()

    env.run(body())


# --------------------------------------------------------------------------- 3. echo


def test_message_is_echoed_by_the_puppet(env):
    rec = env.recorder

    async def body():
        async with matrix_user(env) as human:
            room_id = await room_with_puppet(env, human)
            event_id = await send_text(human, room_id, "hello")
            message = await wait_until(
                lambda: rec.find_delivered(event_id=event_id), "'hello' in a transaction to the appservice", rec
            )
            assert event_matches(
                message, type="m.room.message", room_id=room_id, sender=human.user_id, body="hello"
            ), message
            assert any(h.event_id == event_id for h in rec.handled), "mautrix did not pass 'hello' to its handlers"
            # The bridge answers as the puppet (IntentAPI.send_text with ?user_id=).
            await wait_for_outcome(rec, "echo", event_id, "the puppet's answer to 'hello'")
            await sync_until(
                human,
                lambda r: (PUPPET, ECHO_PREFIX + "hello") in texts(timeline(r, room_id)),
                f"'echo: hello' from {PUPPET}",
                rec,
            )
            rec.assert_invariants()

    env.run(body())


# --------------------------------------------------------------------------- 4. typing


def test_typing_reaches_the_appservice(env):
    rec = env.recorder

    def typing_edu(room_id: str, user_typing: str, typing: bool):
        for edu in rec.delivered_ephemeral():
            if edu.get("type") != "m.typing":
                continue
            if "room_id" not in edu:
                pytest.fail(f"an m.typing EDU without room_id reached the appservice: {edu}", pytrace=False)
            user_ids = (edu.get("content") or {}).get("user_ids", [])
            if edu["room_id"] == room_id and (user_typing in user_ids) == typing:
                return edu
        return None

    async def body():
        async with matrix_user(env) as human:
            room_id = await room_with_puppet(env, human)
            seen_before = len(rec.delivered_ephemeral())
            resp = await human.room_typing(room_id, True, timeout=20000)
            assert isinstance(resp, RoomTypingResponse), resp
            await wait_until(
                lambda: typing_edu(room_id, human.user_id, True),
                f"an m.typing EDU naming {human.user_id} in `ephemeral` of a transaction",
                rec,
            )
            await wait_until(
                lambda: any(
                    h.ephemeral and h.type == "m.typing" and h.room_id == room_id
                    and human.user_id in (h.content or {}).get("user_ids", [])
                    for h in rec.handled
                ),
                "mautrix passing the typing event to the bridge",
                rec,
            )
            resp = await human.room_typing(room_id, False)
            assert isinstance(resp, RoomTypingResponse), resp
            await wait_until(
                lambda: any(
                    e.get("type") == "m.typing" and e.get("room_id") == room_id
                    and human.user_id not in (e.get("content") or {}).get("user_ids", [])
                    for e in rec.delivered_ephemeral()[seen_before:]
                ),
                f"an m.typing EDU without {human.user_id} after it stopped typing",
                rec,
            )
            rec.assert_invariants()

    env.run(body())


# --------------------------------------------------------------------------- 5. catch-up


def test_events_missed_while_down_arrive_once_in_order(env):
    rec = env.recorder

    async def body():
        async with matrix_user(env) as human:
            room_id = await room_with_puppet(env, human)

            await env.bridge.stop()  # the appservice's port now refuses connections
            sent = [await send_text(human, room_id, f"missed {i}") for i in (1, 2, 3)]
            await asyncio.sleep(1.0)  # the homeserver tries, and fails, to deliver them
            await env.bridge.start()  # same port, same tokens, empty transaction memory
            # A restarting mautrix bridge pings first; test_appservice_starts_and_pings checks
            # the ping itself, so its result does not matter here.
            with contextlib.suppress(Exception):
                await env.bridge.az.ping_self(env.bridge.bot.api.get_txn_id())

            await wait_until(
                lambda: set(sent) <= set(rec.delivered_ids()),
                "the 3 messages sent while the appservice was down",
                rec,
            )
            # A later message as a barrier: transactions go out in order, so once it is in,
            # any repeat of the earlier ones would have arrived already.
            marker = await send_text(human, room_id, "after the restart")
            await wait_until(lambda: marker in rec.delivered_ids(), "the message sent after the restart", rec)

            expected = sent + [marker]
            delivered = [i for i in rec.delivered_ids() if i in expected]
            assert delivered == expected, (
                f"expected each message once in send order {expected}, the transactions had {delivered}\n"
                + rec.describe()
            )
            handled = [h.event_id for h in rec.handled if h.event_id in expected]
            assert handled == expected, f"mautrix's handlers got {handled}, expected {expected}"

            # The restarted bridge works: it re-registers the puppet (M_USER_IN_USE), re-joins
            # (already joined) and answers as the puppet again.
            for event_id in expected:
                await wait_for_outcome(rec, "echo", event_id, f"the restarted bridge answering {event_id}")
            await sync_until(
                human,
                lambda r: (PUPPET, ECHO_PREFIX + "after the restart") in texts(timeline(r, room_id)),
                "the restarted bridge's answer",
                rec,
            )
            rec.assert_invariants()

    env.run(body())


# --------------------------------------------------------------------------- 6. retries after 500


def test_transactions_answered_500_are_retried(env):
    rec = env.recorder

    async def body():
        async with matrix_user(env) as human:
            room_id = await room_with_puppet(env, human)
            text = f"retry me {uuid.uuid4().hex[:8]}"
            rec.fail_transactions(
                lambda b: any(event_matches(e, room_id=room_id, body=text) for e in b.get("events") or []),
                times=FAILED_ATTEMPTS,
            )
            event_id = await send_text(human, room_id, text)
            await wait_until(
                lambda: event_id in rec.delivered_ids(),
                f"{text!r} accepted after the appservice answered HTTP 500 {FAILED_ATTEMPTS} times",
                rec,
            )
            attempts = [r for r in rec.transactions() if any(e.get("event_id") == event_id for e in r.events)]
            failed = [r for r in attempts if r.injected_failure]
            assert len(failed) == FAILED_ATTEMPTS, [r.summary() for r in attempts]
            assert attempts[-1].status == 200 and attempts.index(failed[-1]) < len(attempts) - 1, (
                [r.summary() for r in attempts]
            )

            marker = await send_text(human, room_id, "after the retries")
            await wait_until(lambda: marker in rec.delivered_ids(), "the message sent after the retries", rec)
            delivered = [i for i in rec.delivered_ids() if i in (event_id, marker)]
            assert delivered == [event_id, marker], f"expected each once and in order, got {delivered}"
            await wait_for_outcome(rec, "echo", event_id, "the puppet's answer to the retried message")
            rec.assert_invariants()

    env.run(body())
