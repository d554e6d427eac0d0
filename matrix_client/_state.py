"""Room state methods: read one state event, the whole state, set one."""

from __future__ import annotations

from ._converter import structure_events
from ._errors import MatrixError, ResponseFormatError
from ._http import CLIENT_V3, HttpCore, check_size, field, seg
from ._models import JsonDict, RoomEvent


class StateMethods(HttpCore):
    __slots__ = ()

    async def get_state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> JsonDict | None:
        """The content of one state event, or ``None`` when it does not exist (404)."""
        try:
            return await self._call_object(
                "GET",
                f"{CLIENT_V3}/rooms/{seg(room_id)}/state/{seg(event_type)}/{seg(state_key)}",
                "GET /rooms/{roomId}/state/{eventType}/{stateKey}",
            )
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise

    async def get_state(self, room_id: str) -> list[RoomEvent]:
        """The room's full current state (malformed events skipped)."""
        label = "GET /rooms/{roomId}/state"
        body = await self._call("GET", f"{CLIENT_V3}/rooms/{seg(room_id)}/state", label)
        if not isinstance(body, list):
            raise ResponseFormatError(None, 200, f"{label}: expected a list")
        return structure_events(body)

    async def put_state_event(
        self, room_id: str, event_type: str, content: JsonDict, state_key: str = ""
    ) -> str:
        """Set a state event → its event id. PUT, so retried on 5xx (same state twice is
        harmless)."""
        check_size(event_type, content)
        label = "PUT /rooms/{roomId}/state/{eventType}/{stateKey}"
        body = await self._call_object(
            "PUT",
            f"{CLIENT_V3}/rooms/{seg(room_id)}/state/{seg(event_type)}/{seg(state_key)}",
            label,
            json_body=content,
        )
        return field(body, "event_id", label)
