"""The request core every method group of :class:`~matrix_client.MatrixClient` calls.

Every request goes through :meth:`HttpCore._call`: one attempt is
:meth:`HttpCore._attempt` (send, read the body under its byte cap, time it,
report it to ``on_request``, turn an error response into a
:class:`MatrixError`), and :func:`call_with_retry` decides about retries from
the failure's kind and the request's idempotence.

The access token only ever travels in the ``Authorization`` header; it is never
part of a URL, a log line, an exception message or a ``repr``.

Performance: this is the hot path of every send and every ``/sync``, tuned
(bench/RESULTS.md): requests go straight to the httpx transport, with no
``httpx.AsyncClient`` and no per-request helper layers. Keep it that way.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import random
from collections.abc import AsyncIterable, Callable
from functools import partial
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import attrs
import httpx
import structlog
import trio

from ._body import BodyTooLargeError, read_capped
from ._content import MAX_EVENT_BYTES, event_size
from ._converter import structure
from ._errors import (
    EventTooLargeError,
    MatrixError,
    RateLimitedError,
    ResponseFormatError,
    ResponseTooLargeError,
    TransportError,
    UnknownTokenError,
)
from ._models import JsonDict, Versions
from ._retry import RetryPolicy, call_with_retry

log = structlog.get_logger(__name__)

CLIENT_V3 = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"
MEDIA_V3 = "/_matrix/media/v3"

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

#: Byte caps of response bodies (decoded). A ``/sync`` catching up thousands of
#: rooms is tens of MiB; any other JSON answer the client asks for is far below
#: 8 MiB (a ``/state`` of a 10,000-member room is ~5 MB). Error bodies are a
#: Matrix error object or a proxy's page: 64 KiB, beyond that the body is ignored.
DEFAULT_MAX_SYNC_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
#: The cap of a download when the caller gives none: a bound on memory, not a policy.
DEFAULT_MAX_MEDIA_BYTES = 100 * 1024 * 1024

OnRequest = Callable[[str, int, float], None]


def seg(value: str) -> str:
    """One percent-encoded path segment (room ids contain ``!`` and ``:``)."""
    return quote(value, safe="")


@attrs.frozen
class Reply:
    """A 2xx answer: status, headers and the whole decoded body (under its cap)."""

    status: int
    headers: httpx.Headers
    body: bytes


def _retry_after_s(headers: httpx.Headers, body: Any) -> float | None:
    """``Retry-After`` (seconds or HTTP date) first, then the body's ``retry_after_ms``."""
    header = headers.get("retry-after")
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


def error_from(
    status: int, headers: httpx.Headers, raw: bytes | None, reason: bytes | None = None
) -> MatrixError:
    """The exception for a non-2xx answer (the one place statuses become classes).

    ``raw`` is ``None`` when the body was too large or undecodable: the status
    alone then decides the class. ``reason`` is the status line's phrase.
    """
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    errcode: str | None = None
    phrase = reason.decode("ascii", errors="ignore") if reason else ""
    message = phrase or httpx.codes.get_reason_phrase(status) or "error"
    if isinstance(body, dict):
        if isinstance(body.get("errcode"), str):
            errcode = body["errcode"]
        if isinstance(body.get("error"), str):
            message = body["error"]
    error: MatrixError
    if errcode == "M_UNKNOWN_TOKEN":
        soft = isinstance(body, dict) and body.get("soft_logout") is True
        error = UnknownTokenError(errcode, status, message, soft_logout=soft)
    elif status == 429 or errcode == "M_LIMIT_EXCEEDED":
        error = RateLimitedError(errcode, status, message, _retry_after_s(headers, body))
    else:
        error = MatrixError(errcode, status, message)
    if isinstance(body, dict):
        error.body = body
    return error


def error_from_response(response: httpx.Response) -> MatrixError:
    """:func:`error_from` for a read ``httpx.Response`` (tests, callers with their own)."""
    reason = response.extensions.get("reason_phrase")
    return error_from(response.status_code, response.headers, response.content, reason)


