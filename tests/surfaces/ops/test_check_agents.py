"""surfaces check-agents against the reference agent on loopback."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio

from agent_client import TurnLimits
from agent_client.reference import serve_reference_agent
from surfaces.agents import Thresholds
from surfaces.ops import check_agents as ca


@attrs.frozen
class Spec:
    id: str
    label: str
    base_url: str
    workspace_path: Path = Path()


LIMITS = TurnLimits(connect_s=2, status_s=0.5, first_text_s=2, idle_s=2, total_s=5)


async def start_agent(nursery: trio.Nursery, workspace: Path, behaviour: str | None = None) -> str:
    serve = partial(serve_reference_agent, behaviour=behaviour, chunk_delay_s=0)
    port = await nursery.start(serve, "127.0.0.1", 0, workspace)
    return f"http://127.0.0.1:{port}"


def free_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_check_agents_stages(nursery: trio.Nursery, tmp_path: Path) -> None:
    good = await start_agent(nursery, tmp_path)
    mute = await start_agent(nursery, tmp_path, behaviour="no-status")
    specs = [
        Spec("good", "Good", f"{good}/agent_0"),
        Spec("mute", "Mute", mute),
        Spec("down", "Down", free_port_url()),
    ]
    results = await ca.check_agents(specs, timeout_s=5, message=None, limits=LIMITS)
    assert [(r.agent_id, r.ok, r.stage, r.state) for r in results] == [
        ("good", True, "status", "online"),
        ("mute", False, "connected", "offline"),
        ("down", False, "none", "offline"),
    ]
    assert [r.platform_chat_id for r in results] == ["999000000000", "999000000001", "999000000002"]
    assert results[0].connect_ms is not None
    assert results[0].status_ms is not None
    assert results[0].turn_ms is None
    assert "AGENT_TIMEOUT(status)" in (results[1].error or "")
    assert "AGENT_UNAVAILABLE" in (results[2].error or "")
    table = ca.format_table(results)
    assert "good" in table
    assert "FAIL" in table
    assert table.splitlines()[-1] == "1/3 agents ok"


async def test_check_agents_with_message(nursery: trio.Nursery, tmp_path: Path) -> None:
    good = await start_agent(nursery, tmp_path)
    erring = await start_agent(nursery, tmp_path, behaviour="error")
    specs = [Spec("good", "Good", good), Spec("erring", "Erring", erring)]
    results = await ca.check_agents(specs, timeout_s=5, message="ping", limits=LIMITS)
    ok, bad = results
    assert (ok.ok, ok.stage) == (True, "turn")
    assert ok.turn_ms is not None
    assert ok.first_text_ms is not None
    assert ok.reply_preview is not None
    assert "«ping»" in ok.reply_preview
    assert (bad.ok, bad.stage) == (False, "status")
    assert "AGENT_ERROR[REFERENCE_ERROR]" in (bad.error or "")


async def test_check_timeout_bounds_the_whole_check(nursery: trio.Nursery, tmp_path: Path) -> None:
    slow = await start_agent(nursery, tmp_path, behaviour="slow 0.2 100")
    results = await ca.check_agents(
        [Spec("slow", "Slow", slow)], timeout_s=0.5, message="hi", limits=LIMITS
    )
    (result,) = results
    assert (result.ok, result.stage) == (False, "status")
    assert "AGENT_TIMEOUT(total)" in (result.error or "")


def run_agent_in_thread(tmp_path: Path, behaviour: str | None = None):
    """The CLI runs its own trio.run, so serve the agent from another thread."""
    import threading

    started: list[int] = []
    ready = threading.Event()
    stop: list[trio.CancelScope] = []
    token: list[trio.lowlevel.TrioToken] = []

    async def serve() -> None:
        token.append(trio.lowlevel.current_trio_token())
        with trio.CancelScope() as scope:
            stop.append(scope)
            async with trio.open_nursery() as nursery:
                started.append(
                    await nursery.start(
                        partial(serve_reference_agent, behaviour=behaviour),
                        "127.0.0.1",
                        0,
                        tmp_path,
                    )
                )
                ready.set()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert ready.wait(10)

    def shutdown() -> None:
        trio.from_thread.run_sync(stop[0].cancel, trio_token=token[0])
        thread.join(10)

    return f"http://127.0.0.1:{started[0]}", shutdown


def json_rows(out: str) -> list[dict]:
    """The JSON array in ``out`` (the agent thread's log lines may surround it)."""
    lines = out.splitlines()
    start = lines.index("[")
    end = lines.index("]", start)
    return json.loads("\n".join(lines[start : end + 1]))


def test_main_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, shutdown = run_agent_in_thread(tmp_path)
    try:
        assert ca.main(["--base-url", url, "--json", "--message", "hi"]) == 0
        (row,) = json_rows(capsys.readouterr().out)
        assert (row["agent_id"], row["ok"], row["stage"]) == ("adhoc", True, "turn")
        assert ca.main(["--base-url", url]) == 0
        out = capsys.readouterr().out
        assert "1/1 agents ok" in out
        assert "STAGE" in out
    finally:
        shutdown()
    assert ca.main(["--base-url", free_port_url(), "--timeout", "2"]) == 1
    assert "0/1 agents ok" in capsys.readouterr().out


def test_main_with_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, shutdown = run_agent_in_thread(tmp_path)
    for var in ("SURFACES_CONFIG", "MATRIX_AGENT_REGISTRY_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGENT_BASE_URL", url)
    monkeypatch.setenv("SURFACES_WORKSPACE_DIR", str(tmp_path))
    monkeypatch.setenv("MATRIX_HOMESERVER", "http://127.0.0.1:1")
    monkeypatch.setenv("MATRIX_USER_ID", "@bot:localhost")
    monkeypatch.setenv("MATRIX_PASSWORD", "x")
    try:
        code = ca.main(["--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        (row,) = json_rows(captured.out)
        assert (row["agent_id"], row["stage"]) == ("default", "status")
        assert ca.main(["--agent", "nope"]) == 2
    finally:
        shutdown()


def test_presence_of_a_slow_status_is_away() -> None:
    base = {"agent_id": "a", "label": "A", "base_url": "http://x", "platform_chat_id": "1"}
    slow = ca.AgentCheckResult(**base, ok=True, stage="status", connect_ms=3.0, status_ms=6003.0)
    fast = attrs.evolve(slow, status_ms=40.0)
    assert ca.presence_of(slow, Thresholds(away_status_s=5.0)) == "away"
    assert ca.presence_of(fast, Thresholds(away_status_s=5.0)) == "online"
    table = ca.format_table([attrs.evolve(slow, state="away")])
    assert table.splitlines()[0].split()[:3] == ["AGENT", "RESULT", "STATE"]
    assert table.splitlines()[1].split()[:3] == ["a", "ok", "away"]
