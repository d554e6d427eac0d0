"""Mirrors of the bot's bindings in Matrix room state (what reconciliation restores from).

Writing the state event is the only way a binding reaches Matrix; the codec (what the
content holds) is ``surfaces.core.binding``.
"""

from __future__ import annotations

import attrs

from matrix_client import MatrixClient
from surfaces.core import CHAT_EVENT, THREAD_EVENT, ThreadBinding
from surfaces.state import ChatRecord


@attrs.define
class BindingMirror:
    matrix: MatrixClient

    async def write_chat(self, chat: ChatRecord) -> None:
        """Write the chat's binding into its room (idempotent: a state PUT)."""
        await self.matrix.put_state_event(chat.room_id, CHAT_EVENT, chat.binding.to_content())

    async def write_thread(self, room_id: str, thread: ThreadBinding) -> None:
        """Write a thread's binding into its room's state (``state_key`` = its root)."""
        await self.matrix.put_state_event(
            room_id, THREAD_EVENT, thread.to_content(), state_key=thread.root
        )
