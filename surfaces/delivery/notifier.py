"""Notices: the bot's own short messages (``m.notice``) to users, exactly once each.

Every notice goes through the outbox with a transaction id the caller derives from the
event it answers (``{event}.r`` for a command's reply, …), so a re-run after a crash
sends it once. Texts come from the catalogue in the bot's locale.

Sizes: this is the one path every text the bot writes itself takes (notices, command
output such as ``!chats`` and ``!list``, DM replies, the agent's questions and error
codes, the welcome message), so none can exceed the homeserver's event limit and be
refused for ever. A text is split into parts that each fit one event
(``surfaces.render.fit_parts``, budget measured with ``matrix_client.event_size``),
at most ``NOTICE_MAX_PARTS`` of them; the rest is dropped and the last part ends with
``…`` and the catalogue's "(truncated)". Part ``k > 0`` is sent with the txn id
``{txn_id}.n{k}``, so every part is exactly-once like the first. Lone surrogates are
replaced on the way (they cannot be encoded as the UTF-8 a homeserver needs).
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from matrix_client import MAX_EVENT_BYTES, event_size, notice_content, text_content
from surfaces.core import clean_text
from surfaces.delivery.outbox import Outbox
from surfaces.i18n import Texts
from surfaces.render import fit_parts
from surfaces.state import PendingSend

#: A text longer than one event continues in at most this many (then it is cut).
NOTICE_MAX_PARTS = 4


class MessageKind(enum.StrEnum):
    NOTICE = "m.notice"  # status text: other bots must not answer it
    TEXT = "m.text"  # the welcome: a message like a person's


def _content(kind: MessageKind, body: str) -> dict:
    return notice_content(body) if kind is MessageKind.NOTICE else text_content(body)


#: Bytes of JSON-escaped body one event can carry (the rest is the event around it).
BODY_BUDGET_BYTES = MAX_EVENT_BYTES - max(
    event_size("m.room.message", _content(kind, "")) for kind in MessageKind
)


@attrs.define
class Notifier:
    outbox: Outbox
    texts: Texts

    async def notice(self, room_id: str, key: str, *, txn_id: str, **fields: Any) -> str | None:
        """A durable ``m.notice`` from the catalogue (exactly once per ``txn_id``)."""
        return await self.notice_text(room_id, self.texts(key, **fields), txn_id=txn_id)

    async def notice_text(self, room_id: str, text: str, *, txn_id: str) -> str | None:
        """A durable ``m.notice`` with this text (exactly once per ``txn_id``), in as
        many parts as it needs (up to ``NOTICE_MAX_PARTS``). Returns the first part's
        event id."""
        return await self._send_all(self.sends(room_id, text, txn_id=txn_id))

    async def message(self, room_id: str, text: str, *, txn_id: str) -> str | None:
        """Like :meth:`notice_text`, as an ``m.text`` (the welcome)."""
        return await self._send_all(self.sends(room_id, text, txn_id=txn_id, kind=MessageKind.TEXT))

    def pending(self, room_id: str, text: str, *, txn_id: str) -> PendingSend:
        """The notice as a send to commit together with other changes: one event,
        cut with the mark if it does not fit one."""
        return self.sends(room_id, text, txn_id=txn_id, max_parts=1)[0]

    def sends(
        self,
        room_id: str,
        text: str,
        *,
        txn_id: str,
        kind: MessageKind = MessageKind.NOTICE,
        max_parts: int = NOTICE_MAX_PARTS,
    ) -> list[PendingSend]:
        """The sends that show ``text``: each fits one event (see the module docstring)."""
        bodies = fit_parts(
            clean_text(text), BODY_BUDGET_BYTES, max_parts=max_parts, mark=self.texts("truncated")
        ) or [" "]  # a blank text is still the answer the caller owes
        sends = []
        for k, body in enumerate(bodies):
            content = _content(kind, body)
            # json_size (the splitter's measure) never counts less than the JSON a
            # homeserver sees, so every part fits; checked with the client's measure.
            assert event_size("m.room.message", content) <= MAX_EVENT_BYTES
            sends.append(
                PendingSend(
                    room_id, txn_id if k == 0 else f"{txn_id}.n{k}", "m.room.message", content
                )
            )
        return sends

    async def _send_all(self, sends: list[PendingSend]) -> str | None:
        first: str | None = None
        for k, send in enumerate(sends):
            event_id = await self.outbox.send(send)
            if k == 0:
                first = event_id
        return first
