"""Files staged for the next turn, per (room, user)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from surfaces.state._db import Database, _quick, _threaded
from surfaces.state._records import ExpiredFile, StagedFile
from surfaces.state._rows import _staged


class StageTables(Database):
    @_quick
    def stage_file(
        self,
        room_id: str,
        user_id: str,
        rel_path: str,
        name: str,
        size: int,
        mime: str,
        source_event: str | None = None,
        workspace: str | None = None,
    ) -> StagedFile:
        with self._tx():
            # The name was free, so a retention row naming it is about a file that is
            # gone (the agent deleted it): it must not delete this new one later.
            self._conn.execute(
                "DELETE FROM incoming_files WHERE workspace = ? AND rel_path = ?",
                (workspace, rel_path),
            )
            cur = self._conn.execute(
                "INSERT INTO stage (room_id, user_id, rel_path, name, size, mime, source_event, "
                "created_at, workspace) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    room_id,
                    user_id,
                    rel_path,
                    name,
                    size,
                    mime,
                    source_event,
                    time.time(),
                    workspace,
                ),
            )
        return StagedFile(
            int(cur.lastrowid or 0), room_id, user_id, rel_path, name, size, mime, workspace
        )

    def _staged_files(self, room_id: str, user_id: str) -> list[StagedFile]:
        rows = self._conn.execute(
            "SELECT * FROM stage WHERE room_id = ? AND user_id = ? ORDER BY id", (room_id, user_id)
        ).fetchall()
        return [_staged(r) for r in rows]

    @_quick
    def staged(self, room_id: str, user_id: str) -> list[StagedFile]:
        return self._staged_files(room_id, user_id)

    @_quick
    def staged_from(self, source_event: str) -> StagedFile | None:
        r = self._conn.execute(
            "SELECT * FROM stage WHERE source_event = ?", (source_event,)
        ).fetchone()
        return None if r is None else _staged(r)

    @_quick
    def unstage(self, ids: Sequence[int]) -> list[StagedFile]:
        """Take files off the list (``!remove``) → the rows that were still there."""
        with self._tx():
            removed = []
            for i in ids:
                row = self._conn.execute("SELECT * FROM stage WHERE id = ?", (i,)).fetchone()
                if row is not None:
                    self._conn.execute("DELETE FROM stage WHERE id = ?", (i,))
                    removed.append(_staged(row))
        return removed

    def _consume_staged(self, ids: Sequence[int], now: float) -> None:
        """Files a turn carried to the agent: off the list, onto the retention list
        (in the caller's transaction)."""
        for i in ids:
            self._conn.execute(
                "INSERT INTO incoming_files (workspace, rel_path, consumed_at) "
                "SELECT workspace, rel_path, ? FROM stage WHERE id = ? AND workspace IS NOT NULL",
                (now, i),
            )
            self._conn.execute("DELETE FROM stage WHERE id = ?", (i,))

    @_threaded
    def expired_files(self, consumed_before: float, limit: int = 500) -> list[ExpiredFile]:
        """Files carried to the agent before ``consumed_before``, oldest first."""
        rows = self._conn.execute(
            "SELECT id, workspace, rel_path FROM incoming_files WHERE consumed_at < ? "
            "ORDER BY consumed_at LIMIT ?",
            (consumed_before, limit),
        ).fetchall()
        return [ExpiredFile(r["id"], r["workspace"], r["rel_path"]) for r in rows]

    @_quick
    def forget_files(self, ids: Sequence[int]) -> None:
        with self._tx():
            for i in ids:
                self._conn.execute("DELETE FROM incoming_files WHERE id = ?", (i,))
