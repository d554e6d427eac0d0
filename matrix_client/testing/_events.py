"""Room events of the fake homeserver: sends, redactions, typing, receipts, history."""

from __future__ import annotations

import copy
from typing import Any

from .._content import MAX_EVENT_BYTES, canonical_json
from ._model import (
    FakeHomeserverError,
    JsonDict,
    _HttpError,
    _Room,
    _Session,
    _version_at_least,
)

_RECEIPT_TYPES = ("m.read", "m.read.private", "m.fully_read")
_POWER_KEYS = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)


def redacted_content(event_type: str, content: JsonDict, room_version: Any) -> JsonDict:
    """What a redaction leaves of ``content`` (spec: "Redactions", rules per room version).

    Only the keys the auth rules need survive; everything else (``body``,
    ``m.relates_to``, a reaction's key …) is gone.
    """
    v8, v9, v11 = (_version_at_least(room_version, n) for n in (8, 9, 11))
    keep: tuple[str, ...] = ()
    if event_type == "m.room.member":
        keep = ("membership", "join_authorised_via_users_server") if v9 else ("membership",)
        kept = {k: content[k] for k in keep if k in content}
        invite = content.get("third_party_invite")
        if v11 and isinstance(invite, dict) and "signed" in invite:
            kept["third_party_invite"] = {"signed": invite["signed"]}
        return copy.deepcopy(kept)
    if event_type == "m.room.create":
        return (
            copy.deepcopy(content) if v11 else {k: content[k] for k in ("creator",) if k in content}
        )
    if event_type == "m.room.join_rules":
        keep = ("join_rule", "allow") if v8 else ("join_rule",)
    elif event_type == "m.room.power_levels":
        keep = (*_POWER_KEYS, "invite") if v11 else _POWER_KEYS
    elif event_type == "m.room.history_visibility":
        keep = ("history_visibility",)
    elif event_type == "m.room.redaction" and v11:
        keep = ("redacts",)
    return copy.deepcopy({k: content[k] for k in keep if k in content})


