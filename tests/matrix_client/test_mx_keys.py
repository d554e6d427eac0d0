"""E2EE transport: keys upload/query/claim, to-device delivery and deletion, device lists."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from matrix_client import EventTooLargeError, MatrixClient, MatrixError, SyncBatch
from matrix_client.testing import FakeHomeserver, FakeLogin, FakeUser, Fault


def device_keys(user: FakeUser | FakeLogin, device_id: str | None = None, tag: str = "a") -> dict:
    device = device_id or user.device_id
    return {
        "user_id": user.user_id,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{device}": f"curve-{tag}", f"ed25519:{device}": f"ed-{tag}"},
        "signatures": {user.user_id: {f"ed25519:{device}": "sig"}},
    }


def otks(*ids: str) -> dict:
    return {f"signed_curve25519:{i}": {"key": f"k{i}", "signatures": {}} for i in ids}


async def next_sync(syncer_client: MatrixClient, since: str | None) -> SyncBatch:
    return await syncer_client.syncer(since=since, filter_id=None).next()


async def test_upload_counts_and_sync_reports_key_counts(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        first = await client.keys_upload(
            {
                "device_keys": device_keys(bot),
                "one_time_keys": otks("AAA", "AAB", "AAC"),
                "fallback_keys": {"signed_curve25519:FB1": {"key": "fb", "fallback": True}},
            }
        )
        again = await client.keys_upload({"one_time_keys": otks("AAA")})  # same key: fine
        batch = await next_sync(client, None)
        with pytest.raises(MatrixError) as caught:  # same id, other content
            await client.keys_upload({"one_time_keys": {"signed_curve25519:AAA": {"key": "x"}}})
        with pytest.raises(MatrixError):  # keys naming another device
            await client.keys_upload({"device_keys": device_keys(bot, "OTHER")})
    assert first == {"one_time_key_counts": {"signed_curve25519": 3}}
    assert again == first
    assert batch.device_one_time_keys_count == {"signed_curve25519": 3}
    assert batch.device_unused_fallback_key_types == ["signed_curve25519"]
    assert caught.value.status == 400
    assert hs.device_keys(bot, bot.device_id) == device_keys(bot)


async def test_query_and_claim_between_two_users_and_the_fallback_key(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(alice) as a, hs.user_client(bot) as b:
        await a.keys_upload(
            {
                "device_keys": device_keys(alice),
                "one_time_keys": otks("1", "2"),
                "fallback_keys": {"signed_curve25519:F": {"key": "fb", "fallback": True}},
            }
        )
        queried = await b.keys_query({"device_keys": {alice.user_id: [], "@nobody:x": []}})
        wanted = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
        claims = [await b.keys_claim(wanted) for _ in range(4)]
        alice_sync = await next_sync(a, None)
    assert queried["device_keys"][alice.user_id] == {alice.device_id: device_keys(alice)}
    assert queried["device_keys"]["@nobody:x"] == {}
    got = [c["one_time_keys"][alice.user_id][alice.device_id] for c in claims]
    assert [list(g) for g in got] == [
        ["signed_curve25519:1"],
        ["signed_curve25519:2"],
        ["signed_curve25519:F"],  # one-time keys used up: the fallback key, which stays
        ["signed_curve25519:F"],
    ]
    assert alice_sync.device_one_time_keys_count == {"signed_curve25519": 0}
    assert alice_sync.device_unused_fallback_key_types == []  # used: time for a new one


async def test_query_shows_the_device_display_name(
    hs: FakeHomeserver, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    phone = hs.login(alice, device_id="PHONE", display_name="Alice's phone")
    async with hs.user_client(phone) as client:
        await client.keys_upload({"device_keys": device_keys(phone)})
        answer = await client.keys_query({"device_keys": {alice.user_id: ["PHONE"]}})
    keys = answer["device_keys"][alice.user_id]["PHONE"]
    assert keys["unsigned"] == {"device_display_name": "Alice's phone"}


async def test_to_device_reaches_one_device_or_all_and_is_idempotent_per_txn(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    phone = hs.login(alice, device_id="PHONE")
    laptop = hs.login(alice, device_id="LAPTOP")
    async with hs.user_client(bot) as client:
        await client.send_to_device(
            "m.room_key_request", {alice.user_id: {"PHONE": {"n": 1}}}, txn_id="t1"
        )
        await client.send_to_device(  # a retry of the same txn: delivered once
            "m.room_key_request", {alice.user_id: {"PHONE": {"n": 1}}}, txn_id="t1"
        )
        await client.send_to_device("m.dummy", {alice.user_id: {"*": {"n": 2}}}, txn_id="t2")
    async with hs.user_client(phone) as p, hs.user_client(laptop) as lap:
        on_phone = (await next_sync(p, None)).to_device
        on_laptop = (await next_sync(lap, None)).to_device
    assert [(e.type, e.sender, e.content) for e in on_phone] == [
        ("m.room_key_request", bot.user_id, {"n": 1}),
        ("m.dummy", bot.user_id, {"n": 2}),
    ]
    assert [(e.type, e.content) for e in on_laptop] == [("m.dummy", {"n": 2})]


async def test_to_device_is_deleted_once_the_token_passes_it_so_a_lost_token_loses_it(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(alice) as a, hs.user_client(bot) as b:
        start = await next_sync(b, None)
        await a.send_to_device("m.room_key", {bot.user_id: {bot.device_id: {"k": 1}}}, txn_id="x")

        delivering = await next_sync(b, start.next_batch)
        assert [e.content for e in delivering.to_device] == [{"k": 1}]
        # Not acknowledged yet: a restart from the old token gets it again.
        again = await next_sync(b, start.next_batch)
        assert [e.content for e in again.to_device] == [{"k": 1}]
        assert hs.to_device_inbox(bot, bot.device_id) != []

        # The next request with the delivering batch's token deletes it on the server.
        after = await next_sync(b, delivering.next_batch)
        assert after.to_device == []
        assert hs.to_device_inbox(bot, bot.device_id) == []
        # A client that did not store it with that token has lost it for good.
        lost = await next_sync(b, start.next_batch)
    assert lost.to_device == []


async def test_to_device_wakes_a_long_poll(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(alice) as a, hs.user_client(bot) as b:
        syncer = b.syncer(since=None, filter_id=None, long_poll_ms=30_000)
        await syncer.next()
        received: list[SyncBatch] = []

        async def listen() -> None:
            received.append(await syncer.next())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            await trio.testing.wait_all_tasks_blocked()  # the long-poll is waiting
            await a.send_to_device("m.dummy", {bot.user_id: {"*": {}}}, txn_id="w")
        woke_at = trio.current_time()
    assert [e.type for e in received[0].to_device] == ["m.dummy"]
    assert woke_at < 30


async def test_to_device_over_64_kib_is_refused_before_sending(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    big = {alice.user_id: {"*": {"ciphertext": "x" * 70_000}}}
    async with hs.user_client(bot) as client:
        with pytest.raises(EventTooLargeError):
            await client.send_to_device("m.room.encrypted", big, txn_id="big")
        hs.send_to_device_as(alice, "m.ok", {bot.user_id: {"*": {}}})  # a helper works too
    assert hs.requests_to("PUT", "/sendToDevice/*") == []
    assert [e["type"] for e in hs.to_device_inbox(bot, bot.device_id)] == ["m.ok"]
    with pytest.raises(Exception, match="too large"):
        hs.send_to_device_as(bot, "m.room.encrypted", big)  # the fake refuses it too (413)


async def test_device_lists_changed_for_new_devices_and_keys_and_left_when_no_room_is_shared(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    carol = hs.register("carol")
    room_id = hs.invite_bot(bot, inviter=alice)
    hs.join_as(bot, room_id)
    async with hs.user_client(bot) as client:
        t0 = (await next_sync(client, None)).next_batch
        assert (await next_sync(client, None)).device_lists.changed == []  # initial: none

        phone = hs.login(alice, device_id="PHONE")  # a new device of a room member
        hs.login(carol, device_id="CPHONE")  # carol shares no room: not our business
        t1_batch = await next_sync(client, t0)
        async with hs.user_client(phone) as p:
            await p.keys_upload({"device_keys": device_keys(phone)})  # new keys
        t2_batch = await next_sync(client, t1_batch.next_batch)

        hs.invite_as(alice, room_id, carol)
        hs.join_as(carol, room_id)  # carol starts sharing a room with us
        t3_batch = await next_sync(client, t2_batch.next_batch)

        hs.leave_as(alice, room_id)  # alice no longer shares a room
        t4_batch = await next_sync(client, t3_batch.next_batch)
    assert t1_batch.device_lists.changed == [alice.user_id]
    assert t2_batch.device_lists.changed == [alice.user_id]
    assert t3_batch.device_lists.changed == [carol.user_id]
    assert (t4_batch.device_lists.changed, t4_batch.device_lists.left) == ([], [alice.user_id])


async def test_logout_deletes_the_device_and_tells_room_members(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    phone = hs.login(alice, device_id="PHONE")
    async with hs.user_client(bot) as client:
        since = (await next_sync(client, None)).next_batch
        async with hs.user_client(phone) as p:
            await p.logout()
        batch = await next_sync(client, since)
    assert len(hs.devices(alice)) == 1
    assert "PHONE" not in hs.devices(alice)
    assert batch.device_lists.changed == [alice.user_id]


async def test_malformed_e2ee_sync_fields_are_skipped_with_a_log_line(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    garbage = {
        "next_batch": "s5",
        "to_device": {"events": [{"type": "m.ok", "sender": "@a:x", "content": {}}, {"type": 3}]},
        "device_lists": {"changed": ["@a:x", 7], "left": "nope"},
        "device_one_time_keys_count": {"signed_curve25519": 4, "bad": -1, "worse": "x"},
        "org.matrix.msc2732.device_unused_fallback_key_types": ["signed_curve25519", None],
    }
    hs.inject("GET", "/sync", Fault.json(200, garbage))
    async with hs.user_client(bot) as client:
        with capture_logs() as logs:
            batch = await next_sync(client, None)
    assert [e.type for e in batch.to_device] == ["m.ok"]
    assert (batch.device_lists.changed, batch.device_lists.left) == (["@a:x"], [])
    assert batch.device_one_time_keys_count == {"signed_curve25519": 4}
    assert batch.device_unused_fallback_key_types == ["signed_curve25519"]
    events = {entry["event"] for entry in logs}
    assert {"matrix_event_malformed", "matrix_sync_field_malformed"} <= events

    hs.inject(
        "GET", "/sync", Fault.json(200, {"next_batch": "s6", "to_device": [], "device_lists": 1})
    )
    async with hs.user_client(bot) as client:
        batch = await next_sync(client, "s5")
    assert (batch.to_device, batch.device_lists.changed) == ([], [])
    assert batch.device_unused_fallback_key_types is None  # the server did not say
