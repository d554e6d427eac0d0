"""Turns: the user's messages (a burst merged, quotes, staged files) to the agent, the
reply streamed back. The runner, the prompt formats, the reply streamer, the running
turns, files both ways, and the choice of agent."""

from surfaces.turns.active import ActiveTurn, ActiveTurns
from surfaces.turns.agent_choice import AgentChoice
from surfaces.turns.agent_presence import AgentPresenceHook
from surfaces.turns.outgoing_files import OutgoingFiles
from surfaces.turns.primer import Primer, primer_text
from surfaces.turns.prompt import PromptMessage, Quote, prompt_text
from surfaces.turns.reply import ReplyStream, edit_throttle
from surfaces.turns.runner import TurnRequest, TurnRunner
from surfaces.turns.staging import IncomingFiles
from surfaces.turns.usage_budget import BudgetState, UsageBudgets, UsageGate, warn_threshold

__all__ = [
    "ActiveTurn",
    "ActiveTurns",
    "AgentChoice",
    "AgentPresenceHook",
    "BudgetState",
    "IncomingFiles",
    "OutgoingFiles",
    "Primer",
    "PromptMessage",
    "Quote",
    "ReplyStream",
    "TurnRequest",
    "TurnRunner",
    "UsageBudgets",
    "UsageGate",
    "edit_throttle",
    "primer_text",
    "prompt_text",
    "warn_threshold",
]
