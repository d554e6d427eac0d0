"""Starts and stops an operator can trust (issue 13 §6), through the whole bot.

Deterministic cases (harness, virtual time): a homeserver that is down, answers 5xx
or shows a proxy's page while the bot starts is waited for, each attempt logged;
credentials it rejects end the start at once. Process cases (the real
``python -m surfaces run``, no homeserver at all): a signal during start-up, two
bots on one state directory, a state directory that is a file, a database newer
than the code — each one line and its exit code, never a traceback.

Each docstring says what the user (or the operator) sees.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
import structlog.testing
import trio
from fault_helpers import answers_next_message, outage

from matrix_client.testing import FakeHomeserver, Fault
from surfaces.app import BotApp
from surfaces.config import load_config, load_registry
from surfaces.session import LoginRejected
from surfaces.state import LOCK_NAME, Store
from surfaces.state._schema import MIGRATIONS


async def _stop(h) -> None:
    h.app.request_stop()
    await h.app_done.wait()


def _waits(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e["event"] == "homeserver_unavailable_at_start"]


@pytest.mark.parametrize(
    "fault",
    [Fault.connect_error(), Fault.http_status(503), Fault.http_status(404)],
    ids=["unreachable", "503", "proxy-404-page"],
)
async def test_homeserver_down_30s_at_start_is_waited_for(harness, autojump_clock, fault):
    """Operator sees: ``homeserver_unavailable_at_start`` lines (attempt, next delay,
    growing to a 30 s cap) instead of a crash loop; the bot comes up on its own once
    the homeserver answers. User sees: a message sent during the outage answered."""
    h = harness
    alice = h.user("alice", displayname="Alice")
    _, _, room = await h.onboard(alice)
    await _stop(h)
    sent_during = h.hs.text_as(alice, room, "sent while everything was down")
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outage, h.hs, 30.0, fault)
            await trio.lowlevel.checkpoint()
            await h.start()
    waits = _waits(logs)
    assert waits, "no attempt was logged"
    assert [w["attempt"] for w in waits] == list(range(1, len(waits) + 1))
    assert {w["step"] for w in waits} == {"login"}
    delays = [w["next_delay_s"] for w in waits]
    assert delays == sorted(delays)
    assert max(delays) <= 30
    assert "bot_started" in [e["event"] for e in logs]
    await h.settle(10)
    assert "sent while everything was down" in h.bot_texts(room)[-1]
    assert await h.app.store.inbox_status(sent_during) == "done"
    await answers_next_message(h, alice, room)


async def test_reconcile_waits_for_the_homeserver_too(harness, autojump_clock):
    """With a lost database and room state answering 502 for a while, reconciliation
    is retried as a whole (it is idempotent), never half-done: every chat comes back."""
    h = harness
    alice = h.user("alice", displayname="Alice")
    _, space, room = await h.onboard(alice)
    await _stop(h)
    for path in h.state_dir.glob("surfaces.db*"):
        path.unlink()
    h.hs.inject("GET", "/_matrix/client/v3/rooms/*/state", Fault.http_status(502), repeat=40)
    with structlog.testing.capture_logs() as logs:
        await h.start()
    assert {w["step"] for w in _waits(logs)} == {"reconcile"}
    [report] = [e for e in logs if e["event"] == "state_reconciled"]
    assert (report["chats"], report["spaces"], report["errors"]) == (1, 1, 0)
    assert (await h.app.store.get_chat(room)).local_id == "C1"
    assert (await h.app.store.get_user(alice.user_id)).space_id == space


async def test_rejected_password_ends_the_start_at_once(tmp_path: Path, autojump_clock):
    """Operator sees: one fatal error naming the credentials (exit 3 from the CLI),
    no retries: waiting does not fix a wrong password."""
    hs = FakeHomeserver()
    bot = hs.register("bot")
    environ = {
        "MATRIX_HOMESERVER": hs.base_url,
        "MATRIX_USER_ID": bot.user_id,
        "MATRIX_PASSWORD": "wrong",
        "AGENT_BASE_URL": "http://agent.test/",
        "SURFACES_WORKSPACE_DIR": str(tmp_path),
        "SURFACES_STATE_DIR": str(tmp_path / "state"),
    }
    config = load_config(None, environ)
    registry = load_registry(None, default_base_url="http://agent.test/", workspace_dir="/x")
    app = BotApp(config, registry, transport=httpx.MockTransport(hs.handle), store_inline=True)
    rejected = pytest.raises(LoginRejected, match="M_FORBIDDEN")
    with structlog.testing.capture_logs() as logs, rejected:
        await app.run()
    assert _waits(logs) == []
    assert len(hs.requests_to("POST", "/login")) == 1


# ---- the real process --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, state: Path, **extra: str) -> dict[str, str]:
    """A bot whose homeserver never answers (a loopback port nobody listens on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATRIX_", "SURFACES_"))}
    env.update(
        {
            "MATRIX_HOMESERVER": f"http://127.0.0.1:{_free_port()}",
            "MATRIX_USER_ID": "@bot:nowhere.test",
            "MATRIX_PASSWORD": "pw",
            "AGENT_BASE_URL": "http://127.0.0.1:9/",
            "SURFACES_WORKSPACE_DIR": str(tmp_path),
            "SURFACES_STATE_DIR": str(state),
            "SURFACES_LOG__FORMAT": "json",
            **extra,
        }
    )
    return env


async def _run(env: dict[str, str], limit_s: float = 30.0) -> tuple[int, str]:
    """``surfaces run`` to completion → (exit code, stderr)."""
    with trio.fail_after(limit_s):
        done = await trio.run_process(
            [sys.executable, "-m", "surfaces", "run"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return done.returncode, done.stderr.decode(errors="replace")


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _wait_for(log: Path, needle: str, process: trio.Process, limit_s: float = 30.0) -> None:
    with trio.fail_after(limit_s):
        while needle not in _read(log):
            assert process.returncode is None, _read(log)
            await trio.sleep(0.05)


def _one_line(stderr: str) -> str:
    """The one human line on stderr (the rest are the JSON log's lines), no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    human = [line for line in lines if not line.startswith("{")]
    assert len(human) == 1, stderr
    assert human[0].startswith("surfaces: fatal: "), stderr
    return human[0]


async def test_signal_while_waiting_for_the_homeserver_second_bot_and_readyz(tmp_path: Path):
    """Operator sees, while the bot waits for a homeserver that does not answer:
    ``/readyz`` 503 "starting up" (the ops server is up first); a second ``surfaces
    run`` on the same state directory exits 4 naming the lock file; SIGTERM ends the
    waiting bot at once with exit 0."""
    state = tmp_path / "state"
    ops_port = _free_port()
    env = _env(
        tmp_path,
        state,
        SURFACES_OPS__ENABLED="true",
        SURFACES_OPS__PORT=str(ops_port),
    )
    log = tmp_path / "first.log"
    with log.open("wb") as out:
        first = await trio.lowlevel.open_process(
            [sys.executable, "-m", "surfaces", "run"], env=env, stdout=out, stderr=out
        )
    try:
        await _wait_for(log, "homeserver_unavailable_at_start", first)
        async with httpx.AsyncClient() as http:
            with trio.fail_after(10):
                ready = await http.get(f"http://127.0.0.1:{ops_port}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["startup"]["detail"] == "starting up"

        code, stderr = await _run(_env(tmp_path, state))
        assert code == 4
        line = _one_line(stderr)
        assert str(state / LOCK_NAME) in line
        assert f"pid {first.pid}" in line

        started = trio.current_time()
        first.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await first.wait() == 0
        stopped_after = trio.current_time() - started
        print(f"SIGTERM during start-up: exited after {stopped_after:.3f} s")
        assert "stopped_during_start_up" in _read(log)
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()


async def test_state_dir_that_is_a_file_exits_2_with_one_line(tmp_path: Path):
    """Operator sees: ``surfaces: fatal: state directory … is not a directory``, exit 2."""
    state = tmp_path / "state"
    state.write_text("oops")
    code, stderr = await _run(_env(tmp_path, state))
    assert code == 2
    assert "not a directory" in _one_line(stderr)


async def test_database_newer_than_the_code_exits_2_with_one_line(tmp_path: Path):
    """Operator sees: ``… has schema version N, newer than this build knows …``, exit 2;
    the database is left as it was."""
    state = tmp_path / "state"
    Store.open_sync(state / "surfaces.db").close()
    conn = sqlite3.connect(state / "surfaces.db")
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    code, stderr = await _run(_env(tmp_path, state))
    assert code == 2
    assert "newer than this build" in _one_line(stderr)
