"""Smoke tests of ``matrix_client.testing.LocalSynapse`` with raw httpx (no matrix_client)."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
import yaml

from matrix_client.testing import LocalSynapse, SynapseError, SynapseStartError, _synapse

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


def test_extra_config_is_merged_into_the_generated_config(tmp_path) -> None:
    hs = LocalSynapse.create(
        tmp_path,
        port=12347,
        extra_config={
            "presence": {"include_offline_users_on_sync": True},  # merged into a section
            "encryption_enabled_by_default_for_room_type": "all",  # a new key
            "max_upload_size": "1M",  # a generated value replaced
        },
    )
    config = hs.homeserver_config()
    assert config["presence"] == {"enabled": False, "include_offline_users_on_sync": True}
    assert config["encryption_enabled_by_default_for_room_type"] == "all"
    assert config["max_upload_size"] == "1M"
    written = yaml.safe_load(hs.config_path.read_text())
    assert written == config
    with pytest.raises(ValueError, match="'off'"):
        LocalSynapse.create(tmp_path / "bad", ratelimits="off")


def test_blocking_lifecycle_with_extra_config_reaches_synapse() -> None:
    """No trio: the session fixtures' path. The extra config is what Synapse runs with:
    a room created without any encryption state comes out encrypted."""
    forced = {"encryption_enabled_by_default_for_room_type": "all"}
    with LocalSynapse.running_blocking(extra_config=forced) as hs:
        pid = hs.pid
        user = hs.register_blocking("forced", "forced-password")
        with httpx.Client(base_url=hs.base_url, headers=_auth(user.access_token)) as http:
            room = http.post("/_matrix/client/v3/createRoom", json={"preset": "private_chat"})
            room_id = quote(room.json()["room_id"])
            state = http.get(f"/_matrix/client/v3/rooms/{room_id}/state/m.room.encryption/")
    assert state.status_code == 200
    assert state.json()["algorithm"] == "m.megolm.v1.aes-sha2"
    assert pid is not None
    assert not _alive(pid)
    assert not hs.state_dir.exists()


async def test_a_start_cancelled_midway_stops_the_half_started_process(monkeypatch) -> None:
    """Cancelled right after the process was spawned, long before it answers: the
    worker thread stops it, and ``stop()`` waits for that instead of racing it."""
    spawned: list[subprocess.Popen[bytes]] = []
    scope = trio.CancelScope()

    class CancelOnSpawn(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            spawned.append(self)
            trio.from_thread.run_sync(scope.cancel)  # we are in start()'s worker thread

    monkeypatch.setattr(_synapse.subprocess, "Popen", CancelOnSpawn)
    hs = LocalSynapse.create()
    with scope:
        await hs.start()
    assert scope.cancelled_caught
    with trio.fail_after(30):
        await hs.stop()
    hs.cleanup()
    (process,) = spawned
    assert process.poll() is not None  # reaped, not left running
    assert hs.pid is None
    assert not hs.state_dir.exists()


async def test_a_picked_port_taken_before_start_is_replaced() -> None:
    hs = LocalSynapse.create()
    taken_port = hs.port
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", taken_port))
        taken.listen()
        try:
            with trio.fail_after(120):
                await hs.start()
            assert hs.port != taken_port
            assert hs.homeserver_config()["listeners"][0]["port"] == hs.port
            async with httpx.AsyncClient() as http:
                with trio.fail_after(10):
                    response = await http.get(hs.base_url + "/_matrix/client/versions")
            assert response.status_code == 200
        finally:
            with trio.CancelScope(shield=True):
                await hs.stop()
            hs.cleanup()
