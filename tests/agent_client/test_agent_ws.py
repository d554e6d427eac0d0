"""The inline WebSocket connection (``agent_client._ws``) against an agent end driven by
hand with wsproto over memory streams: exact frames on the wire, virtual time."""

from __future__ import annotations

import contextlib
import json
import math
import struct

import pytest
import trio
import trio.testing
from trio.testing import MockClock
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from agent_client import (
    AGENT_DISCONNECTED,
    AGENT_PROTOCOL_ERROR,
    AgentClient,
    AgentFailure,
    TurnEnd,
    TurnLimits,
)
from agent_client._ws import (
    HandshakeFailed,
    HandshakeRejected,
    MessageTooBig,
    WsClosed,
    WsConnection,
    WsProtocolError,
    WsTimeout,
)


class GatedStream(trio.abc.Stream):
    """Client end; ``send_all`` can be held half-way (after its first half is written)
    until ``release`` — the point where a concurrent send would corrupt the frame."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.gate: trio.Event | None = None
        self.holding = trio.Event()
        self.closed = False

    def hold(self) -> None:
        self.gate = trio.Event()
        self.holding = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.gate is not None and len(data) > 1:
            half = len(data) // 2
            await self.inner.send_all(data[:half])
            self.holding.set()
            await self.gate.wait()
            self.gate = None
            await self.inner.send_all(data[half:])
            return
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:  # pragma: no cover
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:  # pragma: no cover
        raise NotImplementedError

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


class Agent:
    """The server end: a wsproto connection driven by the test."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self.pending: list[Event] = []
        self.eof = False

    async def next_event(self) -> Event:
        while not self.pending:
            data = await self.stream.receive_some(65536)
            if not data:
                self.eof = True
                raise EOFError
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    async def accept(self) -> Request:
        request = await self.next_event()
        assert isinstance(request, Request)
        await self.send(AcceptConnection())
        return request

    async def send(self, *events: Event) -> None:
        await self.stream.send_all(b"".join(self.ws.send(event) for event in events))

    async def send_text(self, **frame: object) -> None:
        await self.send(TextMessage(json.dumps(frame)))

    async def wire(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def close_code(self) -> int | None:
        """The client's close frame code (answered), or None at EOF without one."""
        try:
            while True:
                event = await self.next_event()
                if isinstance(event, CloseConnection):
                    if self.ws.state.name == "REMOTE_CLOSING":
                        # the client may not wait for it (failing the connection)
                        with contextlib.suppress(trio.BrokenResourceError):
                            await self.send(event.response())
                    return event.code
        except EOFError:
            return None


async def pair(
    max_message_size: int = 1000,
) -> tuple[WsConnection, Agent, GatedStream]:
    client_end, server_end = trio.testing.memory_stream_pair()
    gated = GatedStream(client_end)
    return WsConnection(gated, max_message_size=max_message_size), Agent(server_end), gated


async def connected(
    nursery: trio.Nursery, max_message_size: int = 1000
) -> tuple[WsConnection, Agent, GatedStream]:
    ws, agent, stream = await pair(max_message_size)
    nursery.start_soon(agent.accept)
    await ws.handshake("agent.test", "/v1/agent_ws/1/")
    return ws, agent, stream


# --- handshake --------------------------------------------------------------------------


async def test_handshake_and_frames_in_the_same_packet(nursery: trio.Nursery) -> None:
    ws, agent, _ = await pair()

    async def serve() -> None:
        request = await agent.next_event()
        assert isinstance(request, Request)
        assert (request.host, request.target) == ("agent.test", "/v1/agent_ws/1/")
        # the 101 response, a ping and a message in one write
        await agent.send(AcceptConnection(), Ping(b"p"), TextMessage('{"type": "STATUS"}'))

    nursery.start_soon(serve)
    await ws.handshake("agent.test", "/v1/agent_ws/1/")
    assert await ws.receive_text() == '{"type": "STATUS"}'
    assert await agent.next_event() == Pong(b"p")


@pytest.mark.parametrize("status", [404, 502])
async def test_handshake_rejected(nursery: trio.Nursery, status: int) -> None:
    ws, agent, stream = await pair()

    async def serve() -> None:
        await agent.next_event()
        await agent.send(
            RejectConnection(status_code=status, has_body=True),
            RejectData(b"no such agent"),
        )

    nursery.start_soon(serve)
    with pytest.raises(HandshakeRejected) as info:
        await ws.handshake("agent.test", "/")
    assert info.value.status_code == status
    await ws.aclose()
    assert stream.closed


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (b"", "closed during handshake"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "Connection"),
        (b"garbage\r\n\r\n", "handshake failed"),
    ],
)
async def test_handshake_failed(nursery: trio.Nursery, response: bytes, match: str) -> None:
    ws, agent, stream = await pair()

    async def serve() -> None:
        await agent.next_event()
        if response:
            await agent.wire(response)
        await agent.stream.aclose()

    nursery.start_soon(serve)
    with pytest.raises(HandshakeFailed, match=match):
        await ws.handshake("agent.test", "/")
    await ws.aclose()
    assert stream.closed


