"""The outbox: every send that must happen exactly once goes through here.

A send is persisted with its transaction id *before* the first attempt and the
same id is reused on every retry, after a restart too; the homeserver
deduplicates by (device, txn id), so a send whose response was lost is never
doubled. Sends are attempted inline by the room worker that made them (which
keeps a room's messages in order); when the homeserver is down past the
client's retry budget the row stays pending and the replayer task delivers it
later, in order per room. Intermediate stream edits are *not* durable: losing
one is harmless because the final edit, which is durable, carries everything.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs
import structlog
import trio

from matrix_client import MatrixClient, MatrixError, UnknownTokenError, new_txn_id
from surfaces.state import OutboxItem, PendingSend, Store

log = structlog.get_logger(__name__)

# Errors that will not get better by retrying the same request.
_PERMANENT_STATUSES = {400, 403, 404, 413}


@attrs.define
class Outbox:
    store: Store
    matrix: MatrixClient
    replay_interval_s: float = 5.0
    max_backoff_s: float = 60.0
    _blocked_rooms: set[str] = attrs.field(factory=set)
    _nudge: trio.Event = attrs.field(factory=trio.Event)

    async def send(self, send: PendingSend) -> str | None:
        """Persist then send. Returns the event id, or None if it is left for the
        replayer (homeserver unavailable) or failed permanently (logged)."""
        row = await self.store.enqueue(send)
        if row.status == "sent":
            return row.event_id  # an earlier attempt (before a crash) already sent it
        if row.status == "failed":
            return None
        event_id, _ = await self._attempt(row, inline=True)
        return event_id

    async def flush(self, sends: Iterable[PendingSend]) -> list[str | None]:
        """Send rows that were already persisted (e.g. by ``finish_event``)."""
        out: list[str | None] = []
        for s in sends:
            out.append(await self.send(s))
        return out

    async def send_ephemeral(self, room_id: str, event_type: str, content: dict) -> str | None:
        """A best-effort send (stream edits, typing-time notices): not persisted."""
        if room_id in self._blocked_rooms:
            return None
        try:
            return await self.matrix.send_event(room_id, event_type, content, txn_id=new_txn_id())
        except UnknownTokenError:
            raise
        except (MatrixError, OSError, trio.TooSlowError) as exc:
            log.warning("matrix_send_ephemeral_failed", room_id=room_id, error=repr(exc))
            return None
        except Exception as exc:  # transport errors from the client
            log.warning("matrix_send_ephemeral_failed", room_id=room_id, error=repr(exc))
            return None

    async def _attempt(self, row: OutboxItem, *, inline: bool) -> tuple[str | None, str]:
        """One delivery attempt: returns (event id, "sent" | "failed" | "deferred")."""
        if inline and row.room_id in self._blocked_rooms:
            self._nudge.set()
            return None, "deferred"
        try:
            if row.event_type == "m.room.redaction":
                event_id = await self.matrix.redact(
                    row.room_id, row.content["redacts"], txn_id=row.txn_id
                )
            else:
                event_id = await self.matrix.send_event(
                    row.room_id, row.event_type, row.content, txn_id=row.txn_id
                )
        except UnknownTokenError:
            raise
        except MatrixError as exc:
            if exc.status in _PERMANENT_STATUSES:
                log.error(
                    "outbox_send_failed_permanently",
                    room_id=row.room_id,
                    txn_id=row.txn_id,
                    status=exc.status,
                    errcode=exc.errcode,
                )
                await self.store.mark_sent(row.txn_id, None, status="failed")
                return None, "failed"
            self._block(row, exc)
            return None, "deferred"
        except Exception as exc:  # network, retry budget exhausted
            self._block(row, exc)
            return None, "deferred"
        await self.store.mark_sent(row.txn_id, event_id)
        return event_id, "sent"

    def _block(self, row: OutboxItem, exc: BaseException) -> None:
        log.warning(
            "outbox_send_deferred", room_id=row.room_id, txn_id=row.txn_id, error=repr(exc)
        )
        self._blocked_rooms.add(row.room_id)
        self._nudge.set()

    async def replay(self) -> int:
        """Send every pending row, in order per room. Returns how many remain."""
        rows = await self.store.pending_outbox()
        stuck: set[str] = set()
        for row in rows:
            if row.room_id in stuck:
                continue
            _, outcome = await self._attempt(row, inline=False)
            if outcome == "deferred":
                stuck.add(row.room_id)
        self._blocked_rooms = stuck
        return await self.store.outbox_count()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The replayer: retries deferred rows with backoff until cancelled."""
        task_status.started()
        backoff = self.replay_interval_s
        while True:
            with trio.move_on_after(backoff):
                await self._nudge.wait()
            self._nudge = trio.Event()
            if not self._blocked_rooms and not await self.store.outbox_count():
                backoff = self.replay_interval_s
                continue
            remaining = await self.replay()
            if remaining:
                backoff = min(self.max_backoff_s, backoff * 2) * random.uniform(0.8, 1.2)
            else:
                backoff = self.replay_interval_s
