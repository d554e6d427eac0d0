"""Backpressure: how many prompts a room may queue, and what happens past that.

Policy: **merge, then refuse with a notice**. Messages that wait behind a running
turn are merged into the next turn (``surfaces.turns.prompt``: up to
``merge_max`` messages per turn, in order, each delimited), so a burst costs a few
turns and loses nothing. A room may hold ``room_queue_size`` waiting turns' worth of
prompts (``room_queue_size × merge_max`` messages, 50 by default) plus the running
one, counted from the lane's admitted-but-unfinished items, so nothing per message is
kept in memory. Past that, prompts are admitted with status ``rejected`` (durably, so
the decision survives a restart and the event is never answered later) and the room
gets one "busy" notice per busy period (a period ends when the room's queue is empty
at the next sync). A room whose timeline came back ``limited`` (the homeserver
dropped events from the batch) is told as well, so those skipped messages are not
lost silently either. Commands are not subject to the limit; what a control-lane
item hands to the room lane (an answer without a question, an edit's re-run) is
(``surfaces.intake.queue``).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import structlog

from surfaces.core import ItemKind, ItemStatus, Lane, LaneKind
from surfaces.intake.lanes import LaneSupervisor
from surfaces.metrics import Metrics
from surfaces.state import InboxItem

log = structlog.get_logger(__name__)


@attrs.define
class Backpressure:
    lanes: LaneSupervisor
    queue_size: int
    metrics: Metrics
    merge_max: int = 1
    _busy_notified: set[Lane] = attrs.field(factory=set)

    def apply(
        self, items: Iterable[InboxItem], limited: Iterable[str] = frozenset()
    ) -> list[InboxItem]:
        """The items to admit: over-limit prompts marked rejected, busy notices added."""
        limit = self.queue_size * self.merge_max + 1  # waiting prompts + the running one
        gapped = set(limited)
        depth: dict[Lane, int] = {}
        out: list[InboxItem] = []
        for item in items:
            lane = item.lane
            if lane.kind is not LaneKind.ROOM:
                out.append(item)
                continue
            if lane not in depth:
                depth[lane] = self.lanes.pending(lane)
                if depth[lane] == 0:
                    self._busy_notified.discard(lane)
                if item.room_id in gapped:
                    log.warning("room_timeline_gap", room_id=item.room_id)
                    out.extend(self._busy_notice(item, depth[lane]))
            if item.kind.prompt and depth[lane] >= limit:
                out.append(attrs.evolve(item, status=ItemStatus.REJECTED))
                self.metrics.room_queue_rejected()
                log.info("room_queue_full", room_id=item.room_id, depth=depth[lane])
                out.extend(self._busy_notice(item, depth[lane]))
                continue
            depth[lane] += 1
            out.append(item)
        return out

    def _busy_notice(self, item: InboxItem, depth: int) -> list[InboxItem]:
        """The one "busy" notice of this busy period (none if already sent)."""
        if item.lane in self._busy_notified:
            return []
        self._busy_notified.add(item.lane)
        return [
            InboxItem(
                event_id=f"busy:{item.event_id}",
                lane=Lane.control(item.room_id),
                room_id=item.room_id,
                sender=item.sender,
                kind=ItemKind.BUSY,
                payload={"n": depth},
            )
        ]
