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


ALIASES = {"reset": CommandName.CLEAR}
KNOWN = frozenset(CommandName)
#: Run on the room's control lane: they are about the turn, so never wait behind it.
CONTROL = frozenset({CommandName.STOP, CommandName.STATUS})


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
