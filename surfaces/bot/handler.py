"""What the bot does with each admitted inbox item (the lanes call this)."""

from __future__ import annotations

import attrs
import structlog

from matrix_client import MatrixError
from surfaces.bot.commands import Commands, parse_command
from surfaces.bot.context import Bot
from surfaces.bot.intake import MAX_BODY_CHARS
from surfaces.bot.media import IncomingFiles
from surfaces.bot.workspaces import Workspaces
from surfaces.state import InboxItem
from surfaces.turns.runner import TurnRunner

log = structlog.get_logger(__name__)


@attrs.define
class EventHandler:
    bot: Bot
    workspaces: Workspaces
    commands: Commands
    runner: TurnRunner
    files: IncomingFiles

    async def __call__(self, item: InboxItem) -> bool:
        """Act on one item; True if the item was already marked finished (a turn)."""
        if item.kind == "invite":
            await self._invite(item)
        elif item.kind == "busy":
            await self.bot.notice(
                item.room_id, "busy", txn_id=item.event_id, n=item.payload.get("n", 0)
            )
        else:
            return await self._room_event(item)
        return False

    async def _invite(self, item: InboxItem) -> None:
        try:
            await self.bot.matrix.join(item.room_id)
        except MatrixError as exc:
            # The invite was withdrawn or the room is gone: nothing to do.
            log.warning("invite_join_failed", status=exc.status, errcode=exc.errcode)
            return
        log.info("invite_accepted", inviter=item.sender)
        await self.workspaces.on_dm_contact(
            item.sender,
            item.room_id,
            key=item.event_id,
            encrypted=bool(item.payload.get("encrypted")),
        )

    async def _room_event(self, item: InboxItem) -> bool:
        bot = self.bot
        chat = await bot.store.get_chat(item.room_id)
        if chat is None:
            await self._dm_event(item)
            return False
        if item.sender != chat.owner:
            if await bot.store.set_chat_flag(chat.room_id, f"not_owner:{item.sender}"):
                await bot.notice(
                    chat.room_id, "not_owner", txn_id=f"{item.event_id}.r", owner=chat.owner
                )
            return False
        if item.kind == "encrypted":
            return False  # our rooms are unencrypted; never loop on what we cannot read
        body = item.payload.get("body", "")
        cmd = parse_command(body) if item.kind == "command" else None
        if chat.status == "archived" and (cmd is None or cmd.name not in ("new", "chats", "help")):
            await bot.notice(chat.room_id, "archived_room", txn_id=f"{item.event_id}.r")
            return False
        if item.kind == "file":
            await self.files.stage(item, chat)
        elif cmd is not None:
            await self.commands.handle(item, chat, cmd)
        else:
            if item.payload.get("truncated"):
                await bot.notice(
                    chat.room_id,
                    "message_truncated",
                    txn_id=f"{item.event_id}.t",
                    limit=MAX_BODY_CHARS,
                )
            await self.runner.run(item, chat, body)
            return True
        return False

    async def _dm_event(self, item: InboxItem) -> None:
        """A message in a room that is not a working chat: the user's DM (or a
        Space). Provisioned users are re-invited; ``!new`` creates a chat."""
        user = await self.bot.store.get_user(item.sender)
        if user is not None and user.space_id == item.room_id:
            return
        if item.kind == "file":
            return
        cmd = parse_command(item.payload.get("body", "")) if item.kind == "command" else None
        await self.workspaces.on_dm_contact(
            item.sender,
            item.room_id,
            key=item.event_id,
            encrypted=item.kind == "encrypted",
            new_chat=cmd is not None and cmd.name == "new",
            new_chat_name=(cmd.args[:100] or None) if cmd is not None else None,
        )
