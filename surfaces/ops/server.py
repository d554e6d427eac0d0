"""A small HTTP/1.1 server for ``/healthz``, ``/readyz`` and ``/metrics`` (trio + h11).

Why not a web framework: the ops endpoint answers three GETs from a scraper and an
orchestrator; h11 (already installed through httpx) plus trio's listeners do it in
a page, inside the bot's own nursery, with no second event loop or thread.

Defensive by construction, because the port may face a network:

- one request per connection (``Connection: close``), so no keep-alive state;
- reading a request has a deadline (:attr:`ServerLimits.read_timeout_s`) that
  covers the whole head, so a slowloris client trickling bytes is dropped too;
- the request head is capped at :attr:`ServerLimits.max_request_bytes` and
  bodies are never read;
- concurrent connections are capped; extra ones are closed at once;
- no error on one connection reaches the bot: they are logged and the socket
  closed. Cancelling the task that runs :func:`serve_ops` stops it promptly.

Usage::

    port = await nursery.start(serve_ops, config.ops.host, config.ops.port, metrics, health)
"""

from __future__ import annotations

import json
from http import HTTPStatus

import attrs
import h11
import structlog
import trio

from surfaces.metrics import Metrics
from surfaces.ops.health import HealthState

__all__ = ["ServerLimits", "handle_connection", "serve_ops"]

log = structlog.get_logger(__name__)

_RECEIVE_CHUNK = 4096
_JSON = "application/json; charset=utf-8"


@attrs.frozen
class ServerLimits:
    """Bounds on what one client can cost the ops server."""

    read_timeout_s: float = 10.0  # to receive the whole request head
    write_timeout_s: float = 10.0  # to send the whole response
    max_request_bytes: int = 16_384  # request line + headers
    max_connections: int = 32  # served at once; more are closed unanswered
    linger_s: float = 2.0  # after responding, wait this long for the client to close
    max_drain_bytes: int = 1_048_576  # and discard at most this much unread input


@attrs.frozen
class _Response:
    status: int
    body: bytes
    content_type: str = _JSON
    extra_headers: tuple[tuple[str, str], ...] = ()


async def serve_ops(
    host: str | None,
    port: int,
    metrics: Metrics,
    health: HealthState,
    *,
    limits: ServerLimits = ServerLimits(),
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ops endpoints until cancelled; start it with ``nursery.start``.

    Reports the bound TCP port through ``task_status`` (useful with ``port=0``,
    where only the first address's listener is kept so there is one port).
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    if port == 0:
        # Port 0 on a name with several addresses gives each listener its own
        # random port; keep one so the reported port is the only port.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    bound_port: int = listeners[0].socket.getsockname()[1]

    active = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal active
        if active >= limits.max_connections:
            log.warning("ops_connection_refused", reason="too many connections")
            await trio.aclose_forcefully(stream)
            return
        active += 1
        try:
            await handle_connection(stream, metrics, health, limits=limits)
        finally:
            active -= 1

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        log.info("ops_server_listening", host=host, port=bound_port)
        task_status.started(bound_port)


async def handle_connection(
    stream: trio.abc.HalfCloseableStream,
    metrics: Metrics,
    health: HealthState,
    *,
    limits: ServerLimits = ServerLimits(),
) -> None:
    """Answer one request on ``stream``, then close it. Never raises ``Exception``."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_request_bytes)
    try:
        response: _Response | None = None
        request: h11.Request | None = None
        with trio.move_on_after(limits.read_timeout_s) as read_scope:
            try:
                request = await _read_request(stream, conn, limits.max_request_bytes)
            except h11.RemoteProtocolError as exc:
                log.debug("ops_bad_request", error=str(exc))
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    response = _error(exc.error_status_hint, "bad request")
        if read_scope.cancelled_caught:
            log.debug("ops_read_timeout", timeout_s=limits.read_timeout_s)
            return
        if request is not None:
            try:
                response = await _route(request, metrics, health)
            except Exception:
                log.exception("ops_handler_failed", target=request.target.decode("latin-1"))
                response = _error(500, "internal error")
        if response is None:  # the client left before sending a request
            return
        head = request is not None and request.method == b"HEAD"
        await _send_response(stream, conn, response, limits, head=head)
        await _linger(stream, limits)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.debug("ops_connection_lost", error=repr(exc))
    except Exception:
        # The ops endpoint must never take the bot down with it.
        log.exception("ops_connection_failed")
    finally:
        await trio.aclose_forcefully(stream)


async def _read_request(
    stream: trio.abc.ReceiveStream, conn: h11.Connection, max_bytes: int
) -> h11.Request | None:
    received = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            # h11 checks its own cap only between reads, so a head a little over it
            # can complete in one read. Never read past the cap: a head that is not
            # complete within max_bytes is refused.
            if received > max_bytes:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            data = await stream.receive_some(min(_RECEIVE_CHUNK, max_bytes + 1 - received))
            received += len(data)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            return event
        # ConnectionClosed (EOF before a request); nothing else can precede a Request.
        return None


async def _route(request: h11.Request, metrics: Metrics, health: HealthState) -> _Response:
    path = request.target.split(b"?", 1)[0]
    if path not in (b"/healthz", b"/readyz", b"/metrics"):
        return _error(404, "not found")
    if request.method != b"GET":
        return _error(405, "method not allowed", extra_headers=(("Allow", "GET"),))
    if path == b"/healthz":
        report = await health.check_health()
        return _Response(report.status_code, report.to_json())
    if path == b"/readyz":
        report = health.check_ready()
        return _Response(report.status_code, report.to_json())
    accept = next((v.decode("latin-1") for k, v in request.headers if k == b"accept"), None)
    body, content_type = metrics.render_for(accept)
    return _Response(200, body, content_type)


def _error(
    status: int, message: str, *, extra_headers: tuple[tuple[str, str], ...] = ()
) -> _Response:
    body = json.dumps({"error": message}).encode() + b"\n"
    return _Response(status, body, extra_headers=extra_headers)


async def _send_response(
    stream: trio.abc.SendStream,
    conn: h11.Connection,
    response: _Response,
    limits: ServerLimits,
    *,
    head: bool = False,
) -> None:
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
        *response.extra_headers,
    ]
    reason = HTTPStatus(response.status).phrase.encode()
    data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
    if not head:  # a response to HEAD has headers only (h11 enforces it)
        data += conn.send(h11.Data(data=response.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    with trio.move_on_after(limits.write_timeout_s) as scope:
        await stream.send_all(data)
    if scope.cancelled_caught:
        log.debug("ops_write_timeout", timeout_s=limits.write_timeout_s)


async def _linger(stream: trio.abc.HalfCloseableStream, limits: ServerLimits) -> None:
    # Closing a TCP socket with unread input (a request body we ignored, a
    # pipelined request) sends RST, which can destroy the response before the
    # client reads it. So: half-close, then drain until the client closes, bounded
    # in time and bytes.
    with trio.move_on_after(limits.linger_s):
        await stream.send_eof()
        drained = 0
        while drained <= limits.max_drain_bytes:
            chunk = await stream.receive_some(_RECEIVE_CHUNK)
            if not chunk:
                return
            drained += len(chunk)
