"""Room methods: create, join, invite, leave, forget, and who is in a room."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from ._errors import MatrixError, ResponseFormatError
from ._http import CLIENT_V3, field, seg
from ._models import JsonDict, Membership, RoomMember
from ._state import StateMethods

log = structlog.get_logger(__name__)


class RoomMethods(StateMethods):
    __slots__ = ()

    async def create_room(
        self,
        *,
        name: str | None = None,
        topic: str | None = None,
        invite: Sequence[str] = (),
        is_space: bool = False,
        preset: str = "private_chat",
        initial_state: Sequence[JsonDict] = (),
        power_level_content_override: JsonDict | None = None,
        creation_content: JsonDict | None = None,
        is_direct: bool = False,
    ) -> str:
        """``POST /createRoom`` → room id. Not idempotent: never blind-retried."""
        body: JsonDict = {"preset": preset}
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        if invite:
            body["invite"] = list(invite)
        if initial_state:
            body["initial_state"] = list(initial_state)
        if power_level_content_override is not None:
            body["power_level_content_override"] = power_level_content_override
        creation = dict(creation_content or {})
        if is_space:
            creation["type"] = "m.space"
        if creation:
            body["creation_content"] = creation
        if is_direct:
            body["is_direct"] = True
        answer = await self._call_object(
            "POST", f"{CLIENT_V3}/createRoom", "POST /createRoom", json_body=body
        )
        return field(answer, "room_id", "POST /createRoom")

    async def join(self, room_id_or_alias: str) -> str:
        """Join (or accept an invite) → the room id."""
        label = "POST /join/{roomIdOrAlias}"
        answer = await self._call_object(
            "POST", f"{CLIENT_V3}/join/{seg(room_id_or_alias)}", label, json_body={}
        )
        return field(answer, "room_id", label)

    async def invite(self, room_id: str, user_id: str) -> None:
        """Invite ``user_id``; a target already joined or invited is not an error.

        Servers answer that case with ``403 M_FORBIDDEN``, which also means "you
        may not invite". It counts as success only when identifiable: Synapse's
        "… is already in the room" message, or the target's current membership
        (read from room state) being ``join``/``invite``. Otherwise it raises.
        """
        try:
            await self._call(
                "POST",
                f"{CLIENT_V3}/rooms/{seg(room_id)}/invite",
                "POST /rooms/{roomId}/invite",
                json_body={"user_id": user_id},
            )
            return
        except MatrixError as exc:
            if exc.status != 403 or exc.errcode != "M_FORBIDDEN":
                raise
            if "already in the room" in exc.message.lower():
                log.info("matrix_invite_already_member", room_id=room_id, user_id=user_id)
                return
            try:
                member = await self.get_state_event(room_id, "m.room.member", user_id)
            except MatrixError:
                raise exc from None
            if member is not None and member.get("membership") in ("join", "invite"):
                log.info("matrix_invite_already_member", room_id=room_id, user_id=user_id)
                return
            raise

    async def leave(self, room_id: str) -> None:
        await self._call(
            "POST",
            f"{CLIENT_V3}/rooms/{seg(room_id)}/leave",
            "POST /rooms/{roomId}/leave",
            json_body={},
        )

    async def forget(self, room_id: str) -> None:
        await self._call(
            "POST",
            f"{CLIENT_V3}/rooms/{seg(room_id)}/forget",
            "POST /rooms/{roomId}/forget",
            json_body={},
        )

    async def joined_rooms(self) -> list[str]:
        label = "GET /joined_rooms"
        body = await self._call_object("GET", f"{CLIENT_V3}/joined_rooms", label)
        rooms = body.get("joined_rooms")
        if not isinstance(rooms, list):
            raise ResponseFormatError(None, 200, f"{label}: missing joined_rooms")
        return [room for room in rooms if isinstance(room, str)]

    async def joined_members(self, room_id: str) -> dict[str, str | None]:
        """Joined members → display name (``None`` when unset)."""
        label = "GET /rooms/{roomId}/joined_members"
        body = await self._call_object(
            "GET", f"{CLIENT_V3}/rooms/{seg(room_id)}/joined_members", label
        )
        joined = body.get("joined")
        if not isinstance(joined, dict):
            raise ResponseFormatError(None, 200, f"{label}: missing joined")
        members: dict[str, str | None] = {}
        for user, info in joined.items():
            name = info.get("display_name") if isinstance(info, dict) else None
            members[user] = name if isinstance(name, str) else None
        return members

    async def room_members(
        self,
        room_id: str,
        *,
        membership: Membership | None = None,
        not_membership: Membership | None = None,
    ) -> list[RoomMember]:
        """``GET /rooms/{roomId}/members``: every member with their membership.

        Unlike :meth:`joined_members` this includes invited (and left, banned …)
        users, which E2EE needs: invitees get room keys too. ``membership`` /
        ``not_membership`` narrow it on the server. Malformed member events are
        skipped with a log line.
        """
        label = "GET /rooms/{roomId}/members"
        params: dict[str, str] = {}
        if membership is not None:
            params["membership"] = membership.value
        if not_membership is not None:
            params["not_membership"] = not_membership.value
        body = await self._call_object(
            "GET", f"{CLIENT_V3}/rooms/{seg(room_id)}/members", label, params=params or None
        )
        chunk = body.get("chunk")
        if not isinstance(chunk, list):
            raise ResponseFormatError(None, 200, f"{label}: missing chunk")
        members: list[RoomMember] = []
        for event in chunk:
            member = _member(event)
            if member is None:
                log.warning("matrix_member_malformed", room_id=room_id)
            else:
                members.append(member)
        return members


def _member(event: object) -> RoomMember | None:
    if not isinstance(event, dict) or event.get("type") != "m.room.member":
        return None
    user_id, content = event.get("state_key"), event.get("content")
    if not isinstance(user_id, str) or not isinstance(content, dict):
        return None
    try:
        membership = Membership(content.get("membership"))
    except ValueError:
        return None
    name = content.get("displayname")
    return RoomMember(user_id, membership, name if isinstance(name, str) else None)
