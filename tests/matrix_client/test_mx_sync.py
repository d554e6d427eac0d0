"""The Syncer against the fake homeserver, in virtual time."""

from __future__ import annotations

import httpx
import pytest
import trio
from structlog.testing import capture_logs

from matrix_client import MatrixClient, MatrixError, RetryPolicy, SyncBatch, UnknownTokenError
from matrix_client.testing import FakeHomeserver, FakeUser, Fault

EXACT = RetryPolicy(max_attempts=4, base_s=1.0, max_s=8.0, jitter=0.0)


def sync_timeouts(hs: FakeHomeserver) -> list[str]:
    return [r.query["timeout"] for r in hs.requests_to("GET", "/sync")]


def bodies(batch: SyncBatch) -> list[str]:
    return [item.event.content.get("body") for item in batch.events if item.event.content]


async def test_first_sync_uses_timeout_zero_then_long_polls(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot, retry=EXACT) as client:
        syncer = client.syncer(since=None, filter_id=None, long_poll_ms=30_000)
        first = await syncer.next()
        assert first.since is None
        assert syncer.since == first.next_batch
        async with trio.open_nursery() as nursery:

            async def later() -> None:
                await trio.sleep(5)
                hs.text_as(alice, room, "hello")

            nursery.start_soon(later)
            start = trio.current_time()
            second = await syncer.next()
            # The long-poll returned when the message arrived, not at the timeout.
            assert trio.current_time() - start == pytest.approx(5.0)
    assert sync_timeouts(hs) == ["0", "30000"]
    assert second.since == first.next_batch
    assert bodies(second) == ["hello"]
    assert [r.query.get("since") for r in hs.requests_to("GET", "/sync")] == [
        None,
        first.next_batch,
    ]


async def test_since_token_from_caller_is_used(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        persisted = (await client.syncer(since=None, filter_id=None).next()).next_batch
    hs.text_as(alice, room, "while you were away")
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=persisted, filter_id=None)
        batch = await syncer.next()
    assert batch.since == persisted
    assert bodies(batch) == ["while you were away"]
    assert hs.requests_to("GET", "/sync")[-1].query == {"since": persisted, "timeout": "0"}


async def test_duplicate_events_across_syncs_delivered_once(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None)
        await syncer.next()
        event_id = hs.text_as(alice, room, "one")
        batch = await syncer.next()
        assert [i.event.event_id for i in batch.events] == [event_id]
        hs.repeat_event(room, event_id)
        hs.text_as(alice, room, "two")
        batch = await syncer.next()
    assert bodies(batch) == ["two"]


async def test_dedup_memory_is_bounded(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None, dedup_size=3)
        await syncer.next()
        first = hs.text_as(alice, room, "m0")
        for n in range(1, 5):
            hs.text_as(alice, room, f"m{n}")
        await syncer.next()
        assert len(syncer._seen) == 3
        hs.repeat_event(room, first)  # forgotten by the LRU: delivered again
        batch = await syncer.next()
    assert bodies(batch) == ["m0"]


async def test_instant_return_loop_respects_min_interval(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.sync_long_poll = False  # the server ignores ?timeout= and answers at once
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None, min_interval_s=2.0)
        await syncer.next()  # timeout=0
        await syncer.next()  # long-poll, instant, unchanged token
        start = trio.current_time()
        for _ in range(5):
            batch = await syncer.next()
            assert batch.next_batch == batch.since
        assert trio.current_time() - start == pytest.approx(5 * 2.0)
    assert sync_timeouts(hs) == ["0"] + ["30000"] * 6


async def test_normal_long_poll_timeouts_are_not_throttled(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None, long_poll_ms=10_000)
        await syncer.next()
        start = trio.current_time()
        for _ in range(3):
            await syncer.next()
        assert trio.current_time() - start == pytest.approx(3 * 10.0)


