# pytest fixtures shared by the end-to-end test modules: one real `converge serve` per module and registration mode.
"""Fixtures of the end-to-end tests; the helpers they use are in e2e_support.py."""

from __future__ import annotations

import pytest

from e2e_support import running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with open registration (one per test module)."""
    with running_server(tmp_path_factory, "open") as s:
        yield s


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    """A second server instance with the default token-gated registration."""
    with running_server(tmp_path_factory, "token") as s:
        yield s
