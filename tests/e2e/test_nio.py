# End-to-end tests: the third-party Matrix client library matrix-nio talking to a real `converge serve` process.
"""End-to-end tests of Converge with matrix-nio.

Accounts, sessions, profiles and devices. The server process fixtures are in conftest.py and
the helpers in e2e_support.py (CONVERGE_BIN names the binary; see run.sh).
"""

from __future__ import annotations

import uuid

from nio import (
    Api,
    AsyncClient,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    LoginError,
    LoginInfoResponse,
    LoginResponse,
    LogoutResponse,
    ProfileGetAvatarResponse,
    ProfileGetDisplayNameResponse,
    ProfileGetResponse,
    ProfileSetAvatarResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    UpdateDeviceResponse,
    WhoamiError,
    WhoamiResponse,
)

# Not re-exported from the package root in matrix-nio 0.26.
from nio.responses import RegisterErrorResponse, RegisterInteractiveResponse

# The `server` and `token_server` fixtures come from conftest.py.
from e2e_support import (
    PASSWORD,
    SERVER_NAME,
    fresh_username,
    mxid,
    nio_client,
    register_user,
    run,
    status_of,
)


# --------------------------------------------------------------------------- client helpers


async def register_with_auth(client: AsyncClient, username: str, auth: dict, device_name: str = ""):
    """POST /register with an arbitrary UIA auth dict, parsed by nio as a RegisterResponse.

    nio has no public method for a spec-style single-stage m.login.registration_token flow
    (its register_with_token hard-codes Synapse's three-request dance), so this uses nio's own
    request builder (Api.register) and response parser (AsyncClient._send).
    """
    method, path, data = Api.register(
        user=username, password=PASSWORD, device_name=device_name, auth_dict=auth
    )
    return await client._send(RegisterResponse, method, path, data)


# --------------------------------------------------------------------------- open registration


def test_login_flows_advertise_password(server):
    async def body():
        async with nio_client(server) as client:
            resp = await client.login_info()
            assert isinstance(resp, LoginInfoResponse), resp
            assert "m.login.password" in resp.flows

    run(body())


def test_register_returns_credentials(server):
    username = fresh_username()

    async def body():
        async with nio_client(server) as client:
            resp = await client.register(username, PASSWORD, device_name="e2e register")
            assert isinstance(resp, RegisterResponse), f"expected RegisterResponse, got {resp}"
            assert resp.user_id == mxid(username)
            assert isinstance(resp.access_token, str) and resp.access_token
            assert isinstance(resp.device_id, str) and resp.device_id
            # nio adopts the credentials; the token must work straight away.
            assert client.logged_in and client.access_token == resp.access_token
            who = await client.whoami()
            assert isinstance(who, WhoamiResponse), who
            assert who.user_id == resp.user_id
            assert who.device_id == resp.device_id

    run(body())


def test_register_same_username_twice_is_user_in_use(server):
    username = fresh_username()

    async def body():
        await register_user(server, username)
        async with nio_client(server) as client:
            resp = await client.register(username, "another password")
            assert isinstance(resp, RegisterErrorResponse), f"second register succeeded: {resp}"
            assert resp.status_code == "M_USER_IN_USE", resp
            assert status_of(resp) == 400
            assert not client.logged_in

    run(body())


def test_login_whoami_profile_and_devices(server):
    username = fresh_username()

    async def body():
        reg = await register_user(server, username, device_name="first device")
        async with nio_client(server, username) as client:
            login = await client.login(PASSWORD, device_name="e2e login")
            assert isinstance(login, LoginResponse), f"login failed: {login}"
            assert login.user_id == mxid(username)
            assert login.access_token and login.device_id
            assert login.device_id != reg.device_id, "login must create a new device"
            assert login.access_token != reg.access_token

            who = await client.whoami()
            assert isinstance(who, WhoamiResponse), who
            assert who.user_id == mxid(username)
            assert who.device_id == login.device_id

            # Display name round trip (non-ASCII on purpose).
            new_name = f"Ålice E2E {uuid.uuid4().hex[:6]}"
            set_resp = await client.set_displayname(new_name)
            assert isinstance(set_resp, ProfileSetDisplayNameResponse), set_resp
            get_resp = await client.get_displayname()
            assert isinstance(get_resp, ProfileGetDisplayNameResponse), get_resp
            assert get_resp.displayname == new_name

            # Avatar round trip, and the whole profile.
            avatar = f"mxc://{SERVER_NAME}/{uuid.uuid4().hex}"
            set_av = await client.set_avatar(avatar)
            assert isinstance(set_av, ProfileSetAvatarResponse), set_av
            get_av = await client.get_avatar()
            assert isinstance(get_av, ProfileGetAvatarResponse), get_av
            assert get_av.avatar_url == avatar
            profile = await client.get_profile()
            assert isinstance(profile, ProfileGetResponse), profile
            assert profile.displayname == new_name
            assert profile.avatar_url == avatar

            # Both the registration device and the login device are listed, with their names.
            devices = await client.devices()
            assert isinstance(devices, DevicesResponse), devices
            by_id = {d.id: d for d in devices.devices}
            assert set(by_id) == {reg.device_id, login.device_id}, by_id
            assert by_id[login.device_id].display_name == "e2e login"
            assert by_id[reg.device_id].display_name == "first device"

            # Renaming a device is visible in the next listing.
            upd = await client.update_device(login.device_id, {"display_name": "renamed"})
            assert isinstance(upd, UpdateDeviceResponse), upd
            devices = await client.devices()
            assert isinstance(devices, DevicesResponse), devices
            assert {d.id: d.display_name for d in devices.devices}[login.device_id] == "renamed"

    run(body())


