"""An in-memory, scripted Matrix homeserver served through ``httpx.MockTransport``.

The model is deliberately small but honest about the behaviours a bot depends
on: one global stream position (sync tokens are ``s<position>``), per-user
membership deciding what ``/sync`` returns (a newly joined room with its
latest events, each with the user's ``unsigned.membership`` at it, as in spec
v1.11), the ``room.timeline`` part of filters (``limit``, ``senders``,
``not_senders``; uploaded or inline JSON), idempotent sends per
``(user, device, txn_id)``, a long-poll that waits on trio time (so
``autojump_clock`` runs it instantly), and scripted faults.

Several devices per user (``login`` with another device id; ``/logout`` deletes
its device, as Synapse does; ``DELETE /devices/{id}`` behind password UIA); E2EE
transport (``_keys``: device keys, one-time and fallback keys, to-device inboxes
deleted when the sync token passes them, ``device_lists``); ``m.room.encryption``
by default per room type (``encryption_by_default``); presence on or off (off
answers as Synapse does); redactions that strip content by the spec's per-room-version
rules; ``GET`` of one event; members with their membership; receipts checked as
Synapse checks them.

The class is composed like the client: this core (wiring, faults, direct
helpers, routing) plus one mixin per part — ``_accounts``, ``_rooms``,
``_events``, ``_syncing``, ``_media``, ``_keys`` — over the data in ``_model``.

Room versions (``FakeHomeserver.room_version``, default ``"12"`` as on Synapse
1.163; a ``createRoom`` body may ask for another): from v11 the create event has
no ``creator`` (MSC2175); from v12 creators have unlimited power (MSC4289): the
default ``m.room.power_levels`` does not list the creator, ``trusted_private_chat``
invitees become ``additional_creators`` of the create event, and power levels
listing a creator in ``users`` are refused with 400 ``M_UNKNOWN`` (a ``createRoom``
so refused leaves the room with just the create event and the creator's join, as
on Synapse).

Not modelled: federation, other power-level enforcement (anyone joined may
redact), hash room ids (v12), push rules, presence in ``/sync``, cross-signing,
aliases, ephemeral events in ``/sync``, relation aggregation in ``unsigned``.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import deque
from typing import Any
from urllib.parse import unquote

import attrs
import httpx
import trio

from .._client import MatrixClient
from .._retry import RetryPolicy
from ._accounts import AccountHandlers
from ._events import EventHandlers
from ._faults import Fault, FaultRule, LoggedRequest
from ._keys import KeyHandlers
from ._media import MediaHandlers
from ._model import (
    DEFAULT_VERSIONS,
    EncryptionDefault,
    FakeHomeserverError,
    FakeLogin,
    FakeUser,
    Handler,
    JsonDict,
    _Device,
    _Entry,
    _HttpError,
    _Room,
    _Route,
    _Session,
)
from ._rooms import RoomHandlers
from ._syncing import SyncHandlers


@attrs.define(eq=False)
class FakeHomeserver(
    AccountHandlers, SyncHandlers, RoomHandlers, EventHandlers, MediaHandlers, KeyHandlers
):
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
        receipt_log: every receipt, ``(room_id, user_id, receipt_type, event_id, body)``.
        presence_enabled: ``False`` answers presence as Synapse with
            ``presence.enabled: false`` does: ``PUT .../status`` is accepted and
            ignored, ``GET`` says ``offline`` (for 403/404-style servers, inject a Fault).
        encryption_by_default: as Synapse's
            ``encryption_enabled_by_default_for_room_type`` (:class:`EncryptionDefault`).
    """

    server_name: str = "test.local"
    versions: list[str] = attrs.field(factory=lambda: list(DEFAULT_VERSIONS))
    sync_long_poll: bool = True
    upload_size: int = 50 * 1024 * 1024
    legacy_media: bool = True
    room_version: str = "12"
    presence_enabled: bool = True
    encryption_by_default: EncryptionDefault = attrs.field(
        default=EncryptionDefault.OFF, converter=EncryptionDefault
    )
    requests: list[LoggedRequest] = attrs.field(factory=list, init=False)
    typing: dict[tuple[str, str], bool] = attrs.field(factory=dict, init=False)
    typing_log: list[tuple[str, str, bool]] = attrs.field(factory=list, init=False)
    receipts: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False)
    receipt_log: list[tuple[str, str, str, str, JsonDict]] = attrs.field(factory=list, init=False)
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
    _devices: dict[str, dict[str, _Device]] = attrs.field(factory=dict, init=False)
    _device_changes: list[tuple[int, str]] = attrs.field(factory=list, init=False)
    _presence: dict[str, tuple[str, str | None, float]] = attrs.field(factory=dict, init=False)
    _uia_sessions: set[str] = attrs.field(factory=set, init=False)

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
        self,
        user: FakeUser | FakeLogin | str,
        *,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> MatrixClient:
        """A ``MatrixClient`` logged in as ``user`` (use it with ``async with``): the
        user's latest login, or the device of a :class:`FakeLogin`."""
        account = user if isinstance(user, FakeLogin) else self._user(user)
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
        # The first device is no device-list change: nobody shares a room with it yet.
        self._devices[user_id] = {device: _Device(device)}
        return user

    def login(
        self,
        user: FakeUser | str,
        *,
        device_id: str | None = None,
        display_name: str | None = None,
    ) -> FakeLogin:
        """Log ``user`` in on another (or the same) device, as ``POST /login`` does.

        A new device shows up in ``device_lists.changed`` of everyone who shares a
        room with the user. Pass the result to :meth:`user_client`.
        """
        user_id = self._uid(user)
        device = device_id or f"DEV{next(self._ids)}"
        token = self._login_device(user_id, device, display_name)
        return FakeLogin(user_id, device, token)

    def logout(self, login: FakeLogin) -> None:
        """``POST /logout`` for that device: Synapse deletes the device with it."""
        self._delete_device(login.user_id, login.device_id)

    def devices(self, user: FakeUser | str) -> list[str]:
        """Device ids of ``user``, in creation order."""
        return list(self._devices.get(self._uid(user), {}))

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

    def _uid(self, user: FakeUser | FakeLogin | str) -> str:
        return user if isinstance(user, str) else user.user_id

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
                headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
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
            ("DELETE", f"{c3}/devices/{{deviceId}}", self._h_delete_device, True),
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
            ("GET", f"{c3}/rooms/{{roomId}}/event/{{eventId}}", self._h_get_event, True),
            ("GET", f"{c3}/rooms/{{roomId}}/members", self._h_room_members, True),
            ("PUT", f"{c3}/presence/{{userId}}/status", self._h_presence_put, True),
            ("GET", f"{c3}/presence/{{userId}}/status", self._h_presence_get, True),
            ("POST", f"{c3}/keys/upload", self._h_keys_upload, True),
            ("POST", f"{c3}/keys/query", self._h_keys_query, True),
            ("POST", f"{c3}/keys/claim", self._h_keys_claim, True),
            ("PUT", f"{c3}/sendToDevice/{{eventType}}/{{txnId}}", self._h_send_to_device, True),
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
