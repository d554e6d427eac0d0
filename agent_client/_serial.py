"""Per-chat serialisation: two turns for the same chat id never overlap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio


@attrs.define
class _Entry:
    lock: trio.Lock = attrs.Factory(trio.Lock)
    users: int = 0  # holders + waiters


@attrs.define
class ChatSerializer:
    """A fair (FIFO) lock per chat id, created on demand and dropped when unused.

    ::

        async with serializer.hold(chat_id):
            async with client.turn(base, chat_id, text) as turn: ...

    Waiting is cancellable (a cancelled waiter leaves the queue and never gets the
    lock). An entry lives only while somebody holds or waits for it, so the map does
    not grow with the number of chats ever seen.
    """

    _entries: dict[str, _Entry] = attrs.field(factory=dict, init=False)

    @asynccontextmanager
    async def hold(self, chat_id: str) -> AsyncIterator[None]:
        entry = self._entries.get(chat_id)
        if entry is None:
            entry = self._entries[chat_id] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[chat_id]

    def busy(self, chat_id: str) -> bool:
        """Whether a turn for ``chat_id`` holds the lock right now."""
        entry = self._entries.get(chat_id)
        return entry is not None and entry.lock.locked()

    def waiting(self, chat_id: str) -> int:
        """Holders plus waiters for ``chat_id`` (0 when the chat is idle)."""
        entry = self._entries.get(chat_id)
        return 0 if entry is None else entry.users

    def __len__(self) -> int:
        return len(self._entries)
