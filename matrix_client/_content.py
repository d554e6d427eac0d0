"""Pure builders of event content, and the event-size estimate.

Every message content carries ``m.mentions`` (``{}`` when nobody is mentioned):
since spec v1.7 its presence switches clients off the legacy "display name in
body" highlighting, so a bot reply that quotes a user's name does not ping them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

HTML_FORMAT = "org.matrix.custom.html"

#: The homeserver refuses events whose canonical JSON exceeds this (spec: 65536 bytes).
MAX_EVENT_BYTES = 65_536

#: Bytes the homeserver adds around ``type`` + ``content`` before it measures:
#: room_id and sender (up to 255 bytes each), event_id-sized prev_events and
#: auth_events (~45 bytes each, a handful), hashes (~60), signatures (~150 plus
#: the server name), depth, origin_server_ts, and key names/punctuation. Synapse
#: measures the whole signed PDU; 2 KiB covers it with room to spare for
#: ordinary ids, so an event this estimate accepts is accepted by the server.
ENVELOPE_OVERHEAD_BYTES = 2_048


def _mentions(user_ids: Sequence[str]) -> dict[str, Any]:
    return {"user_ids": list(user_ids)} if user_ids else {}


def text_content(
    body: str,
    *,
    html: str | None = None,
    msgtype: str = "m.text",
    mentions: Sequence[str] = (),
) -> dict[str, Any]:
    """An ``m.room.message`` content; ``html`` must already be sanitised.

    >>> text_content("hi @a:x", mentions=["@a:x"])["m.mentions"]
    {'user_ids': ['@a:x']}
    """
    content: dict[str, Any] = {"msgtype": msgtype, "body": body}
    if html is not None:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = html
    content["m.mentions"] = _mentions(mentions)
    return content


def notice_content(body: str, *, html: str | None = None) -> dict[str, Any]:
    """An ``m.notice`` (bot status text; other bots must not answer it)."""
    return text_content(body, html=html, msgtype="m.notice")


def edit_content(
    original_event_id: str,
    body: str,
    *,
    html: str | None = None,
    msgtype: str = "m.text",
    mentions: Sequence[str] = (),
) -> dict[str, Any]:
    """An ``m.replace`` edit of ``original_event_id`` with the new text.

    The top level is the fallback for clients without edit support (``"* "`` +
    text); ``m.new_content`` is what edit-aware clients show. ``mentions`` go into
    ``m.new_content``; the top-level ``m.mentions`` stays ``{}`` so that an edit
    (e.g. each streaming step) does not notify the same users again.
    """
    new_content = text_content(body, html=html, msgtype=msgtype, mentions=mentions)
    content = text_content("* " + body, html=None if html is None else "* " + html, msgtype=msgtype)
    content["m.new_content"] = new_content
    content["m.relates_to"] = {"rel_type": "m.replace", "event_id": original_event_id}
    return content


def media_content(
    msgtype: str,
    *,
    body: str,
    url: str | None = None,
    mimetype: str,
    size: int,
    extra_info: dict[str, Any] | None = None,
    file: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``m.file`` / ``m.image`` / ``m.audio`` / ``m.video`` content for an ``mxc://`` url,
    or, in an encrypted room, for an encrypted attachment's ``file`` object (which holds
    the url: the content then has no ``url``). Exactly one of the two.

    ``body`` is also sent as ``filename`` (spec v1.10), so clients show the name.
    """
    if (url is None) == (file is None):
        raise ValueError("media content needs exactly one of url and file")
    info: dict[str, Any] = {"mimetype": mimetype, "size": size}
    if extra_info:
        info.update(extra_info)
    content: dict[str, Any] = {"msgtype": msgtype, "body": body, "filename": body}
    if file is not None:
        content["file"] = file
    else:
        content["url"] = url
    content["info"] = info
    content["m.mentions"] = {}
    return content


def canonical_json(value: Any) -> bytes:
    """Matrix canonical JSON: sorted keys, no whitespace, UTF-8 (not ``\\u`` escapes)."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    ).encode("utf-8")


def event_size(event_type: str, content: dict[str, Any]) -> int:
    """Estimated size in bytes of the event as the homeserver will measure it.

    The canonical JSON of ``{"type", "content"}`` plus
    :data:`ENVELOPE_OVERHEAD_BYTES` for the fields the server adds.
    """
    return len(canonical_json({"type": event_type, "content": content})) + (ENVELOPE_OVERHEAD_BYTES)


def new_txn_id() -> str:
    """A fresh transaction id; persist it before the first attempt and reuse it."""
    return uuid.uuid4().hex
