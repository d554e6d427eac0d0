"""The turns running right now, one per room: what other lanes may touch while a turn
runs (``!stop``, an answer to the agent's question, ``!status``, a reaction, an edit
or a redaction of one of its messages)."""

from __future__ import annotations

import attrs
import trio

from agent_client import Turn


@attrs.define
class ActiveTurn:
    room_id: str
    event_id: str  # the turn's key (its first message; a re-run's original turn)
    thread: str | None = None  # the thread root, None in the main timeline
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    turn: Turn | None = None
    confirm_id: str | None = None
    confirm_event: str | None = None  # the question notice (👍 / 👎 react to it)
    stopped: bool = False
    #: The user messages this turn answers (a merged burst: all of them).
    messages: set[str] = attrs.field(factory=set)
    #: The reply's messages by part (the reply stream's own dict, kept current).
    reply_parts: dict[int, str] = attrs.field(factory=dict)

    def concerns(self, event_id: str) -> bool:
        """Whether ``event_id`` is one of the turn's messages or reply messages."""
        return event_id in self.messages or event_id in self.reply_parts.values()


@attrs.define
class ActiveTurns:
    _by_room: dict[str, ActiveTurn] = attrs.field(factory=dict)

    def start(self, room_id: str, event_id: str, thread: str | None = None) -> ActiveTurn:
        active = self._by_room[room_id] = ActiveTurn(room_id, event_id, thread)
        active.messages.add(event_id)
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

    def stop(self, room_id: str, *, thread: str | None = None, any_thread: bool = True) -> bool:
        """Cancel the room's turn (``!stop``); False when none runs. With
        ``any_thread=False`` only a turn of ``thread`` (None: the main timeline)."""
        active = self._by_room.get(room_id)
        if active is None or (not any_thread and active.thread != thread):
            return False
        active.stopped = True
        active.scope.cancel()
        return True

    def stop_concerning(self, room_id: str, event_id: str) -> bool:
        """Stop the room's turn if ``event_id`` is one of its messages or replies."""
        active = self._by_room.get(room_id)
        if active is None or not active.concerns(event_id):
            return False
        return self.stop(room_id)

    async def confirm(
        self, room_id: str, approved: bool, *, question_event: str | None = None
    ) -> bool:
        """Answer the pending question of the room's turn; False when there is none
        (or, with ``question_event``, when that is not the pending question)."""
        active = self._by_room.get(room_id)
        if active is None or active.confirm_id is None or active.turn is None:
            return False
        if question_event is not None and question_event != active.confirm_event:
            return False
        request_id, active.confirm_id = active.confirm_id, None
        await active.turn.confirm(request_id, approved)
        return True
