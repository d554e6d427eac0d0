"""Users, chats (with a read-through cache), the id counters and room-creation intents."""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import trio

from surfaces.core import ChatStatus
from surfaces.core.binding import local_number
from surfaces.state._db import CHAT_CACHE_SIZE, Database, _quick, _threaded
from surfaces.state._records import ChatRecord, Intent, UserRecord
from surfaces.state._rows import _chat, _intent, _user


class ChatConflictField(enum.StrEnum):
    LOCAL_ID = "local_id"
    PLATFORM_CHAT_ID = "platform_chat_id"


class ChatConflictError(Exception):
    """A chat binding that would take a ``C<n>`` or platform chat id another room has."""

    def __init__(self, field: ChatConflictField, room_id: str) -> None:
        super().__init__(f"{field} already belongs to {room_id}")
        self.field = field
        self.room_id = room_id


class WorkspaceTables(Database):
    @_quick
    def get_user(self, user_id: str) -> UserRecord | None:
        row = self._conn.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return None if row is None else _user(row)

    @_threaded
    def all_users(self) -> list[UserRecord]:
        return [_user(r) for r in self._conn.execute("SELECT * FROM users ORDER BY user_id")]

    @_quick
    def upsert_user(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        space_id: str | None = None,
        dm_room_id: str | None = None,
    ) -> UserRecord:
        """Create the user row if missing; set the given non-None fields."""
        with self._tx():
            self._conn.execute(
                "INSERT OR IGNORE INTO users (user_id, created_at) VALUES (?, ?)",
                (user_id, time.time()),
            )
            for column, value in (
                ("display_name", display_name),
                ("space_id", space_id),
                ("dm_room_id", dm_room_id),
            ):
                if value is not None:
                    self._conn.execute(
                        f"UPDATE users SET {column} = ? WHERE user_id = ?", (value, user_id)
                    )
            row = self._conn.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return _user(row)

    @_quick
    def set_user_flag(self, user_id: str, flag: str, value: Any = True) -> bool:
        """Set a flag; returns False if it already had that value (one-time notices)."""
        return self._set_flag("users", "user_id", user_id, flag, value)

    # ---- chats -----------------------------------------------------------

    async def get_chat(self, room_id: str) -> ChatRecord | None:
        """The chat bound to ``room_id``; from memory after the first read."""
        chat = self._chats.get(room_id)
        if chat is None:
            return await self._load_chat(room_id)
        await trio.lowlevel.checkpoint()
        return chat

    @_quick
    def _load_chat(self, room_id: str) -> ChatRecord | None:
        row = self._conn.execute("SELECT * FROM chats WHERE room_id = ?", (room_id,)).fetchone()
        if row is None:
            return None
        if len(self._chats) >= CHAT_CACHE_SIZE:
            self._chats.clear()  # bounded; rows are re-read on demand
        chat = self._chats[room_id] = _chat(row)
        return chat

    @_quick
    def chats_of(
        self, owner: str, *, status: ChatStatus | None = ChatStatus.ACTIVE
    ) -> list[ChatRecord]:
        if status is None:
            rows = self._conn.execute(
                "SELECT * FROM chats WHERE owner = ? ORDER BY created_at, local_id", (owner,)
            )
        else:
            rows = self._conn.execute(
                "SELECT * FROM chats WHERE owner = ? AND status = ? ORDER BY created_at, local_id",
                (owner, status),
            )
        return [_chat(r) for r in rows]

    @_threaded
    def known_rooms(self) -> set[str]:
        """Every room id the state knows: chats, spaces and DMs."""
        rooms = {r["room_id"] for r in self._conn.execute("SELECT room_id FROM chats")}
        for r in self._conn.execute("SELECT space_id, dm_room_id FROM users"):
            rooms.update(x for x in (r["space_id"], r["dm_room_id"]) if x)
        return rooms

    @_quick
    def put_chat(self, chat: ChatRecord) -> None:
        """Insert or replace a chat binding (used by creation and reconciliation).

        Raises :class:`ChatConflictError`, changing nothing, when another room
        already has the owner's ``C<n>`` or the platform chat id: the database keeps
        what it has (two rooms sharing a platform chat id would share one agent
        conversation)."""
        self._chats.pop(chat.room_id, None)
        with self._tx():
            for field, row in (
                (
                    ChatConflictField.LOCAL_ID,
                    self._conn.execute(
                        "SELECT room_id FROM chats WHERE owner = ? AND local_id = ? "
                        "AND room_id != ?",
                        (chat.owner, chat.local_id, chat.room_id),
                    ).fetchone(),
                ),
                (
                    ChatConflictField.PLATFORM_CHAT_ID,
                    self._conn.execute(
                        "SELECT room_id FROM chats WHERE platform_chat_id = ? AND room_id != ?",
                        (chat.platform_chat_id, chat.room_id),
                    ).fetchone(),
                ),
            ):
                if row is not None:
                    raise ChatConflictError(field, row["room_id"])
            self._conn.execute(
                "INSERT INTO chats (room_id, owner, local_id, name, agent_id, platform_chat_id, "
                "status, flags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(room_id) DO UPDATE SET owner = excluded.owner, "
                "local_id = excluded.local_id, name = excluded.name, "
                "agent_id = excluded.agent_id, platform_chat_id = excluded.platform_chat_id, "
                "status = excluded.status",
                (
                    chat.room_id,
                    chat.owner,
                    chat.local_id,
                    chat.name,
                    chat.agent_id,
                    chat.platform_chat_id,
                    chat.status,
                    json.dumps(chat.flags),
                    time.time(),
                ),
            )
            self._raise_platform_seq(int(chat.platform_chat_id))
            n = local_number(chat.local_id)
            if n is not None:
                self._conn.execute(
                    "UPDATE users SET chat_seq = MAX(chat_seq, ?) WHERE user_id = ?",
                    (n, chat.owner),
                )

    @_quick
    def update_chat(self, room_id: str, **fields: Any) -> ChatRecord | None:
        allowed = {"name", "agent_id", "platform_chat_id", "status"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update chat fields {sorted(unknown)}")
        self._chats.pop(room_id, None)
        with self._tx():
            for column, value in fields.items():
                self._conn.execute(
                    f"UPDATE chats SET {column} = ? WHERE room_id = ?", (value, room_id)
                )
            row = self._conn.execute("SELECT * FROM chats WHERE room_id = ?", (room_id,)).fetchone()
        return None if row is None else _chat(row)

    @_quick
    def set_chat_flag(self, room_id: str, flag: str, value: Any = True) -> bool:
        """Set a flag on a chat; False if it already had that value."""
        self._chats.pop(room_id, None)
        return self._set_flag("chats", "room_id", room_id, flag, value)

    def _set_flag(self, table: str, key_column: str, key: str, flag: str, value: Any) -> bool:
        """Read-modify-write of one row's JSON ``flags``, in one transaction."""
        with self._tx():
            row = self._conn.execute(
                f"SELECT flags FROM {table} WHERE {key_column} = ?", (key,)
            ).fetchone()
            if row is None:
                return False
            flags = json.loads(row["flags"])
            if flags.get(flag) == value:
                return False
            flags[flag] = value
            self._conn.execute(
                f"UPDATE {table} SET flags = ? WHERE {key_column} = ?", (json.dumps(flags), key)
            )
        return True

    # ---- counters and intents -------------------------------------------

    def _raise_platform_seq(self, at_least: int) -> None:
        current = int(self._get(self.PLATFORM_SEQ_KEY) or 0)
        if at_least > current:
            self._set(self.PLATFORM_SEQ_KEY, str(at_least))

    def _next_platform_id(self) -> str:
        value = int(self._get(self.PLATFORM_SEQ_KEY) or 0) + 1
        self._set(self.PLATFORM_SEQ_KEY, str(value))
        return str(value)

    @_quick
    def allocate_platform_chat_id(self) -> str:
        with self._tx():
            return self._next_platform_id()

    @_quick
    def raise_platform_seq(self, at_least: int) -> None:
        with self._tx():
            self._raise_platform_seq(at_least)

    @_quick
    def add_chat_intent(self, owner: str, name: str | None, agent_id: str, key: str) -> Intent:
        """Allocate the next ``C<n>`` and platform chat id and record the intent to
        create the room, in one transaction. ``key`` identifies the request (e.g.
        the ``!new`` event): asking again with the same key returns the same intent,
        so a re-run after a crash never allocates or creates twice."""
        with self._tx():
            row = self._conn.execute("SELECT * FROM intents WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return _intent(row)
            self._conn.execute(
                "INSERT OR IGNORE INTO users (user_id, created_at) VALUES (?, ?)",
                (owner, time.time()),
            )
            self._conn.execute(
                "UPDATE users SET chat_seq = chat_seq + 1 WHERE user_id = ?", (owner,)
            )
            seq = self._conn.execute(
                "SELECT chat_seq FROM users WHERE user_id = ?", (owner,)
            ).fetchone()["chat_seq"]
            platform_id = self._next_platform_id()
            self._conn.execute(
                "INSERT INTO intents (key, owner, kind, local_id, name, agent_id, "
                "platform_chat_id, created_at) VALUES (?, ?, 'chat', ?, ?, ?, ?, ?)",
                (key, owner, f"C{seq}", name, agent_id, platform_id, time.time()),
            )
            row = self._conn.execute("SELECT * FROM intents WHERE key = ?", (key,)).fetchone()
        return _intent(row)

    @_quick
    def add_space_intent(self, owner: str) -> Intent:
        key = f"space:{owner}"
        with self._tx():
            self._conn.execute(
                "INSERT OR IGNORE INTO intents (key, owner, kind, created_at) "
                "VALUES (?, ?, 'space', ?)",
                (key, owner, time.time()),
            )
            row = self._conn.execute("SELECT * FROM intents WHERE key = ?", (key,)).fetchone()
        return _intent(row)

    @_quick
    def open_intents(self, owner: str) -> list[Intent]:
        rows = self._conn.execute(
            "SELECT * FROM intents WHERE owner = ? AND status = 'open' ORDER BY id", (owner,)
        ).fetchall()
        return [_intent(r) for r in rows]

    @_quick
    def intent_by_key(self, key: str) -> Intent | None:
        row = self._conn.execute("SELECT * FROM intents WHERE key = ?", (key,)).fetchone()
        return None if row is None else _intent(row)

    @_quick
    def complete_intent(self, intent_id: int, room_id: str | None) -> None:
        """Mark an intent carried out (kept, so a re-run of its request finds the room)."""
        with self._tx():
            self._conn.execute(
                "UPDATE intents SET status = ?, room_id = ? WHERE id = ?",
                ("done" if room_id else "dropped", room_id, intent_id),
            )
