"""Small helpers for the process fault tests: the bot as a child process, and
Matrix users on a real homeserver (plain httpx, no matrix_client, so a bug there
cannot hide a bug in the bot)."""

from __future__ import annotations

import os
import re
import signal
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import trio

C3 = "/_matrix/client/v3"
YOU_SAID = re.compile(r"You said: «([^»]*)»")


@attrs.define
class BotProcess:
    """``python -m surfaces run`` with env config; SIGKILL and restart at will."""

    env: dict[str, str]
    log_dir: Path
    process: trio.Process | None = None
    starts: int = 0

    async def start(self) -> None:
        assert self.process is None or self.process.returncode is not None
        self.starts += 1
        out = (self.log_dir / f"bot-{self.starts}.log").open("wb")
        try:
            self.process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "surfaces", "run"],
                env={**os.environ, **self.env},
                stdin=None,
                stdout=out,
                stderr=out,
            )
        finally:
            out.close()

    def log(self, n: int | None = None) -> str:
        return (self.log_dir / f"bot-{n or self.starts}.log").read_text(errors="replace")

    async def wait_started(self, limit_s: float = 30.0) -> None:
        """Until this run logged ``bot_started`` (or fail with its log)."""
        with trio.move_on_after(limit_s):
            while "bot_started" not in self.log():
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(f"bot exited {self.process.returncode}:\n{self.log()}")
                await trio.sleep(0.05)
            return
        raise AssertionError(f"bot did not start in {limit_s} s:\n{self.log()[-3000:]}")

    async def kill(self) -> None:
        """SIGKILL (no graceful path) and reap."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, limit_s: float = 30.0) -> int:
        """SIGTERM, wait (SIGKILL after ``limit_s``); returns the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(limit_s):
                return await self.process.wait()
            self.process.send_signal(signal.SIGKILL)
        return await self.process.wait()


@attrs.define
class User:
    """A Matrix user on the real homeserver, talking plain client-server API."""

    http: httpx.AsyncClient
    user_id: str
    token: str
    dm: str | None = None
    space: str | None = None
    room: str | None = None
    since: str | None = None
    sent: dict[str, str] = attrs.Factory(dict)  # event id -> body

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(8):  # the test's own client rides out short hiccups
            try:
                r = await self.http.request(method, path, headers=self._auth(), **kwargs)
            except httpx.TransportError:
                await trio.sleep(0.2 * (attempt + 1))
                continue
            if r.status_code == 429 or r.status_code >= 500:
                await trio.sleep(0.2 * (attempt + 1))
                continue
            r.raise_for_status()
            return r.json()
        raise AssertionError(f"{method} {path} kept failing")

    async def create_dm(self, bot_id: str) -> str:
        body = {"preset": "trusted_private_chat", "is_direct": True, "invite": [bot_id]}
        self.dm = (await self.call("POST", f"{C3}/createRoom", json=body))["room_id"]
        return self.dm

    async def accept_workspace(self, limit_s: float = 90.0) -> None:
        """Join the invites the bot sends (Space + first chat) and note which is which."""
        with trio.fail_after(limit_s):
            while self.room is None or self.space is None:
                params = {"timeout": "5000"}
                if self.since:
                    params["since"] = self.since
                sync = await self.call("GET", f"{C3}/sync", params=params, timeout=30)
                self.since = sync["next_batch"]
                for room_id in (sync.get("rooms") or {}).get("invite", {}):
                    await self.call("POST", f"{C3}/join/{quote(room_id)}", json={})
                    create = await self.call(
                        "GET", f"{C3}/rooms/{quote(room_id)}/state/m.room.create/"
                    )
                    if create.get("type") == "m.space":
                        self.space = room_id
                    else:
                        self.room = room_id

    async def say(self, body: str) -> str:
        assert self.room is not None
        txn = uuid.uuid4().hex
        content = {"msgtype": "m.text", "body": body}
        path = f"{C3}/rooms/{quote(self.room)}/send/m.room.message/{txn}"
        event_id = (await self.call("PUT", path, json=content))["event_id"]
        self.sent[event_id] = body
        return event_id

    async def room_events(self) -> list[dict[str, Any]]:
        """Every event of the working room, oldest first."""
        assert self.room is not None
        events: list[dict[str, Any]] = []
        params: dict[str, str] = {"dir": "f", "limit": "1000"}
        while True:
            page = await self.call("GET", f"{C3}/rooms/{quote(self.room)}/messages", params=params)
            events.extend(page.get("chunk", []))
            if not page.get("chunk") or "end" not in page:
                return events
            params["from"] = page["end"]


def visible_bot_messages(events: list[dict[str, Any]], bot_id: str) -> list[dict[str, Any]]:
    """The bot's message bubbles as a client shows them (latest edit applied,
    redacted ones dropped), each with ``event_id``."""
    shown: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    redacted = {
        e.get("redacts") or (e.get("content") or {}).get("redacts")
        for e in events
        if e["type"] == "m.room.redaction"
    }
    for e in events:
        if e["sender"] != bot_id or e["type"] != "m.room.message":
            continue
        content = e.get("content") or {}
        if not content:
            continue  # redacted
        rel = content.get("m.relates_to") or {}
        if rel.get("rel_type") == "m.replace":
            if rel.get("event_id") in shown:
                shown[rel["event_id"]] = {**content["m.new_content"], "event_id": rel["event_id"]}
            continue
        if e["event_id"] in redacted:
            continue
        shown[e["event_id"]] = {**content, "event_id": e["event_id"]}
        order.append(e["event_id"])
    return [shown[i] for i in order if i in shown]
