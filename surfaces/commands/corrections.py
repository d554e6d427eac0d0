"""What the user changes or takes back: edits, 🔁 (regenerate) and redactions.

- **Edit** of a message still queued: the queued item takes the new text (no turn ran
  yet). Of the message of the room's latest turn (running or finished): the running
  turn is stopped at once (this runs on the control lane), and a re-run is handed to
  the room lane, which answers the new text *into the same reply* (its messages are
  edited in place; the client keeps the earlier version in the edit history). Of an
  older message: ignored — a later turn already built on it, and re-answering it
  out of order would confuse more than it helps. Whether a turn is the latest is
  decided when the edit arrives.
- **🔁** on the latest reply (room lane): the same messages and files as a new
  attempt of that turn, into the same reply.
- **Redaction** of a queued message: withdrawn from the queue (it never reaches the
  agent); of a message of the running turn: the turn stops.
"""

from __future__ import annotations

import attrs
import structlog

from surfaces.core import ItemKind, ItemStatus
from surfaces.intake import RoomQueue, room_item
from surfaces.state import ChatRecord, InboxItem, Store, TurnMessage, TurnRecord
from surfaces.turns import ActiveTurns, TurnRequest, TurnRunner
from surfaces.workspaces import Threads

log = structlog.get_logger(__name__)

#: Queued kinds whose text an edit replaces in place (field of the payload).
_QUEUED_TEXT = {ItemKind.TEXT: "body", ItemKind.FILE: "caption"}


@attrs.define
class Corrections:
    store: Store
    active: ActiveTurns
    queue: RoomQueue
    runner: TurnRunner
    threads: Threads

    # ---- edits (control lane) ----------------------------------------------

    async def edit(self, item: InboxItem, chat: ChatRecord) -> None:
        target, body = item.payload["target"], item.payload.get("body", "")
        queued = await self.store.inbox_item(target)
        if queued is not None and queued.sender != item.sender:
            return  # only the author's edits count (the spec: same sender)
        if (
            queued is not None
            and queued.kind in _QUEUED_TEXT
            and queued.status is ItemStatus.PENDING
            and await self.store.replace_queued(
                target, {**queued.payload, _QUEUED_TEXT[queued.kind]: body}
            )
        ):
            log.info("edit_applied_to_queued", target=target)
            return
        if self.active.stop_concerning(chat.room_id, target):
            log.info("turn_stopped_by_edit", target=target)
        elif queued is None or queued.status is not ItemStatus.PENDING:
            turn = await self.store.turn_of_message(target)
            if turn is None or not await self.store.is_latest_turn(turn):
                log.info("edit_ignored", target=target, reason="not the latest turn")
                return
        payload = {"target": target, "body": body}
        await self.queue.hand_off(item, room_item(item, "rerun", ItemKind.RERUN, payload))

    # ---- re-runs (room lane) -------------------------------------------------

    async def rerun(self, item: InboxItem, chat: ChatRecord) -> int:
        """Answer an edited message again, into the reply of its turn."""
        target = item.payload["target"]
        record = await self._record(await self.store.turn_of_message(target))
        if record is None:
            log.info("rerun_without_turn", target=target)
            return 0
        body = item.payload.get("body", "")
        messages = tuple(
            TurnMessage(m.event_id, body, m.reply_to) if m.event_id == target else m
            for m in record.messages
        )
        return await self._run(item, chat, attrs.evolve(record, messages=messages))

    async def regenerate(self, item: InboxItem, chat: ChatRecord) -> int:
        """🔁 on a reply: the latest turn again, into the same reply; else ignored."""
        turn = await self.store.turn_of_reply(item.payload["target"])
        if turn is None or not await self.store.is_latest_turn(turn):
            log.info("regenerate_ignored", target=item.payload["target"])
            return 0
        record = await self._record(turn)
        return 0 if record is None else await self._run(item, chat, record)

    async def _record(self, turn: str | None) -> TurnRecord | None:
        return None if turn is None else await self.store.turn_record(turn)

    async def _run(self, item: InboxItem, chat: ChatRecord, record: TurnRecord) -> int:
        platform_id = await self.threads.platform_chat_id(chat, record.thread_root)
        return await self.runner.run(TurnRequest(item, chat, platform_id, rerun=record))

    # ---- redactions (control lane) ---------------------------------------------

    async def redact(self, item: InboxItem, chat: ChatRecord) -> None:
        target = item.payload["target"]
        # Withdraw first (one atomic step against a turn taking the item up), then
        # look at the running turn: a turn that took it is registered by then.
        if await self.queue.withdraw(target):
            return
        if self.active.stop_concerning(chat.room_id, target):
            log.info("turn_stopped_by_redaction", target=target)
