"""Relations the bot puts on what it sends (``m.relates_to``)."""

from __future__ import annotations

from typing import Any


def thread_relation(root: str, reply_to: str | None) -> dict[str, Any]:
    """A message in the thread of ``root`` (spec: threading). ``is_falling_back``
    marks the ``m.in_reply_to`` as the fallback for clients without threads (they
    show a reply to the user's message, in the main timeline), not a real reply.

    Only a message carries it: an edit's relation is its ``m.replace``, and its
    ``m.new_content`` has no ``m.relates_to`` at all (the spec: an edit cannot move a
    message into or out of a thread).
    """
    relation: dict[str, Any] = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    if reply_to:
        relation["m.in_reply_to"] = {"event_id": reply_to}
    return relation
