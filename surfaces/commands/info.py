"""``!status``, ``!help``, ``!settings``: what the user can learn."""

from __future__ import annotations

import attrs

from surfaces.agents import PresenceBoard
from surfaces.core import Lane
from surfaces.i18n import Texts
from surfaces.intake import LaneSupervisor
from surfaces.state import Store
from surfaces.turns import ActiveTurns, AgentChoice

from ._invocation import Invocation
from .presence_words import presence_words


@attrs.define
class InfoCommands:
    store: Store
    presence: PresenceBoard  # what the prober and the turns saw: no live probe here
    choice: AgentChoice
    lanes: LaneSupervisor
    active: ActiveTurns
    texts: Texts

    async def status(self, call: Invocation) -> None:
        chat = call.chat
        spec = self.choice.workspace_of(chat)
        board = self.presence
        health = presence_words(self.texts, board.state(spec.id), board.seen_ago(spec.id))
        queued = max(0, self.lanes.pending(Lane.room(chat.room_id)) - 1)
        if self.active.running(chat.room_id):
            turn = (
                self.texts("status_turn_queued", n=queued)
                if queued
                else self.texts("status_turn_running")
            )
        else:
            turn = self.texts("status_turn_idle")
        files = await self.store.staged(chat.room_id, chat.owner)
        tokens = await self.store.chat_tokens(chat.room_id, chat.owner)
        await call.reply(
            "status",
            agent=spec.label,
            health=health,
            local_id=chat.local_id,
            platform_chat_id=chat.platform_chat_id,
            turn=turn,
            files=len(files),
            usage=self.texts("status_usage", tokens=self.texts.number(tokens)),
        )

    async def help(self, call: Invocation) -> None:
        await call.reply("help")

    async def settings(self, call: Invocation) -> None:
        await call.reply("settings")
