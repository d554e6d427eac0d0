"""The chat binding codec: the one place where a binding becomes a Matrix state event
and a state event becomes a binding again.

A binding (owner, ``C<n>``, agent, platform chat id, name, status) lives in two places:
the database, and ``org.lambda.surfaces.chat`` in the working room, so that a lost
database can be rebuilt from Matrix (``surfaces.workspaces.reconcile``). A state event is
input like any other: :meth:`ChatBinding.from_content` accepts only well-formed values
(ASCII digits for ids, a ``C<n>`` local id, a user id for the owner) and returns
``None`` for anything else; whether the *sender* may be trusted is decided by the caller.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import attrs

CHAT_EVENT = "org.lambda.surfaces.chat"
"""In each working room: owner, chat id, agent id, platform chat id, name, status."""

SPACE_EVENT = "org.lambda.surfaces.space"
"""In each user's Space: the owner and the DM room the user talks to the bot in."""

THREAD_EVENT = "org.lambda.surfaces.thread"
"""In a working room, one per thread (``state_key`` = the thread root): the thread's own
platform chat id, so a thread keeps its agent conversation across a lost database."""

_EVENT_ID = re.compile(r"\$[\x21-\x7e]{1,254}")

VERSION = 1
MAX_NAME_CHARS = 255

_DIGITS = re.compile(r"[0-9]{1,30}")
_LOCAL_ID = re.compile(r"C([1-9][0-9]{0,9})")
# "@" localpart ":" server: enough to refuse garbage; the allow-list does the rest.
_USER_ID = re.compile(r"@[\x21-\x39\x3b-\x7e]+:[\x21-\x7e]+")


class ChatStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


def is_platform_chat_id(value: object) -> bool:
    """ASCII digits only (``"²".isdigit()`` is True, ``int("²")`` fails)."""
    return isinstance(value, str) and _DIGITS.fullmatch(value) is not None


def is_local_id(value: object) -> bool:
    """``C1``, ``C2``…: the per-user chat number."""
    return isinstance(value, str) and _LOCAL_ID.fullmatch(value) is not None


def local_number(local_id: str) -> int | None:
    """``"C12"`` → 12; None when it is not a local id."""
    match = _LOCAL_ID.fullmatch(local_id)
    return int(match.group(1)) if match else None


@attrs.frozen
class ChatBinding:
    owner: str
    local_id: str
    agent_id: str
    platform_chat_id: str
    name: str
    status: ChatStatus = ChatStatus.ACTIVE

    def to_content(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "owner": self.owner,
            "chat_id": self.local_id,
            "agent_id": self.agent_id,
            "platform_chat_id": self.platform_chat_id,
            "name": self.name,
            "status": self.status.value,
        }

    @classmethod
    def from_content(cls, content: object) -> ChatBinding | None:
        """The binding a state event's content holds, or None if it is malformed."""
        if not isinstance(content, dict):
            return None
        owner = content.get("owner")
        local_id = content.get("chat_id")
        agent_id = content.get("agent_id")
        platform_chat_id = content.get("platform_chat_id")
        if not (isinstance(owner, str) and _USER_ID.fullmatch(owner)):
            return None
        if not is_local_id(local_id) or not is_platform_chat_id(platform_chat_id):
            return None
        if not (isinstance(agent_id, str) and agent_id and agent_id.isprintable()):
            return None
        name = content.get("name")
        if not isinstance(name, str) or not name.strip():
            name = local_id
        status = (
            ChatStatus.ARCHIVED
            if content.get("status") == ChatStatus.ARCHIVED
            else ChatStatus.ACTIVE
        )
        return cls(owner, local_id, agent_id, platform_chat_id, name[:MAX_NAME_CHARS], status)


@attrs.frozen
class SpaceBinding:
    owner: str
    dm_room_id: str | None = None

    def to_content(self) -> dict[str, Any]:
        content: dict[str, Any] = {"version": VERSION, "owner": self.owner}
        if self.dm_room_id:
            content["dm_room_id"] = self.dm_room_id
        return content

    @classmethod
    def from_content(cls, content: object) -> SpaceBinding | None:
        if not isinstance(content, dict):
            return None
        owner = content.get("owner")
        if not (isinstance(owner, str) and _USER_ID.fullmatch(owner)):
            return None
        dm = content.get("dm_room_id")
        return cls(owner, dm if isinstance(dm, str) and dm.startswith("!") else None)


def is_event_id(value: object) -> bool:
    """``$…``: printable ASCII, bounded (what a thread root must look like)."""
    return isinstance(value, str) and _EVENT_ID.fullmatch(value) is not None


@attrs.frozen
class ThreadBinding:
    """A thread of a working room that is its own agent conversation."""

    root: str  # the thread root's event id (the state key)
    platform_chat_id: str

    def to_content(self) -> dict[str, Any]:
        return {"version": VERSION, "root": self.root, "platform_chat_id": self.platform_chat_id}

    @classmethod
    def from_content(cls, state_key: object, content: object) -> ThreadBinding | None:
        """The binding a state event holds, or None when malformed (the root in the
        content must be the state key: a copy under another key is not trusted)."""
        if not isinstance(content, dict) or not is_event_id(state_key):
            return None
        platform_chat_id = content.get("platform_chat_id")
        if content.get("root") != state_key or not is_platform_chat_id(platform_chat_id):
            return None
        return cls(state_key, platform_chat_id)
