"""The sync loop, one call at a time: ``batch = await syncer.next()``.

Not an async generator on purpose: a generator suspended inside a cancel scope
is a trap under trio, and the caller needs a point between batches where it
owns the token (it persists ``batch.next_batch`` together with the events it
admitted, and only then asks for the next batch).

Why each decision:

* The first request, and the first after an error, use ``timeout=0``: we want
  whatever is pending *now* (a backlog after a restart, or the state we missed
  while failing) instead of waiting for the next new event.
* Later requests long-poll for ``long_poll_ms``; the client bounds each request
  with ``long_poll + margin`` (httpx read timeout *and* a trio deadline, because
  httpx timeouts restart on every read). The margin is the client's
  ``sync_http_margin_s``, doubled after each consecutive *timeout* up to
  ``max_margin_factor`` times that (8 × 15 s = 120 s by default) and back to the
  base after a success. A catch-up sync on a busy server (thousands of rooms) can
  take longer than the base margin; retrying with the same bound would restart
  the same work and never finish (bench/RESULTS.md, finding 5). Other failures
  neither grow nor reset it.
* A server that answers a long-poll instantly with an unchanged token would
  spin us in a hot loop; such a request is followed by a pause so that two
  requests start at least ``min_interval_s`` apart.
* Errors back off exponentially with jitter (429 waits as the server asks);
  ``M_UNKNOWN_TOKEN`` and other permanent errors are raised to the caller.
* Events are deduplicated by event id in a bounded LRU: servers may repeat
  events across batches (e.g. after a retried request or a gappy timeline).
  Timeline events only: to-device events have no id, and the server itself
  stops sending them once the next request carries this batch's token.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import structlog
import trio

from ._errors import MatrixError, TransportError
from ._models import InvitedRoom, InviteItem, SyncBatch, SyncResponse, TimelineItem
from ._retry import FailureKind, classify

if TYPE_CHECKING:
    from ._client import MatrixClient

log = structlog.get_logger(__name__)


class SyncTimeoutError(TransportError):
    """A ``/sync`` attempt got no complete answer within its time bound."""


@attrs.define(eq=False)
class Syncer:
    """Successive ``/sync`` batches for one client; create with ``client.syncer()``.

    Attributes:
        since: the token the next request will use. Starts as the caller's
            persisted token; after ``next()`` returns it is ``batch.next_batch``.
    """

    client: MatrixClient
    since: str | None = attrs.field(kw_only=True)
    filter_id: str | None = attrs.field(kw_only=True)
    long_poll_ms: int = attrs.field(default=30_000, kw_only=True)
    min_interval_s: float = attrs.field(default=0.5, kw_only=True)
    dedup_size: int = attrs.field(default=10_000, kw_only=True)
    #: Consecutive transient failures before ``next()`` raises; ``None``: keep trying.
    max_failures: int | None = attrs.field(default=None, kw_only=True)
    #: Cap of the grown HTTP margin, as a multiple of ``client.sync_http_margin_s``.
    max_margin_factor: float = attrs.field(default=8.0, kw_only=True)
    #: Called with a short kind for every failed attempt ("timeout", "network",
    #: "http_5xx", "ratelimited", "other"), retried or not: for metrics.
    on_failure: Callable[[str], None] | None = attrs.field(default=None, kw_only=True)
    _catch_up: bool = attrs.field(default=True, init=False)
    _throttle: bool = attrs.field(default=False, init=False)
    _last_start: float = attrs.field(default=0.0, init=False)
    _failures: int = attrs.field(default=0, init=False)
    _timeouts: int = attrs.field(default=0, init=False)
    _seen: OrderedDict[str, None] = attrs.field(factory=OrderedDict, init=False, repr=False)

    async def next(self) -> SyncBatch:
        """The next batch. Retries transient failures (and 429) itself.

        Raises:
            UnknownTokenError: the token is dead; stop the bot.
            MatrixError: a permanent error (e.g. 400 for a bad filter).
            TransportError | RateLimitedError: only with ``max_failures`` set, after
                that many consecutive failures.
        """
        client = self.client
        while True:
            if self._throttle:
                await trio.sleep_until(self._last_start + self.min_interval_s)
            timeout_ms = 0 if self._catch_up else self.long_poll_ms
            since = self.since
            self._last_start = started = trio.current_time()
            try:
                response = await client._sync_once(
                    since=since,
                    timeout_ms=timeout_ms,
                    filter_id=self.filter_id,
                    full_state=False,
                    margin_s=self.margin_s,
                )
            except (MatrixError, TransportError) as exc:
                if isinstance(exc, SyncTimeoutError):
                    self._timeouts += 1
                kind = classify(exc)
                if self.on_failure is not None:
                    self.on_failure(failure_label(exc, kind))
                if kind in (FailureKind.FATAL, FailureKind.PERMANENT):
                    log.error("matrix_sync_failed", kind=kind.value, error=str(exc))
                    raise
                self._failures += 1
                if self.max_failures is not None and self._failures >= self.max_failures:
                    log.error("matrix_sync_failed", kind=kind.value, error=str(exc))
                    raise
                wait = None
                if kind is FailureKind.RATE_LIMITED and isinstance(exc, MatrixError):
                    wait = exc.retry_after_s
                if wait is None:
                    wait = client.retry.backoff(self._failures, client._rng)
                log.warning(
                    "matrix_sync_failed",
                    kind=kind.value,
                    attempt=self._failures,
                    wait_s=round(wait, 3),
                    next_margin_s=self.margin_s,
                    error=str(exc),
                )
                # Whatever happened, catch up at once when the server is back.
                self._catch_up = True
                self._throttle = False
                await trio.sleep(wait)
                continue
            elapsed = trio.current_time() - started
            self._failures = 0
            self._timeouts = 0
            self._catch_up = False
            self._throttle = (
                timeout_ms > 0 and response.next_batch == since and elapsed < self.min_interval_s
            )
            batch = self._make_batch(since, response)
            self.since = response.next_batch
            return batch

    @property
    def margin_s(self) -> float:
        """The HTTP margin of the next request: the client's, doubled per
        consecutive timeout, capped at ``max_margin_factor`` times it."""
        base = self.client.sync_http_margin_s
        return min(base * 2.0 ** min(self._timeouts, 30), base * max(1.0, self.max_margin_factor))

    def _remember(self, event_id: str) -> bool:
        """True the first time ``event_id`` is seen (within the LRU window)."""
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            return False
        self._seen[event_id] = None
        if len(self._seen) > self.dedup_size:
            self._seen.popitem(last=False)
        return True

    def _make_batch(self, since: str | None, response: SyncResponse) -> SyncBatch:
        events: list[TimelineItem] = []
        limited: list[str] = []
        for room_id, room in response.rooms.join.items():
            if room.timeline.limited:
                limited.append(room_id)
                log.info(
                    "matrix_sync_limited", room_id=room_id, prev_batch=room.timeline.prev_batch
                )
            for event in room.timeline.events:
                if self._remember(event.event_id):
                    events.append(TimelineItem(room_id=room_id, event=event))
        invites = [
            invite_item(room_id, room, self.client.user_id)
            for room_id, room in response.rooms.invite.items()
        ]
        return SyncBatch(
            response=response,
            since=since,
            next_batch=response.next_batch,
            events=events,
            invites=invites,
            left=list(response.rooms.leave),
            limited_rooms=limited,
            to_device=response.to_device.events,
            device_lists=response.device_lists,
            device_one_time_keys_count=response.device_one_time_keys_count,
            device_unused_fallback_key_types=response.device_unused_fallback_key_types,
        )


def failure_label(exc: BaseException, kind: FailureKind) -> str:
    """A bounded label for a failed sync attempt (metrics)."""
    if isinstance(exc, SyncTimeoutError):
        return "timeout"
    if kind is FailureKind.RATE_LIMITED:
        return "ratelimited"
    if isinstance(exc, MatrixError) and exc.status is not None and exc.status >= 500:
        return "http_5xx"
    if isinstance(exc, TransportError):
        return "network"
    return "other"


def invite_item(room_id: str, room: InvitedRoom, own_user_id: str | None) -> InviteItem:
    """Summarise an invite from its stripped state.

    The inviter is the sender of the ``m.room.member`` event whose state key is
    our user id with membership ``invite`` (not the room creator: anyone with
    the power to invite may have done it).
    """
    inviter: str | None = None
    is_direct = False
    encrypted = False
    for event in room.invite_state.events:
        if event.type == "m.room.encryption":
            encrypted = True
        elif (
            event.type == "m.room.member"
            and event.content.get("membership") == "invite"
            and (own_user_id is None or event.state_key == own_user_id)
        ):
            inviter = event.sender
            is_direct = event.content.get("is_direct") is True
    return InviteItem(
        room_id=room_id,
        inviter=inviter,
        is_direct=is_direct,
        encrypted=encrypted,
        state=list(room.invite_state.events),
    )
