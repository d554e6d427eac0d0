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

    @_quick
    def hand_off(self, source_event_id: str, items: Sequence[InboxItem]) -> list[InboxItem]:
        """Admit ``items`` and finish ``source_event_id`` in one transaction (a lane
        handing work to another, ``surfaces.intake.queue``). Returns the new items."""
        with self._tx():
            admitted = self._admit_rows(items)
            self._conn.execute(
                "UPDATE inbox SET status = 'done' WHERE event_id = ? AND status = 'pending'",
                (source_event_id,),
            )
        return admitted

    @_quick
    def withdraw(self, event_id: str) -> Lane | None:
        """Mark a queued room-lane item withdrawn if no worker or turn took it up yet
        (its start count is still 0); returns its lane, or None when it was not."""
        with self._tx():
            row = self._conn.execute(
                "SELECT lane FROM inbox WHERE event_id = ? AND status = 'pending' "
                "AND attempts = 0 AND lane LIKE 'room:%'",
                (event_id,),
            ).fetchone()
            if row is None:
                return None
            self._conn.execute(
                "UPDATE inbox SET status = ? WHERE event_id = ?",
                (ItemStatus.WITHDRAWN, event_id),
            )
        return Lane.parse(row["lane"])

    @_quick
    def replace_queued(self, event_id: str, payload: dict) -> bool:
        """Give a queued item new content (the user edited it before any turn took it
        up); False when it is not queued any more."""
        with self._tx():
            cur = self._conn.execute(
                "UPDATE inbox SET payload = ? WHERE event_id = ? AND status = 'pending' "
                "AND attempts = 0",
                (json.dumps(payload), event_id),
            )
        return cur.rowcount > 0

    @_quick
    def inbox_item(self, event_id: str) -> InboxItem | None:
        row = self._conn.execute("SELECT * FROM inbox WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else _inbox(row)

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
            # What a turn was asked outlives its inbox row only while it is the latest
            # of its conversation (an edit or 🔁 of it still works after a week).
            self._conn.execute(
                "DELETE FROM turn_inputs WHERE event_id NOT IN (SELECT event_id FROM inbox) "
                "AND seq < (SELECT MAX(seq) FROM turn_inputs o WHERE "
                "o.room_id = turn_inputs.room_id AND o.thread_root = turn_inputs.thread_root)"
            )
            self._conn.execute(
                "DELETE FROM turn_messages WHERE turn_id NOT IN (SELECT event_id FROM turn_inputs)"
            )
            self._conn.execute(
                "DELETE FROM turns WHERE event_id NOT IN (SELECT event_id FROM inbox) "
                "AND event_id NOT IN (SELECT event_id FROM turn_inputs)"
            )
            self._conn.execute(
                "DELETE FROM turn_parts WHERE event_id NOT IN (SELECT event_id FROM inbox) "
                "AND event_id NOT IN (SELECT event_id FROM turn_inputs)"
            )
        return cur.rowcount
