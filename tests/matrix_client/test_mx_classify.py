"""One classifier for every caller: each failure a send (or any call) can raise, raised
for real through the client and the fake homeserver, then classified."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from matrix_client import (
    EventTooLargeError,
    FailureKind,
    MatrixClient,
    MatrixError,
    MediaTooLargeError,
    Presence,
    PresenceDisabledError,
    RateLimitedError,
    ResponseTooLargeError,
    RetryPolicy,
    TransportError,
    UnknownTokenError,
    classify,
    classify_failure,
    text_content,
)
from matrix_client.testing import FakeHomeserver, FakeUser, Fault

ONCE = RetryPolicy(max_attempts=1, jitter=0.0)
Scenario = Callable[[FakeHomeserver, MatrixClient, str], Awaitable[object]]


async def _send(client: MatrixClient, room: str, body: str = "hi") -> object:
    return await client.send_event(room, "m.room.message", text_content(body), txn_id="t1")


async def too_large_locally(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    return await _send(client, room, "x" * 70_000)


async def too_large_413(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/rooms/*/send/*", Fault.error(413, "M_TOO_LARGE", "event too large"))
    return await _send(client, room)


async def forbidden(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    other = hs.create_room("@alice:test.local")  # the bot is not in it
    return await _send(client, other)


async def not_found(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    return await client.get_event(room, "$missing")


async def bad_request(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/rooms/*/send/*", Fault.error(400, "M_BAD_JSON", "bad"))
    return await _send(client, room)


async def rate_limited(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/rooms/*/send/*", Fault.rate_limited(retry_after_s=1))
    return await _send(client, room)


async def server_error(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/rooms/*/send/*", Fault.http_status(502))
    return await _send(client, room)


async def not_implemented(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/rooms/*/send/*", Fault.http_status(501))
    return await _send(client, room)


async def network(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/rooms/*/send/*", Fault.connect_error())
    return await _send(client, room)


async def deadline(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/rooms/*/send/*", Fault.hang())
    with trio.fail_after(5):
        return await _send(client, room)


async def over_cap(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/rooms/*/send/*", Fault.json(200, {"event_id": "$" + "x" * 2_000}))
    client.max_response_bytes = 1_000
    return await _send(client, room)


async def media_over_cap(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    mxc = await client.upload(b"x" * 5_000, content_type="text/plain")
    return await client.download(mxc, max_bytes=1_000)


async def presence_refused(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.inject("PUT", "/presence/*/status", Fault.error(403, "M_FORBIDDEN", "Presence is disabled"))
    return await client.set_presence(Presence.ONLINE)


async def dead_token(hs: FakeHomeserver, client: MatrixClient, room: str) -> object:
    hs.revoke_token("@bot:test.local")
    return await _send(client, room)


CASES: list[tuple[Scenario, type[BaseException], FailureKind]] = [
    (too_large_locally, EventTooLargeError, FailureKind.PERMANENT),
    (too_large_413, MatrixError, FailureKind.PERMANENT),
    (forbidden, MatrixError, FailureKind.PERMANENT),
    (not_found, MatrixError, FailureKind.PERMANENT),
    (bad_request, MatrixError, FailureKind.PERMANENT),
    (rate_limited, RateLimitedError, FailureKind.RATE_LIMITED),
    (server_error, MatrixError, FailureKind.TRANSIENT),
    (not_implemented, MatrixError, FailureKind.PERMANENT),
    (network, TransportError, FailureKind.TRANSIENT),
    (deadline, trio.TooSlowError, FailureKind.TRANSIENT),
    (over_cap, ResponseTooLargeError, FailureKind.TRANSIENT),
    (media_over_cap, MediaTooLargeError, FailureKind.PERMANENT),
    (presence_refused, PresenceDisabledError, FailureKind.PERMANENT),
    (dead_token, UnknownTokenError, FailureKind.FATAL),
]


@pytest.mark.parametrize(("scenario", "raised", "kind"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_every_failure_is_classified(
    hs: FakeHomeserver,
    bot: FakeUser,
    room: str,
    scenario: Scenario,
    raised: type[BaseException],
    kind: FailureKind,
    autojump_clock: trio.abc.Clock,
) -> None:
    async with hs.user_client(bot, retry=ONCE) as client:
        with pytest.raises(raised) as caught:
            await scenario(hs, client, room)
    assert classify_failure(caught.value) is kind
    assert classify(caught.value) is kind  # the old name is the same function


def test_event_too_large_is_permanent_although_it_is_a_value_error() -> None:
    # The bot's outbox classified it as transient and retried it in a tight loop
    # forever, blocking its room: it must be permanent.
    error = EventTooLargeError(70_000, 65_536)
    assert isinstance(error, ValueError)
    assert classify_failure(error) is FailureKind.PERMANENT


def test_error_statuses_without_a_request() -> None:
    assert classify_failure(MatrixError("M_TOO_LARGE", 413, "x")) is FailureKind.PERMANENT
    assert classify_failure(MatrixError("M_NOT_FOUND", 404, "x")) is FailureKind.PERMANENT
    assert classify_failure(MatrixError("M_LIMIT_EXCEEDED", 400, "x")) is (FailureKind.RATE_LIMITED)
    assert classify_failure(MatrixError(None, 503, "x")) is FailureKind.TRANSIENT
    assert classify_failure(MatrixError(None, 505, "x")) is FailureKind.PERMANENT
    assert classify_failure(MediaTooLargeError(10, 11)) is FailureKind.PERMANENT
    assert classify_failure(ResponseTooLargeError("GET /sync", 200, 10, 11)) is (
        FailureKind.TRANSIENT
    )
    assert classify_failure(RuntimeError("a bug")) is FailureKind.PERMANENT
