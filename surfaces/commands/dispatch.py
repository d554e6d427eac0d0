"""Which command runs which handler; anything else gets a hint to ``!help``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs

from surfaces.delivery import Notifier
from surfaces.intake import Command, CommandName
from surfaces.state import ChatRecord, InboxItem

from ._invocation import Invocation, Reply
from .chats import ChatCommands
from .context import ContextCommands
from .files import FileCommands
from .info import InfoCommands
from .turn_control import TurnControl
from .usage import UsageCommands

Handler = Callable[[Invocation], Awaitable[None]]


@attrs.define
class Commands:
    notifier: Notifier
    chats: ChatCommands
    files: FileCommands
    control: TurnControl
    info: InfoCommands
    usage: UsageCommands
    context: ContextCommands
    _table: dict[str, Handler] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        c, f, t, i = self.chats, self.files, self.control, self.info
        self._table = {
            CommandName.NEW: c.new,
            CommandName.CHATS: c.chats,
            CommandName.RENAME: c.rename,
            CommandName.ARCHIVE: c.archive,
            CommandName.CLEAR: c.clear,
            CommandName.STOP: t.stop,
            CommandName.YES: t.yes,
            CommandName.NO: t.no,
            CommandName.LIST: f.list,
            CommandName.REMOVE: f.remove,
            CommandName.STATUS: i.status,
            CommandName.HELP: i.help,
            CommandName.SETTINGS: i.settings,
            CommandName.USAGE: self.usage.usage,
            CommandName.CONTEXT: self.context.context,
            CommandName.SAVE: self.context.save,
            CommandName.SNAPSHOTS: self.context.snapshots,
            CommandName.LOAD: self.context.load,
            CommandName.RESTORE: self.context.restore,
            CommandName.FORGET: self.context.forget,
        }
        assert set(self._table) == set(CommandName), "every command has a handler"

    def reply_to(self, item: InboxItem) -> Reply:
        return Reply(self.notifier, item)

    async def handle(self, item: InboxItem, chat: ChatRecord, cmd: Command) -> None:
        reply = self.reply_to(item)
        handler = self._table.get(cmd.name)
        if handler is None:
            await reply("unknown_command", command=cmd.raw[:40])
            return
        await handler(Invocation(item, chat, cmd, reply))