class EventHandlers:
    """Message-like events and what is done with them (a mixin of FakeHomeserver)."""

    # -- handlers: messages -----------------------------------------------------------------

    @staticmethod
    def _check_size(event_type: str, content: JsonDict) -> None:
        # The real server measures the signed PDU; type + content + ~1 KiB is close.
        if len(canonical_json({"type": event_type, "content": content})) + 1024 > MAX_EVENT_BYTES:
            raise _HttpError(413, "M_TOO_LARGE", "event too large")

    async def _h_send(
        self, *, session: _Session, roomId: str, eventType: str, txnId: str, body: Any, **_: Any
    ) -> JsonDict:
        key = (session.user_id, session.device_id, txnId)
        if key in self._txns:
            return {"event_id": self._txns[key]}
        room = self._joined_room(roomId, session)
        content = self._object(body)
        self._check_size(eventType, content)
        event = self._append(room, session.user_id, eventType, content, txn=key)
        self._txns[key] = event["event_id"]
        return {"event_id": event["event_id"]}

    def redact_as(
        self, user: Any, room_id: str, event_id: str, *, reason: str | None = None
    ) -> str:
        """Redact ``event_id`` as ``user`` (must be joined) → the redaction's event id."""
        user_id = self._uid(user)
        room = self._room(room_id)
        if room.membership(user_id) != "join":
            raise FakeHomeserverError(f"{user_id} is not joined to {room_id}")
        content = {} if reason is None else {"reason": reason}
        return self._do_redact(room, user_id, event_id, content, None)["event_id"]

    def _do_redact(
        self,
        room: _Room,
        sender: str,
        event_id: str,
        content: JsonDict,
        txn: tuple[str, str, str] | None,
    ) -> JsonDict:
        found = room.entry(event_id)
        if found is None:
            raise _HttpError(404, "M_NOT_FOUND", "Event not found")
        target = found.event
        event = self._append(
            room, sender, "m.room.redaction", content, txn=txn, extra={"redacts": event_id}
        )
        # The stored dict is the state entry too: redacted state is redacted state.
        target["content"] = redacted_content(
            str(target.get("type")), target.get("content") or {}, _room_version(room)
        )
        target.setdefault("unsigned", {})["redacted_because"] = copy.deepcopy(event)
        return event

    async def _h_redact(
        self, *, session: _Session, roomId: str, eventId: str, txnId: str, body: Any, **_: Any
    ) -> JsonDict:
        key = (session.user_id, session.device_id, "redact:" + txnId)
        if key in self._txns:
            return {"event_id": self._txns[key]}
        room = self._joined_room(roomId, session)
        event = self._do_redact(room, session.user_id, eventId, dict(self._object(body)), key)
        self._txns[key] = event["event_id"]
        return {"event_id": event["event_id"]}

    async def _h_typing(
        self, *, session: _Session, roomId: str, userId: str, body: Any, **_: Any
    ) -> JsonDict:
        if userId != session.user_id:
            raise _HttpError(403, "M_FORBIDDEN", "Cannot set another user's typing state")
        self._joined_room(roomId, session)
        typing = bool(self._object(body).get("typing"))
        self.typing[(roomId, userId)] = typing
        self.typing_log.append((roomId, userId, typing))
        return {}

    async def _h_receipt(
        self,
        *,
        session: _Session,
        roomId: str,
        receiptType: str,
        eventId: str,
        body: Any,
        **_: Any,
    ) -> JsonDict:
        """As Synapse's ``ReceiptRestServlet``: known types, a ``$`` event id, a JSON
        object body (``{}`` will do), a non-empty string ``thread_id`` if any."""
        if receiptType not in _RECEIPT_TYPES:
            raise _HttpError(400, "M_UNKNOWN", f"Receipt type must be {', '.join(_RECEIPT_TYPES)}")
        if not eventId.startswith("$"):
            raise _HttpError(400, "M_UNKNOWN", "A valid room ID and event ID must be specified")
        if body is None:
            raise _HttpError(400, "M_NOT_JSON", "Content not JSON.")
        content = self._object(body)
        if "thread_id" in content and not (
            isinstance(content["thread_id"], str) and content["thread_id"]
        ):
            raise _HttpError(400, "M_INVALID_PARAM", "thread_id field must be a non-empty string")
        self._joined_room(roomId, session)
        if receiptType == "m.read":
            self.receipts[(roomId, session.user_id)] = eventId
        self.receipt_log.append((roomId, session.user_id, receiptType, eventId, dict(content)))
        return {}

    async def _h_get_event(
        self, *, session: _Session, roomId: str, eventId: str, **_: Any
    ) -> JsonDict:
        """One event as the client API serves it (with ``room_id``); 404 when it does
        not exist or the user cannot see it (never joined, or sent after they left)."""
        room = self._rooms.get(roomId)
        entry = None if room is None else room.entry(eventId)
        membership = None if room is None else room.membership(session.user_id)
        visible = entry is not None and (
            membership == "join"
            or (membership is not None and entry.pos <= room.member_pos.get(session.user_id, 0))
        )
        if not visible:
            raise _HttpError(404, "M_NOT_FOUND", "Event not found.")
        event = self._render(entry, session, self._memberships(room, session.user_id))
        event["room_id"] = roomId
        return event

    async def _h_messages(
        self, *, session: _Session, roomId: str, query: dict[str, str], **_: Any
    ) -> JsonDict:
        room = self._existing_room(roomId)
        if room.membership(session.user_id) is None:
            raise _HttpError(403, "M_FORBIDDEN", "not in room")
        direction = query.get("dir", "b")
        if direction not in ("b", "f"):
            raise _HttpError(400, "M_INVALID_PARAM", "dir must be b or f")
        limit = max(1, min(int(query.get("limit", "10")), 1000))
        start = self._parse_token(query.get("from"), "from")
        if direction == "b":
            origin = self._pos if start is None else start
            older = [e for e in reversed(room.entries) if e.pos <= origin]
            page = older[:limit]
            more = len(older) > len(page)
            end = f"s{page[-1].pos - 1}" if page and more else None
        else:
            origin = 0 if start is None else start
            newer = [e for e in room.entries if e.pos > origin]
            page = newer[:limit]
            end = f"s{page[-1].pos}" if page and len(newer) > len(page) else None
        at = self._memberships(room, session.user_id)
        answer: JsonDict = {
            "start": f"s{origin}",
            "chunk": [self._render(e, session, at) for e in page],
        }
        if end is not None:
            answer["end"] = end
        return answer


def _room_version(room: _Room) -> Any:
    create = room.state.get(("m.room.create", ""))
    return None if create is None else create["content"].get("room_version")
