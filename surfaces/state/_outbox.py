"""The outbox (sends with their txn ids, persisted before the first attempt) and the
turns' reply parts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from surfaces.core import OutboxStatus
from surfaces.state._db import Database, _quick, _threaded
from surfaces.state._records import OutboxItem, PendingSend
from surfaces.state._rows import _outbox


class OutboxTables(Database):
    def _enqueue_many(self, sends: Iterable[PendingSend]) -> None:
        now = time.time()
        for s in sends:
            self._conn.execute(
                "INSERT OR IGNORE INTO outbox (room_id, txn_id, event_type, content, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (s.room_id, s.txn_id, s.event_type, json.dumps(s.content), now),
            )

    def _outbox_by_txn(self, txn_id: str) -> OutboxItem:
        return _outbox(
            self._conn.execute("SELECT * FROM outbox WHERE txn_id = ?", (txn_id,)).fetchone()
        )

    @_quick
    def enqueue(self, send: PendingSend) -> OutboxItem:
        """Persist a send before its first attempt; a txn id seen before returns the
        existing row (so a re-run reuses the same transaction id)."""
        with self._tx():
            self._enqueue_many([send])
            return self._outbox_by_txn(send.txn_id)

    @_quick
    def mark_sent(
        self,
        txn_id: str,
        event_id: str | None,
        status: OutboxStatus = OutboxStatus.SENT,
        *,
        part: tuple[str, int] | None = None,
    ) -> None:
        """Record a send's outcome; with ``part`` (turn event id, part index) also
        remember the reply message it created, in the same transaction."""
        with self._tx():
            self._conn.execute(
                "UPDATE outbox SET status = ?, event_id = ? WHERE txn_id = ?",
                (status, event_id, txn_id),
            )
            if part is not None and event_id is not None:
                self._record_part(part[0], part[1], event_id)

    @_threaded
    def pending_outbox(self) -> list[OutboxItem]:
        rows = self._conn.execute(
            "SELECT * FROM outbox WHERE status = 'pending' ORDER BY id"
        ).fetchall()
        return [_outbox(r) for r in rows]

    @_quick
    def outbox_count(self) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return int(row["n"])

    @_quick
    def outbox_row(self, txn_id: str) -> OutboxItem | None:
        row = self._conn.execute("SELECT * FROM outbox WHERE txn_id = ?", (txn_id,)).fetchone()
        return None if row is None else _outbox(row)

    @_quick
    def sent_event_id(self, txn_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT event_id FROM outbox WHERE txn_id = ? AND status = 'sent'", (txn_id,)
        ).fetchone()
        return None if row is None else row["event_id"]

    # ---- turns -----------------------------------------------------------

    def _record_part(self, event_id: str, part: int, reply_event_id: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO turn_parts (event_id, part, reply_event_id) VALUES (?, ?, ?)",
            (event_id, part, reply_event_id),
        )

    @_quick
    def record_part(self, event_id: str, part: int, reply_event_id: str) -> None:
        with self._tx():
            self._record_part(event_id, part, reply_event_id)
