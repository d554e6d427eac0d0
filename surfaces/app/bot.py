"""``BotApp``: the whole bot, runnable in-process (tests, the demo) or from ``main``.

    surfaces run                       (holds <state_dir>/surfaces.lock)
    └─ app nursery
       ├─ ops server       /healthz, /readyz, /metrics (optional; first: 503 until ready)
       ├─ start-up         login, filter, reconcile, replay: waits out homeserver outages
       ├─ lane supervisor  one worker per active lane (turns serial per room)
       ├─ outbox replayer  deferred sends, in order per room, with backoff
       ├─ read receipts    for messages nothing else marked seen (best effort)
       ├─ sync task        long-poll /sync → admit durably → dispatch to lanes
       ├─ prober           every registry agent: connect → STATUS on a jittered schedule
       ├─ bot presence     the bot's Matrix presence follows its agents (offline at the end)
       ├─ gauges           queue depth / outbox metrics
       ├─ maintenance      WAL checkpoints, pruning
       ├─ crypto requests  key uploads, queries, claims, to-device (with encryption)
       └─ key expiry       encrypted events whose key never came (with encryption)

This module only *wires*: it builds each part with exactly the services that part
uses (``_build``) and runs the tree with an ordered shutdown (``run``). Shutdown
(SIGINT/SIGTERM, or ``BotApp.request_stop``): the sync task stops first (no new
intake), then running turns get ``shutdown_grace_s`` to finish; the rest are
finalized as interrupted and stay in the inbox for the next start. A second signal
skips the grace period. A stop requested during start-up cancels it at once.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import attrs
import httpx
import structlog
import trio

from agent_client import AgentClient, Connector
from matrix_client import MatrixClient, MatrixError, TransportError, UnknownTokenError
from surfaces import __version__, version_fields
from surfaces.agents import (
    RECHECK_CAP_S,
    PresenceBoard,
    Prober,
    Thresholds,
    probe_limits,
    turn_limits,
)
from surfaces.app.bot_presence import BotPresence
from surfaces.app.decryption import run_expiry
from surfaces.app.maintenance import PRUNE_AFTER_S, maintain, publish_gauges
from surfaces.app.router import Router
from surfaces.app.startup import StartStep, until_available
from surfaces.app.sync import SyncTask
from surfaces.app.sync_filter import build_sync_filter, hides_own_events
from surfaces.commands import (
    ChatCommands,
    Commands,
    ContextCommands,
    Corrections,
    FileCommands,
    InfoCommands,
    Reactions,
    TurnControl,
    UsageCommands,
)
from surfaces.config import AgentRegistry, Config, is_allowed
from surfaces.core import FatalError
from surfaces.delivery import BindingMirror, Notifier, Outbox, ReadReceipts
from surfaces.i18n import Texts
from surfaces.intake import (
    Backpressure,
    Bucket,
    Budgets,
    IntakePolicy,
    LaneSupervisor,
    Rate,
    RoomQueue,
)
from surfaces.metrics import Metrics
from surfaces.ops import HealthState, serve_ops
from surfaces.session import Crypto, identity_device_id, login, open_crypto
from surfaces.state import InboxItem, StateDir, StateError, Store
from surfaces.turns import (
    ActiveTurns,
    AgentChoice,
    AgentPresenceHook,
    IncomingFiles,
    OutgoingFiles,
    TurnRunner,
    UsageBudgets,
    UsageGate,
)
from surfaces.workspaces import Onboarding, Rooms, ThreadContext, Threads, reconcile

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
    receipts: ReadReceipts
    budgets: Budgets
    prober: Prober


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
    presence: PresenceBoard | None = None  # the agents' presence
    bot_presence: BotPresence | None = None
    _stop: trio.Event = attrs.field(factory=trio.Event)
    _force: trio.Event = attrs.field(factory=trio.Event)
    _ready: trio.Event = attrs.field(factory=trio.Event)
    _startup: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def request_stop(self, *, force: bool = False) -> None:
        """Stop in order; before start-up finished, at once (start-up may be waiting
        for the homeserver, and nothing has been taken in yet)."""
        if self._stop.is_set() or force:
            self._force.set()
        self._stop.set()
        if not self._ready.is_set():
            self._startup.cancel()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # ---- start-up -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped. Raises, unwrapped, what must end the process with one
        line: :class:`FatalError` / ``UnknownTokenError`` (credentials) and
        :class:`StateError` (the state directory or database)."""
        try:
            await self._run(task_status)
        except BaseExceptionGroup as group:
            fatal = group.subgroup(FATAL_ERRORS)
            if fatal is not None:
                raise first_leaf(fatal) from None
            raise

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        cfg = self.config
        # The lock first: a second bot on this state must not even open the database.
        state = StateDir.acquire(cfg.state_dir)
        try:
            store = await Store.open(state.db_path, inline=self.store_inline)
            self.store = store
            try:
                async with MatrixClient(
                    cfg.matrix.homeserver,
                    device_id=cfg.matrix.device_id,
                    transport=self.transport,
                    on_request=self.metrics.observe_matrix_request,
                ) as matrix:
                    self.matrix = matrix
                    await self._serve(matrix, store, task_status)
            finally:
                store.close()
        finally:
            state.close()

    def _build(
        self, matrix: MatrixClient, store: Store, crypto: Crypto | None
    ) -> tuple[_Parts, Router]:
        """Every part, given the narrow services it uses."""
        cfg = self.config
        user_id = matrix.user_id or cfg.matrix.user_id
        texts = Texts(cfg.bot.locale)
        receipts = ReadReceipts(matrix)
        p = cfg.presence
        self.presence = board = PresenceBoard(
            [a.id for a in self.registry.agents],
            Thresholds(p.away_status_s, p.away_failures, p.away_window_s),
            on_change=lambda agent, state: self.metrics.agent_presence(agent, state.value),
        )
        bot_presence = BotPresence(matrix, board, user_id) if p.bot_presence else None
        self.bot_presence = bot_presence

        def on_sent(room_id: str, started: float) -> None:
            receipts.covered(room_id, started)
            if bot_presence is not None:
                bot_presence.touched()

        outbox = Outbox(store, matrix, encryptor=crypto, on_sent=on_sent)
        notifier = Notifier(outbox, texts)
        mirror = BindingMirror(matrix)
        agents = AgentClient(turn_limits(cfg.agents), connector=self.agent_connector)
        active = ActiveTurns()
        prober = Prober(
            board,
            AgentClient(probe_limits(cfg.agents), connector=self.agent_connector),
            self.registry.agents,
            p,
            recheck_client=AgentClient(
                probe_limits(cfg.agents, cap_s=RECHECK_CAP_S), connector=self.agent_connector
            ),
        )
        choice = AgentChoice(self.registry, store, mirror, notifier)
        files_in = IncomingFiles(
            matrix,
            store,
            notifier,
            choice,
            cfg.bot.max_file_bytes,
            max_staged=cfg.bot.max_staged_files,
        )
        threads = Threads(store, mirror, ThreadContext(cfg.bot.thread_context))
        budgets = UsageBudgets(self.registry, cfg.usage.monthly_token_budget, cfg.usage.warn_at)
        self.metrics.agents_known(agent.id for agent in self.registry.agents)
        runner = TurnRunner(
            store=store,
            outbox=outbox,
            notifier=notifier,
            matrix=matrix,
            agents=agents,
            choice=choice,
            files_out=OutgoingFiles(
                matrix, store, outbox, notifier, cfg.bot.outgoing_file_limit, crypto=crypto
            ),
            streaming=cfg.streaming,
            texts=texts,
            files_in=files_in,
            active=active,
            metrics=self.metrics,
            usage=UsageGate(store, outbox, notifier, texts, budgets, self.metrics),
            context=cfg.context,
            presence=AgentPresenceHook(board, notifier, p.offline_wait_s, prober.recheck),
        )
        rooms = Rooms(
            matrix=matrix,
            store=store,
            notifier=notifier,
            mirror=mirror,
            registry=self.registry,
            texts=texts,
            server_name=user_id.split(":", 1)[1],
            brand=cfg.bot.brand,
            bot_user_id=user_id,
            max_chats_per_user=cfg.bot.max_chats_per_user,
            encryption=crypto is not None,
            invited=crypto.rooms.forget if crypto is not None else lambda room_id: None,
        )
        lanes = LaneSupervisor(
            store,
            max_attempts=cfg.bot.max_event_attempts,
            fatal=(FatalError, UnknownTokenError),
        )
        merge_max = cfg.bot.merge_max_messages
        backpressure = Backpressure(lanes, cfg.bot.room_queue_size, self.metrics, merge_max)
        queue = RoomQueue(store, lanes, backpressure)
        chats = ChatCommands(rooms, store, matrix, mirror, texts, threads)
        commands = Commands(
            notifier=notifier,
            chats=chats,
            files=FileCommands(store, texts),
            control=TurnControl(active, queue, texts),
            info=InfoCommands(store, board, choice, lanes, active, texts),
            usage=UsageCommands(store, budgets, texts),
            context=ContextCommands(
                store, chats, runner, threads, texts, cfg.context, self.metrics
            ),
        )
        corrections = Corrections(store, active, queue, runner, threads)
        router = Router(
            matrix=matrix,
            store=store,
            notifier=notifier,
            onboarding=Onboarding(rooms, store, notifier, texts),
            commands=commands,
            runner=runner,
            files=files_in,
            threads=threads,
            corrections=corrections,
            reactions=Reactions(commands, active, corrections),
            merge_max=merge_max,
            crypto=crypto,
            queued=lanes.pending,
        )
        policy = IntakePolicy(
            own_user_id=user_id,
            is_allowed=lambda user: is_allowed(user, cfg.allowed_patterns()),
            awaiting_confirmation=active.awaiting_confirmation,
        )
        b = cfg.budget
        budgets = Budgets(
            {
                Bucket.TURNS: Rate(b.turns_per_minute, b.turns_burst),
                Bucket.COMMANDS: Rate(b.commands_per_minute, b.commands_burst),
                Bucket.FILES: Rate(b.files_per_minute, b.files_burst),
            }
        )
        parts = _Parts(
            outbox, notifier, lanes, active, policy, backpressure, receipts, budgets, prober
        )
        return parts, router

    async def _log_in(self, matrix: MatrixClient, store: Store) -> Crypto | None:
        """Log in (waiting for the homeserver) and, with encryption, open the device's
        crypto identity (password logins use the device its keys belong to)."""
        cfg = self.config
        if not cfg.matrix.encryption:
            await until_available(StartStep.LOGIN, lambda: login(matrix, store, cfg.matrix))
            return None
        device = identity_device_id(store)
        await until_available(
            StartStep.LOGIN, lambda: login(matrix, store, cfg.matrix, device_id=device)
        )
        crypto = await until_available(
            StartStep.CRYPTO,
            lambda: open_crypto(matrix, store, cfg.matrix, Path(cfg.state_dir)),
        )
        self.crypto = crypto
        return crypto

    async def _start_up(
        self, matrix: MatrixClient, store: Store, outbox: Outbox, crypto: Crypto | None
    ) -> str:
        """Everything before the bot takes new events after login, each step waiting
        for the homeserver while it does not answer (``startup.until_available``) →
        the sync filter id. Cancelled by a stop request (SIGTERM during start-up)."""
        cfg = self.config
        user_id = matrix.user_id or cfg.matrix.user_id

        async def upload_filter() -> str:
            sync_filter = build_sync_filter(user_id, hide_own=await hides_own_events(matrix))
            filter_id = await matrix.upload_filter(sync_filter)
            self.sync_filter = sync_filter
            return filter_id

        filter_id = await until_available(StartStep.FILTER, upload_filter)
        await until_available(
            StartStep.RECONCILE, lambda: reconcile(matrix, store, self.registry, user_id)
        )
        if crypto is not None:
            await self._publish_keys(crypto)
        # Never raises for an outage: what cannot go now stays for the replayer.
        remaining = await outbox.replay()
        if remaining:
            log.warning("outbox_backlog_at_start", pending=remaining)
        await store.prune_inbox(PRUNE_AFTER_S)
        return filter_id

    async def _serve(self, matrix: MatrixClient, store: Store, task_status) -> None:
        cfg = self.config

        async def probe_db() -> bool:
            return await store.probe_writable()

        # Before anything waits for the homeserver: /readyz answers 503 (starting up)
        # while the bot logs in or waits out an outage, instead of refusing connections.
        self.health = health = HealthState(
            stale_after_s=3 * cfg.matrix.sync_long_poll_s + 30, db_probe=probe_db
        )
        async with trio.open_nursery() as nursery:
            if cfg.ops.enabled:
                self.ops_port = await nursery.start(
                    serve_ops, cfg.ops.host, cfg.ops.port, self.metrics, health
                )
            filter_id: str | None = None
            built: tuple[_Parts, Router] | None = None
            crypto: Crypto | None = None
            with self._startup:
                # The parts are built once the device is known: with encryption the
                # outbox, rooms, router and files use its crypto.
                crypto = await self._log_in(matrix, store)
                built = self._build(matrix, store, crypto)
                parts, router = built
                self.lanes, self.turns, self.router = parts.lanes, parts.active, router
                filter_id = await self._start_up(matrix, store, parts.outbox, crypto)
            if filter_id is None or built is None:
                log.info("stopped_during_start_up")
                nursery.cancel_scope.cancel()
                return
            parts, router = built
            lanes, outbox = parts.lanes, parts.outbox

            async def on_poison(item: InboxItem) -> None:
                if item.kind.answered:
                    await parts.notifier.notice(
                        item.room_id, "turn_failed", txn_id=f"{item.event_id}.poison"
                    )

            user_id = matrix.user_id or cfg.matrix.user_id
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
                receipts=parts.receipts,
                budgets=parts.budgets,
                crypto=crypto,
            )
            await nursery.start(parts.prober.run)
            if self.bot_presence is not None:
                nursery.start_soon(self.bot_presence.run)
            await nursery.start(lanes.run, router, on_poison)
            await nursery.start(outbox.run)
            await nursery.start(parts.receipts.run)
            resumed = await lanes.resume_pending()
            if resumed:
                log.info("inbox_resumed", pending=resumed)
            sync_scope = trio.CancelScope()

            async def sync_task() -> None:
                with sync_scope:
                    await sync.run()

            nursery.start_soon(sync_task)
            nursery.start_soon(publish_gauges, self.metrics, store, lanes)
            retention_s = cfg.bot.incoming_retention_days * 24 * 3600.0
            nursery.start_soon(
                partial(
                    maintain,
                    store,
                    incoming_retention_s=retention_s,
                    transcript_retention_s=cfg.context.retention_days * 86400.0,
                )
            )
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
            if self.bot_presence is not None:
                await self.bot_presence.go_offline()
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


#: What ends ``surfaces run`` with one line and an exit code (``app/command.py``).
FATAL_ERRORS = (FatalError, UnknownTokenError, StateError)


def first_leaf(group: BaseExceptionGroup) -> BaseException:
    """The first non-group exception inside ``group``."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
