"""Wire frames (agent-protocol.md, "Frames") as attrs values, with strict parsing.

``parse_frame`` is the only place that looks at raw JSON: anything that is not a
JSON object with a string ``type``, or lacks/mistypes a required field, raises
``FrameError`` (the client turns it into ``AGENT_PROTOCOL_ERROR``). Optional fields
that are present but ill-typed are dropped, not fatal: an END with a bogus
``tokens_used`` still ends the turn.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

STATUS = "STATUS"
USER_MESSAGE = "USER_MESSAGE"
USER_CONFIRM = "USER_CONFIRM"
TEXT_CHUNK = "AGENT_EVENT_TEXT_CHUNK"
SEND_FILE = "AGENT_EVENT_SEND_FILE"
TOOL_CALL_CHUNK = "AGENT_EVENT_TOOL_CALL_CHUNK"
TOOL_RESULT = "AGENT_EVENT_TOOL_RESULT"
CUSTOM_UPDATE = "AGENT_EVENT_CUSTOM_UPDATE"
CONFIRM_REQUEST = "AGENT_EVENT_CONFIRM_REQUEST"
END = "AGENT_EVENT_END"
ERROR = "ERROR"
GRACEFUL_DISCONNECT = "GRACEFUL_DISCONNECT"

PROGRESS_TYPES = frozenset({TOOL_CALL_CHUNK, TOOL_RESULT, CUSTOM_UPDATE})


class FrameError(ValueError):
    """A received frame breaks the protocol (not JSON, not an object, bad fields)."""


# --- events a turn yields to its caller -------------------------------------------


@attrs.frozen
class TextChunk:
    """A piece of the reply text, in order."""

    text: str


@attrs.frozen
class SendFile:
    """Deliver this workspace file (path as the agent names it) to the user."""

    path: str


@attrs.frozen
class ToolProgress:
    """Tool call / tool result / custom update: progress, never reply text.

    ``kind`` is the frame type (e.g. ``AGENT_EVENT_TOOL_RESULT``); ``data`` is the
    frame without its ``type``.
    """

    kind: str
    data: dict[str, Any]


@attrs.frozen
class ConfirmRequest:
    """The agent asks the user to approve an action; answer with ``Turn.confirm``."""

    id: str
    text: str


@attrs.frozen
class TurnEnd:
    """End of the turn (``AGENT_EVENT_END``)."""

    tokens_used: int | None


TurnEvent = TextChunk | SendFile | ToolProgress | ConfirmRequest | TurnEnd


# --- frames that never reach the caller -------------------------------------------


@attrs.frozen
class Status:
    data: dict[str, Any]


#: A ``STATUS.boot_id`` longer than this is ignored (a process identity, not data).
MAX_BOOT_ID_CHARS = 128


def status_boot_id(frame: Status) -> str | None:
    """The optional ``boot_id`` of a STATUS frame (project extension): a non-empty
    string of at most ``MAX_BOOT_ID_CHARS`` characters, else None (ignored)."""
    value = frame.data.get("boot_id")
    if not isinstance(value, str) or not value or len(value) > MAX_BOOT_ID_CHARS:
        return None
    return value


@attrs.frozen
class AgentErrorFrame:
    code: str | None
    details: str | None


@attrs.frozen
class GracefulDisconnect:
    pass


@attrs.frozen
class UnknownFrame:
    type: str


Frame = TurnEvent | Status | AgentErrorFrame | GracefulDisconnect | UnknownFrame


def _required_str(obj: dict[str, Any], key: str, ftype: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise FrameError(f"{ftype}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def parse_frame(raw: str | bytes) -> Frame:
    """Decode one received WebSocket message into a frame value.

    Raises:
        FrameError: binary message, invalid JSON, not an object, no string ``type``,
            or a required field missing / of the wrong type.
    """
    if isinstance(raw, bytes):
        raise FrameError("binary frame (the protocol uses JSON text frames)")
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise FrameError(f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError(f"frame is not a JSON object but {type(obj).__name__}")
    ftype = obj.get("type")
    if not isinstance(ftype, str):
        raise FrameError("frame has no string 'type'")
    if ftype == TEXT_CHUNK:
        return TextChunk(_required_str(obj, "text", ftype))
    if ftype == SEND_FILE:
        return SendFile(_required_str(obj, "path", ftype))
    if ftype in PROGRESS_TYPES:
        return ToolProgress(ftype, {k: v for k, v in obj.items() if k != "type"})
    if ftype == CONFIRM_REQUEST:
        return ConfirmRequest(_required_str(obj, "id", ftype), _required_str(obj, "text", ftype))
    if ftype == END:
        tokens = obj.get("tokens_used")
        valid = isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0
        return TurnEnd(tokens if valid else None)
    if ftype == STATUS:
        return Status({k: v for k, v in obj.items() if k != "type"})
    if ftype == ERROR:
        return AgentErrorFrame(_optional_str(obj, "code"), _optional_str(obj, "details"))
    if ftype == GRACEFUL_DISCONNECT:
        return GracefulDisconnect()
    return UnknownFrame(ftype)


def encode_user_message(text: str, attachments: list[str] | tuple[str, ...]) -> str:
    return json.dumps(
        {"type": USER_MESSAGE, "text": text, "attachments": list(attachments)},
        ensure_ascii=False,
    )


def encode_user_confirm(request_id: str, approved: bool) -> str:
    return json.dumps({"type": USER_CONFIRM, "id": request_id, "approved": approved})
