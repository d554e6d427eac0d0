"""The bot as a real subprocess (``python -m surfaces run``), for crash/restart tests.

Configuration comes from environment variables only, as in a container. Logs are
JSON (``SURFACES_LOG__FORMAT=json``) and go to one file per start (``bot-<n>.log``
in ``log_dir``), so a test can wait for ``bot_started`` of *this* start and show
the right log tail when something fails::

    bot = BotProcess(env=bot_env(...), log_dir=tmp_path)
    await bot.start()            # returns once the process logged ``bot_started``
    await bot.kill()             # SIGKILL, reaped
    await bot.start()            # same state dir, same device: a restart
    code = await bot.terminate() # SIGTERM → exit code
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import trio

READY_EVENT = "bot_started"
POLL_S = 0.05
_ENV_PREFIXES = ("MATRIX_", "SURFACES_", "AGENT_")


def bot_env(
    *,
    homeserver: str,
    user_id: str,
    password: str,
    agent_base_url: str,
    workspace_dir: Path,
    state_dir: Path,
    device_id: str = "SURFACESBOT",
    **extra: str,
) -> dict[str, str]:
    """The bot's environment: the deployment's variable names plus ``extra``
    (``SURFACES_<SECTION>__<FIELD>`` overrides)."""
    env = {
        "MATRIX_HOMESERVER": homeserver,
        "MATRIX_USER_ID": user_id,
        "MATRIX_PASSWORD": password,
        "MATRIX_DEVICE_ID": device_id,
        "AGENT_BASE_URL": agent_base_url,
        "SURFACES_WORKSPACE_DIR": str(workspace_dir),
        "SURFACES_STATE_DIR": str(state_dir),
        "SURFACES_LOG__FORMAT": "json",
        "SURFACES_LOG__LEVEL": "info",
    }
    env.update(extra)
    return env


class BotExitedError(RuntimeError):
    """The bot process exited (or never became ready) when it should be running."""


@attrs.define
class BotProcess:
    env: dict[str, str]
    log_dir: Path
    cwd: Path | None = None
    starts: int = 0
    process: trio.Process | None = None
    log_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _full_env(self) -> dict[str, str]:
        # The parent's environment minus anything that configures a bot, plus ours.
        base = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
        base.update(self.env)
        base["PYTHONUNBUFFERED"] = "1"
        return base

    async def start(self, *, ready_timeout_s: float = 60.0) -> None:
        """Start the bot and return once this start logged ``bot_started``.

        Raises:
            BotExitedError: the process exited, or was not ready in time.
        """
        if self.running():
            raise RuntimeError("the bot is already running")
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"bot-{self.starts}.log"
        with self.log_path.open("wb") as log_file:
            self.process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "surfaces", "run"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._full_env(),
                cwd=str(self.cwd or self.log_dir),
            )
        with trio.move_on_after(ready_timeout_s):
            while not self.logged(READY_EVENT):
                if self.process.poll() is not None:
                    raise BotExitedError(
                        f"bot exited with code {self.process.returncode} before "
                        f"{READY_EVENT}:\n{self.log_tail()}"
                    )
                await trio.sleep(POLL_S)
            return
        await self.kill()
        raise BotExitedError(f"bot not ready within {ready_timeout_s:g} s:\n{self.log_tail()}")

    async def kill(self) -> None:
        """SIGKILL and reap (no-op when not running)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await process.wait()

    async def terminate(self, *, timeout_s: float) -> int | None:
        """SIGTERM, wait up to ``timeout_s``; the exit code, or None if still running
        (the process is then killed, so nothing outlives the test)."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(timeout_s):
            return await process.wait()
        await self.kill()
        return None

    # ---- logs --------------------------------------------------------------------

    def log_text(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no output)"

    def events(self) -> list[dict[str, Any]]:
        """This start's JSON log lines (lines that are not JSON are skipped)."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def logged(self, event: str) -> bool:
        # Cheap pre-check before parsing: the event name appears verbatim.
        if event not in self.log_text():
            return False
        return any(record.get("event") == event for record in self.events())