def test_displayname_visible_to_other_users(server):
    alice, bob = fresh_username("alice"), fresh_username("bob")

    async def body():
        await register_user(server, alice)
        async with nio_client(server, alice) as a:
            assert isinstance(await a.login(PASSWORD), LoginResponse)
            assert isinstance(await a.set_displayname("Alice Public"), ProfileSetDisplayNameResponse)
        async with nio_client(server) as b:
            reg = await b.register(bob, PASSWORD)
            assert isinstance(reg, RegisterResponse), reg
            resp = await b.get_displayname(mxid(alice))
            assert isinstance(resp, ProfileGetDisplayNameResponse), resp
            assert resp.displayname == "Alice Public"

    run(body())


def test_logout_invalidates_token(server):
    username = fresh_username()

    async def body():
        reg = await register_user(server, username)
        async with nio_client(server, username) as client:
            login = await client.login(PASSWORD)
            assert isinstance(login, LoginResponse), login
            old_token = login.access_token

            resp = await client.logout()
            assert isinstance(resp, LogoutResponse), f"logout failed: {resp}"
            assert client.access_token == "", "nio clears its token after a successful logout"

        # A fresh client holding the logged-out token must be rejected.
        async with nio_client(server) as stale:
            stale.restore_login(mxid(username), login.device_id, old_token)
            who = await stale.whoami()
            assert isinstance(who, WhoamiError), f"logged-out token still works: {who}"
            assert who.status_code == "M_UNKNOWN_TOKEN", who
            assert status_of(who) == 401

        # Logging out one device leaves the others alone, and drops the logged-out device.
        async with nio_client(server) as other:
            other.restore_login(reg.user_id, reg.device_id, reg.access_token)
            who = await other.whoami()
            assert isinstance(who, WhoamiResponse), who
            assert who.device_id == reg.device_id
            devices = await other.devices()
            assert isinstance(devices, DevicesResponse), devices
            assert [d.id for d in devices.devices] == [reg.device_id]

    run(body())


def test_logout_all_devices(server):
    username = fresh_username()

    async def body():
        reg = await register_user(server, username)
        async with nio_client(server, username) as client:
            login = await client.login(PASSWORD)
            assert isinstance(login, LoginResponse), login
            resp = await client.logout(all_devices=True)
            assert isinstance(resp, LogoutResponse), resp

        for device_id, token in ((reg.device_id, reg.access_token), (login.device_id, login.access_token)):
            async with nio_client(server) as stale:
                stale.restore_login(mxid(username), device_id, token)
                who = await stale.whoami()
                assert isinstance(who, WhoamiError), f"token of {device_id} survived logout/all: {who}"
                assert who.status_code == "M_UNKNOWN_TOKEN", who

        # The account itself still works.
        async with nio_client(server, username) as client:
            assert isinstance(await client.login(PASSWORD), LoginResponse)

    run(body())


def test_wrong_password_is_forbidden(server):
    username = fresh_username()

    async def body():
        await register_user(server, username)
        async with nio_client(server, username) as client:
            resp = await client.login("not the password")
            assert isinstance(resp, LoginError), f"login with a wrong password succeeded: {resp}"
            assert resp.status_code == "M_FORBIDDEN", resp
            assert status_of(resp) == 403
            assert not client.logged_in
        # An unknown user gets the same answer (no user enumeration through login).
        async with nio_client(server, fresh_username("nobody")) as client:
            resp = await client.login(PASSWORD)
            assert isinstance(resp, LoginError), resp
            assert resp.status_code == "M_FORBIDDEN", resp

    run(body())


