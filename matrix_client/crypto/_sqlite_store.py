"""A :class:`CryptoStore` in tables of the caller's SQLite database.

The caller owns the connection and its transactions: this class never begins, commits or
rolls back. It creates its ``crypto_*`` tables (and its own schema version row) in the
constructor and writes in :meth:`save_changes`; the caller wraps both in its own
transaction, so the crypto state is committed together with the caller's rows (a sync
token, an event marked processed). Pickles are stored as vodozemac made them (encrypted
with the caller's pickle key); metadata is JSON.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import attrs

from ._errors import StoreError
from ._store import (
    AccountRecord,
    Changes,
    DeviceRecord,
    InboundGroupSessionRecord,
    KeyRequestRecord,
    OlmSessionRecord,
    OutboundGroupSessionRecord,
    PendingRequestRecord,
    ReplayRecord,
    TrackedUserRecord,
)

#: Bump with a migration in ``_migrate`` when a table changes.
SCHEMA_VERSION = 1

_TABLES = (
    "CREATE TABLE IF NOT EXISTS crypto_schema (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS crypto_account (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " user_id TEXT NOT NULL, device_id TEXT NOT NULL, pickle TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS crypto_olm_sessions (sender_key TEXT NOT NULL,"
    " session_id TEXT NOT NULL, pickle TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " last_used_ms INTEGER NOT NULL, PRIMARY KEY (sender_key, session_id))",
    "CREATE TABLE IF NOT EXISTS crypto_inbound_group_sessions (room_id TEXT NOT NULL,"
    " session_id TEXT NOT NULL, sender_key TEXT NOT NULL, pickle TEXT NOT NULL,"
    " data TEXT NOT NULL, PRIMARY KEY (room_id, session_id))",
    "CREATE TABLE IF NOT EXISTS crypto_outbound_group_sessions (room_id TEXT PRIMARY KEY,"
    " session_id TEXT NOT NULL, pickle TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS crypto_devices (user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
    " data TEXT NOT NULL, PRIMARY KEY (user_id, device_id))",
    "CREATE TABLE IF NOT EXISTS crypto_tracked_users (user_id TEXT PRIMARY KEY,"
    " dirty_seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS crypto_replay (room_id TEXT NOT NULL, session_id TEXT NOT NULL,"
    " message_index INTEGER NOT NULL, event_id TEXT NOT NULL, origin_server_ts INTEGER NOT NULL,"
    " PRIMARY KEY (room_id, session_id, message_index))",
    "CREATE TABLE IF NOT EXISTS crypto_pending_requests (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " request_id TEXT NOT NULL UNIQUE, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS crypto_key_requests (room_id TEXT NOT NULL,"
    " session_id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (room_id, session_id))",
)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _load(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"corrupt crypto metadata: {exc}") from None
    if not isinstance(value, dict):
        raise StoreError("corrupt crypto metadata: not an object")
    return value


@attrs.define
class SqliteCryptoStore:
    """A crypto store in ``conn``; creating it creates the tables (commit that yourself)."""

    _conn: sqlite3.Connection

    def __attrs_post_init__(self) -> None:
        for statement in _TABLES:
            self._conn.execute(statement)
        row = self._conn.execute("SELECT version FROM crypto_schema WHERE id = 0").fetchone()
        if row is None:
            self._conn.execute("INSERT INTO crypto_schema (id, version) VALUES (0, ?)", (1,))
        elif row[0] > SCHEMA_VERSION:
            raise StoreError(
                f"crypto schema version {row[0]} is newer than this code ({SCHEMA_VERSION})"
            )

    def save_changes(self, changes: Changes) -> None:
        c = self._conn
        if (a := changes.account) is not None:
            c.execute(
                "INSERT OR REPLACE INTO crypto_account VALUES (0, ?, ?, ?, ?)",
                (a.user_id, a.device_id, a.pickle, _dump(a.data)),
            )
        c.executemany(
            "INSERT OR REPLACE INTO crypto_olm_sessions VALUES (?, ?, ?, ?, ?)",
            [
                (s.sender_key, s.session_id, s.pickle, s.created_ms, s.last_used_ms)
                for s in changes.olm_sessions
            ],
        )
        c.executemany(
            "DELETE FROM crypto_olm_sessions WHERE sender_key = ? AND session_id = ?",
            changes.removed_olm_sessions,
        )
        c.executemany(
            "INSERT OR REPLACE INTO crypto_inbound_group_sessions VALUES (?, ?, ?, ?, ?)",
            [
                (g.room_id, g.session_id, g.sender_key, g.pickle, _dump(g.data))
                for g in changes.inbound_group_sessions
            ],
        )
        c.executemany(
            "DELETE FROM crypto_outbound_group_sessions WHERE room_id = ?",
            [(room_id,) for room_id in changes.removed_outbound_group_sessions],
        )
        c.executemany(
            "INSERT OR REPLACE INTO crypto_outbound_group_sessions VALUES (?, ?, ?, ?)",
            [
                (o.room_id, o.session_id, o.pickle, _dump(o.data))
                for o in changes.outbound_group_sessions
            ],
        )
        c.executemany(
            "INSERT OR REPLACE INTO crypto_devices VALUES (?, ?, ?)",
            [(d.user_id, d.device_id, _dump(d.data)) for d in changes.devices],
        )
        c.executemany(
            "INSERT OR REPLACE INTO crypto_tracked_users VALUES (?, ?)",
            [(t.user_id, t.dirty_seq) for t in changes.tracked_users],
        )
        c.executemany(
            "DELETE FROM crypto_tracked_users WHERE user_id = ?",
            [(user_id,) for user_id in changes.removed_tracked_users],
        )
        c.executemany(
            "INSERT OR REPLACE INTO crypto_replay VALUES (?, ?, ?, ?, ?)",
            [
                (r.room_id, r.session_id, r.message_index, r.event_id, r.origin_server_ts)
                for r in changes.replay
            ],
        )
        c.executemany(
            "INSERT INTO crypto_pending_requests (request_id, data) VALUES (?, ?)"
            " ON CONFLICT (request_id) DO UPDATE SET data = excluded.data",
            [(p.request_id, _dump(p.data)) for p in changes.pending_requests],
        )
        c.executemany(
            "DELETE FROM crypto_pending_requests WHERE request_id = ?",
            [(request_id,) for request_id in changes.removed_requests],
        )
        c.executemany(
            "INSERT OR REPLACE INTO crypto_key_requests VALUES (?, ?, ?)",
            [(k.room_id, k.session_id, _dump(k.data)) for k in changes.key_requests],
        )
        c.executemany(
            "DELETE FROM crypto_key_requests WHERE room_id = ? AND session_id = ?",
            changes.removed_key_requests,
        )

    def load_account(self) -> AccountRecord | None:
        row = self._conn.execute(
            "SELECT user_id, device_id, pickle, data FROM crypto_account WHERE id = 0"
        ).fetchone()
        if row is None:
            return None
        return AccountRecord(row[0], row[1], row[2], _load(row[3]))

    def olm_sessions(self, sender_key: str) -> list[OlmSessionRecord]:
        rows = self._conn.execute(
            "SELECT sender_key, session_id, pickle, created_ms, last_used_ms"
            " FROM crypto_olm_sessions WHERE sender_key = ?",
            (sender_key,),
        )
        return [OlmSessionRecord(*row) for row in rows]

    def inbound_group_session(
        self, room_id: str, session_id: str
    ) -> InboundGroupSessionRecord | None:
        row = self._conn.execute(
            "SELECT room_id, session_id, sender_key, pickle, data FROM"
            " crypto_inbound_group_sessions WHERE room_id = ? AND session_id = ?",
            (room_id, session_id),
        ).fetchone()
        if row is None:
            return None
        return InboundGroupSessionRecord(row[0], row[1], row[2], row[3], _load(row[4]))

    def outbound_group_session(self, room_id: str) -> OutboundGroupSessionRecord | None:
        row = self._conn.execute(
            "SELECT room_id, session_id, pickle, data FROM crypto_outbound_group_sessions"
            " WHERE room_id = ?",
            (room_id,),
        ).fetchone()
        if row is None:
            return None
        return OutboundGroupSessionRecord(row[0], row[1], row[2], _load(row[3]))

    def devices(self, user_id: str) -> list[DeviceRecord]:
        rows = self._conn.execute(
            "SELECT user_id, device_id, data FROM crypto_devices WHERE user_id = ?", (user_id,)
        )
        return [DeviceRecord(u, d, _load(data)) for u, d, data in rows]

    def tracked_users(self) -> list[TrackedUserRecord]:
        rows = self._conn.execute("SELECT user_id, dirty_seq FROM crypto_tracked_users")
        return [TrackedUserRecord(*row) for row in rows]

    def replay_entry(
        self, room_id: str, session_id: str, message_index: int
    ) -> ReplayRecord | None:
        row = self._conn.execute(
            "SELECT room_id, session_id, message_index, event_id, origin_server_ts"
            " FROM crypto_replay WHERE room_id = ? AND session_id = ? AND message_index = ?",
            (room_id, session_id, message_index),
        ).fetchone()
        return None if row is None else ReplayRecord(*row)

    def pending_requests(self) -> list[PendingRequestRecord]:
        rows = self._conn.execute(
            "SELECT request_id, data FROM crypto_pending_requests ORDER BY seq"
        )
        return [PendingRequestRecord(r, _load(data)) for r, data in rows]

    def key_requests(self) -> list[KeyRequestRecord]:
        rows = self._conn.execute("SELECT room_id, session_id, data FROM crypto_key_requests")
        return [KeyRequestRecord(r, s, _load(data)) for r, s, data in rows]
