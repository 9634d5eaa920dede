# Harness of the appservice end-to-end tests: a converge process loading a registration, and a real mautrix echo appservice that records what the homeserver sends it.
"""Helpers of the appservice (bridge) end-to-end tests in tests/e2e-bridge (fixtures in conftest.py).

Three parts:

* `Registration` and `BridgeServer`: a registration YAML in the format mautrix bridges generate,
  and one `converge serve --config FILE` process whose config names it in
  `[appservices] registration_files`; the rest of the settings come from CONVERGE_* variables
  as in tests/e2e. CONVERGE_BIN names the binary (run.sh defaults it to target/debug/converge).
* `EchoBridge`: a mautrix `AppService` (the real library, unmodified) that, like a puppeting
  bridge, registers and joins its puppet when the puppet is invited, and answers every text
  message as the puppet with "echo: <body>". It can be stopped and started again on the same
  port with the same tokens, as a restarted bridge process would be (a new `AppService` object
  each time, so mautrix's in-memory transaction de-duplication starts empty).
* `Recorder`: an aiohttp middleware in front of mautrix's own handlers. It keeps every request
  the homeserver makes to the appservice (path, Authorization header, JSON body, the status
  answered), can answer chosen transactions with HTTP 500 to force retries, and checks the
  transaction invariants of the spec (hs_token on every request; a transaction ID never carries
  different content; no event delivered in two transactions).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import traceback
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest
from aiohttp import web
from mautrix.appservice import AppService, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.types import EventType, Membership, MessageType

SERVER_NAME = "localhost"
PASSWORD = "correct horse battery staple"
APPSERVICE_ID = "echo-e2e"
SENDER_LOCALPART = "echobot"
BOT_MXID = f"@{SENDER_LOCALPART}:{SERVER_NAME}"
PUPPET = f"@echo_alice:{SERVER_NAME}"
USER_NAMESPACE = f"@echo_.*:{SERVER_NAME}"
ECHO_PREFIX = "echo: "

STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 30.0
# The longest any single wait in a test may take (the issue asks for at most 30 s).
WAIT_S = 30.0
# Upper bound for a whole test body.
TEST_BUDGET_S = 90.0

TXN_PATH = re.compile(r"^(?:/_matrix/app/v1)?/transactions/(?P<txn>[^/]+)$")

log = logging.getLogger("e2e-bridge")


# --------------------------------------------------------------------------- small utilities


def converge_bin() -> Path:
    value = os.environ.get("CONVERGE_BIN")
    if not value:
        pytest.fail(
            "CONVERGE_BIN is not set: point it at a converge binary "
            "(bash tests/e2e-bridge/run.sh defaults it to target/debug/converge)",
            pytrace=False,
        )
    path = Path(value).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"CONVERGE_BIN={value!r} is not an executable file", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_username(prefix: str = "user") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def mxid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


async def http_json(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One plain HTTP call (no Matrix SDK in between); returns (status, parsed JSON or text)."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, url, json=body, params=params, headers=headers,
            timeout=aiohttp.ClientTimeout(total=WAIT_S),
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


def errcode(body: Any) -> str | None:
    return body.get("errcode") if isinstance(body, dict) else None


# --------------------------------------------------------------------------- registration


@dataclass
class Registration:
    """The appservice registration the server loads (and the bridge uses the same tokens)."""

    port: int
    id: str = APPSERVICE_ID
    sender_localpart: str = SENDER_LOCALPART
    as_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    hs_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def yaml(self) -> str:
        # Written by hand (no YAML library needed); the shape and key order are those of the
        # registration files mautrix bridges generate, including the MSC2409 unstable key.
        return (
            "# Appservice registration written by tests/e2e-bridge for one test server.\n"
            f"id: {self.id}\n"
            f"url: {self.url}\n"
            f"as_token: {self.as_token}\n"
            f"hs_token: {self.hs_token}\n"
            f"sender_localpart: {self.sender_localpart}\n"
            "namespaces:\n"
            "  users:\n"
            "  - exclusive: true\n"
            f"    regex: '{USER_NAMESPACE}'\n"
            "  aliases: []\n"
            "  rooms: []\n"
            "rate_limited: false\n"
            "receive_ephemeral: true\n"
            "de.sorunome.msc2409.push_ephemeral: true\n"
        )


# --------------------------------------------------------------------------- server process


class BridgeServer:
    """One `converge serve --config FILE` process whose config loads one registration."""

    def __init__(self, binary: Path, data_dir: Path, registration: Registration):
        self.binary = binary
        self.data_dir = data_dir
        self.registration = registration
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "converge.log"
        self.registration_path = data_dir / "registration.yaml"
        self.config_path = data_dir / "converge.toml"
        self.registration_path.write_text(registration.yaml())
        self.config_path.write_text(
            "# Config written by tests/e2e-bridge: the appservice registration this test server loads.\n"
            "[appservices]\n"
            f"registration_files = [{json.dumps(str(self.registration_path))}]\n"
        )
        # The caller's environment minus its CONVERGE_* settings, so a developer's own
        # configuration cannot leak into the test server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERGE_")}
        env.update(
            {
                "CONVERGE_LISTEN": f"127.0.0.1:{self.port}",
                "CONVERGE_DATA_DIR": str(data_dir),
                "CONVERGE_SERVER_NAME": SERVER_NAME,
                "CONVERGE_REGISTRATION__MODE": "open",
                "CONVERGE_RATE_LIMITS__ENABLED": "false",
                "NO_COLOR": "1",
            }
        )
        self.env = env
        self.proc: subprocess.Popen | None = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _startup_failure(self, code: int) -> str:
        tail = self.log_tail()
        if "appservices" in tail and "unknown field" in tail:
            return (
                "converge refused the [appservices] section of its config file: this binary has "
                "no appservice support yet (the tests start it with `serve --config "
                f"{self.config_path}` holding `[appservices] registration_files = [...]`).\n"
                f"converge exited with status {code}:\n{tail}"
            )
        return f"converge exited with status {code} during startup:\n{tail}"

    def start(self) -> None:
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve", "--config", str(self.config_path)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(self._startup_failure(self.proc.returncode), pytrace=False)
            try:
                with urllib.request.urlopen(self.url + "/_converge/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"HTTP {resp.status}"
            except (urllib.error.URLError, ConnectionError, OSError) as e:
                last_error = repr(e)
            time.sleep(0.05)
        self.kill()
        pytest.fail(
            f"converge did not become healthy within {STARTUP_TIMEOUT_S}s "
            f"(last error: {last_error}):\n" + self.log_tail(),
            pytrace=False,
        )

    def stop(self) -> int:
        """SIGTERM the server (only this process, by its PID) and return its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"converge did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM:\n" + self.log_tail(),
                pytrace=False,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client_url(self, path: str) -> str:
        return f"{self.url}/_matrix/client/{path.lstrip('/')}"


