"""The ``!`` commands of a working room, one module per group, and their dispatch;
reactions as controls, and the user's corrections (edits, 🔁, redactions)."""

from surfaces.commands._invocation import MAX_NAME_CHARS, Invocation, Reply
from surfaces.commands.chats import ChatCommands
from surfaces.commands.context import ContextCommands
from surfaces.commands.corrections import Corrections
from surfaces.commands.dispatch import Commands
from surfaces.commands.files import FileCommands
from surfaces.commands.info import InfoCommands
from surfaces.commands.reactions import Reactions
from surfaces.commands.turn_control import TurnControl
from surfaces.commands.usage import UsageCommands

__all__ = [
    "MAX_NAME_CHARS",
    "ChatCommands",
    "Commands",
    "ContextCommands",
    "Corrections",
    "FileCommands",
    "InfoCommands",
    "Invocation",
    "Reactions",
    "Reply",
    "TurnControl",
    "UsageCommands",
]
