"""``surfaces demo``: its parts on their own (transcript, credentials, the order of the
script), then ``surfaces demo --once`` end to end: a real Synapse on loopback, the
reference agent and the bot, driven by the scripted demo user, as a subprocess.

Measured: about 20 s on a developer machine (Synapse start ~2-3 s, the scripted
conversation ~12 s, shutdown ~3 s); the timeout is generous for slow CI runners.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from surfaces.demo import DemoOptions, main, run_demo
from surfaces.demo._credentials import Credentials
from surfaces.demo._run import error_lines
from surfaces.demo._script import STEPS, Step, play_script
from surfaces.demo._transcript import StepFailed, Transcript

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180

STEPS_SHOWN = [
    "direct chat: create it and invite the bot",
    "workspace: the Space and the first chat appear",
    "a message gets a streamed reply",
    "!new creates a second chat",
    "a file goes to the agent with the next turn",
    "the agent sends a file back (/file report.txt)",
    "!chats lists the chats",
]


def test_the_package_exports_the_cli_entry() -> None:
    assert callable(main)
    assert callable(run_demo)
    assert DemoOptions().locale == "ru"
    assert [step.title for step in STEPS] == STEPS_SHOWN


async def test_a_step_prints_its_outcome_and_a_failure_names_the_step(autojump_clock) -> None:
    out = io.StringIO()
    tr = Transcript(out)
    with tr.step("first"):
        tr.detail("two\nlines")
    with pytest.raises(StepFailed, match=r"^second$"), tr.step("second"):
        raise StepFailed("the bot sent no reply")
    with pytest.raises(StepFailed, match=r"^third$"), tr.step("third", deadline_s=2):
        await trio.sleep_forever()
    with pytest.raises(StepFailed, match=r"^fourth$"), tr.step("fourth"):
        raise KeyError("room")
    text = out.getvalue()
    assert "→ [1] first\n    two\n      lines\n  ✓ [1] first (" in text
    assert "  ✗ [2] second: the bot sent no reply" in text
    assert "  ✗ [3] third: no result within 2 s" in text
    assert "  ✗ [4] fourth: KeyError: 'room'" in text
    assert [(title, ok) for title, ok, _ in tr.results] == [
        ("first", True),
        ("second", False),
        ("third", False),
        ("fourth", False),
    ]


async def test_the_script_stops_at_the_first_failing_step() -> None:
    ran: list[str] = []

    def step(title: str, fail: bool = False) -> Step:
        async def run(c: Any) -> None:
            ran.append(title)
            if fail:
                raise StepFailed("no")

        return Step(title, run)

    conversation: Any = type("C", (), {"tr": Transcript(io.StringIO())})()
    with pytest.raises(StepFailed, match=r"^b$"):
        await play_script(conversation, (step("a"), step("b", fail=True), step("c")))
    assert ran == ["a", "b"]


def test_credentials_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first = Credentials.load(path).password("demo")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Credentials.load(path)
    assert again.password("demo") == first
    assert again.password("demo2") != first
    path.write_text('["not", "an", "object"]')
    with pytest.raises(ValueError, match="localpart -> password"):
        Credentials.load(path)


def test_error_lines_pick_errors_and_exception_lines(tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    log.write_text(
        "2026-01-01 [info     ] matrix_logged_in\n"
        "2026-01-01 [error    ] turn_failed room=!r\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1\n'
        "ValueError: bad frame\n"
    )
    assert error_lines(log) == [
        "2026-01-01 [error    ] turn_failed room=!r",
        "ValueError: bad frame",
    ]
    assert error_lines(tmp_path / "missing.log") == []


@pytest.mark.slow
def test_demo_once_runs_every_step(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "surfaces", "demo", "--once", "--state-dir", str(state)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    elapsed = time.monotonic() - began
    out = proc.stdout
    log = state / "bot.log"
    details = (
        f"exit {proc.returncode} after {elapsed:.1f} s\n--- stdout ---\n{out}\n"
        f"--- stderr ---\n{proc.stderr[-4000:]}\n--- bot.log (tail) ---\n"
        + ("\n".join(log.read_text().splitlines()[-60:]) if log.exists() else "(none)")
    )
    assert proc.returncode == 0, details
    for n, title in enumerate(STEPS_SHOWN, start=1):
        assert f"✓ [{n}] {title}" in out, details
    assert "✗" not in out, details
    # The transcript shows the conversation, not the bot's logs.
    expected = [
        # Encrypted by default, end to end: the user's device and the bot's.
        "end-to-end encryption on, device SURFACES",
        "«Чат 1» is end-to-end encrypted (m.megolm.v1.aes-sha2) 🔒",
        "you 🔒: ",
        "bot (streaming) 🔒:",
        "bot (final) 🔒:",
        "Attachments (1): incoming/notes.txt",
        "you: encrypt notes.txt",
        "bot (m.file) 🔒: report.txt",
        "downloaded and decrypted (SHA-256 checked)",
        "Создан чат:",
        "Твои чаты:",
        "all 7 steps succeeded",
        "Synapse stopped",
    ]
    for text in expected:
        assert text in out, details
    assert "matrix_logged_in" not in out, details
    assert log.exists(), details
    # Synapse is gone: its pid file is removed on a clean exit.
    assert not (state / "synapse" / "homeserver.pid").exists(), details
    # A given --state-dir is kept (reusable).
    assert (state / "credentials.json").exists()
