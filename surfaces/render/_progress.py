"""One short line for agent progress events (tool calls, custom updates).

Progress is shown briefly while a turn runs and never becomes reply text (product
spec §5), so this only needs to be recognisable and bounded: the agent protocol
leaves these payloads free-form, so we look for a tool name in the shapes agents
commonly use and fall back to a generic line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_PROGRESS_CHARS", "progress_line"]

MAX_PROGRESS_CHARS = 80

_NAME_KEYS = ("name", "tool", "tool_name", "function", "tool_call")
_TEXT_KEYS = ("text", "message", "status")
_TOOL_ICON = "🔧"
_STATUS_ICON = "⏳"


def _one_line(value: str) -> str:
    """Collapse whitespace and drop control characters (no multi-line progress)."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(cleaned.split())


def _find_name(data: Mapping[str, Any], depth: int = 0) -> str | None:
    for key in _NAME_KEYS:
        value = data.get(key)
        if isinstance(value, str) and _one_line(value):
            return _one_line(value)
        if isinstance(value, Mapping) and depth < 2:  # {"function": {"name": ...}}
            nested = _find_name(value, depth + 1)
            if nested:
                return nested
    return None


def _truncate(line: str, limit: int) -> str:
    if len(line) <= limit:
        return line
    return line[: limit - 1].rstrip() + "…"


def progress_line(kind: str, data: Mapping[str, Any] | None) -> str:
    """A one-line, at most ``MAX_PROGRESS_CHARS`` description of a progress event.

    ``kind`` is the frame type (``AGENT_EVENT_TOOL_CALL_CHUNK`` …) or a short kind.
    Tool events show the tool name; custom updates with a ``text``/``message``/
    ``status`` string show that text; anything else is ``"🔧 …"``.

    >>> progress_line("AGENT_EVENT_TOOL_CALL_CHUNK", {"name": "web_search"})
    '🔧 web_search…'
    >>> progress_line("AGENT_EVENT_CUSTOM_UPDATE", {"text": "Reading files"})
    '⏳ Reading files'
    """
    data = data if isinstance(data, Mapping) else {}
    name = _find_name(data)
    if name:
        # The trailing "…" says "running"; a truncated name shares the same one.
        return _truncate(f"{_TOOL_ICON} {name}…", MAX_PROGRESS_CHARS)
    if "TOOL" not in kind.upper():
        for key in _TEXT_KEYS:
            value = data.get(key)
            if isinstance(value, str) and _one_line(value):
                return _truncate(f"{_STATUS_ICON} {_one_line(value)}", MAX_PROGRESS_CHARS)
    return f"{_TOOL_ICON} …"