# --- receiving ----------------------------------------------------------------------------


async def test_fragments_are_assembled_with_pings_between(nursery: trio.Nursery) -> None:
    ws, agent, _ = await connected(nursery)
    await agent.send(
        TextMessage("héllo ", message_finished=False),
        Ping(b"1"),  # control frames may come between the fragments of a message
        TextMessage("wörld", message_finished=False),
        Ping(b"2"),
        TextMessage("!", message_finished=True),
        TextMessage("next"),
    )
    assert await ws.receive_text() == "héllo wörld!"
    assert [await agent.next_event(), await agent.next_event()] == [Pong(b"1"), Pong(b"2")]
    assert await ws.receive_text() == "next"


async def test_message_exactly_at_the_limit(nursery: trio.Nursery) -> None:
    ws, agent, _ = await connected(nursery, max_message_size=10)
    await agent.send(TextMessage("é" * 5))  # 10 UTF-8 bytes: the limit counts bytes
    assert await ws.receive_text() == "é" * 5
    await agent.send(TextMessage("x" * 4, message_finished=False), TextMessage("y" * 6))
    assert await ws.receive_text() == "xxxxyyyyyy"


@pytest.mark.parametrize("fragmented", [False, True])
async def test_the_limit_counts_utf8_bytes_not_characters(
    nursery: trio.Nursery, fragmented: bool
) -> None:
    """Six two-byte characters are 12 bytes: over a 10-byte limit (``max_frame_bytes``
    says bytes; counting characters let a message four times the limit through)."""
    ws, agent, _ = await connected(nursery, max_message_size=10)
    if fragmented:
        await agent.send(TextMessage("é" * 3, message_finished=False), TextMessage("é" * 3))
    else:
        await agent.send(TextMessage("é" * 6))
    with pytest.raises(MessageTooBig):
        await ws.receive_text()


@pytest.mark.parametrize("fragmented", [False, True])
async def test_too_big_fails_with_1009_without_waiting(
    autojump_clock: MockClock, nursery: trio.Nursery, fragmented: bool
) -> None:
    ws, agent, stream = await connected(nursery, max_message_size=1000)
    if fragmented:
        parts = [TextMessage("x" * 300, message_finished=False) for _ in range(4)]
        await agent.send(*parts)  # over the limit at the 4th; the rest never needed
    else:
        await agent.send(TextMessage("x" * 1001))
    with pytest.raises(MessageTooBig):
        await ws.receive_text()
    with pytest.raises(MessageTooBig):  # sticky
        await ws.receive_text()
    start = trio.current_time()
    await ws.aclose()  # the agent never answers: no wait for it
    assert trio.current_time() == start
    assert stream.closed
    assert await agent.close_code() == 1009


