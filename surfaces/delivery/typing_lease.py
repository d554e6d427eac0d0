"""The typing lease: "the bot is typing…" while a turn runs, always cleared.

Matrix typing notifications expire after the timeout we send, so the lease is
refreshed before expiry (``TypingLease.keep`` runs in the turn's nursery) and
cleared on the way out (``TypingLease.clear``) — on success, error and
cancellation alike, shielded and time-boxed so a dead homeserver cannot hold up
a shutdown.

The first notification waits ``DELAY_S``: a reply that is already there by then
needs no "typing…" (and saves the homeserver two requests per turn — measured
in ``bench/``); a lease that was never set is not cleared.
"""

from __future__ import annotations

import attrs
import structlog
import trio

from matrix_client import MatrixClient, UnknownTokenError

log = structlog.get_logger(__name__)

CLEAR_DEADLINE_S = 5.0
REFRESH_FRACTION = 0.8
DELAY_S = 0.3


async def _set(matrix: MatrixClient, room_id: str, typing: bool, lease_s: float) -> None:
    try:
        with trio.move_on_after(lease_s / 2):
            await matrix.set_typing(room_id, typing, timeout_ms=int(lease_s * 1000))
    except UnknownTokenError:
        raise
    except Exception as exc:  # typing is cosmetic: never fail a turn over it
        log.debug("typing_failed", room_id=room_id, typing=typing, error=repr(exc))


@attrs.define
class TypingLease:
    matrix: MatrixClient
    room_id: str
    lease_s: float
    delay_s: float = DELAY_S
    shown: bool = False

    async def keep(self) -> None:
        """Hold the lease until cancelled."""
        await trio.sleep(self.delay_s)
        while True:
            self.shown = True
            await _set(self.matrix, self.room_id, True, self.lease_s)
            await trio.sleep(self.lease_s * REFRESH_FRACTION)

    async def clear(self) -> None:
        if not self.shown:
            return
        self.shown = False
        with trio.CancelScope(shield=True), trio.move_on_after(CLEAR_DEADLINE_S):
            await _set(self.matrix, self.room_id, False, self.lease_s)
