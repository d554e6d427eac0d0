"""Which agent answers a chat, and the switch when the registry changed.

A user added to the registry later is switched over on the next turn, keeping the
platform chat id; a chat whose agent left the registry falls back to the user's
agent. A user who is not configured gets the default agent, announced once per room.
"""

from __future__ import annotations

import attrs
import structlog

from surfaces.config import AgentRegistry, AgentSpec
from surfaces.delivery import BindingMirror, Notifier
from surfaces.state import ChatRecord, Store

log = structlog.get_logger(__name__)


@attrs.define
class AgentChoice:
    registry: AgentRegistry
    store: Store
    mirror: BindingMirror
    notifier: Notifier

    async def for_chat(self, chat: ChatRecord) -> AgentSpec:
        registry = self.registry
        spec, configured = registry.for_user(chat.owner)
        current = registry.get(chat.agent_id)
        if (configured and chat.agent_id != spec.id) or current is None:
            log.info("chat_agent_switched", old=chat.agent_id, new=spec.id)
            chat = attrs.evolve(chat, agent_id=spec.id)
            await self.store.update_chat(chat.room_id, agent_id=spec.id)
            await self.mirror.write_chat(chat)
            current = spec
        single = len(registry.agents) == 1 and not registry.user_agents
        if (
            not configured
            and not single
            and not chat.flags.get("default_agent_notice")
            and await self.store.set_chat_flag(chat.room_id, "default_agent_notice")
        ):
            await self.notifier.notice(
                chat.room_id,
                "default_agent",
                txn_id=f"default-agent.{chat.room_id}",
                agent=current.label,
            )
        return current

    def workspace_of(self, chat: ChatRecord) -> AgentSpec:
        """The agent whose workspace holds the chat's files (no switch, no notice)."""
        return self.registry.get(chat.agent_id) or self.registry.for_user(chat.owner)[0]
