"""Threads of a working room: by default each is its own agent conversation.

A thread gets its own platform chat id on its first turn, bound durably in two places,
as chats are: the ``threads`` table, and a state event in the room
(``org.lambda.surfaces.thread``, ``state_key`` = the thread root) that reconciliation
restores after a lost database with the room's chat — trusting only events the bot
itself sent (``surfaces.workspaces.trust``), the rule chats are restored by. With
``bot.thread_context: room`` a thread shares the room's conversation (answered in the
thread all the same).
"""

from __future__ import annotations

import enum

import attrs
import structlog

from matrix_client import MatrixError, TransportError
from surfaces.core import ThreadBinding
from surfaces.delivery import BindingMirror
from surfaces.state import ChatRecord, Store

log = structlog.get_logger(__name__)


class ThreadContext(enum.StrEnum):
    THREAD = "thread"  # a thread is its own conversation (own platform chat id)
    ROOM = "room"  # threads share the room's conversation


@attrs.define
class Threads:
    store: Store
    mirror: BindingMirror
    context: ThreadContext = ThreadContext.THREAD

    def own_context(self, root: str | None) -> bool:
        """Whether messages under ``root`` are a conversation of their own."""
        return root is not None and self.context is ThreadContext.THREAD

    async def platform_chat_id(self, chat: ChatRecord, root: str | None) -> str:
        """The agent conversation a message in ``root`` (None: the main timeline)
        belongs to; a thread's first turn binds it."""
        if not self.own_context(root):
            return chat.platform_chat_id
        assert root is not None
        thread = await self.store.bind_thread(chat.room_id, root)
        if not thread.mirrored:
            await self._mirror(chat.room_id, ThreadBinding(root, thread.platform_chat_id))
        return thread.platform_chat_id

    async def reset(self, chat: ChatRecord, root: str, new_id: str) -> None:
        """A fresh conversation for the thread (``!clear`` in it)."""
        await self.store.put_thread(chat.room_id, root, new_id, mirrored=False)
        await self._mirror(chat.room_id, ThreadBinding(root, new_id))
        log.info("thread_context_reset", thread=root, new=new_id)

    async def _mirror(self, room_id: str, binding: ThreadBinding) -> None:
        try:
            await self.mirror.write_thread(room_id, binding)
        except (MatrixError, TransportError) as exc:
            # The table still holds it; the next turn in the thread tries again.
            log.warning("thread_mirror_failed", thread=binding.root, error=repr(exc))
            return
        await self.store.set_thread_mirrored(room_id, binding.root, binding.platform_chat_id)
