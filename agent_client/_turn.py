"""Client side of one agent turn: connect, STATUS, USER_MESSAGE, stream events.

Shape (see docs/internals.md):

    client = AgentClient(TurnLimits())
    async with client.turn(base_url, chat_id, text, attachments) as turn:
        async for event in turn:          # TextChunk | SendFile | ToolProgress
            ...                           # | ConfirmRequest | TurnEnd (last)

Every failure is an ``AgentFailure``; no exception group ever leaves this module.

Design notes
------------
* No background task and no nursery: a turn reads its one WebSocket connection
  inline (``_ws.WsConnection``, on wsproto's sans-IO protocol engine) —
  ``__anext__`` itself pulls bytes from the stream until the next complete message,
  answering pings on the way; the ``async with`` only guarantees the close.
  trio-websocket, used before, runs a reader task per connection and hands each
  message over a memory channel: for a connection that lives one turn that was a
  nursery, a task, a channel and a task switch per frame more, plus workarounds
  (``_AttemptNursery``, a handshake scope) to get handshake errors out of the reader
  task. Client CPU measured against the reference agent on loopback (2 CPUs, shared
  and busy; medians of 3 interleaved runs): an instant turn 1.80 ms with
  trio-websocket, 1.21 ms inline, 1.18 ms for a bare wsproto loop without any of the
  turn logic; a 100-chunk reply 12.2 ms and 7.8 ms (bare loop 7.1 ms). Sends take a
  lock (``Turn.confirm`` may run in another task while the turn is being iterated);
  reads never do.
* The byte stream comes from a ``connector`` (TCP/TLS by default; tests pass one
  returning one end of ``trio.testing.memory_stream_pair``). The default connects
  to an IP literal directly; a host name's addresses are cached for 30 s with the
  one that connected last tried first, and a failed connect to a cached address
  re-resolves within the same attempt (``_addrs``). The attempt owns the stream
  from the moment the connector returns it: every way out of an attempt (failure,
  retry, cancellation in any phase, the end of the block) goes through
  ``_close_attempt``, which closes it.
* Closing: polite (close frame, the peer's close frame awaited), shielded and
  bounded by ``close_s``, then the byte stream is closed unconditionally. A
  protocol failure of the WebSocket itself (oversized message: 1009, unparsable
  frame: 1002/1007) sends its close code and does not wait for the peer.
* Deadlines are per wait, so the phase that fired is known: ``connect`` (stream +
  handshake, per attempt), ``status`` (first frame, per attempt), ``first_text``
  (USER_MESSAGE sent → the agent's first output event), ``idle`` (gap between frames
  once output started), ``total`` (whole turn, retries and backoff included). While
  a ConfirmRequest is unanswered only ``total`` applies: the agent is waiting for
  the human. Opening an attempt is one cancel scope whose deadline moves with the
  phase; a read passes its deadline to ``receive_text``, which opens a scope only
  if it has to wait for the stream (a message that came in the same read as the
  previous one costs none).
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

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import structlog
import trio

from ._connect import Connector
from ._errors import (
    AGENT_DISCONNECTED,
    AGENT_ERROR,
    AGENT_PROTOCOL_ERROR,
    AGENT_TIMEOUT,
    AGENT_UNAVAILABLE,
    AgentFailure,
    collapse_group,
)
from ._frames import (
    AgentErrorFrame,
    ConfirmRequest,
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
    status_boot_id,
)
from ._limits import TurnLimits
from ._urls import WsTarget
from ._ws import (
    HandshakeFailed,
    HandshakeRejected,
    MessageTooBig,
    WsClosed,
    WsConnection,
    WsError,
    WsTimeout,
)

log = structlog.get_logger(__name__)


@attrs.define
class _Attempt:
    """One connection of a turn (a retried turn has several, one after another)."""

    started_at: float
    ws: WsConnection | None = None  # owns the byte stream once the connector returned
    connected_at: float | None = None
    status_at: float | None = None


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
    never read). Each ``__anext__`` reads the socket itself (no background task).
    Raises ``AgentFailure``.
    """

    def __init__(
        self,
        *,
        target: WsTarget,
        chat_id: str,
        text: str | None,
        attachments: Sequence[str],
        limits: TurnLimits,
        connector: Connector,
    ) -> None:
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
        #: The agent process's identity from its STATUS (``boot_id``, project
        #: extension): a change means the agent restarted (and lost its memory).
        self.boot_id: str | None = None

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

        May be called from another task while this turn is being iterated (the send
        takes the connection's send lock; the read in progress is not disturbed).

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
            await attempt.ws.send_text(encode_user_confirm(request_id, approved))
        except WsError as exc:
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

    def _deadline(self, phase: str, deadline: float) -> tuple[str, float]:
        """``(phase, deadline)``, or ``("total", total deadline)`` if that comes first."""
        if deadline < self._total_deadline:
            return phase, deadline
        return "total", self._total_deadline

    async def _open_attempt(self, *, send_message: bool = True) -> None:
        """Connect, handshake, wait for STATUS, send USER_MESSAGE.

        One cancel scope for the whole opening; its deadline moves with the phase
        (``connect`` → ``status`` → ``first_text`` for sending USER_MESSAGE), so the
        phase that was current when it fired is the one reported.
        """
        self._attempts += 1
        now = trio.current_time()
        attempt = _Attempt(started_at=now)
        self._attempt = attempt
        limits = self._limits
        phase, deadline = self._deadline("connect", now + limits.connect_s)
        detail = f"no handshake within {limits.connect_s}s"
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                try:
                    stream = await self._connector(self._target)
                except BaseExceptionGroup as group:  # a connector's nursery: never leaks
                    raise collapse_group(group) from None
            except OSError as exc:
                raise AgentFailure(
                    AGENT_UNAVAILABLE, f"connect failed: {exc}", retryable=True
                ) from exc
            attempt.ws = ws = WsConnection(stream, max_message_size=limits.max_frame_bytes)
            try:
                await ws.handshake(self._target.host_header, self._target.resource)
            except HandshakeRejected as exc:
                status = exc.status_code
                transient = status >= 500 or status in (408, 429)
                raise AgentFailure(AGENT_UNAVAILABLE, str(exc), retryable=transient) from None
            except HandshakeFailed as exc:
                raise AgentFailure(AGENT_UNAVAILABLE, str(exc), retryable=True) from None
            attempt.connected_at = now = trio.current_time()

            phase, scope.deadline = self._deadline("status", now + limits.status_s)
            detail = f"no frame in time ({phase})"
            try:
                frame = parse_frame(await ws.receive_text())
            except WsError as exc:
                raise self._ws_failure(exc) from None
            except FrameError as exc:
                raise AgentFailure(AGENT_PROTOCOL_ERROR, str(exc)) from None
            if isinstance(frame, AgentErrorFrame):
                raise self._agent_error(frame)
            if isinstance(frame, GracefulDisconnect):
                raise AgentFailure(AGENT_DISCONNECTED, "GRACEFUL_DISCONNECT", retryable=True)
            if not isinstance(frame, Status):
                raise AgentFailure(
                    AGENT_PROTOCOL_ERROR,
                    f"first frame must be STATUS, got {type(frame).__name__}",
                )
            attempt.status_at = now = trio.current_time()
            self.boot_id = status_boot_id(frame)
            if not send_message:
                return
            assert self._text is not None
            self._first_text_deadline = now + limits.first_text_s
            phase, scope.deadline = self._deadline("first_text", self._first_text_deadline)
            detail = "could not send USER_MESSAGE"
            try:
                await ws.send_text(encode_user_message(self._text, self._attachments))
            except WsError as exc:
                raise self._ws_failure(exc) from None
        if scope.cancelled_caught:
            raise AgentFailure(AGENT_TIMEOUT, detail, phase=phase)

    @staticmethod
    def _agent_error(frame: AgentErrorFrame) -> AgentFailure:
        return AgentFailure(AGENT_ERROR, frame.details, agent_code=frame.code)

    def _ws_failure(self, exc: WsError) -> AgentFailure:
        if isinstance(exc, MessageTooBig):
            return AgentFailure(
                AGENT_PROTOCOL_ERROR,
                f"frame larger than {self._limits.max_frame_bytes} bytes",
            )
        if isinstance(exc, WsClosed):
            return AgentFailure(AGENT_DISCONNECTED, f"closed before END ({exc})", retryable=True)
        return AgentFailure(AGENT_PROTOCOL_ERROR, str(exc))

    async def _read_event(self) -> TurnEvent:
        """The next event for the caller (ignored frames skipped); one read per frame,
        in this task, bounded by the phase's deadline."""
        attempt = self._attempt
        assert attempt is not None
        ws = attempt.ws
        assert ws is not None
        while True:
            if self._pending_confirms:
                phase, deadline = "total", self._total_deadline
            elif not self.output_seen:
                phase, deadline = self._deadline("first_text", self._first_text_deadline)
            else:
                phase, deadline = self._deadline("idle", trio.current_time() + self._limits.idle_s)
            try:
                frame = parse_frame(await ws.receive_text(deadline))
            except WsTimeout:
                raise AgentFailure(
                    AGENT_TIMEOUT, f"no frame in time ({phase})", phase=phase
                ) from None
            except WsError as exc:
                raise self._ws_failure(exc) from None
            except FrameError as exc:
                raise AgentFailure(AGENT_PROTOCOL_ERROR, str(exc)) from None
            if type(frame) is TextChunk:  # the common case first
                self.text_received = self.output_seen = True
                return frame
            if isinstance(frame, AgentErrorFrame):
                raise self._agent_error(frame)
            if isinstance(frame, GracefulDisconnect):
                raise AgentFailure(AGENT_DISCONNECTED, "GRACEFUL_DISCONNECT", retryable=True)
            if isinstance(frame, Status | UnknownFrame):
                log.debug("agent_frame_ignored", frame=repr(frame), url=self._target.url)
                continue
            if isinstance(frame, ConfirmRequest):
                self._pending_confirms.add(frame.id)
            else:
                assert isinstance(frame, SendFile | ToolProgress | TurnEnd)
            self.output_seen = True
            return frame

    async def _close_attempt(self) -> None:
        """Close the current attempt's connection and its byte stream; never raises
        (but for a ``KeyboardInterrupt``).

        Polite close (close frame, wait for the peer's) is shielded and bounded by
        ``close_s`` so it also happens when the turn is being cancelled; the byte
        stream is closed in any case, also when the bound expires.
        """
        attempt = self._attempt
        if attempt is None:
            return
        self._attempt = None
        ws = attempt.ws
        if ws is None:
            return
        with trio.CancelScope(shield=True, deadline=trio.current_time() + self._limits.close_s):
            try:
                await ws.aclose()
            except Exception as exc:  # a dying socket must not mask the real outcome
                log.debug("agent_close_failed", error=repr(exc), url=self._target.url)

    async def _aclose(self) -> None:
        await self._close_attempt()