@contextlib.contextmanager
def running_server(data_dir: Path, registration: Registration):
    server = BridgeServer(converge_bin(), data_dir, registration)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is not None:
            pytest.fail(
                f"converge died while the test ran (status {server.proc.returncode}):\n"
                + server.log_tail(),
                pytrace=False,
            )
        code = server.stop()
        if code != 0:
            pytest.fail(
                f"converge exited with status {code} after SIGTERM, expected 0:\n" + server.log_tail(),
                pytrace=False,
            )


# --------------------------------------------------------------------------- what the AS sees


@dataclass
class HSRequest:
    """One request the homeserver made to the appservice, as the appservice's web server got it."""

    seq: int
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any
    status: int | None = None  # what was answered; None while being handled
    injected_failure: bool = False  # answered 500 on purpose by Recorder.fail_transactions

    @property
    def txn_id(self) -> str | None:
        m = TXN_PATH.match(self.path) if self.method == "PUT" else None
        return m.group("txn") if m else None

    @property
    def events(self) -> list[dict]:
        return list(self.body.get("events") or []) if isinstance(self.body, dict) else []

    @property
    def ephemeral(self) -> list[dict]:
        if not isinstance(self.body, dict):
            return []
        # The stable name (spec v1.13) or MSC2409's; mautrix reads either.
        return list(self.body.get("ephemeral") or self.body.get("de.sorunome.msc2409.ephemeral") or [])

    def summary(self) -> str:
        what = ""
        if self.txn_id is not None:
            kinds = [e.get("type") for e in self.events] + [f"edu:{e.get('type')}" for e in self.ephemeral]
            what = f" txn={self.txn_id} [{', '.join(map(str, kinds))}]"
        elif isinstance(self.body, dict) and self.body:
            what = f" body={json.dumps(self.body)[:120]}"
        failed = " (500 on purpose)" if self.injected_failure else ""
        return f"#{self.seq} {self.method} {self.path}{what} -> {self.status}{failed}"


