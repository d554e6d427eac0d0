"""Notices: the bot's own short messages (``m.notice``) to users, exactly once each.

Every notice goes through the outbox with a transaction id the caller derives from the
event it answers (``{event}.r`` for a command's reply, …), so a re-run after a crash
sends it once. Texts come from the catalogue in the bot's locale.
"""

from __future__ import annotations

from typing import Any

import attrs

from matrix_client import notice_content
from surfaces.core import thread_relation
from surfaces.delivery.outbox import Outbox
from surfaces.i18n import Texts
from surfaces.state import InboxItem, PendingSend


def answer_relation(item: InboxItem) -> dict | None:
    """Where an answer to ``item`` goes: into its thread (None: the main timeline)."""
    root = item.thread
    return thread_relation(root, item.event_id) if root else None


@attrs.define
class Notifier:
    outbox: Outbox
    texts: Texts

    async def notice(
        self, room_id: str, key: str, *, txn_id: str, relation: dict | None = None, **fields: Any
    ) -> str | None:
        """A durable ``m.notice`` from the catalogue (exactly once per ``txn_id``);
        ``relation``: its ``m.relates_to`` (the thread it answers in)."""
        text = self.texts(key, **fields)
        return await self.notice_text(room_id, text, txn_id=txn_id, relation=relation)

    async def notice_text(
        self, room_id: str, text: str, *, txn_id: str, relation: dict | None = None
    ) -> str | None:
        """A durable ``m.notice`` with this text (exactly once per ``txn_id``)."""
        return await self.outbox.send(self.pending(room_id, text, txn_id=txn_id, relation=relation))

    def pending(
        self, room_id: str, text: str, *, txn_id: str, relation: dict | None = None
    ) -> PendingSend:
        """The notice as a send to commit together with other changes."""
        content = notice_content(text)
        if relation is not None:
            content["m.relates_to"] = relation
        return PendingSend(room_id, txn_id, "m.room.message", content)
