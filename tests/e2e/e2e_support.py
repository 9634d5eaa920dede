# Shared helpers of the end-to-end tests: starting/stopping a `converge serve` process and small matrix-nio helpers.
"""Helpers shared by the end-to-end test modules in tests/e2e (fixtures live in conftest.py).

The binary under test is given by the CONVERGE_BIN environment variable (see run.sh, which
defaults it to target/debug/converge). Each server instance gets a free loopback port and a
fresh temporary data directory, and is stopped with SIGTERM when its fixture ends; a non-zero
exit status on shutdown fails the run.

Tests are plain synchronous pytest functions that drive nio's AsyncClient with asyncio.run,
so no pytest asyncio plugin is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from nio import Api, AsyncClient, AsyncClientConfig, JoinResponse, RegisterResponse

SERVER_NAME = "localhost"
PASSWORD = "correct horse battery staple"
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- server process


def converge_bin() -> Path:
    value = os.environ.get("CONVERGE_BIN")
    if not value:
        pytest.fail(
            "CONVERGE_BIN is not set: point it at a converge binary "
            "(bash tests/e2e/run.sh defaults it to target/debug/converge)",
            pytrace=False,
        )
    path = Path(value).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"CONVERGE_BIN={value!r} is not an executable file", pytrace=False)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running `converge serve` process."""

    def __init__(self, binary: Path, data_dir: Path, mode: str):
        self.binary = binary
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "converge.log"
        # Start from the caller's environment minus any CONVERGE_* settings, so a developer's
        # own configuration cannot leak into the test server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERGE_")}
        env.update(
            {
                "CONVERGE_LISTEN": f"127.0.0.1:{self.port}",
                "CONVERGE_DATA_DIR": str(data_dir),
                "CONVERGE_SERVER_NAME": SERVER_NAME,
                "CONVERGE_REGISTRATION__MODE": mode,
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

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"converge exited with status {self.proc.returncode} during startup:\n"
                    + self.log_tail(),
                    pytrace=False,
                )
            try:
                with urllib.request.urlopen(self.url + "/_converge/health", timeout=2) as resp:
                    body = json.load(resp)
                    if resp.status == 200:
                        assert body.get("status") == "ok", body
                        return
                    last_error = f"HTTP {resp.status}"
            except (urllib.error.URLError, ConnectionError, OSError) as e:
                last_error = repr(e)
            time.sleep(0.1)
        self.kill()
        pytest.fail(
            f"converge did not become healthy within {STARTUP_TIMEOUT_S}s "
            f"(last error: {last_error}):\n" + self.log_tail(),
            pytrace=False,
        )

    def stop(self) -> int:
        """SIGTERM the server and return its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"converge did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM:\n"
                + self.log_tail(),
                pytrace=False,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def create_token(self, uses: int = 1) -> str:
        """`converge token create`, run against this server's data directory."""
        out = subprocess.run(
            [str(self.binary), "token", "create", "--uses", str(uses)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, f"token create failed ({out.returncode}): {out.stderr}"
        token = out.stdout.strip()
        assert token and len(token.split()) == 1, f"unexpected token output: {out.stdout!r}"
        return token


@contextlib.contextmanager
def running_server(tmp_path_factory: pytest.TempPathFactory, mode: str):
    server = Server(converge_bin(), tmp_path_factory.mktemp(f"converge-{mode}"), mode)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is not None:
            code = server.proc.returncode
            pytest.fail(
                f"converge died while the tests ran (status {code}):\n" + server.log_tail(),
                pytrace=False,
            )
        code = server.stop()
        if code != 0:
            pytest.fail(
                f"converge exited with status {code} after SIGTERM, expected 0:\n"
                + server.log_tail(),
                pytrace=False,
            )


# --------------------------------------------------------------------------- client helpers


def run(coro):
    return asyncio.run(coro)


def nio_config() -> AsyncClientConfig:
    # Fail fast instead of nio's default of retrying connection errors and 429s forever.
    return AsyncClientConfig(max_timeouts=0, max_limit_exceeded=0, encryption_enabled=False)


@contextlib.asynccontextmanager
async def nio_client(server: Server, user: str = ""):
    client = AsyncClient(server.url, user, config=nio_config())
    try:
        yield client
    finally:
        await client.close()


def fresh_username(prefix: str = "e2e") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def mxid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


async def register_user(server: Server, username: str, device_name: str = "reg") -> RegisterResponse:
    async with nio_client(server) as client:
        resp = await client.register(username, PASSWORD, device_name=device_name)
        assert isinstance(resp, RegisterResponse), f"register failed: {resp}"
        return resp


async def join_room(client: AsyncClient, room_id_or_alias: str):
    """Joins with nio's own AsyncClient.join, which sends no request body."""
    return await client.join(room_id_or_alias)


def status_of(resp) -> int | None:
    tr = getattr(resp, "transport_response", None)
    return tr.status if tr is not None else None
