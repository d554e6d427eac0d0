"""Agent faults through the whole bot (harness, virtual time).

For each: the notice the user gets, the partial reply finalized with the
"interrupted" mark where text had already streamed, and the room answering the
next message. Texts are the ``ru`` catalogue (the default locale).
"""

from __future__ import annotations

import json
import time

import pytest
import trio
from fault_helpers import (
    INTERRUPTED,
    NOTICE_DISCONNECTED,
    NOTICE_ERROR,
    NOTICE_PROTOCOL,
    NOTICE_UNAVAILABLE,
    answers_next_message,
    notices,
    replies,
    scripted_agent,
    send,
    top_level_bot_messages,
)
from trio_websocket import ConnectionClosed


async def _onboarded(h):
    alice = h.user("alice", displayname="Alice")
    _, _, room = await h.onboard(alice)
    return alice, room


async def _drain(ws) -> None:
    """Read until the bot closes the socket."""
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed:
        pass


def _assert_failed_turn(h, room, notice: str, partial: str | None) -> None:
    """Exactly one notice (``notice``) and, if text had streamed, exactly one reply
    bubble holding ``partial`` + the interrupted mark."""
    got = notices(h, room)
    assert got == [notice] or (notice.endswith("…") and len(got) == 1), got
    texts = replies(h, room)[1:]  # [0] is the welcome
    if partial is None:
        assert texts == [], texts
    else:
        assert len(texts) == 1, texts
        assert partial in texts[0]
        assert texts[0].rstrip().endswith(INTERRUPTED), texts[0]


async def test_agent_refuses_connections(harness, autojump_clock):
    """User sees: «Агент недоступен. Попробуй позже.» (after bounded retries), no
    reply bubble; the room answers the next message once the agent is back."""
    h = harness
    alice, room = await _onboarded(h)
    h.connect_error = OSError(111, "Connection refused")
    h.hs.text_as(alice, room, "anyone there?")
    await h.settle(60)
    _assert_failed_turn(h, room, NOTICE_UNAVAILABLE, None)
    await answers_next_message(h, alice, room)


async def test_agent_never_sends_status(harness, autojump_clock):
    """User sees: «Агент не отвечает (ожидание готовности). Попробуй ещё раз.», no
    reply bubble; typing is cleared; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    h.agent_handler = scripted_agent(lambda ws, msg: _drain(ws), status=False)
    h.hs.text_as(alice, room, "hello?")
    await h.settle(200)
    _assert_failed_turn(h, room, "Агент не отвечает (ожидание готовности). Попробуй ещё раз.", None)
    assert h.hs.typing.get((room, h.bot_user.user_id)) is False
    await answers_next_message(h, alice, room)


async def test_agent_silent_after_status(harness, autojump_clock):
    """User sees: «Агент не отвечает (ожидание ответа)…» after first_text_timeout_s
    (120 s), no reply bubble; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "/silent")
    await h.settle(400)
    _assert_failed_turn(h, room, "Агент не отвечает (ожидание ответа). Попробуй ещё раз.", None)
    await answers_next_message(h, alice, room)


async def test_agent_stalls_mid_stream(harness, autojump_clock):
    """User sees: the partial reply «first part» finalized with «⚠️ (ответ прерван)»
    and «Агент не отвечает (пауза в ответе)…» after the idle deadline (120 s);
    the turn is not replayed (text had streamed); the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    connections = 0

    async def stall(ws, msg) -> None:
        nonlocal connections
        connections += 1
        await send(ws, "AGENT_EVENT_TEXT_CHUNK", text="first part ")
        await _drain(ws)

    h.agent_handler = scripted_agent(stall)
    h.hs.text_as(alice, room, "tell me")
    await h.settle(200)
    _assert_failed_turn(
        h, room, "Агент не отвечает (пауза в ответе). Попробуй ещё раз.", "first part"
    )
    assert connections == 1  # a turn that streamed text is never replayed
    await answers_next_message(h, alice, room)


async def test_agent_disconnects_mid_stream(harness, autojump_clock):
    """User sees: the partial reply «about to vanish» + «⚠️ (ответ прерван)» and
    «Агент оборвал соединение. Попробуй ещё раз.»; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "/disconnect")
    await h.settle(60)
    _assert_failed_turn(h, room, NOTICE_DISCONNECTED, "about to vanish")
    await answers_next_message(h, alice, room)


async def test_agent_graceful_disconnect(harness, autojump_clock):
    """User sees: «Агент оборвал соединение. Попробуй ещё раз.» (GRACEFUL_DISCONNECT
    before any text; retried a bounded number of times), no reply bubble."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "/graceful")
    await h.settle(60)
    _assert_failed_turn(h, room, NOTICE_DISCONNECTED, None)
    await answers_next_message(h, alice, room)


async def test_agent_sends_garbage_first(harness, autojump_clock):
    """User sees: «Агент ответил некорректно. Попробуй ещё раз.» for a non-JSON
    frame instead of a reply; no reply bubble; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "/garbage")
    await h.settle(60)
    _assert_failed_turn(h, room, NOTICE_PROTOCOL, None)
    await answers_next_message(h, alice, room)


