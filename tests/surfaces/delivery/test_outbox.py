"""The outbox (issue 13 §2): permanent failures never block a room, and the replayer's
backoff holds on every path — a failing homeserver costs a bounded number of requests,
however many sends and nudges pile up."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from structlog.testing import capture_logs

from matrix_client import MAX_EVENT_BYTES, MatrixClient, RetryPolicy, notice_content
from matrix_client.testing import FakeHomeserver, Fault
from surfaces.core import OutboxStatus
from surfaces.delivery import Outbox
from surfaces.state import PendingSend, Store

ROOM = "!room:test"
NO_RETRIES = RetryPolicy(max_attempts=1)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open_sync(tmp_path / "surfaces.db", inline=True)
    yield s
    s.close()


def notice(txn_id: str, body: str = "hello", room: str = ROOM) -> PendingSend:
    return PendingSend(room, txn_id, "m.room.message", notice_content(body))


def in_room(send: PendingSend, room: str) -> PendingSend:
    return PendingSend(room, send.txn_id, send.event_type, send.content)


async def test_an_oversized_send_is_marked_failed_and_the_room_goes_on(store, autojump_clock):
    """What used to be retried in a tight loop for ever (and held every later message
    of the room, across restarts): refused at once, logged once, the next one sent."""
    hs = FakeHomeserver()
    bot = hs.register("bot")
    room = hs.create_room(bot)
    huge = notice("big", "x" * (MAX_EVENT_BYTES + 1))
    async with hs.user_client(bot) as matrix:
        outbox = Outbox(store, matrix)
        async with trio.open_nursery() as nursery:
            await nursery.start(outbox.run)
            with capture_logs() as logs:
                assert await outbox.send(in_room(huge, room)) is None
                assert await outbox.send(notice("next", "after it", room)) is not None
                await trio.sleep(600)  # ten minutes of replayer rounds
            nursery.cancel_scope.cancel()
    assert (await store.outbox_row("big")).status is OutboxStatus.FAILED
    assert [e["content"]["body"] for e in hs.messages_from(bot, room)] == ["after it"]
    failed = [e for e in logs if e["event"] == "outbox_send_failed_permanently"]
    assert len(failed) == 1
    assert failed[0]["room_id"] == room
    assert failed[0]["txn_id"] == "big"
    assert failed[0]["kind"] == "permanent"
    assert not [e for e in logs if e["event"] == "outbox_send_deferred"]


async def test_a_failing_homeserver_costs_few_requests_on_the_real_clock(store):
    """The one real-clock test the standards allow (2.5 s): every send fails with 500,
    the client does not retry, a room worker keeps sending into the blocked room every
    50 ms (each send used to nudge the replayer into another round at once).
    Before the fix this made ~1,000 requests a second; now the room's backoff
    (1 s, then 2 s …) is all that paces it."""
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return httpx.Response(500, json={"errcode": "M_UNKNOWN", "error": "down"})

    async with MatrixClient(
        "http://hs.invalid",
        access_token="t",
        user_id="@bot:test",
        device_id="D",
        retry=NO_RETRIES,
        transport=httpx.MockTransport(handler),
    ) as matrix:
        outbox = Outbox(store, matrix)
        async with trio.open_nursery() as nursery:
            await nursery.start(outbox.run)

            async def worker() -> None:
                for n in range(1_000):
                    await outbox.send(notice(f"n{n}"))
                    await trio.sleep(0.05)

            nursery.start_soon(worker)
            await trio.sleep(2.5)
            nursery.cancel_scope.cancel()
    # The first inline attempt, the retry at ~1 s, maybe the one at ~3 s (jitter).
    assert 1 <= requests <= 4
    assert await store.outbox_count() > 40  # everything is still queued, nothing lost


async def test_backoff_doubles_to_its_cap_and_delivers_in_order_after_the_outage(
    store, autojump_clock
):
    hs = FakeHomeserver()
    bot = hs.register("bot")
    room = hs.create_room(bot)
    hs.inject("PUT", "/rooms/*/send/*", Fault.http_status(502), repeat=10**6)
    rule = hs._faults[-1]
    async with hs.user_client(bot, retry=NO_RETRIES) as matrix:
        outbox = Outbox(store, matrix)
        async with trio.open_nursery() as nursery:
            await nursery.start(outbox.run)
            for n in range(5):
                await outbox.send(notice(f"n{n}", f"message {n}", room))
            await trio.sleep(600)  # a ten-minute outage
            attempts = len(hs.requests_to("PUT", "/rooms/*/send/*"))
            rule.faults.clear()  # the homeserver is back
            await trio.sleep(outbox.max_backoff_s * 1.25)
            nursery.cancel_scope.cancel()
    # 1 inline + retries after ~1, 2, 4, 8, 16, 32 s and then every ~60 s: about 14.
    assert 8 <= attempts <= 20
    assert [e["content"]["body"] for e in hs.messages_from(bot, room)] == [
        f"message {n}" for n in range(5)
    ]
    assert await store.outbox_count() == 0


async def test_a_blocked_room_does_not_hold_other_rooms(store, autojump_clock):
    hs = FakeHomeserver()
    bot = hs.register("bot")
    down, up = hs.create_room(bot), hs.create_room(bot)
    hs.inject("PUT", f"/rooms/{down}/send/*", Fault.http_status(500), repeat=10**6)
    async with hs.user_client(bot, retry=NO_RETRIES) as matrix:
        outbox = Outbox(store, matrix)
        async with trio.open_nursery() as nursery:
            await nursery.start(outbox.run)
            assert await outbox.send(notice("d1", "stuck", down)) is None
            assert await outbox.send(notice("u1", "fine", up)) is not None
            await trio.sleep(120)
            assert await outbox.send(notice("u2", "still fine", up)) is not None
            nursery.cancel_scope.cancel()
    assert [e["content"]["body"] for e in hs.messages_from(bot, up)] == ["fine", "still fine"]


async def test_sends_into_a_blocked_room_queue_without_requests(store, autojump_clock):
    hs = FakeHomeserver()
    bot = hs.register("bot")
    room = hs.create_room(bot)
    hs.inject("PUT", "/rooms/*/send/*", Fault.connect_error(), repeat=10**6)
    async with hs.user_client(bot, retry=NO_RETRIES) as matrix:
        outbox = Outbox(store, matrix)
        async with trio.open_nursery() as nursery:
            await nursery.start(outbox.run)
            with capture_logs() as logs:
                for n in range(50):
                    await outbox.send(notice(f"n{n}", room=room))
            nursery.cancel_scope.cancel()
    assert len(hs.requests_to("PUT", "/rooms/*/send/*")) == 1
    deferred = [e for e in logs if e["event"] == "outbox_send_deferred"]
    assert len(deferred) == 1  # logged once for the blocked period
    assert deferred[0]["room_id"] == room
    assert deferred[0]["kind"] == "transient"
