"""Retries: one classification, one helper; virtual time shows the exact waits."""

from __future__ import annotations

import httpx
import pytest
import trio

from matrix_client import (
    FailureKind,
    MatrixError,
    RateLimitedError,
    RetryPolicy,
    TransportError,
    UnknownTokenError,
    classify,
    text_content,
)
from matrix_client.testing import FakeHomeserver, FakeUser, Fault

#: Same as the ``exact`` fixture: no jitter, so waits are exact.
EXACT = RetryPolicy(max_attempts=4, base_s=1.0, max_s=8.0, max_429_wait_s=60.0, jitter=0.0)


SEND = "/rooms/*/send/*"


async def test_429_retry_after_header_is_honoured_exactly(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", SEND, Fault.rate_limited(retry_after_s=7, retry_after_ms=100))
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        event_id = await client.send_event(room, "m.room.message", text_content("hi"), txn_id="t1")
        assert trio.current_time() - start == pytest.approx(7.0)
    assert [e["event_id"] for e in hs.messages_from(bot, room)] == [event_id]
    assert len(hs.requests_to("PUT", SEND)) == 2


async def test_429_retry_after_ms_in_body(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/joined_rooms", Fault.rate_limited(retry_after_ms=2500))
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        assert await client.joined_rooms() == []
        assert trio.current_time() - start == pytest.approx(2.5)


async def test_429_without_hint_uses_backoff(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/joined_rooms", Fault.error(429, "M_LIMIT_EXCEEDED"), repeat=2)
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        await client.joined_rooms()
        assert trio.current_time() - start == pytest.approx(1.0 + 2.0)


async def test_429_budget_exhaustion_raises_rate_limited(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", SEND, Fault.rate_limited(retry_after_s=3), repeat=10)
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        with pytest.raises(RateLimitedError) as info:
            await client.send_event(room, "m.room.message", text_content("x"), txn_id="t1")
        assert trio.current_time() - start == pytest.approx(3.0 * (EXACT.max_attempts - 1))
    assert info.value.retry_after_s == 3
    assert info.value.status == 429
    assert len(hs.requests_to("PUT", SEND)) == EXACT.max_attempts
    assert hs.messages_from(bot, room) == []


async def test_429_longer_than_allowed_wait_raises_at_once(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", SEND, Fault.rate_limited(retry_after_s=3600))
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        with pytest.raises(RateLimitedError) as info:
            await client.send_event(room, "m.room.message", text_content("x"), txn_id="t1")
        assert trio.current_time() == start
    assert info.value.retry_after_s == 3600


async def test_502_retried_for_get_then_success(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/joined_rooms", Fault.http_status(502), Fault.http_status(503))
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        assert await client.joined_rooms() == [room]
        assert trio.current_time() - start == pytest.approx(1.0 + 2.0)
    assert len(hs.requests_to("GET", "/joined_rooms")) == 3


async def test_502_retried_for_put_then_success(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", "/rooms/*/state/*", Fault.http_status(502), repeat=2)
    async with hs.user_client(bot, retry=EXACT) as client:
        await client.put_state_event(room, "org.example.state", {"v": 1}, state_key="k")
    assert hs.state_content(room, "org.example.state", "k") == {"v": 1}
    assert len(hs.requests_to("PUT", "/rooms/*/state/*")) == 3


async def test_5xx_budget_exhaustion_raises_the_last_error(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/joined_rooms", Fault.http_status(500), repeat=10)
    async with hs.user_client(bot, retry=EXACT) as client:
        with pytest.raises(MatrixError) as info:
            await client.joined_rooms()
    assert info.value.status == 500
    assert info.value.errcode is None
    assert len(hs.requests_to("GET", "/joined_rooms")) == EXACT.max_attempts


async def test_post_not_retried_on_502(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("POST", "/createRoom", Fault.http_status(502))
    async with hs.user_client(bot, retry=EXACT) as client:
        with pytest.raises(MatrixError) as info:
            await client.create_room(name="x")
    assert info.value.status == 502
    assert len(hs.requests_to("POST", "/createRoom")) == 1
    assert hs.rooms() == []


async def test_post_not_retried_on_network_error(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("POST", "/createRoom", Fault.lost_response())
    async with hs.user_client(bot, retry=EXACT) as client:
        with pytest.raises(TransportError) as info:
            await client.create_room(name="x")
    assert isinstance(info.value.__cause__, httpx.ReadError)
    # The server did create the room: that is why POST is never blind-retried.
    assert len(hs.rooms()) == 1
    assert len(hs.requests_to("POST", "/createRoom")) == 1


async def test_post_retried_on_429(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("POST", "/createRoom", Fault.rate_limited(retry_after_s=1))
    async with hs.user_client(bot, retry=EXACT) as client:
        room_id = await client.create_room(name="x")
    assert hs.rooms() == [room_id]


async def test_lost_put_response_retried_with_same_txn_id_gives_one_event(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", SEND, Fault.lost_response(), Fault.connect_error())
    async with hs.user_client(bot, retry=EXACT) as client:
        event_id = await client.send_event(
            room, "m.room.message", text_content("once"), txn_id="txn-42"
        )
    sends = hs.requests_to("PUT", SEND)
    assert [r.fault for r in sends] == ["lost_response", "connect_error", None]
    assert {r.path.rsplit("/", 1)[-1] for r in sends} == {"txn-42"}
    messages = hs.messages_from(bot, room)
    assert [m["event_id"] for m in messages] == [event_id]
    assert messages[0]["content"]["body"] == "once"


async def test_network_errors_exhausted_raise_transport_error(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/account/whoami", Fault.connect_error(), repeat=10)
    async with hs.user_client(bot, retry=EXACT) as client:
        with pytest.raises(TransportError) as info:
            await client.whoami()
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(hs.requests_to("GET", "/account/whoami")) == EXACT.max_attempts


async def test_unknown_token_raises_without_retry(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", SEND, Fault.unknown_token(soft_logout=True))
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        with pytest.raises(UnknownTokenError) as info:
            await client.send_event(room, "m.room.message", text_content("x"), txn_id="t")
        assert trio.current_time() == start
    assert info.value.soft_logout is True
    assert info.value.errcode == "M_UNKNOWN_TOKEN"
    assert len(hs.requests_to("PUT", SEND)) == 1


async def test_revoked_token_is_fatal(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot, retry=EXACT) as client:
        hs.revoke_token(bot)
        with pytest.raises(UnknownTokenError):
            await client.joined_rooms()
    assert len(hs.requests_to("GET", "/joined_rooms")) == 1


async def test_permanent_error_not_retried(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    other = hs.create_room(alice)  # bot is not in it
    async with hs.user_client(bot, retry=EXACT) as client:
        with pytest.raises(MatrixError) as info:
            await client.send_event(other, "m.room.message", text_content("x"), txn_id="t")
    assert (info.value.status, info.value.errcode) == (403, "M_FORBIDDEN")
    assert len(hs.requests_to("PUT", SEND)) == 1


async def test_cancellation_during_backoff_is_prompt(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", SEND, Fault.rate_limited(retry_after_s=50))
    async with hs.user_client(bot, retry=EXACT) as client:
        start = trio.current_time()
        with trio.move_on_after(2.0) as scope:
            await client.send_event(room, "m.room.message", text_content("x"), txn_id="t")
        assert scope.cancelled_caught
        assert trio.current_time() - start == pytest.approx(2.0)
    assert len(hs.requests_to("PUT", SEND)) == 1


async def test_cancellation_of_a_hanging_request_is_prompt(
    hs: FakeHomeserver, bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/joined_rooms", Fault.hang())
    async with hs.user_client(bot, retry=EXACT) as client:
        with trio.move_on_after(1.0) as scope:
            await client.joined_rooms()
    assert scope.cancelled_caught


async def test_on_request_gets_bounded_labels(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    seen: list[tuple[str, int, float]] = []
    hs.inject("PUT", SEND, Fault.http_status(502), Fault.connect_error())
    async with hs.user_client(bot, retry=EXACT, on_request=lambda *a: seen.append(a)) as client:
        await client.send_event(room, "m.room.message", text_content("x"), txn_id="t")
        await client.get_state_event(room, "m.room.name")
    labels = [(label, status) for label, status, _ in seen]
    assert labels == [
        ("PUT /rooms/{roomId}/send", 502),
        ("PUT /rooms/{roomId}/send", 0),
        ("PUT /rooms/{roomId}/send", 200),
        ("GET /rooms/{roomId}/state/{eventType}/{stateKey}", 200),
    ]
    assert all(room not in label for label, _, _ in seen)


async def test_failing_on_request_hook_does_not_break_requests(
    hs: FakeHomeserver, bot: FakeUser
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics down")

    async with hs.user_client(bot, on_request=broken) as client:
        assert await client.joined_rooms() == []


def test_classification() -> None:
    assert classify(UnknownTokenError("M_UNKNOWN_TOKEN", 401, "x")) is FailureKind.FATAL
    assert classify(RateLimitedError("M_LIMIT_EXCEEDED", 429, "x")) is FailureKind.RATE_LIMITED
    assert classify(MatrixError(None, 502, "x")) is FailureKind.TRANSIENT
    assert classify(MatrixError(None, 501, "x")) is FailureKind.PERMANENT
    assert classify(MatrixError("M_FORBIDDEN", 403, "x")) is FailureKind.PERMANENT
    assert classify(TransportError("x")) is FailureKind.TRANSIENT
    assert classify(trio.TooSlowError()) is FailureKind.TRANSIENT
    assert classify(ValueError()) is FailureKind.PERMANENT


def test_backoff_is_exponential_capped_and_jittered() -> None:
    exact = RetryPolicy(base_s=0.5, max_s=4.0, jitter=0.0)
    assert [exact.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    jittered = RetryPolicy(base_s=1.0, max_s=30.0, jitter=0.5)
    delays = [jittered.backoff(3) for _ in range(50)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1
