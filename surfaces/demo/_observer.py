"""What the demo user's client has seen: a background ``/sync`` loop and its record.

The demo user has an end-to-end-encrypting device (``CryptoUser``: the project's own
crypto machine, in memory): every batch's room keys are taken first and the timeline
is recorded decrypted. An event whose key has not come yet is recorded as it is and
decrypted in place by a later batch (``encrypted`` holds the ids that came encrypted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from matrix_client import MatrixClient, RoomEvent
from matrix_client.testing import CryptoUser

#: Long-poll of the observer's ``/sync`` (ms): a batch arrives at least this often.
LONG_POLL_MS = 10_000


@attrs.define
class Observer:
    """Syncs as the demo user in the background and keeps what it saw.

    ``wait_for(predicate)`` re-checks the predicate after every sync batch, so a step
    waits for what it expects without polling (its deadline is the step's).
    """

    client: MatrixClient
    crypto: CryptoUser
    timeline: list[tuple[str, RoomEvent]] = attrs.Factory(list)
    #: Event ids that arrived encrypted (and were decrypted).
    encrypted: set[str] = attrs.Factory(set)
    #: Timeline positions still waiting for their room key.
    _undecrypted: list[int] = attrs.Factory(list)
    invites: dict[str, dict[str, dict[str, Any]]] = attrs.Factory(dict)  # room -> type -> content
    typing: dict[str, set[str]] = attrs.Factory(dict)
    # (timeline length when it arrived, room, users typing): every m.typing update
    typing_updates: list[tuple[int, str, frozenset[str]]] = attrs.Factory(list)
    _changed: trio.Event = attrs.Factory(trio.Event)
    last_event_at: dict[tuple[str, str], float] = attrs.Factory(dict)  # (room, sender) -> time

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync forever; ``started`` once the first (initial) batch is recorded."""
        syncer = self.client.syncer(since=None, filter_id=None, long_poll_ms=LONG_POLL_MS)
        first = True
        while True:
            batch = await syncer.next()
            await self.crypto.receive(batch)
            now = trio.current_time()
            self._retry_undecrypted()
            for item in batch.events:
                self.timeline.append((item.room_id, self._decrypt(item.room_id, item.event)))
                self.last_event_at[(item.room_id, item.event.sender)] = now
            for invite in batch.invites:
                self.invites[invite.room_id] = {s.type: s.content for s in invite.state}
            for room_id, joined in batch.response.rooms.join.items():
                for ephemeral in joined.ephemeral.events:
                    if ephemeral.get("type") == "m.typing":
                        users = frozenset(ephemeral.get("content", {}).get("user_ids", []))
                        self.typing[room_id] = set(users)
                        self.typing_updates.append((len(self.timeline), room_id, users))
            self._changed.set()
            self._changed = trio.Event()
            if first:
                first = False
                task_status.started()

    def _decrypt(self, room_id: str, event: RoomEvent) -> RoomEvent:
        if event.type != "m.room.encrypted":
            return event
        plain = self.crypto.decrypt(room_id, event)
        if plain.type == "m.room.encrypted":
            self._undecrypted.append(len(self.timeline))
        else:
            self.encrypted.add(event.event_id)
        return plain

    def _retry_undecrypted(self) -> None:
        waiting, self._undecrypted = self._undecrypted, []
        for index in waiting:
            room_id, event = self.timeline[index]
            plain = self.crypto.decrypt(room_id, event)
            if plain.type == "m.room.encrypted":
                self._undecrypted.append(index)
            else:
                self.encrypted.add(event.event_id)
                self.timeline[index] = (room_id, plain)

    def lock(self, event: RoomEvent) -> str:
        """`` 🔒`` for an event that came encrypted (the transcript marks them)."""
        return " 🔒" if event.event_id in self.encrypted else ""

    async def wait_for(self, predicate: Callable[[], Any]) -> Any:
        """The predicate's first truthy result, re-checked after every batch."""
        while True:
            result = predicate()
            if result:
                return result
            await self._changed.wait()

    async def changed(self) -> None:
        """Wait for the next sync batch."""
        await self._changed.wait()

    def mark(self) -> int:
        """A position in the timeline, for :meth:`events_since`."""
        return len(self.timeline)

    def events_since(self, mark: int, room_id: str, sender: str | None = None) -> list[RoomEvent]:
        return [
            e
            for r, e in self.timeline[mark:]
            if r == room_id and (sender is None or e.sender == sender)
        ]
