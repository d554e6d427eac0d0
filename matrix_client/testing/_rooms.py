"""Rooms of the fake homeserver: creation as Synapse does it, membership, state."""

from __future__ import annotations

import copy
from typing import Any

from ._model import (
    MEGOLM_ALGORITHM,
    EncryptionDefault,
    JsonDict,
    _HttpError,
    _Room,
    _Session,
    _version_at_least,
)


class RoomHandlers:
    """Room creation, membership and the room and state endpoints (a FakeHomeserver mixin)."""

    def _create_room(self, creator: str, body: JsonDict) -> str:
        requested = body.get("room_version")
        version = requested if isinstance(requested, str) else self.room_version
        creators_power = _version_at_least(version, 12)  # MSC4289
        preset = body.get("preset") or "private_chat"
        invitees = [u for u in body.get("invite") or [] if isinstance(u, str)]
        room_id = f"!room{next(self._ids)}:{self.server_name}"
        room = _Room(room_id)
        self._rooms[room_id] = room
        creation = dict(body.get("creation_content") or {})
        creation["room_version"] = version  # as Synapse: creation_content cannot override it
        if not _version_at_least(version, 11):
            creation["creator"] = creator  # MSC2175: implicit from v11
        if creators_power and preset == "trusted_private_chat" and invitees:
            extra = creation.get("additional_creators")
            extra = list(extra) if isinstance(extra, list) else []
            creation["additional_creators"] = extra + [u for u in invitees if u not in extra]
        self._append(room, creator, "m.room.create", creation, state_key="")
        self._append(
            room, creator, "m.room.member", self._member_content(creator, "join"), state_key=creator
        )
        initial_state = [e for e in body.get("initial_state") or [] if isinstance(e, dict)]
        initial_power = next((e for e in initial_state if self._is_power_levels(e)), None)
        if initial_power is not None:
            # As Synapse: power levels in initial_state replace the preset's and the override.
            power = initial_power.get("content") or {}
        else:
            users = {} if creators_power else {creator: 100}
            if preset == "trusted_private_chat" and not creators_power:
                users.update({u: 100 for u in invitees})
            power = {
                "users": users,
                "users_default": 0,
                "events": {},
                "events_default": 0,
                "state_default": 50,
                "ban": 50,
                "kick": 50,
                "redact": 50,
                "invite": 50 if preset == "public_chat" else 0,
            }
            power.update(body.get("power_level_content_override") or {})
        # Synapse has already stored the create event and the creator's join when it
        # refuses the power levels: the 400 leaves that half-made room behind.
        self._check_state(room, "m.room.power_levels", "", power)
        self._append(room, creator, "m.room.power_levels", power, state_key="")
        join_rule = "public" if preset == "public_chat" else "invite"
        self._append(room, creator, "m.room.join_rules", {"join_rule": join_rule}, state_key="")
        self._append(
            room,
            creator,
            "m.room.history_visibility",
            {"history_visibility": "shared"},
            state_key="",
        )
        for event in initial_state:
            if event is initial_power:
                continue
            self._append(
                room,
                creator,
                event["type"],
                event.get("content") or {},
                state_key=event.get("state_key", ""),
            )
        if self._encrypts_by_default(preset) and ("m.room.encryption", "") not in room.state:
            encryption = {"algorithm": MEGOLM_ALGORITHM}
            self._append(room, creator, "m.room.encryption", encryption, state_key="")
        if body.get("name") is not None:
            self._append(room, creator, "m.room.name", {"name": body["name"]}, state_key="")
        if body.get("topic") is not None:
            self._append(room, creator, "m.room.topic", {"topic": body["topic"]}, state_key="")
        for invitee in invitees:
            self._do_invite(room, creator, invitee, bool(body.get("is_direct")))
        return room_id

    def _encrypts_by_default(self, preset: str) -> bool:
        """Synapse's ``encryption_enabled_by_default_for_room_type`` for a new room."""
        rule = self.encryption_by_default
        private = preset in ("private_chat", "trusted_private_chat")
        return rule is EncryptionDefault.ALL or (rule is EncryptionDefault.INVITE and private)

    @staticmethod
    def _is_power_levels(event: JsonDict) -> bool:
        return event.get("type") == "m.room.power_levels" and event.get("state_key", "") == ""

    @staticmethod
    def _check_state(room: _Room, event_type: str, state_key: str, content: Any) -> None:
        """Refuse what Synapse's auth rules would (only MSC4289's creator rule so far)."""
        if event_type != "m.room.power_levels" or state_key != "":
            return
        create = room.state.get(("m.room.create", ""))
        if create is None or not _version_at_least(create["content"].get("room_version"), 12):
            return
        users = content.get("users") if isinstance(content, dict) else None
        if not isinstance(users, dict):
            return
        if create["sender"] in users:
            message = f"Creator user {create['sender']} must not appear in content.users"
            raise _HttpError(400, "M_UNKNOWN", message)
        additional = create["content"].get("additional_creators")
        if isinstance(additional, list) and set(additional) & set(users):
            message = "Additional creators users must not appear in content.users"
            raise _HttpError(400, "M_UNKNOWN", message)

    def _do_invite(self, room: _Room, inviter: str, target: str, is_direct: bool) -> None:
        if room.membership(inviter) != "join":
            raise _HttpError(403, "M_FORBIDDEN", f"{inviter} is not in the room")
        current = room.membership(target)
        if current == "join":
            raise _HttpError(403, "M_FORBIDDEN", f"{target} is already in the room.")
        if current == "ban":
            raise _HttpError(403, "M_FORBIDDEN", f"{target} is banned from the room")
        if current == "invite":
            return  # re-inviting is a no-op, as on Synapse
        extra = {"is_direct": True} if is_direct else {}
        content = self._member_content(target, "invite", **extra)
        self._append(room, inviter, "m.room.member", content, state_key=target)

    def _do_join(self, room: _Room, user_id: str) -> None:
        current = room.membership(user_id)
        if current == "join":
            return
        rule = room.state.get(("m.room.join_rules", ""), {}).get("content", {}).get("join_rule")
        if current != "invite" and rule != "public":
            raise _HttpError(403, "M_FORBIDDEN", "You are not invited to this room.")
        room.forgotten_by.discard(user_id)
        content = self._member_content(user_id, "join")
        self._append(room, user_id, "m.room.member", content, state_key=user_id)

    def _do_leave(self, room: _Room, user_id: str) -> None:
        current = room.membership(user_id)
        if current in (None, "leave"):
            if current is None:
                raise _HttpError(403, "M_FORBIDDEN", f"{user_id} is not in the room")
            return
        self._append(room, user_id, "m.room.member", {"membership": "leave"}, state_key=user_id)

    # -- handlers: rooms ------------------------------------------------------------------

    async def _h_create_room(self, *, session: _Session, body: Any, **_: Any) -> JsonDict:
        return {"room_id": self._create_room(session.user_id, self._object(body))}

    def _existing_room(self, room_id: str) -> _Room:
        room = self._rooms.get(room_id)
        if room is None:
            raise _HttpError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        return room

    async def _h_join(self, *, session: _Session, roomId: str, **_: Any) -> JsonDict:
        self._do_join(self._existing_room(roomId), session.user_id)
        return {"room_id": roomId}

    async def _h_invite(self, *, session: _Session, roomId: str, body: Any, **_: Any) -> JsonDict:
        target = self._object(body).get("user_id")
        if not isinstance(target, str):
            raise _HttpError(400, "M_MISSING_PARAM", "Missing user_id")
        self._do_invite(self._existing_room(roomId), session.user_id, target, False)
        return {}

    async def _h_leave(self, *, session: _Session, roomId: str, **_: Any) -> JsonDict:
        self._do_leave(self._existing_room(roomId), session.user_id)
        return {}

    async def _h_forget(self, *, session: _Session, roomId: str, **_: Any) -> JsonDict:
        room = self._existing_room(roomId)
        if room.membership(session.user_id) in ("join", "invite"):
            raise _HttpError(400, "M_UNKNOWN", f"User {session.user_id} is in room {roomId}")
        room.forgotten_by.add(session.user_id)
        return {}

    async def _h_joined_rooms(self, *, session: _Session, **_: Any) -> JsonDict:
        rooms = [r.room_id for r in self._rooms.values() if r.membership(session.user_id) == "join"]
        return {"joined_rooms": rooms}

    async def _h_members(self, *, session: _Session, roomId: str, **_: Any) -> JsonDict:
        room = self._joined_room(roomId, session)
        joined = {}
        for user_id in room.joined():
            content = room.state[("m.room.member", user_id)]["content"]
            joined[user_id] = {"display_name": content.get("displayname"), "avatar_url": None}
        return {"joined": joined}

    async def _h_room_members(
        self, *, session: _Session, roomId: str, query: dict[str, str], **_: Any
    ) -> JsonDict:
        """``GET /rooms/{roomId}/members``: member state events, filtered by membership."""
        room = self._joined_room(roomId, session)
        wanted, unwanted = query.get("membership"), query.get("not_membership")
        chunk = [
            copy.deepcopy(event)
            for (etype, _key), event in room.state.items()
            if etype == "m.room.member"
            and (wanted is None or event["content"].get("membership") == wanted)
            and (unwanted is None or event["content"].get("membership") != unwanted)
        ]
        return {"chunk": chunk}

    async def _h_state_all(self, *, session: _Session, roomId: str, **_: Any) -> list[Any]:
        room = self._joined_room(roomId, session)
        return [copy.deepcopy(ev) for ev in room.state.values()]

    async def _h_state_get(
        self, *, session: _Session, roomId: str, eventType: str, stateKey: str = "", **_: Any
    ) -> JsonDict:
        room = self._joined_room(roomId, session)
        event = room.state.get((eventType, stateKey))
        if event is None:
            raise _HttpError(404, "M_NOT_FOUND", "Event not found.")
        return copy.deepcopy(event["content"])

    async def _h_state_put(
        self,
        *,
        session: _Session,
        roomId: str,
        eventType: str,
        body: Any,
        stateKey: str = "",
        **_: Any,
    ) -> JsonDict:
        room = self._joined_room(roomId, session)
        content = self._object(body)
        current = room.state.get((eventType, stateKey))
        if (
            current is not None
            and current["sender"] == session.user_id
            and (current["content"] == content)
        ):
            return {"event_id": current["event_id"]}  # Synapse deduplicates identical state
        self._check_size(eventType, content)
        self._check_state(room, eventType, stateKey, content)
        event = self._append(room, session.user_id, eventType, content, state_key=stateKey)
        return {"event_id": event["event_id"]}
