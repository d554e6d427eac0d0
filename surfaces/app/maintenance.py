"""Background upkeep: WAL checkpoints, pruning, retention of incoming files, and the
gauges the ops server shows."""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path

import structlog
import trio

from surfaces.files import delete_incoming
from surfaces.intake import LaneSupervisor
from surfaces.metrics import Metrics
from surfaces.state import TRANSCRIPT_PRUNE_BATCH, Store

log = structlog.get_logger(__name__)

PRUNE_AFTER_S = 7 * 24 * 3600.0
PRUNE_EVERY_S = 6 * 3600.0
CHECKPOINT_EVERY_S = 2.0
GAUGES_EVERY_S = 5.0
SWEEP_BATCH = 500
SWEEP_MAX_ROUNDS = 20


async def maintain(
    store: Store,
    *,
    incoming_retention_s: float | None = None,
    transcript_retention_s: float | None = None,
) -> None:
    """Checkpoint the WAL every few seconds (commits on the event loop never fsync;
    see surfaces/state/_db.py), prune finished inbox rows every few hours, so a bot
    that runs for months keeps a small database, and delete the files of
    ``incoming/`` whose retention ran out (:func:`sweep_incoming`; first soon after
    the start, then with the pruning) and transcript entries older than
    ``transcript_retention_s`` (``context.retention_days``; on the same schedule)."""
    last_prune = trio.current_time()
    last_sweep = -math.inf
    last_transcripts = -math.inf
    while True:
        await trio.sleep(CHECKPOINT_EVERY_S)
        try:
            await store.checkpoint()
            if trio.current_time() - last_prune >= PRUNE_EVERY_S:
                last_prune = trio.current_time()
                pruned = await store.prune_inbox(PRUNE_AFTER_S)
                log.info("state_pruned", inbox_rows=pruned)
            if incoming_retention_s and trio.current_time() - last_sweep >= PRUNE_EVERY_S:
                last_sweep = trio.current_time()
                await sweep_incoming(store, incoming_retention_s)
            if transcript_retention_s and trio.current_time() - last_transcripts >= PRUNE_EVERY_S:
                last_transcripts = trio.current_time()
                await prune_transcripts(store, transcript_retention_s)
        except sqlite3.Error as exc:  # e.g. disk full: the next round retries
            log.warning("state_maintenance_failed", error=repr(exc))


async def sweep_incoming(store: Store, retention_s: float, *, now: float | None = None) -> int:
    """Delete the files a turn carried to the agent more than ``retention_s`` ago.

    The retention rule (docs/configuration.md, ``bot.incoming_retention_days``): a
    file the user takes off the list (``!remove``) is deleted at once — the agent
    never saw it; a file a turn carried to the agent stays that long, because the
    agent may come back to it ("the PDF I sent yesterday"); a file still waiting for
    a turn is never deleted. Deletion goes through a verified ``incoming/`` fd and
    never leaves it. Bounded work per call: at most ``SWEEP_MAX_ROUNDS`` batches."""
    swept = 0
    for _ in range(SWEEP_MAX_ROUNDS):
        cutoff = (time.time() if now is None else now) - retention_s
        expired = await store.expired_files(cutoff, limit=SWEEP_BATCH)
        for f in expired:
            await trio.to_thread.run_sync(delete_incoming, Path(f.workspace), f.rel_path)
        await store.forget_files([f.id for f in expired])
        swept += len(expired)
        if len(expired) < SWEEP_BATCH:
            break
    if swept:
        log.info("incoming_files_expired", files=swept)
    return swept


async def prune_transcripts(store: Store, retention_s: float, *, now: float | None = None) -> int:
    """Delete transcript entries older than ``retention_s``: bounded work per call
    (``SWEEP_MAX_ROUNDS`` batches); what is left waits for the next round."""
    cutoff = (time.time() if now is None else now) - retention_s
    pruned = 0
    for _ in range(SWEEP_MAX_ROUNDS):
        n = await store.prune_transcripts(cutoff)
        pruned += n
        if n < TRANSCRIPT_PRUNE_BATCH:
            break
    if pruned:
        log.info("transcripts_pruned", entries=pruned)
    return pruned


async def publish_gauges(metrics: Metrics, store: Store, lanes: LaneSupervisor) -> None:
    while True:
        metrics.room_queues_changed(rooms_active=lanes.active_lanes(), max_depth=lanes.max_depth())
        metrics.outbox_pending_changed(await store.outbox_count())
        await trio.sleep(GAUGES_EVERY_S)
