"""The room queue's other doors: items one lane hands to another, and items taken
back out of it.

Anything that reaches the agent runs on the room's lane, so turns of one room never
overlap (one agent connection per platform chat id at a time). A control-lane item
that turns out to need a turn — ``!yes`` whose question was already answered, an
edit that re-runs the latest turn — is *handed off*: a new inbox item on the room
lane, admitted in the same transaction that finishes the control item (a crash on
either side of it neither loses the turn nor runs it twice), through the same
backpressure as a message from ``/sync``. A redacted message that no turn took up yet
is withdrawn from the queue.
"""

from __future__ import annotations

from typing import Any

import attrs
import structlog

from surfaces.core import ItemKind, ItemStatus, Lane
from surfaces.intake.backpressure import Backpressure
from surfaces.intake.lanes import LaneSupervisor
from surfaces.state import InboxItem, Store

log = structlog.get_logger(__name__)


def room_item(source: InboxItem, suffix: str, kind: ItemKind, payload: dict[str, Any]) -> InboxItem:
    """The room-lane item ``source`` hands off (its id derived from the source's, so a
    re-run of the source hands off the same item). It came as its source came: a
    decrypted source's hand-off is marked so too (``payload["e2ee"]``)."""
    if source.payload.get("e2ee"):
        payload = {**payload, "e2ee": True}
    return InboxItem(
        event_id=f"{source.event_id}.{suffix}",
        lane=Lane.room(source.room_id),
        room_id=source.room_id,
        sender=source.sender,
        kind=kind,
        payload=payload,
    )


@attrs.define
class RoomQueue:
    store: Store
    lanes: LaneSupervisor
    backpressure: Backpressure

    async def hand_off(self, source: InboxItem, item: InboxItem) -> bool:
        """Queue ``item`` (on the room lane) in place of ``source``, which is marked
        done in the same transaction. False when the queue was full (the item is
        recorded as rejected and the room told once, as for any message)."""
        items = self.backpressure.apply([item])
        admitted = await self.store.hand_off(source.event_id, items)
        queued = False
        for new in admitted:
            if new.status is ItemStatus.PENDING:
                self.lanes.dispatch(new)
                queued = queued or new.event_id == item.event_id
        if not admitted:
            # Handed off before a crash (the source ran again): make sure it runs.
            queued = await self.store.inbox_status(item.event_id) is ItemStatus.PENDING
            if queued:
                self.lanes.dispatch(item)
        log.info("item_handed_off", to=item.event_id, kind=item.kind, queued=queued)
        return queued

    async def withdraw(self, event_id: str) -> bool:
        """Take a queued message out of its room's queue before a turn takes it up
        (True), or leave it (False: unknown, finished, or already running)."""
        lane = await self.store.withdraw(event_id)
        if lane is None:
            return False
        self.lanes.forget(lane)
        log.info("item_withdrawn", withdrawn=event_id)
        return True
