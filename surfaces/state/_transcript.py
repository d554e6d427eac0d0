"""The chat transcript and its snapshots (issue 15 §3, docs/commands.md "Context").

A conversation (a room, or a thread that is its own conversation) keeps one row per
exchange. The row is written in the turn's final transaction (``Store.finish_event``)
and keyed by the turn: a crash re-run or an edit re-run of the same turn replaces it in
place, so nothing is ever doubled. The same transaction trims the conversation to its
bounds, oldest first, so the table never holds more than ``max_entries`` /
``max_bytes`` per conversation; age is pruned by the maintenance task
(``prune_transcripts``). ``!forget`` deletes a room's rows and the snapshots saved
from it (``forget_context``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from surfaces.state._db import Database, _quick, _threaded
from surfaces.state._records import (
    Snapshot,
    SnapshotSaved,
    TranscriptBounds,
    TranscriptEntry,
    TranscriptWrite,
)

#: Rows deleted per statement when pruning by age (the rest waits for the next round).
PRUNE_BATCH = 5_000


def _entry(row: sqlite3.Row) -> TranscriptEntry:
    return TranscriptEntry(
        turn_id=row["turn_id"],
        room_id=row["room_id"],
        conversation=row["conversation"],
        user_text=row["user_text"],
        agent_text=row["agent_text"],
        files_in=tuple(json.loads(row["files_in"])),
        files_out=tuple(json.loads(row["files_out"])),
        at=row["at"],
    )


def _entry_json(entry: TranscriptEntry) -> dict:
    return {
        "turn": entry.turn_id,
        "user": entry.user_text,
        "agent": entry.agent_text,
        "in": list(entry.files_in),
        "out": list(entry.files_out),
        "at": entry.at,
    }


def _entry_from_json(data: dict, room_id: str, conversation: str) -> TranscriptEntry:
    return TranscriptEntry(
        turn_id=str(data.get("turn", "")),
        room_id=room_id,
        conversation=conversation,
        user_text=str(data.get("user", "")),
        agent_text=str(data.get("agent", "")),
        files_in=tuple(str(n) for n in data.get("in", ())),
        files_out=tuple(str(n) for n in data.get("out", ())),
        at=float(data.get("at", 0.0)),
    )


class TranscriptTables(Database):
    # ---- the transcript ------------------------------------------------------

    def _write_transcript(self, write: TranscriptWrite) -> None:
        """Upsert the turn's entry and trim its conversation (inside a transaction)."""
        e = write.entry
        self._conn.execute(
            "INSERT INTO transcript (turn_id, room_id, conversation, user_text, agent_text, "
            "files_in, files_out, bytes, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(turn_id) DO UPDATE SET user_text = excluded.user_text, "
            "agent_text = excluded.agent_text, files_in = excluded.files_in, "
            "files_out = excluded.files_out, bytes = excluded.bytes",
            (
                e.turn_id,
                e.room_id,
                e.conversation,
                e.user_text,
                e.agent_text,
                json.dumps(list(e.files_in), ensure_ascii=False),
                json.dumps(list(e.files_out), ensure_ascii=False),
                e.size,
                e.at or time.time(),
            ),
        )
        self._trim(e.room_id, e.conversation, write.bounds)

    def _trim(self, room_id: str, conversation: str, bounds: TranscriptBounds) -> None:
        """Drop the oldest entries past the bounds. The newest entry always stays (its
        size is capped per entry before it gets here), so a turn is never lost whole.

        Over the covering index ``transcript_chat`` (sizes, never the texts): a count
        and a sum — under both bounds, the common case, that is all; past the count,
        one DELETE of what lies beyond it; past the bytes, the oldest rows are read
        (from the old end: in a steady state one or two) until enough are gone."""
        key = (room_id, conversation)
        n, total = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM transcript "
            "WHERE room_id = ? AND conversation = ?",
            key,
        ).fetchone()
        if n <= bounds.max_entries and total <= bounds.max_bytes:
            return
        rows = self._conn.execute(
            "SELECT seq, bytes FROM transcript WHERE room_id = ? AND conversation = ? ORDER BY seq",
            key,
        )
        cut: int | None = None
        for seq, size in rows:
            if n <= 1 or (n <= bounds.max_entries and total <= bounds.max_bytes):
                break
            cut, n, total = seq, n - 1, total - size
        rows.close()
        if cut is not None:
            self._conn.execute(
                "DELETE FROM transcript WHERE room_id = ? AND conversation = ? AND seq <= ?",
                (*key, cut),
            )

    @_quick
    def transcript(
        self, room_id: str, conversation: str = "", *, last: int | None = None
    ) -> list[TranscriptEntry]:
        """The conversation's entries, oldest first (``last``: only the newest n)."""
        limit = -1 if last is None else max(0, last)
        rows = self._conn.execute(
            "SELECT * FROM transcript WHERE room_id = ? AND conversation = ? "
            "ORDER BY seq DESC LIMIT ?",
            (room_id, conversation, limit),
        ).fetchall()
        return [_entry(r) for r in reversed(rows)]

    @_quick
    def has_transcript(self, room_id: str, conversation: str = "") -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM transcript WHERE room_id = ? AND conversation = ? LIMIT 1",
            (room_id, conversation),
        ).fetchone()
        return row is not None

    @_quick
    def replace_transcript(
        self,
        room_id: str,
        conversation: str,
        entries: Sequence[TranscriptEntry],
        bounds: TranscriptBounds,
    ) -> None:
        """Make ``entries`` the conversation's transcript (``!load``: the agent's new
        conversation is the snapshot's), in one transaction; idempotent."""
        now = time.time()
        with self._tx():
            self._conn.execute(
                "DELETE FROM transcript WHERE room_id = ? AND conversation = ?",
                (room_id, conversation),
            )
            for n, e in enumerate(entries):
                # Turn ids are unique across rooms: a copied entry gets its own key.
                copy = TranscriptEntry(
                    f"{e.turn_id}@{room_id}#{conversation}#{n}",
                    room_id,
                    conversation,
                    e.user_text,
                    e.agent_text,
                    e.files_in,
                    e.files_out,
                    now,  # retention counts from when it came into this chat
                )
                self._write_transcript(TranscriptWrite(copy, bounds))

    @_threaded
    def prune_transcripts(self, older_than: float) -> int:
        """Delete transcript entries written before ``older_than`` (epoch seconds);
        bounded work per call (``PRUNE_BATCH`` rows). Returns how many went."""
        with self._tx():
            cur = self._conn.execute(
                "DELETE FROM transcript WHERE seq IN "
                "(SELECT seq FROM transcript WHERE at < ? LIMIT ?)",
                (older_than, PRUNE_BATCH),
            )
        return cur.rowcount

    # ---- snapshots -------------------------------------------------------------

    @_quick
    def save_snapshot(
        self,
        owner: str,
        name: str,
        room_id: str,
        entries: Sequence[TranscriptEntry],
        *,
        max_per_owner: int,
    ) -> SnapshotSaved:
        """Store (or overwrite: the same name is replaced) a snapshot; refused
        (``LIMIT``) when the owner already has ``max_per_owner`` others."""
        body = json.dumps([_entry_json(e) for e in entries], ensure_ascii=False)
        with self._tx():
            exists = self._conn.execute(
                "SELECT 1 FROM snapshots WHERE owner = ? AND name = ?", (owner, name)
            ).fetchone()
            if exists is None:
                count = self._conn.execute(
                    "SELECT COUNT(*) AS n FROM snapshots WHERE owner = ?", (owner,)
                ).fetchone()["n"]
                if count >= max_per_owner:
                    return SnapshotSaved.LIMIT
            self._conn.execute(
                "INSERT INTO snapshots (owner, name, room_id, entries, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(owner, name) DO UPDATE SET "
                "room_id = excluded.room_id, entries = excluded.entries, "
                "body = excluded.body, created_at = excluded.created_at",
                (owner, name, room_id, len(entries), body, time.time()),
            )
        return SnapshotSaved.CREATED if exists is None else SnapshotSaved.REPLACED

    @_quick
    def snapshots_of(self, owner: str) -> list[Snapshot]:
        """The owner's snapshots, newest first, without their entries."""
        rows = self._conn.execute(
            "SELECT owner, name, room_id, entries, created_at FROM snapshots WHERE owner = ? "
            "ORDER BY created_at DESC, name",
            (owner,),
        ).fetchall()
        return [
            Snapshot(r["owner"], r["name"], r["room_id"], r["created_at"], r["entries"])
            for r in rows
        ]

    @_quick
    def snapshot(self, owner: str, name: str) -> Snapshot | None:
        """The owner's snapshot ``name`` with its entries; another owner's is never
        found (the key is the pair)."""
        row = self._conn.execute(
            "SELECT * FROM snapshots WHERE owner = ? AND name = ?", (owner, name)
        ).fetchone()
        if row is None:
            return None
        entries = tuple(_entry_from_json(d, row["room_id"], "") for d in json.loads(row["body"]))
        return Snapshot(
            row["owner"], row["name"], row["room_id"], row["created_at"], row["entries"], entries
        )

    # ---- !forget -----------------------------------------------------------------

    @_quick
    def forget_context(self, room_id: str, key: str | None = None) -> tuple[int, int]:
        """Delete the room's transcript (every conversation in it) and the snapshots
        saved from it, in one transaction; → (entries, snapshots) deleted. With
        ``key`` (the command's event), a re-run returns what the first run deleted
        (kept under that kv key in the same transaction) instead of (0, 0)."""
        with self._tx():
            if key is not None and (done := self._get(key)) is not None:
                entries, snapshots = (int(n) for n in done.split(","))
                return entries, snapshots
            entries = self._conn.execute(
                "DELETE FROM transcript WHERE room_id = ?", (room_id,)
            ).rowcount
            snapshots = self._conn.execute(
                "DELETE FROM snapshots WHERE room_id = ?", (room_id,)
            ).rowcount
            if key is not None:
                self._set(key, f"{entries},{snapshots}")
        return entries, snapshots
