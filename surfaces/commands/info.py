"""``!status``, ``!help``, ``!settings``: what the user can learn."""

from __future__ import annotations

import attrs
import trio

from agent_client import AgentClient, AgentFailure
from surfaces.core import Lane
from surfaces.i18n import Texts
from surfaces.intake import LaneSupervisor
from surfaces.state import Store
from surfaces.turns import ActiveTurns, AgentChoice

from ._invocation import Invocation


@attrs.define
class InfoCommands:
    store: Store
    agents: AgentClient
    choice: AgentChoice
    lanes: LaneSupervisor
    active: ActiveTurns
    texts: Texts
    status_timeout_s: float

    async def status(self, call: Invocation) -> None:
        chat = call.chat
        spec = self.choice.workspace_of(chat)
        health = self.texts("health_down", code="AGENT_TIMEOUT")
        try:
            with trio.move_on_after(self.status_timeout_s + 1):
                await self.agents.probe(spec.base_url, chat.platform_chat_id)
                health = self.texts("health_ok")
        except AgentFailure as exc:
            health = self.texts("health_down", code=exc.code)
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
