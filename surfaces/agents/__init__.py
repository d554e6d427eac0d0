"""The bot's side of its agents: the one mapping from configuration to the agent
client's limits, and what the bot knows about each agent's health (presence: the
state machine, the board every part reads, the prober that feeds it)."""

from surfaces.agents.board import PresenceBoard, problems
from surfaces.agents.limits import probe_limits, turn_limits
from surfaces.agents.presence import (
    SHOWN_STATES,
    AgentPresence,
    PresenceState,
    Thresholds,
    TurnOutcome,
    is_connect_failure,
)
from surfaces.agents.prober import PROBE_CHAT_ID_BASE, RECHECK_CAP_S, Prober, next_delay

__all__ = [
    "PROBE_CHAT_ID_BASE",
    "RECHECK_CAP_S",
    "SHOWN_STATES",
    "AgentPresence",
    "PresenceBoard",
    "PresenceState",
    "Prober",
    "Thresholds",
    "TurnOutcome",
    "is_connect_failure",
    "next_delay",
    "probe_limits",
    "problems",
    "turn_limits",
]