async def test_binary_message_is_a_protocol_error(nursery: trio.Nursery) -> None:
    ws, agent, stream = await connected(nursery)
    await agent.send(BytesMessage(b"\x00binary"))
    with pytest.raises(WsProtocolError, match="binary"):
        await ws.receive_text()

    async def answer_close() -> None:
        assert await agent.close_code() == 1000  # a polite close, as before

    nursery.start_soon(answer_close)
    await ws.aclose()
    assert stream.closed


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x02\xff\xfe", 1007),  # text frame, invalid UTF-8
        (b"\x83\x00", 1002),  # reserved opcode
        (b"\x80\x01x", 1002),  # continuation without a message
    ],
)
async def test_invalid_frame_fails_the_connection(
    autojump_clock: MockClock, nursery: trio.Nursery, frame: bytes, code: int
) -> None:
    ws, agent, stream = await connected(nursery)
    await agent.wire(frame)
    with pytest.raises(WsProtocolError, match="invalid frame"):
        await ws.receive_text()
    await ws.aclose()
    assert stream.closed
    assert await agent.close_code() == code


async def test_peer_close_is_answered(nursery: trio.Nursery) -> None:
    ws, agent, stream = await connected(nursery)
    await agent.send(TextMessage("last"), CloseConnection(1011, "crash"))
    assert await ws.receive_text() == "last"
    with pytest.raises(WsClosed) as info:
        await ws.receive_text()
    assert (info.value.code, info.value.reason) == (1011, "crash")
    with pytest.raises(WsClosed):
        await ws.send_text("too late")
    await ws.aclose()
    assert stream.closed
    assert await agent.next_event() == CloseConnection(1011, "crash")  # the answer
    assert agent.ws.state.name == "CLOSED"


async def test_eof_without_close_frame(nursery: trio.Nursery) -> None:
    ws, agent, stream = await connected(nursery)
    await agent.send(TextMessage("partial", message_finished=False))
    await agent.stream.aclose()
    with pytest.raises(WsClosed) as info:
        await ws.receive_text()
    assert info.value.code == 1006
    await ws.aclose()  # nothing to say to a closed stream: just closed
    assert stream.closed


