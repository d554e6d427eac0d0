"""What the demo user's client has seen: a background ``/sync`` loop and its record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from matrix_client import MatrixClient, RoomEvent

#: Long-poll of the observer's ``/sync`` (ms): a batch arrives at least this often.
LONG_POLL_MS = 10_000


@attrs.define
class Observer:
    """Syncs as the demo user in the background and keeps what it saw.

    ``wait_for(predicate)`` re-checks the predicate after every sync batch, so a step
    waits for what it expects without polling (its deadline is the step's).
    """

    client: MatrixClient
    timeline: list[tuple[str, RoomEvent]] = attrs.Factory(list)
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
            now = trio.current_time()
            for item in batch.events:
                self.timeline.append((item.room_id, item.event))
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
