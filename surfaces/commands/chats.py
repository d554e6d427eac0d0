"""``!new``, ``!chats``, ``!rename``, ``!archive``, ``!clear``: the user's chats."""

from __future__ import annotations

import attrs
import structlog

from matrix_client import MatrixClient
from surfaces.core import ChatStatus
from surfaces.delivery import BindingMirror
from surfaces.i18n import Texts
from surfaces.state import Store
from surfaces.workspaces import ChatLimitError, Rooms, Threads

from ._invocation import MAX_NAME_CHARS, Invocation

log = structlog.get_logger(__name__)


@attrs.define
class ChatCommands:
    rooms: Rooms
    store: Store
    matrix: MatrixClient
    mirror: BindingMirror
    texts: Texts
    threads: Threads

    async def new(self, call: Invocation) -> None:
        name = call.cmd.args[:MAX_NAME_CHARS] or None
        try:
            new = await self.rooms.create_chat(call.chat.owner, name, key=call.item.event_id)
        except ChatLimitError as exc:
            await call.reply("chat_limit", limit=exc.limit)
            return
        await call.reply("chat_created", name=new.name, local_id=new.local_id)

    async def chats(self, call: Invocation) -> None:
        chats = await self.store.chats_of(call.chat.owner)
        if not chats:
            await call.reply("chats_empty")
            return
        lines = [self.texts("chats_header")]
        for c in chats:
            marker = "▶" if c.room_id == call.chat.room_id else "•"
            lines.append(self.texts("chats_line", marker=marker, local_id=c.local_id, name=c.name))
        await call.reply.text("\n".join(lines))

    async def rename(self, call: Invocation) -> None:
        name = call.cmd.args[:MAX_NAME_CHARS]
        if not name:
            await call.reply("rename_usage")
            return
        room_id = call.chat.room_id
        await self.matrix.put_state_event(room_id, "m.room.name", {"name": name})
        updated = await self.store.update_chat(room_id, name=name)
        if updated is not None:
            await self.mirror.write_chat(updated)
        await call.reply("renamed", name=name)

    async def archive(self, call: Invocation) -> None:
        chat = call.chat
        updated = await self.store.update_chat(chat.room_id, status=ChatStatus.ARCHIVED)
        user = await self.store.get_user(chat.owner)
        if user and user.space_id:
            await self.rooms.link_child(user.space_id, chat.room_id, linked=False)
        if updated is not None:
            await self.mirror.write_chat(updated)
        await call.reply("archived", local_id=chat.local_id)

    async def clear(self, call: Invocation) -> None:
        """A fresh agent context: rotate this room's platform chat id (in a thread
        that is its own conversation: the thread's)."""
        await self.rotate(call, "clear")
        await call.reply("context_reset")

    async def rotate(self, call: Invocation, purpose: str) -> str:
        """Give the command's conversation (the room, or its thread when that is a
        conversation of its own) a new platform chat id; → the new id. Idempotent on
        a re-run of the command: the id allocated for this event (kv
        ``{purpose}.{event}``) is reused. ``!clear``, ``!load`` and ``!restore`` use it."""
        chat = call.chat
        key = f"{purpose}.{call.item.event_id}"
        new_id = await self.store.get_value(key)
        if new_id is None:
            new_id = await self.store.allocate_platform_chat_id()
            await self.store.set_value(key, new_id)
        thread = call.item.thread
        if thread is not None and self.threads.own_context(thread):
            await self.threads.reset(chat, thread, new_id)
            return new_id
        updated = await self.store.update_chat(chat.room_id, platform_chat_id=new_id)
        if updated is not None:
            await self.mirror.write_chat(updated)
        log.info("chat_context_reset", old=chat.platform_chat_id, new=new_id, purpose=purpose)
        return new_id
