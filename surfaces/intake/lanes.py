"""The room supervisor: one worker task per active lane, reading the durable inbox.

A *lane* (``surfaces.core.Lane``) is a key whose items must be handled one at a
time, in order: a room, a room's control commands (so ``!stop`` never waits behind
the turn it stops) or a user's invites. Lanes run concurrently.

The queue of a lane is the inbox table itself, not memory: the sync task admits
an item durably and *nudges* the lane (a non-blocking send on a channel of size
one), so the sync task never waits on a room and memory stays bounded whatever
the backlog. A worker with nothing to do for ``idle_s`` exits; the next nudge
starts a new one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

from surfaces.core import FatalError, ItemStatus, Lane
from surfaces.state import Claim, InboxItem, Store

log = structlog.get_logger(__name__)

#: Handles one item; returns how many inbox items it already marked finished (a turn
#: does so atomically with its final sends, for every message merged into it), so
#: the lane neither finishes the item again nor counts merged items as still queued.
#: 0 (or None): the lane marks the item done.
Handler = Callable[[InboxItem], Awaitable[int | None]]


@attrs.define
class _Worker:
    lane: Lane
    nudge_send: trio.MemorySendChannel[None]
    nudge_recv: trio.MemoryReceiveChannel[None]
    cancel_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    busy: bool = False


#: Tells the user about an item that was given up on (a poisoned event).
PoisonNotice = Callable[[InboxItem], Awaitable[None]]


@attrs.define
class LaneSupervisor:
    """Starts, nudges and stops lane workers.

    Run it with ``await nursery.start(supervisor.run, handler, on_poison)``: like a
    server's ``serve(handler)``, the handler is given when the supervisor runs, so the
    parts the handler uses may themselves ask the supervisor about queue depths.
    """

    store: Store
    max_attempts: int = 3
    max_starts: int = 20
    idle_s: float = 60.0
    retry_base_s: float = 1.0
    fatal: tuple[type[BaseException], ...] = (FatalError,)
    _handler: Handler | None = attrs.field(default=None, init=False)
    _on_poison: PoisonNotice | None = attrs.field(default=None, init=False)
    _workers: dict[Lane, _Worker] = attrs.field(factory=dict)
    _pending: dict[Lane, int] = attrs.field(factory=dict)
    _nursery: trio.Nursery | None = None
    _closing: bool = False
    _idle: trio.Event = attrs.field(factory=trio.Event)

    # ---- introspection (metrics, !status, backpressure) ------------------

    def pending(self, lane: Lane) -> int:
        """Items admitted for ``lane`` and not yet finished (the running one included)."""
        return self._pending.get(lane, 0)

    def active_lanes(self) -> int:
        return len(self._workers)

    def max_depth(self) -> int:
        return max(self._pending.values(), default=0)

    def forget(self, lane: Lane, n: int = 1) -> None:
        """``n`` items of ``lane`` were finished by another item's handler (merged
        into its turn) or withdrawn (redacted while queued): they no longer count."""
        if lane in self._pending:
            self._pending[lane] = max(0, self._pending[lane] - n)

    # ---- intake ----------------------------------------------------------

    def dispatch(self, item: InboxItem) -> None:
        """Make ``item`` (already admitted to the inbox) run on its lane. Never blocks."""
        self._pending[item.lane] = self._pending.get(item.lane, 0) + 1
        self._wake(item.lane)

    def _wake(self, lane: Lane) -> None:
        if self._closing or self._nursery is None:
            return
        worker = self._workers.get(lane)
        if worker is None:
            send, recv = trio.open_memory_channel[None](1)
            worker = _Worker(lane, send, recv)
            self._workers[lane] = worker
            self._idle = trio.Event()
            self._nursery.start_soon(self._run_worker, worker, name=f"lane {lane}")
        # Already nudged? One wake-up covers any number of new items.
        with contextlib.suppress(trio.WouldBlock):
            worker.nudge_send.send_nowait(None)

    # ---- lifecycle -------------------------------------------------------

    async def run(
        self,
        handler: Handler,
        on_poison: PoisonNotice | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Own the workers' nursery until cancelled or shut down."""
        self._handler, self._on_poison = handler, on_poison
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def resume_pending(self) -> int:
        """Dispatch everything the inbox still holds (after a restart)."""
        items = await self.store.pending_inbox()
        for item in items:
            self.dispatch(item)
        return len(items)

    async def drain(self, grace_s: float) -> bool:
        """Stop taking new work, let workers finish what they hold for up to
        ``grace_s``, then cancel the rest. Returns True if everything finished."""
        self._closing = True
        for worker in self._workers.values():
            if not worker.busy:
                worker.cancel_scope.cancel()
        with trio.move_on_after(grace_s):
            await self._wait_idle()
            return True
        log.warning("shutdown_grace_expired", lanes=sorted(map(str, self._workers)))
        for worker in list(self._workers.values()):
            worker.cancel_scope.cancel()
        with trio.move_on_after(max(5.0, grace_s / 2)):
            await self._wait_idle()
        return False

    async def _wait_idle(self) -> None:
        while self._workers:
            await self._idle.wait()

    # ---- the worker ------------------------------------------------------

    async def _run_worker(self, worker: _Worker) -> None:
        lane = worker.lane
        try:
            with worker.cancel_scope:
                while not self._closing:
                    claim = await self.store.claim_next(lane)
                    if claim is None:
                        self._pending[lane] = 0
                        with trio.move_on_after(self.idle_s) as idle:
                            await worker.nudge_recv.receive()
                        if idle.cancelled_caught:
                            return  # idle: the finally clause removes us (no checkpoint)
                        continue
                    worker.busy = True
                    try:
                        await self._process(claim)
                    finally:
                        worker.busy = False
                        self._pending[lane] = max(0, self._pending.get(lane, 1) - 1)
        finally:
            self._workers.pop(lane, None)
            if self._pending.get(lane) == 0:
                self._pending.pop(lane, None)
            if not self._workers:
                self._idle.set()

    async def _process(self, claim: Claim) -> None:
        item = claim.item
        structlog.contextvars.bind_contextvars(
            event_id=item.event_id, room_id=item.room_id, lane=str(item.lane)
        )
        try:
            # Two bounds: attempts that *raised* (a poison event: max_attempts), and
            # starts (counted durably by ``claim_next`` before the work starts), which
            # also count restarts that interrupted the work. Restarts are not the
            # event's fault (a SIGKILL mid-turn must not cost it its answer), so they
            # only guard against a crash loop, with a higher cap.
            starts, failures = claim.starts, claim.failures
            if failures >= self.max_attempts or starts > self.max_starts:
                log.error(
                    "inbox_event_poisoned", failures=failures, starts=starts - 1, kind=item.kind
                )
                await self.store.finish_event(item.event_id, ItemStatus.FAILED)
                if self._on_poison is not None:
                    with trio.move_on_after(30):
                        await self._on_poison(item)
                return
            try:
                assert self._handler is not None  # set by run(), before any worker
                finished = await self._handler(item) or 0
            except Exception as exc:
                if _contains(exc, self.fatal):
                    raise
                # Anything else is a bug or an outage we could not classify: log it,
                # back off, and let the bounded attempt counter decide.
                failures = await self.store.record_failure(item.event_id)
                log.exception("inbox_event_failed", failures=failures, kind=item.kind)
                await trio.sleep(min(30.0, self.retry_base_s * math.pow(2, failures - 1)))
                return
            if finished > 1:
                self.forget(item.lane, finished - 1)  # the worker counts the item itself
            if not finished:
                await self.store.finish_event(item.event_id, ItemStatus.DONE)
        finally:
            structlog.contextvars.unbind_contextvars("event_id", "room_id", "lane")


def _contains(exc: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    """True if ``exc`` is, or is a group containing, one of ``types``."""
    if isinstance(exc, types):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains(e, types) for e in exc.exceptions)
    return False
