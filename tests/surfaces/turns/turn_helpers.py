"""Helpers for turn tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from matrix_client.testing import FakeUser
from surfaces.i18n import t

ORIGIN_MS = 1_700_000_000_000


@attrs.define
class Chat:
    """Alice's first chat room, and helpers to talk in it."""

    h: Any  # BotHarness
    user: FakeUser
    room: str
    welcome: int  # bot messages that precede the test (welcome etc.)

    async def say(self, body: str, settle: float = 30.0) -> str:
        event_id = self.h.hs.text_as(self.user, self.room, body)
        await self.h.settle(settle)
        return event_id

    def replies(self) -> list[str]:
        """The bot's visible messages after the welcome, edits applied."""
        return self.h.bot_texts(self.room)[self.welcome :]

    def messages(self) -> list[dict[str, Any]]:
        return self.h.bot_messages(self.room)[self.welcome :]

    def events(self) -> list[dict[str, Any]]:
        """Raw bot events (messages and edits) after the welcome."""
        return self.h.bot_events(self.room)[self._welcome_events :]

    _welcome_events: int = 0

    def t(self, key: str, **fields: Any) -> str:
        return t(self.h.app.config.bot.locale, key, **fields)

    def mark(self) -> None:
        """Forget what the bot has sent so far (replies()/events() start here)."""
        self.welcome = len(self.h.bot_texts(self.room))
        self._welcome_events = len(self.h.bot_events(self.room))

    def typing_log(self) -> list[bool]:
        bot = self.h.bot_user.user_id
        return [on for room, user, on in self.h.hs.typing_log if room == self.room and user == bot]


def ts(event: dict[str, Any]) -> float:
    """The virtual time (s) at which the fake homeserver stored ``event``."""
    return (event["origin_server_ts"] - ORIGIN_MS) / 1000


def is_edit(event: dict[str, Any]) -> bool:
    rel = event["content"].get("m.relates_to") or {}
    return rel.get("rel_type") == "m.replace"


async def wait_for(predicate, *, step: float = 0.05, limit: float = 600.0) -> float:
    """Advance virtual time until ``predicate()``; returns the time it took."""
    start = trio.current_time()
    while not predicate():
        if trio.current_time() - start > limit:
            raise AssertionError("condition not reached")
        await trio.sleep(step)
    return trio.current_time() - start


async def send_file(
    c: Chat,
    name: str | None,
    data: bytes,
    *,
    msgtype: str = "m.file",
    mime: str = "application/octet-stream",
    declared_size: int | None = None,
    settle: float = 10.0,
) -> str:
    """Upload ``data`` as the user (like a client does), then post the media event."""
    hs = c.h.hs
    async with hs.user_client(c.user) as client:
        mxc = await client.upload(data, content_type=mime, filename=name)
    info: dict[str, Any] = {
        "mimetype": mime,
        "size": len(data) if declared_size is None else declared_size,
    }
    content: dict[str, Any] = {"msgtype": msgtype, "body": name or "", "url": mxc, "info": info}
    event_id = hs.send_as(c.user, c.room, content)
    await c.h.settle(settle)
    return event_id


def sends_file(path: str):
    """An agent handler that sends ``path`` (``SEND_FILE``), then says "done"."""

    async def handler(request: Any) -> None:
        ws = await request.accept()
        await ws.send_message(frame("STATUS"))
        await ws.get_message()
        await ws.send_message(frame("AGENT_EVENT_SEND_FILE", path=path))
        await ws.send_message(frame("AGENT_EVENT_TEXT_CHUNK", text="done"))
        await ws.send_message(frame("AGENT_EVENT_END"))

    return handler


def frame(ftype: str, **fields: Any) -> str:
    import json

    return json.dumps({"type": ftype, **fields})
