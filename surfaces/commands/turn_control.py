"""``!stop``, ``!yes``, ``!no``: about the room's running turn."""

from __future__ import annotations

import attrs
import structlog

from surfaces.i18n import Texts
from surfaces.turns import ActiveTurns, TurnRunner

from ._invocation import Invocation

log = structlog.get_logger(__name__)


@attrs.define
class TurnControl:
    active: ActiveTurns
    runner: TurnRunner
    texts: Texts

    async def stop(self, call: Invocation) -> None:
        if self.active.stop(call.chat.room_id):
            log.info("turn_stop_requested")
        else:
            await call.reply("stop_none")

    async def yes(self, call: Invocation) -> None:
        await self._answer(call, approved=True)

    async def no(self, call: Invocation) -> None:
        await self._answer(call, approved=False)

    async def _answer(self, call: Invocation, *, approved: bool) -> None:
        answer = self.texts("confirm_yes_text" if approved else "confirm_no_text")
        if await self.active.confirm(call.chat.room_id, approved):
            await call.reply("confirm_sent", answer=answer)
            return
        # No pending question: a plain confirming / declining turn.
        await self.runner.run(call.item, call.chat, answer)
