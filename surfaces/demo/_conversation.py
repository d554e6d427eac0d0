"""The demo user's side of the conversation: send, then recognise the bot's answers.

The scripted steps (``_script.py``) are written with these verbs; the rooms the
script has reached so far (DM, Space, current chat) are kept here too, so a step
continues where the previous one ended.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
import trio

from matrix_client import MatrixClient, RoomEvent, text_content
from surfaces.i18n import t

from ._observer import Observer
from ._transcript import StepFailed, Transcript, short

# A reply is complete once the bot stopped typing and sent nothing for this long
# (its final edit follows the end of typing at once).
REPLY_QUIET_S = 1.5
# ...or, when no typing was seen (a very short turn), after this long without an edit
# (longer than the edit interval of the bot's throttle while the agent streams).
REPLY_QUIET_NO_TYPING_S = 2.5


@attrs.define
class Conversation:
    """The demo user (a ``MatrixClient``), what it saw, and where the script is."""

    user: MatrixClient
    observer: Observer
    bot_id: str
    locale: str
    tr: Transcript
    dm: str | None = None
    space: str | None = None
    room: str | None = None

    def msg(self, key: str, **fields: Any) -> str:
        """A bot text from the catalogue (to recognise the bot's answers)."""
        return t(self.locale, key, **fields)

    def current_room(self) -> str:
        """The chat the script talks in now; a step before the workspace is a bug."""
        if self.room is None:
            raise StepFailed("no chat yet (the workspace step did not run)")
        return self.room

    async def send_text(self, room_id: str, body: str) -> int:
        """Send ``body`` as the user (encrypted in an encrypted room); returns the
        timeline mark from before it."""
        return await self.send(room_id, text_content(body), shown=body)

    async def send(self, room_id: str, content: dict[str, Any], *, shown: str) -> int:
        mark = self.observer.mark()
        lock = " 🔒" if await self.observer.crypto.encryption(room_id) else ""
        self.tr.detail(f"you{lock}: {shown}")
        await self.observer.crypto.send(room_id, "m.room.message", content)
        return mark

    def bot_messages(self, mark: int, room_id: str) -> list[RoomEvent]:
        return [
            e
            for e in self.observer.events_since(mark, room_id, self.bot_id)
            if e.type == "m.room.message"
        ]

    async def wait_notice(self, mark: int, room_id: str, match: Callable[[str], bool]) -> str:
        """The body of the first bot notice after ``mark`` that ``match`` accepts."""

        def found() -> RoomEvent | None:
            for e in self.bot_messages(mark, room_id):
                body = e.content.get("body", "")
                if e.content.get("msgtype") == "m.notice" and match(body):
                    return e
            return None

        event = await self.observer.wait_for(found)
        body = event.content.get("body", "")
        self.tr.detail(f"bot (notice){self.observer.lock(event)}: {body}")
        return body

    async def wait_reply(self, mark: int, room_id: str) -> str:
        """Follow the bot's streamed reply (first message, then edits) to its end."""
        shown: list[str] = []
        original: str | None = None
        lock = ""
        current = ""
        done = 0  # bot messages already looked at

        def progress() -> bool:
            nonlocal original, current, done, lock
            messages = self.bot_messages(mark, room_id)
            for e in messages[done:]:
                content = e.content
                relates = content.get("m.relates_to") or {}
                if original is None:
                    if content.get("msgtype") == "m.text" and not relates:
                        original, current = e.event_id, content.get("body", "")
                        lock = self.observer.lock(e)
                elif relates.get("rel_type") == "m.replace" and relates.get("event_id") == original:
                    current = (content.get("m.new_content") or {}).get("body", current)
                if current and (not shown or shown[-1] != current):
                    shown.append(current)
                    self.tr.detail(f"bot (streaming){lock}: {short(current)}")
            done = len(messages)
            return False

        def quiet_needed() -> float | None:
            """How long the room must stay quiet for the reply to count as complete;
            None while the bot is still typing."""
            # The bot types from the start of the turn and stops just before its final
            # edit. A short turn may start and stop typing between two syncs (or before
            # the typing request went out), so no typing at all is possible too.
            updates = [u for i, r, u in self.observer.typing_updates if r == room_id and i >= mark]
            if updates and self.bot_id in updates[-1]:
                return None
            if any(self.bot_id in u for u in updates):
                return REPLY_QUIET_S
            return REPLY_QUIET_NO_TYPING_S

        while True:
            progress()
            remaining = math.inf
            needed = quiet_needed()
            if original is not None and needed is not None:
                last = self.observer.last_event_at.get((room_id, self.bot_id), 0.0)
                remaining = last + needed - trio.current_time()
                if remaining <= 0:
                    break
            with trio.move_on_after(remaining):
                await self.observer.changed()
        progress()
        if original is None:
            raise StepFailed("the bot sent no reply")
        self.tr.detail(f"bot (final){lock}: {current}")
        return current
