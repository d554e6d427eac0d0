"""Prometheus metrics for the bot, behind intent-revealing methods.

The bot never touches prometheus objects: it calls ``metrics.sync_succeeded(now)``,
``metrics.turn_finished("ok", seconds)`` and so on, and the ops server calls
``metrics.render()``. Each :class:`Metrics` owns its own ``CollectorRegistry``
(never prometheus_client's global one), so tests and several bot instances in one
process never clash over metric names.

Names are part of the operator interface (``docs/operations.md`` lists every one,
and a test compares that list with a scrape): the bot's own metrics are
``surfaces_…``; the registry also holds prometheus_client's standard process
(``process_*``: memory, CPU, open files, start time) and runtime (``python_*``)
collectors under their usual names, so stock dashboards work. ``*_created``
samples are left out of the exposition (they double the series count and no
dashboard uses them). That is done by filtering this registry's output, not with
``prometheus_client.disable_created_metrics()``, which would change every registry
in the process.

Every label has a bounded value set. Values from outside a fixed set are folded
into ``"other"`` (sync error kinds, turn outcomes, agent failure codes), the
Matrix ``endpoint`` label, which is a route template chosen by ``matrix_client``,
is capped at :data:`MAX_ENDPOINT_LABELS` distinct values, and ``status`` is the
HTTP status (100–599; ``"0"`` when no response arrived; ``"other"`` for anything
else or beyond :data:`MAX_STATUS_LABELS` distinct values). Per-room numbers are
never labels: the room queue is described by a histogram of the depth seen at
enqueue time plus two gauges (deepest queue, rooms with a live queue).

Example::

    metrics = Metrics(version=surfaces.__version__)
    client.on_request = metrics.observe_matrix_request
    metrics.sync_succeeded(trio.current_time())
    body = metrics.render()       # served with content type ``CONTENT_TYPE``
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import attrs
import trio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.metrics_core import Metric

#: Content type of :meth:`Metrics.render` (Prometheus text format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: ``surfaces_matrix_sync_errors_total{kind}``: how a sync attempt failed.
SYNC_ERROR_KINDS = ("network", "http_5xx", "ratelimited", "timeout", "other")
#: ``surfaces_turns_total{agent,outcome}``: how a turn ended. ``failed`` means an agent
#: failure (see ``surfaces_agent_failures_total``), ``cancelled`` a shutdown or user stop,
#: ``refused`` a message not passed on because the user's monthly token budget is spent.
TURN_OUTCOMES = ("ok", "failed", "cancelled", "refused", "other")
#: Distinct ``agent`` label values kept (agents come from the registry; the ones it
#: lists are registered first, see ``Metrics.agents_known``); later ones are ``other``.
MAX_AGENT_LABELS = 64
#: ``surfaces_context_primed_total{kind}``: what a transcript primer was sent for.
PRIMER_KINDS = ("load", "restore", "other")
#: ``surfaces_agent_failures_total{code}``: the agent client's failure taxonomy.
AGENT_FAILURE_CODES = (
    "AGENT_UNAVAILABLE",
    "AGENT_TIMEOUT",
    "AGENT_DISCONNECTED",
    "AGENT_PROTOCOL_ERROR",
    "AGENT_ERROR",
    "other",
)
#: ``surfaces_agent_state{state}``: an agent's presence (``surfaces.agents``).
AGENT_STATES = ("online", "away", "offline")
#: Distinct ``endpoint`` label values kept; later ones are counted as ``other``.
MAX_ENDPOINT_LABELS = 64
#: Distinct ``status`` label values kept; later ones are counted as ``other``.
MAX_STATUS_LABELS = 32
#: ``status`` label of a request that got no HTTP response (network error, timeout).
NO_RESPONSE_STATUS = "0"

# Matrix requests: mostly tens of milliseconds, but a long-poll /sync legitimately
# takes its full timeout (30 s by default) plus the server's slack.
_MATRIX_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 45, 60, 120)
# Agent latencies: from an instant echo (10 ms) to the 600 s a long tool run may take.
_AGENT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# Room queue depth at enqueue: the configured queue size is small (5 by default).
_QUEUE_DEPTH_BUCKETS = (0, 1, 2, 3, 4, 5, 8, 10, 20, 50)
# Metric types whose prometheus_client children add a ``<name>_created`` sample.
_WITH_CREATED = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else "other"


def _capped(seen: set[str], value: str, cap: int) -> str:
    """``value`` if it is one of the first ``cap`` distinct values seen, else ``other``."""
    if value in seen or value == "other":
        return value
    if len(seen) >= cap:
        return "other"
    seen.add(value)
    return value


def _status_label(status: int) -> str:
    if status == 0:
        return NO_RESPONSE_STATUS
    return str(status) if 100 <= status <= 599 else "other"


@attrs.frozen
class _WithoutCreated:
    """A registry view without ``*_created`` samples (see the module docstring)."""

    registry: CollectorRegistry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if family.type in _WITH_CREATED:
                created = family.name + "_created"
                family.samples = [s for s in family.samples if s.name != created]
            yield family


@attrs.define(eq=False)
class Metrics:
    """The bot's metrics, in a registry of its own.

    Args:
        version: the bot's version, exported as ``surfaces_build_info{version}``.
        clock: the clock that ``now`` arguments come from, read again when
            ``surfaces_matrix_sync_lag_seconds`` is scraped. Defaults to
            :func:`trio.current_time`, so scrape inside ``trio.run``.
    """

    version: str = "unknown"
    clock: Callable[[], float] = trio.current_time
    registry: CollectorRegistry = attrs.field(init=False, factory=CollectorRegistry)

    _last_sync: float | None = attrs.field(init=False, default=None)
    _created_at: float | None = attrs.field(init=False, default=None)
    _endpoints: set[str] = attrs.field(init=False, factory=set)
    _statuses: set[str] = attrs.field(init=False, factory=set)
    _agents: set[str] = attrs.field(init=False, factory=set)
    _exposition: _WithoutCreated = attrs.field(init=False)

    _matrix_requests: Counter = attrs.field(init=False)
    _matrix_seconds: Histogram = attrs.field(init=False)
    _ratelimited: Counter = attrs.field(init=False)
    _sync_errors: Counter = attrs.field(init=False)
    _queue_depth: Histogram = attrs.field(init=False)
    _queue_depth_max: Gauge = attrs.field(init=False)
    _rooms_active: Gauge = attrs.field(init=False)
    _queue_rejected: Counter = attrs.field(init=False)
    _turns_active: Gauge = attrs.field(init=False)
    _turns: Counter = attrs.field(init=False)
    _first_text: Histogram = attrs.field(init=False)
    _turn_seconds: Histogram = attrs.field(init=False)
    _agent_failures: Counter = attrs.field(init=False)
    _agent_tokens: Counter = attrs.field(init=False)
    _stream_edits: Counter = attrs.field(init=False)
    _outbox_pending: Gauge = attrs.field(init=False)
    _events_admitted: Counter = attrs.field(init=False)
    _context_primed: Counter = attrs.field(init=False)
    _restore_offers: Counter = attrs.field(init=False)
    _agent_up: Gauge = attrs.field(init=False)
    _agent_state: Gauge = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        r = self.registry
        self._exposition = _WithoutCreated(r)
        # The standard process (Linux /proc) and interpreter collectors, in this
        # registry rather than the global one.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

        self._matrix_requests = Counter(
            "surfaces_matrix_requests",
            "Matrix HTTP requests by endpoint template and HTTP status "
            "(0 = no response: network error or timeout).",
            ["endpoint", "status"],
            registry=r,
        )
        self._matrix_seconds = Histogram(
            "surfaces_matrix_request_seconds",
            "Matrix HTTP request duration by endpoint template.",
            ["endpoint"],
            buckets=_MATRIX_BUCKETS,
            registry=r,
        )
        self._ratelimited = Counter(
            "surfaces_matrix_ratelimited", "Matrix responses with status 429.", registry=r
        )
        lag = Gauge(
            "surfaces_matrix_sync_lag_seconds",
            "Seconds since the last successful /sync (since start if none yet).",
            registry=r,
        )
        lag.set_function(self._sync_lag)
        self._sync_errors = Counter(
            "surfaces_matrix_sync_errors", "Failed /sync attempts by kind.", ["kind"], registry=r
        )
        self._queue_depth = Histogram(
            "surfaces_room_queue_depth",
            "Depth of a room's queue seen when an event is enqueued (before it).",
            buckets=_QUEUE_DEPTH_BUCKETS,
            registry=r,
        )
        self._queue_depth_max = Gauge(
            "surfaces_room_queue_depth_max", "Depth of the deepest room queue.", registry=r
        )
        self._rooms_active = Gauge(
            "surfaces_rooms_active", "Rooms with a running room task.", registry=r
        )
        self._queue_rejected = Counter(
            "surfaces_room_queue_rejected",
            "Events refused because their room queue was full.",
            registry=r,
        )
        self._turns_active = Gauge("surfaces_turns_active", "Turns in progress.", registry=r)
        self._turns = Counter(
            "surfaces_turns",
            "Finished turns by agent id and outcome.",
            ["agent", "outcome"],
            registry=r,
        )
        self._agent_tokens = Counter(
            "surfaces_agent_tokens",
            "Tokens the agents reported (tokens_used of AGENT_EVENT_END), by agent id; "
            "turns without a count add nothing.",
            ["agent"],
            registry=r,
        )
        self._first_text = Histogram(
            "surfaces_agent_first_text_seconds",
            "Seconds from sending a prompt to the agent's first text.",
            buckets=_AGENT_BUCKETS,
            registry=r,
        )
        self._turn_seconds = Histogram(
            "surfaces_agent_turn_seconds",
            "Seconds from sending a prompt to the end of the turn.",
            buckets=_AGENT_BUCKETS,
            registry=r,
        )
        self._agent_failures = Counter(
            "surfaces_agent_failures", "Agent failures by failure code.", ["code"], registry=r
        )
        self._stream_edits = Counter(
            "surfaces_stream_edits", "m.replace edits sent while streaming replies.", registry=r
        )
        self._outbox_pending = Gauge(
            "surfaces_outbox_pending", "Matrix sends persisted but not yet delivered.", registry=r
        )
        self._events_admitted = Counter(
            "surfaces_events_admitted", "Events admitted durably into the inbox.", registry=r
        )
        # Priming turns and offers of !restore (surfaces.commands.context).
        self._context_primed = Counter(
            "surfaces_context_primed",
            "Transcript primers sent to an agent (!load, !restore).",
            ["kind"],
            registry=r,
        )
        self._restore_offers = Counter(
            "surfaces_restore_offers",
            "Offers of !restore after the agent's boot_id changed.",
            registry=r,
        )
        for kind in PRIMER_KINDS:
            self._context_primed.labels(kind=kind)
        # Agent presence (surfaces.agents.presence); the label values are the
        # registry's agent ids (configuration: bounded) and AGENT_STATES.
        self._agent_up = Gauge(
            "surfaces_agent_up",
            "1 while the agent answers probes and turns (online or away), else 0.",
            ["agent"],
            registry=r,
        )
        self._agent_state = Gauge(
            "surfaces_agent_state",
            "The agent's presence: 1 for its current state, 0 for the others.",
            ["agent", "state"],
            registry=r,
        )
        info = Info("surfaces_build", "The running Surfaces version.", registry=r)
        info.info({"version": self.version})

        # Export every fixed label value from the start, so rate() and alerts see
        # a zero rather than a missing series.
        for kind in SYNC_ERROR_KINDS:
            self._sync_errors.labels(kind=kind)
        for code in AGENT_FAILURE_CODES:
            self._agent_failures.labels(code=code)

        try:
            self._created_at = self.clock()
        except RuntimeError:  # trio.current_time outside trio.run: learn it later
            self._created_at = None

    # -- Matrix -------------------------------------------------------------------

    def observe_matrix_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Record one Matrix HTTP request; fits ``MatrixClient.on_request``.

        ``status`` 429 also counts in ``surfaces_matrix_ratelimited_total``; ``0``
        means no response arrived.
        """
        endpoint = _capped(self._endpoints, endpoint, MAX_ENDPOINT_LABELS)
        status_label = _capped(self._statuses, _status_label(status), MAX_STATUS_LABELS)
        self._matrix_requests.labels(endpoint=endpoint, status=status_label).inc()
        self._matrix_seconds.labels(endpoint=endpoint).observe(max(0.0, seconds))
        if status == 429:
            self._ratelimited.inc()

    def sync_succeeded(self, now: float) -> None:
        """A /sync response was admitted; ``now`` is a reading of ``clock``."""
        self._last_sync = now

    def sync_failed(self, kind: str) -> None:
        """A /sync attempt failed; ``kind`` is one of :data:`SYNC_ERROR_KINDS`."""
        self._sync_errors.labels(kind=_bounded(kind, SYNC_ERROR_KINDS)).inc()

    def events_admitted(self, count: int = 1) -> None:
        """``count`` events were written to the inbox."""
        if count > 0:
            self._events_admitted.inc(count)

    # -- rooms --------------------------------------------------------------------

    def room_event_enqueued(self, depth_before: int) -> None:
        """An event entered a room queue that already held ``depth_before`` items."""
        self._queue_depth.observe(max(0, depth_before))

    def room_queue_rejected(self) -> None:
        """An event was refused because its room queue was full."""
        self._queue_rejected.inc()

    def room_queues_changed(self, *, rooms_active: int, max_depth: int) -> None:
        """The room supervisor's totals: live room tasks and the deepest queue."""
        self._rooms_active.set(rooms_active)
        self._queue_depth_max.set(max_depth)

    # -- turns and agents ---------------------------------------------------------

    def turn_started(self) -> None:
        """A turn began; pair with :meth:`turn_finished` (in a ``finally``)."""
        self._turns_active.inc()

    def agents_known(self, agent_ids: Iterable[str]) -> None:
        """The registry's agents: their series exist from the start (a zero, not a
        missing series, for ``rate()`` and alerts), within :data:`MAX_AGENT_LABELS`."""
        for agent_id in agent_ids:
            agent = self._agent(agent_id)
            self._agent_tokens.labels(agent=agent)
            for outcome in TURN_OUTCOMES:
                self._turns.labels(agent=agent, outcome=outcome)

    def turn_finished(
        self, outcome: str, seconds: float | None = None, *, agent: str = "other"
    ) -> None:
        """A turn of ``agent`` ended with ``outcome`` (one of :data:`TURN_OUTCOMES`).

        ``seconds`` is the prompt-to-end time, observed in ``surfaces_agent_turn_seconds``
        when the agent was reached (``None`` otherwise).
        """
        self._turns_active.dec()
        self._turns.labels(agent=self._agent(agent), outcome=_bounded(outcome, TURN_OUTCOMES)).inc()
        if seconds is not None:
            self._turn_seconds.observe(max(0.0, seconds))

    def turn_refused(self, agent: str) -> None:
        """A message was not passed to ``agent``: its user's token budget is spent
        (never started, so ``surfaces_turns_active`` is untouched)."""
        self._turns.labels(agent=self._agent(agent), outcome="refused").inc()

    def agent_tokens(self, agent: str, tokens: int) -> None:
        """``agent`` reported ``tokens`` for a finished turn (known counts only)."""
        if tokens > 0:
            self._agent_tokens.labels(agent=self._agent(agent)).inc(tokens)

    def agent_first_text(self, seconds: float) -> None:
        """The agent's first text arrived ``seconds`` after the prompt was sent."""
        self._first_text.observe(max(0.0, seconds))

    def agent_failed(self, code: str) -> None:
        """An ``AgentFailure`` with ``code`` (one of :data:`AGENT_FAILURE_CODES`)."""
        self._agent_failures.labels(code=_bounded(code, AGENT_FAILURE_CODES)).inc()

    def agent_presence(self, agent: str, state: str) -> None:
        """``agent`` is now in ``state`` (one of :data:`AGENT_STATES`, or ``unknown``
        before the first probe: every state 0, up 0)."""
        self._agent_up.labels(agent=agent).set(1 if state in ("online", "away") else 0)
        for shown in AGENT_STATES:
            self._agent_state.labels(agent=agent, state=shown).set(1 if shown == state else 0)

    def stream_edit_sent(self) -> None:
        """One streaming edit (``m.replace``) was sent."""
        self._stream_edits.inc()

    def context_primed(self, kind: str) -> None:
        """A transcript primer went to the agent (``kind``: ``load`` or ``restore``)."""
        self._context_primed.labels(kind=_bounded(kind, PRIMER_KINDS)).inc()

    def restore_offered(self) -> None:
        """A chat was offered ``!restore`` (its agent restarted)."""
        self._restore_offers.inc()

    def outbox_pending_changed(self, pending: int) -> None:
        """The outbox now holds ``pending`` undelivered sends."""
        self._outbox_pending.set(pending)

    # -- exposition ---------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in Prometheus text format; serve it as :data:`CONTENT_TYPE`."""
        return generate_latest(self._exposition)  # type: ignore[arg-type]  # has collect()

    def render_for(self, accept: str | None) -> tuple[bytes, str]:
        """Render in the format a scraper's ``Accept`` header asks for.

        Returns ``(body, content_type)``; without an ``Accept`` header this is
        ``(render(), CONTENT_TYPE)``.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._exposition), content_type  # type: ignore[arg-type]

    # -- internals ----------------------------------------------------------------

    def _agent(self, agent_id: str) -> str:
        return _capped(self._agents, agent_id, MAX_AGENT_LABELS)

    def _sync_lag(self) -> float:
        try:
            now = self.clock()
        except RuntimeError:  # scraped outside trio.run with the default clock
            return math.nan
        if self._created_at is None:
            self._created_at = now
        since = self._last_sync if self._last_sync is not None else self._created_at
        return max(0.0, now - since)
