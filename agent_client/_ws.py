"""A one-shot WebSocket client connection on wsproto, read inline by the turn.

A turn opens one connection, sends one or two messages and reads a stream of small
text messages until END. ``WsConnection`` does exactly that with wsproto's sans-IO
state machine over a ``trio.abc.Stream``, and nothing more:

* ``handshake`` — HTTP upgrade; ``HandshakeRejected`` (with the HTTP status) or
  ``HandshakeFailed`` (bad response, stream ended or broke).
* ``receive_text`` — one complete text message, read *in the caller's task*: no
  background reader, no queue. Fragments are assembled; the size limit counts the
  assembled message in UTF-8 bytes (as its name says; checked as each piece arrives,
  so an oversized message is refused after at most ``max_message_size`` of it).
  Pings met on the way are answered with pongs. A binary message is a
  ``WsProtocolError`` (the protocol is JSON text); a frame wsproto cannot parse, or
  a message over the limit (``MessageTooBig``), *fails* the connection: ``aclose``
  then sends a close frame with that code (1002/1007/1009) and does not wait for
  the peer's. A close frame from the peer, or the stream ending, is ``WsClosed``.
* ``send_text`` — may be called from another task while a read is in progress
  (``Turn.confirm``): sends are serialised by a lock, reads never take it. A send
  interrupted half-way (cancelled, broken stream) may have left a partial frame on
  the wire: the connection is then *broken* — no further frames, ``aclose`` only
  closes the stream.
* ``aclose`` — polite close (close frame; wait for the peer's, answering a close
  the peer started), then the byte stream is closed unconditionally. The caller
  bounds it (``TurnLimits.close_s``) and shields it; when the bound expires the
  stream is still closed (trio closes a socket before its last checkpoint).

Cancelling ``receive_text`` is safe at any point: ``receive_some`` either returned
data (fed to wsproto before the next checkpoint) or did not, and a partly assembled
message stays in the connection. Everything here raises ``WsError`` subclasses;
``_client`` maps them onto the failure taxonomy.
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import ProtocolError

#: Bytes asked of the stream per read (trio-websocket used 4 KiB).
RECEIVE_SIZE = 65_536
#: Messages already received are returned without a scheduling round trip, but not
#: more than this many in a row (an agent flooding small frames cannot starve the
#: other tasks for a whole 64 KiB read).
_YIELD_EVERY = 16

CLOSE_NORMAL = 1000
CLOSE_ABNORMAL = 1006  # no close frame: the stream ended or broke (never sent)
CLOSE_TOO_BIG = 1009

_OPEN = ConnectionState.OPEN
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


class WsError(Exception):
    """Base of the errors of this module."""


class HandshakeRejected(WsError):
    """The server answered the upgrade request with an HTTP status other than 101."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"handshake rejected: HTTP {status_code}")
        self.status_code = status_code


class HandshakeFailed(WsError):
    """No usable upgrade response: the stream ended or broke, or the response was bad."""


class WsClosed(WsError):
    """The peer closed the WebSocket (``code``/``reason`` of its close frame), or the
    stream ended or broke without one (``code`` 1006)."""

    def __init__(self, code: int, reason: str | None = None, *, detail: str | None = None) -> None:
        self.code = code
        self.reason = reason or None
        self.detail = detail
        text = f"code {code}"
        if self.reason:
            text += f" {self.reason}"
        if detail:
            text += f": {detail}"
        super().__init__(text)


class WsTimeout(WsError):
    """``receive_text``'s deadline passed; nothing was lost, the connection is usable."""


class WsProtocolError(WsError):
    """The peer broke the WebSocket protocol (or sent a binary message)."""


class MessageTooBig(WsProtocolError):
    """A message grew past ``max_message_size``; the connection is failed with 1009."""


