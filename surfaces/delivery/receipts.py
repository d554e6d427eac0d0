"""Read receipts: the user's client shows that the bot has seen each admitted message,
so "received" and "lost" look different without a notice.

A receipt is needed only where nothing else says it. Clients count a sender's own
event as read up to it (Element's SDK synthesises a receipt for every sender of a live
event), so a message the bot answers soon is marked seen by the answer itself. A
receipt therefore waits ``delay_s`` after admission and is dropped when the bot sent
anything to the room meanwhile (an answer, a notice, a stream edit): an instant turn
costs no extra request, and the receipt never competes with a turn's first message.
What waits behind a running turn, or for a slow agent, gets its receipt after
``delay_s``. Best effort and bounded: one entry per room (the latest message covers
the earlier ones), at most ``max_rooms`` entries (the oldest dropped), each send under
a deadline, failures logged and forgotten.
"""

from __future__ import annotations

import attrs
import structlog
import trio

from matrix_client import MatrixClient, UnknownTokenError

log = structlog.get_logger(__name__)

DELAY_S = 2.0
MAX_ROOMS = 10_000
SEND_DEADLINE_S = 10.0


@attrs.define
class _Due:
    event_id: str
    admitted_at: float
    due_at: float


@attrs.define
class ReadReceipts:
    matrix: MatrixClient
    delay_s: float = DELAY_S
    max_rooms: int = MAX_ROOMS
    sent: int = 0
    _due: dict[str, _Due] = attrs.field(factory=dict)
    _wake: trio.Event = attrs.field(factory=trio.Event)

    def admitted(self, room_id: str, event_id: str) -> None:
        """A message of ``room_id`` was admitted: mark it read unless answered soon."""
        now = trio.current_time()
        entry = self._due.pop(room_id, None)
        if entry is None and len(self._due) >= self.max_rooms:
            self._due.pop(next(iter(self._due)))  # bounded: the oldest is forgotten
        due_at = entry.due_at if entry is not None else now + self.delay_s
        self._due[room_id] = _Due(event_id, now, due_at)
        self._wake.set()

    def covered(self, room_id: str, sent_since: float) -> None:
        """The bot sent an event to ``room_id`` (its request started at
        ``sent_since``): every message admitted before that reads as seen."""
        entry = self._due.get(room_id)
        if entry is not None and entry.admitted_at <= sent_since:
            del self._due[room_id]

    def pending(self) -> int:
        return len(self._due)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self._due:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            due_at = min(e.due_at for e in self._due.values())
            with trio.move_on_at(due_at):
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            now = trio.current_time()
            for room_id, entry in list(self._due.items()):
                if entry.due_at <= now and self._due.get(room_id) is entry:
                    del self._due[room_id]
                    await self._send(room_id, entry.event_id)

    async def _send(self, room_id: str, event_id: str) -> None:
        try:
            with trio.move_on_after(SEND_DEADLINE_S):
                await self.matrix.send_receipt(room_id, event_id)
                self.sent += 1
        except UnknownTokenError:
            raise
        except Exception as exc:  # best effort: a receipt is a courtesy
            log.debug("read_receipt_failed", room_id=room_id, error=repr(exc))
