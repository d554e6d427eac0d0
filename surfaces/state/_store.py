"""The bot's durable state, one SQLite database in WAL mode: ``Store`` composes the
table groups and holds the transactions that span them (see ``_db`` for where each
call runs and why)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from surfaces.core import ItemStatus
from surfaces.state._db import Database, _quick
from surfaces.state._inbox import InboxTables
from surfaces.state._outbox import OutboxTables
from surfaces.state._records import OutboxItem, PendingSend, TurnStart
from surfaces.state._stage import StageTables
from surfaces.state._workspaces import WorkspaceTables


class Store(InboxTables, OutboxTables, WorkspaceTables, StageTables, Database):
    """Async facade over the SQLite state database. Open with ``await Store.open(path)``.

    The tables' methods live in one mixin per group (``_inbox``, ``_outbox``,
    ``_workspaces``, ``_stage``); the transactions that span groups are here, each one
    method so that it is one transaction.
    """

    @_quick
    def begin_turn(self, event_id: str, room_id: str, user_id: str) -> TurnStart:
        """Start (or restart) a turn: its attempt number, the reply messages an
        earlier attempt already posted (by part index), and the files the user
        staged in the room for it. One round trip for the turn's set-up."""
        with self._tx():
            self._conn.execute(
                "INSERT INTO turns (event_id, attempt) VALUES (?, 1) "
                "ON CONFLICT(event_id) DO UPDATE SET attempt = attempt + 1",
                (event_id,),
            )
            attempt = self._conn.execute(
                "SELECT attempt FROM turns WHERE event_id = ?", (event_id,)
            ).fetchone()["attempt"]
            parts = {
                r["part"]: r["reply_event_id"]
                for r in self._conn.execute(
                    "SELECT part, reply_event_id FROM turn_parts WHERE event_id = ?", (event_id,)
                )
            }
        return TurnStart(int(attempt), parts, self._staged_files(room_id, user_id))

    @_quick
    def finish_event(
        self,
        event_id: str,
        status: ItemStatus = ItemStatus.DONE,
        sends: Sequence[PendingSend] = (),
        *,
        unstage: Sequence[int] = (),
    ) -> list[OutboxItem]:
        """Mark an inbox event finished, record its final sends and drop the staged
        files it consumed, atomically. Returns the sends' outbox rows (an earlier
        attempt's row if the txn id was seen before), ready for ``Outbox.deliver``."""
        with self._tx():
            self._enqueue_many(sends)
            self._consume_staged(unstage, time.time())
            self._conn.execute(
                "UPDATE inbox SET status = ? WHERE event_id = ? AND status = 'pending'",
                (status, event_id),
            )
            return [self._outbox_by_txn(s.txn_id) for s in sends]
