"""The crypto machine's tables and the bot's encrypted events waiting for their keys.

The machine (``matrix_client.crypto.OlmMachine``) keeps its state in ``crypto_*`` tables
of this database through a ``SqliteCryptoStore`` on the store's own connection. It never
commits: its changes are written inside this store's transactions, so they commit
together with the bot's rows — a sync batch's room keys with the token that delivered
them (``Store.admit``), an outbound session's message count before the message goes out
(``save_crypto``).

The machine reads its rows lazily (a session when an event needs it) and synchronously,
from inside its own calls, so those reads do not pass the store's limiter: they may run
on the event loop while the worker thread holds the connection. That is safe because
the sqlite3 module is built serialised here (``sqlite3.threadsafety == 3``: threads may
share a connection), and it reads what the machine expects: the same connection sees
its own uncommitted writes, so a read never sees a row older than the machine's last
saved changes. If a transaction with machine changes rolls back, the caller reloads the
machine from the store (``surfaces.session``), as after a crash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from matrix_client.crypto import Changes, SqliteCryptoStore
from surfaces.state._db import Database, _quick
from surfaces.state._records import WaitingEvent

#: The machine's tables (deleted together when the identity is replaced).
CRYPTO_TABLES = (
    "crypto_account",
    "crypto_olm_sessions",
    "crypto_inbound_group_sessions",
    "crypto_outbound_group_sessions",
    "crypto_devices",
    "crypto_tracked_users",
    "crypto_replay",
    "crypto_pending_requests",
    "crypto_key_requests",
)


class CryptoTables(Database):
    _crypto_store: SqliteCryptoStore | None = None

    def open_crypto_store(self) -> SqliteCryptoStore:
        """The machine's store on this connection (its tables made on first use)."""
        if self._crypto_store is None:
            with self._tx():
                self._crypto_store = SqliteCryptoStore(self._conn)
        return self._crypto_store

    def _save_crypto_rows(self, changes: Changes | None) -> None:
        """Inside a transaction: write the machine's changes (if any)."""
        if changes is None or changes.is_empty:
            return
        if self._crypto_store is None:
            raise RuntimeError("open_crypto_store() before saving crypto changes")
        self._crypto_store.save_changes(changes)

    @_quick
    def save_crypto(self, changes: Changes) -> None:
        """Commit the machine's changes (before sending any request they hold)."""
        if changes.is_empty:
            return
        with self._tx():
            self._save_crypto_rows(changes)

    @_quick
    def forget_crypto_identity(self) -> None:
        """Delete the machine's rows and the waiting events (and the mark of a restored
        backup, which asked for this): a new identity follows."""
        with self._tx():
            for table in CRYPTO_TABLES:
                self._conn.execute(f"DELETE FROM {table}")
            self._conn.execute("DELETE FROM e2ee_waiting")
            self._conn.execute("DELETE FROM kv WHERE key = ?", (self.BACKUP_MARK_KEY,))

    # ---- events waiting for their room key ----------------------------------------

    def _put_waiting(self, waiting: Sequence[WaitingEvent], resolved: Sequence[str]) -> None:
        now = time.time()
        self._conn.executemany(
            "INSERT OR IGNORE INTO e2ee_waiting (event_id, room_id, session_id, event, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(w.event_id, w.room_id, w.session_id, json.dumps(w.event), now) for w in waiting],
        )
        self._conn.executemany(
            "DELETE FROM e2ee_waiting WHERE event_id = ?", [(e,) for e in resolved]
        )

    @_quick
    def waiting_for(self, sessions: Sequence[tuple[str, str]]) -> list[WaitingEvent]:
        """The waiting events of these (room id, session id) pairs, oldest first."""
        out: list[WaitingEvent] = []
        for room_id, session_id in sessions:
            rows = self._conn.execute(
                "SELECT * FROM e2ee_waiting WHERE room_id = ? AND session_id = ?"
                " ORDER BY created_at",
                (room_id, session_id),
            )
            out.extend(_waiting(r) for r in rows)
        return out

    @_quick
    def waiting_older_than(self, cutoff: float, limit: int) -> list[WaitingEvent]:
        """Up to ``limit`` waiting events admitted before ``cutoff`` (unix time)."""
        rows = self._conn.execute(
            "SELECT * FROM e2ee_waiting WHERE created_at < ? ORDER BY created_at LIMIT ?",
            (cutoff, limit),
        )
        return [_waiting(r) for r in rows]

    @_quick
    def waiting_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM e2ee_waiting").fetchone()[0])


def _waiting(row) -> WaitingEvent:
    return WaitingEvent(
        row["event_id"],
        row["room_id"],
        row["session_id"],
        json.loads(row["event"]),
        row["created_at"],
    )
