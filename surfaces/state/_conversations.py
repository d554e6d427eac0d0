"""Conversations inside a room: threads with their own platform chat id, and what each
turn was asked (so an edit or 🔁 can run the turn again into its own reply)."""

from __future__ import annotations

import json
import time

from surfaces.state._db import Database, _quick
from surfaces.state._records import ThreadRecord, TurnRecord
from surfaces.state._rows import _thread, _turn_record


class ConversationTables(Database):
    # ---- threads ---------------------------------------------------------

    @_quick
    def thread(self, room_id: str, root: str) -> ThreadRecord | None:
        row = self._conn.execute(
            "SELECT * FROM threads WHERE room_id = ? AND root = ?", (room_id, root)
        ).fetchone()
        return None if row is None else _thread(row)

    @_quick
    def bind_thread(self, room_id: str, root: str) -> ThreadRecord:
        """The thread's binding, created with a fresh platform chat id on first use
        (one transaction: a re-run finds the same id)."""
        with self._tx():
            row = self._conn.execute(
                "SELECT * FROM threads WHERE room_id = ? AND root = ?", (room_id, root)
            ).fetchone()
            if row is not None:
                return _thread(row)
            platform_id = self._next_platform_id()
            self._conn.execute(
                "INSERT INTO threads (room_id, root, platform_chat_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                (room_id, root, platform_id, time.time()),
            )
        return ThreadRecord(room_id, root, platform_id, mirrored=False)

    @_quick
    def put_thread(
        self, room_id: str, root: str, platform_chat_id: str, *, mirrored: bool = True
    ) -> None:
        """Set a thread's platform chat id (``!clear`` in the thread, reconciliation),
        raising the platform id counter past it."""
        with self._tx():
            self._conn.execute(
                "INSERT INTO threads (room_id, root, platform_chat_id, mirrored, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(room_id, root) DO UPDATE SET "
                "platform_chat_id = excluded.platform_chat_id, mirrored = excluded.mirrored",
                (room_id, root, platform_chat_id, int(mirrored), time.time()),
            )
            self._raise_platform_seq(int(platform_chat_id))

    @_quick
    def set_thread_mirrored(self, room_id: str, root: str, platform_chat_id: str) -> None:
        with self._tx():
            self._conn.execute(
                "UPDATE threads SET mirrored = 1 WHERE room_id = ? AND root = ? "
                "AND platform_chat_id = ?",
                (room_id, root, platform_chat_id),
            )

    # ---- what turns were asked --------------------------------------------

    def _record_turn(self, record: TurnRecord) -> None:
        """Upsert a turn's input; a first record becomes the latest of its
        conversation, a re-run keeps its place (it answers the same messages)."""
        messages = json.dumps(
            [{"id": m.event_id, "text": m.text, "reply_to": m.reply_to} for m in record.messages]
        )
        self._conn.execute(
            "INSERT INTO turn_inputs (event_id, room_id, thread_root, messages, attachments, seq) "
            # MAX(rowid) is the table's last row, read in O(1) (MAX(seq) would scan).
            "VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(rowid), 0) + 1 FROM turn_inputs)) "
            "ON CONFLICT(event_id) DO UPDATE SET messages = excluded.messages, "
            "attachments = excluded.attachments",
            (
                record.turn_id,
                record.room_id,
                record.thread_root or "",
                messages,
                json.dumps(list(record.attachments)),
            ),
        )
        for m in record.messages:
            if m.event_id == record.turn_id:
                continue  # the turn's own message: turn_inputs is keyed by it already
            self._conn.execute(
                "INSERT OR REPLACE INTO turn_messages (message_id, turn_id) VALUES (?, ?)",
                (m.event_id, record.turn_id),
            )

    @_quick
    def turn_record(self, turn_id: str) -> TurnRecord | None:
        row = self._conn.execute(
            "SELECT * FROM turn_inputs WHERE event_id = ?", (turn_id,)
        ).fetchone()
        return None if row is None else _turn_record(row)

    @_quick
    def turn_of_message(self, message_id: str) -> str | None:
        """The turn that answered ``message_id`` (its first message, or merged into it)."""
        row = self._conn.execute(
            "SELECT turn_id FROM turn_messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is not None:
            return row["turn_id"]
        row = self._conn.execute(
            "SELECT event_id FROM turn_inputs WHERE event_id = ?", (message_id,)
        ).fetchone()
        return None if row is None else row["event_id"]

    @_quick
    def turn_of_reply(self, reply_event_id: str) -> str | None:
        """The turn whose reply message (any part) is ``reply_event_id``."""
        row = self._conn.execute(
            "SELECT event_id FROM turn_parts WHERE reply_event_id = ?", (reply_event_id,)
        ).fetchone()
        return None if row is None else row["event_id"]

    @_quick
    def is_latest_turn(self, turn_id: str) -> bool:
        """Whether no later turn answered the same conversation (room or thread)."""
        row = self._conn.execute(
            "SELECT t.seq = (SELECT MAX(seq) FROM turn_inputs o WHERE o.room_id = t.room_id "
            "AND o.thread_root = t.thread_root) AS latest FROM turn_inputs t WHERE event_id = ?",
            (turn_id,),
        ).fetchone()
        return bool(row and row["latest"])
