# pytest fixtures of the appservice end-to-end tests: a fresh converge with the registration and a running mautrix echo bridge per test.
"""Fixtures of the appservice (bridge) end-to-end tests; the harness is in bridge_support.py.

Tests are plain synchronous pytest functions (no asyncio plugin, as in tests/e2e). Each test
gets its own event loop in which the mautrix appservice runs; the test drives its scenario
with `env.run(coroutine)`, so nio clients, the appservice and its web server share that loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge_support import (
    TEST_BUDGET_S,
    BridgeServer,
    EchoBridge,
    Recorder,
    Registration,
    free_port,
    running_server,
)


def pytest_configure(config):
    # mautrix 0.21.1 still passes loop= to aiohttp's web.Application (deprecated, harmless).
    config.addinivalue_line("filterwarnings", "ignore:loop argument is deprecated:DeprecationWarning")
    # mautrix's request log (shown by pytest only for failing tests) says which call failed.
    logging.getLogger("mau").setLevel(logging.DEBUG)


@dataclass
class BridgeEnv:
    server: BridgeServer
    registration: Registration
    recorder: Recorder
    bridge: EchoBridge
    loop: asyncio.AbstractEventLoop

    def run(self, coro, budget: float = TEST_BUDGET_S):
        """Runs one scenario coroutine in the test's loop, bounded in time."""
        return self.loop.run_until_complete(asyncio.wait_for(coro, budget))


@pytest.fixture
def env(tmp_path: Path):
    """A fresh converge loading the registration, and the echo bridge listening on its URL."""
    registration = Registration(port=free_port())
    with running_server(tmp_path, registration) as server:
        recorder = Recorder(registration.hs_token)
        bridge = EchoBridge(server.url, registration, recorder)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(bridge.start())
            yield BridgeEnv(server, registration, recorder, bridge, loop)
        finally:
            try:
                loop.run_until_complete(bridge.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    """A converge loading the registration with no appservice listening (for refusal tests)."""
    registration = Registration(port=free_port())
    with running_server(tmp_path_factory.mktemp("converge-as"), registration) as server:
        yield server
