"""``!stop``, ``!yes``, ``!no``: about the room's running turn.

An answer with no question pending is a plain confirming / declining turn, and every
turn runs on the room's lane (one agent connection per conversation at a time): the
answer is handed to the room lane as a new item (``RoomQueue.hand_off``), never run
here beside the room's turn.
"""

from __future__ import annotations

import attrs
import structlog

from surfaces.core import ItemKind
from surfaces.i18n import Texts
from surfaces.intake import RoomQueue, room_item
from surfaces.turns import ActiveTurns

from ._invocation import Invocation

log = structlog.get_logger(__name__)


@attrs.define
class TurnControl:
    active: ActiveTurns
    queue: RoomQueue
    texts: Texts

    async def stop(self, call: Invocation) -> None:
        """Stop the reply of this conversation (in a thread: that thread's)."""
        item = call.item
        if self.active.stop(call.chat.room_id, thread=item.thread, any_thread=False):
            log.info("turn_stop_requested")
        else:
            await call.reply("stop_none")

    async def yes(self, call: Invocation) -> None:
        await self._answer(call, approved=True)

    async def no(self, call: Invocation) -> None:
        await self._answer(call, approved=False)

    async def answer(self, call: Invocation, *, approved: bool, question: str) -> bool:
        """Answer the question notice ``question`` (a 👍 / 👎 on it); False when it is
        not the pending question (nothing is sent then)."""
        if not await self.active.confirm(call.chat.room_id, approved, question_event=question):
            return False
        await self._sent(call, approved)
        return True

    async def _answer(self, call: Invocation, *, approved: bool) -> None:
        if await self.active.confirm(call.chat.room_id, approved):
            await self._sent(call, approved)
            return
        # No pending question: a plain confirming / declining turn, on the room lane.
        item = call.item
        payload: dict = {"body": self._text(approved)}
        if item.thread:
            payload["thread"] = item.thread
        await self.queue.hand_off(item, room_item(item, "answer", ItemKind.TEXT, payload))

    async def _sent(self, call: Invocation, approved: bool) -> None:
        await call.reply("confirm_sent", answer=self._text(approved))

    def _text(self, approved: bool) -> str:
        return self.texts("confirm_yes_text" if approved else "confirm_no_text")
