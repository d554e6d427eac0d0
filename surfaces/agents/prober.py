"""The prober: every registry agent, connect → ``STATUS`` → close, on a jittered
schedule, a bounded number at a time, each probe under the configured connect and
status deadlines (``probe_limits``: no retries, total = connect + status + 1 s).

One task per agent sleeps until its next probe is due: ``probe_interval_s`` ±
``probe_jitter_s`` (uniform) after the agent's *last observation* — a real turn
counts as a probe, so a busy agent costs no probe traffic, and a quiet one one
connection per interval. The first probe of each agent comes within
``probe_jitter_s`` of the start, so the bot knows its agents within seconds.

Probes use the chat ids ``PROBE_CHAT_ID_BASE + n`` (``998000000000`` …, one per
agent in registry order): far above real platform chat ids and apart from the
``check-agents`` range (999…), so an agent's log tells them apart. A probe sends
no message, so no agent conversation is touched.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs
import structlog
import trio

from agent_client import AgentClient, AgentFailure
from surfaces.agents.board import PresenceBoard
from surfaces.config import AgentSpec, PresenceConfig

log = structlog.get_logger(__name__)

PROBE_CHAT_ID_BASE = 998_000_000_000
#: A re-check (``Prober.recheck``: a message for an agent known to be offline) spends
#: at most this long per phase, so the user's notice is not held up by a dead host.
RECHECK_CAP_S = 2.0
#: An observation this recent (seconds) already answers a re-check.
RECHECK_FRESH_S = 1.0
#: Added to the probe's own total deadline: a last resort, should a probe ever hang.
PROBE_MARGIN_S = 1.0


def next_delay(interval_s: float, jitter_s: float, rng: random.Random) -> float:
    """Seconds to the next probe: uniform in ``[interval - jitter, interval + jitter]``
    (jitter < interval, checked in the configuration)."""
    return interval_s + rng.uniform(-jitter_s, jitter_s)


@attrs.define
class Prober:
    """Run with ``nursery.start(prober.run)``; stops when cancelled."""

    board: PresenceBoard
    client: AgentClient  # with probe_limits(config.agents)
    agents: Sequence[AgentSpec]
    config: PresenceConfig
    #: For ``recheck`` (``probe_limits(..., cap_s=RECHECK_CAP_S)``); None: ``client``.
    recheck_client: AgentClient | None = None
    rng: random.Random = attrs.Factory(random.Random)
    #: Probes made (each one connection), for tests and the measurement.
    probes: int = 0
    #: agent id → the re-check in flight (``recheck``), ended when it is set.
    _rechecks: dict[str, trio.Event] = attrs.field(factory=dict, init=False)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        limiter = trio.CapacityLimiter(self.config.probe_concurrency)
        async with trio.open_nursery() as nursery:
            for index, spec in enumerate(self.agents):
                nursery.start_soon(self._agent_loop, index, spec, limiter, name=f"probe {spec.id}")
            task_status.started()

    async def _agent_loop(self, index: int, spec: AgentSpec, limiter: trio.CapacityLimiter) -> None:
        cfg = self.config
        chat_id = str(PROBE_CHAT_ID_BASE + index)
        await trio.sleep(self.rng.uniform(0, cfg.probe_jitter_s))
        while True:
            async with limiter:
                await self.probe_once(spec, chat_id)
            # Sleep until the next probe is due, counting from the last observation:
            # a turn in between moves it (it was as good as a probe).
            while True:
                delay = next_delay(cfg.probe_interval_s, cfg.probe_jitter_s, self.rng)
                observed = self.board.observed_at(spec.id)
                base = trio.current_time() if observed is None else observed
                await trio.sleep_until(base + delay)
                if self.board.observed_at(spec.id) == observed:
                    break

    async def recheck(self, agent_id: str) -> None:
        """Probe ``agent_id`` now, with the short ``recheck_client`` deadlines: a
        message arrived for an agent the board calls offline, and it may be back
        since the last probe (then the message runs at once, with no notice).

        One re-check per agent at a time: messages in many rooms for the same dead
        agent share the probe in flight (waiting for its result) instead of each
        opening a connection of its own, and an agent observed within the last
        ``RECHECK_FRESH_S`` is not probed again."""
        observed = self.board.observed_at(agent_id)
        if observed is not None and self.board.clock() - observed < RECHECK_FRESH_S:
            return  # a probe or turn just saw it: that answer is the re-check's
        in_flight = self._rechecks.get(agent_id)
        client = self.recheck_client or self.client
        if in_flight is not None:
            with trio.move_on_after(client.limits.total_s + PROBE_MARGIN_S):
                await in_flight.wait()
            return
        for index, spec in enumerate(self.agents):
            if spec.id == agent_id:
                done = self._rechecks[agent_id] = trio.Event()
                try:
                    await self.probe_once(spec, str(PROBE_CHAT_ID_BASE + index), client)
                finally:
                    del self._rechecks[agent_id]
                    done.set()
                return

    async def probe_once(
        self, spec: AgentSpec, chat_id: str, client: AgentClient | None = None
    ) -> None:
        """One probe, its result on the board."""
        self.probes += 1
        client = client or self.client
        limits = client.limits
        ok, status_s, error = False, None, "no answer in time"
        with trio.move_on_after(limits.total_s + PROBE_MARGIN_S):
            try:
                result = await client.probe(spec.base_url, chat_id)
            except AgentFailure as failure:
                error = str(failure)
            else:
                ok, status_s, error = True, result.status_s - result.connect_s, ""
        if not ok:
            log.debug("agent_probe_failed", agent_id=spec.id, error=error)
        self.board.observe_probe(spec.id, ok=ok, status_s=status_s)
