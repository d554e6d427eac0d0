"""The bot's device identity pieces alone: the pickle key (configured or a 0600 key file),
opening the identity (loaded, created, refused with a wrong key, replaced when the
server lists other keys), and the room state that key sharing reads."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from matrix_client.crypto import Membership
from matrix_client.testing import FakeHomeserver
from surfaces.config import MatrixConfig, Secret
from surfaces.core import FatalError
from surfaces.session import open_crypto
from surfaces.session.pickle_key import PICKLE_KEY_FILE, key_from_passphrase, load_pickle_key
from surfaces.session.room_state import RoomStates
from surfaces.state import DB_NAME, Store

# ---- the pickle key ---------------------------------------------------------------


def test_a_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key = load_pickle_key(None, tmp_path)
    path = tmp_path / PICKLE_KEY_FILE
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_bytes().strip()) == key
    assert load_pickle_key(None, tmp_path) == key  # read back, not replaced


def test_a_configured_passphrase_wins_and_writes_nothing(tmp_path: Path) -> None:
    secret = Secret("correct horse battery staple")
    key = load_pickle_key(secret, tmp_path)
    assert key == key_from_passphrase(secret)
    assert key != key_from_passphrase(Secret("another passphrase, as long"))
    assert len(key) == 32
    assert not (tmp_path / PICKLE_KEY_FILE).exists()


def test_a_readable_key_file_is_tightened(tmp_path: Path) -> None:
    key = load_pickle_key(None, tmp_path)
    path = tmp_path / PICKLE_KEY_FILE
    path.chmod(0o644)
    assert load_pickle_key(None, tmp_path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", [b"", b"not base64 !!\n", base64.b64encode(b"short")])
def test_a_key_file_without_a_key_is_fatal(tmp_path: Path, content: bytes) -> None:
    (tmp_path / PICKLE_KEY_FILE).write_bytes(content)
    with pytest.raises(FatalError, match="does not hold a key"):
        load_pickle_key(None, tmp_path)


def test_a_symlinked_or_special_key_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(base64.b64encode(os.urandom(32)))
    (tmp_path / PICKLE_KEY_FILE).symlink_to(target)
    with pytest.raises(FatalError, match="cannot open"):
        load_pickle_key(None, tmp_path)
    (tmp_path / PICKLE_KEY_FILE).unlink()
    (tmp_path / PICKLE_KEY_FILE).mkdir()
    with pytest.raises(FatalError):
        load_pickle_key(None, tmp_path)


# ---- opening the identity ------------------------------------------------------------


def _config(hs: FakeHomeserver, **fields) -> MatrixConfig:
    return MatrixConfig(
        homeserver=hs.base_url,
        user_id="@bot:test.local",
        password=Secret("password"),
        device_id="BOTDEV",
        **fields,
    )


async def _open(hs: FakeHomeserver, tmp_path: Path, **fields):
    store = await Store.open(tmp_path / DB_NAME, inline=True)
    client = hs.user_client(hs.login("@bot:test.local", device_id="BOTDEV"))
    await client.__aenter__()
    try:
        crypto = await open_crypto(client, store, _config(hs, **fields), tmp_path)
        await crypto.flush()
        return crypto, store, client
    except BaseException:
        await client.__aexit__(None, None, None)
        store.close()
        raise


async def test_an_identity_is_created_then_loaded(tmp_path: Path, autojump_clock) -> None:
    hs = FakeHomeserver()
    hs.register("bot")
    crypto, store, client = await _open(hs, tmp_path)
    keys = crypto.machine.identity_keys
    assert hs.device_keys("@bot:test.local", "BOTDEV")["keys"]["ed25519:BOTDEV"] == keys.ed25519
    await client.__aexit__(None, None, None)
    store.close()
    again, store, client = await _open(hs, tmp_path)
    assert again.machine.identity_keys == keys
    assert again.device_id == "BOTDEV"
    await client.__aexit__(None, None, None)
    store.close()


async def test_another_pickle_key_does_not_open_the_identity(tmp_path: Path, autojump_clock):
    hs = FakeHomeserver()
    hs.register("bot")
    _, store, client = await _open(hs, tmp_path)
    await client.__aexit__(None, None, None)
    store.close()
    with pytest.raises(FatalError, match="does not open with the pickle key"):
        await _open(hs, tmp_path, pickle_key=Secret("a different key, long enough"))


async def test_keys_the_server_lists_but_we_lack_mean_a_new_device(tmp_path: Path, autojump_clock):
    hs = FakeHomeserver()
    hs.register("bot")
    first, store, client = await _open(hs, tmp_path / "one")
    await client.__aexit__(None, None, None)
    store.close()
    # Another state directory: no keys here, the server has BOTDEV's.
    second, store, client = await _open(hs, tmp_path / "two")
    assert second.device_id.startswith("BOTDEV_")
    assert "BOTDEV" not in hs.devices("@bot:test.local")
    assert second.machine.identity_keys != first.machine.identity_keys
    await client.__aexit__(None, None, None)
    store.close()


async def test_only_an_access_token_cannot_move_to_a_new_device(tmp_path: Path, autojump_clock):
    hs = FakeHomeserver()
    hs.register("bot")
    _, store, client = await _open(hs, tmp_path / "one")
    await client.__aexit__(None, None, None)
    store.close()
    with pytest.raises(FatalError, match="Set MATRIX_PASSWORD"):
        await _open(hs, tmp_path / "two", access_token=Secret("syt_token"))


# ---- room state -----------------------------------------------------------------


async def test_room_state_is_read_once_and_kept_current_from_sync(autojump_clock) -> None:
    hs = FakeHomeserver()
    bot, alice, bob = hs.register("bot"), hs.register("alice"), hs.register("bob")
    room = hs.create_room(bot, invite=[alice.user_id], encrypted=True)
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None)
        rooms = RoomStates(client)
        rooms.observe(await syncer.next())
        state = await rooms.get(room)
        assert state.encrypted
        assert dict(state.members) == {
            bot.user_id: Membership.JOIN,
            alice.user_id: Membership.INVITE,
        }
        reads = len(hs.requests_to("GET", "/rooms/*/state"))
        hs.join_as(alice, room)
        hs.invite_as(bot, room, bob)
        hs.join_as(bob, room)
        hs.leave_as(alice, room)
        rooms.observe(await syncer.next())
        state = await rooms.get(room)
        assert dict(state.members) == {bot.user_id: Membership.JOIN, bob.user_id: Membership.JOIN}
        assert len(hs.requests_to("GET", "/rooms/*/state")) == reads  # from sync, no request
        plain = hs.create_room(bot)
        assert await rooms.is_encrypted(plain) is False
        await client.leave(room)
        rooms.observe(await syncer.next())
        assert rooms.known_encrypted(room) is None  # forgotten: read again if needed


async def test_a_room_changed_while_it_was_read_is_read_again(monkeypatch, autojump_clock):
    hs = FakeHomeserver()
    bot, alice = hs.register("bot"), hs.register("alice")
    room = hs.create_room(bot, invite=[alice.user_id], encrypted=True)
    async with hs.user_client(bot) as client:
        rooms = RoomStates(client)
        real_get_state = type(client).get_state
        calls = []

        async def racing_get_state(self, room_id: str):
            events = await real_get_state(self, room_id)
            calls.append(room_id)
            if len(calls) == 1:  # a batch arrives between the server's answer and ours
                hs.join_as(alice, room)
                rooms.observe(await client.syncer(since=None, filter_id=None).next())
            return events

        monkeypatch.setattr(type(client), "get_state", racing_get_state)
        state = await rooms.get(room)
        assert calls == [room, room]  # the first answer predates the join: read again
        assert dict(state.members)[alice.user_id] is Membership.JOIN
