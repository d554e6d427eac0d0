"""An in-memory, scripted Matrix homeserver served through ``httpx.MockTransport``.

The model is deliberately small but honest about the behaviours a bot depends
on: one global stream position (sync tokens are ``s<position>``), per-user
membership deciding what ``/sync`` returns (a newly joined room with its
latest events, each with the user's ``unsigned.membership`` at it, as in spec
v1.11), the ``room.timeline`` part of filters (``limit``, ``senders``,
``not_senders``; uploaded or inline JSON), idempotent sends per
``(user, device, txn_id)``, a long-poll that waits on trio time (so
``autojump_clock`` runs it instantly), and scripted faults.

Room versions (``FakeHomeserver.room_version``, default ``"12"`` as on Synapse
1.163; a ``createRoom`` body may ask for another): from v11 the create event has
no ``creator`` (MSC2175); from v12 creators have unlimited power (MSC4289): the
default ``m.room.power_levels`` does not list the creator, ``trusted_private_chat``
invitees become ``additional_creators`` of the create event, and power levels
listing a creator in ``users`` are refused with 400 ``M_UNKNOWN`` (a ``createRoom``
so refused leaves the room with just the create event and the creator's join, as
on Synapse).

Not modelled: federation, other power-level enforcement, hash room ids (v12),
push rules, presence, to-device, encryption, aliases, ephemeral events in ``/sync``.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

import attrs
import httpx
import trio

from .._client import MatrixClient
from .._content import MAX_EVENT_BYTES, canonical_json
from .._retry import RetryPolicy
from ._faults import Fault, FaultRule, LoggedRequest

JsonDict = dict[str, Any]

#: Stripped state an invitee sees (spec: recommended invite_state events).
INVITE_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.encryption",
)

#: From this spec version on, timeline events carry ``unsigned.membership`` (MSC4115).
MEMBERSHIP_ON_EVENTS_VERSION = "v1.11"

DEFAULT_VERSIONS = (
    "v1.1",
    "v1.2",
    "v1.3",
    "v1.4",
    "v1.5",
    "v1.6",
    "v1.7",
    "v1.8",
    "v1.9",
    "v1.10",
    "v1.11",
)


def _version_at_least(room_version: Any, minimum: int) -> bool:
    """Whether ``room_version`` (a string; unstable ones never qualify) is ≥ ``minimum``."""
    return isinstance(room_version, str) and room_version.isdigit() and int(room_version) >= minimum


class FakeHomeserverError(Exception):
    """A helper (``send_as`` …) was used in a way the server would refuse."""


class _HttpError(FakeHomeserverError):
    """Answered as a Matrix error over HTTP; raised as-is by the direct helpers."""

    def __init__(self, status: int, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(status, errcode, message)
        self.status = status
        self.body = {"errcode": errcode, "error": message, **extra}


@attrs.define
class FakeUser:
    """A registered user. ``access_token``/``device_id`` are the latest login's."""

    user_id: str
    password: str = attrs.field(repr=False)
    access_token: str = attrs.field(repr=False)
    device_id: str
    displayname: str | None = None

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


@attrs.define
class _Entry:
    pos: int
    event: JsonDict
    txn: tuple[str, str, str] | None = None  # (user_id, device_id, txn_id) of the send


@attrs.define
class _Room:
    room_id: str
    entries: list[_Entry] = attrs.field(factory=list)
    state: dict[tuple[str, str], JsonDict] = attrs.field(factory=dict)
    member_pos: dict[str, int] = attrs.field(factory=dict)
    forgotten_by: set[str] = attrs.field(factory=set)

    def membership(self, user_id: str) -> str | None:
        event = self.state.get(("m.room.member", user_id))
        return None if event is None else event["content"].get("membership")

    def joined(self) -> list[str]:
        return [
            key
            for (etype, key), ev in self.state.items()
            if etype == "m.room.member" and ev["content"].get("membership") == "join"
        ]


