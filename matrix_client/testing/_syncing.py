"""``/sync`` and filters of the fake homeserver."""

from __future__ import annotations

import copy
import json
from typing import Any

import trio

from ._model import (
    INVITE_STATE_TYPES,
    MEMBERSHIP_ON_EVENTS_VERSION,
    JsonDict,
    _Entry,
    _HttpError,
    _Room,
    _Session,
    _strings,
    _TimelineFilter,
)


class SyncHandlers:
    """What ``/sync`` returns to one session (a mixin of FakeHomeserver)."""

    # -- handlers: filters and sync -----------------------------------------------------

    async def _h_filter_post(
        self, *, session: _Session, userId: str, body: Any, **_: Any
    ) -> JsonDict:
        if userId != session.user_id:
            raise _HttpError(403, "M_FORBIDDEN", "Cannot create filters for other users")
        filter_id = str(next(self._ids))
        self._filters[filter_id] = self._object(body)
        return {"filter_id": filter_id}

    async def _h_filter_get(self, *, filterId: str, **_: Any) -> JsonDict:
        if filterId not in self._filters:
            raise _HttpError(404, "M_NOT_FOUND", "No such filter")
        return self._filters[filterId]

    def _timeline_filter(self, filter_param: str | None) -> _TimelineFilter:
        """The room timeline part of a filter id or inline JSON filter."""
        if filter_param is None:
            return _TimelineFilter()
        if filter_param.startswith("{"):
            try:
                spec = json.loads(filter_param)
            except ValueError:
                raise _HttpError(400, "M_NOT_JSON", "filter is not JSON") from None
        elif filter_param in self._filters:
            spec = self._filters[filter_param]
        else:
            raise _HttpError(400, "M_INVALID_PARAM", "No such filter")
        room = spec.get("room") if isinstance(spec, dict) else None
        timeline = room.get("timeline") if isinstance(room, dict) else None
        if not isinstance(timeline, dict):
            return _TimelineFilter()
        limit = timeline.get("limit", 10)
        senders = timeline.get("senders")
        not_senders = timeline.get("not_senders")
        return _TimelineFilter(
            limit=limit if isinstance(limit, int) and limit > 0 else 10,
            senders=None if senders is None else frozenset(_strings(senders)),
            not_senders=frozenset(_strings(not_senders)),
        )

    @staticmethod
    def _parse_token(token: str | None, name: str) -> int | None:
        if token is None:
            return None
        if not token.startswith("s") or not token[1:].isdigit():
            raise _HttpError(400, "M_INVALID_PARAM", f"Invalid {name} token")
        return int(token[1:])

    async def _h_sync(self, *, session: _Session, query: dict[str, str], **_: Any) -> JsonDict:
        since = self._parse_token(query.get("since"), "since")
        timeline_filter = self._timeline_filter(query.get("filter"))
        try:
            timeout_s = max(0, int(query.get("timeout", "0"))) / 1000.0
        except ValueError:
            raise _HttpError(400, "M_INVALID_PARAM", "timeout must be an integer") from None
        if not self.sync_long_poll:
            timeout_s = 0.0
        deadline = trio.current_time() + timeout_s
        while True:
            rooms = self._sync_rooms(session, since, timeline_filter)
            to_device = self._sync_to_device(session, since)
            device_lists = self._sync_device_lists(session.user_id, since)
            news = any(rooms.values()) or to_device or any(device_lists.values())
            if news or trio.current_time() >= deadline:
                break
            changed = self._changed
            with trio.move_on_at(deadline):
                await changed.wait()
        return {
            "next_batch": f"s{self._pos}",
            "rooms": rooms,
            "account_data": {"events": []},
            "to_device": {"events": to_device},
            "device_lists": device_lists,
            **self._sync_keys(session),
        }

    def _render(
        self, entry: _Entry, session: _Session, membership: dict[int, str] | None = None
    ) -> Any:
        """The event as ``session`` sees it: its own sends carry ``transaction_id``,
        and with ``membership`` (see :meth:`_memberships`) ``unsigned.membership``
        is the user's membership at the event (MSC4115, spec v1.11)."""
        event = copy.deepcopy(entry.event)
        if isinstance(event, dict):
            event.pop("room_id", None)
            unsigned = event.setdefault("unsigned", {})
            if isinstance(unsigned, dict):
                if entry.txn and entry.txn[:2] == (session.user_id, session.device_id):
                    unsigned["transaction_id"] = entry.txn[2]
                if membership is not None:
                    unsigned["membership"] = membership.get(entry.pos, "leave")
        return event

    def _memberships(self, room: _Room, user_id: str) -> dict[int, str] | None:
        """Stream position → ``user_id``'s membership just after that event of the
        room (``leave`` before any membership of theirs, as on Synapse); ``None``
        (no ``unsigned.membership``) unless ``versions`` has ``"v1.11"``."""
        if MEMBERSHIP_ON_EVENTS_VERSION not in self.versions:
            return None
        current = "leave"
        at: dict[int, str] = {}
        for entry in room.entries:
            event = entry.event
            if (
                isinstance(event, dict)
                and event.get("type") == "m.room.member"
                and event.get("state_key") == user_id
            ):
                content = event.get("content")
                value = content.get("membership") if isinstance(content, dict) else None
                current = value if isinstance(value, str) else "leave"
            at[entry.pos] = current
        return at

    def _sync_rooms(
        self, session: _Session, since: int | None, timeline_filter: _TimelineFilter
    ) -> JsonDict:
        user_id = session.user_id
        limit = timeline_filter.limit
        join: JsonDict = {}
        invite: JsonDict = {}
        leave: JsonDict = {}
        for room in self._rooms.values():
            membership = room.membership(user_id)
            member_pos = room.member_pos.get(user_id, 0)
            newly = since is None or member_pos > since
            if membership == "join":
                # A room newly joined gets its latest events whatever the token, and is
                # listed even if the filter hides them all (as on Synapse): history from
                # before the join shows up in its timeline.
                new = [
                    e
                    for e in room.entries
                    if (newly or e.pos > since) and timeline_filter.admits(e.event)
                ]
                if not new and not newly:
                    continue
                shown = new[-limit:]
                at = self._memberships(room, user_id)
                timeline_ids = {id(e.event) for e in shown}
                state = []
                if newly:  # full state for a room that is new to this user
                    state = [
                        self._render(_Entry(0, ev), session)
                        for ev in room.state.values()
                        if id(ev) not in timeline_ids
                    ]
                first_pos = shown[0].pos if shown else self._pos + 1
                join[room.room_id] = {
                    "timeline": {
                        "events": [self._render(e, session, at) for e in shown],
                        "limited": len(new) > len(shown),
                        "prev_batch": f"s{first_pos - 1}",
                    },
                    "state": {"events": state},
                    "ephemeral": {"events": []},
                    "account_data": {"events": []},
                }
            elif membership == "invite" and newly:
                invite[room.room_id] = {"invite_state": {"events": self._stripped(room, user_id)}}
            elif (
                membership in ("leave", "ban")
                and since is not None
                and newly
                and user_id not in room.forgotten_by
            ):
                gone = [
                    e
                    for e in room.entries
                    if since < e.pos <= member_pos and timeline_filter.admits(e.event)
                ]
                at = self._memberships(room, user_id)
                leave[room.room_id] = {
                    "timeline": {
                        "events": [self._render(e, session, at) for e in gone[-limit:]],
                        "limited": len(gone) > limit,
                    },
                    "state": {"events": []},
                }
        return {"join": join, "invite": invite, "leave": leave}

    def _stripped(self, room: _Room, user_id: str) -> list[JsonDict]:
        keys = [(t, "") for t in INVITE_STATE_TYPES] + [("m.room.member", user_id)]
        fields = ("type", "state_key", "sender", "content")
        present = [room.state[key] for key in keys if key in room.state]
        return [{k: copy.deepcopy(event[k]) for k in fields} for event in present]
