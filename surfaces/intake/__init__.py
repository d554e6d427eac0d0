"""From ``/sync`` to lanes: what each event becomes (``classify``), how much a room
may queue (``Backpressure``), how much one user may ask (``Budgets``), and the lane
workers that run items in order."""

from surfaces.intake.backpressure import Backpressure
from surfaces.intake.budgets import Bucket, Budgets, Rate, TokenBucket
from surfaces.intake.classify import MAX_BODY_CHARS, IntakePolicy, classify, gapped_rooms
from surfaces.intake.command_syntax import (
    ALIASES,
    CONTROL,
    KNOWN,
    Command,
    CommandName,
    parse_command,
)
from surfaces.intake.lanes import Handler, LaneSupervisor

__all__ = [
    "ALIASES",
    "CONTROL",
    "KNOWN",
    "MAX_BODY_CHARS",
    "Backpressure",
    "Bucket",
    "Budgets",
    "Command",
    "CommandName",
    "Handler",
    "IntakePolicy",
    "LaneSupervisor",
    "Rate",
    "TokenBucket",
    "classify",
    "gapped_rooms",
    "parse_command",
]
