"""Deterministic turn tests: in-memory streams, scripted agent, virtual time."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing
from agent_fakes import BASE, Conn, FakeAgent
from trio.testing import MockClock

from agent_client import (
    AGENT_DISCONNECTED,
    AGENT_ERROR,
    AGENT_PROTOCOL_ERROR,
    AGENT_TIMEOUT,
    AGENT_UNAVAILABLE,
    AgentClient,
    AgentFailure,
    ConfirmRequest,
    SendFile,
    TextChunk,
    ToolProgress,
    TurnEnd,
    TurnLimits,
)


async def run_turn(client: AgentClient, text: str = "hello", attachments=()) -> list[object]:
    events: list[object] = []
    async with client.turn(BASE, "41", text, attachments) as turn:
        events.extend([event async for event in turn])
    return events


async def collect(turn_cm, events: list[object]) -> None:
    """Iterate a turn into ``events`` (kept when the turn then fails)."""
    async with turn_cm as turn:
        async for event in turn:
            events.append(event)


async def failing_turn(client: AgentClient, text: str = "hello") -> AgentFailure:
    with pytest.raises(AgentFailure) as info:
        await run_turn(client, text)
    return info.value


async def simple(request, conn: Conn) -> None:
    peer = await conn.accept(request)
    msg = await peer.start()
    await peer.text("you said ", msg["text"])
    await peer.end(11)
    await peer.wait_closed()


async def test_happy_path(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    fake_agent.script(simple)
    client = fake_agent.client()
    events = await run_turn(client, "hi there", ["in/a.txt"])
    assert events == [TextChunk("you said "), TextChunk("hi there"), TurnEnd(11)]
    (conn,) = fake_agent.conns
    assert conn.path == "/agent_1/v1/agent_ws/41/"
    assert conn.received == [
        {"type": "USER_MESSAGE", "text": "hi there", "attachments": ["in/a.txt"]}
    ]
    assert conn.close_code == 1000  # the client closed politely when the block ended
    assert conn.stream_closed_at is not None


async def test_all_event_kinds_and_unknown_ignored(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def script(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.send("SOME_FUTURE_EVENT", x=1)
        await peer.send("AGENT_EVENT_TOOL_CALL_CHUNK", name="search", delta="{")
        await peer.send("AGENT_EVENT_TOOL_RESULT", name="search", result="ok")
        await peer.send("AGENT_EVENT_CUSTOM_UPDATE", message="thinking")
        await peer.send("STATUS")  # a late STATUS is ignored too
        await peer.send("AGENT_EVENT_SEND_FILE", path="/workspace/out/r.txt")
        await peer.text("done")
        await peer.send("AGENT_EVENT_END")
        await peer.wait_closed()

    fake_agent.script(script)
    events = await run_turn(fake_agent.client())
    assert events == [
        ToolProgress("AGENT_EVENT_TOOL_CALL_CHUNK", {"name": "search", "delta": "{"}),
        ToolProgress("AGENT_EVENT_TOOL_RESULT", {"name": "search", "result": "ok"}),
        ToolProgress("AGENT_EVENT_CUSTOM_UPDATE", {"message": "thinking"}),
        SendFile("/workspace/out/r.txt"),
        TextChunk("done"),
        TurnEnd(None),
    ]


async def test_duplicate_end_never_seen(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def script(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.text("x")
        await peer.end(1)
        await peer.end(2)
        await peer.wait_closed()

    fake_agent.script(script)
    client = fake_agent.client()
    async with client.turn(BASE, "41", "hi") as turn:
        events = [e async for e in turn]
        assert events == [TextChunk("x"), TurnEnd(1)]
        assert turn.tokens_used == 1
        assert turn.text_received
        with pytest.raises(StopAsyncIteration):
            await turn.__anext__()


# --- deadlines ----------------------------------------------------------------------


async def test_connect_timeout_connector_hangs(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    fake_agent.hang = True
    start = trio.current_time()
    failure = await failing_turn(fake_agent.client(connect_s=3, retries=0))
    assert (failure.code, failure.phase, failure.attempts) == (AGENT_TIMEOUT, "connect", 1)
    assert failure.retryable  # by kind; the client would have retried with retries > 0
    assert trio.current_time() - start == pytest.approx(3)


async def test_connect_timeout_handshake_never_answered(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def mute(request, conn: Conn) -> None:
        await trio.sleep_forever()

    fake_agent.script(mute)
    failure = await failing_turn(fake_agent.client(connect_s=2, retries=1, retry_base_s=1))
    assert (failure.code, failure.phase, failure.attempts) == (AGENT_TIMEOUT, "connect", 2)


async def test_status_timeout_retried_then_ok(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def no_status(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.wait_closed()

    fake_agent.script(no_status, simple)
    start = trio.current_time()
    events = await run_turn(fake_agent.client(status_s=5, retry_base_s=0.5))
    assert events[-1] == TurnEnd(11)
    assert len(fake_agent.conns) == 2
    assert fake_agent.conns[0].received == []  # never got the message
    assert trio.current_time() - start == pytest.approx(5.5)


async def test_status_timeout_exhausts_retries(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def no_status(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.wait_closed()

    fake_agent.script(no_status)
    start = trio.current_time()
    failure = await failing_turn(fake_agent.client(status_s=5, retries=2, retry_base_s=1))
    assert (failure.code, failure.phase, failure.attempts) == (AGENT_TIMEOUT, "status", 3)
    assert failure.retryable
    # 3 × 5 s waits + backoff 1 s + 2 s
    assert trio.current_time() - start == pytest.approx(18)
    assert all(c.close_code == 1000 for c in fake_agent.conns)


async def test_first_text_timeout_not_retried(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def silent(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.wait_closed()

    fake_agent.script(silent)
    start = trio.current_time()
    failure = await failing_turn(fake_agent.client(first_text_s=30, idle_s=5))
    assert (failure.code, failure.phase) == (AGENT_TIMEOUT, "first_text")
    assert not failure.retryable
    assert len(fake_agent.conns) == 1
    assert trio.current_time() - start == pytest.approx(30)


async def test_first_text_deadline_is_not_reset_by_ignored_frames(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def chatty(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        while True:
            await trio.sleep(4)
            await peer.send("UNKNOWN_HEARTBEAT")

    fake_agent.script(chatty)
    start = trio.current_time()
    failure = await failing_turn(fake_agent.client(first_text_s=30, idle_s=5))
    assert (failure.code, failure.phase) == (AGENT_TIMEOUT, "first_text")
    assert trio.current_time() - start == pytest.approx(30)


async def test_idle_timeout(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def stalls(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.text("a")
        await trio.sleep(3)
        await peer.text("b")
        await peer.wait_closed()

    fake_agent.script(stalls)
    client = fake_agent.client(idle_s=10)
    events: list[object] = []
    with pytest.raises(AgentFailure) as info:
        await collect(client.turn(BASE, "41", "hi"), events)
    assert events == [TextChunk("a"), TextChunk("b")]
    assert (info.value.code, info.value.phase) == (AGENT_TIMEOUT, "idle")
    assert not info.value.retryable
    assert len(fake_agent.conns) == 1


async def test_total_timeout(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def trickle(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        while True:
            await trio.sleep(1)
            await peer.text(".")

    fake_agent.script(trickle)
    start = trio.current_time()
    failure = await failing_turn(fake_agent.client(total_s=20, idle_s=5))
    assert (failure.code, failure.phase) == (AGENT_TIMEOUT, "total")
    assert trio.current_time() - start == pytest.approx(20)


async def test_total_deadline_caps_the_status_phase(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def no_status(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.wait_closed()

    fake_agent.script(no_status)
    failure = await failing_turn(fake_agent.client(total_s=4, status_s=10))
    assert (failure.code, failure.phase) == (AGENT_TIMEOUT, "total")
    assert len(fake_agent.conns) == 1


# --- failure codes --------------------------------------------------------------------


async def test_connect_refused_retried_with_backoff(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    fake_agent.refuse = True
    start = trio.current_time()
    failure = await failing_turn(fake_agent.client(retries=3, retry_base_s=0.5))
    assert failure.code == AGENT_UNAVAILABLE
    assert failure.attempts == 4
    assert "refused" in str(failure)
    assert trio.current_time() - start == pytest.approx(0.5 + 1 + 2)


async def test_handshake_404_not_retried(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def reject(request, conn: Conn) -> None:
        await request.reject(404, body=b"no such agent")

    fake_agent.script(reject)
    failure = await failing_turn(fake_agent.client(retries=2))
    assert failure.code == AGENT_UNAVAILABLE
    assert "404" in str(failure.details)
    assert (failure.retryable, failure.attempts) == (False, 1)


async def test_handshake_502_retried(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def reject(request, conn: Conn) -> None:
        await request.reject(502)

    fake_agent.script(reject, simple)
    events = await run_turn(fake_agent.client(retries=2))
    assert events[-1] == TurnEnd(11)
    assert len(fake_agent.conns) == 2


async def test_disconnect_before_text_retried(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def drops(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.ws.aclose(1011, "crash")

    fake_agent.script(drops, simple)
    client = fake_agent.client(retries=1)
    async with client.turn(BASE, "41", "again") as turn:
        events = [e async for e in turn]
        assert turn.attempts == 2
    assert events == [TextChunk("you said "), TextChunk("again"), TurnEnd(11)]
    # the message was sent on both connections
    assert [c.received[0]["text"] for c in fake_agent.conns] == ["again", "again"]


async def test_graceful_disconnect_before_text_retried(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def leaves(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.send("GRACEFUL_DISCONNECT")
        await peer.wait_closed()

    fake_agent.script(leaves)
    failure = await failing_turn(fake_agent.client(retries=1, retry_base_s=1))
    assert failure.code == AGENT_DISCONNECTED
    assert (failure.retryable, failure.attempts) == (True, 2)


async def test_graceful_disconnect_as_first_frame(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def leaves(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.send("GRACEFUL_DISCONNECT")
        await peer.wait_closed()

    fake_agent.script(leaves, simple)
    assert (await run_turn(fake_agent.client(retries=1)))[-1] == TurnEnd(11)


async def test_disconnect_after_text_not_retried(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def drops(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.text("partial")
        await peer.ws.aclose(1011, "crash")

    fake_agent.script(drops, simple)
    events: list[object] = []
    with pytest.raises(AgentFailure) as info:
        await collect(fake_agent.client(retries=3).turn(BASE, "41", "hi"), events)
    assert events == [TextChunk("partial")]
    assert info.value.code == AGENT_DISCONNECTED
    assert (info.value.retryable, info.value.attempts) == (False, 1)
    assert len(fake_agent.conns) == 1


async def test_disconnect_after_tool_progress_not_retried(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def drops(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.send("AGENT_EVENT_TOOL_CALL_CHUNK", name="rm")
        await peer.ws.aclose(1011)

    fake_agent.script(drops, simple)
    failure = await failing_turn(fake_agent.client(retries=3))
    assert (failure.code, failure.retryable) == (AGENT_DISCONNECTED, False)
    assert len(fake_agent.conns) == 1


async def test_agent_error_keeps_its_code(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def errs(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.send("ERROR", code="QUOTA_EXCEEDED", details="no more tokens")
        await peer.wait_closed()

    fake_agent.script(errs)
    failure = await failing_turn(fake_agent.client(retries=3))
    assert failure.code == AGENT_ERROR
    assert (failure.agent_code, failure.details) == ("QUOTA_EXCEEDED", "no more tokens")
    assert (failure.retryable, failure.attempts) == (False, 1)


async def test_agent_error_instead_of_status(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def errs(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.send("ERROR", code="BUSY")
        await peer.wait_closed()

    fake_agent.script(errs)
    failure = await failing_turn(fake_agent.client())
    assert (failure.code, failure.agent_code) == (AGENT_ERROR, "BUSY")


async def test_first_frame_not_status(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def rude(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.text("hello before status")
        await peer.wait_closed()

    fake_agent.script(rude)
    failure = await failing_turn(fake_agent.client(retries=3))
    assert failure.code == AGENT_PROTOCOL_ERROR
    assert "STATUS" in str(failure.details)
    assert len(fake_agent.conns) == 1


@pytest.mark.parametrize(
    "garbage",
    [
        "not json at all",
        "[1, 2, 3]",
        "42",
        '{"no_type": true}',
        '{"type": "AGENT_EVENT_TEXT_CHUNK"}',
        '{"type": "AGENT_EVENT_TEXT_CHUNK", "text": {"nested": 1}}',
        '{"type": "AGENT_EVENT_SEND_FILE", "path": 3}',
        '{"type": "AGENT_EVENT_CONFIRM_REQUEST", "text": "no id"}',
        b"\x00binary",
    ],
)
async def test_garbage_frame_is_protocol_error(
    autojump_clock: MockClock, fake_agent: FakeAgent, garbage: str
) -> None:
    async def script(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.text("ok so far")
        await peer.send_raw(garbage)
        await peer.wait_closed()

    fake_agent.script(script)
    events: list[object] = []
    with pytest.raises(AgentFailure) as info:
        await collect(fake_agent.client().turn(BASE, "41", "hi"), events)
    assert events == [TextChunk("ok so far")]
    assert info.value.code == AGENT_PROTOCOL_ERROR
    assert fake_agent.conns[0].close_code == 1000


async def test_frame_too_big_closes_the_stream(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def big(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.text("x" * 2000)
        await peer.wait_closed()

    fake_agent.script(big)
    start = trio.current_time()
    failure = await failing_turn(fake_agent.client(max_frame_bytes=1000, retries=2))
    assert failure.code == AGENT_PROTOCOL_ERROR
    assert "larger than 1000" in str(failure.details)
    assert failure.attempts == 1
    await trio.testing.wait_all_tasks_blocked()
    (conn,) = fake_agent.conns
    assert conn.close_code == 1009
    # the connection is failed: close frame, then the stream at once (no wait)
    assert conn.stream_closed_at == pytest.approx(start)


async def test_oversized_fragmented_message_is_refused_early(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    """The limit counts the assembled message: five 300-character fragments of one
    message break a 1000 limit at the fourth, even though each frame is small."""

    async def fragments(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.text("fine")
        await peer.send_fragment('{"type": "AGENT_EVENT_TEXT_CHUNK", "text": "', finished=False)
        for _ in range(5):
            await peer.send_fragment("y" * 300, finished=False)
            await trio.sleep(1)
        await peer.wait_closed()

    fake_agent.script(fragments)
    events: list[object] = []
    with pytest.raises(AgentFailure) as info:
        await collect(fake_agent.client(max_frame_bytes=1000).turn(BASE, "41", "hi"), events)
    assert events == [TextChunk("fine")]
    assert (info.value.code, info.value.attempts) == (AGENT_PROTOCOL_ERROR, 1)
    assert "larger than 1000" in str(info.value.details)
    assert trio.current_time() == pytest.approx(3)  # at the 4th fragment, not the 6th
    await trio.testing.wait_all_tasks_blocked()
    (conn,) = fake_agent.conns
    assert conn.peer_close_code == 1009
    assert conn.stream_closed_at == pytest.approx(3)


async def test_fragmented_messages_are_assembled(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def fragments(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.send_fragments('{"type": ', '"STATUS"}')
        await peer.recv()
        chunk = json.dumps({"type": "AGENT_EVENT_TEXT_CHUNK", "text": "héllo wörld"})
        await peer.send_fragments(*[chunk[i : i + 7] for i in range(0, len(chunk), 7)])
        await peer.send_fragments(json.dumps({"type": "AGENT_EVENT_END"}))  # one frame
        await peer.wait_closed()

    fake_agent.script(fragments)
    assert await run_turn(fake_agent.client()) == [TextChunk("héllo wörld"), TurnEnd(None)]


async def test_pings_are_answered_in_every_phase(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    """trio-websocket's ``ping`` waits for the pong: each of these only returns if the
    client, reading inline, answered."""

    async def pinging(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        with trio.fail_after(1):
            await peer.ws.ping(b"before status")
        await peer.start()
        with trio.fail_after(1):
            await peer.ws.ping(b"before text")
        await peer.text("a")
        with trio.fail_after(1):
            await peer.ws.ping(b"mid-stream")
        await peer.text("b")
        await peer.end()
        await peer.wait_closed()

    fake_agent.script(pinging)
    assert await run_turn(fake_agent.client(retries=0)) == [
        TextChunk("a"),
        TextChunk("b"),
        TurnEnd(7),
    ]
    assert fake_agent.conns[0].close_code == 1000


async def test_invalid_base_url_is_unavailable(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    client = fake_agent.client()
    with pytest.raises(AgentFailure) as info:
        async with client.turn("ftp://nope", "41", "hi"):
            pass  # pragma: no cover
    assert info.value.code == AGENT_UNAVAILABLE
    assert not info.value.retryable
    assert fake_agent.conns == []


# --- cancellation and structure ------------------------------------------------------


async def test_cancel_closes_socket_promptly(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def slow(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        for i in range(100):
            await peer.text(f"{i} ")
            await trio.sleep(1)

    fake_agent.script(slow)
    client = fake_agent.client()
    seen: list[object] = []
    cancel_at = trio.current_time() + 3.5
    with trio.move_on_at(cancel_at) as scope:
        async with client.turn(BASE, "41", "hi") as turn:
            async for event in turn:
                seen.append(event)
    assert scope.cancelled_caught
    assert len(seen) == 4
    (conn,) = fake_agent.conns
    # a proper close frame, answered at once: no wait for close_s (2 s)
    assert conn.peer_close_code == 1000
    assert conn.stream_closed_at == pytest.approx(cancel_at)
    assert trio.current_time() == pytest.approx(cancel_at)


async def test_cancel_during_connect_and_backoff(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    fake_agent.refuse = True
    with trio.move_on_after(0.7) as scope:
        async with fake_agent.client(retries=5, retry_base_s=0.5).turn(BASE, "41", "hi"):
            pass  # pragma: no cover
    assert scope.cancelled_caught


async def _never_accepts(request, conn: Conn) -> None:
    await trio.sleep_forever()


async def _no_status(request, conn: Conn) -> None:
    peer = await conn.accept(request)
    await peer.wait_closed()


async def _silent(request, conn: Conn) -> None:
    peer = await conn.accept(request)
    await peer.start()
    await peer.wait_closed()


async def _stalls(request, conn: Conn) -> None:
    peer = await conn.accept(request)
    await peer.start()
    await peer.text("partial")
    await peer.wait_closed()


async def _asks(request, conn: Conn) -> None:
    peer = await conn.accept(request)
    await peer.start()
    await peer.send("AGENT_EVENT_CONFIRM_REQUEST", id="c-1", text="?")
    await peer.wait_closed()


async def _rejects(request, conn: Conn) -> None:
    await request.reject(502)


@pytest.mark.parametrize(
    ("script", "polite"),
    [
        (None, False),  # connector hangs: no stream yet
        (_never_accepts, False),  # handshake: no close frame before the upgrade
        (_no_status, True),
        (_silent, True),  # waiting for the first text
        (_stalls, True),  # mid-stream
        (_asks, True),  # waiting for the human
        (_rejects, False),  # backoff between attempts (the 502's stream already closed)
    ],
    ids=["connect", "handshake", "status", "first_text", "idle", "confirm", "backoff"],
)
async def test_cancel_in_any_phase_leaks_no_stream(
    autojump_clock: MockClock, fake_agent: FakeAgent, script, polite: bool
) -> None:
    if script is None:
        fake_agent.hang = True
    else:
        fake_agent.script(script)
    client = fake_agent.client(retries=3, retry_base_s=5)
    seen: list[BaseException] = []
    cancel_at = trio.current_time() + 1
    with trio.move_on_at(cancel_at) as scope:
        try:
            async with client.turn(BASE, "41", "hi") as turn:
                async for _event in turn:
                    pass
        except BaseException as exc:
            seen.append(exc)
            raise
    assert scope.cancelled_caught
    assert [type(exc) for exc in seen] == [trio.Cancelled]  # never an exception group
    assert trio.current_time() == pytest.approx(cancel_at)  # promptly
    assert len(fake_agent.conns) == (0 if script is None else 1)
    for conn in fake_agent.conns:
        assert conn.stream_closed_at is not None
        assert conn.stream_closed_at <= cancel_at
        assert conn.peer_close_code == (1000 if polite else None)


class _SpawnRecorder(trio.abc.Instrument):
    def __init__(self) -> None:
        self.spawned: list[trio.lowlevel.Task] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned.append(task)


def _descends_from(task: trio.lowlevel.Task, ancestor: trio.lowlevel.Task) -> bool:
    nursery = task.parent_nursery
    while nursery is not None:
        if nursery.parent_task is ancestor:
            return True
        nursery = nursery.parent_task.parent_nursery
    return False


async def test_turn_starts_no_task(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    """The turn reads inline: no reader task, no nursery (the fake agent's server tasks
    run in the fixture's nursery, not under the test's task)."""
    fake_agent.script(confirm_script)
    recorder = _SpawnRecorder()
    me = trio.lowlevel.current_task()
    nurseries = list(me.child_nurseries)
    trio.lowlevel.add_instrument(recorder)
    try:
        async with fake_agent.client().turn(BASE, "41", "hi") as turn:
            assert me.child_nurseries == nurseries
            async for event in turn:
                assert me.child_nurseries == nurseries
                if isinstance(event, ConfirmRequest):
                    await turn.confirm(event.id, True)
    finally:
        trio.lowlevel.remove_instrument(recorder)
    assert recorder.spawned  # the fake agent's tasks were seen...
    assert not [task for task in recorder.spawned if _descends_from(task, me)]  # ...no others


async def test_caller_exception_propagates_unwrapped(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    fake_agent.script(simple)

    async def body() -> None:
        async with fake_agent.client().turn(BASE, "41", "hi") as turn:
            await turn.__anext__()
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await body()
    await trio.testing.wait_all_tasks_blocked()
    assert fake_agent.conns[0].close_code == 1000


async def test_break_early_closes(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    fake_agent.script(simple)
    async with fake_agent.client().turn(BASE, "41", "hi") as turn:
        async for _event in turn:
            break
    await trio.testing.wait_all_tasks_blocked()
    assert fake_agent.conns[0].close_code == 1000


async def test_failure_is_sticky(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def errs(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.send("ERROR", code="X")
        await peer.wait_closed()

    fake_agent.script(errs)
    async with fake_agent.client().turn(BASE, "41", "hi") as turn:
        with pytest.raises(AgentFailure) as first:
            await turn.__anext__()
        with pytest.raises(AgentFailure) as second:
            await turn.__anext__()
    assert first.value is second.value


# --- confirmation ----------------------------------------------------------------------


async def confirm_script(request, conn: Conn) -> None:
    peer = await conn.accept(request)
    await peer.start()
    await peer.send("AGENT_EVENT_CONFIRM_REQUEST", id="c-1", text="Delete everything?")
    answer = await peer.recv()
    assert answer["type"] == "USER_CONFIRM"
    assert answer["id"] == "c-1"
    await peer.text("approved" if answer["approved"] else "declined")
    await peer.end()
    await peer.wait_closed()


@pytest.mark.parametrize(("approved", "reply"), [(True, "approved"), (False, "declined")])
async def test_confirm_round_trip(
    autojump_clock: MockClock, fake_agent: FakeAgent, approved: bool, reply: str
) -> None:
    fake_agent.script(confirm_script)
    client = fake_agent.client(idle_s=5, first_text_s=5)
    events: list[object] = []
    async with client.turn(BASE, "41", "do it") as turn:
        async for event in turn:
            events.append(event)
            if isinstance(event, ConfirmRequest):
                await trio.sleep(60)  # the human takes a while: no idle timeout
                with pytest.raises(ValueError, match="no pending"):
                    await turn.confirm("other", True)
                await turn.confirm(event.id, approved)
    assert events == [ConfirmRequest("c-1", "Delete everything?"), TextChunk(reply), TurnEnd(7)]
    assert fake_agent.conns[0].received[1] == {
        "type": "USER_CONFIRM",
        "id": "c-1",
        "approved": approved,
    }


async def test_confirm_from_another_task_while_iterating(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    fake_agent.script(confirm_script)
    client = fake_agent.client(idle_s=5)
    events: list[object] = []
    async with client.turn(BASE, "41", "do it") as turn, trio.open_nursery() as nursery:
        async for event in turn:
            events.append(event)
            if isinstance(event, ConfirmRequest):

                async def answer(request_id: str = event.id) -> None:
                    await trio.sleep(30)
                    await turn.confirm(request_id, True)

                nursery.start_soon(answer)
    assert events[-2:] == [TextChunk("approved"), TurnEnd(7)]


async def test_confirm_while_the_reader_answers_pings(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    """The agent keeps pinging (and waiting for each pong) while the human answers from
    another task: the reader's pongs and the confirmation share the connection."""

    async def script(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.send("AGENT_EVENT_CONFIRM_REQUEST", id="c-1", text="?")

        async def keep_pinging() -> None:
            for i in range(200):
                with trio.fail_after(1):
                    await peer.ws.ping(str(i).encode())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_pinging)
            answer = await peer.recv()
            nursery.cancel_scope.cancel()
        await peer.text(f"answer {answer['approved']}")
        await peer.end()
        await peer.wait_closed()

    fake_agent.script(script)
    client = fake_agent.client(idle_s=5)
    events: list[object] = []
    async with client.turn(BASE, "41", "do it") as turn, trio.open_nursery() as nursery:
        async for event in turn:
            events.append(event)
            if isinstance(event, ConfirmRequest):
                # no sleep: the answer races with the pongs of the read in progress
                nursery.start_soon(turn.confirm, event.id, True)
    assert events[-2:] == [TextChunk("answer True"), TurnEnd(7)]