class WsConnection:
    """The client end of one WebSocket connection over ``stream`` (owned: ``aclose``
    closes it). See the module docstring."""

    def __init__(self, stream: trio.abc.Stream, *, max_message_size: int) -> None:
        self._stream = stream
        self._max = max_message_size
        self._conn: Connection | None = None  # set by the handshake
        self._send_lock = trio.Lock()  # taken through ``_lock_sends``
        self._parts: list[str] = []  # fragments of the message being assembled
        self._size = 0
        self._peer_close: CloseConnection | None = None
        #: set when we fail the connection: (close code, reason) for ``aclose``
        self._failure: tuple[int, str] | None = None
        #: a terminal receive error, raised again by later reads
        self._ended: WsError | None = None
        self._broken = False  # a send was interrupted, or the stream ended: no more frames
        self._stream_closed = False
        self._unyielded = 0  # messages returned in a row without a scheduling round trip

    # --- opening ----------------------------------------------------------------------

    async def handshake(self, host: str, resource: str) -> None:
        """Send the upgrade request and read the response.

        Raises:
            HandshakeRejected: any status but 101 (the body is not read).
            HandshakeFailed: the stream ended or broke, or the response is not a
                valid upgrade.
        """
        ws = WSConnection(ConnectionType.CLIENT)
        try:
            await self._send_frames(ws.send(Request(host=host, target=resource)))
            while True:
                data = await self._stream.receive_some(RECEIVE_SIZE)
                if not data:
                    raise HandshakeFailed("closed during handshake")
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        self._conn = ws.connection  # holds any frames that came along
                        return
                    if isinstance(event, RejectConnection):
                        raise HandshakeRejected(event.status_code)
        except ProtocolError as exc:
            raise HandshakeFailed(f"handshake failed: {exc}") from None
        except WsClosed as exc:  # sending the request failed
            raise HandshakeFailed(f"handshake failed: {exc}") from None
        except _STREAM_ERRORS as exc:
            raise HandshakeFailed(f"handshake failed: {exc!r}") from None

    # --- receiving --------------------------------------------------------------------

    async def receive_text(self, deadline: float = math.inf) -> str:
        """The next complete text message (pings met on the way are answered).

        ``deadline`` (``trio.current_time()`` scale) bounds the wait; a cancel scope is
        opened only if the stream has to be read: a message already received (frames
        often arrive several per read) costs no scope and no scheduling round trip
        (a cancellation pending on the caller is still raised first, and every
        ``_YIELD_EVERY``-th such message yields to other tasks, without being
        cancellable, so a message taken from the connection is never lost).

        Raises:
            WsTimeout: ``deadline`` passed (the connection is still usable).
            WsClosed: the peer closed, or the stream ended or broke.
            MessageTooBig: the message is longer than ``max_message_size``.
            WsProtocolError: a binary message, or a frame wsproto cannot parse.
        """
        if self._ended is not None:
            raise self._ended
        conn = self._conn
        assert conn is not None, "handshake first"
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            for event in conn.events():
                if type(event) is TextMessage:
                    data = event.data
                    if not event.message_finished or self._parts:
                        self._size += _utf8_len(data)
                        if self._size > self._max:
                            self._too_big()
                        self._parts.append(data)
                        if not event.message_finished:
                            continue
                        data = "".join(self._parts)
                        self._parts = []
                        self._size = 0
                    elif len(data) > self._max // 4 and _utf8_len(data) > self._max:
                        self._too_big()
                    if not waited:
                        self._unyielded += 1
                        if self._unyielded >= _YIELD_EVERY:
                            self._unyielded = 0
                            await trio.lowlevel.cancel_shielded_checkpoint()
                    return data
                if type(event) is Ping:
                    await self._bounded(self._send_event(event.response()), deadline)
                elif type(event) is CloseConnection:
                    self._closed_by(conn, event)
                elif type(event) is BytesMessage:
                    raise WsProtocolError("binary frame (the protocol uses JSON text frames)")
                # Pong: we never ping; ignored
            try:
                if deadline == math.inf:
                    data = await self._stream.receive_some(RECEIVE_SIZE)
                else:
                    data = None
                    with trio.move_on_at(deadline):
                        data = await self._stream.receive_some(RECEIVE_SIZE)
                    if data is None:
                        raise WsTimeout("no message in time")
            except _STREAM_ERRORS as exc:
                self._broken = True  # nothing more to say on this stream
                self._ended = WsClosed(CLOSE_ABNORMAL, detail=f"connection lost: {exc!r}")
                raise self._ended from None
            if not data:
                self._broken = True
                self._ended = WsClosed(CLOSE_ABNORMAL, detail="connection lost (no close frame)")
                raise self._ended
            waited = True
            self._unyielded = 0
            conn.receive_data(data)

    @staticmethod
    async def _bounded(send: Coroutine[Any, Any, None], deadline: float) -> None:
        with trio.move_on_at(deadline) as scope:
            await send
        if scope.cancelled_caught:
            raise WsTimeout("could not answer a ping in time")

    def _too_big(self) -> None:
        reason = f"message larger than {self._max}"
        self._parts = []
        self._size = 0
        self._failure = (CLOSE_TOO_BIG, reason)
        self._ended = MessageTooBig(reason)
        raise self._ended

    def _closed_by(self, conn: Connection, event: CloseConnection) -> None:
        if conn.state is _OPEN:
            # wsproto reports a frame it cannot parse as a close event with the code
            # to fail the connection with (1002, 1007), leaving the state open.
            self._failure = (event.code, event.reason or "")
            self._ended = WsProtocolError(f"invalid frame: {event.reason} (code {event.code})")
        else:
            self._peer_close = event
            self._ended = WsClosed(event.code, event.reason)
        raise self._ended

    # --- sending ----------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Send one text message; safe to call while another task reads.

        Raises:
            WsClosed: the connection is closing, closed or broken.
        """
        await self._send_event(TextMessage(data=text))

    async def _lock_sends(self) -> None:
        """Take the send lock. When it is free this costs no scheduling round
        (``trio.Lock.acquire`` adds a checkpoint to every send; ``send_all`` has its
        own); when another task is sending, wait for it to finish its frame."""
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()

    async def _send_event(self, event: Event) -> None:
        await self._lock_sends()
        try:
            conn = self._conn
            if conn is None or conn.state is not _OPEN or self._broken or self._stream_closed:
                raise self._not_sendable()
            await self._send_frames(conn.send(event))
        finally:
            self._send_lock.release()

    def _not_sendable(self) -> WsClosed:
        peer = self._peer_close
        if peer is not None:
            return WsClosed(peer.code, peer.reason)
        return WsClosed(CLOSE_ABNORMAL, detail="connection closing or closed")

    async def _send_frames(self, data: bytes) -> None:
        """Write whole frames (the send lock is held, or there is no other sender)."""
        try:
            await self._stream.send_all(data)
        except BaseException as exc:
            self._broken = True  # part of a frame may be on the wire
            if isinstance(exc, _STREAM_ERRORS):
                raise WsClosed(CLOSE_ABNORMAL, detail=f"connection lost: {exc!r}") from None
            raise

    # --- closing ----------------------------------------------------------------------

    async def aclose(self, code: int = CLOSE_NORMAL, reason: str | None = None) -> None:
        """Polite close, then close the stream whatever happened. Idempotent.

        Open: send a close frame (the failure's code if we failed the connection,
        else ``code``) and, unless failing, read until the peer's close frame or
        the end of the stream. Closed by the peer: answer its close frame. Before
        the handshake completed, or broken: just close the stream. Stream errors are
        swallowed; the caller bounds the time (cancellation still closes the stream).
        """
        if self._stream_closed:
            return
        try:
            if self._conn is not None and not self._broken:
                await self._close_handshake(self._conn, code, reason)
        except (WsError, *_STREAM_ERRORS):
            pass
        finally:
            self._stream_closed = True
            await self._stream.aclose()

    async def _close_handshake(self, conn: Connection, code: int, reason: str | None) -> None:
        failure = self._failure
        if failure is not None:
            code, reason = failure
        await self._lock_sends()  # a concurrent send_text finishes its frame first
        try:
            if self._broken:
                return
            state = conn.state
            if state is _REMOTE_CLOSING:
                peer = self._peer_close
                answer = peer.response() if peer is not None else CloseConnection(code=code)
                await self._send_frames(conn.send(answer))
                return  # the close handshake is complete
            if state is not _OPEN:
                return
            await self._send_frames(conn.send(CloseConnection(code=code, reason=reason)))
        finally:
            self._send_lock.release()
        if failure is not None:
            return  # failing the connection (RFC 6455 7.1.7): do not wait for the peer
        while True:  # the peer's close frame; anything before it is dropped
            for event in conn.events():
                if type(event) is CloseConnection:
                    return
            data = await self._stream.receive_some(RECEIVE_SIZE)
            if not data:
                return
            conn.receive_data(data)


def _utf8_len(text: str) -> int:
    """The UTF-8 size of ``text`` without encoding it when it is ASCII (the common case)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
