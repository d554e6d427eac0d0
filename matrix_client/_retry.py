"""One classification of failures and one retry helper used by every request.

Following matrix-rust-sdk's ``retry_kind``: a failure is classified once
(:func:`classify_failure`), and :func:`call_with_retry` decides from that kind alone
whether and how long to wait. Nothing else in the package retries on its own,
except the :class:`~matrix_client.Syncer` loop, which uses the same
classification and backoff but must also switch the next sync to ``timeout=0``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import httpx
import structlog
import trio

from ._errors import (
    EventTooLargeError,
    MatrixError,
    MediaTooLargeError,
    RateLimitedError,
    ResponseFormatError,
    TransportError,
    UnknownTokenError,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")


@attrs.frozen
class RetryPolicy:
    """Limits of the retry helper.

    Attributes:
        max_attempts: total attempts per call, the first included.
        base_s: first backoff delay; doubles per attempt.
        max_s: cap of a single backoff delay.
        max_429_wait_s: longest wait a 429 may ask for; a longer request raises
            :class:`RateLimitedError` at once so the caller can reschedule.
        jitter: fraction of each backoff delay that is randomised
            (delay * (1 - jitter * U[0, 1))); 0 gives exact delays, as in tests.
            Server-requested waits (``Retry-After``) are never jittered.
    """

    max_attempts: int = 6
    base_s: float = 0.5
    max_s: float = 30.0
    max_429_wait_s: float = 60.0
    jitter: float = 0.5

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay after the ``attempt``-th failure (1-based), jittered."""
        delay = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        if self.jitter:
            delay *= 1.0 - self.jitter * (rng or random).random()
        return delay


class FailureKind(enum.Enum):
    """How a failure is handled everywhere: in this package and by its callers."""

    TRANSIENT = "transient"  # 5xx, network errors, timeouts: retry idempotent requests
    RATE_LIMITED = "rate_limited"  # 429: retry any request after the requested wait
    PERMANENT = "permanent"  # other 4xx, refused locally, bugs: give up on this request
    FATAL = "fatal"  # dead token: raise at once, the caller must stop


# 501 Not Implemented and 505 HTTP Version Not Supported will not go away by waiting.
_PERMANENT_5XX = frozenset({501, 505})


def classify_failure(exc: BaseException) -> FailureKind:
    """The :class:`FailureKind` of anything a :class:`~matrix_client.MatrixClient`
    call (or a deadline around it) can raise: the one classifier for every caller.

    ==========================================================  ==============
    ``UnknownTokenError`` (``M_UNKNOWN_TOKEN``)                  FATAL
    ``RateLimitedError``, 429, ``M_LIMIT_EXCEEDED``              RATE_LIMITED
    5xx except 501/505; ``ResponseFormatError`` (garbled or      TRANSIENT
    over-cap answers: ``ResponseTooLargeError``);
    ``TransportError`` (network, incl. ``SyncTimeoutError``);
    ``trio.TooSlowError``; ``httpx.TransportError``
    other 4xx (400, ``M_FORBIDDEN``, ``M_NOT_FOUND``,            PERMANENT
    413 ``M_TOO_LARGE``, ``PresenceDisabledError``), 501, 505;
    ``EventTooLargeError``, ``MediaTooLargeError`` (refused
    before or while reading); anything else (a bug)
    ==========================================================  ==============

    A PERMANENT failure will fail the same way again: mark the work failed, do
    not retry it (retrying an oversized send forever blocks its room).
    """
    if isinstance(exc, UnknownTokenError):
        return FailureKind.FATAL
    if isinstance(exc, RateLimitedError):
        return FailureKind.RATE_LIMITED
    if isinstance(exc, ResponseFormatError):
        return FailureKind.TRANSIENT
    if isinstance(exc, MatrixError):
        if exc.status == 429 or exc.errcode == "M_LIMIT_EXCEEDED":
            return FailureKind.RATE_LIMITED
        if exc.status >= 500 and exc.status not in _PERMANENT_5XX:
            return FailureKind.TRANSIENT
        return FailureKind.PERMANENT
    if isinstance(exc, EventTooLargeError | MediaTooLargeError):
        return FailureKind.PERMANENT
    if isinstance(exc, TransportError | trio.TooSlowError):
        return FailureKind.TRANSIENT
    if isinstance(exc, httpx.TransportError):
        if isinstance(exc, httpx.UnsupportedProtocol):
            return FailureKind.PERMANENT
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


#: The older, shorter name of :func:`classify_failure` (same function).
classify = classify_failure


async def call_with_retry(
    attempt_fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    label: str,
    rng: random.Random | None = None,
) -> T:
    """Run ``attempt_fn`` until it succeeds or the failure may not be retried.

    * FATAL / PERMANENT: re-raised at once.
    * RATE_LIMITED: retried for any request (the server did not apply it), after
      the server's wait or the backoff; raises :class:`RateLimitedError` when the
      attempts run out or the server asks for more than ``max_429_wait_s``.
    * TRANSIENT: retried with jittered exponential backoff only when
      ``idempotent``; a network failure surfaces as :class:`TransportError`.

    All waits are plain ``trio.sleep`` calls, so cancellation is prompt.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await attempt_fn()
        except (MatrixError, TransportError) as exc:
            kind = classify(exc)
            if kind in (FailureKind.FATAL, FailureKind.PERMANENT):
                raise
            exhausted = attempt >= policy.max_attempts
            if kind is FailureKind.RATE_LIMITED and isinstance(exc, MatrixError):
                wait = exc.retry_after_s
                if wait is None:
                    wait = policy.backoff(attempt, rng)
                if exhausted or wait > policy.max_429_wait_s:
                    if isinstance(exc, RateLimitedError):
                        raise
                    raise RateLimitedError(
                        exc.errcode, exc.status, exc.message, exc.retry_after_s
                    ) from exc
            else:
                if not idempotent or exhausted:
                    raise
                wait = policy.backoff(attempt, rng)
            log.warning(
                "matrix_request_retry",
                endpoint=label,
                attempt=attempt,
                kind=kind.value,
                wait_s=round(wait, 3),
                error=str(exc),
            )
            await trio.sleep(wait)
