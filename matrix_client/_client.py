"""The Matrix client-server API client.

Every request goes through :meth:`MatrixClient._call`: one attempt is
:meth:`MatrixClient._attempt` (send, time it, report it to ``on_request``, turn
an error response into a :class:`MatrixError`), and :func:`call_with_retry`
decides about retries from the failure's kind and the request's idempotence.

The access token only ever travels in the ``Authorization`` header; it is never
part of a URL, a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import random
from collections.abc import Callable, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote

import attrs
import httpx
import structlog
import trio

from ._content import MAX_EVENT_BYTES, event_size
from ._converter import structure, structure_events
from ._errors import (
    EventTooLargeError,
    MatrixError,
    RateLimitedError,
    ResponseFormatError,
    TransportError,
    UnknownTokenError,
)
from ._models import (
    Download,
    JsonDict,
    LoginResponse,
    MediaConfig,
    MessagesPage,
    RoomEvent,
    SyncResponse,
    Versions,
    WhoAmI,
)
from ._retry import RetryPolicy, call_with_retry
from ._sync import Syncer, SyncTimeoutError

log = structlog.get_logger(__name__)

CLIENT_V3 = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"
MEDIA_V3 = "/_matrix/media/v3"

#: Authenticated media (``/_matrix/client/v1/media/...``) arrived in spec v1.11.
AUTHENTICATED_MEDIA_VERSION = "v1.11"

#: Limits of ordinary requests. Sync sets its own read timeout (long-poll + margin).
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)
#: Requests in flight at once, /sync excluded. Callers beyond it wait in trio (cheap,
#: cancellable) instead of in httpcore's pool, where cancelling a waiting request
#: can leak a pool slot for good (encode/httpcore#1093: seen as a permanent
#: PoolTimeout at ~500 busy rooms) and every request scans the whole queue.
MAX_IN_FLIGHT = 32
DEFAULT_LIMITS = httpx.Limits(
    max_connections=MAX_IN_FLIGHT + 4, max_keepalive_connections=MAX_IN_FLIGHT + 4
)
SYNC_LABEL = "GET /sync"
USER_AGENT = b"surfaces-matrix-client"

OnRequest = Callable[[str, int, float], None]


def _seg(value: str) -> str:
    """One percent-encoded path segment (room ids contain ``!`` and ``:``)."""
    return quote(value, safe="")


def _retry_after_s(response: httpx.Response, body: Any) -> float | None:
    """``Retry-After`` (seconds or HTTP date) first, then the body's ``retry_after_ms``."""
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=datetime.UTC)
                now = datetime.datetime.now(datetime.UTC)
                return max(0.0, (when - now).total_seconds())
    if isinstance(body, dict):
        ms = body.get("retry_after_ms")
        if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0:
            return ms / 1000.0
    return None


def error_from_response(response: httpx.Response) -> MatrixError:
    """The exception for a non-2xx response (the one place statuses become classes)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    errcode: str | None = None
    message = response.reason_phrase or "error"
    if isinstance(body, dict):
        if isinstance(body.get("errcode"), str):
            errcode = body["errcode"]
        if isinstance(body.get("error"), str):
            message = body["error"]
    status = response.status_code
    if errcode == "M_UNKNOWN_TOKEN":
        soft = isinstance(body, dict) and body.get("soft_logout") is True
        return UnknownTokenError(errcode, status, message, soft_logout=soft)
    if status == 429 or errcode == "M_LIMIT_EXCEEDED":
        return RateLimitedError(errcode, status, message, _retry_after_s(response, body))
    return MatrixError(errcode, status, message)


def _json_body(response: httpx.Response, label: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ResponseFormatError(
            None, response.status_code, f"{label}: response is not JSON"
        ) from exc


def _json_object(response: httpx.Response, label: str) -> JsonDict:
    body = _json_body(response, label)
    if not isinstance(body, dict):
        raise ResponseFormatError(None, response.status_code, f"{label}: expected an object")
    return body


def _field(body: JsonDict, key: str, label: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ResponseFormatError(None, 200, f"{label}: missing string field {key!r}")
    return value


def parse_mxc(mxc: str) -> tuple[str, str]:
    """``mxc://server/media_id`` → ``(server, media_id)``; ``ValueError`` otherwise."""
    if not mxc.startswith("mxc://"):
        raise ValueError(f"not an mxc:// URI: {mxc!r}")
    server, sep, media_id = mxc[len("mxc://") :].partition("/")
    if not server or not sep or not media_id or "/" in media_id:
        raise ValueError(f"malformed mxc:// URI: {mxc!r}")
    return server, media_id


