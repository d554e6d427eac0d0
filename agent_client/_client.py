"""Client side of one agent turn: connect, STATUS, USER_MESSAGE, stream events.

Shape (see docs/internals.md):

    client = AgentClient(TurnLimits())
    async with client.turn(base_url, chat_id, text, attachments) as turn:
        async for event in turn:          # TextChunk | SendFile | ToolProgress
            ...                           # | ConfirmRequest | TurnEnd (last)

Every failure is an ``AgentFailure``; no exception group ever leaves this module.

Design notes
------------
* Each turn owns one nursery (opened by the ``async with``). trio-websocket's
  lower tier (``wrap_client_stream``) runs its reader task there, through
  ``_AttemptNursery``, which puts each background task of a connection *attempt* in
  its own cancel scope and records (instead of raising) whatever the reader dies
  of. That is how a handshake rejection, which trio-websocket raises *in its reader
  task*, becomes ``AGENT_UNAVAILABLE`` instead of an exception group, and how a
  retried turn can throw one attempt's tasks away before starting the next.
* The byte stream comes from a ``connector`` (TCP/TLS by default; tests pass one
  returning one end of ``trio.testing.memory_stream_pair``). The default connects
  to an IP literal directly; a host name's addresses are cached for 30 s with the
  one that connected last tried first, and a failed connect to a cached address
  re-resolves within the same attempt (``_addrs``). We close that stream
  ourselves when an attempt ends unless trio-websocket already did: after a
  "message too big" close, it marks the socket closed but leaves the TCP stream open.
* Deadlines are computed per wait with ``trio.move_on_at`` so the phase that fired
  is known: ``connect`` (stream + handshake, per attempt), ``status`` (first frame,
  per attempt), ``first_text`` (USER_MESSAGE sent → the agent's first output
  event), ``idle`` (gap between frames once output started), ``total`` (whole turn,
  retries and backoff included). While a ConfirmRequest is unanswered only
  ``total`` applies: the agent is waiting for the human.
* Retries: an attempt is retried only while nothing has reached the caller (no
  event yielded; the agent has not produced text, files, tool progress or
  questions), and only for transient failures:
  ``AGENT_UNAVAILABLE`` (connect refused, DNS, TLS, handshake rejected with 5xx,
  408 or 429 — not other 4xx), ``AGENT_TIMEOUT`` in phase ``connect`` or ``status``,
  ``AGENT_DISCONNECTED`` (socket closed or ``GRACEFUL_DISCONNECT``).
  Never retried: ``AGENT_ERROR``, ``AGENT_PROTOCOL_ERROR``, ``first_text`` /
  ``idle`` / ``total`` timeouts (the agent accepted the message and may be
  working; replaying could duplicate its side effects). Backoff is
  ``retry_base_s * 2**n`` capped at ``retry_max_s``, and never past the total
  deadline.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs
import structlog
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)

from ._addrs import _connect_one, connect_host
from ._errors import (
    AGENT_DISCONNECTED,
    AGENT_ERROR,
    AGENT_PROTOCOL_ERROR,
    AGENT_TIMEOUT,
    AGENT_UNAVAILABLE,
    AgentFailure,
)
from ._frames import (
    AgentErrorFrame,
    ConfirmRequest,
    Frame,
    FrameError,
    GracefulDisconnect,
    SendFile,
    Status,
    TextChunk,
    ToolProgress,
    TurnEnd,
    TurnEvent,
    UnknownFrame,
    encode_user_confirm,
    encode_user_message,
    parse_frame,
)
from ._urls import WsTarget, endpoint_url

log = structlog.get_logger(__name__)

Connector = Callable[[WsTarget], Awaitable[trio.abc.Stream]]

_CLOSE_TOO_BIG = 1009


@attrs.frozen
class TurnLimits:
    """Configured limits of a turn (seconds, counts, bytes); read at the call site.

    ``max_frame_bytes`` is trio-websocket's ``max_message_size`` (it counts ``len()``
    of the decoded message, i.e. characters for text frames). ``message_queue_size``
    bounds how many received frames may wait unread (memory ≤ queue × max frame).
    ``close_s`` bounds the polite WebSocket close when a turn ends or is cancelled;
    the TCP stream is closed regardless.
    """

    connect_s: float = 10.0
    status_s: float = 15.0
    first_text_s: float = 120.0
    idle_s: float = 120.0
    total_s: float = 900.0
    retries: int = 2
    retry_base_s: float = 0.5
    retry_max_s: float = 8.0
    max_frame_bytes: int = 1_048_576
    message_queue_size: int = 4
    close_s: float = 2.0


@attrs.frozen
class ProbeResult:
    """Timings of ``AgentClient.probe`` (seconds from the start of the probe)."""

    url: str
    connect_s: float
    status_s: float


async def connect_tcp(target: WsTarget) -> trio.abc.Stream:
    """Default connector: TCP, or TLS over it for ``wss://``.

    An agent at an IP literal (the usual sidecar / loopback setup) is connected
    directly: one address, so trio's happy-eyeballs machinery (resolver call, a
    nursery and a task per attempt) would only add scheduling steps. A host name goes
    through the resolved-address cache (``_addrs``: answers kept ``ADDRESS_TTL_S`` =
    30 s, the address that connected last tried first, a failed connect re-resolves
    at once).
    """
    family = _ip_literal_family(target.host)
    if family is None:
        sock = await connect_host(target.host, target.port)
    else:
        sock = await _connect_one((family, trio.socket.SOCK_STREAM, 0, (target.host, target.port)))
    stream = trio.SocketStream(sock)
    if not target.secure:
        return stream
    # what trio.open_ssl_over_tcp_stream does after its own open_tcp_stream
    return trio.SSLStream(
        stream,
        ssl.create_default_context(),
        server_hostname=target.host,
        https_compatible=True,
    )


@functools.lru_cache(maxsize=256)
def _ip_literal_family(host: str) -> int | None:
    """``AF_INET``/``AF_INET6`` if ``host`` is an IP address literal, else None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6:
        return trio.socket.AF_INET6
    return trio.socket.AF_INET


