"""What the bot knows about each agent's health: online, away or offline, and when
it was last seen — normalised the way the earlier presence layer did (Matrix
``online`` → online, ``unavailable`` → away, ``offline``/unknown → offline).

Two kinds of observation feed one small state machine per agent (``AgentPresence``):

* **probes** (``observe_probe``): the prober connects and waits for ``STATUS`` every
  ``presence.probe_interval_s``. An answer is *seen*; no answer is *offline* at once
  (the agent is not reachable now — a probe has no retries to hide behind).
* **real turns** (``observe_turn``): a turn that succeeds is as good as a probe
  (online, seen, the failure count cleared); a turn that could not connect
  (``AGENT_UNAVAILABLE``, or ``AGENT_TIMEOUT`` in phase ``connect``) marks the agent
  offline at once; any other failure is counted, and ``away_failures`` of them within
  ``away_window_s`` make an answering agent *away*.

An answering agent is *away* when it is degraded: its last ``STATUS`` came later than
``away_status_s`` after the connect, or it failed turns recently. Failures age out of
the window, so the state is recomputed at every observation (a probe every 30 s).
Before the first observation the state is ``UNKNOWN`` (not shown as offline: the bot
just started and has not asked yet).

The machine is pure (times are passed in), so every transition has a deterministic
unit test (tests/surfaces/agents/test_presence.py). Example::

    p = AgentPresence(thresholds)
    p.observe_probe(ok=True, status_s=0.01, now=100.0, wall=1.7e9)
    p.state                # PresenceState.ONLINE
"""

from __future__ import annotations

import enum
from collections import deque

import attrs

from agent_client import AGENT_TIMEOUT, AGENT_UNAVAILABLE, AgentFailure

__all__ = [
    "AgentPresence",
    "PresenceState",
    "Thresholds",
    "TurnOutcome",
    "is_connect_failure",
]


class PresenceState(enum.StrEnum):
    """An agent's normalised state. ``UNKNOWN`` only until the first observation."""

    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"
    UNKNOWN = "unknown"

    @property
    def up(self) -> bool:
        """Answers (online or away): ``surfaces_agent_up`` 1."""
        return self in (PresenceState.ONLINE, PresenceState.AWAY)


#: The states exported as ``surfaces_agent_state{state}`` (one of them is 1).
SHOWN_STATES = (PresenceState.ONLINE, PresenceState.AWAY, PresenceState.OFFLINE)


class TurnOutcome(enum.Enum):
    """What a real turn tells about its agent."""

    OK = "ok"  # the agent answered to the end
    CONNECT_FAILED = "connect_failed"  # could not reach it (after the turn's retries)
    FAILED = "failed"  # reached it, but the turn failed (error, timeout, disconnect)


def is_connect_failure(failure: AgentFailure) -> bool:
    """A failure that means the agent is not reachable (not merely misbehaving)."""
    return failure.code == AGENT_UNAVAILABLE or (
        failure.code == AGENT_TIMEOUT and failure.phase == "connect"
    )


@attrs.frozen
class Thresholds:
    """What counts as degraded (from ``presence.*`` in the configuration)."""

    away_status_s: float = 5.0
    away_failures: int = 2
    away_window_s: float = 300.0


#: Failed turns remembered per agent (only ``away_failures`` matter; bounded anyway).
MAX_FAILURES_KEPT = 64


@attrs.define
class AgentPresence:
    """One agent's presence. ``now`` is monotonic (trio's clock), ``wall`` is Unix time
    (for "last seen", which is shown to people and survives clock jumps badly)."""

    thresholds: Thresholds = attrs.Factory(Thresholds)
    state: PresenceState = PresenceState.UNKNOWN
    #: Monotonic time of the last change of ``state`` (None: never observed).
    since: float | None = None
    #: Monotonic and wall time the agent last answered (None: never).
    last_seen: float | None = None
    last_seen_wall: float | None = None
    #: Seconds from connect to ``STATUS`` in the last successful probe.
    status_latency_s: float | None = None
    #: Monotonic times of recent failed turns (oldest first, bounded).
    failures: deque[float] = attrs.Factory(lambda: deque(maxlen=MAX_FAILURES_KEPT))
    reachable: bool | None = None

    def observe_probe(
        self, *, ok: bool, status_s: float | None, now: float, wall: float
    ) -> PresenceState:
        """A probe's result: ``ok`` with the seconds from connect to ``STATUS``, or
        not reachable. → the new state."""
        if ok:
            self.reachable = True
            self.status_latency_s = status_s
            self._seen(now, wall)
        else:
            self.reachable = False
        return self._settle(now)

    def observe_turn(self, outcome: TurnOutcome, *, now: float, wall: float) -> PresenceState:
        """A real turn's outcome (see ``TurnOutcome``). → the new state."""
        if outcome is TurnOutcome.OK:
            self.reachable = True
            self.failures.clear()
            self._seen(now, wall)
        elif outcome is TurnOutcome.CONNECT_FAILED:
            self.reachable = False
        else:
            # It connected (the failure came later): reachable, but count it.
            self.reachable = True
            self.failures.append(now)
        return self._settle(now)

    def refresh(self, now: float) -> PresenceState:
        """Recompute the state at ``now`` (failures age out of their window)."""
        return self._settle(now)

    def recent_failures(self, now: float) -> int:
        horizon = now - self.thresholds.away_window_s
        while self.failures and self.failures[0] < horizon:
            self.failures.popleft()
        return len(self.failures)

    # ---- internals ---------------------------------------------------------

    def _seen(self, now: float, wall: float) -> None:
        self.last_seen, self.last_seen_wall = now, wall

    def _degraded(self, now: float) -> bool:
        t = self.thresholds
        slow = self.status_latency_s is not None and self.status_latency_s > t.away_status_s
        return slow or self.recent_failures(now) >= t.away_failures

    def _settle(self, now: float) -> PresenceState:
        if self.reachable is None:
            state = PresenceState.UNKNOWN
        elif not self.reachable:
            state = PresenceState.OFFLINE
        elif self._degraded(now):
            state = PresenceState.AWAY
        else:
            state = PresenceState.ONLINE
        if state is not self.state:
            self.state, self.since = state, now
        return state
