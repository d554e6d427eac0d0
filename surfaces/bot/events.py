"""The bot's own Matrix state event types and their contents.

These events make the bindings restorable from Matrix itself: a lost database
is rebuilt from the Space tree and these events (see ``reconcile``).
"""

from __future__ import annotations

from typing import Any

CHAT_EVENT = "org.lambda.surfaces.chat"
"""In each working room: owner, chat id, agent id, platform chat id, name, status."""

SPACE_EVENT = "org.lambda.surfaces.space"
"""In each user's Space: the owner and the DM room the user talks to the bot in."""

VERSION = 1


def chat_content(
    *,
    owner: str,
    local_id: str,
    agent_id: str,
    platform_chat_id: str,
    name: str,
    status: str = "active",
) -> dict[str, Any]:
    return {
        "version": VERSION,
        "owner": owner,
        "chat_id": local_id,
        "agent_id": agent_id,
        "platform_chat_id": platform_chat_id,
        "name": name,
        "status": status,
    }


def space_content(*, owner: str, dm_room_id: str | None) -> dict[str, Any]:
    content: dict[str, Any] = {"version": VERSION, "owner": owner}
    if dm_room_id:
        content["dm_room_id"] = dm_room_id
    return content


def parse_chat_content(content: dict[str, Any] | None) -> dict[str, str] | None:
    """The chat binding from a state event, or None if it is not a valid one."""
    if not isinstance(content, dict):
        return None
    fields = ("owner", "chat_id", "agent_id", "platform_chat_id")
    if not all(isinstance(content.get(f), str) and content.get(f) for f in fields):
        return None
    if not str(content["platform_chat_id"]).isdigit():
        return None
    return {
        "owner": content["owner"],
        "chat_id": content["chat_id"],
        "agent_id": content["agent_id"],
        "platform_chat_id": content["platform_chat_id"],
        "name": str(content.get("name") or content["chat_id"]),
        "status": "archived" if content.get("status") == "archived" else "active",
    }