def test_delete_device_with_password_uia(server):
    username = fresh_username()

    async def body():
        reg = await register_user(server, username)
        async with nio_client(server, username) as client:
            login = await client.login(PASSWORD, device_name="keeper")
            assert isinstance(login, LoginResponse), login

            # Without auth: the server answers with the UIA flows and a session.
            first = await client.delete_devices([reg.device_id])
            assert isinstance(first, DeleteDevicesAuthResponse), first
            assert first.session
            assert any(f.get("stages") == ["m.login.password"] for f in first.flows), first.flows

            # A wrong password does not delete anything.
            bad = await client.delete_devices(
                [reg.device_id],
                {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": username},
                    "password": "wrong",
                    "session": first.session,
                },
            )
            assert not isinstance(bad, DeleteDevicesResponse), f"deleted with a wrong password: {bad}"

            done = await client.delete_devices(
                [reg.device_id],
                {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": username},
                    "password": PASSWORD,
                    "session": first.session,
                },
            )
            assert isinstance(done, DeleteDevicesResponse), f"delete_devices failed: {done}"

            devices = await client.devices()
            assert isinstance(devices, DevicesResponse), devices
            assert [d.id for d in devices.devices] == [login.device_id]

        async with nio_client(server) as stale:
            stale.restore_login(reg.user_id, reg.device_id, reg.access_token)
            who = await stale.whoami()
            assert isinstance(who, WhoamiError), f"deleted device's token still works: {who}"
            assert who.status_code == "M_UNKNOWN_TOKEN", who

    run(body())


# --------------------------------------------------------------------------- token registration


def test_token_mode_rejects_dummy_registration(token_server):
    username = fresh_username("tok")

    async def body():
        async with nio_client(token_server) as client:
            resp = await client.register(username, PASSWORD)  # nio sends m.login.dummy
            assert isinstance(resp, RegisterErrorResponse), f"registered without a token: {resp}"
            assert status_of(resp) == 401, resp
            assert not client.logged_in
        async with nio_client(token_server, username) as client:
            resp = await client.login(PASSWORD)
            assert isinstance(resp, LoginError), f"account exists after a rejected register: {resp}"

    run(body())


def test_token_mode_registration_token_flow(token_server):
    username = fresh_username("tok")
    token = token_server.create_token(uses=1)

    async def body():
        async with nio_client(token_server) as client:
            # A bad token is refused with the flows and a session to continue with.
            first = await client.register_interactive(
                username, PASSWORD, {"type": "m.login.registration_token", "token": "not-a-token"}
            )
            assert isinstance(first, RegisterInteractiveResponse), first
            assert status_of(first) == 401
            assert first.stages == ["m.login.registration_token", "m.login.dummy"], first.stages
            assert first.session

            # nio's own token registration: an empty auth object, the token stage, the dummy stage.
            resp = await client.register_with_token(username, PASSWORD, token, device_name="token device")
            assert isinstance(resp, RegisterResponse), f"token registration failed: {resp}"
            assert resp.user_id == mxid(username)
            who = await client.whoami()
            assert isinstance(who, WhoamiResponse), who
            assert who.user_id == mxid(username) and who.device_id == resp.device_id

        # The token had one use: it cannot register a second account.
        async with nio_client(token_server) as client:
            second = fresh_username("tok")
            again = await client.register_with_token(second, PASSWORD, token)
            assert isinstance(again, RegisterErrorResponse), f"single-use token reused: {again}"
        async with nio_client(token_server, second) as client:
            resp = await client.login(PASSWORD)
            assert isinstance(resp, LoginError), f"account exists after a used-up token: {resp}"

    run(body())


def test_empty_auth_object_gets_the_flows(token_server):
    """An `auth` object with neither `type` nor `session` attempts no stage: the answer is the
    401 with the flows and a new session, as when `auth` is left out."""

    async def body():
        async with nio_client(token_server) as client:
            return await client.register_interactive(
                fresh_username("tok"), PASSWORD, auth_dict={"initial_device_display_name": "matrix-nio"}
            )

    resp = run(body())
    assert isinstance(resp, RegisterInteractiveResponse), resp
    assert status_of(resp) == 401
    assert resp.session
    assert resp.stages == ["m.login.registration_token", "m.login.dummy"]
