"""``!list``, ``!remove``: the files staged for the next turn."""

from __future__ import annotations

import attrs

from surfaces.i18n import Texts
from surfaces.state import Store

from ._invocation import Invocation


@attrs.define
class FileCommands:
    store: Store
    texts: Texts

    async def list(self, call: Invocation) -> None:
        files = await self.store.staged(call.chat.room_id, call.chat.owner)
        if not files:
            await call.reply("files_empty")
            return
        lines = [self.texts("files_header")]
        lines += [
            self.texts("files_line", n=i, name=f.name, size=f.size) for i, f in enumerate(files, 1)
        ]
        await call.reply.text("\n".join(lines))

    async def remove(self, call: Invocation) -> None:
        files = await self.store.staged(call.chat.room_id, call.chat.owner)
        arg = call.cmd.args.lower()
        if arg == "all":
            await self.store.unstage([f.id for f in files])
            await call.reply("removed_all", count=len(files))
            return
        if not (arg.isascii() and arg.isdigit()):  # "²".isdigit() is True, int() fails
            await call.reply("remove_usage")
            return
        n = int(arg)
        if not 1 <= n <= len(files):
            await call.reply("remove_bad_index", n=n, count=len(files))
            return
        await self.store.unstage([files[n - 1].id])
        await call.reply("removed_one", name=files[n - 1].name)
