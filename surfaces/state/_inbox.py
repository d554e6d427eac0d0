"""The inbox: admitted events, claimed by lane workers, finished once."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import attrs

from surfaces.core import ItemStatus, Lane
from surfaces.state._db import Database, _quick, _threaded
from surfaces.state._records import Claim, InboxItem
from surfaces.state._rows import _inbox


class InboxTables(Database):
    def _admit_rows(self, items: Sequence[InboxItem]) -> list[InboxItem]:
        """Inside a transaction: insert the items; the ones that were new (an event seen
        before — e.g. the same sync replayed after a crash — is not admitted twice).
        ``Store.admit`` is the transaction (with the since-token)."""
        admitted: list[InboxItem] = []
        now = time.time()
        for item in items:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO inbox "
                "(event_id, lane, room_id, sender, kind, payload, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.event_id,
                    str(item.lane),
                    item.room_id,
                    item.sender,
                    item.kind,
                    json.dumps(item.payload),
                    item.status,
                    now,
                ),
            )
            if cur.rowcount:
                admitted.append(attrs.evolve(item, seq=cur.lastrowid))
        return admitted

    @_threaded
    def pending_inbox(self) -> list[InboxItem]:
        rows = self._conn.execute(
            "SELECT * FROM inbox WHERE status = 'pending' ORDER BY seq"
        ).fetchall()
        return [_inbox(r) for r in rows]

    @_quick
    def claim_next(self, lane: Lane) -> Claim | None:
        """The lane's oldest pending event with one more start counted, in one
        round trip (the worker's hot path: fetch, count the start durably before
        the work begins, read the failures so far)."""
        row = self._conn.execute(
            "SELECT * FROM inbox WHERE status = 'pending' AND lane = ? ORDER BY seq LIMIT 1",
            (str(lane),),
        ).fetchone()
        if row is None:
            return None
        with self._tx():
            self._conn.execute(
                "UPDATE inbox SET attempts = attempts + 1 WHERE event_id = ?", (row["event_id"],)
            )
        return Claim(_inbox(row), starts=int(row["attempts"]) + 1, failures=int(row["failures"]))

    @_quick
    def count_pending(self, lane: Lane) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM inbox WHERE status = 'pending' AND lane = ?", (str(lane),)
        ).fetchone()
        return int(row["n"])

    @_quick
    def record_failure(self, event_id: str) -> int:
        """Count a processing attempt that raised; returns the failures so far."""
        with self._tx():
            self._conn.execute(
                "UPDATE inbox SET failures = failures + 1 WHERE event_id = ?", (event_id,)
            )
            row = self._conn.execute(
                "SELECT failures FROM inbox WHERE event_id = ?", (event_id,)
            ).fetchone()
        return int(row["failures"]) if row else 0

    @_quick
    def inbox_status(self, event_id: str) -> ItemStatus | None:
        row = self._conn.execute(
            "SELECT status FROM inbox WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else ItemStatus(row["status"])

    @_threaded
    def prune_inbox(self, keep_seconds: float) -> int:
        """Forget finished events older than ``keep_seconds`` (bounded growth)."""
        cutoff = time.time() - keep_seconds
        with self._tx():
            cur = self._conn.execute(
                "DELETE FROM inbox WHERE status != 'pending' AND created_at < ?", (cutoff,)
            )
            self._conn.execute(
                "DELETE FROM outbox WHERE status != 'pending' AND created_at < ?", (cutoff,)
            )
            self._conn.execute(
                "DELETE FROM turns WHERE event_id NOT IN (SELECT event_id FROM inbox)"
            )
            self._conn.execute(
                "DELETE FROM turn_parts WHERE event_id NOT IN (SELECT event_id FROM inbox)"
            )
        return cur.rowcount
