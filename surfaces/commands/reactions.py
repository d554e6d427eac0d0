"""Reactions as controls (the chat owner's only): the same handlers as the commands.

=====  ==========================================  =====================
key    on                                          does
=====  ==========================================  =====================
🛑     a reply still streaming (or its message)     ``!stop``
👍 👎  the agent's question                          ``!yes`` / ``!no``
🔁     the latest reply                             regenerate into it
=====  ==========================================  =====================

Keys are matched with and without the emoji presentation selector U+FE0F (Element's
quick reactions send ``👍️``); ``surfaces.intake.parse_reaction`` knows them. A control
on anything else (an old reply, an answered question) does nothing.
"""

from __future__ import annotations

import attrs
import structlog

from surfaces.intake import Command, ReactionControl
from surfaces.state import ChatRecord, InboxItem
from surfaces.turns import ActiveTurns

from ._invocation import Invocation
from .corrections import Corrections
from .dispatch import Commands

log = structlog.get_logger(__name__)


@attrs.define
class Reactions:
    commands: Commands
    active: ActiveTurns
    corrections: Corrections

    async def handle(self, item: InboxItem, chat: ChatRecord) -> int:
        control = ReactionControl(item.payload["control"])
        target = item.payload["target"]
        if control is ReactionControl.REGENERATE:
            return await self.corrections.regenerate(item, chat)
        if control is ReactionControl.STOP:
            if self.active.stop_concerning(chat.room_id, target):
                log.info("turn_stop_requested", by="reaction")
            return 0
        call = Invocation(
            item, chat, Command(control.value, "", control.value), self.commands.reply_to(item)
        )
        answered = await self.commands.control.answer(
            call, approved=control is ReactionControl.YES, question=target
        )
        if not answered:
            log.info("reaction_ignored", control=control, reason="no pending question there")
        return 0