def json_body(reply: Reply, label: str) -> Any:
    try:
        return json.loads(reply.body)
    except ValueError as exc:
        raise ResponseFormatError(None, reply.status, f"{label}: response is not JSON") from exc


def json_object(reply: Reply, label: str) -> JsonDict:
    body = json_body(reply, label)
    if not isinstance(body, dict):
        raise ResponseFormatError(None, reply.status, f"{label}: expected an object")
    return body


def field(body: JsonDict, key: str, label: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ResponseFormatError(None, 200, f"{label}: missing string field {key!r}")
    return value


def check_size(event_type: str, content: JsonDict) -> None:
    """:class:`EventTooLargeError` before any request, for an event over 64 KiB."""
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


@attrs.define(eq=False)
class HttpCore:
    """Transport ownership, the in-flight limit and one request attempt.

    The fields are :class:`~matrix_client.MatrixClient`'s (its docstring lists
    them); the method groups (``_auth``, ``_rooms`` …) subclass this with no
    state of their own.
    """

    homeserver: str = attrs.field(converter=lambda url: str(url).rstrip("/"))
    access_token: str | None = attrs.field(default=None, kw_only=True, repr=False)
    user_id: str | None = attrs.field(default=None, kw_only=True)
    device_id: str | None = attrs.field(default=None, kw_only=True)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, kw_only=True)
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, kw_only=True, repr=False)
    sync_http_margin_s: float = attrs.field(default=15.0, kw_only=True)
    on_request: OnRequest | None = attrs.field(default=None, kw_only=True, repr=False)
    max_sync_bytes: int = attrs.field(default=DEFAULT_MAX_SYNC_BYTES, kw_only=True)
    max_response_bytes: int = attrs.field(default=DEFAULT_MAX_RESPONSE_BYTES, kw_only=True)
    max_media_bytes: int = attrs.field(default=DEFAULT_MAX_MEDIA_BYTES, kw_only=True)
    #: ``set_presence`` of every ``/sync`` (None: not sent; the server's default is
    #: ``online``). A client that sets its presence itself keeps this equal to it:
    #: Synapse sets the device's presence from every sync, which would undo an
    #: explicit ``unavailable`` within one long-poll.
    sync_presence: str | None = attrs.field(default=None, kw_only=True)
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

    # -- one attempt ---------------------------------------------------------------

    def _observe(self, label: str, status: int, started: float) -> None:
        elapsed = trio.current_time() - started
        log.debug("matrix_request", endpoint=label, status=status, seconds=round(elapsed, 4))
        if self.on_request is not None:
            try:
                self.on_request(label, status, elapsed)
            except Exception:  # a metrics hook must never break a request
                log.exception("matrix_on_request_failed", endpoint=label)

    def _open_transport(self) -> httpx.AsyncBaseTransport:
        transport = self._transport
        if transport is None:
            raise RuntimeError("use `async with MatrixClient(...)` before making requests")
        return transport

    async def _attempt(
        self,
        method: str,
        path: str,
        label: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        http_timeout: httpx.Timeout | None = None,
        max_bytes: int | None = None,
    ) -> Reply:
        """One HTTP attempt: a 2xx :class:`Reply`, or a MatrixError / TransportError.

        The body is read under ``max_bytes`` (default ``max_response_bytes``);
        a larger 2xx body is a :class:`ResponseTooLargeError`.
        """
        transport = self._open_transport()
        request = self._request(method, path, json_body, params, content, headers, http_timeout)
        limit = self.max_response_bytes if max_bytes is None else max_bytes
        started = trio.current_time()
        # /sync bypasses the limit: the pool keeps spare connections for it, so a
        # busy bot never starves its own intake.
        limiter = _NO_LIMIT if label == SYNC_LABEL else self._in_flight
        try:
            async with limiter:
                response = await transport.handle_async_request(request)
                status = response.status_code
                ok = 200 <= status < 300
                try:
                    body: bytes | None = await read_capped(
                        response.stream, response.headers, limit if ok else MAX_ERROR_BODY_BYTES
                    )
                except (BodyTooLargeError, ResponseFormatError) as exc:
                    if ok:
                        self._observe(label, status, started)
                        if isinstance(exc, ResponseFormatError):
                            raise ResponseFormatError(None, status, f"{label}: {exc.message}")
                        raise ResponseTooLargeError(label, status, limit, exc.seen_at_least)
                    body = None  # an error page we will not read: the status decides
                finally:
                    await response.aclose()
        except httpx.TransportError as exc:
            self._observe(label, 0, started)
            raise TransportError(f"{label}: {type(exc).__name__}: {exc}") from exc
        self._observe(label, status, started)
        if ok:
            return Reply(status, response.headers, body or b"")
        raise error_from(status, response.headers, body, response.extensions.get("reason_phrase"))

    async def _open_stream(
        self, method: str, path: str, label: str, *, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """One attempt that stops after the headers: a 2xx response, body unread.

        The caller reads ``response.stream`` under its own cap and must call
        :meth:`_close_stream`: the response holds a connection and one of the
        in-flight slots until then. A non-2xx answer is raised as in :meth:`_attempt`.
        """
        transport = self._open_transport()
        request = self._request(method, path, None, params, None, None, None)
        await self._in_flight.acquire()
        try:
            return await self._headers(transport, request, label)
        except BaseException:
            self._in_flight.release()
            raise

    async def _headers(
        self, transport: httpx.AsyncBaseTransport, request: httpx.Request, label: str
    ) -> httpx.Response:
        started = trio.current_time()
        try:
            response = await transport.handle_async_request(request)
        except httpx.TransportError as exc:
            self._observe(label, 0, started)
            raise TransportError(f"{label}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        self._observe(label, status, started)
        if 200 <= status < 300:
            return response
        try:
            body: bytes | None = await read_capped(
                response.stream, response.headers, MAX_ERROR_BODY_BYTES
            )
        except (BodyTooLargeError, ResponseFormatError, httpx.TransportError):
            body = None
        finally:
            await response.aclose()
        raise error_from(status, response.headers, body, response.extensions.get("reason_phrase"))

    async def _close_stream(self, response: httpx.Response) -> None:
        try:
            await response.aclose()
        finally:
            self._in_flight.release()

    def _request(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: dict[str, str] | None,
        content: bytes | AsyncIterable[bytes] | None,
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
        adds ``Host`` and ``Content-Length`` (a streamed ``content`` comes with its
        own ``Content-Length`` header, which makes httpx send it unchunked).
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

    # -- with retries --------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        label: str,
        *,
        idempotent: bool | None = None,
        parse: Callable[[Reply], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A request with retries; returns ``parse(reply)`` (default: JSON body).

        Parsing happens inside the attempt, so a garbled answer to an idempotent
        request is retried like any other transient failure.
        """
        if idempotent is None:
            idempotent = method in ("GET", "PUT", "DELETE", "HEAD")
        parser = parse or partial(json_body, label=label)

        async def attempt() -> Any:
            return parser(await self._attempt(method, path, label, **kwargs))

        return await call_with_retry(
            attempt, policy=self.retry, idempotent=idempotent, label=label, rng=self._rng
        )

    async def _call_object(self, method: str, path: str, label: str, **kwargs: Any) -> JsonDict:
        return await self._call(
            method, path, label, parse=partial(json_object, label=label), **kwargs
        )

    def _own_user_id(self) -> str:
        if self.user_id is None:
            raise RuntimeError("own user id unknown: call whoami() or login first")
        return self.user_id

    async def _server_versions(self) -> Versions:
        """``/versions``, fetched once (media and presence decisions read it)."""
        if self._versions is None:
            return await self.versions()
        return self._versions

    async def versions(self) -> Versions:
        """``GET /_matrix/client/versions``; the result is cached for media decisions."""
        body = await self._call_object("GET", "/_matrix/client/versions", "GET /versions")
        self._versions = structure(body, Versions, what="versions")
        return self._versions
