"""The sync task: long-poll ``/sync``, classify, admit durably, dispatch to lanes.

Order of operations is the whole point (docs/architecture.md, "Exactly-once"): the
token is committed in the same SQLite transaction as the events it covers, so a crash
before the commit replays the batch (the inbox ignores event ids it has), and a crash
after it loses nothing (the events wait in the inbox). Only then is the next ``/sync``
made. The task never waits on a room: dispatching is a non-blocking nudge.

With encryption the same transaction carries the batch's crypto part (room keys above
all: the server deletes to-device events once the token passes them) and its
encrypted events are decrypted before they are classified (``app/decryption.py``).
"""

from __future__ import annotations

import attrs
import structlog
import trio

from matrix_client import MatrixClient, MatrixError, SyncBatch, UnknownTokenError
from surfaces.app.decryption import decrypting_intake
from surfaces.core import FatalError, ItemKind, ItemStatus, LaneKind
from surfaces.delivery import ReadReceipts
from surfaces.intake import (
    Backpressure,
    Budgets,
    IntakePolicy,
    LaneSupervisor,
    classify,
    gapped_rooms,
)
from surfaces.metrics import Metrics
from surfaces.ops import HealthState
from surfaces.session import Crypto
from surfaces.state import InboxItem, Store

log = structlog.get_logger(__name__)

MAX_ERROR_BACKOFF_S = 60.0
#: The user's messages, which get a read receipt once admitted (refused ones too: the
#: bot has seen them, and its busy notice says the rest).
_RECEIPTED = frozenset(
    {ItemKind.TEXT, ItemKind.COMMAND, ItemKind.FILE, ItemKind.EDIT, ItemKind.UNSUPPORTED}
)


@attrs.define
class SyncTask:
    matrix: MatrixClient
    store: Store
    lanes: LaneSupervisor
    policy: IntakePolicy
    backpressure: Backpressure
    metrics: Metrics
    health: HealthState
    filter_id: str
    long_poll_s: float
    budgets: Budgets | None = None  # per-user token buckets (none: unlimited)
    crypto: Crypto | None = None
    receipts: ReadReceipts | None = None

    async def run(self) -> None:
        syncer = self.matrix.syncer(
            since=await self.store.get_value(Store.SINCE_KEY),
            filter_id=self.filter_id,
            long_poll_ms=int(self.long_poll_s * 1000),
            on_failure=self.metrics.sync_failed,  # every attempt, retried ones too
        )
        self.health.sync_loop_started()
        failures = 0
        while True:
            try:
                batch = await syncer.next()
            except UnknownTokenError as exc:
                raise FatalError(
                    "the homeserver rejected the access token (M_UNKNOWN_TOKEN); "
                    "log in again or set a new MATRIX_ACCESS_TOKEN"
                ) from exc
            except MatrixError as exc:
                failures += 1  # counted in the metrics by the syncer's on_failure
                log.error("matrix_sync_failed", status=exc.status, errcode=exc.errcode)
                await trio.sleep(min(MAX_ERROR_BACKOFF_S, 2.0**failures))
                continue
            failures = 0
            # A limited timeline (more new events than the filter's limit) means
            # the homeserver skipped messages: like a full queue, the user is told.
            limited = gapped_rooms(batch)
            admitted = await self._admit(batch, limited)
            now = trio.current_time()
            self.health.sync_succeeded(now)
            self.metrics.sync_succeeded(now)
            if not self.health.ready:
                self.health.mark_ready()  # ready: logged in, reconciled, first sync admitted
            if admitted:
                self.metrics.events_admitted(len(admitted))
            for item in admitted:
                if self.receipts is not None and item.kind in _RECEIPTED:
                    self.receipts.admitted(item.room_id, item.event_id)
                if item.status is ItemStatus.PENDING:
                    if item.lane.kind is LaneKind.ROOM:
                        self.metrics.room_event_enqueued(self.lanes.pending(item.lane))
                    self.lanes.dispatch(item)
            if admitted:
                # Let the lanes just woken start their turns (up to their first
                # wait, the agent connect) before this task spends a few hundred
                # microseconds issuing the next long-poll.
                await trio.lowlevel.checkpoint()

    async def _admit(self, batch: SyncBatch, limited: set[str]) -> list[InboxItem]:
        """Classify (decrypting first, with encryption) and admit with the token."""
        crypto = self.crypto
        if crypto is None:
            items = self._limit(classify(batch, self.policy), limited)
            return await self.store.admit(batch.next_batch, items)
        # The whole intake under the machine's lock: what the batch does to it (room
        # keys above all) is committed with the token and nothing of it before.
        async with crypto.transaction() as take:
            intake = await decrypting_intake(batch, self.policy, crypto, self.store)
            items = self._limit(intake.items, limited)
            admitted = await self.store.admit(
                batch.next_batch,
                items,
                crypto=take(),
                waiting=intake.waiting,
                resolved=intake.resolved,
            )
        crypto.wake()  # key requests, answers to key requests, uploads
        return admitted

    def _limit(self, items: list[InboxItem], limited: set[str]) -> list[InboxItem]:
        """Queue limits per room, then the per-user budgets (over them: rejected)."""
        items = self.backpressure.apply(items, limited)
        if self.budgets is not None:
            items = self.budgets.apply(items, trio.current_time())
        return items
