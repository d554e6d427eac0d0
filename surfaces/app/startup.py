"""Start-up steps that wait for the homeserver instead of dying without it.

A bot started while its homeserver is down (a host reboot brings both up at once;
Synapse takes longer) used to exit 1 with a long ``ExceptionGroup`` traceback after
the client's retry budget ran out — under ``restart: unless-stopped`` a crash loop.
Now each step that needs the server (login, the filter upload, reconciliation)
runs under :func:`until_available`: while the failure means "not answering"
(``surfaces.session.homeserver_unavailable``) it is retried with capped exponential
backoff, logging ``homeserver_unavailable_at_start`` with the attempt and the next
delay; anything else — credentials, configuration — goes up and ends the start.

The cap (30 s) bounds how late the bot notices that the server is back: after an
outage of length T the bot is up within T + 30 s at worst, ~T + cap/2 on average
(each request's own retries come on top; see ``bench/`` for a measurement).
Every step is idempotent, so a step interrupted by a failure is simply run again.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import structlog
import trio

from surfaces.session import homeserver_unavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")


class StartStep(enum.StrEnum):
    LOGIN = "login"
    CRYPTO = "crypto"  # opening the device's E2EE identity (key queries, a new device)
    FILTER = "filter"
    RECONCILE = "reconcile"


@attrs.frozen
class StartBackoff:
    """Delays between attempts of one start-up step: ``base_s`` doubling up to ``max_s``."""

    base_s: float = 1.0
    max_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2 ** max(0, attempt - 1))


async def until_available(
    step: StartStep, call: Callable[[], Awaitable[T]], backoff: StartBackoff = StartBackoff()
) -> T:
    """``await call()`` until it succeeds; retry only while the homeserver is not
    answering. Cancellable at every wait (SIGTERM during start-up)."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if not homeserver_unavailable(exc):
                raise
            attempt += 1
            delay = backoff.delay(attempt)
            log.warning(
                "homeserver_unavailable_at_start",
                step=step,
                attempt=attempt,
                next_delay_s=delay,
                error=_describe(exc),
            )
        await trio.sleep(delay)


def _describe(exc: BaseException) -> str:
    """One short line (a group shows its first leaf and how many there were)."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = exc.exceptions
        first = leaves[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        more = f" (+{len(leaves) - 1} more)" if len(leaves) > 1 else ""
        return f"{type(first).__name__}: {first}{more}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