async def test_agent_sends_garbage_mid_stream(harness, autojump_clock):
    """User sees: the partial reply «so far so good» + «⚠️ (ответ прерван)» and
    «Агент ответил некорректно…» for each kind of bad frame after text (not JSON,
    not an object, no type, chunk without text); the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    bad_frames = [
        "{not json",
        "[1, 2, 3]",
        json.dumps({"text": "no type"}),
        json.dumps({"type": "AGENT_EVENT_TEXT_CHUNK"}),
        "\x00\xff",
    ]
    for n, frame in enumerate(bad_frames):

        async def garbage(ws, msg, frame=frame) -> None:
            await send(ws, "AGENT_EVENT_TEXT_CHUNK", text="so far so good ")
            await trio.sleep(2)
            await ws.send_message(frame)
            await _drain(ws)

        h.agent_handler = scripted_agent(garbage)
        before_notices = len(notices(h, room))
        before_replies = len(replies(h, room))
        h.hs.text_as(alice, room, f"garbage {n}")
        await h.settle(60)
        assert notices(h, room)[before_notices:] == [NOTICE_PROTOCOL], (frame, notices(h, room))
        new = replies(h, room)[before_replies:]
        assert len(new) == 1, (frame, new)
        assert "so far so good" in new[0], (frame, new)
        assert new[0].rstrip().endswith(INTERRUPTED), (frame, new)
    await answers_next_message(h, alice, room)


async def test_agent_sends_10mb_frame_mid_stream(harness, autojump_clock):
    """User sees: a 10 MB text frame after «start » is refused (frame limit 1 MiB):
    the partial «start» + «⚠️ (ответ прерван)» and «Агент ответил некорректно…»;
    the bot does not buffer or post 10 MB; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)

    async def huge(ws, msg) -> None:
        await send(ws, "AGENT_EVENT_TEXT_CHUNK", text="start ")
        await trio.sleep(2)
        await send(ws, "AGENT_EVENT_TEXT_CHUNK", text="x" * (10 * 1024 * 1024))
        await _drain(ws)

    h.agent_handler = scripted_agent(huge)
    h.hs.text_as(alice, room, "big one")
    await h.settle(60)
    _assert_failed_turn(h, room, NOTICE_PROTOCOL, "start")
    assert all(len(json.dumps(e["content"])) < 70_000 for e in h.bot_events(room))
    await answers_next_message(h, alice, room)


async def test_agent_sends_10mb_frame_first(harness, autojump_clock):
    """User sees: «Агент ответил некорректно. Попробуй ещё раз.» when the first
    reply frame is 10 MB (reference agent ``/big``); no reply bubble."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, f"/big {10 * 1024 * 1024}")
    await h.settle(60)
    _assert_failed_turn(h, room, NOTICE_PROTOCOL, None)
    await answers_next_message(h, alice, room)


async def test_agent_duplicate_end(harness, autojump_clock):
    """User sees: the reply «this reply ends twice» exactly once, complete, no
    notice, no interrupted mark (the second END is ignored)."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "/dup-end")
    await h.settle(30)
    assert notices(h, room) == []
    texts = replies(h, room)[1:]
    assert texts == ["this reply ends twice"], texts
    await answers_next_message(h, alice, room)


async def test_agent_error_frame(harness, autojump_clock):
    """User sees: «Ошибка агента: QUOTA_EXCEEDED» (the agent's own code), no reply
    bubble; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "/error QUOTA_EXCEEDED")
    await h.settle(60)
    _assert_failed_turn(h, room, NOTICE_ERROR.format(code="QUOTA_EXCEEDED"), None)
    await answers_next_message(h, alice, room)


async def test_agent_error_frame_mid_stream(harness, autojump_clock):
    """User sees: the partial «thinking…» + «⚠️ (ответ прерван)» and «Ошибка агента:
    TOOL_CRASH»; the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)

    async def fail(ws, msg) -> None:
        await send(ws, "AGENT_EVENT_TEXT_CHUNK", text="thinking… ")
        await trio.sleep(2)
        await send(ws, "ERROR", code="TOOL_CRASH", details="boom")
        await _drain(ws)

    h.agent_handler = scripted_agent(fail)
    h.hs.text_as(alice, room, "do it")
    await h.settle(60)
    _assert_failed_turn(h, room, NOTICE_ERROR.format(code="TOOL_CRASH"), "thinking…")
    await answers_next_message(h, alice, room)


