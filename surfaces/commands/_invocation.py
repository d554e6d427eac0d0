"""One command being handled: the item, its chat, the parsed command, and the reply."""

from __future__ import annotations

from typing import Any

import attrs

from surfaces.delivery import Notifier, answer_relation
from surfaces.intake import Command
from surfaces.state import ChatRecord, InboxItem

#: A name for a chat (``!new``, ``!rename``) is cut to this many characters.
MAX_NAME_CHARS = 100


@attrs.frozen
class Reply:
    """Replies to one command as a durable notice (exactly once per command: the txn
    id is the command's event id, so a re-run after a crash sends it once), in the
    command's thread when it was sent in one."""

    notifier: Notifier
    item: InboxItem

    @property
    def txn_id(self) -> str:
        return f"{self.item.event_id}.r"

    async def __call__(self, key: str, **fields: Any) -> None:
        await self.notifier.notice(
            self.item.room_id,
            key,
            txn_id=self.txn_id,
            relation=answer_relation(self.item),
            **fields,
        )

    async def text(self, text: str) -> None:
        await self.notifier.notice_text(
            self.item.room_id, text, txn_id=self.txn_id, relation=answer_relation(self.item)
        )


@attrs.frozen
class Invocation:
    item: InboxItem
    chat: ChatRecord
    cmd: Command
    reply: Reply
