"""Files staged for the next turn, per (room, user)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from surfaces.state._db import Database, _quick
from surfaces.state._records import StagedFile
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
    ) -> StagedFile:
        with self._tx():
            cur = self._conn.execute(
                "INSERT INTO stage (room_id, user_id, rel_path, name, size, mime, source_event, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (room_id, user_id, rel_path, name, size, mime, source_event, time.time()),
            )
        return StagedFile(int(cur.lastrowid or 0), room_id, user_id, rel_path, name, size, mime)

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
    def unstage(self, ids: Sequence[int]) -> int:
        with self._tx():
            n = 0
            for i in ids:
                n += self._conn.execute("DELETE FROM stage WHERE id = ?", (i,)).rowcount
        return n
