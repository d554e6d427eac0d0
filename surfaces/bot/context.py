"""What every handler needs, in one object: config, state, clients and texts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from matrix_client import notice_content
from surfaces.bot.events import CHAT_EVENT, chat_content
from surfaces.i18n import t
from surfaces.state import PendingSend

if TYPE_CHECKING:
    from agent_client import AgentClient
    from matrix_client import MatrixClient
    from surfaces.bot.outbox import Outbox
    from surfaces.config import AgentRegistry, Config
    from surfaces.metrics import Metrics
    from surfaces.state import ChatRecord, Store


@attrs.define
class Bot:
    config: Config
    registry: AgentRegistry
    store: Store
    matrix: MatrixClient
    outbox: Outbox
    agents: AgentClient
    user_id: str
    metrics: Metrics | None = None

    @property
    def server_name(self) -> str:
        return self.user_id.split(":", 1)[1]

    @property
    def locale(self) -> str:
        return self.config.bot.locale

    def t(self, key: str, **fields: Any) -> str:
        return t(self.locale, key, **fields)

    async def notice(self, room_id: str, key: str, *, txn_id: str, **fields: Any) -> str | None:
        """A durable ``m.notice`` (exactly once per ``txn_id``, also across restarts)."""
        content = notice_content(self.t(key, **fields))
        return await self.outbox.send(PendingSend(room_id, txn_id, "m.room.message", content))

    async def write_chat_state(self, chat: ChatRecord) -> None:
        """Mirror a chat binding into its room (what reconciliation restores from)."""
        await self.matrix.put_state_event(
            chat.room_id,
            CHAT_EVENT,
            chat_content(
                owner=chat.owner,
                local_id=chat.local_id,
                agent_id=chat.agent_id,
                platform_chat_id=chat.platform_chat_id,
                name=chat.name,
                status=chat.status,
            ),
        )

    async def notice_text(self, room_id: str, text: str, *, txn_id: str) -> str | None:
        return await self.outbox.send(
            PendingSend(room_id, txn_id, "m.room.message", notice_content(text))
        )
