"""Helpers for the fault suite (tests/faults); fixtures live in conftest.py.

Deterministic cases use the ``harness`` fixture from ``tests/conftest.py`` (fake
homeserver + reference agent over memory streams + ``BotApp`` on ``autojump_clock``).
The process case (``test_process_kills.py``) uses a real Synapse from the ``synapse``
fixture in conftest.py and runs ``python -m surfaces run`` as a child process.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio_websocket import WebSocketConnection, WebSocketRequest

from matrix_client.testing import FakeHomeserver, Fault

# What the user sees (ru, the default locale) — from surfaces/i18n.py.
INTERRUPTED = "⚠️ (ответ прерван)"
NOTICE_TIMEOUT = "Агент не отвечает"
NOTICE_UNAVAILABLE = "Агент недоступен. Попробуй позже."
NOTICE_DISCONNECTED = "Агент оборвал соединение. Попробуй ещё раз."
NOTICE_PROTOCOL = "Агент ответил некорректно. Попробуй ещё раз."
NOTICE_ERROR = "Ошибка агента: {code}"


# ---- homeserver: a time-bounded outage ---------------------------------------------


async def outage(hs: FakeHomeserver, seconds: float, fault: Fault | None = None) -> int:
    """Every request to the fake fails with ``fault`` (default: connection error) for
    ``seconds`` of (virtual) time; then the homeserver is back. Returns how many
    requests were refused."""
    fault = fault or Fault.connect_error()
    before = len(hs.requests)
    hs.inject(None, "/_matrix/*", fault, repeat=10**6)
    rule = hs._faults[-1]  # the rule just added: cleared when the outage ends
    try:
        await trio.sleep(seconds)
    finally:
        refused = 10**6 - len(rule.faults)
        rule.faults.clear()
    assert len(hs.requests) - before >= refused
    return refused


# ---- what the user sees ---------------------------------------------------------


def top_level_bot_messages(h: Any, room_id: str) -> list[dict[str, Any]]:
    """The bot's message events that are not edits (each is one visible bubble)."""
    return [
        e
        for e in h.bot_events(room_id)
        if (e["content"].get("m.relates_to") or {}).get("rel_type") != "m.replace"
    ]


def notices(h: Any, room_id: str) -> list[str]:
    return [m["body"] for m in h.bot_messages(room_id) if m.get("msgtype") == "m.notice"]


def replies(h: Any, room_id: str) -> list[str]:
    """Bot texts that are not notices (the agent's replies), edits applied."""
    return [m["body"] for m in h.bot_messages(room_id) if m.get("msgtype") != "m.notice"]


async def answers_next_message(
    h: Any, user: Any, room: str, text: str = "next message", *, settle: float = 30
) -> None:
    """The room keeps working: a normal message gets a normal (echo) reply."""
    h.agent_handler = None
    h.connect_error = None
    before = len(h.bot_texts(room))
    h.hs.text_as(user, room, text)
    await h.settle(settle)
    after = h.bot_texts(room)
    assert len(after) == before + 1, after[before:]
    assert f"«{text}»" in after[-1], after[-1]
    assert INTERRUPTED not in after[-1]


# ---- scripted (hostile) agents for harness.agent_handler ----------------------------

AgentScript = Callable[[WebSocketConnection, dict[str, Any]], Awaitable[None]]


def scripted_agent(script: AgentScript, *, status: bool = True) -> Callable[..., Awaitable[None]]:
    """An ``agent_handler``: accept, STATUS (unless ``status=False``), read the
    USER_MESSAGE, then run ``script(ws, user_message)``."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        if not status:
            while True:
                await ws.get_message()
        await send(ws, "STATUS", state="ready")
        message = json.loads(await ws.get_message())
        await script(ws, message)

    return handler


async def send(ws: WebSocketConnection, ftype: str, **fields: Any) -> None:
    await ws.send_message(json.dumps({"type": ftype, **fields}))