@dataclass
class Handled:
    """One event as mautrix parsed it and passed it to the bridge's handler."""

    ephemeral: bool
    type: str
    event_id: str | None
    room_id: str | None
    sender: str | None
    state_key: str | None
    content: Any


@dataclass
class Outcome:
    """The result of something the bridge did in reaction to an event (join, echo)."""

    action: str
    room_id: str
    trigger: str  # ID of the event the bridge reacted to
    ok: bool
    detail: str


class Recorder:
    """Shared by every EchoBridge start of one test: the whole history survives restarts."""

    def __init__(self, hs_token: str):
        self.hs_token = hs_token
        self.requests: list[HSRequest] = []
        self.handled: list[Handled] = []
        self.outcomes: list[Outcome] = []
        self._failure_rules: list[list] = []  # [predicate(body) -> bool, answers left]

    # -- failure injection

    def fail_transactions(self, predicate: Callable[[dict], bool], times: int) -> None:
        """Answer the next `times` transactions whose body matches `predicate` with HTTP 500."""
        self._failure_rules.append([predicate, times])

    def _should_fail(self, body: Any) -> bool:
        for rule in self._failure_rules:
            predicate, left = rule
            if left > 0 and isinstance(body, dict) and predicate(body):
                rule[1] = left - 1
                return True
        return False

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        raw = await request.read()  # cached by aiohttp: mautrix's handler reads it again
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        entry = HSRequest(
            seq=len(self.requests) + 1,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            authorization=request.headers.get("Authorization"),
            body=body,
        )
        self.requests.append(entry)
        if entry.txn_id is not None and self._should_fail(body):
            entry.status = 500
            entry.injected_failure = True
            return web.json_response(
                {"errcode": "M_UNKNOWN", "error": "e2e-bridge test: failing this transaction on purpose"},
                status=500,
            )
        try:
            response = await handler(request)
        except web.HTTPException as e:
            entry.status = e.status
            raise
        except Exception:
            entry.status = 500
            raise
        entry.status = response.status
        return response

    # -- derived views

    def transactions(self) -> list[HSRequest]:
        return [r for r in self.requests if r.txn_id is not None]

    def pings(self) -> list[HSRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/_matrix/app/v1/ping")]

    def delivered_transactions(self) -> list[HSRequest]:
        """Each transaction ID once, at its first successful (2xx) delivery, in delivery order."""
        seen: set[str] = set()
        out = []
        for r in self.transactions():
            if r.status is not None and 200 <= r.status < 300 and r.txn_id not in seen:
                seen.add(r.txn_id)
                out.append(r)
        return out

    def delivered_events(self) -> list[dict]:
        return [e for r in self.delivered_transactions() for e in r.events]

    def delivered_ephemeral(self) -> list[dict]:
        return [e for r in self.delivered_transactions() for e in r.ephemeral]

    def delivered_ids(self) -> list[str]:
        return [e.get("event_id") for e in self.delivered_events()]

    def find_delivered(self, **match) -> dict | None:
        for e in self.delivered_events():
            if event_matches(e, **match):
                return e
        return None

    def outcome(self, action: str, trigger: str) -> Outcome | None:
        for o in self.outcomes:
            if o.action == action and o.trigger == trigger:
                return o
        return None

    def describe(self, last: int = 25) -> str:
        lines = ["requests the homeserver made to the appservice (latest last):"]
        shown = self.requests[-last:]
        if len(self.requests) > len(shown):
            lines.append(f"  ... {len(self.requests) - len(shown)} earlier ones")
        lines += [f"  {r.summary()}" for r in shown] or ["  (none)"]
        lines.append("what the bridge did:")
        lines += [
            f"  {o.action} for {o.trigger} in {o.room_id}: {'ok' if o.ok else 'FAILED'}: {o.detail}" for o in self.outcomes
        ] or [
            "  (nothing)"
        ]
        return "\n".join(lines)

    # -- invariants of the spec that hold for every test

    def invariant_problems(self) -> list[str]:
        problems = []
        expected_auth = f"Bearer {self.hs_token}"
        for r in self.requests:
            if r.authorization != expected_auth:
                problems.append(
                    f"{r.method} {r.path}: Authorization header is {r.authorization!r}, "
                    "expected 'Bearer <hs_token>' (spec v1.4+)"
                )
        bodies: dict[str, str] = {}
        for r in self.transactions():
            if not isinstance(r.body, dict) or not isinstance(r.body.get("events"), list):
                problems.append(f"transaction {r.txn_id}: body has no `events` list: {str(r.body)[:200]}")
                continue
            canonical = json.dumps(r.body, sort_keys=True)
            if r.txn_id in bodies and bodies[r.txn_id] != canonical:
                problems.append(
                    f"transaction ID {r.txn_id} was sent again with different content "
                    "(spec: a retry MUST NOT alter the events of a transaction ID)"
                )
            bodies.setdefault(r.txn_id, canonical)
            if not r.injected_failure and r.status != 200:
                problems.append(f"transaction {r.txn_id}: mautrix answered {r.status} (malformed?)")
            for e in r.events:
                missing = [k for k in ("event_id", "room_id", "sender", "type", "origin_server_ts", "content") if k not in e]
                if missing:
                    problems.append(f"transaction {r.txn_id}: event lacks {missing}: {json.dumps(e)[:200]}")
        where: dict[str, str] = {}
        for r in self.delivered_transactions():
            for e in r.events:
                eid = e.get("event_id")
                if eid in where:
                    problems.append(
                        f"event {eid} ({e.get('type')}) was delivered twice: in transactions "
                        f"{where[eid]} and {r.txn_id}"
                    )
                where.setdefault(eid, r.txn_id)
        return problems

    def assert_invariants(self) -> None:
        problems = self.invariant_problems()
        if problems:
            pytest.fail(
                "appservice transaction invariants broken:\n  " + "\n  ".join(problems) + "\n" + self.describe(),
                pytrace=False,
            )


def event_matches(event: dict, **match) -> bool:
    """Matches top-level keys, plus `membership` and `body` inside content."""
    content = event.get("content") or {}
    for key, want in match.items():
        have = content.get(key) if key in ("membership", "body") else event.get(key)
        if have != want:
            return False
    return True


# --------------------------------------------------------------------------- the appservice


class MemoryASStateStore(MemoryStateStore, ASStateStore):
    """mautrix's in-memory state store with the appservice part (which users are registered).

    Starting empty on every bridge start is what a bridge without a database does: it
    re-registers its puppets (expecting M_USER_IN_USE) and re-joins rooms it is already in.
    """

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


class EchoBridge:
    """A minimal puppeting bridge on mautrix's AppService and IntentAPI."""

    def __init__(self, homeserver_url: str, registration: Registration, recorder: Recorder):
        self.homeserver_url = homeserver_url
        self.registration = registration
        self.recorder = recorder
        self.az: AppService | None = None
        self.mau_log = logging.getLogger("mau.e2e-bridge")

    @property
    def running(self) -> bool:
        return self.az is not None

    async def start(self) -> None:
        """Start the appservice web server on the registration's port (a new AppService each time)."""
        assert self.az is None, "the bridge is already running"
        reg = self.registration
        az = AppService(
            server=self.homeserver_url,
            domain=SERVER_NAME,
            as_token=reg.as_token,
            hs_token=reg.hs_token,
            bot_localpart=reg.sender_localpart,
            id=reg.id,
            loop=asyncio.get_running_loop(),
            log=self.mau_log,
            state_store=MemoryASStateStore(),
            aiohttp_params={"middlewares": [self.recorder.middleware]},
            ephemeral_events=True,
        )
        az.matrix_event_handler(self._on_event)
        await az.start(host="127.0.0.1", port=reg.port)
        self.az = az

    async def stop(self) -> None:
        """Shut the web server down: the port refuses connections until start() again."""
        if self.az is not None:
            az, self.az = self.az, None
            await az.stop()

    @property
    def bot(self) -> IntentAPI:
        assert self.az is not None, "the bridge is not running"
        return self.az.intent

    def intent(self, user_id: str = PUPPET) -> IntentAPI:
        return self.bot.user(user_id)

    async def _on_event(self, evt) -> None:
        # mautrix runs each handler call as a background task: the transaction is answered 200
        # first. Failures are recorded as outcomes so tests can report them.
        content = getattr(evt, "content", None)
        try:
            content_json = content.serialize() if hasattr(content, "serialize") else content
        except Exception:  # noqa: BLE001 - only for reporting
            content_json = repr(content)
        ephemeral = evt.type.is_ephemeral
        self.recorder.handled.append(
            Handled(
                ephemeral=ephemeral,
                type=evt.type.t,
                event_id=getattr(evt, "event_id", None),
                room_id=getattr(evt, "room_id", None),
                sender=getattr(evt, "sender", None),
                state_key=getattr(evt, "state_key", None),
                content=content_json,
            )
        )
        if ephemeral:
            return
        if (
            evt.type == EventType.ROOM_MEMBER
            and evt.content.membership == Membership.INVITE
            and re.fullmatch(USER_NAMESPACE, evt.state_key or "")
        ):
            await self._record("join", evt, self._accept_invite(evt.room_id, evt.state_key))
        elif (
            evt.type == EventType.ROOM_MESSAGE
            and not re.fullmatch(USER_NAMESPACE, evt.sender)
            and evt.sender != self.bot.mxid
            and evt.content.msgtype == MessageType.TEXT
        ):
            reply = ECHO_PREFIX + evt.content.body
            await self._record("echo", evt, self.intent(PUPPET).send_text(evt.room_id, reply))

    async def _accept_invite(self, room_id: str, user_id: str) -> str:
        intent = self.intent(user_id)
        await intent.ensure_registered()
        joined = await intent.join_room(room_id, max_retries=0)
        return f"{user_id} joined {joined}"

    async def _record(self, action: str, evt, coro) -> None:
        room_id, trigger = evt.room_id, evt.event_id
        try:
            result = await coro
        except Exception as e:  # noqa: BLE001 - reported by the tests
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            cause = e.__cause__
            if cause is not None and str(cause) not in detail:  # e.g. the SerializerError behind
                detail += " <- " + "".join(traceback.format_exception_only(type(cause), cause)).strip()
            self.recorder.outcomes.append(Outcome(action, room_id, trigger, False, detail))
            self.mau_log.exception("e2e echo bridge: %s in %s failed", action, room_id)
        else:
            self.recorder.outcomes.append(Outcome(action, room_id, trigger, True, str(result)))


# --------------------------------------------------------------------------- waiting


async def wait_until(predicate: Callable[[], Any], what: str, recorder: Recorder | None = None, timeout: float = WAIT_S):
    """Polls predicate() until it returns something truthy (returned), or fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = "\n" + recorder.describe() if recorder is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{extra}", pytrace=False)
        await asyncio.sleep(0.05)


async def wait_for_outcome(recorder: Recorder, action: str, trigger: str, what: str) -> Outcome:
    """Waits until the bridge reacted to event `trigger` with `action`; fails if that failed."""
    outcome = await wait_until(lambda: recorder.outcome(action, trigger), what, recorder)
    if not outcome.ok:
        pytest.fail(f"{what}: the bridge's {action} failed: {outcome.detail}\n{recorder.describe()}", pytrace=False)
    return outcome
