"""Background upkeep: WAL checkpoints, pruning, and the gauges the ops server shows."""

from __future__ import annotations

import sqlite3

import structlog
import trio

from surfaces.intake import LaneSupervisor
from surfaces.metrics import Metrics
from surfaces.state import Store

log = structlog.get_logger(__name__)

PRUNE_AFTER_S = 7 * 24 * 3600.0
PRUNE_EVERY_S = 6 * 3600.0
CHECKPOINT_EVERY_S = 2.0
GAUGES_EVERY_S = 5.0


async def maintain(store: Store) -> None:
    """Checkpoint the WAL every few seconds (commits on the event loop never fsync;
    see surfaces/state/_db.py) and prune finished inbox rows every few hours, so a bot
    that runs for months keeps a small database."""
    last_prune = trio.current_time()
    while True:
        await trio.sleep(CHECKPOINT_EVERY_S)
        try:
            await store.checkpoint()
            if trio.current_time() - last_prune >= PRUNE_EVERY_S:
                last_prune = trio.current_time()
                pruned = await store.prune_inbox(PRUNE_AFTER_S)
                log.info("state_pruned", inbox_rows=pruned)
        except sqlite3.Error as exc:  # e.g. disk full: the next round retries
            log.warning("state_maintenance_failed", error=repr(exc))


async def publish_gauges(metrics: Metrics, store: Store, lanes: LaneSupervisor) -> None:
    while True:
        metrics.room_queues_changed(rooms_active=lanes.active_lanes(), max_depth=lanes.max_depth())
        metrics.outbox_pending_changed(await store.outbox_count())
        await trio.sleep(GAUGES_EVERY_S)
