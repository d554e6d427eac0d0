"""The reference agent on real loopback sockets (real clock, port 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionRejected, wrap_client_stream

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
from agent_client.reference import (
    ReferenceAgent,
    cli_main,
    parse_behaviour,
    serve_reference_agent,
)

FAST = TurnLimits(connect_s=5, status_s=5, first_text_s=5, idle_s=5, total_s=20, retries=0)


@pytest.fixture
async def agent(nursery: trio.Nursery, tmp_path: Path) -> tuple[ReferenceAgent, str]:
    ref = ReferenceAgent(tmp_path, chunk_delay_s=0)
    port = await nursery.start(partial(serve_reference_agent, agent=ref), "127.0.0.1", 0, tmp_path)
    return ref, f"http://127.0.0.1:{port}"


async def ask(base: str, text: str, attachments=(), chat: str = "41", limits=FAST) -> list:
    async with AgentClient(limits).turn(base, chat, text, attachments) as turn:
        return [event async for event in turn]


def reply_text(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextChunk))


async def test_echo_and_memory(agent: tuple[ReferenceAgent, str]) -> None:
    ref, base = agent
    first = await ask(base, "hello there")
    assert sum(isinstance(e, TextChunk) for e in first) > 1  # streamed in chunks
    assert isinstance(first[-1], TurnEnd)
    assert first[-1].tokens_used
    text = reply_text(first)
    assert "Turn 1" in text
    assert "«hello there»" in text
    assert "first message" in text
    second = reply_text(await ask(base, "second one"))
    assert "Turn 2" in second
    assert "Previously you said: «hello there»" in second
    other_chat = reply_text(await ask(base, "elsewhere", chat="42"))
    assert "Turn 1" in other_chat
    assert ref.history == {"41": ["hello there", "second one"], "42": ["elsewhere"]}


async def test_attachments(agent: tuple[ReferenceAgent, str], tmp_path: Path) -> None:
    _, base = agent
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes(b"12345")
    text = reply_text(
        await ask(
            base, "see files", ["in/a.txt", "/workspace/in/a.txt", "nope.bin", "../etc/passwd"]
        )
    )
    assert "Attachments (4)" in text
    assert "in/a.txt (5 bytes)" in text
    assert "/workspace/in/a.txt (5 bytes)" in text
    assert "nope.bin (missing)" in text
    assert "../etc/passwd (outside the workspace, refused)" in text


async def test_send_file(agent: tuple[ReferenceAgent, str], tmp_path: Path) -> None:
    _, base = agent
    events = await ask(base, "/file report.txt hello file")
    assert SendFile("/workspace/out/report.txt") in events
    assert (tmp_path / "out" / "report.txt").read_text() == "hello file\n"


async def test_bad_file_name_is_agent_error(agent: tuple[ReferenceAgent, str]) -> None:
    _, base = agent
    with pytest.raises(AgentFailure) as info:
        await ask(base, "/file ../escape.txt")
    assert (info.value.code, info.value.agent_code) == (AGENT_ERROR, "BAD_FILE_NAME")


async def test_prefix_layout(agent: tuple[ReferenceAgent, str]) -> None:
    _, base = agent
    events = await ask(f"{base}/agent_0", "/instant")
    assert events == [TextChunk("ok"), TurnEnd(1)]
    events = await ask(f"{base}/a/b/v1/agent_ws/123/", "/instant")  # pasted endpoint
    assert events[-1] == TurnEnd(1)


async def test_unknown_path_rejected(agent: tuple[ReferenceAgent, str]) -> None:
    _, base = agent
    port = int(base.rsplit(":", 1)[1])
    for path in ("/other/41/", "/v1/agent_ws/", "/v1/agent_ws/41/extra/"):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            with pytest.RaisesGroup(ConnectionRejected) as rejected:
                async with trio.open_nursery() as nursery:
                    await wrap_client_stream(nursery, stream, f"127.0.0.1:{port}", path)
            assert rejected.value.exceptions[0].status_code == 404
        finally:
            await stream.aclose()


async def test_scripted_behaviours(agent: tuple[ReferenceAgent, str]) -> None:
    _, base = agent
    tools = await ask(base, "/tools 0")
    assert [e.kind for e in tools if isinstance(e, ToolProgress)] == [
        "AGENT_EVENT_TOOL_CALL_CHUNK",
        "AGENT_EVENT_TOOL_RESULT",
        "AGENT_EVENT_CUSTOM_UPDATE",
    ]
    assert (await ask(base, "/dup-end"))[-1] == TurnEnd(4)
    chunks = await ask(base, "/chunks 25")
    assert len(chunks) == 26
    assert len(reply_text(await ask(base, "/long 5000"))) == 5000
    assert reply_text(await ask(base, "/slow 0.01 3")) == "slow 1/3 slow 2/3 slow 3/3 "
    unknown = await ask(base, "/unknown")
    assert "Turn" in reply_text(unknown)
    assert "/confirm" in reply_text(await ask(base, "/help"))


@pytest.mark.parametrize(
    ("text", "code", "detail"),
    [
        ("/error QUOTA", AGENT_ERROR, "QUOTA"),
        ("/disconnect", AGENT_DISCONNECTED, None),
        ("/graceful", AGENT_DISCONNECTED, None),
        ("/garbage", AGENT_PROTOCOL_ERROR, None),
        ("/big 3000", AGENT_PROTOCOL_ERROR, None),
    ],
)
async def test_scripted_failures(
    agent: tuple[ReferenceAgent, str], text: str, code: str, detail: str | None
) -> None:
    _, base = agent
    limits = TurnLimits(
        connect_s=5, status_s=5, first_text_s=5, idle_s=5, total_s=20, retries=0,
        max_frame_bytes=2000,
    )  # fmt: skip
    with pytest.raises(AgentFailure) as info:
        await ask(base, text, limits=limits)
    assert info.value.code == code
    if detail:
        assert info.value.agent_code == detail


async def test_silent_is_first_text_timeout(agent: tuple[ReferenceAgent, str]) -> None:
    _, base = agent
    limits = TurnLimits(first_text_s=0.3, retries=0)
    with pytest.raises(AgentFailure) as info:
        await ask(base, "/silent", limits=limits)
    assert (info.value.code, info.value.phase) == (AGENT_TIMEOUT, "first_text")


async def test_no_status_message_arms_next_connection(agent: tuple[ReferenceAgent, str]) -> None:
    _, base = agent
    await ask(base, "/no-status")
    with pytest.raises(AgentFailure) as info:
        await ask(base, "hello", limits=TurnLimits(status_s=0.3, retries=0))
    assert (info.value.code, info.value.phase) == (AGENT_TIMEOUT, "status")
    assert (await ask(base, "/instant"))[-1] == TurnEnd(1)  # one-shot


async def test_no_status_server_option(nursery: trio.Nursery, tmp_path: Path) -> None:
    serve = partial(serve_reference_agent, behaviour="no-status")
    port = await nursery.start(serve, "127.0.0.1", 0, tmp_path)
    with pytest.raises(AgentFailure) as info:
        await ask(
            f"http://127.0.0.1:{port}",
            "/instant",
            limits=TurnLimits(status_s=0.3, retries=1, retry_base_s=0.05),
        )
    assert (info.value.code, info.value.phase, info.value.attempts) == (AGENT_TIMEOUT, "status", 2)


async def test_default_behaviour_option(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = await nursery.start(
        partial(serve_reference_agent, behaviour="instant"), "127.0.0.1", 0, tmp_path
    )
    assert await ask(f"http://127.0.0.1:{port}", "anything") == [TextChunk("ok"), TurnEnd(1)]


@pytest.mark.parametrize(("approved", "reply"), [(True, "approved"), (False, "declined")])
async def test_confirm(agent: tuple[ReferenceAgent, str], approved: bool, reply: str) -> None:
    _, base = agent
    async with AgentClient(FAST).turn(base, "41", "/confirm") as turn:
        events = []
        async for event in turn:
            events.append(event)
            if isinstance(event, ConfirmRequest):
                await turn.confirm(event.id, approved)
    assert isinstance(events[0], ConfirmRequest)
    assert events[1:] == [TextChunk(reply), TurnEnd(1)]


async def test_connection_refused(tmp_path: Path) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(AgentFailure) as info:
        await ask(f"http://127.0.0.1:{port}", "hi", limits=TurnLimits(retries=1, retry_base_s=0.01))
    assert (info.value.code, info.value.attempts) == (AGENT_UNAVAILABLE, 2)


async def test_cancel_on_real_socket(agent: tuple[ReferenceAgent, str]) -> None:
    ref, base = agent
    with trio.move_on_after(0.3):
        async with AgentClient(FAST).turn(base, "41", "/slow 0.05 1000") as turn:
            async for _ in turn:
                assert ref.active_sessions == 1
    with trio.fail_after(2):  # the server's handler ends promptly: the client closed
        await ref.wait_idle()
    # the server notices the close and its handler ends; a fresh turn still works
    assert (await ask(base, "/instant"))[-1] == TurnEnd(1)


def test_parse_behaviour() -> None:
    assert parse_behaviour("/chunks 5") == ("chunks", ["5"])
    assert parse_behaviour("slow 0.5") == ("slow", ["0.5"])
    assert parse_behaviour("/nonsense") is None
    assert parse_behaviour("") is None
    with pytest.raises(ValueError, match="unknown behaviour"):
        ReferenceAgent(Path("."), behaviour="bogus")


def test_cli_ctrl_c_exits_zero(tmp_path: Path) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_client.reference",
            "--port",
            "0",
            "--workspace",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(2)]  # log line + banner
            assert any("reference agent listening on ws://127.0.0.1:" in ln for ln in lines)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:  # pragma: no cover
                proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    assert cli_main(["--workspace", str(tmp_path / "missing")]) == 2
    assert cli_main(["--workspace", str(tmp_path), "--behaviour", "bogus"]) == 2
