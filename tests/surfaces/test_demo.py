"""``surfaces demo --once`` end to end: a real Synapse on loopback, the reference
agent and the bot, driven by the scripted demo user, as a subprocess.

Measured: about 20 s on a developer machine (Synapse start ~2-3 s, the scripted
conversation ~12 s, shutdown ~3 s); the timeout is generous for slow CI runners.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180

STEPS = [
    "direct chat: create it and invite the bot",
    "workspace: the Space and the first chat appear",
    "a message gets a streamed reply",
    "!new creates a second chat",
    "a file goes to the agent with the next turn",
    "the agent sends a file back (/file report.txt)",
    "!chats lists the chats",
]


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
    for n, title in enumerate(STEPS, start=1):
        assert f"✓ [{n}] {title}" in out, details
    assert "✗" not in out, details
    # The transcript shows the conversation, not the bot's logs.
    expected = [
        "bot (streaming):",
        "bot (final):",
        "Attachments (1): incoming/notes.txt",
        "bot (m.file): report.txt",
        "downloaded",
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
