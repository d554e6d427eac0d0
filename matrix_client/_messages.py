"""Message methods: send, redact, typing, receipts, history, one event."""

from __future__ import annotations

import json

from ._converter import structure
from ._http import CLIENT_V3, HttpCore, check_size, field, seg
from ._models import JsonDict, MessagesPage, RoomEvent


class MessageMethods(HttpCore):
    __slots__ = ()

    async def send_event(
        self, room_id: str, event_type: str, content: JsonDict, *, txn_id: str
    ) -> str:
        """Send a room event → its event id.

        ``txn_id`` comes from the caller (persist it before the first call); the
        same id is used on every retry, so the homeserver deduplicates a send
        whose response was lost.

        Raises:
            EventTooLargeError: before any request, if the event would exceed 64 KiB.
        """
        check_size(event_type, content)
        label = "PUT /rooms/{roomId}/send"
        body = await self._call_object(
            "PUT",
            f"{CLIENT_V3}/rooms/{seg(room_id)}/send/{seg(event_type)}/{seg(txn_id)}",
            label,
            json_body=content,
        )
        return field(body, "event_id", label)

    async def redact(
        self, room_id: str, event_id: str, *, txn_id: str, reason: str | None = None
    ) -> str:
        """Redact ``event_id`` → the redaction's event id (PUT with txn id: retried)."""
        label = "PUT /rooms/{roomId}/redact"
        content: JsonDict = {} if reason is None else {"reason": reason}
        body = await self._call_object(
            "PUT",
            f"{CLIENT_V3}/rooms/{seg(room_id)}/redact/{seg(event_id)}/{seg(txn_id)}",
            label,
            json_body=content,
        )
        return field(body, "event_id", label)

    async def set_typing(self, room_id: str, typing: bool, *, timeout_ms: int = 30_000) -> None:
        user = self._own_user_id()
        body: JsonDict = {"typing": typing}
        if typing:
            body["timeout"] = timeout_ms
        await self._call(
            "PUT",
            f"{CLIENT_V3}/rooms/{seg(room_id)}/typing/{seg(user)}",
            "PUT /rooms/{roomId}/typing",
            json_body=body,
        )

    async def send_receipt(self, room_id: str, event_id: str) -> None:
        """A public ``m.read`` receipt for ``event_id`` (unthreaded).

        The body is ``{}``: the spec makes every field optional, and Synapse
        requires a JSON object (``parse_json_object_from_request``). POST, but a
        repeated receipt for the same event is a no-op, so it is retried like a PUT.
        """
        await self._call(
            "POST",
            f"{CLIENT_V3}/rooms/{seg(room_id)}/receipt/m.read/{seg(event_id)}",
            "POST /rooms/{roomId}/receipt",
            idempotent=True,
            json_body={},
        )

    async def room_messages(
        self,
        room_id: str,
        *,
        from_token: str | None,
        direction: str = "b",
        limit: int = 50,
        filter: JsonDict | None = None,
    ) -> MessagesPage:
        """One page of ``/messages`` (e.g. to fill a ``limited`` sync gap)."""
        params: dict[str, str] = {"dir": direction, "limit": str(limit)}
        if from_token is not None:
            params["from"] = from_token
        if filter is not None:
            params["filter"] = json.dumps(filter, separators=(",", ":"))
        body = await self._call_object(
            "GET",
            f"{CLIENT_V3}/rooms/{seg(room_id)}/messages",
            "GET /rooms/{roomId}/messages",
            params=params,
        )
        return structure(body, MessagesPage, what="messages")

    async def get_event(self, room_id: str, event_id: str) -> RoomEvent:
        """``GET /rooms/{roomId}/event/{eventId}`` (e.g. the message a reply quotes).

        A redacted event comes back with its content stripped, as the server
        serves it. Raises :class:`~matrix_client.MatrixError` 404 ``M_NOT_FOUND``
        when the event does not exist or we may not see it, and
        :class:`~matrix_client.ResponseFormatError` for a malformed event.
        """
        label = "GET /rooms/{roomId}/event/{eventId}"
        body = await self._call_object(
            "GET", f"{CLIENT_V3}/rooms/{seg(room_id)}/event/{seg(event_id)}", label
        )
        return structure(body, RoomEvent, what="event")
