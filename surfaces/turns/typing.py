"""The typing lease: "the bot is typing…" while a turn runs, always cleared.

Matrix typing notifications expire after the timeout we send, so the lease is
refreshed before expiry (``keep_typing`` runs in the turn's nursery) and
cleared on the way out (``clear_typing``) — on success, error and cancellation
alike, shielded and time-boxed so a dead homeserver cannot hold up a shutdown.
"""

from __future__ import annotations

import structlog
import trio

from matrix_client import MatrixClient, UnknownTokenError

log = structlog.get_logger(__name__)

CLEAR_DEADLINE_S = 5.0
REFRESH_FRACTION = 0.8


async def _set(matrix: MatrixClient, room_id: str, typing: bool, lease_s: float) -> None:
    try:
        with trio.move_on_after(lease_s / 2):
            await matrix.set_typing(room_id, typing, timeout_ms=int(lease_s * 1000))
    except UnknownTokenError:
        raise
    except Exception as exc:  # typing is cosmetic: never fail a turn over it
        log.debug("typing_failed", room_id=room_id, typing=typing, error=repr(exc))


async def keep_typing(matrix: MatrixClient, room_id: str, lease_s: float) -> None:
    """Hold the lease until cancelled."""
    while True:
        await _set(matrix, room_id, True, lease_s)
        await trio.sleep(lease_s * REFRESH_FRACTION)


async def clear_typing(matrix: MatrixClient, room_id: str, lease_s: float) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(CLEAR_DEADLINE_S):
        await _set(matrix, room_id, False, lease_s)