def _collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The single meaningful exception inside a nursery's group.

    Our background tasks never raise (see ``_AttemptNursery``), so a group holds the
    body's exception (AgentFailure, the caller's own error, KeyboardInterrupt) and
    maybe ``Cancelled``s. Cancellations alone collapse to one ``Cancelled``, which the
    cancel scope that owns it catches like the group it replaces.
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                walk(sub)
        else:
            leaves.append(exc)

    walk(group)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    if not real and leaves:
        return leaves[0]
    return group  # more than one real failure: a bug, do not hide it


@asynccontextmanager
async def _owned_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery whose exception groups are unwrapped before they reach callers."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        exc = _collapse(group)
        if exc is group:
            raise
        exc.__suppress_context__ = True
        raise exc


@attrs.define
class _Attempt:
    """One connection of a turn (a retried turn has several, one after another)."""

    number: int
    started_at: float
    stream: trio.abc.Stream | None = None
    ws: WebSocketConnection | None = None
    scopes: list[trio.CancelScope] = attrs.Factory(list)
    handshake_scope: trio.CancelScope | None = None
    handshake_aborted: bool = False
    task_error: BaseException | None = None
    connected_at: float | None = None
    status_at: float | None = None

    def task_done(self, exc: BaseException | None) -> None:
        if exc is not None and self.task_error is None:
            self.task_error = exc
        # A reader that ends before the handshake completed (rejected, broken
        # stream) would leave wrap_client_stream waiting forever: wake it.
        if self.ws is None and self.handshake_scope is not None:
            self.handshake_aborted = True
            self.handshake_scope.cancel()


