"""Sync intake, the pure part: what each event of a ``/sync`` batch becomes (an inbox
item on its lane, or nothing). Admitting and dispatching are the sync task's
(``surfaces.app.sync``).

``classify`` is pure: it decides what the bot acts on. Ignored: our own events,
``m.notice`` (bots must not answer bots), edits and other relations that are not
new prompts, users outside the allow-list, and history from before the bot
joined a room (on a fresh start without a token, all of it).

History is recognised by ``unsigned.membership`` (MSC4115, spec v1.11): the
bot's membership at the event, anything but ``join`` means "before we joined".
That is what lets the sync filter hide the bot's own events (``not_senders``),
its join included. Servers that do not send it are handled by the older rule:
within a room's part of a batch, what precedes the bot's own join event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import structlog

from matrix_client import SyncBatch
from surfaces.core import ItemKind, Lane, clean_text
from surfaces.intake.command_syntax import CONTROL, CommandName, parse_command
from surfaces.state import InboxItem

log = structlog.get_logger(__name__)

MEDIA_TYPES = frozenset({"m.file", "m.image", "m.audio", "m.video"})
TEXT_TYPES = frozenset({"m.text", "m.emote"})
MAX_BODY_CHARS = 32_000


@attrs.frozen
class IntakePolicy:
    own_user_id: str
    is_allowed: Callable[[str], bool]
    awaiting_confirmation: Callable[[str], bool] = lambda room_id: False


def classify(batch: SyncBatch, policy: IntakePolicy) -> list[InboxItem]:
    """The inbox items of one sync batch, in timeline order."""
    items: list[InboxItem] = []
    for invite in batch.invites:
        inviter = invite.inviter
        if not inviter or inviter == policy.own_user_id or not policy.is_allowed(inviter):
            log.info("invite_ignored", room_id=invite.room_id, inviter=inviter)
            continue
        items.append(
            InboxItem(
                # Keyed by the token the batch was *requested* with: a sync replayed
                # after a crash (same since, possibly a newer next_batch because more
                # events arrived meanwhile) yields the same key, so the inbox admits
                # the invite once. A later re-invite arrives under a later token.
                event_id=f"invite:{invite.room_id}:{batch.since or 'initial'}",
                lane=Lane.invite(inviter),
                room_id=invite.room_id,
                sender=inviter,
                kind=ItemKind.INVITE,
                payload={"is_direct": invite.is_direct, "encrypted": invite.encrypted},
            )
        )

    if batch.since is None:
        # First sync ever (or after a lost database): everything in the timelines
        # is history from before this state existed. Invites still count.
        return items

    # History from before the bot joined a room is not a prompt. Without
    # ``unsigned.membership`` (older servers): within a room's part of this
    # batch, drop what precedes our own join.
    joined_at: dict[str, int] = {}
    for index, entry in enumerate(batch.events):
        ev = entry.event
        if (
            ev.type == "m.room.member"
            and ev.state_key == policy.own_user_id
            and ev.content.get("membership") == "join"
        ):
            joined_at[entry.room_id] = index

    for index, entry in enumerate(batch.events):
        ev = entry.event
        membership = _membership_at(ev)
        if membership is not None:
            if membership != "join":
                continue  # sent before we joined (invited, or not in the room yet)
        elif index < joined_at.get(entry.room_id, -1):
            continue
        if ev.sender == policy.own_user_id:
            continue
        try:
            item = _classify_event(entry.room_id, ev, policy)
        except Exception:
            # Malformed content must never stop the sync loop (it would stall the
            # token and every room): skip the event with a log line.
            log.warning("event_malformed", room_id=entry.room_id, event_id=ev.event_id)
            continue
        if item is not None:
            items.append(item)
    return items


def gapped_rooms(batch: SyncBatch) -> set[str]:
    """Rooms whose timeline in this batch is ``limited`` in a way that may have
    dropped prompts: never on a token-less first sync (all history anyway), and
    not when the first event shown is already from before our join (the skipped
    ones are older still, e.g. a long-lived room the bot was just invited to)."""
    if batch.since is None:
        return set()
    gapped: set[str] = set()
    for room_id in batch.limited_rooms:
        room = batch.response.rooms.join.get(room_id)
        events = room.timeline.events if room is not None else []
        membership = _membership_at(events[0]) if events else None
        if membership is not None and membership != "join":
            log.info("history_gap_ignored", room_id=room_id)
            continue
        gapped.add(room_id)
    return gapped


def _membership_at(ev: Any) -> str | None:
    """Our membership at the event (``unsigned.membership``), if the server said."""
    unsigned = ev.unsigned
    value = unsigned.get("membership") if isinstance(unsigned, dict) else None
    return value if isinstance(value, str) else None


def _classify_event(room_id: str, ev: Any, policy: IntakePolicy) -> InboxItem | None:
    if ev.type not in ("m.room.message", "m.room.encrypted"):
        return None
    if not policy.is_allowed(ev.sender):
        return None
    lane = Lane.room(room_id)
    if ev.type == "m.room.encrypted":
        return InboxItem(ev.event_id, lane, room_id, ev.sender, ItemKind.ENCRYPTED, {})
    content = ev.content
    if not isinstance(content, dict):
        return None
    relates = content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
        return None  # an edit is not a new prompt
    msgtype = content.get("msgtype")
    if not isinstance(msgtype, str):
        return None  # missing or malformed (a list is not even hashable for ``in``)
    if msgtype in MEDIA_TYPES:
        payload = {
            "msgtype": msgtype,
            "url": content.get("url") if isinstance(content.get("url"), str) else None,
            "name": _str(content.get("filename")) or _str(content.get("body")),
            "info": content.get("info") if isinstance(content.get("info"), dict) else {},
        }
        if isinstance(content.get("file"), dict):
            # An encrypted attachment: its url, key and hash (staging checks them).
            payload["file"] = content["file"]
        return InboxItem(ev.event_id, lane, room_id, ev.sender, ItemKind.FILE, payload)
    if msgtype not in TEXT_TYPES:
        return None  # m.notice (bots must not answer bots), m.location, unknown types
    body = content.get("body")
    if not isinstance(body, str) or not body.strip():
        return None
    body = clean_text(body)
    truncated = len(body) > MAX_BODY_CHARS
    body = body[:MAX_BODY_CHARS]
    cmd = parse_command(body)
    if cmd is not None and (
        cmd.name in CONTROL
        or (cmd.name in (CommandName.YES, CommandName.NO) and policy.awaiting_confirmation(room_id))
    ):
        lane = Lane.control(room_id)
    kind = ItemKind.COMMAND if cmd is not None else ItemKind.TEXT
    payload: dict[str, Any] = {"body": body}
    if truncated:
        payload["truncated"] = True
    return InboxItem(ev.event_id, lane, room_id, ev.sender, kind, payload)


def _str(value: object) -> str | None:
    return clean_text(value) if isinstance(value, str) and value else None
