"""``CryptoUser`` (the E2EE test and demo user) and the client's E2EE plumbing:
``send_crypto_request`` and deleting a device behind password UIA, on the fake homeserver."""

from __future__ import annotations

import pytest

from matrix_client import MatrixError, text_content
from matrix_client.testing import CryptoUser, FakeHomeserver


async def _sync(user: CryptoUser, syncer) -> list:
    batch = await syncer.next()
    await user.receive(batch)
    return [(item.room_id, item.event) for item in batch.events]


async def test_two_crypto_users_talk_in_an_encrypted_room(autojump_clock) -> None:
    hs = FakeHomeserver()
    alice, bob = hs.register("alice"), hs.register("bob")
    room = hs.create_room(alice, invite=[bob.user_id], encrypted=True)
    hs.join_as(bob, room)
    async with hs.user_client(alice) as a_client, hs.user_client(bob) as b_client:
        a, b = await CryptoUser.start(a_client), await CryptoUser.start(b_client)
        a_sync = a_client.syncer(since=None, filter_id=None)
        b_sync = b_client.syncer(since=None, filter_id=None)
        await _sync(a, a_sync)
        await _sync(b, b_sync)
        await a.send(room, "m.room.message", text_content("hello bob"))
        raw = hs.messages_from(alice, room, "m.room.encrypted")
        assert len(raw) == 1
        assert "hello bob" not in str(raw[0]["content"])
        events = await _sync(b, b_sync)
        shown = [b.decrypt(r, e) for r, e in events if e.type == "m.room.encrypted"]
        assert [(e.type, e.content["body"]) for e in shown] == [("m.room.message", "hello bob")]
        # And back: bob's key goes to alice's device, she reads his answer.
        await b.send(room, "m.room.message", text_content("hi alice"))
        events = await _sync(a, a_sync)
        shown = [a.decrypt(r, e) for r, e in events if e.type == "m.room.encrypted"]
        bodies = [e.content.get("body") for e in shown if e.sender == bob.user_id]
        assert bodies == ["hi alice"]


async def test_unencrypted_rooms_are_sent_in_clear(autojump_clock) -> None:
    hs = FakeHomeserver()
    alice = hs.register("alice")
    room = hs.create_room(alice)
    async with hs.user_client(alice) as client:
        user = await CryptoUser.start(client)
        await user.send(room, "m.room.message", text_content("plain"))
    assert hs.messages_from(alice, room)[0]["content"]["body"] == "plain"


async def test_encrypted_attachment_round_trip(autojump_clock) -> None:
    hs = FakeHomeserver()
    alice = hs.register("alice")
    async with hs.user_client(alice) as client:
        user = await CryptoUser.start(client)
        file = await user.upload_encrypted(b"secret notes", content_type="text/plain", filename="n")
        assert hs.media(file["url"])[0] != b"secret notes"
        assert await user.download_decrypted(file, max_bytes=100) == b"secret notes"


async def test_delete_device_completes_password_uia(autojump_clock) -> None:
    hs = FakeHomeserver()
    bot = hs.register("bot", password="pw")
    hs.login(bot, device_id="OLD")
    current = hs.login(bot, device_id="NEW")
    async with hs.user_client(current) as client:
        await client.delete_device("OLD", password="pw")
        assert "OLD" not in hs.devices(bot)
        # Gone already: fine.
        await client.delete_device("OLD", password="pw")
        calls = hs.requests_to("DELETE", "/devices/*")
        assert [r.body.get("auth", {}).get("type") for r in calls] == [
            None,
            "m.login.password",
            None,
            "m.login.password",
        ]
    assert "NEW" in hs.devices(bot)


async def test_delete_device_with_a_wrong_password_raises(autojump_clock) -> None:
    hs = FakeHomeserver()
    bot = hs.register("bot", password="pw")
    hs.login(bot, device_id="OLD")
    async with hs.user_client(hs.login(bot, device_id="NEW")) as client:
        with pytest.raises(MatrixError) as caught:
            await client.delete_device("OLD", password="wrong")
    assert caught.value.status == 401
    assert "OLD" in hs.devices(bot)
