"""The bot's durable state, one SQLite database in WAL mode: ``Store`` composes the
table groups and holds the transactions that span them (see ``_db`` for where each
call runs and why)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from surfaces.core import ItemStatus
from surfaces.state._conversations import ConversationTables
from surfaces.state._db import Database, _quick
from surfaces.state._inbox import InboxTables
from surfaces.state._outbox import OutboxTables
from surfaces.state._records import (
    Followers,
    InboxItem,
    OutboxItem,
    PendingSend,
    TurnRecord,
    TurnStart,
)
from surfaces.state._rows import _inbox
from surfaces.state._stage import StageTables
from surfaces.state._workspaces import WorkspaceTables


class Store(InboxTables, OutboxTables, WorkspaceTables, StageTables, ConversationTables, Database):
    """Async facade over the SQLite state database. Open with ``await Store.open(path)``.

    The tables' methods live in one mixin per group (``_inbox``, ``_outbox``,
    ``_workspaces``, ``_stage``); the transactions that span groups are here, each one
    method so that it is one transaction.
    """

    @_quick
    def begin_turn(
        self, event_id: str, room_id: str, user_id: str, followers: Followers | None = None
    ) -> TurnStart:
        """Start (or restart) a turn: its attempt number, the reply messages an
        earlier attempt already posted (by part index), the files the user staged in
        the room for it, and the queued items it takes along (``followers``: a burst
        merged into one turn; each taken item's start is counted, so a withdrawal
        can tell "queued" from "taken"). One round trip for the turn's set-up."""
        taken: list[InboxItem] = []
        with self._tx():
            if followers is not None and followers.limit > 0:
                taken = self._take(followers)
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
        return TurnStart(int(attempt), parts, self._staged_files(room_id, user_id), taken)

    def _take(self, query: Followers) -> list[InboxItem]:
        rows = self._conn.execute(
            "SELECT * FROM inbox WHERE status = 'pending' AND lane = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (str(query.lane), query.after_seq, query.limit),
        ).fetchall()
        taken: list[InboxItem] = []
        for row in rows:
            item = _inbox(row)
            if not query.accept(item):
                break
            taken.append(item)
            self._conn.execute(
                "UPDATE inbox SET attempts = attempts + 1 WHERE event_id = ?", (item.event_id,)
            )
        return taken

    @_quick
    def finish_event(
        self,
        event_id: str,
        status: ItemStatus = ItemStatus.DONE,
        sends: Sequence[PendingSend] = (),
        *,
        unstage: Sequence[int] = (),
        also: Sequence[str] = (),
        record: TurnRecord | None = None,
    ) -> list[OutboxItem]:
        """Mark an inbox event finished, record its final sends and drop the staged
        files it consumed, atomically. ``also``: the other items the turn answered
        (merged into it), finished in the same transaction, so a crash either leaves
        the whole burst pending (answered again, into the same reply) or none of it;
        ``record``: what the turn was asked, for a later edit or 🔁. Returns the
        sends' outbox rows (an earlier attempt's row if the txn id was seen before),
        ready for ``Outbox.deliver``."""
        with self._tx():
            self._enqueue_many(sends)
            self._consume_staged(unstage, time.time())
            for finished in (event_id, *also):
                self._conn.execute(
                    "UPDATE inbox SET status = ? WHERE event_id = ? AND status = 'pending'",
                    (status, finished),
                )
            if record is not None:
                self._record_turn(record)
            return [self._outbox_by_txn(s.txn_id) for s in sends]
