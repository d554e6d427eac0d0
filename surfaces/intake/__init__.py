"""From ``/sync`` to lanes: what each event becomes (``classify``), how much a room
may queue (``Backpressure``), how much one user may ask (``Budgets``), the lane
workers that run items in order, and the queue's other doors (``RoomQueue``: hand-offs
from the control lane, withdrawals)."""

from surfaces.intake.backpressure import Backpressure
from surfaces.intake.budgets import Bucket, Budgets, Rate, TokenBucket
from surfaces.intake.classify import MAX_BODY_CHARS, IntakePolicy, classify, gapped_rooms
from surfaces.intake.command_syntax import (
    ALIASES,
    CONTROL,
    CONTROL_REACTIONS,
    KNOWN,
    REACTION_KEYS,
    Command,
    CommandName,
    ReactionControl,
    parse_command,
    parse_reaction,
)
from surfaces.intake.lanes import Handler, LaneSupervisor
from surfaces.intake.queue import RoomQueue, room_item

__all__ = [
    "ALIASES",
    "CONTROL",
    "CONTROL_REACTIONS",
    "KNOWN",
    "MAX_BODY_CHARS",
    "REACTION_KEYS",
    "Backpressure",
    "Bucket",
    "Budgets",
    "Command",
    "CommandName",
    "Handler",
    "IntakePolicy",
    "LaneSupervisor",
    "Rate",
    "ReactionControl",
    "RoomQueue",
    "TokenBucket",
    "classify",
    "gapped_rooms",
    "parse_command",
    "parse_reaction",
    "room_item",
]
