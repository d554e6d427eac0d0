"""``!list``, ``!remove``: the files staged for the next turn.

``!remove`` deletes the file from the agent's ``incoming/`` as well (the agent never
got it, so nothing can need it), and is keyed by its event like ``!clear``: which
files it removes is recorded before anything is removed, so a re-run after a
crash removes the same files (and says the same thing), never the next ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import structlog
import trio

from surfaces.files import delete_incoming
from surfaces.i18n import Texts
from surfaces.state import StagedFile, Store

from ._invocation import Invocation

log = structlog.get_logger(__name__)


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
        key = f"remove.{call.item.event_id}"
        recorded = await self.store.get_value(key)
        if recorded is None:
            choice = await self._choose(call)
            if choice is None:
                return  # a usage or index notice was sent: nothing to remember
            recorded = json.dumps(choice)
            await self.store.set_value(key, recorded)
        choice = json.loads(recorded)
        removed = await self.store.unstage(choice["ids"])
        for staged in removed:
            await _delete(staged)
        if choice["all"]:
            await call.reply("removed_all", count=len(choice["ids"]))
        else:
            await call.reply("removed_one", name=choice["names"][0])

    async def _choose(self, call: Invocation) -> dict | None:
        """Which files the command means, now: ``{"all", "ids", "names"}``."""
        files = await self.store.staged(call.chat.room_id, call.chat.owner)
        arg = call.cmd.args.lower()
        if arg == "all":
            return {"all": True, "ids": [f.id for f in files], "names": []}
        if not (arg.isascii() and arg.isdigit()):  # "²".isdigit() is True, int() fails
            await call.reply("remove_usage")
            return None
        n = int(arg)
        if not 1 <= n <= len(files):
            await call.reply("remove_bad_index", n=n, count=len(files))
            return None
        chosen = files[n - 1]
        return {"all": False, "ids": [chosen.id], "names": [chosen.name]}


async def _delete(staged: StagedFile) -> None:
    if staged.workspace is None:
        return  # staged before workspaces were recorded: left to the agent
    deleted = await trio.to_thread.run_sync(
        delete_incoming, Path(staged.workspace), staged.rel_path
    )
    log.info("staged_file_deleted", rel_path=staged.rel_path, deleted=deleted)