async def test_limited_timeline_is_reported(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        filter_id = await client.upload_filter({"room": {"timeline": {"limit": 3}}})
        syncer = client.syncer(since=None, filter_id=filter_id)
        await syncer.next()
        for n in range(5):
            hs.text_as(alice, room, f"m{n}")
        batch = await syncer.next()
        assert batch.limited_rooms == [room]
        assert bodies(batch) == ["m2", "m3", "m4"]
        timeline = batch.response.rooms.join[room].timeline
        assert timeline.limited
        assert timeline.prev_batch
        # The gap can be filled from prev_batch with /messages.
        page = await client.room_messages(room, from_token=timeline.prev_batch, limit=2)
        assert [e.content["body"] for e in page.chunk] == ["m1", "m0"]
        hs.text_as(alice, room, "m5")
        batch = await syncer.next()
        assert batch.limited_rooms == []
    assert hs.requests_to("GET", "/sync")[0].query["filter"] == filter_id


async def test_malformed_events_are_skipped_with_a_warning(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None)
        await syncer.next()
        hs.text_as(alice, room, "before")
        no_id = {"type": "m.room.message", "sender": alice.user_id, "content": {"body": "?"}}
        bad_content = {"event_id": "$bad", "type": "m.room.message", "sender": alice.user_id,
                       "content": "not an object"}  # fmt: skip
        no_sender = {"event_id": "$nosender", "type": "m.room.message", "content": {}}
        for raw in (no_id, bad_content, no_sender):
            hs.inject_raw_event(room, raw)
        hs.inject_raw_event(room, ["not", "an", "event"])
        hs.text_as(alice, room, "after")
        with capture_logs() as logs:
            batch = await syncer.next()
    assert bodies(batch) == ["before", "after"]
    malformed = [entry for entry in logs if entry["event"] == "matrix_event_malformed"]
    assert len(malformed) == 4
    assert {m["log_level"] for m in malformed} == {"warning"}
    assert "$bad" in {m.get("event_id") for m in malformed}


async def test_malformed_room_is_skipped_and_rest_survives(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    body = {
        "next_batch": "s9",
        "rooms": {
            "join": {
                "!bad:x": {"timeline": "nope"},
                "!good:x": {"timeline": {"events": [
                    {"event_id": "$1", "type": "m.room.message", "sender": "@a:x",
                     "content": {"body": "ok"}, "origin_server_ts": 1, "future_field": 1},
                ]}},
            },
            "unknown_section": {},
        },
    }  # fmt: skip
    hs.inject("GET", "/sync", Fault.json(200, body))
    async with hs.user_client(bot) as client:
        with capture_logs() as logs:
            batch = await client.syncer(since=None, filter_id=None).next()
    assert [(i.room_id, i.event.event_id) for i in batch.events] == [("!good:x", "$1")]
    assert any(e["event"] == "matrix_room_malformed" for e in logs)


async def test_invites_report_inviter_direct_and_encryption(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    carol = hs.register("carol")
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None)
        await syncer.next()
        dm = hs.invite_bot(bot, inviter=alice, encrypted=True)
        group = hs.create_room(alice, name="Group", invite=[carol.user_id])
        hs.join_as(carol, group)
        hs.invite_as(carol, group, bot)  # carol invites, not the room creator
        batch = await syncer.next()
    invites = {i.room_id: i for i in batch.invites}
    assert set(invites) == {dm, group}
    assert (invites[dm].inviter, invites[dm].is_direct, invites[dm].encrypted) == (
        alice.user_id,
        True,
        True,
    )
    assert invites[group].inviter == carol.user_id
    assert invites[group].is_direct is False
    assert invites[group].encrypted is False
    assert any(s.type == "m.room.name" for s in invites[group].state)


async def test_left_rooms_are_reported(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None)
        first = await syncer.next()
        assert room in first.response.rooms.join
        hs.kick_as(alice, room, bot)
        batch = await syncer.next()
    assert batch.left == [room]
    assert batch.events == []


async def test_after_an_error_the_next_sync_uses_timeout_zero(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot, retry=EXACT) as client:
        syncer = client.syncer(since=None, filter_id=None, long_poll_ms=10_000)
        await syncer.next()
        await syncer.next()  # long-poll times out after 10 s
        hs.inject("GET", "/sync", Fault.http_status(502), Fault.connect_error())
        start = trio.current_time()
        batch = await syncer.next()
        # Backoff 1 s then 2 s, then an immediate timeout=0 request.
        assert trio.current_time() - start == pytest.approx(3.0)
        assert batch.next_batch == batch.since
        await syncer.next()
    assert sync_timeouts(hs) == ["0", "10000", "10000", "0", "0", "10000"]


async def test_sync_429_waits_as_asked(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/sync", Fault.rate_limited(retry_after_s=12))
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        await client.syncer(since=None, filter_id=None).next()
        assert trio.current_time() - start == pytest.approx(12.0)


async def test_hanging_sync_is_cut_by_the_deadline(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot, retry=EXACT, sync_http_margin_s=5.0) as client:
        syncer = client.syncer(since=None, filter_id=None, long_poll_ms=20_000)
        await syncer.next()
        hs.inject("GET", "/sync", Fault.hang())
        start = trio.current_time()
        await syncer.next()
        # 20 s long-poll + 5 s margin, 1 s backoff, then the timeout=0 retry.
        assert trio.current_time() - start == pytest.approx(26.0)
    assert sync_timeouts(hs) == ["0", "20000", "0"]


async def test_every_failed_attempt_is_reported_with_its_kind(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    kinds: list[str] = []
    async with hs.user_client(bot, retry=EXACT, sync_http_margin_s=5.0) as client:
        syncer = client.syncer(since=None, filter_id=None, on_failure=kinds.append)
        hs.inject(
            "GET",
            "/sync",
            Fault.http_status(502),
            Fault.connect_error(),
            Fault.rate_limited(retry_after_s=1),
            Fault.hang(),
            Fault.error(400, "M_BAD_JSON", "nope"),
        )
        with pytest.raises(MatrixError):
            await syncer.next()
    assert kinds == ["http_5xx", "network", "ratelimited", "timeout", "other"]


async def test_token_death_during_sync_is_fatal(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot, retry=EXACT) as client:
        syncer = client.syncer(since=None, filter_id=None)
        await syncer.next()
        hs.revoke_token(bot)
        with pytest.raises(UnknownTokenError):
            await syncer.next()
    assert len(hs.requests_to("GET", "/sync")) == 2


async def test_max_failures_bounds_the_sync_retries(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    from matrix_client import TransportError

    hs.inject("GET", "/sync", Fault.connect_error(), repeat=5)
    async with hs.user_client(bot, retry=EXACT) as client:
        with pytest.raises(TransportError):
            await client.syncer(since=None, filter_id=None, max_failures=3).next()
    assert len(hs.requests_to("GET", "/sync")) == 3


async def test_cancelling_a_long_poll_is_prompt(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None, long_poll_ms=30_000)
        await syncer.next()
        with trio.move_on_after(1.0) as scope:
            await syncer.next()
    assert scope.cancelled_caught


async def test_plain_sync_call_and_own_echo_has_transaction_id(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        first = await client.sync(since=None, timeout_ms=0)
        await client.send_event(room, "m.room.message", {"body": "x"}, txn_id="tx1")
        response = await client.sync(since=first.next_batch, timeout_ms=0)
    (event,) = response.rooms.join[room].timeline.events
    assert event.sender == bot.user_id
    assert event.unsigned["transaction_id"] == "tx1"


async def test_a_slow_catch_up_sync_gets_a_larger_margin_after_a_timeout(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    """A catch-up sync the server needs 20 s for: the first attempt gives up at
    15 s (timeout 0 + margin), the next one, with the margin doubled, gets it."""
    hs.inject("GET", "/sync", Fault.delay(20), Fault.delay(20))
    async with hs.user_client(bot, retry=EXACT, sync_http_margin_s=15.0) as client:
        syncer = client.syncer(since=None, filter_id=None, long_poll_ms=30_000)
        start = trio.current_time()
        with capture_logs() as logs:
            batch = await syncer.next()
        # 15 s cut, 1 s backoff, then 20 s for the answer within the 30 s bound.
        assert trio.current_time() - start == pytest.approx(36.0)
        assert batch.next_batch
        assert [e.get("next_margin_s") for e in logs if e["event"] == "matrix_sync_failed"] == [
            30.0
        ]
        # After a success the margin is the base again: a hung long-poll is cut
        # at 30 s + 15 s.
        assert syncer.margin_s == 15.0
        hs.inject("GET", "/sync", Fault.hang())
        start = trio.current_time()
        await syncer.next()
        assert trio.current_time() - start == pytest.approx(45.0 + 1.0)
    assert sync_timeouts(hs) == ["0", "0", "30000", "0"]


async def test_the_sync_margin_doubles_per_timeout_up_to_a_cap(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    """Consecutive timeouts double the margin up to 8× the base; other failures
    (here a 502 between them) neither grow nor reset it."""
    hs.inject(
        "GET",
        "/sync",
        Fault.hang(),
        Fault.hang(),
        Fault.http_status(502),
        Fault.hang(),
        Fault.hang(),
        Fault.hang(),
    )
    async with hs.user_client(bot, retry=EXACT, sync_http_margin_s=10.0) as client:
        syncer = client.syncer(since=None, filter_id=None)
        start = trio.current_time()
        with capture_logs() as logs:
            await syncer.next()
        elapsed = trio.current_time() - start
    failures = [e for e in logs if e["event"] == "matrix_sync_failed"]
    assert [e["next_margin_s"] for e in failures] == [20.0, 40.0, 40.0, 80.0, 80.0, 80.0]
    # Cut at 10 + 20 + 40 + 80 + 80 s, backoff 1 + 2 + 4 + 8 + 8 + 8 s.
    assert elapsed == pytest.approx(230.0 + 31.0)
    assert len(hs.requests_to("GET", "/sync")) == 7


async def test_an_httpx_read_timeout_on_sync_also_grows_the_margin(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    reads: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sync"):
            reads.append(request.extensions["timeout"]["read"])
            if len(reads) == 1:
                raise httpx.ReadTimeout("slow server", request=request)
        return await hs.handle(request)

    async with MatrixClient(
        hs.base_url,
        access_token=bot.access_token,
        user_id=bot.user_id,
        transport=httpx.MockTransport(handler),
        retry=EXACT,
        sync_http_margin_s=15.0,
    ) as client:
        await client.syncer(since=None, filter_id=None).next()
    assert reads == [15.0, 30.0]