async def test_timeout_keeps_the_connection_usable(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    ws, agent, _ = await connected(nursery)
    await agent.send(TextMessage("first ", message_finished=False))
    with pytest.raises(WsTimeout):
        await ws.receive_text(trio.current_time() + 5)
    await agent.send(TextMessage("second"))
    assert await ws.receive_text(trio.current_time() + 5) == "first second"


async def test_cancelled_read_loses_nothing(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    ws, agent, _ = await connected(nursery)
    await agent.send(TextMessage("a", message_finished=False))
    with trio.move_on_after(1):
        await ws.receive_text()
    await agent.send(TextMessage("b"))
    with trio.CancelScope() as scope:
        scope.cancel()
        await ws.receive_text()  # a pending cancellation is raised before reading
    assert await ws.receive_text() == "ab"


async def test_buffered_messages_still_yield_sometimes(nursery: trio.Nursery) -> None:
    """Messages already received are returned without a scheduling round trip each,
    but a flood of them does not starve other tasks."""
    ws, agent, _ = await connected(nursery)
    await agent.send(*[TextMessage(str(i)) for i in range(320)])  # one read brings all
    ticks = 0

    async def ticker(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal ticks
        task_status.started()
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as inner:
        await inner.start(ticker)
        ticks = 0
        assert [await ws.receive_text() for _ in range(320)] == [str(i) for i in range(320)]
        inner.cancel_scope.cancel()
    # a round every 16 messages (20), plus the read's: not one per message (320)
    assert 20 <= ticks <= 40


# --- sending and closing --------------------------------------------------------------


async def test_concurrent_sends_never_interleave(nursery: trio.Nursery) -> None:
    """A send held half-way (``Turn.confirm`` in another task) and a pong the reader
    owes: the pong waits for the lock, the read goes on after it, frames stay whole."""
    ws, agent, stream = await connected(nursery)
    stream.hold()
    big = "y" * 5000
    sent = trio.Event()

    async def confirm() -> None:
        await ws.send_text(big)
        sent.set()

    nursery.start_soon(confirm)
    await stream.holding.wait()  # half a frame on the wire, the lock held
    await agent.send(Ping(b"hb"), TextMessage("after the ping"))
    async with trio.open_nursery() as inner:

        async def read() -> None:
            assert await ws.receive_text() == "after the ping"

        inner.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()  # the reader waits for the lock to send its pong
        assert stream.gate is not None
        stream.gate.set()
    await sent.wait()
    assert await agent.next_event() == TextMessage(big)
    assert await agent.next_event() == Pong(b"hb")


async def test_interrupted_send_breaks_the_connection(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    ws, _agent, stream = await connected(nursery)
    stream.hold()
    with trio.move_on_after(1):
        await ws.send_text("z" * 100)  # cancelled with half a frame written
    with pytest.raises(WsClosed):
        await ws.send_text("more")
    await ws.aclose()  # no close frame after half a frame: just the stream
    assert stream.closed


async def test_polite_close_waits_for_the_answer(nursery: trio.Nursery) -> None:
    ws, agent, stream = await connected(nursery)
    await agent.send(TextMessage("unread"), Ping(b"late"))  # dropped by the close
    closed = trio.Event()

    async def close() -> None:
        await ws.aclose()
        closed.set()

    nursery.start_soon(close)
    await trio.testing.wait_all_tasks_blocked()
    assert not closed.is_set()  # the close frame is out; waiting for the agent's
    assert await agent.close_code() == 1000
    with trio.fail_after(1):
        await closed.wait()
    assert stream.closed
    await ws.aclose()  # idempotent


async def test_close_bounded_by_the_caller_still_closes_the_stream(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    ws, _agent, stream = await connected(nursery)  # the agent never reads nor answers
    with trio.CancelScope(deadline=trio.current_time() + 2, shield=True) as scope:
        await ws.aclose()
    assert scope.cancelled_caught
    assert stream.closed


async def test_receive_deadline_applies_to_a_blocked_pong(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    ws, agent, stream = await connected(nursery)
    stream.hold()
    nursery.start_soon(ws.send_text, "x" * 100)  # holds the lock forever
    await stream.holding.wait()
    await agent.send(Ping(b"p"))
    with pytest.raises(WsTimeout, match="ping"):
        await ws.receive_text(trio.current_time() + 3)


# --- through the client: a hand-driven agent ----------------------------------------


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    assert len(payload) < 126
    return struct.pack("!BB", (0x80 if fin else 0) | opcode, len(payload)) + payload


async def test_turn_with_a_hand_driven_agent(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    """STATUS split over three frames and a ping before END, on raw bytes."""
    streams: list[GatedStream] = []

    async def connector(target: object) -> trio.abc.Stream:
        client_end, server_end = trio.testing.memory_stream_pair()
        agent = Agent(server_end)

        async def serve() -> None:
            await agent.accept()
            status = b'{"type": "STATUS"}'
            await agent.wire(
                _frame(0x1, status[:5], fin=False)
                + _frame(0x0, status[5:10], fin=False)
                + _frame(0x9, b"ping")
                + _frame(0x0, status[10:])
            )
            assert await agent.next_event() == Pong(b"ping")
            message = await agent.next_event()
            assert isinstance(message, TextMessage)
            assert json.loads(message.data)["text"] == "hi"
            await agent.send_text(type="AGENT_EVENT_TEXT_CHUNK", text="ok")
            await agent.wire(_frame(0x9, b""))
            await agent.send_text(type="AGENT_EVENT_END", tokens_used=3)
            assert await agent.next_event() == Pong(b"")
            assert await agent.close_code() == 1000

        nursery.start_soon(serve)
        streams.append(GatedStream(client_end))
        return streams[0]

    client = AgentClient(TurnLimits(retries=0), connector=connector)
    async with client.turn("http://agent.test", "1", "hi") as turn:
        events = [event async for event in turn]
    assert events[-1] == TurnEnd(3)
    assert streams[0].closed


@pytest.mark.parametrize(
    ("wire", "code", "close"),
    [
        (_frame(0x1, b"\xff"), AGENT_PROTOCOL_ERROR, 1007),
        (_frame(0x2, b"\x00"), AGENT_PROTOCOL_ERROR, 1000),
        (_frame(0x8, struct.pack("!H", 1011) + b"crash"), AGENT_DISCONNECTED, 1011),
        (b"", AGENT_DISCONNECTED, None),  # EOF, no close frame
    ],
)
async def test_turn_failures_on_raw_frames(
    autojump_clock: MockClock,
    nursery: trio.Nursery,
    wire: bytes,
    code: str,
    close: int | None,
) -> None:
    closes: list[int | None] = []
    streams: list[GatedStream] = []

    async def connector(target: object) -> trio.abc.Stream:
        client_end, server_end = trio.testing.memory_stream_pair()
        agent = Agent(server_end)

        async def serve() -> None:
            await agent.accept()
            await agent.send_text(type="STATUS")
            await agent.next_event()
            await agent.send_text(type="AGENT_EVENT_TEXT_CHUNK", text="so far")
            if wire:
                await agent.wire(wire)
            else:
                await agent.stream.aclose()
                return
            closes.append(await agent.close_code())

        nursery.start_soon(serve)
        streams.append(GatedStream(client_end))
        return streams[-1]

    client = AgentClient(TurnLimits(retries=3), connector=connector)
    events: list[object] = []
    start = trio.current_time()

    async def run() -> None:
        async with client.turn("http://agent.test", "1", "hi") as turn:
            async for event in turn:
                events.append(event)

    with pytest.raises(AgentFailure) as info:
        await run()
    failure = info.value
    assert failure.code == code, repr(failure)
    assert len(events) == 1  # after output: never retried
    assert len(streams) == 1
    assert streams[0].closed
    assert trio.current_time() - start < 1
    await trio.testing.wait_all_tasks_blocked()
    assert closes == ([close] if wire else [])
    if code == AGENT_DISCONNECTED and close is not None:
        assert f"code {close} crash" in str(failure)


@pytest.mark.parametrize("cancelled", [False, True])
async def test_close_is_shielded_and_bounded_by_close_s(
    autojump_clock: MockClock, nursery: trio.Nursery, cancelled: bool
) -> None:
    """An agent that never answers the close frame: leaving the block takes ``close_s``
    (also when the block is being cancelled meanwhile), then the stream is closed."""
    streams: list[GatedStream] = []

    async def connector(target: object) -> trio.abc.Stream:
        client_end, server_end = trio.testing.memory_stream_pair()
        agent = Agent(server_end)

        async def serve() -> None:
            await agent.accept()
            await agent.send_text(type="STATUS")
            await agent.next_event()
            await agent.send_text(type="AGENT_EVENT_END")
            await trio.sleep_forever()  # never reads again

        nursery.start_soon(serve)
        streams.append(GatedStream(client_end))
        return streams[-1]

    client = AgentClient(TurnLimits(retries=0, close_s=2), connector=connector)
    start = trio.current_time()
    with trio.move_on_after(0.5 if cancelled else math.inf) as scope:
        async with client.turn("http://agent.test", "1", "hi") as turn:
            assert [event async for event in turn] == [TurnEnd(None)]
            if cancelled:
                await trio.sleep_forever()
    assert scope.cancelled_caught == cancelled
    assert trio.current_time() - start == pytest.approx(2.5 if cancelled else 2)
    assert streams[0].closed
