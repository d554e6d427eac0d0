"""``PresenceBoard``: every registry agent's presence, in one place the prober, turns,
``!status``, the metrics and the bot's own Matrix presence read.

Why a board and not a value per chat: presence is a property of the agent, and many
chats share one agent; the prober probes each agent once per interval whatever the
number of users. Waiters for an agent that is offline (a turn that holds a message
until the agent is back) wait on one ``trio.Event`` per *down period*: it is set,
and replaced, when the agent is seen again, so waiting costs no polling and nothing
accumulates (an event nobody waits for is just garbage).

Changes are logged once (``agent_presence_changed``), counted in the metrics and
announced to whoever follows the summary (``wait_changed``: the bot's presence).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import attrs
import structlog
import trio

from surfaces.agents.presence import AgentPresence, PresenceState, Thresholds, TurnOutcome

log = structlog.get_logger(__name__)

#: Called with (agent id, new state) on every change (the metrics).
OnChange = Callable[[str, PresenceState], None]


@attrs.define
class _Entry:
    presence: AgentPresence
    #: Set (and replaced) when the agent is seen answering after a down period.
    back: trio.Event = attrs.Factory(trio.Event)
    #: Monotonic time of the last observation of any kind (probe or turn).
    observed_at: float | None = None


@attrs.define
class PresenceBoard:
    """Presence of the agents ``agent_ids`` (registry order). Unknown ids are ignored
    by the observers and read as ``UNKNOWN`` (a chat bound to an agent that left the
    registry resolves to the user's agent before it gets here)."""

    agent_ids: tuple[str, ...] = attrs.field(converter=tuple)
    thresholds: Thresholds = attrs.Factory(Thresholds)
    on_change: OnChange | None = None
    clock: Callable[[], float] = trio.current_time
    wall: Callable[[], float] = time.time
    _entries: dict[str, _Entry] = attrs.field(init=False)
    _version: int = attrs.field(default=0, init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __attrs_post_init__(self) -> None:
        self._entries = {a: _Entry(AgentPresence(self.thresholds)) for a in self.agent_ids}
        if self.on_change is not None:
            for agent_id in self.agent_ids:
                self.on_change(agent_id, PresenceState.UNKNOWN)

    # ---- reading -------------------------------------------------------------

    def get(self, agent_id: str) -> AgentPresence | None:
        entry = self._entries.get(agent_id)
        return entry.presence if entry is not None else None

    def state(self, agent_id: str) -> PresenceState:
        entry = self._entries.get(agent_id)
        return entry.presence.state if entry is not None else PresenceState.UNKNOWN

    def states(self) -> list[tuple[str, PresenceState]]:
        """(agent id, state) for every agent, in registry order."""
        return [(a, self._entries[a].presence.state) for a in self.agent_ids]

    def seen_ago(self, agent_id: str) -> float | None:
        """Seconds since the agent last answered (monotonic: clock jumps do not
        matter); None if it never did."""
        presence = self.get(agent_id)
        if presence is None or presence.last_seen is None:
            return None
        return max(0.0, self.clock() - presence.last_seen)

    def observed_at(self, agent_id: str) -> float | None:
        entry = self._entries.get(agent_id)
        return entry.observed_at if entry is not None else None

    @property
    def version(self) -> int:
        """Bumped on every state change (``wait_changed``)."""
        return self._version

    # ---- observing -------------------------------------------------------------

    def observe_probe(self, agent_id: str, *, ok: bool, status_s: float | None = None) -> None:
        self._observe(
            agent_id,
            "probe",
            lambda p, now, wall: p.observe_probe(ok=ok, status_s=status_s, now=now, wall=wall),
        )

    def observe_turn(self, agent_id: str, outcome: TurnOutcome) -> None:
        self._observe(
            agent_id, "turn", lambda p, now, wall: p.observe_turn(outcome, now=now, wall=wall)
        )

    def _observe(
        self, agent_id: str, source: str, apply: Callable[[AgentPresence, float, float], None]
    ) -> None:
        """One observation of a registry agent (others are ignored), stamped and applied."""
        entry = self._entries.get(agent_id)
        if entry is None:
            return
        now = self.clock()
        entry.observed_at = now
        before = entry.presence.state
        apply(entry.presence, now, self.wall())
        self._after(agent_id, entry, before, source)

    # ---- waiting ----------------------------------------------------------------

    async def wait_up(self, agent_id: str) -> None:
        """Return once ``agent_id`` answers (online or away). No deadline of its own:
        the caller bounds it (``trio.move_on_after``)."""
        entry = self._entries.get(agent_id)
        if entry is None:
            return
        while not entry.presence.state.up:
            await entry.back.wait()

    async def wait_changed(self, version: int) -> int:
        """Return the current version once it differs from ``version``."""
        while self._version == version:
            await self._changed.wait()
        return self._version

    # ---- internals -----------------------------------------------------------------

    def _after(self, agent_id: str, entry: _Entry, before: PresenceState, source: str) -> None:
        after = entry.presence.state
        if after is before:
            return
        log.info(
            "agent_presence_changed",
            agent_id=agent_id,
            previous=before.value,
            state=after.value,
            source=source,
            status_ms=_ms(entry.presence.status_latency_s),
        )
        if self.on_change is not None:
            self.on_change(agent_id, after)
        if after.up and not before.up:
            entry.back.set()
            entry.back = trio.Event()
        self._version += 1
        self._changed.set()
        self._changed = trio.Event()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def problems(states: Iterable[tuple[str, PresenceState]]) -> list[str]:
    """The agents that are not online, as "agent-0 offline" (for the bot's status)."""
    return [f"{a} {s.value}" for a, s in states if s is not PresenceState.ONLINE]
