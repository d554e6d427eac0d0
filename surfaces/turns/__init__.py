"""Turns: one user message (and its staged files) to the agent, the reply streamed
back. The runner, the reply streamer, the running turns, files both ways, and the
choice of agent."""

from surfaces.turns.active import ActiveTurn, ActiveTurns
from surfaces.turns.agent_choice import AgentChoice
from surfaces.turns.outgoing_files import OutgoingFiles
from surfaces.turns.reply import ReplyStream, edit_throttle
from surfaces.turns.runner import TurnRunner
from surfaces.turns.staging import IncomingFiles

__all__ = [
    "ActiveTurn",
    "ActiveTurns",
    "AgentChoice",
    "IncomingFiles",
    "OutgoingFiles",
    "ReplyStream",
    "TurnRunner",
    "edit_throttle",
]