@attrs.frozen
class _TimelineFilter:
    """The part of a sync filter the fake honours: ``room.timeline`` limit and senders."""

    limit: int = 10
    senders: frozenset[str] | None = None
    not_senders: frozenset[str] = frozenset()

    def admits(self, event: Any) -> bool:
        sender = event.get("sender") if isinstance(event, dict) else None
        if sender in self.not_senders:
            return False
        return self.senders is None or sender in self.senders


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@attrs.define
class _Session:
    user_id: str
    device_id: str


Handler = Callable[..., Awaitable[httpx.Response | JsonDict | list[Any]]]


@attrs.define
class _Route:
    method: str
    segments: tuple[str, ...]
    handler: Handler
    auth: bool = True

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if method != self.method or len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for template, actual in zip(self.segments, segments, strict=True):
            if template.startswith("{"):
                params[template[1:-1]] = actual
            elif template != actual:
                return None
        return params


@attrs.define(eq=False)
class FakeHomeserver:
    """A stateful fake homeserver for deterministic tests.

    Typical use::

        hs = FakeHomeserver()
        bot = hs.register("bot")
        alice = hs.register("alice", displayname="Alice")
        room = hs.invite_bot(bot, inviter=alice)          # alice creates + invites
        async with hs.user_client(bot) as client:         # a MatrixClient on the fake
            batch = await client.syncer(since=None, filter_id=None).next()
        hs.send_as(alice, room, {"msgtype": "m.text", "body": "hi"})
        hs.inject("PUT", "/rooms/*/send/*", Fault.http_status(502))
        assert hs.requests[-1].path.endswith("/sync")

    Attributes:
        server_name: the domain of user and room ids.
        versions: what ``/versions`` advertises; without ``"v1.11"`` authenticated
            media answers 404 ``M_UNRECOGNIZED`` (clients must use legacy media)
            and timeline events carry no ``unsigned.membership``.
        sync_long_poll: ``False`` makes ``/sync`` ignore ``timeout`` and answer at
            once (a misbehaving server, for hot-loop tests).
        upload_size: ``m.upload.size`` (also enforced on upload).
        legacy_media: ``False`` makes the legacy ``/_matrix/media/v3/download`` 404.
        room_version: the version of rooms created without ``room_version`` in the
            request (see the module docstring for what ``"12"`` changes).
        requests: every request received, in order (see :class:`LoggedRequest`).
        typing: ``(room_id, user_id) -> typing flag`` from the last typing request.
        typing_log: every typing request, ``(room_id, user_id, typing)``.
        receipts: ``(room_id, user_id) -> event_id`` of the last read receipt.
    """

    server_name: str = "test.local"
    versions: list[str] = attrs.field(factory=lambda: list(DEFAULT_VERSIONS))
    sync_long_poll: bool = True
    upload_size: int = 50 * 1024 * 1024
    legacy_media: bool = True
    room_version: str = "12"
    requests: list[LoggedRequest] = attrs.field(factory=list, init=False)
    typing: dict[tuple[str, str], bool] = attrs.field(factory=dict, init=False)
    typing_log: list[tuple[str, str, bool]] = attrs.field(factory=list, init=False)
    receipts: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False)
    _users: dict[str, FakeUser] = attrs.field(factory=dict, init=False)
    _sessions: dict[str, _Session] = attrs.field(factory=dict, init=False)
    _rooms: dict[str, _Room] = attrs.field(factory=dict, init=False)
    _filters: dict[str, JsonDict] = attrs.field(factory=dict, init=False)
    _txns: dict[tuple[str, str, str], str] = attrs.field(factory=dict, init=False)
    _media: dict[str, tuple[bytes, str, str | None]] = attrs.field(factory=dict, init=False)
    _faults: list[FaultRule] = attrs.field(factory=list, init=False)
    _pos: int = attrs.field(default=0, init=False)
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _routes: list[_Route] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self._install_routes()

    # -- wiring ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"https://{self.server_name}"

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering from this fake (pass to ``MatrixClient``)."""
        return httpx.MockTransport(self.handle)

    def user_client(
        self, user: FakeUser | str, *, retry: RetryPolicy | None = None, **kwargs: Any
    ) -> MatrixClient:
        """A ``MatrixClient`` logged in as ``user`` (use it with ``async with``)."""
        account = self._user(user)
        return MatrixClient(
            self.base_url,
            access_token=account.access_token,
            user_id=account.user_id,
            device_id=account.device_id,
            retry=retry if retry is not None else RetryPolicy(),
            transport=self.transport(),
            **kwargs,
        )

    def client(self, **kwargs: Any) -> MatrixClient:
        """A ``MatrixClient`` with no credentials (e.g. to test ``login_password``)."""
        return MatrixClient(self.base_url, transport=self.transport(), **kwargs)

    # -- fault injection and inspection --------------------------------------------

    def inject(self, method: str | None, pattern: str, *faults: Fault, repeat: int = 1) -> None:
        """Queue ``faults`` (each used once, in order; ``repeat`` times over) for requests
        whose method is ``method`` (``None``: any) and whose decoded path matches the
        glob ``pattern``. A pattern not starting with ``/_matrix`` matches a path
        suffix: ``"/sync"``, ``"/rooms/*/send/*"``, ``"/media/*/upload"``.
        """
        queue = deque(list(faults) * repeat)
        self._faults.append(FaultRule(method.upper() if method else None, pattern, queue))

    def pending_faults(self) -> int:
        """Faults injected but not yet used."""
        return sum(len(rule.faults) for rule in self._faults)

    def requests_to(self, method: str | None, pattern: str) -> list[LoggedRequest]:
        """Logged requests matching ``method`` and ``pattern`` (same rules as inject)."""
        rule = FaultRule(method.upper() if method else None, pattern, deque())
        return [r for r in self.requests if rule.matches(r.method, r.path)]

    # -- acting directly (no HTTP) ------------------------------------------------

    def register(
        self,
        localpart: str,
        *,
        password: str = "password",
        displayname: str | None = None,
        device_id: str | None = None,
    ) -> FakeUser:
        """Create a user with one logged-in device; returns its credentials."""
        user_id = f"@{localpart}:{self.server_name}"
        if user_id in self._users:
            raise FakeHomeserverError(f"{user_id} already registered")
        device = device_id or f"DEV{next(self._ids)}"
        token = self._new_token(localpart)
        user = FakeUser(user_id, password, token, device, displayname)
        self._users[user_id] = user
        self._sessions[token] = _Session(user_id, device)
        return user

    def revoke_token(self, user_or_token: FakeUser | str) -> None:
        """Invalidate a token (or all of a user's): next use gets ``M_UNKNOWN_TOKEN``."""
        if isinstance(user_or_token, FakeUser) or user_or_token.startswith("@"):
            user_id = self._uid(user_or_token)
            for token in [t for t, s in self._sessions.items() if s.user_id == user_id]:
                del self._sessions[token]
        else:
            self._sessions.pop(user_or_token, None)

    def create_room(
        self,
        creator: FakeUser | str,
        *,
        name: str | None = None,
        topic: str | None = None,
        invite: list[str] | tuple[str, ...] = (),
        is_space: bool = False,
        is_direct: bool = False,
        preset: str = "private_chat",
        initial_state: list[JsonDict] | tuple[JsonDict, ...] = (),
        power_level_content_override: JsonDict | None = None,
        creation_content: JsonDict | None = None,
        encrypted: bool = False,
        room_version: str | None = None,
    ) -> str:
        """Create a room as ``creator`` (same event sequence as ``POST /createRoom``)."""
        body: JsonDict = {"preset": preset, "invite": list(invite), "is_direct": is_direct}
        if room_version is not None:
            body["room_version"] = room_version
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        state = list(initial_state)
        if encrypted:
            state.append(
                {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
            )
        body["initial_state"] = state
        if power_level_content_override is not None:
            body["power_level_content_override"] = power_level_content_override
        creation = dict(creation_content or {})
        if is_space:
            creation["type"] = "m.space"
        body["creation_content"] = creation
        return self._create_room(self._uid(creator), body)

    def invite_bot(
        self,
        bot: FakeUser | str,
        *,
        inviter: FakeUser | str,
        name: str | None = None,
        is_direct: bool = True,
        encrypted: bool = False,
    ) -> str:
        """``inviter`` creates a room and invites ``bot`` (a DM by default) → room id."""
        return self.create_room(
            inviter,
            name=name,
            invite=[self._uid(bot)],
            is_direct=is_direct,
            encrypted=encrypted,
            preset="trusted_private_chat" if is_direct else "private_chat",
        )

    def send_as(
        self,
        user: FakeUser | str,
        room_id: str,
        content: JsonDict,
        event_type: str = "m.room.message",
    ) -> str:
        """Send a message-like event as ``user`` (must be joined) → event id."""
        user_id = self._uid(user)
        room = self._room(room_id)
        if room.membership(user_id) != "join":
            raise FakeHomeserverError(f"{user_id} is not joined to {room_id}")
        return self._append(room, user_id, event_type, content)["event_id"]

    def text_as(self, user: FakeUser | str, room_id: str, body: str) -> str:
        """Shorthand: an ``m.text`` message as ``user`` → event id."""
        return self.send_as(user, room_id, {"msgtype": "m.text", "body": body})

    def set_state_as(
        self,
        user: FakeUser | str,
        room_id: str,
        event_type: str,
        content: JsonDict,
        state_key: str = "",
    ) -> str:
        """Set a state event as ``user`` (must be joined) → event id."""
        user_id = self._uid(user)
        room = self._room(room_id)
        if room.membership(user_id) != "join":
            raise FakeHomeserverError(f"{user_id} is not joined to {room_id}")
        self._check_state(room, event_type, state_key, content)
        return self._append(room, user_id, event_type, content, state_key=state_key)["event_id"]

    def invite_as(
        self,
        inviter: FakeUser | str,
        room_id: str,
        target: FakeUser | str,
        *,
        is_direct: bool = False,
    ) -> None:
        """``inviter`` invites ``target`` (errors as the server would answer them)."""
        self._do_invite(self._room(room_id), self._uid(inviter), self._uid(target), is_direct)

    def join_as(self, user: FakeUser | str, room_id: str) -> None:
        self._do_join(self._room(room_id), self._uid(user))

    def leave_as(self, user: FakeUser | str, room_id: str) -> None:
        self._do_leave(self._room(room_id), self._uid(user))

    def kick_as(self, kicker: FakeUser | str, room_id: str, target: FakeUser | str) -> None:
        room = self._room(room_id)
        content = {"membership": "leave"}
        self._append(room, self._uid(kicker), "m.room.member", content, state_key=self._uid(target))

    def inject_raw_event(self, room_id: str, raw: Any) -> None:
        """Append ``raw`` verbatim to the room timeline (e.g. a malformed event)."""
        room = self._room(room_id)
        self._pos += 1
        room.entries.append(_Entry(self._pos, raw))
        self._notify()

    def repeat_event(self, room_id: str, event_id: str) -> None:
        """Put an existing event into the stream again (a duplicate across syncs)."""
        room = self._room(room_id)
        original = next(e for e in room.entries if e.event.get("event_id") == event_id)
        self._pos += 1
        room.entries.append(_Entry(self._pos, original.event, original.txn))
        self._notify()

    # -- reading state ---------------------------------------------------------------

    def timeline(self, room_id: str) -> list[JsonDict]:
        """All events of the room, in stream order (deep copies)."""
        return [copy.deepcopy(e.event) for e in self._room(room_id).entries]

    def messages_from(
        self, user: FakeUser | str, room_id: str, event_type: str = "m.room.message"
    ) -> list[JsonDict]:
        """Events of ``event_type`` sent by ``user`` in the room, in order."""
        user_id = self._uid(user)
        return [
            e
            for e in self.timeline(room_id)
            if isinstance(e, dict) and e.get("sender") == user_id and e.get("type") == event_type
        ]

    def state_content(self, room_id: str, event_type: str, state_key: str = "") -> JsonDict | None:
        event = self._room(room_id).state.get((event_type, state_key))
        return None if event is None else copy.deepcopy(event["content"])

    def membership(self, room_id: str, user: FakeUser | str) -> str | None:
        return self._room(room_id).membership(self._uid(user))

    def rooms(self) -> list[str]:
        return list(self._rooms)

    def media(self, mxc: str) -> tuple[bytes, str, str | None]:
        """``(data, content_type, filename)`` of an uploaded ``mxc://`` URI."""
        return self._media[mxc.rsplit("/", 1)[-1]]

    @property
    def stream_position(self) -> int:
        return self._pos

    # -- internals: ids, rooms, events ----------------------------------------------

    def _uid(self, user: FakeUser | str) -> str:
        return user.user_id if isinstance(user, FakeUser) else user

    def _user(self, user: FakeUser | str) -> FakeUser:
        return self._users[self._uid(user)]

    def _room(self, room_id: str) -> _Room:
        try:
            return self._rooms[room_id]
        except KeyError:
            raise FakeHomeserverError(f"unknown room {room_id}") from None

    def _new_token(self, localpart: str) -> str:
        return f"syt_{localpart}_{next(self._ids)}"

    def _now_ms(self) -> int:
        try:
            now = trio.current_time()
        except RuntimeError:
            now = 0.0
        return 1_700_000_000_000 + int(now * 1000)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _append(
        self,
        room: _Room,
        sender: str,
        event_type: str,
        content: JsonDict,
        *,
        state_key: str | None = None,
        txn: tuple[str, str, str] | None = None,
        extra: JsonDict | None = None,
    ) -> JsonDict:
        self._pos += 1
        event: JsonDict = {
            "event_id": f"$ev{next(self._ids)}",
            "type": event_type,
            "sender": sender,
            "origin_server_ts": self._now_ms(),
            "content": copy.deepcopy(content),
            "room_id": room.room_id,
            "unsigned": {},
        }
        if state_key is not None:
            event["state_key"] = state_key
            room.state[(event_type, state_key)] = event
            if event_type == "m.room.member":
                room.member_pos[state_key] = self._pos
        if extra:
            event.update(extra)
        room.entries.append(_Entry(self._pos, event, txn))
        self._notify()
        return event

    def _profile_name(self, user_id: str) -> str | None:
        user = self._users.get(user_id)
        return None if user is None else user.displayname

    def _member_content(self, user_id: str, membership: str, **extra: Any) -> JsonDict:
        content: JsonDict = {"membership": membership, **extra}
        name = self._profile_name(user_id)
        if name is not None and membership in ("join", "invite"):
            content["displayname"] = name
        return content

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
        if body.get("name") is not None:
            self._append(room, creator, "m.room.name", {"name": body["name"]}, state_key="")
        if body.get("topic") is not None:
            self._append(room, creator, "m.room.topic", {"topic": body["topic"]}, state_key="")
        for invitee in invitees:
            self._do_invite(room, creator, invitee, bool(body.get("is_direct")))
        return room_id

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

    # -- HTTP entry point -------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """The ``httpx.MockTransport`` handler (async, runs in the caller's task)."""
        raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        segments = [unquote(s) for s in raw_path.split("/")[1:]]
        path = "/" + "/".join(segments)
        query = dict(request.url.params)
        body = self._parse_body(request)
        session = self._session(request)
        fault = self._next_fault(request.method, path)
        self.requests.append(
            LoggedRequest(
                method=request.method,
                path=path,
                query=query,
                body=body,
                user_id=session.user_id if session else None,
                fault=None if fault is None else fault.kind,
            )
        )
        if fault is not None:
            if fault.kind == "connect_error":
                raise httpx.ConnectError("scripted connection failure", request=request)
            if fault.kind == "delay":
                await trio.sleep(fault.delay_s)
            elif fault.kind == "response":
                return self._fault_response(fault)
        response = await self._dispatch(request.method, segments, query, body, session, request)
        if fault is not None and fault.kind == "lost_response":
            raise httpx.ReadError("scripted lost response", request=request)
        return response

    def _next_fault(self, method: str, path: str) -> Fault | None:
        for rule in self._faults:
            if rule.faults and rule.matches(method, path):
                return rule.faults.popleft()
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> httpx.Response:
        if isinstance(fault.body, bytes):
            return httpx.Response(fault.status, content=fault.body, headers=fault.headers)
        return httpx.Response(fault.status, json=fault.body, headers=fault.headers)

    @staticmethod
    def _parse_body(request: httpx.Request) -> Any:
        raw = request.content
        if not raw:
            return None
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        return raw

    def _session(self, request: httpx.Request) -> _Session | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        return self._sessions.get(header[len("Bearer ") :])

    async def _dispatch(
        self,
        method: str,
        segments: list[str],
        query: dict[str, str],
        body: Any,
        session: _Session | None,
        request: httpx.Request,
    ) -> httpx.Response:
        try:
            result = await self._route(method, segments, query, body, session, request)
        except _HttpError as exc:
            return httpx.Response(exc.status, json=exc.body)
        if isinstance(result, httpx.Response):
            return result
        return httpx.Response(200, json=result)

    async def _route(
        self,
        method: str,
        segments: list[str],
        query: dict[str, str],
        body: Any,
        session: _Session | None,
        request: httpx.Request,
    ) -> httpx.Response | JsonDict | list[Any]:
        for route in self._routes:
            params = route.match(method, segments)
            if params is None:
                continue
            if route.auth:
                if not request.headers.get("authorization"):
                    raise _HttpError(401, "M_MISSING_TOKEN", "Missing access token")
                if session is None:
                    raise _HttpError(
                        401, "M_UNKNOWN_TOKEN", "Invalid access token", soft_logout=False
                    )
            return await route.handler(
                session=session, query=query, body=body, request=request, **params
            )
        raise _HttpError(404, "M_UNRECOGNIZED", "Unrecognized request")

    def _install_routes(self) -> None:
        c3, c1, m3 = "_matrix/client/v3", "_matrix/client/v1", "_matrix/media/v3"
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", "_matrix/client/versions", self._h_versions, False),
            ("POST", f"{c3}/login", self._h_login, False),
            ("GET", f"{c3}/account/whoami", self._h_whoami, True),
            ("POST", f"{c3}/logout", self._h_logout, True),
            ("POST", f"{c3}/user/{{userId}}/filter", self._h_filter_post, True),
            ("GET", f"{c3}/user/{{userId}}/filter/{{filterId}}", self._h_filter_get, True),
            ("GET", f"{c3}/sync", self._h_sync, True),
            ("POST", f"{c3}/createRoom", self._h_create_room, True),
            ("POST", f"{c3}/join/{{roomId}}", self._h_join, True),
            ("POST", f"{c3}/rooms/{{roomId}}/join", self._h_join, True),
            ("POST", f"{c3}/rooms/{{roomId}}/invite", self._h_invite, True),
            ("POST", f"{c3}/rooms/{{roomId}}/leave", self._h_leave, True),
            ("POST", f"{c3}/rooms/{{roomId}}/forget", self._h_forget, True),
            ("GET", f"{c3}/joined_rooms", self._h_joined_rooms, True),
            ("GET", f"{c3}/rooms/{{roomId}}/joined_members", self._h_members, True),
            ("GET", f"{c3}/rooms/{{roomId}}/state", self._h_state_all, True),
            ("GET", f"{c3}/rooms/{{roomId}}/state/{{eventType}}", self._h_state_get, True),
            (
                "GET",
                f"{c3}/rooms/{{roomId}}/state/{{eventType}}/{{stateKey}}",
                self._h_state_get,
                True,
            ),
            ("PUT", f"{c3}/rooms/{{roomId}}/state/{{eventType}}", self._h_state_put, True),
            (
                "PUT",
                f"{c3}/rooms/{{roomId}}/state/{{eventType}}/{{stateKey}}",
                self._h_state_put,
                True,
            ),
            ("GET", f"{c3}/profile/{{userId}}/displayname", self._h_profile_get, False),
            ("PUT", f"{c3}/profile/{{userId}}/displayname", self._h_profile_put, True),
            ("PUT", f"{c3}/rooms/{{roomId}}/send/{{eventType}}/{{txnId}}", self._h_send, True),
            ("PUT", f"{c3}/rooms/{{roomId}}/redact/{{eventId}}/{{txnId}}", self._h_redact, True),
            ("PUT", f"{c3}/rooms/{{roomId}}/typing/{{userId}}", self._h_typing, True),
            (
                "POST",
                f"{c3}/rooms/{{roomId}}/receipt/{{receiptType}}/{{eventId}}",
                self._h_receipt,
                True,
            ),
            ("GET", f"{c3}/rooms/{{roomId}}/messages", self._h_messages, True),
            ("GET", f"{c3}/rooms/{{roomId}}/event/{{eventId}}", self._h_get_event, True),
            ("POST", f"{m3}/upload", self._h_upload, True),
            ("GET", f"{c1}/media/download/{{server}}/{{mediaId}}", self._h_download_v1, True),
            (
                "GET",
                f"{c1}/media/download/{{server}}/{{mediaId}}/{{fileName}}",
                self._h_download_v1,
                True,
            ),
            ("GET", f"{m3}/download/{{server}}/{{mediaId}}", self._h_download_legacy, False),
            (
                "GET",
                f"{m3}/download/{{server}}/{{mediaId}}/{{fileName}}",
                self._h_download_legacy,
                False,
            ),
            ("GET", f"{c1}/media/config", self._h_config_v1, True),
            ("GET", f"{m3}/config", self._h_config_legacy, True),
        ]
        self._routes = [
            _Route(method, tuple(template.split("/")), handler, auth)
            for method, template, handler, auth in table
        ]

    # -- handlers: helpers -----------------------------------------------------------------

    def _joined_room(self, room_id: str, session: _Session) -> _Room:
        room = self._rooms.get(room_id)
        if room is None or room.membership(session.user_id) != "join":
            raise _HttpError(403, "M_FORBIDDEN", f"{session.user_id} is not in room {room_id}")
        return room

    @staticmethod
    def _object(body: Any) -> JsonDict:
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise _HttpError(400, "M_NOT_JSON", "Content not JSON.")
        return body

    # -- handlers: auth -------------------------------------------------------------------

    async def _h_versions(self, **_: Any) -> JsonDict:
        return {"versions": list(self.versions), "unstable_features": {}}

    async def _h_login(self, *, body: Any, **_: Any) -> JsonDict:
        body = self._object(body)
        if body.get("type") != "m.login.password":
            raise _HttpError(400, "M_UNKNOWN", "Unknown login type")
        identifier = body.get("identifier") or {}
        name = identifier.get("user") or body.get("user") or ""
        user_id = name if name.startswith("@") else f"@{name}:{self.server_name}"
        user = self._users.get(user_id)
        if user is None or body.get("password") != user.password:
            raise _HttpError(403, "M_FORBIDDEN", "Invalid username or password")
        device = body.get("device_id") or f"DEV{next(self._ids)}"
        # Like Synapse: logging in to an existing device replaces its tokens.
        for token in [t for t, s in self._sessions.items() if s == _Session(user_id, device)]:
            del self._sessions[token]
        token = self._new_token(user.localpart)
        self._sessions[token] = _Session(user_id, device)
        user.access_token, user.device_id = token, device
        return {"user_id": user_id, "access_token": token, "device_id": device}

    async def _h_whoami(self, *, session: _Session, **_: Any) -> JsonDict:
        return {"user_id": session.user_id, "device_id": session.device_id, "is_guest": False}

    async def _h_logout(self, *, request: httpx.Request, **_: Any) -> JsonDict:
        token = request.headers["authorization"][len("Bearer ") :]
        self._sessions.pop(token, None)
        return {}

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
            if any(rooms.values()) or trio.current_time() >= deadline:
                break
            changed = self._changed
            with trio.move_on_at(deadline):
                await changed.wait()
        return {"next_batch": f"s{self._pos}", "rooms": rooms, "account_data": {"events": []}}

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

    async def _h_profile_get(self, *, userId: str, **_: Any) -> JsonDict:
        user = self._users.get(userId)
        if user is None:
            raise _HttpError(404, "M_NOT_FOUND", "Profile was not found")
        return {} if user.displayname is None else {"displayname": user.displayname}

    async def _h_profile_put(
        self, *, session: _Session, userId: str, body: Any, **_: Any
    ) -> JsonDict:
        if userId != session.user_id:
            raise _HttpError(403, "M_FORBIDDEN", "Cannot set another user's profile")
        name = self._object(body).get("displayname")
        self._users[userId].displayname = name if isinstance(name, str) else None
        return {}

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

    async def _h_get_event(
        self, *, session: _Session, roomId: str, eventId: str, **_: Any
    ) -> JsonDict:
        room = self._joined_room(roomId, session)
        for entry in room.entries:
            if isinstance(entry.event, dict) and entry.event.get("event_id") == eventId:
                return copy.deepcopy(entry.event)
        raise _HttpError(404, "M_NOT_FOUND", "Event not found")

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

    # -- handlers: media ------------------------------------------------------------------------

    async def _h_upload(
        self, *, query: dict[str, str], request: httpx.Request, **_: Any
    ) -> JsonDict:
        data = request.content
        if len(data) > self.upload_size:
            raise _HttpError(413, "M_TOO_LARGE", "Cannot upload files larger than the limit")
        media_id = f"media{next(self._ids)}"
        content_type = request.headers.get("content-type", "application/octet-stream")
        self._media[media_id] = (data, content_type, query.get("filename"))
        return {"content_uri": f"mxc://{self.server_name}/{media_id}"}

    def _media_response(self, server: str, media_id: str) -> httpx.Response:
        if server != self.server_name or media_id not in self._media:
            raise _HttpError(404, "M_NOT_FOUND", "Not found")
        data, content_type, filename = self._media[media_id]
        headers = {"content-type": content_type}
        if filename:
            headers["content-disposition"] = (
                f"attachment; filename*=utf-8''{quote(filename, safe='')}"
            )
        return httpx.Response(200, content=data, headers=headers)

    async def _h_download_v1(self, *, server: str, mediaId: str, **_: Any) -> httpx.Response:
        if "v1.11" not in self.versions:
            raise _HttpError(404, "M_UNRECOGNIZED", "Unrecognized request")
        return self._media_response(server, mediaId)

    async def _h_download_legacy(self, *, server: str, mediaId: str, **_: Any) -> httpx.Response:
        if not self.legacy_media:
            raise _HttpError(404, "M_NOT_FOUND", "Not found")
        return self._media_response(server, mediaId)

    async def _h_config_v1(self, **_: Any) -> JsonDict:
        if "v1.11" not in self.versions:
            raise _HttpError(404, "M_UNRECOGNIZED", "Unrecognized request")
        return {"m.upload.size": self.upload_size}

    async def _h_config_legacy(self, **_: Any) -> JsonDict:
        return {"m.upload.size": self.upload_size}