async def test_unanswered_confirm_hits_total(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    fake_agent.script(confirm_script)
    client = fake_agent.client(idle_s=5, total_s=100)
    events: list[object] = []
    with pytest.raises(AgentFailure) as info:
        await collect(client.turn(BASE, "41", "do it"), events)
    assert (info.value.code, info.value.phase) == (AGENT_TIMEOUT, "total")


async def test_confirm_after_end_is_disconnected(
    autojump_clock: MockClock, fake_agent: FakeAgent
) -> None:
    async def script(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await peer.start()
        await peer.send("AGENT_EVENT_CONFIRM_REQUEST", id="c-1", text="?")
        await peer.end()
        await peer.wait_closed()

    fake_agent.script(script)
    async with fake_agent.client().turn(BASE, "41", "x") as turn:
        assert [e async for e in turn][-1] == TurnEnd(7)
        with pytest.raises(AgentFailure) as info:
            await turn.confirm("c-1", True)
    assert info.value.code == AGENT_DISCONNECTED


# --- probe ----------------------------------------------------------------------------


async def test_probe(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    async def status_later(request, conn: Conn) -> None:
        peer = await conn.accept(request)
        await trio.sleep(0.25)
        await peer.send("STATUS")
        await peer.wait_closed()

    fake_agent.script(status_later)
    result = await fake_agent.client().probe(BASE, "999000000000")
    assert result.status_s == pytest.approx(0.25)
    assert result.url.endswith("/v1/agent_ws/999000000000/")
    assert fake_agent.conns[0].received == []  # no USER_MESSAGE
    await trio.testing.wait_all_tasks_blocked()
    assert fake_agent.conns[0].close_code == 1000


async def test_probe_failure_not_retried(autojump_clock: MockClock, fake_agent: FakeAgent) -> None:
    fake_agent.refuse = True
    with pytest.raises(AgentFailure) as info:
        await fake_agent.client(retries=5).probe(BASE, "1")
    assert (info.value.code, info.value.attempts) == (AGENT_UNAVAILABLE, 1)


def test_limits_defaults_match_internals() -> None:
    limits = TurnLimits()
    assert (limits.connect_s, limits.status_s, limits.first_text_s) == (10.0, 15.0, 120.0)
    assert (limits.idle_s, limits.total_s, limits.retries) == (120.0, 900.0, 2)
    assert (limits.retry_base_s, limits.max_frame_bytes) == (0.5, 1_048_576)
    assert json.dumps(AgentFailure(AGENT_TIMEOUT, phase="idle").phase) == '"idle"'
