"""The bot's durable state, one SQLite database in WAL mode: ``Store`` composes the
table groups and holds the transactions that span them (see ``_db`` for where each
call runs and why)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from matrix_client.crypto import Changes
from surfaces.core import ItemStatus
from surfaces.state._conversations import ConversationTables
from surfaces.state._crypto import CryptoTables
from surfaces.state._db import QUICK_ADMIT_MAX, Database, _quick, _threaded
from surfaces.state._inbox import InboxTables
from surfaces.state._outbox import OutboxTables
from surfaces.state._records import (
    Followers,
    InboxItem,
    OutboxItem,
    PendingSend,
    TranscriptWrite,
    TurnRecord,
    TurnStart,
    WaitingEvent,
)
from surfaces.state._rows import _inbox
from surfaces.state._stage import StageTables
from surfaces.state._transcript import TranscriptTables
from surfaces.state._usage import TurnUsage, UsageTables, UsageWarning
from surfaces.state._workspaces import WorkspaceTables


class Store(
    InboxTables,
    OutboxTables,
    WorkspaceTables,
    StageTables,
    CryptoTables,
    ConversationTables,
    UsageTables,
    TranscriptTables,
    Database,
):
    """Async facade over the SQLite state database. Open with ``await Store.open(path)``.

    The tables' methods live in one mixin per group (``_inbox``, ``_outbox``,
    ``_workspaces``, ``_stage``, ``_crypto``, ``_conversations``); the transactions that
    span groups are here, each one method so that it is one transaction.
    """

    async def admit(
        self,
        next_batch: str | None,
        items: Sequence[InboxItem],
        *,
        crypto: Changes | None = None,
        waiting: Sequence[WaitingEvent] = (),
        resolved: Sequence[str] = (),
    ) -> list[InboxItem]:
        """Admit events and advance the since-token in one transaction.

        With encryption, the same transaction holds what the batch did to the crypto
        machine (``crypto``: its room keys above all — the server deletes to-device
        events once the token passes them), the encrypted events that wait for a key
        (``waiting``) and the ids of waiting events that were decrypted now or given up
        (``resolved``). ``next_batch=None`` leaves the token as it is.

        Returns the items that were new (an event seen before — e.g. the same sync
        replayed after a crash — is not admitted twice)."""
        if len(items) + len(waiting) <= QUICK_ADMIT_MAX:
            return await self._admit_quick(next_batch, items, crypto, waiting, resolved)
        return await self._admit_threaded(next_batch, items, crypto, waiting, resolved)

    def _admit(
        self,
        next_batch: str | None,
        items: Sequence[InboxItem],
        crypto: Changes | None,
        waiting: Sequence[WaitingEvent],
        resolved: Sequence[str],
    ) -> list[InboxItem]:
        with self._tx():
            admitted = self._admit_rows(items)
            self._put_waiting(waiting, resolved)
            self._save_crypto_rows(crypto)
            if next_batch is not None:
                self._set(self.SINCE_KEY, next_batch)
        return admitted

    _admit_quick = _quick(_admit)
    _admit_threaded = _threaded(_admit)

    @_quick
    def begin_turn(
        self,
        event_id: str,
        room_id: str,
        user_id: str,
        followers: Followers | None = None,
        *,
        month: str | None = None,
    ) -> TurnStart:
        """Start (or restart) a turn: its attempt number, the reply messages an
        earlier attempt already posted (by part index), the files the user staged in
        the room for it, and the queued items it takes along (``followers``: a burst
        merged into one turn; each taken item's start is counted, so a withdrawal
        can tell "queued" from "taken"), and with ``month`` the user's known tokens
        in it (for the monthly budget). One round trip for the turn's set-up."""
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
            used = None if month is None else self._month_tokens(user_id, month)
        return TurnStart(int(attempt), parts, self._staged_files(room_id, user_id), taken, used)

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
        usage: TurnUsage | None = None,
        warning: UsageWarning | None = None,
        transcript: TranscriptWrite | None = None,
        values: Mapping[str, str] | None = None,
    ) -> list[OutboxItem]:
        """Mark an inbox event finished, record its final sends and drop the staged
        files it consumed, atomically. ``also``: the other items the turn answered
        (merged into it), finished in the same transaction, so a crash either leaves
        the whole burst pending (answered again, into the same reply) or none of it;
        ``record``: what the turn was asked, for a later edit or 🔁; ``usage``: the
        tokens it used, recorded only if this transaction finishes ``event_id`` (it
        was pending), so finishing it again counts nothing twice; ``warning``: the
        "budget nearly spent" notice, enqueued only if this turn brought the user's
        month to its threshold and it was not sent this month; ``transcript``: the
        turn's exchange (upserted by turn id, so a re-run never doubles it, and its
        conversation trimmed to its bounds); ``values``: key-value rows to set (the
        agent ``boot_id`` the chat saw last).
        Returns the sends' outbox rows (an earlier attempt's row if the txn id was
        seen before; the warning's last, when it is due), ready for ``Outbox.deliver``."""
        with self._tx():
            self._enqueue_many(sends)
            self._consume_staged(unstage, time.time())
            first = True  # this transaction finishes the item (it was pending)
            for finished in (event_id, *also):
                cur = self._conn.execute(
                    "UPDATE inbox SET status = ? WHERE event_id = ? AND status = 'pending'",
                    (status, finished),
                )
                if finished == event_id:
                    first = cur.rowcount == 1
            if record is not None:
                self._record_turn(record)
            if usage is not None and first:
                self._record_usage(usage)
            if transcript is not None:
                self._write_transcript(transcript)
            for key, value in (values or {}).items():
                self._set(key, value)
            out = list(sends)
            if warning is not None and self._claim_usage_warning(warning):
                self._enqueue_many([warning.send])
                out.append(warning.send)
            return [self._outbox_by_txn(s.txn_id) for s in out]