def _content_disposition_filename(header: str | None) -> str | None:
    """The file name from a Content-Disposition header (``filename*`` preferred)."""
    if not header:
        return None
    plain: str | None = None
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        key = key.strip().lower()
        value = value.strip()
        if key == "filename*":
            _charset, _, encoded = value.partition("''")
            return unquote(encoded.strip('"'), encoding="utf-8", errors="replace") or None
        if key == "filename":
            plain = value.strip('"') or None
    return plain


@attrs.define(eq=False)
class MatrixClient:
    """A trio-native Matrix client-server API client on an httpx transport.

    Use it as an async context manager; it owns one httpx transport (a pooled
    ``httpx.AsyncHTTPTransport`` unless ``transport`` is given)::

        async with MatrixClient("https://matrix.example", access_token=tok) as mx:
            me = await mx.whoami()
            await mx.send_event(room, "m.room.message", text_content("hi"),
                                txn_id=new_txn_id())

    Methods take no timeouts (wrap them in ``trio.fail_after``); retries follow
    ``retry`` (see :class:`RetryPolicy`). ``on_request(label, status, seconds)`` is
    called after every HTTP attempt with a bounded endpoint template such as
    ``"PUT /rooms/{roomId}/send"`` and status ``0`` for a network failure.
    """

    homeserver: str = attrs.field(converter=lambda url: str(url).rstrip("/"))
    access_token: str | None = attrs.field(default=None, kw_only=True, repr=False)
    user_id: str | None = attrs.field(default=None, kw_only=True)
    device_id: str | None = attrs.field(default=None, kw_only=True)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, kw_only=True)
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, kw_only=True, repr=False)
    sync_http_margin_s: float = attrs.field(default=15.0, kw_only=True)
    on_request: OnRequest | None = attrs.field(default=None, kw_only=True, repr=False)
    _transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, init=False, repr=False)
    _in_flight: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(MAX_IN_FLIGHT), init=False, repr=False
    )
    _versions: Versions | None = attrs.field(default=None, init=False, repr=False)
    _rng: random.Random = attrs.field(factory=random.Random, init=False, repr=False)

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._transport is not None:
            raise RuntimeError("MatrixClient is already open")
        httpx.URL(self.homeserver)  # a malformed homeserver fails here, not at a request
        self._transport = self.transport or httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS)
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            # Close the pool even when we are being cancelled, but not forever.
            with trio.move_on_after(5.0) as scope:
                scope.shield = True
                await transport.aclose()

    # -- request core ------------------------------------------------------------

    def _observe(self, label: str, status: int, started: float) -> None:
        elapsed = trio.current_time() - started
        log.debug("matrix_request", endpoint=label, status=status, seconds=round(elapsed, 4))
        if self.on_request is not None:
            try:
                self.on_request(label, status, elapsed)
            except Exception:  # a metrics hook must never break a request
                log.exception("matrix_on_request_failed", endpoint=label)

    async def _attempt(
        self,
        method: str,
        path: str,
        label: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        http_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One HTTP attempt: a 2xx response, or a MatrixError / TransportError."""
        transport = self._transport
        if transport is None:
            raise RuntimeError("use `async with MatrixClient(...)` before making requests")
        request = self._request(method, path, json_body, params, content, headers, http_timeout)
        started = trio.current_time()
        # /sync bypasses the limit: the pool keeps spare connections for it, so a
        # busy bot never starves its own intake.
        limiter = _NO_LIMIT if label == SYNC_LABEL else self._in_flight
        try:
            async with limiter:
                response = await transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except httpx.TransportError as exc:
            self._observe(label, 0, started)
            raise TransportError(f"{label}: {type(exc).__name__}: {exc}") from exc
        response.request = request
        self._observe(label, response.status_code, started)
        if response.is_success:
            return response
        raise error_from_response(response)

    def _request(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: dict[str, str] | None,
        content: bytes | None,
        headers: dict[str, str] | None,
        http_timeout: httpx.Timeout | None,
    ) -> httpx.Request:
        """The ``httpx.Request`` for one attempt, sent straight to the transport.

        Why not ``httpx.AsyncClient.request``: the client layer (URL merging,
        cookie jar, auth and redirect flows, event hooks) costs about 190 µs of CPU
        per request (bench: 740 → 550 µs per PUT against a trivial local server)
        and we use none of it: paths are built percent-encoded here, the token is
        one header, and redirects are not followed (as the client did by default).
        ``httpx.Request`` itself still encodes the JSON body and the query, and
        adds ``Host`` and ``Content-Length``.
        """
        request_headers = [
            (b"Accept", b"*/*"),
            (b"Accept-Encoding", b"gzip, deflate"),
            (b"Connection", b"keep-alive"),
            (b"User-Agent", USER_AGENT),
        ]
        if self.access_token:
            request_headers.append((b"Authorization", f"Bearer {self.access_token}".encode()))
        if headers:
            request_headers.extend((k.encode(), v.encode()) for k, v in headers.items())
        timeout = http_timeout if http_timeout is not None else DEFAULT_TIMEOUT
        return httpx.Request(
            method,
            self.homeserver + path,  # ``path`` is percent-encoded already
            params=params,
            headers=request_headers,
            content=content,
            json=json_body,
            extensions={"timeout": timeout.as_dict()},
        )

    async def _call(
        self,
        method: str,
        path: str,
        label: str,
        *,
        idempotent: bool | None = None,
        parse: Callable[[httpx.Response], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A request with retries; returns ``parse(response)`` (default: JSON body).

        Parsing happens inside the attempt, so a garbled answer to an idempotent
        request is retried like any other transient failure.
        """
        if idempotent is None:
            idempotent = method in ("GET", "PUT", "DELETE", "HEAD")
        parser = parse or partial(_json_body, label=label)

        async def attempt() -> Any:
            response = await self._attempt(method, path, label, **kwargs)
            return parser(response)

        return await call_with_retry(
            attempt, policy=self.retry, idempotent=idempotent, label=label, rng=self._rng
        )

    async def _call_object(self, method: str, path: str, label: str, **kwargs: Any) -> JsonDict:
        return await self._call(
            method, path, label, parse=partial(_json_object, label=label), **kwargs
        )

    def _own_user_id(self) -> str:
        if self.user_id is None:
            raise RuntimeError("own user id unknown: call whoami() or login first")
        return self.user_id

    # -- auth --------------------------------------------------------------------

    async def versions(self) -> Versions:
        """``GET /_matrix/client/versions``; the result is cached for media decisions."""
        body = await self._call_object("GET", "/_matrix/client/versions", "GET /versions")
        self._versions = structure(body, Versions, what="versions")
        return self._versions

    async def _server_versions(self) -> Versions:
        if self._versions is None:
            return await self.versions()
        return self._versions

    async def login_password(
        self,
        user: str,
        password: str,
        *,
        device_id: str,
        device_display_name: str | None = None,
    ) -> LoginResponse:
        """Log in with a password to a fixed ``device_id`` (keeps txn ids valid).

        Sets ``access_token``, ``user_id`` and ``device_id`` on the client.
        """
        body: JsonDict = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "device_id": device_id,
        }
        if device_display_name is not None:
            body["initial_device_display_name"] = device_display_name
        answer = await self._call_object(
            "POST", f"{CLIENT_V3}/login", "POST /login", json_body=body
        )
        result = structure(answer, LoginResponse, what="login")
        self.access_token = result.access_token
        self.user_id = result.user_id
        self.device_id = result.device_id
        log.info("matrix_logged_in", user_id=result.user_id, device_id=result.device_id)
        return result

    async def whoami(self) -> WhoAmI:
        """``GET /account/whoami``; sets ``user_id`` and ``device_id``."""
        body = await self._call_object("GET", f"{CLIENT_V3}/account/whoami", "GET /account/whoami")
        me = structure(body, WhoAmI, what="whoami")
        self.user_id = me.user_id
        if me.device_id is not None:
            self.device_id = me.device_id
        return me

    async def logout(self) -> None:
        """Invalidate the access token on the server and forget it."""
        await self._call("POST", f"{CLIENT_V3}/logout", "POST /logout", json_body={})
        self.access_token = None

    # -- sync --------------------------------------------------------------------

    async def upload_filter(self, filter: JsonDict) -> str:
        user = self._own_user_id()
        body = await self._call_object(
            "POST",
            f"{CLIENT_V3}/user/{_seg(user)}/filter",
            "POST /user/{userId}/filter",
            json_body=filter,
        )
        return _field(body, "filter_id", "POST /user/{userId}/filter")

    async def _sync_once(
        self,
        *,
        since: str | None,
        timeout_ms: int,
        filter_id: str | None,
        full_state: bool,
        margin_s: float | None = None,
    ) -> SyncResponse:
        """One ``/sync`` attempt, bounded by ``timeout_ms`` + ``margin_s``.

        ``margin_s`` defaults to ``sync_http_margin_s``; the :class:`Syncer` passes
        a larger one after consecutive timeouts. The httpx read timeout alone is
        not enough: it restarts on every chunk read, so a server trickling bytes
        could hold us forever. The trio deadline bounds the whole request; expiry
        (or the httpx read timeout) is a :class:`SyncTimeoutError`.
        """
        params: dict[str, str] = {"timeout": str(max(0, timeout_ms))}
        if since is not None:
            params["since"] = since
        if filter_id is not None:
            params["filter"] = filter_id
        if full_state:
            params["full_state"] = "true"
        if margin_s is None:
            margin_s = self.sync_http_margin_s
        limit_s = max(0, timeout_ms) / 1000.0 + margin_s
        http_timeout = httpx.Timeout(connect=10.0, read=limit_s, write=30.0, pool=10.0)
        label = SYNC_LABEL
        try:
            with trio.fail_after(limit_s):
                response = await self._attempt(
                    "GET", f"{CLIENT_V3}/sync", label, params=params, http_timeout=http_timeout
                )
        except trio.TooSlowError as exc:
            raise SyncTimeoutError(f"{label}: no complete response in {limit_s:g} s") from exc
        except TransportError as exc:
            if isinstance(exc.__cause__, httpx.ReadTimeout):
                raise SyncTimeoutError(str(exc)) from exc.__cause__
            raise
        return structure(_json_body(response, label), SyncResponse, what="sync")

    async def sync(
        self,
        *,
        since: str | None,
        timeout_ms: int,
        filter_id: str | None = None,
        full_state: bool = False,
    ) -> SyncResponse:
        """One ``/sync`` with the usual retries. For a loop, use :meth:`syncer`."""
        return await call_with_retry(
            partial(
                self._sync_once,
                since=since,
                timeout_ms=timeout_ms,
                filter_id=filter_id,
                full_state=full_state,
            ),
            policy=self.retry,
            idempotent=True,
            label="GET /sync",
            rng=self._rng,
        )

    def syncer(
        self,
        *,
        since: str | None,
        filter_id: str | None,
        long_poll_ms: int = 30_000,
        min_interval_s: float = 0.5,
        dedup_size: int = 10_000,
        max_failures: int | None = None,
        max_margin_factor: float = 8.0,
        on_failure: Callable[[str], None] | None = None,
    ) -> Syncer:
        """A :class:`Syncer` starting at ``since`` (the caller's persisted token)."""
        return Syncer(
            self,
            since=since,
            filter_id=filter_id,
            long_poll_ms=long_poll_ms,
            min_interval_s=min_interval_s,
            dedup_size=dedup_size,
            max_failures=max_failures,
            max_margin_factor=max_margin_factor,
            on_failure=on_failure,
        )

    # -- rooms -------------------------------------------------------------------

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
        return _field(answer, "room_id", "POST /createRoom")

    async def join(self, room_id_or_alias: str) -> str:
        """Join (or accept an invite) → the room id."""
        label = "POST /join/{roomIdOrAlias}"
        answer = await self._call_object(
            "POST", f"{CLIENT_V3}/join/{_seg(room_id_or_alias)}", label, json_body={}
        )
        return _field(answer, "room_id", label)

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
                f"{CLIENT_V3}/rooms/{_seg(room_id)}/invite",
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
            f"{CLIENT_V3}/rooms/{_seg(room_id)}/leave",
            "POST /rooms/{roomId}/leave",
            json_body={},
        )

    async def forget(self, room_id: str) -> None:
        await self._call(
            "POST",
            f"{CLIENT_V3}/rooms/{_seg(room_id)}/forget",
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
            "GET", f"{CLIENT_V3}/rooms/{_seg(room_id)}/joined_members", label
        )
        joined = body.get("joined")
        if not isinstance(joined, dict):
            raise ResponseFormatError(None, 200, f"{label}: missing joined")
        members: dict[str, str | None] = {}
        for user, info in joined.items():
            name = info.get("display_name") if isinstance(info, dict) else None
            members[user] = name if isinstance(name, str) else None
        return members

    async def get_state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> JsonDict | None:
        """The content of one state event, or ``None`` when it does not exist (404)."""
        try:
            return await self._call_object(
                "GET",
                f"{CLIENT_V3}/rooms/{_seg(room_id)}/state/{_seg(event_type)}/{_seg(state_key)}",
                "GET /rooms/{roomId}/state/{eventType}/{stateKey}",
            )
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise

    async def get_state(self, room_id: str) -> list[RoomEvent]:
        """The room's full current state (malformed events skipped)."""
        label = "GET /rooms/{roomId}/state"
        body = await self._call("GET", f"{CLIENT_V3}/rooms/{_seg(room_id)}/state", label)
        if not isinstance(body, list):
            raise ResponseFormatError(None, 200, f"{label}: expected a list")
        return structure_events(body)

    async def get_event(self, room_id: str, event_id: str) -> RoomEvent:
        """``GET /rooms/{roomId}/event/{eventId}`` (e.g. the message a reply quotes).

        Raises :class:`MatrixError` 404 when the event does not exist or we may not
        see it, :class:`ResponseFormatError` for a malformed event.
        """
        label = "GET /rooms/{roomId}/event/{eventId}"
        body = await self._call_object(
            "GET", f"{CLIENT_V3}/rooms/{_seg(room_id)}/event/{_seg(event_id)}", label
        )
        return structure(body, RoomEvent, what="event")

    async def put_state_event(
        self, room_id: str, event_type: str, content: JsonDict, state_key: str = ""
    ) -> str:
        """Set a state event → its event id. PUT, so retried on 5xx (same state twice is
        harmless)."""
        _check_size(event_type, content)
        label = "PUT /rooms/{roomId}/state/{eventType}/{stateKey}"
        body = await self._call_object(
            "PUT",
            f"{CLIENT_V3}/rooms/{_seg(room_id)}/state/{_seg(event_type)}/{_seg(state_key)}",
            label,
            json_body=content,
        )
        return _field(body, "event_id", label)

    async def get_display_name(self, user_id: str) -> str | None:
        """The user's global display name, ``None`` when unset or unknown."""
        try:
            body = await self._call_object(
                "GET",
                f"{CLIENT_V3}/profile/{_seg(user_id)}/displayname",
                "GET /profile/{userId}/displayname",
            )
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise
        name = body.get("displayname")
        return name if isinstance(name, str) else None

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
            f"{CLIENT_V3}/rooms/{_seg(room_id)}/messages",
            "GET /rooms/{roomId}/messages",
            params=params,
        )
        return structure(body, MessagesPage, what="messages")

    # -- messages ----------------------------------------------------------------

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
        _check_size(event_type, content)
        label = "PUT /rooms/{roomId}/send"
        body = await self._call_object(
            "PUT",
            f"{CLIENT_V3}/rooms/{_seg(room_id)}/send/{_seg(event_type)}/{_seg(txn_id)}",
            label,
            json_body=content,
        )
        return _field(body, "event_id", label)

    async def redact(
        self, room_id: str, event_id: str, *, txn_id: str, reason: str | None = None
    ) -> str:
        """Redact ``event_id`` → the redaction's event id (PUT with txn id: retried)."""
        label = "PUT /rooms/{roomId}/redact"
        content: JsonDict = {} if reason is None else {"reason": reason}
        body = await self._call_object(
            "PUT",
            f"{CLIENT_V3}/rooms/{_seg(room_id)}/redact/{_seg(event_id)}/{_seg(txn_id)}",
            label,
            json_body=content,
        )
        return _field(body, "event_id", label)

    async def set_typing(self, room_id: str, typing: bool, *, timeout_ms: int = 30_000) -> None:
        user = self._own_user_id()
        body: JsonDict = {"typing": typing}
        if typing:
            body["timeout"] = timeout_ms
        await self._call(
            "PUT",
            f"{CLIENT_V3}/rooms/{_seg(room_id)}/typing/{_seg(user)}",
            "PUT /rooms/{roomId}/typing",
            json_body=body,
        )

    async def send_receipt(self, room_id: str, event_id: str) -> None:
        """An ``m.read`` receipt for ``event_id``."""
        await self._call(
            "POST",
            f"{CLIENT_V3}/rooms/{_seg(room_id)}/receipt/m.read/{_seg(event_id)}",
            "POST /rooms/{roomId}/receipt",
            json_body={},
        )

    # -- media -------------------------------------------------------------------

    async def upload(self, data: bytes, *, content_type: str, filename: str | None = None) -> str:
        """Upload bytes → ``mxc://`` URI. POST: retried on 429 only."""
        label = "POST /media/upload"
        body = await self._call_object(
            "POST",
            f"{MEDIA_V3}/upload",
            label,
            content=data,
            params={"filename": filename} if filename else None,
            headers={"Content-Type": content_type},
        )
        uri = _field(body, "content_uri", label)
        parse_mxc(uri)
        return uri

    async def download(self, mxc: str) -> Download:
        """Download ``mxc://server/id``.

        Uses authenticated media (``/_matrix/client/v1/media/download``) when the
        server advertises v1.11 in ``/versions``, else the legacy unauthenticated
        endpoint. Raises ``ValueError`` for a malformed ``mxc`` URI.
        """
        server, media_id = parse_mxc(mxc)
        if (await self._server_versions()).supports(AUTHENTICATED_MEDIA_VERSION):
            path = f"{CLIENT_V1}/media/download/{_seg(server)}/{_seg(media_id)}"
            label = "GET /media/download"
        else:
            path = f"{MEDIA_V3}/download/{_seg(server)}/{_seg(media_id)}"
            label = "GET /media/download (legacy)"

        def parse(response: httpx.Response) -> Download:
            return Download(
                data=response.content,
                content_type=response.headers.get("content-type"),
                filename=_content_disposition_filename(response.headers.get("content-disposition")),
            )

        return await self._call("GET", path, label, parse=parse)

    async def media_config(self) -> MediaConfig:
        """Media limits (``m.upload.size``), authenticated endpoint when available."""
        if (await self._server_versions()).supports(AUTHENTICATED_MEDIA_VERSION):
            path, label = f"{CLIENT_V1}/media/config", "GET /media/config"
        else:
            path, label = f"{MEDIA_V3}/config", "GET /media/config (legacy)"
        body = await self._call_object("GET", path, label)
        size = body.get("m.upload.size")
        if isinstance(size, bool) or not isinstance(size, int):
            size = None
        return MediaConfig(upload_size=size)


def _check_size(event_type: str, content: JsonDict) -> None:
    size = event_size(event_type, content)
    if size > MAX_EVENT_BYTES:
        raise EventTooLargeError(size, MAX_EVENT_BYTES)


class _Unlimited:
    """An ``async with`` that does nothing (the /sync path)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LIMIT = _Unlimited()
