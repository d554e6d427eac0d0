"""Smoke tests of ``surfaces.local_synapse`` with raw httpx (no matrix_client)."""

from __future__ import annotations

import os
import socket
from urllib.parse import quote

import httpx
import pytest
import trio

from surfaces.local_synapse import LocalSynapse, SynapseError, SynapseStartError

pytestmark = pytest.mark.synapse


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_versions_answer_on_loopback(synapse: LocalSynapse) -> None:
    assert synapse.base_url.startswith("http://127.0.0.1:")
    assert synapse.server_name == "localhost"
    async with httpx.AsyncClient(base_url=synapse.base_url) as http:
        with trio.fail_after(10):
            response = await http.get("/_matrix/client/versions")
    assert response.status_code == 200
    assert "v1.11" in response.json()["versions"]


async def test_registered_user_is_logged_in(synapse: LocalSynapse, make_user) -> None:
    user = await make_user("smoke", displayname="Smoke Test")
    assert user.user_id == synapse.user_id(user.localpart)
    async with httpx.AsyncClient(base_url=synapse.base_url) as http:
        with trio.fail_after(10):
            whoami = await http.get(
                "/_matrix/client/v3/account/whoami", headers=_auth(user.access_token)
            )
            profile = await http.get(f"/_matrix/client/v3/profile/{user.user_id}/displayname")
    assert whoami.json() == {
        "user_id": user.user_id,
        "is_guest": False,
        "device_id": user.device_id,
    }
    assert profile.json() == {"displayname": "Smoke Test"}


async def test_password_login_works_and_public_registration_is_off(
    synapse: LocalSynapse, make_user
) -> None:
    user = await make_user("pw")
    async with httpx.AsyncClient(base_url=synapse.base_url) as http:
        with trio.fail_after(10):
            login = await http.post(
                "/_matrix/client/v3/login",
                json={
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user.localpart},
                    "password": user.password,
                    "device_id": "FIXED",
                },
            )
            register = await http.post(
                "/_matrix/client/v3/register",
                json={
                    "username": "intruder",
                    "password": "x" * 12,
                    "auth": {"type": "m.login.dummy"},
                },
            )
    assert login.status_code == 200
    assert login.json()["device_id"] == "FIXED"
    assert register.status_code == 403


async def test_duplicate_registration_is_an_error(synapse: LocalSynapse, make_user) -> None:
    user = await make_user("dup")
    with trio.fail_after(10), pytest.raises(SynapseError, match="M_USER_IN_USE"):
        await synapse.register(user.localpart, "another-password")


async def test_admin_can_lift_a_users_ratelimit(synapse: LocalSynapse, make_user) -> None:
    admin = await make_user("admin", admin=True)
    user = await make_user("bench")
    with trio.fail_after(10):
        await synapse.lift_ratelimit(admin.access_token, user.user_id)
        async with httpx.AsyncClient(base_url=synapse.base_url) as http:
            response = await http.get(
                f"/_synapse/admin/v1/users/{quote(user.user_id)}/override_ratelimit",
                headers=_auth(admin.access_token),
            )
    assert response.json() == {"messages_per_second": 0, "burst_count": 0}


async def test_running_stops_the_process_when_the_body_raises() -> None:
    class Boom(Exception):
        pass

    seen: dict[str, object] = {}

    async def use_then_fail() -> None:
        async with LocalSynapse.running(ratelimits="default") as hs:
            seen.update(pid=hs.pid, state_dir=hs.state_dir, startup_s=hs.startup_s)
            async with httpx.AsyncClient() as http:
                with trio.fail_after(10):
                    assert (await http.get(hs.base_url + "/health")).status_code == 200
            raise Boom

    with pytest.raises(Boom):
        await use_then_fail()
    assert isinstance(seen["pid"], int)
    assert not _alive(seen["pid"])
    assert not await trio.Path(seen["state_dir"]).exists()  # type: ignore[arg-type]
    assert isinstance(seen["startup_s"], float)


async def test_running_stops_the_process_when_cancelled() -> None:
    pids: list[int] = []
    with trio.move_on_after(60) as scope:
        async with LocalSynapse.running() as hs:
            assert hs.pid is not None
            pids.append(hs.pid)
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert pids
    assert not _alive(pids[0])


async def test_start_failure_raises_with_the_log_tail(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SynapseStartError, match="Address already in use"):
            async with LocalSynapse.running(tmp_path / "hs", port=port):
                pytest.fail("Synapse should not have started")
    # A given state dir is kept: it holds the logs that explain the failure.
    assert (tmp_path / "hs" / "console.log").exists()


def test_generated_config_is_offline_and_loopback_only(tmp_path) -> None:
    hs = LocalSynapse.create(tmp_path, ratelimits="lifted", port=12345)
    config = hs.homeserver_config()
    (listener,) = config["listeners"]
    assert listener["bind_addresses"] == ["127.0.0.1"]
    assert listener["port"] == 12345
    assert config["trusted_key_servers"] == []
    assert config["enable_registration"] is False
    assert config["rc_message"]["per_second"] >= 1000
    assert config["rc_room_creation"]["burst_count"] >= 1000
    assert (
        "rc_message"
        not in LocalSynapse.create(tmp_path / "d", ratelimits="default").homeserver_config()
    )
    # The registration secret and signing key survive a re-create on the same dir.
    again = LocalSynapse.create(tmp_path, port=12346)
    assert again.registration_shared_secret == hs.registration_shared_secret
