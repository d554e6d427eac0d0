"""Sync intake, the pure part: what each event of a ``/sync`` batch becomes (an inbox
item on its lane, or nothing). Admitting and dispatching are the sync task's
(``surfaces.app.sync``).

``classify`` is pure: it decides what the bot acts on. Ignored: our own events,
``m.notice`` (bots must not answer bots), reactions that are not controls, users
outside the allow-list, and history from before the bot joined a room (on a fresh
start without a token, all of it). Everything else a client like Element sends
becomes an item: text (reply fallbacks stripped first, so a command in a reply is a
command; HTML-only messages as text; emotes as ``/me …``), files (with their
caption), edits, control reactions, redactions, and one "cannot pass this on" item
for locations, stickers and polls. A message in a thread carries its root.

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
from surfaces.core import MAX_BODY_CHARS, ItemKind, Lane, clean_text, is_event_id
from surfaces.intake.command_syntax import (
    CONTROL,
    CONTROL_REACTIONS,
    CommandName,
    parse_command,
    parse_reaction,
)
from surfaces.render import ANNOTATION, REPLACE, Relation, message_text, relation_of
from surfaces.state import InboxItem

log = structlog.get_logger(__name__)

MEDIA_TYPES = frozenset({"m.file", "m.image", "m.audio", "m.video"})
TEXT_TYPES = frozenset({"m.text", "m.emote"})
#: What the bot cannot pass on to an agent: one short notice each, never silence.
UNSUPPORTED_MSGTYPES = {"m.location": "location"}
UNSUPPORTED_TYPES = {
    "m.sticker": "sticker",
    "m.poll.start": "poll",
    "org.matrix.msc3381.poll.start": "poll",
}


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
    if not policy.is_allowed(ev.sender):
        return None
    content = ev.content
    if not isinstance(content, dict):
        return None
    if ev.type == "m.room.encrypted":
        return _item(ev, Lane.room(room_id), room_id, ItemKind.ENCRYPTED, {})
    if ev.type == "m.reaction":
        return _reaction(room_id, ev, content)
    if ev.type == "m.room.redaction":
        # Room v11 moved ``redacts`` into the content; older versions keep it on top.
        target = content.get("redacts") if is_event_id(content.get("redacts")) else ev.redacts
        if not is_event_id(target):
            return None
        return _item(ev, Lane.control(room_id), room_id, ItemKind.REDACTION, {"target": target})
    if ev.type in UNSUPPORTED_TYPES:
        return _unsupported(room_id, ev, UNSUPPORTED_TYPES[ev.type], relation_of(content))
    if ev.type != "m.room.message":
        return None
    relation = relation_of(content)
    if relation.rel_type == REPLACE:
        return _edit(room_id, ev, content, relation)
    msgtype = content.get("msgtype")
    if not isinstance(msgtype, str):
        return None  # missing or malformed (a list is not even hashable for ``in``)
    if msgtype == "m.notice":
        return None  # bots must not answer bots
    if msgtype in MEDIA_TYPES:
        return _file(room_id, ev, content, msgtype, relation)
    if msgtype in UNSUPPORTED_MSGTYPES or msgtype.startswith("m.key.verification."):
        return _unsupported(room_id, ev, UNSUPPORTED_MSGTYPES.get(msgtype, "other"), relation)
    text = message_text(content, is_reply=relation.reply_to is not None)
    if not text.strip():
        if msgtype not in TEXT_TYPES:
            return _unsupported(room_id, ev, "other", relation)
        return None
    if msgtype == "m.emote":
        text = f"/me {text}"  # what IRC-minded agents understand ("* alice waves")
    # Unknown msgtypes with a body are text (the spec's rule for clients, too).
    payload = _text_payload(text, relation)
    cmd = parse_command(text)
    lane = Lane.room(room_id)
    if cmd is not None and (
        cmd.name in CONTROL
        or (cmd.name in (CommandName.YES, CommandName.NO) and policy.awaiting_confirmation(room_id))
    ):
        lane = Lane.control(room_id)
    kind = ItemKind.COMMAND if cmd is not None else ItemKind.TEXT
    return _item(ev, lane, room_id, kind, payload)


def _item(ev: Any, lane: Lane, room_id: str, kind: ItemKind, payload: dict) -> InboxItem:
    return InboxItem(ev.event_id, lane, room_id, ev.sender, kind, payload)


def _text_payload(text: str, relation: Relation) -> dict[str, Any]:
    """``body`` (bounded), and where it sits: the thread, the message it quotes."""
    payload: dict[str, Any] = {"body": text[:MAX_BODY_CHARS]}
    if len(text) > MAX_BODY_CHARS:
        payload["truncated"] = True
    return _place(payload, relation)


def _place(payload: dict[str, Any], relation: Relation) -> dict[str, Any]:
    if relation.thread_root:
        payload["thread"] = relation.thread_root
    if relation.quoted:
        payload["reply_to"] = relation.quoted
    return payload


def _file(room_id: str, ev: Any, content: dict, msgtype: str, relation: Relation) -> InboxItem:
    filename = _str(content.get("filename"))
    body = _str(content.get("body"))
    payload: dict[str, Any] = {
        "msgtype": msgtype,
        "url": content.get("url") if isinstance(content.get("url"), str) else None,
        "name": filename or body,
        "info": content.get("info") if isinstance(content.get("info"), dict) else {},
    }
    if isinstance(content.get("file"), dict):
        # An encrypted attachment: its url, key and hash (staging checks them).
        payload["file"] = content["file"]
    # Matrix v1.10 captions: ``filename`` names the file, ``body`` is the caption.
    if filename and body and body != filename:
        caption = message_text(content, is_reply=relation.reply_to is not None).strip()
        if caption:
            payload["caption"] = caption[:MAX_BODY_CHARS]
    return _item(ev, Lane.room(room_id), room_id, ItemKind.FILE, _place(payload, relation))


def _edit(room_id: str, ev: Any, content: dict, relation: Relation) -> InboxItem | None:
    """An edit: the new content is ``m.new_content`` (the top level is the ``* ``
    fallback for old clients, never what the user wrote)."""
    new = content.get("m.new_content")
    if relation.event_id is None or not isinstance(new, dict):
        return None
    text = message_text(new, is_reply=False)
    if not text.strip():
        return None
    if new.get("msgtype") == "m.emote":
        text = f"/me {text}"
    payload = {"target": relation.event_id, **_text_payload(text, Relation())}
    # On the control lane: a running turn that the edit supersedes is stopped at once
    # (the re-run itself goes to the room's lane, see ``surfaces.commands.edits``).
    return _item(ev, Lane.control(room_id), room_id, ItemKind.EDIT, payload)


def _reaction(room_id: str, ev: Any, content: dict) -> InboxItem | None:
    relation = relation_of(content)
    if relation.rel_type != ANNOTATION or relation.event_id is None:
        return None
    control = parse_reaction(relation.key)
    if control is None:
        return None  # just a reaction
    lane = Lane.control(room_id) if control in CONTROL_REACTIONS else Lane.room(room_id)
    payload = {"target": relation.event_id, "control": control.value}
    return _item(ev, lane, room_id, ItemKind.REACTION, payload)


def _unsupported(room_id: str, ev: Any, what: str, relation: Relation) -> InboxItem:
    payload = _place({"what": what}, relation)
    return _item(ev, Lane.control(room_id), room_id, ItemKind.UNSUPPORTED, payload)


def _str(value: object) -> str | None:
    return clean_text(value) if isinstance(value, str) and value else None
