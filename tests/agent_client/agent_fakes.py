"""An in-memory scripted agent for deterministic client tests.

``fake_agent.connect`` is an ``AgentClient`` connector: each call makes a
``memory_stream_pair``, serves the server end with trio-websocket's
``wrap_server_stream`` in the test's nursery, and runs the next script on it.
Scripts are ``async (request, conn) -> None``; ``conn.accept(request)`` returns a
``Peer`` with small send/receive helpers (``send_fragments`` and ``send_wire`` reach
into trio-websocket's *server* connection to put fragmented messages and raw bytes on
the wire). Everything runs on virtual time.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    wrap_server_stream,
)
from wsproto.events import TextMessage

from agent_client import AgentClient, TurnLimits, WsTarget

BASE = "http://agent.test:7000/agent_1"


@attrs.define
class Peer:
    ws: WebSocketConnection
    conn: Conn

    async def send(self, ftype: str, **fields: Any) -> None:
        await self.ws.send_message(json.dumps({"type": ftype, **fields}))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send_message(data)

    async def send_fragment(self, part: str, *, finished: bool) -> None:
        """One frame of a text message (the first one, or a continuation)."""
        await self.ws._send(TextMessage(data=part, message_finished=finished))

    async def send_fragments(self, *parts: str) -> None:
        """One text message sent as ``len(parts)`` frames."""
        for i, part in enumerate(parts):
            await self.send_fragment(part, finished=i == len(parts) - 1)

    async def send_wire(self, data: bytes) -> None:
        """Raw bytes on the wire (e.g. a frame wsproto would refuse to build)."""
        async with self.ws._stream_lock:
            await self.ws._stream.send_all(data)

    async def recv(self) -> dict[str, Any]:
        message = json.loads(await self.ws.get_message())
        self.conn.received.append(message)
        return message

    async def start(self) -> dict[str, Any]:
        """STATUS, then the USER_MESSAGE."""
        await self.send("STATUS", state="ready")
        return await self.recv()

    async def text(self, *chunks: str) -> None:
        for chunk in chunks:
            await self.send("AGENT_EVENT_TEXT_CHUNK", text=chunk)

    async def end(self, tokens_used: int | None = 7) -> None:
        await self.send("AGENT_EVENT_END", tokens_used=tokens_used)

    async def wait_closed(self) -> None:
        """Read (and record) frames until the client closes the socket."""
        while True:
            await self.recv()


@attrs.define
class Conn:
    number: int
    target: WsTarget
    path: str | None = None
    received: list[dict[str, Any]] = attrs.Factory(list)
    close_code: int | None = None
    closed_at: float | None = None
    stream_closed_at: float | None = None  # when the *client* closed its stream
    ws: WebSocketConnection | None = None  # the server end, once accepted

    async def accept(self, request: WebSocketRequest) -> Peer:
        self.ws = await request.accept()
        return Peer(self.ws, self)

    @property
    def peer_close_code(self) -> int | None:
        """Code of the close frame the client sent (or answered with), if any."""
        if self.ws is None or self.ws.closed is None:
            return None
        return self.ws.closed.code


Script = Callable[[WebSocketRequest, Conn], Awaitable[None]]


class _WatchedStream(trio.abc.Stream):
    """Client end of the pair; records when the client closed its byte stream."""

    def __init__(self, inner: trio.abc.Stream, conn: Conn) -> None:
        self._inner = inner
        self._conn = conn

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._inner.receive_some(max_bytes)

    async def send_eof(self) -> None:  # pragma: no cover - not used by websockets
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._conn.stream_closed_at is None:
            self._conn.stream_closed_at = trio.current_time()
        await self._inner.aclose()


class FakeAgent:
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.scripts: list[Script] = []
        self.conns: list[Conn] = []
        self.refuse = False
        self.hang = False

    def script(self, *scripts: Script) -> None:
        """Attempt i runs scripts[i] (the last one repeats)."""
        self.scripts = list(scripts)

    def client(self, **limits: Any) -> AgentClient:
        return AgentClient(TurnLimits(**limits), connector=self.connect)

    async def connect(self, target: WsTarget) -> trio.abc.Stream:
        if self.hang:
            await trio.sleep_forever()
        if self.refuse:
            raise ConnectionRefusedError("refused")
        conn = Conn(number=len(self.conns) + 1, target=target)
        self.conns.append(conn)
        script = self.scripts[min(conn.number, len(self.scripts)) - 1]
        client_end, server_end = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self._serve, server_end, script, conn)
        return _WatchedStream(client_end, conn)

    async def _serve(self, stream: trio.abc.Stream, script: Script, conn: Conn) -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, stream)
            conn.path = request.path
            try:
                await script(request, conn)
            except ConnectionClosed as exc:
                conn.close_code = exc.reason.code if exc.reason else None
            finally:
                conn.closed_at = trio.current_time()
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(1):
                        await request._connection.aclose()
                    await stream.aclose()
                nursery.cancel_scope.cancel()