class _AttemptNursery:
    """Stands in for ``trio.Nursery`` in ``wrap_client_stream``.

    trio-websocket only calls ``start_soon``. Each task runs in a cancel scope the
    attempt owns, and an exception is recorded on the attempt rather than raised
    into the turn's nursery (where it would cancel the caller's body and surface as
    an exception group).
    """

    def __init__(self, nursery: trio.Nursery, attempt: _Attempt) -> None:
        self._nursery = nursery
        self._attempt = attempt

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: Any = None) -> None:
        attempt = self._attempt
        scope = trio.CancelScope()
        attempt.scopes.append(scope)

        async def guarded() -> None:
            error: BaseException | None = None
            with scope:
                try:
                    await fn(*args)
                except Exception as exc:
                    error = exc
            attempt.task_done(error)

        self._nursery.start_soon(guarded, name=name or getattr(fn, "__qualname__", None))


def _socket_closed(stream: trio.abc.Stream) -> bool:
    """True if ``stream`` is a (TLS over a) ``trio.SocketStream`` whose socket is
    already closed — as after trio-websocket's own close — so closing it again
    would only cost a checkpoint. Unknown stream types count as open."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return isinstance(stream, trio.SocketStream) and stream.socket.fileno() == -1


def _kind_retryable(failure: AgentFailure) -> bool:
    if failure.code in (AGENT_UNAVAILABLE, AGENT_DISCONNECTED):
        return failure.retryable
    if failure.code == AGENT_TIMEOUT:
        return failure.phase in ("connect", "status")
    return False


class Turn:
    """One user turn streamed from the agent; get it from ``AgentClient.turn``.

    An async iterator (a class, not an async generator, so it is safe to drive across
    cancel scopes) of ``TextChunk``, ``SendFile``, ``ToolProgress``, ``ConfirmRequest``
    and finally ``TurnEnd``; it stops after the first ``TurnEnd`` (a duplicate END is
    never read). Raises ``AgentFailure``.
    """

    def __init__(
        self,
        *,
        nursery: trio.Nursery,
        target: WsTarget,
        chat_id: str,
        text: str | None,
        attachments: Sequence[str],
        limits: TurnLimits,
        connector: Connector,
    ) -> None:
        self._nursery = nursery
        self._target = target
        self._chat_id = chat_id
        self._text = text
        self._attachments = tuple(attachments)
        self._limits = limits
        self._connector = connector
        self._started_at = trio.current_time()
        self._total_deadline = self._started_at + limits.total_s
        self._attempt: _Attempt | None = None
        self._attempts = 0
        self._first_text_deadline = math.inf
        self._pending_confirms: set[str] = set()
        self._done = False
        self._failed: AgentFailure | None = None
        #: True once the caller was given any event (no replay after that).
        self.output_seen = False
        #: True once a ``TextChunk`` arrived.
        self.text_received = False
        #: ``TurnEnd.tokens_used`` once the turn ended.
        self.tokens_used: int | None = None

    @property
    def url(self) -> str:
        return self._target.url

    @property
    def attempts(self) -> int:
        """Connections used so far (1 + retries)."""
        return self._attempts

    # --- public -------------------------------------------------------------------

    def __aiter__(self) -> Turn:
        return self

    async def __anext__(self) -> TurnEvent:
        if self._done:
            raise StopAsyncIteration
        if self._failed is not None:
            raise self._failed
        try:
            event = await self._with_retries(self._read_event)
        except AgentFailure as failure:
            self._failed = failure
            raise
        assert event is not None
        if isinstance(event, TurnEnd):
            self._done = True
            self.tokens_used = event.tokens_used
        return event

    async def confirm(self, request_id: str, approved: bool) -> None:
        """Answer the agent's ``ConfirmRequest`` with ``USER_CONFIRM``.

        May be called from another task while this turn is being iterated.

        Raises:
            ValueError: no unanswered ConfirmRequest with this id in this turn.
            AgentFailure: ``AGENT_DISCONNECTED`` if the socket is gone.
        """
        if request_id not in self._pending_confirms:
            raise ValueError(f"no pending confirmation {request_id!r} in this turn")
        attempt = self._attempt
        if attempt is None or attempt.ws is None or self._done:
            raise AgentFailure(AGENT_DISCONNECTED, "turn is no longer connected")
        try:
            await attempt.ws.send_message(encode_user_confirm(request_id, approved))
        except ConnectionClosed as exc:
            raise AgentFailure(AGENT_DISCONNECTED, f"closed before USER_CONFIRM: {exc}") from None
        self._pending_confirms.discard(request_id)

    # --- attempts and retries -----------------------------------------------------

    async def _start(self) -> None:
        await self._with_retries(None)

    async def _with_retries(self, step: Callable[[], Awaitable[Any]] | None) -> Any:
        """Run ``step`` on a connected attempt, (re)connecting as the rules allow."""
        while True:
            try:
                if self._attempt is None:
                    await self._open_attempt()
                return None if step is None else await step()
            except AgentFailure as failure:
                await self._close_attempt()
                retry = _kind_retryable(failure) and not self.output_seen
                failure.retryable = retry
                failure.attempts = self._attempts
                if not retry or self._attempts > self._limits.retries:
                    raise
                delay = min(
                    self._limits.retry_base_s * 2 ** (self._attempts - 1),
                    self._limits.retry_max_s,
                )
                if trio.current_time() + delay >= self._total_deadline:
                    raise
                log.info(
                    "agent_turn_retry",
                    url=self._target.url,
                    attempt=self._attempts,
                    code=failure.code,
                    phase=failure.phase,
                    delay_s=delay,
                )
                await trio.sleep(delay)

    def _deadline(self, phase: str, deadline: float) -> tuple[float, str]:
        if deadline < self._total_deadline:
            return deadline, phase
        return self._total_deadline, "total"

    async def _open_attempt(self, *, send_message: bool = True) -> None:
        """Connect, handshake, wait for STATUS, send USER_MESSAGE."""
        self._attempts += 1
        now = trio.current_time()
        attempt = _Attempt(number=self._attempts, started_at=now)
        self._attempt = attempt
        deadline, phase = self._deadline("connect", now + self._limits.connect_s)
        # One scope for both ends of the connect phase: its deadline, and the reader
        # task's early death (``task_done`` cancels it and sets ``handshake_aborted``).
        attempt.handshake_scope = scope = trio.CancelScope(deadline=deadline)
        with scope:
            try:
                attempt.stream = await self._connector(self._target)
            except OSError as exc:
                raise AgentFailure(
                    AGENT_UNAVAILABLE, f"connect failed: {exc}", retryable=True
                ) from exc
            attempt.ws = await wrap_client_stream(
                _AttemptNursery(self._nursery, attempt),  # type: ignore[arg-type]
                attempt.stream,  # type: ignore[arg-type]
                self._target.host_header,
                self._target.resource,
                message_queue_size=self._limits.message_queue_size,
                max_message_size=self._limits.max_frame_bytes,
            )
        if scope.cancelled_caught and not attempt.handshake_aborted:
            raise AgentFailure(
                AGENT_TIMEOUT, f"no handshake within {self._limits.connect_s}s", phase=phase
            )
        if attempt.ws is None:
            raise self._handshake_failure(attempt.task_error)
        attempt.connected_at = trio.current_time()

        frame = await self._receive("status", trio.current_time() + self._limits.status_s)
        if isinstance(frame, AgentErrorFrame):
            raise self._agent_error(frame)
        if isinstance(frame, GracefulDisconnect):
            raise AgentFailure(AGENT_DISCONNECTED, "GRACEFUL_DISCONNECT", retryable=True)
        if not isinstance(frame, Status):
            raise AgentFailure(
                AGENT_PROTOCOL_ERROR, f"first frame must be STATUS, got {type(frame).__name__}"
            )
        attempt.status_at = trio.current_time()
        if not send_message:
            return
        assert self._text is not None
        self._first_text_deadline = trio.current_time() + self._limits.first_text_s
        deadline, phase = self._deadline("first_text", self._first_text_deadline)
        with trio.move_on_at(deadline) as timeout:
            try:
                await attempt.ws.send_message(encode_user_message(self._text, self._attachments))
            except ConnectionClosed as exc:
                raise self._closed_failure(exc) from None
        if timeout.cancelled_caught:
            raise AgentFailure(AGENT_TIMEOUT, "could not send USER_MESSAGE", phase=phase)

    def _handshake_failure(self, error: BaseException | None) -> AgentFailure:
        if isinstance(error, ConnectionRejected):
            status = error.status_code
            transient = status >= 500 or status in (408, 429)
            return AgentFailure(
                AGENT_UNAVAILABLE, f"handshake rejected: HTTP {status}", retryable=transient
            )
        detail = f"handshake failed: {error!r}" if error else "closed during handshake"
        return AgentFailure(AGENT_UNAVAILABLE, detail, retryable=True)

    @staticmethod
    def _agent_error(frame: AgentErrorFrame) -> AgentFailure:
        return AgentFailure(AGENT_ERROR, frame.details, agent_code=frame.code)

    def _closed_failure(self, exc: ConnectionClosed) -> AgentFailure:
        reason = exc.reason
        if reason is not None and reason.code == _CLOSE_TOO_BIG:
            return AgentFailure(
                AGENT_PROTOCOL_ERROR,
                f"frame larger than {self._limits.max_frame_bytes} bytes",
            )
        error = self._attempt.task_error if self._attempt else None
        if error is not None:
            detail = f"connection failed: {error!r}"
        elif reason is not None:
            detail = f"closed before END (code {reason.code} {reason.reason or ''})".strip()
        else:
            detail = "closed before END"
        return AgentFailure(AGENT_DISCONNECTED, detail, retryable=True)

    async def _receive(self, phase: str, phase_deadline: float) -> Frame:
        attempt = self._attempt
        assert attempt is not None
        assert attempt.ws is not None
        deadline, phase = self._deadline(phase, phase_deadline)
        with trio.move_on_at(deadline) as timeout:
            try:
                raw = await attempt.ws.get_message()
            except ConnectionClosed as exc:
                raise self._closed_failure(exc) from None
        if timeout.cancelled_caught:
            raise AgentFailure(AGENT_TIMEOUT, f"no frame in time ({phase})", phase=phase)
        try:
            return parse_frame(raw)
        except FrameError as exc:
            raise AgentFailure(AGENT_PROTOCOL_ERROR, str(exc)) from None

    async def _read_event(self) -> TurnEvent:
        while True:
            if self._pending_confirms:
                phase, phase_deadline = "total", math.inf
            elif not self.output_seen:
                phase, phase_deadline = "first_text", self._first_text_deadline
            else:
                phase, phase_deadline = "idle", trio.current_time() + self._limits.idle_s
            frame = await self._receive(phase, phase_deadline)
            if isinstance(frame, AgentErrorFrame):
                raise self._agent_error(frame)
            if isinstance(frame, GracefulDisconnect):
                raise AgentFailure(AGENT_DISCONNECTED, "GRACEFUL_DISCONNECT", retryable=True)
            if isinstance(frame, Status | UnknownFrame):
                log.debug("agent_frame_ignored", frame=repr(frame), url=self._target.url)
                continue
            if isinstance(frame, TextChunk):
                self.text_received = True
            elif isinstance(frame, ConfirmRequest):
                self._pending_confirms.add(frame.id)
            else:
                assert isinstance(frame, SendFile | ToolProgress | TurnEnd)
            self.output_seen = True
            return frame

    async def _close_attempt(self) -> None:
        """Close the current attempt's socket and stop its tasks; never raises.

        Polite close (close frame, wait for the peer's) is shielded and bounded by
        ``close_s`` so it also happens when the turn is being cancelled; the byte
        stream is then closed unconditionally (trio-websocket may leave it open,
        e.g. after a "message too big" close).
        """
        attempt = self._attempt
        if attempt is None:
            return
        self._attempt = None
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self._limits.close_s
            if attempt.ws is not None:
                try:
                    await attempt.ws.aclose()
                except Exception as exc:  # a dying socket must not mask the real outcome
                    log.debug("agent_close_failed", error=repr(exc), url=self._target.url)
            if attempt.stream is not None and not _socket_closed(attempt.stream):
                try:
                    await attempt.stream.aclose()
                except Exception as exc:
                    log.debug("agent_stream_close_failed", error=repr(exc))
        for task_scope in attempt.scopes:
            task_scope.cancel()

    async def _aclose(self) -> None:
        await self._close_attempt()


@attrs.define
class AgentClient:
    """Runs turns against agents; stateless apart from its limits.

    Args:
        limits: deadlines, retries and frame size (``TurnLimits``).
        connector: ``async (WsTarget) -> trio.abc.Stream``; the test seam. Default:
            TCP, or TLS for ``wss://``.
    """

    limits: TurnLimits = attrs.field(factory=TurnLimits)
    connector: Connector | None = attrs.field(default=None, kw_only=True)

    def turn(
        self,
        base_url: str,
        chat_id: str,
        text: str,
        attachments: Sequence[str] = (),
    ) -> AbstractAsyncContextManager[Turn]:
        """``async with client.turn(...) as turn: async for event in turn: ...``.

        Entering connects (with retries), waits for STATUS and sends USER_MESSAGE;
        leaving closes the socket and stops every task of the turn, also when the
        block is cancelled. Raises ``AgentFailure`` (an invalid base url is
        ``AGENT_UNAVAILABLE``, not retryable).
        """
        return self._turn(base_url, chat_id, text, tuple(attachments))

    @asynccontextmanager
    async def _turn(
        self, base_url: str, chat_id: str, text: str, attachments: tuple[str, ...]
    ) -> AsyncIterator[Turn]:
        target = _target(base_url, chat_id)
        async with _owned_nursery() as nursery:
            turn = Turn(
                nursery=nursery,
                target=target,
                chat_id=chat_id,
                text=text,
                attachments=attachments,
                limits=self.limits,
                connector=self.connector or connect_tcp,
            )
            try:
                await turn._start()
                yield turn
            finally:
                await turn._aclose()
                nursery.cancel_scope.cancel()

    async def probe(self, base_url: str, chat_id: str) -> ProbeResult:
        """Connect, wait for STATUS, close: a health check that sends no message.

        One attempt, no retries; ``connect_s``/``status_s``/``total_s`` apply.
        Raises ``AgentFailure``.
        """
        target = _target(base_url, chat_id)
        limits = attrs.evolve(self.limits, retries=0)
        async with _owned_nursery() as nursery:
            turn = Turn(
                nursery=nursery,
                target=target,
                chat_id=chat_id,
                text=None,
                attachments=(),
                limits=limits,
                connector=self.connector or connect_tcp,
            )
            try:
                try:
                    await turn._open_attempt(send_message=False)
                except AgentFailure as failure:
                    failure.attempts = 1
                    raise
                attempt = turn._attempt
                assert attempt is not None
                assert attempt.connected_at is not None
                assert attempt.status_at is not None
                return ProbeResult(
                    url=target.url,
                    connect_s=attempt.connected_at - attempt.started_at,
                    status_s=attempt.status_at - attempt.started_at,
                )
            finally:
                await turn._aclose()
                nursery.cancel_scope.cancel()


def _target(base_url: str, chat_id: str) -> WsTarget:
    try:
        return _cached_target(base_url, chat_id)
    except ValueError as exc:
        raise AgentFailure(AGENT_UNAVAILABLE, f"invalid agent url: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _cached_target(base_url: str, chat_id: str) -> WsTarget:
    # A chat talks to the same agent turn after turn: parse its url once. Bounded;
    # WsTarget is immutable, and invalid urls raise (exceptions are not cached).
    return WsTarget.from_url(endpoint_url(base_url, chat_id))
