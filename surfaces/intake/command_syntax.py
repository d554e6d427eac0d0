"""Command syntax: which text is a command, its canonical name and its arguments.

Pure, so it is easy to test and fuzz. Intake needs it to route (``!stop`` and
``!status`` run on the room's control lane); ``surfaces.commands`` runs them.
"""

from __future__ import annotations

import enum

import attrs


class CommandName(enum.StrEnum):
    NEW = "new"
    CHATS = "chats"
    RENAME = "rename"
    ARCHIVE = "archive"
    CLEAR = "clear"
    STOP = "stop"
    YES = "yes"
    NO = "no"
    LIST = "list"
    REMOVE = "remove"
    STATUS = "status"
    HELP = "help"
    SETTINGS = "settings"
    USAGE = "usage"
    # the chat's transcript (surfaces/commands/context.py)
    CONTEXT = "context"
    SAVE = "save"
    SNAPSHOTS = "snapshots"
    LOAD = "load"
    RESTORE = "restore"
    FORGET = "forget"


ALIASES = {"reset": CommandName.CLEAR}
KNOWN = frozenset(CommandName)
#: Run on the room's control lane: they are about the turn, so never wait behind it
#: (``!usage`` only reads, so it answers while a turn runs, too).
CONTROL = frozenset({CommandName.STOP, CommandName.STATUS, CommandName.USAGE})


@attrs.frozen
class Command:
    name: str  # canonical, lower case; may be unknown
    args: str  # the rest of the line, stripped
    raw: str  # the command word as typed (for the "unknown" hint)


def parse_command(body: str) -> Command | None:
    """``"!Rename  My chat"`` → ``Command("rename", "My chat", "!Rename")``; not a
    command → None. Only the first line counts; a lone ``!`` is not a command."""
    if not isinstance(body, str):
        return None
    text = body.strip()
    if not text.startswith("!") or len(text) < 2 or text[1].isspace():
        return None
    first = text.partition("\n")[0]
    # Any whitespace separates the command word (a tab or NBSP too, not just " ").
    word, *rest = first.split(None, 1)
    args = rest[0] if rest else ""
    name = word[1:].lower()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        return None
    return Command(ALIASES.get(name, name), " ".join(args.split()), word)


class ReactionControl(enum.StrEnum):
    """What a reaction of the chat's owner asks for (``surfaces.commands.reactions``
    runs it with the same handlers as the commands)."""

    STOP = "stop"  # 🛑 on a reply still streaming = !stop
    YES = "yes"  # 👍 on the agent's question = !yes
    NO = "no"  # 👎 on the agent's question = !no
    REGENERATE = "regenerate"  # 🔁 on the latest reply: the same turn again, into it


REACTION_KEYS: dict[str, ReactionControl] = {
    "\U0001f6d1": ReactionControl.STOP,  # 🛑
    "\U0001f44d": ReactionControl.YES,  # 👍
    "\U0001f44e": ReactionControl.NO,  # 👎
    "\U0001f501": ReactionControl.REGENERATE,  # 🔁
}
#: Run on the control lane: about the running turn, never behind it.
CONTROL_REACTIONS = frozenset({ReactionControl.STOP, ReactionControl.YES, ReactionControl.NO})
#: Presentation selectors (Element's quick reactions send 👍️ = U+1F44D U+FE0F) and
#: skin tones: the same reaction to us.
_MODIFIERS = dict.fromkeys([0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)])


def parse_reaction(key: object) -> ReactionControl | None:
    """A reaction key → the control it means, or None (any other key is just a
    reaction). ``"👍️"`` (with U+FE0F) and ``"👍"`` are the same."""
    if not isinstance(key, str) or len(key) > 16:
        return None
    return REACTION_KEYS.get(key.translate(_MODIFIERS))
