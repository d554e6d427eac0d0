"""A turn and its agent's presence, both ways.

* Before the turn: when the chat's agent is known to be **offline** (and a quick
  re-check — one probe, at most ``RECHECK_CAP_S`` per phase — agrees), the user gets
  an immediate notice (the message will be answered when the agent is back) and the
  turn waits — up to ``presence.offline_wait_s`` — until the prober sees the agent
  again, instead of failing after the connect timeout. When the wait runs out the
  turn runs anyway (and, with the agent still away, ends with the usual failure
  notice). ``!stop`` during the wait ends it: the message is not sent (one notice
  says so). A shutdown during the wait cancels it like a running turn: the message
  stays pending and the restarted bot answers it.
* After the turn: its outcome is an observation (``TurnOutcome``): a reply marks the
  agent online, a connect failure offline at once, other failures count towards
  *away*.

The notices are exactly-once per message: their txn ids come from the item's event
id (``{event}.offline``), so a crash re-run of the same turn does not repeat them.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

from agent_client import AgentFailure
from surfaces.agents import PresenceBoard, PresenceState, TurnOutcome, is_connect_failure
from surfaces.delivery import Notifier, answer_relation
from surfaces.state import InboxItem
from surfaces.turns.active import ActiveTurn

log = structlog.get_logger(__name__)


@attrs.define
class AgentPresenceHook:
    """What ``TurnRunner`` calls: ``ready`` before the turn, ``observe`` after it."""

    board: PresenceBoard
    notifier: Notifier
    offline_wait_s: float
    #: Probe the agent now, briefly (``Prober.recheck``); None: trust the board.
    recheck: Callable[[str], Awaitable[None]] | None = None

    async def ready(self, agent_id: str, item: InboxItem, active: ActiveTurn) -> bool:
        """Wait for an offline agent (see the module docstring). False: the user
        stopped the wait (``!stop``), the turn must not run."""
        if self.offline_wait_s <= 0 or self.board.state(agent_id) is not PresenceState.OFFLINE:
            return True
        if self.recheck is not None:
            # It may be back since the last probe: then no notice and no wait.
            await self.recheck(agent_id)
            if self.board.state(agent_id) is not PresenceState.OFFLINE:
                return True
        relation = answer_relation(item)
        await self.notifier.notice(
            item.room_id,
            "agent_offline_wait",
            txn_id=f"{item.event_id}.offline",
            relation=relation,
            minutes=max(1, math.ceil(self.offline_wait_s / 60)),
        )
        log.info("turn_waiting_for_agent", agent_id=agent_id, wait_s=self.offline_wait_s)
        waited_from = trio.current_time()
        # ``!stop`` cancels the active turn's scope; a cancel scope is entered once,
        # so the turn itself gets a fresh one afterwards.
        with active.scope, trio.move_on_after(self.offline_wait_s):
            await self.board.wait_up(agent_id)
        waited = round(trio.current_time() - waited_from, 3)
        if active.stopped:
            log.info("turn_wait_stopped", agent_id=agent_id, waited_s=waited)
            await self.notifier.notice(
                item.room_id,
                "agent_offline_wait_stopped",
                txn_id=f"{item.event_id}.offline.stop",
                relation=relation,
            )
            return False
        active.scope = trio.CancelScope()
        back = self.board.state(agent_id).up
        log.info("turn_wait_ended", agent_id=agent_id, agent_back=back, waited_s=waited)
        return True

    def observe(self, agent_id: str, failure: AgentFailure | None, *, stopped: bool) -> None:
        """The finished turn's outcome, as an observation of its agent."""
        if failure is None:
            if not stopped:
                self.board.observe_turn(agent_id, TurnOutcome.OK)
            return
        outcome = TurnOutcome.CONNECT_FAILED if is_connect_failure(failure) else TurnOutcome.FAILED
        self.board.observe_turn(agent_id, outcome)
