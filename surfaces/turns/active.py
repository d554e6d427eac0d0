"""The turns running right now, one per room: what other lanes may touch while a turn
runs (``!stop``, an answer to the agent's question, ``!status``)."""

from __future__ import annotations

import attrs
import trio

from agent_client import Turn


@attrs.define
class ActiveTurn:
    room_id: str
    event_id: str
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    turn: Turn | None = None
    confirm_id: str | None = None
    stopped: bool = False


@attrs.define
class ActiveTurns:
    _by_room: dict[str, ActiveTurn] = attrs.field(factory=dict)

    def start(self, room_id: str, event_id: str) -> ActiveTurn:
        active = self._by_room[room_id] = ActiveTurn(room_id, event_id)
        return active

    def end(self, active: ActiveTurn) -> None:
        """Forget ``active`` (only that turn: never another one of the same room)."""
        if self._by_room.get(active.room_id) is active:
            del self._by_room[active.room_id]

    def __len__(self) -> int:
        return len(self._by_room)

    def get(self, room_id: str) -> ActiveTurn | None:
        return self._by_room.get(room_id)

    def running(self, room_id: str) -> bool:
        return room_id in self._by_room

    def awaiting_confirmation(self, room_id: str) -> bool:
        active = self._by_room.get(room_id)
        return active is not None and active.confirm_id is not None

    def stop(self, room_id: str) -> bool:
        """Cancel the room's turn (``!stop``); False when none runs."""
        active = self._by_room.get(room_id)
        if active is None:
            return False
        active.stopped = True
        active.scope.cancel()
        return True

    async def confirm(self, room_id: str, approved: bool) -> bool:
        """Answer the pending question of the room's turn; False when there is none."""
        active = self._by_room.get(room_id)
        if active is None or active.confirm_id is None or active.turn is None:
            return False
        request_id, active.confirm_id = active.confirm_id, None
        await active.turn.confirm(request_id, approved)
        return True
