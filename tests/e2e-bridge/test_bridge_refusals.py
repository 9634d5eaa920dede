# End-to-end tests of what the appservice API must refuse: bad as_tokens, masquerading outside the namespace, exclusive namespaces, and bad pings.
"""Plain HTTP calls (aiohttp, no Matrix SDK) against one converge per module that loads the
echo bridge's registration; no appservice listens on its URL (which the last test relies on).
The HTTP 500 retry case needs a live appservice and is in test_bridge_flow.py.
"""

from __future__ import annotations

import asyncio

from bridge_support import (
    APPSERVICE_ID,
    PASSWORD,
    PUPPET,
    errcode,
    fresh_username,
    http_json,
    mxid,
)

EXCLUSIVE_OR_FORBIDDEN = {"M_EXCLUSIVE", "M_FORBIDDEN"}


def run(coro):
    return asyncio.run(coro)


async def register_human(server, username: str) -> tuple[int, dict]:
    """Normal registration through the m.login.dummy stage (whether or not the server asks for
    the stage first); returns the final (status, body)."""
    url = server.client_url("v3/register")
    request = {"username": username, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
    status, body = await http_json("POST", url, body=request)
    if status == 401 and isinstance(body, dict) and "flows" in body:
        request["auth"]["session"] = body.get("session")
        status, body = await http_json("POST", url, body=request)
    return status, body


def test_wrong_as_token_is_unknown_token(plain_server):
    async def body():
        whoami = plain_server.client_url("v3/account/whoami")
        for params in (None, {"user_id": PUPPET}):
            status, resp = await http_json("GET", whoami, token="not-the-as-token", params=params)
            assert (status, errcode(resp)) == (401, "M_UNKNOWN_TOKEN"), f"whoami {params}: {status} {resp}"
        status, resp = await http_json(
            "POST",
            plain_server.client_url("v3/createRoom"),
            token="not-the-as-token",
            params={"user_id": PUPPET},
            body={},
        )
        assert (status, errcode(resp)) == (401, "M_UNKNOWN_TOKEN"), f"createRoom: {status} {resp}"

    run(body())


def test_masquerading_outside_the_namespace_is_refused(plain_server):
    as_token = plain_server.registration.as_token

    async def body():
        bob = fresh_username("bob")
        status, resp = await register_human(plain_server, bob)
        assert status == 200, f"registering {bob} normally failed: {status} {resp}"
        for target in (mxid(bob), mxid(fresh_username("nobody"))):
            status, resp = await http_json(
                "GET", plain_server.client_url("v3/account/whoami"), token=as_token, params={"user_id": target}
            )
            assert status == 403 and errcode(resp) in EXCLUSIVE_OR_FORBIDDEN, (
                f"the appservice acting as {target} (outside its namespace) got {status} {resp}"
            )
        status, resp = await http_json(
            "POST", plain_server.client_url("v3/createRoom"), token=as_token, params={"user_id": mxid(bob)}, body={}
        )
        assert status == 403 and errcode(resp) in EXCLUSIVE_OR_FORBIDDEN, f"createRoom as {bob}: {status} {resp}"

    run(body())


def test_human_cannot_register_in_the_exclusive_namespace(plain_server):
    async def body():
        status, resp = await register_human(plain_server, "echo_mallory")
        assert (status, errcode(resp)) == (400, "M_EXCLUSIVE"), f"registering echo_mallory: {status} {resp}"
        status, resp = await http_json(
            "GET", plain_server.client_url("v3/register/available"), params={"username": "echo_mallory"}
        )
        assert (status, errcode(resp)) == (400, "M_EXCLUSIVE"), f"register/available: {status} {resp}"

    run(body())


def test_appservice_cannot_register_outside_its_namespace(plain_server):
    as_token = plain_server.registration.as_token

    async def body():
        status, resp = await http_json(
            "POST",
            plain_server.client_url("v3/register"),
            token=as_token,
            params={"kind": "user"},
            body={"type": "m.login.application_service", "username": fresh_username("outsider"), "inhibit_login": True},
        )
        assert (status, errcode(resp)) == (400, "M_EXCLUSIVE"), f"{status} {resp}"

    run(body())


def test_appservice_registration_needs_the_as_token(plain_server):
    async def body():
        request = {"type": "m.login.application_service", "username": "echo_tokenless", "inhibit_login": True}
        url = plain_server.client_url("v3/register")
        status, resp = await http_json("POST", url, body=request)
        assert (status, errcode(resp)) == (401, "M_MISSING_TOKEN"), f"without a token: {status} {resp}"
        status, resp = await http_json("POST", url, token="not-the-as-token", body=request)
        assert (status, errcode(resp)) == (401, "M_UNKNOWN_TOKEN"), f"with a wrong token: {status} {resp}"

    run(body())


def test_ping_refuses_other_appservices_and_users(plain_server):
    as_token = plain_server.registration.as_token

    async def body():
        status, resp = await http_json(
            "POST", plain_server.client_url("v1/appservice/someone-else/ping"), token=as_token, body={}
        )
        assert (status, errcode(resp)) == (403, "M_FORBIDDEN"), f"pinging another appservice ID: {status} {resp}"
        status, user = await register_human(plain_server, fresh_username("pinger"))
        assert status == 200, user
        status, resp = await http_json(
            "POST", plain_server.client_url(f"v1/appservice/{APPSERVICE_ID}/ping"), token=user["access_token"], body={}
        )
        assert (status, errcode(resp)) == (403, "M_FORBIDDEN"), f"a user's token pinging: {status} {resp}"

    run(body())


def test_ping_reports_an_unreachable_appservice(plain_server):
    async def body():
        status, resp = await http_json(
            "POST",
            plain_server.client_url(f"v1/appservice/{APPSERVICE_ID}/ping"),
            token=plain_server.registration.as_token,
            body={"transaction_id": "nobody-listens"},
        )
        assert (status, errcode(resp)) == (502, "M_CONNECTION_FAILED"), f"{status} {resp}"

    run(body())
