"""``BotApp``: the whole bot, runnable in-process (tests, the demo) or from ``main``.

    surfaces run
    └─ app nursery
       ├─ lane supervisor  one worker per active lane (turns serial per room)
       ├─ outbox replayer  deferred sends, in order per room, with backoff
       ├─ ops server       /healthz, /readyz, /metrics (optional)
       ├─ sync task        long-poll /sync → admit durably → dispatch to lanes
       ├─ gauges           queue depth / outbox metrics
       ├─ maintenance      WAL checkpoints, pruning
       ├─ crypto requests  key uploads, queries, claims, to-device (with encryption)
       └─ key expiry       encrypted events whose key never came (with encryption)

This module only *wires*: it builds each part with exactly the services that part
uses (``_build``) and runs the tree with an ordered shutdown (``run``). Shutdown
(SIGINT/SIGTERM, or ``BotApp.request_stop``): the sync task stops first (no new
intake), then running turns get ``shutdown_grace_s`` to finish; the rest are
finalized as interrupted and stay in the inbox for the next start. A second signal
skips the grace period.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import httpx
import structlog
import trio

from agent_client import AgentClient, Connector
from matrix_client import MatrixClient, MatrixError, TransportError, UnknownTokenError
from surfaces import __version__, version_fields
from surfaces.agents import turn_limits
from surfaces.app.decryption import run_expiry
from surfaces.app.maintenance import PRUNE_AFTER_S, maintain, publish_gauges
from surfaces.app.router import Router
from surfaces.app.sync import SyncTask
from surfaces.app.sync_filter import build_sync_filter, hides_own_events
from surfaces.commands import ChatCommands, Commands, FileCommands, InfoCommands, TurnControl
from surfaces.config import AgentRegistry, Config, is_allowed
from surfaces.core import FatalError
from surfaces.delivery import BindingMirror, Notifier, Outbox
from surfaces.i18n import Texts
from surfaces.intake import Backpressure, IntakePolicy, LaneSupervisor
from surfaces.metrics import Metrics
from surfaces.ops import HealthState, serve_ops
from surfaces.session import Crypto, identity_device_id, login, open_crypto
from surfaces.state import DB_NAME, InboxItem, Store
from surfaces.turns import ActiveTurns, AgentChoice, IncomingFiles, OutgoingFiles, TurnRunner
from surfaces.workspaces import Onboarding, Rooms, reconcile

log = structlog.get_logger(__name__)

#: How long start-up waits for the crypto requests (the device keys' upload first).
KEY_UPLOAD_AT_START_S = 30.0


@attrs.define
class _Parts:
    """What ``_build`` made: the parts ``run`` starts, and what tests look at."""

    outbox: Outbox
    notifier: Notifier
    lanes: LaneSupervisor
    active: ActiveTurns
    policy: IntakePolicy
    backpressure: Backpressure


@attrs.define
class BotApp:
    """The whole bot. ``await app.run()``; ``app.request_stop()`` ends it in order."""

    config: Config
    registry: AgentRegistry
    transport: httpx.AsyncBaseTransport | None = None  # the fake homeserver (tests)
    agent_connector: Connector | None = None  # memory streams to test agents
    store_inline: bool = False  # SQLite on the event loop (tests on autojump_clock)
    metrics: Metrics = attrs.field(factory=lambda: Metrics(version=__version__))
    health: HealthState | None = None
    # Set while running, for tests and the demo:
    store: Store | None = None
    matrix: MatrixClient | None = None
    lanes: LaneSupervisor | None = None
    turns: ActiveTurns | None = None
    router: Router | None = None
    ops_port: int | None = None
    sync_filter: dict | None = None  # the filter this process uploaded
    crypto: Crypto | None = None  # with matrix.encryption
    _stop: trio.Event = attrs.field(factory=trio.Event)
    _force: trio.Event = attrs.field(factory=trio.Event)
    _ready: trio.Event = attrs.field(factory=trio.Event)

    def request_stop(self, *, force: bool = False) -> None:
        if self._stop.is_set() or force:
            self._force.set()
        self._stop.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # ---- start-up -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        store = await Store.open(Path(cfg.state_dir) / DB_NAME, inline=self.store_inline)
        self.store = store
        try:
            async with MatrixClient(
                cfg.matrix.homeserver,
                device_id=cfg.matrix.device_id,
                transport=self.transport,
                on_request=self.metrics.observe_matrix_request,
            ) as matrix:
                self.matrix = matrix
                crypto: Crypto | None = None
                if cfg.matrix.encryption:
                    # Password logins use the device the bot's keys belong to.
                    device = identity_device_id(store)
                    await login(matrix, store, cfg.matrix, device_id=device)
                    crypto = await open_crypto(matrix, store, cfg.matrix, Path(cfg.state_dir))
                    self.crypto = crypto
                else:
                    await login(matrix, store, cfg.matrix)
                try:
                    await self._serve(matrix, store, crypto, task_status)
                except BaseExceptionGroup as group:
                    fatal = group.subgroup((FatalError, UnknownTokenError))
                    if fatal is not None:
                        raise first_leaf(fatal) from None
                    raise
        finally:
            store.close()

    def _build(
        self, matrix: MatrixClient, store: Store, crypto: Crypto | None
    ) -> tuple[_Parts, Router]:
        """Every part, given the narrow services it uses."""
        cfg = self.config
        user_id = matrix.user_id or cfg.matrix.user_id
        texts = Texts(cfg.bot.locale)
        outbox = Outbox(store, matrix, encryptor=crypto)
        notifier = Notifier(outbox, texts)
        mirror = BindingMirror(matrix)
        agents = AgentClient(turn_limits(cfg.agents), connector=self.agent_connector)
        active = ActiveTurns()
        choice = AgentChoice(self.registry, store, mirror, notifier)
        runner = TurnRunner(
            store=store,
            outbox=outbox,
            notifier=notifier,
            matrix=matrix,
            agents=agents,
            choice=choice,
            files_out=OutgoingFiles(matrix, store, outbox, notifier, crypto),
            streaming=cfg.streaming,
            texts=texts,
            active=active,
            metrics=self.metrics,
        )
        rooms = Rooms(
            matrix=matrix,
            store=store,
            outbox=outbox,
            mirror=mirror,
            registry=self.registry,
            texts=texts,
            server_name=user_id.split(":", 1)[1],
            brand=cfg.bot.brand,
            encryption=crypto is not None,
            invited=crypto.rooms.forget if crypto is not None else lambda room_id: None,
        )
        lanes = LaneSupervisor(
            store,
            max_attempts=cfg.bot.max_event_attempts,
            fatal=(FatalError, UnknownTokenError),
        )
        commands = Commands(
            notifier=notifier,
            chats=ChatCommands(rooms, store, matrix, mirror, texts),
            files=FileCommands(store, texts),
            control=TurnControl(active, runner, texts),
            info=InfoCommands(
                store, agents, choice, lanes, active, texts, cfg.agents.status_timeout_s
            ),
        )
        router = Router(
            matrix=matrix,
            store=store,
            notifier=notifier,
            onboarding=Onboarding(rooms, store, notifier, texts),
            commands=commands,
            runner=runner,
            files=IncomingFiles(matrix, store, notifier, choice, cfg.bot.max_file_bytes),
            crypto=crypto,
        )
        policy = IntakePolicy(
            own_user_id=user_id,
            is_allowed=lambda user: is_allowed(user, cfg.allowed_patterns()),
            awaiting_confirmation=active.awaiting_confirmation,
        )
        backpressure = Backpressure(lanes, cfg.bot.room_queue_size, self.metrics)
        parts = _Parts(outbox, notifier, lanes, active, policy, backpressure)
        return parts, router

    async def _serve(
        self, matrix: MatrixClient, store: Store, crypto: Crypto | None, task_status
    ) -> None:
        cfg = self.config
        parts, router = self._build(matrix, store, crypto)
        lanes, outbox = parts.lanes, parts.outbox
        self.lanes, self.turns, self.router = lanes, parts.active, router

        async def on_poison(item: InboxItem) -> None:
            if item.kind.answered:
                await parts.notifier.notice(
                    item.room_id, "turn_failed", txn_id=f"{item.event_id}.poison"
                )

        async def probe_db() -> bool:
            return await store.probe_writable()

        self.health = health = HealthState(
            stale_after_s=3 * cfg.matrix.sync_long_poll_s + 30, db_probe=probe_db
        )
        user_id = matrix.user_id or cfg.matrix.user_id
        sync_filter = build_sync_filter(user_id, hide_own=await hides_own_events(matrix))
        filter_id = await matrix.upload_filter(sync_filter)
        self.sync_filter = sync_filter
        await reconcile(matrix, store)
        if crypto is not None:
            await self._publish_keys(crypto)
        remaining = await outbox.replay()
        if remaining:
            log.warning("outbox_backlog_at_start", pending=remaining)
        await store.prune_inbox(PRUNE_AFTER_S)
        sync = SyncTask(
            matrix=matrix,
            store=store,
            lanes=lanes,
            policy=parts.policy,
            backpressure=parts.backpressure,
            metrics=self.metrics,
            health=health,
            filter_id=filter_id,
            long_poll_s=cfg.matrix.sync_long_poll_s,
            crypto=crypto,
        )

        async with trio.open_nursery() as nursery:
            await nursery.start(lanes.run, router, on_poison)
            await nursery.start(outbox.run)
            if cfg.ops.enabled:
                self.ops_port = await nursery.start(
                    serve_ops, cfg.ops.host, cfg.ops.port, self.metrics, health
                )
            resumed = await lanes.resume_pending()
            if resumed:
                log.info("inbox_resumed", pending=resumed)
            sync_scope = trio.CancelScope()

            async def sync_task() -> None:
                with sync_scope:
                    await sync.run()

            nursery.start_soon(sync_task)
            nursery.start_soon(publish_gauges, self.metrics, store, lanes)
            nursery.start_soon(maintain, store)
            if crypto is not None:
                await nursery.start(crypto.run)
                nursery.start_soon(run_expiry, crypto, store, lanes)
            self._ready.set()
            task_status.started()
            log.info(
                "bot_started", user_id=user_id, agents=len(self.registry.agents), **version_fields()
            )

            await self._stop.wait()
            log.info("shutdown_started", grace_s=cfg.bot.shutdown_grace_s)
            health.mark_shutting_down()
            sync_scope.cancel()
            await self._drain(lanes)
            with trio.move_on_after(5):
                await outbox.replay()
            nursery.cancel_scope.cancel()

    async def _publish_keys(self, crypto: Crypto) -> None:
        """Upload the device keys (a new identity) before the bot answers anyone; a
        homeserver that is slow now gets them from the request task later."""
        with trio.move_on_after(KEY_UPLOAD_AT_START_S):
            try:
                await crypto.flush()
            except (MatrixError, TransportError) as exc:
                log.warning("crypto_keys_not_published_yet", error=repr(exc))

    async def _drain(self, lanes: LaneSupervisor) -> None:
        """Let running turns finish within the grace period; a second signal (or the
        grace running out) cancels what still runs, bounded."""
        grace = 0.0 if self._force.is_set() else self.config.bot.shutdown_grace_s
        finished = False
        async with trio.open_nursery() as drain:

            async def forced() -> None:
                await self._force.wait()
                drain.cancel_scope.cancel()

            drain.start_soon(forced)
            finished = await lanes.drain(grace)
            drain.cancel_scope.cancel()
        if not finished:
            await lanes.drain(0)
        log.info("shutdown_finished", clean=finished)


def first_leaf(group: BaseExceptionGroup) -> BaseException:
    """The first non-group exception inside ``group``."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
