"""Room events of the fake homeserver: sends, redactions, typing, receipts, history."""

from __future__ import annotations

import copy
from typing import Any

from .._content import MAX_EVENT_BYTES, canonical_json
from ._model import (
    JsonDict,
    _HttpError,
    _Session,
)


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

    async def _h_redact(
        self, *, session: _Session, roomId: str, eventId: str, txnId: str, body: Any, **_: Any
    ) -> JsonDict:
        key = (session.user_id, session.device_id, "redact:" + txnId)
        if key in self._txns:
            return {"event_id": self._txns[key]}
        room = self._joined_room(roomId, session)
        content = dict(self._object(body))
        target = next(
            (
                e.event
                for e in room.entries
                if isinstance(e.event, dict) and e.event.get("event_id") == eventId
            ),
            None,
        )
        if target is None:
            raise _HttpError(404, "M_NOT_FOUND", "Event not found")
        event = self._append(
            room, session.user_id, "m.room.redaction", content, txn=key, extra={"redacts": eventId}
        )
        target["content"] = {}
        target.setdefault("unsigned", {})["redacted_because"] = copy.deepcopy(event)
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
        self, *, session: _Session, roomId: str, eventId: str, **_: Any
    ) -> JsonDict:
        self._joined_room(roomId, session)
        self.receipts[(roomId, session.user_id)] = eventId
        return {}

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
