"""``surfaces run``: start-up, the nursery tree, and an ordered shutdown.

    surfaces run
    └─ app nursery
       ├─ sync task        long-poll /sync → admit durably → dispatch to lanes
       ├─ lane supervisor  one worker per active room (turns serial per room)
       ├─ outbox replayer  deferred sends, in order per room, with backoff
       └─ ops server       /healthz, /readyz, /metrics (optional)

Shutdown (SIGINT/SIGTERM, or ``BotApp.request_stop``): the sync task stops
first (no new intake), then running turns get ``shutdown_grace_s`` to finish;
the rest are finalized as interrupted and stay in the inbox for the next start.
A second signal skips the grace period.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import uuid
from pathlib import Path

import attrs
import structlog
import trio

from agent_client import AgentClient
from matrix_client import MatrixClient, MatrixError, TransportError, UnknownTokenError
from surfaces import __version__
from surfaces.agents import turn_limits
from surfaces.bot.commands import Commands
from surfaces.bot.context import Bot
from surfaces.bot.handler import EventHandler
from surfaces.bot.intake import IntakePolicy, classify, gapped_rooms
from surfaces.bot.lanes import FatalError, LaneSupervisor
from surfaces.bot.media import IncomingFiles
from surfaces.bot.outbox import Outbox
from surfaces.bot.reconcile import reconcile
from surfaces.bot.workspaces import Workspaces
from surfaces.config import AgentRegistry, Config, is_allowed
from surfaces.metrics import Metrics
from surfaces.ops import HealthState, serve_ops
from surfaces.state import InboxItem, Store
from surfaces.turns.runner import TurnRunner

log = structlog.get_logger(__name__)

EXIT_FATAL = 3
TOKEN_KEY = "matrix.access_token"
DEVICE_KEY = "matrix.device_id"
SYNC_FILTER = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 50},
        "state": {"lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}
PRUNE_AFTER_S = 7 * 24 * 3600.0
PRUNE_EVERY_S = 6 * 3600.0
CHECKPOINT_EVERY_S = 2.0
#: The spec version with ``unsigned.membership`` (MSC4115), which intake needs to
#: recognise pre-join history once the filter hides our own join event.
MEMBERSHIP_ON_EVENTS_VERSION = "v1.11"


def build_sync_filter(own_user_id: str, *, hide_own: bool) -> dict:
    """The bot's sync filter, unique to this process.

    Unique: Synapse caches /sync responses for a while keyed by (since, filter
    id, device…), so a restart with a lost database would otherwise be served the
    old history as if it were new. ``hide_own``: the timeline leaves out the bot's
    own events (``not_senders``), so its replies do not wake its own long-poll (one
    /sync less per turn, for the bot and the homeserver; bench/RESULTS.md).
    """
    room = {**SYNC_FILTER["room"], "not_rooms": [f"!surfaces-{uuid.uuid4().hex}:invalid"]}
    if hide_own:
        room["timeline"] = {**room["timeline"], "not_senders": [own_user_id]}
    return {**SYNC_FILTER, "room": room}


async def _hides_own_events(matrix: MatrixClient) -> bool:
    """Whether the homeserver sends ``unsigned.membership`` (spec v1.11+), without
    which hiding our own join would let pre-join history through as prompts."""
    try:
        versions = await matrix.versions()
    except (MatrixError, TransportError) as exc:
        log.warning("matrix_versions_failed", error=str(exc), own_events_filtered=False)
        return False
    hide = versions.at_least(MEMBERSHIP_ON_EVENTS_VERSION)
    if not hide:
        log.info(
            "own_events_not_filtered",
            reason=f"homeserver older than {MEMBERSHIP_ON_EVENTS_VERSION}",
            versions=versions.versions,
        )
    return hide


@attrs.define
class BotApp:
    """The whole bot, runnable in-process (tests, the demo) or from ``main``."""

    config: Config
    registry: AgentRegistry
    transport: object = None  # httpx transport override (tests)
    agent_connector: object = None  # agent_client connector override (tests)
    store_inline: bool = False  # SQLite on the event loop (tests on autojump_clock)
    metrics: Metrics = attrs.field(factory=lambda: Metrics(version=__version__))
    health: HealthState | None = None
    bot: Bot | None = None
    lanes: LaneSupervisor | None = None
    runner: TurnRunner | None = None
    ops_port: int | None = None
    sync_filter: dict | None = None  # the filter this process uploaded (tests look)
    _stop: trio.Event = attrs.field(factory=trio.Event)
    _force: trio.Event = attrs.field(factory=trio.Event)
    _ready: trio.Event = attrs.field(factory=trio.Event)
    _busy_notified: set[str] = attrs.field(factory=set)

    def request_stop(self, *, force: bool = False) -> None:
        if self._stop.is_set() or force:
            self._force.set()
        self._stop.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # ---- start-up -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        store = await Store.open(Path(cfg.state_dir) / "surfaces.db", inline=self.store_inline)
        try:
            async with MatrixClient(
                cfg.matrix.homeserver,
                device_id=cfg.matrix.device_id,
                transport=self.transport,
                on_request=self.metrics.observe_matrix_request,
            ) as matrix:
                await self._login(matrix, store)
                await self._serve(matrix, store, task_status)
        finally:
            store.close()

    async def _login(self, matrix: MatrixClient, store: Store) -> None:
        """Reuse one device: the configured token, else the stored one, else a
        password login with the fixed device id (txn ids are scoped per device)."""
        cfg = self.config.matrix
        if cfg.access_token is not None:
            matrix.access_token = cfg.access_token.reveal()
            who = await self._whoami(matrix, "MATRIX_ACCESS_TOKEN was rejected")
        else:
            stored = await store.get_value(TOKEN_KEY)
            who = None
            if stored:
                matrix.access_token = stored
                try:
                    who = await matrix.whoami()
                except UnknownTokenError:
                    log.info("stored_token_expired")
                    matrix.access_token = None
            if who is None:
                if cfg.password is None:
                    raise FatalError("no MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN configured")
                try:
                    login = await matrix.login_password(
                        cfg.user_id,
                        cfg.password.reveal(),
                        device_id=cfg.device_id,
                        device_display_name="Surfaces bot",
                    )
                except MatrixError as exc:
                    if exc.status in (400, 401, 403):
                        raise FatalError(
                            f"login as {cfg.user_id} failed: {exc.errcode or exc.status} "
                            "(check MATRIX_USER_ID / MATRIX_PASSWORD)"
                        ) from exc
                    raise
                await store.set_value(TOKEN_KEY, login.access_token)
                who = await self._whoami(matrix, "the new access token was rejected")
        if who.user_id != cfg.user_id:
            raise FatalError(
                f"the credentials belong to {who.user_id}, not MATRIX_USER_ID={cfg.user_id}"
            )
        previous = await store.get_value(DEVICE_KEY)
        if who.device_id and previous and previous != who.device_id:
            log.warning("device_id_changed", previous=previous, current=who.device_id)
        if who.device_id:
            await store.set_value(DEVICE_KEY, who.device_id)
        log.info("matrix_logged_in", user_id=who.user_id, device_id=who.device_id)

    @staticmethod
    async def _whoami(matrix: MatrixClient, problem: str):
        try:
            return await matrix.whoami()
        except UnknownTokenError as exc:
            raise FatalError(f"{problem} (M_UNKNOWN_TOKEN)") from exc

    async def _serve(self, matrix: MatrixClient, store: Store, task_status) -> None:
        cfg = self.config
        outbox = Outbox(store, matrix)
        agents = AgentClient(turn_limits(cfg.agents), connector=self.agent_connector)
        bot = Bot(
            config=cfg,
            registry=self.registry,
            store=store,
            matrix=matrix,
            outbox=outbox,
            agents=agents,
            user_id=matrix.user_id or cfg.matrix.user_id,
            metrics=self.metrics,
        )
        self.bot = bot
        workspaces = Workspaces(bot)
        runner = TurnRunner(bot)
        self.runner = runner
        lanes = LaneSupervisor(
            store,
            handler=lambda item: None,  # replaced below (the handler needs the lanes)
            max_attempts=cfg.bot.max_event_attempts,
            fatal=(FatalError, UnknownTokenError),
        )
        self.lanes = lanes
        commands = Commands(bot, workspaces, runner, lanes)
        lanes.handler = EventHandler(bot, workspaces, commands, runner, IncomingFiles(bot))
        lanes.on_poison = self._on_poison

        async def probe_db() -> bool:
            return await store.probe_writable()

        self.health = HealthState(
            stale_after_s=3 * cfg.matrix.sync_long_poll_s + 30, db_probe=probe_db
        )

        sync_filter = build_sync_filter(bot.user_id, hide_own=await _hides_own_events(matrix))
        filter_id = await matrix.upload_filter(sync_filter)
        self.sync_filter = sync_filter
        await reconcile(matrix, store)
        remaining = await outbox.replay()
        if remaining:
            log.warning("outbox_backlog_at_start", pending=remaining)
        await store.prune_inbox(PRUNE_AFTER_S)

        policy = IntakePolicy(
            own_user_id=bot.user_id,
            is_allowed=lambda user: is_allowed(user, cfg.allowed_patterns()),
            awaiting_confirmation=runner.awaiting_confirmation,
        )
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(lanes.run)
                await nursery.start(outbox.run)
                if cfg.ops.enabled:
                    self.ops_port = await nursery.start(
                        serve_ops, cfg.ops.host, cfg.ops.port, self.metrics, self.health
                    )
                resumed = await lanes.resume_pending()
                if resumed:
                    log.info("inbox_resumed", pending=resumed)
                sync_scope = trio.CancelScope()

                async def sync_task() -> None:
                    with sync_scope:
                        await self._sync_loop(matrix, store, lanes, policy, filter_id)

                nursery.start_soon(sync_task)
                nursery.start_soon(self._gauges, store, lanes)
                nursery.start_soon(self._maintain, store)
                self._ready.set()
                task_status.started()
                log.info("bot_started", user_id=bot.user_id, agents=len(self.registry.agents))

                await self._stop.wait()
                log.info("shutdown_started", grace_s=cfg.bot.shutdown_grace_s)
                self.health.mark_shutting_down()
                sync_scope.cancel()
                grace = 0.0 if self._force.is_set() else cfg.bot.shutdown_grace_s
                finished = False
                async with trio.open_nursery() as drain:

                    async def forced() -> None:
                        await self._force.wait()
                        drain.cancel_scope.cancel()

                    drain.start_soon(forced)
                    finished = await lanes.drain(grace)
                    drain.cancel_scope.cancel()
                if not finished:
                    # A second signal (or the grace period ran out while the drain
                    # was interrupted): cancel what still runs, bounded.
                    await lanes.drain(0)
                with trio.move_on_after(5):
                    await outbox.replay()
                log.info("shutdown_finished", clean=finished)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            fatal = group.subgroup((FatalError, UnknownTokenError))
            if fatal is not None:
                raise _first(fatal) from None
            raise

    async def _on_poison(self, item: InboxItem) -> None:
        bot = self.bot
        assert bot is not None
        if item.kind in ("text", "command", "file"):
            await bot.notice(item.room_id, "turn_failed", txn_id=f"{item.event_id}.poison")

    async def _maintain(self, store: Store) -> None:
        """Checkpoint the WAL every few seconds (commits on the event loop never
        fsync; see surfaces/state/_store.py) and prune finished inbox rows every
        few hours, so a bot that runs for months keeps a small database."""
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

    async def _gauges(self, store: Store, lanes: LaneSupervisor) -> None:
        while True:
            self.metrics.room_queues_changed(
                rooms_active=lanes.active_lanes(), max_depth=lanes.max_depth()
            )
            self.metrics.outbox_pending_changed(await store.outbox_count())
            await trio.sleep(5)

    # ---- the sync task ---------------------------------------------------------

    async def _sync_loop(self, matrix, store, lanes, policy, filter_id) -> None:
        cfg = self.config
        assert self.health is not None
        syncer = matrix.syncer(
            since=await store.get_value(Store.SINCE_KEY),
            filter_id=filter_id,
            long_poll_ms=int(cfg.matrix.sync_long_poll_s * 1000),
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
                await trio.sleep(min(60.0, 2.0**failures))
                continue
            failures = 0
            # A limited timeline (more new events than the filter's limit) means
            # the homeserver skipped messages: like a full queue, the user is told.
            limited = gapped_rooms(batch)
            items = self._apply_backpressure(classify(batch, policy), lanes, limited)
            admitted = await store.admit(batch.next_batch, items)
            now = trio.current_time()
            self.health.sync_succeeded(now)
            self.metrics.sync_succeeded(now)
            if not self.health.ready:
                self.health.mark_ready()  # ready: logged in, reconciled, first sync admitted
            if admitted:
                self.metrics.events_admitted(len(admitted))
            for item in admitted:
                if item.status == "pending":
                    if item.lane.startswith("room:"):
                        self.metrics.room_event_enqueued(lanes.pending(item.lane))
                    lanes.dispatch(item)
            if admitted:
                # Let the lanes just woken start their turns (up to their first
                # wait, the agent connect) before this task spends a few hundred
                # microseconds issuing the next long-poll.
                await trio.lowlevel.checkpoint()

    def _apply_backpressure(
        self, items: list[InboxItem], lanes: LaneSupervisor, limited: set[str] = frozenset()
    ) -> list[InboxItem]:
        """Backpressure policy: **reject with a notice** (not coalesce).

        Each room may hold ``room_queue_size`` waiting turns plus the running one
        (counted from the lane's admitted-but-unfinished items, so nothing per
        message is kept in memory). Further text prompts are admitted with status
        ``rejected`` (durably, so the decision survives a restart and the event is
        never answered later) and the room gets one "busy" notice per busy period
        (a period ends when the room's queue is empty at the next sync). A room
        whose timeline came back ``limited`` (the homeserver dropped events from
        the batch) is treated as busy as well, so those skipped messages are not
        lost silently either. Commands are not subject to the limit."""
        limit = self.config.bot.room_queue_size + 1  # waiting turns + the running one
        depth: dict[str, int] = {}
        out: list[InboxItem] = []
        for item in items:
            lane = item.lane
            if not lane.startswith("room:"):
                out.append(item)
                continue
            if lane not in depth:
                depth[lane] = lanes.pending(lane)
                if depth[lane] == 0:
                    self._busy_notified.discard(lane)
                if item.room_id in limited:
                    log.warning("room_timeline_gap", room_id=item.room_id)
                    out.extend(self._busy_notice(item, lane, depth[lane]))
            if item.kind == "text" and depth[lane] >= limit:
                out.append(attrs.evolve(item, status="rejected"))
                self.metrics.room_queue_rejected()
                log.info("room_queue_full", room_id=item.room_id, depth=depth[lane])
                out.extend(self._busy_notice(item, lane, depth[lane]))
                continue
            depth[lane] += 1
            out.append(item)
        return out

    def _busy_notice(self, item: InboxItem, lane: str, depth: int) -> list[InboxItem]:
        """The one "busy" notice of this busy period (none if already sent)."""
        if lane in self._busy_notified:
            return []
        self._busy_notified.add(lane)
        return [
            InboxItem(
                event_id=f"busy:{item.event_id}",
                lane=f"ctl:{item.room_id}",
                room_id=item.room_id,
                sender=item.sender,
                kind="busy",
                payload={"n": depth},
            )
        ]


def _first(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def _run_with_signals(app: BotApp) -> None:
    try:
        await _run_and_watch(app)
    except BaseExceptionGroup as group:
        fatal = group.subgroup((FatalError, UnknownTokenError))
        if fatal is not None:
            raise _first(fatal) from None
        raise


async def _run_and_watch(app: BotApp) -> None:
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("signal_received", signal=signal.Signals(signum).name)
                    app.request_stop()

        nursery.start_soon(watch)
        await app.run()
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    from surfaces.config import load_config_or_exit, load_registry_or_exit
    from surfaces.logs import configure_logging

    parser = argparse.ArgumentParser(prog="surfaces run", description="Run the bot.")
    parser.add_argument("--config", help="YAML config file (default: $SURFACES_CONFIG)")
    args = parser.parse_args(argv)
    config = load_config_or_exit(args.config)
    registry = load_registry_or_exit(config)
    configure_logging(config.log.format, config.log.level)
    try:
        trio.run(_run_with_signals, BotApp(config, registry))
    except (FatalError, UnknownTokenError) as exc:
        log.error("bot_fatal", error=str(exc))
        print(f"surfaces: fatal: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return 0