async def test_agent_slow_drip_idle_never_fires_total_does(harness, autojump_clock):
    """User sees: a reply dripping one tiny chunk per second keeps streaming past
    the idle deadline (5 s here) — it never fires while frames keep coming — until
    the total deadline (60 s): the partial reply (~60 chunks) + «⚠️ (ответ прерван)»
    and «Агент не отвечает (общее время). Попробуй ещё раз.»."""
    h = harness
    await h.restart(
        SURFACES_AGENTS__IDLE_TIMEOUT_S="5",
        SURFACES_AGENTS__FIRST_TEXT_TIMEOUT_S="10",
        SURFACES_AGENTS__TOTAL_TIMEOUT_S="60",
    )
    alice, room = await _onboarded(h)
    sent_at: list[float] = []

    async def drip(ws, msg) -> None:
        for i in range(1000):
            await send(ws, "AGENT_EVENT_TEXT_CHUNK", text=f"{i} ")
            sent_at.append(trio.current_time())
            await trio.sleep(1)
        await send(ws, "AGENT_EVENT_END")

    h.agent_handler = scripted_agent(drip)
    started = trio.current_time()
    h.hs.text_as(alice, room, "drip please")
    await h.settle(120)
    _assert_failed_turn(h, room, "Агент не отвечает (общее время). Попробуй ещё раз.", "0 1 2 3")
    text = replies(h, room)[1]
    assert " 50 " in text  # well past 5 × the idle deadline: idle did not fire
    assert len(sent_at) < 100  # the total deadline stopped it (the bot hung up)
    assert sent_at[-1] - started < 75
    await answers_next_message(h, alice, room)


async def test_agent_unknown_frames_and_tool_noise(harness, autojump_clock):
    """User sees: unknown frame types are ignored and tool progress never becomes
    final text: the reply is the normal echo / «The tools found 3 hits.»."""
    h = harness
    alice, room = await _onboarded(h)
    h.hs.text_as(alice, room, "/unknown")
    await h.settle(30)
    h.hs.text_as(alice, room, "/tools")
    await h.settle(30)
    texts = replies(h, room)[1:]
    assert len(texts) == 2, texts
    assert "«/unknown»" in texts[0]
    assert texts[1] == "The tools found 3 hits."
    assert notices(h, room) == []


async def test_agent_failure_keeps_staged_files(harness, autojump_clock):
    """User sees: after an agent failure the staged file is still listed by !list
    (files stay staged for the next turn)."""
    h = harness
    alice, room = await _onboarded(h)
    mxc = "mxc://test.local/abc"
    h.hs._media["abc"] = (b"hello file", "text/plain", "notes.txt")
    h.hs.send_as(
        alice,
        room,
        {"msgtype": "m.file", "body": "notes.txt", "url": mxc, "info": {"size": 10}},
    )
    # The file is written by a worker thread (real time) while the virtual clock
    # autojumps: wait in real time until the bot says the file is staged.
    for _ in range(100):
        if notices(h, room):
            break
        await trio.to_thread.run_sync(time.sleep, 0.02)
        await h.settle(1)
    assert "notes.txt" in notices(h, room)[-1], notices(h, room)
    h.connect_error = OSError(111, "Connection refused")
    h.hs.text_as(alice, room, "use the file")
    await h.settle(60)
    assert NOTICE_UNAVAILABLE in notices(h, room)
    h.connect_error = None
    h.hs.text_as(alice, room, "!list")
    await h.settle(10)
    assert "notes.txt" in notices(h, room)[-1]
    assert len(top_level_bot_messages(h, room)) >= 4


@pytest.mark.parametrize(
    "path_json",
    [
        '"/etc/passwd"',
        '"../outside.txt"',
        '"/workspace/nope.txt"',
        '"/workspace"',
        '"out"',
        '"out/\\u0000x"',
        '"\\ud800.txt"',
        '""',
    ],
    ids=[
        "abs-outside",
        "dotdot",
        "missing",
        "workspace-root",
        "directory",
        "nul",
        "surrogate",
        "empty",
    ],
)
async def test_agent_sends_hostile_file_path(harness, autojump_clock, path_json):
    """User sees: for a SEND_FILE path that is outside, missing, a directory, or not
    valid Unicode: one notice about the file, and the reply text «done» complete
    (no interrupted mark, no crash); the next message is answered."""
    h = harness
    alice, room = await _onboarded(h)
    (h.workspace / "out").mkdir(exist_ok=True)
    (h.workspace.parent / "outside.txt").write_text("secret")

    async def hostile(ws, msg) -> None:
        await ws.send_message(f'{{"type": "AGENT_EVENT_SEND_FILE", "path": {path_json}}}')
        await send(ws, "AGENT_EVENT_TEXT_CHUNK", text="done")
        await send(ws, "AGENT_EVENT_END")
        await _drain(ws)

    h.agent_handler = scripted_agent(hostile)
    h.hs.text_as(alice, room, "send me a file")
    await h.settle(60)
    media = [e for e in h.bot_events(room) if e["content"].get("msgtype") == "m.file"]
    assert media == []
    assert len(notices(h, room)) == 1, notices(h, room)
    assert replies(h, room)[1:] == ["done"], replies(h, room)
    await answers_next_message(h, alice, room)
