"""The notifier: every text the bot writes fits its events, in at most
``NOTICE_MAX_PARTS`` parts with derived txn ids, exactly once each."""

from __future__ import annotations

import attrs
import pytest

from matrix_client import MAX_EVENT_BYTES, event_size
from surfaces.delivery import NOTICE_MAX_PARTS, MessageKind, Notifier
from surfaces.i18n import Texts
from surfaces.state import PendingSend


@attrs.define
class RecordingOutbox:
    sent: dict[str, PendingSend] = attrs.Factory(dict)
    order: list[str] = attrs.Factory(list)

    async def send(self, send: PendingSend, *, part=None) -> str:
        if send.txn_id not in self.sent:  # the outbox's INSERT OR IGNORE: once per txn
            self.sent[send.txn_id] = send
            self.order.append(send.txn_id)
        return f"$ev-{send.txn_id}"


@pytest.fixture
def notifier() -> tuple[Notifier, RecordingOutbox]:
    outbox = RecordingOutbox()
    return Notifier(outbox, Texts("en")), outbox  # type: ignore[arg-type]


def test_short_text_is_one_notice(notifier):
    n, _ = notifier
    [send] = n.sends("!r", "hello", txn_id="$e.r")
    assert send.txn_id == "$e.r"
    assert send.content["msgtype"] == "m.notice"
    assert send.content["body"] == "hello"


def test_long_text_is_split_with_derived_txn_ids_and_every_part_fits(notifier):
    n, _ = notifier
    text = "\n".join(f"• C{i} — {'название ' * 10}" for i in range(1_000))  # ~200 KB
    sends = n.sends("!r", text, txn_id="$e.r")
    assert 1 < len(sends) <= NOTICE_MAX_PARTS
    assert [s.txn_id for s in sends] == ["$e.r", *(f"$e.r.n{k}" for k in range(1, len(sends)))]
    for s in sends:
        assert event_size(s.event_type, s.content) <= MAX_EVENT_BYTES


def test_too_long_text_is_cut_with_the_catalogue_mark(notifier):
    n, _ = notifier
    sends = n.sends("!r", "word " * 200_000, txn_id="t")  # 1 MB
    assert len(sends) == NOTICE_MAX_PARTS
    assert sends[-1].content["body"].endswith("…\n(truncated)")


async def test_every_part_is_sent_once_even_when_sent_again(notifier):
    n, outbox = notifier
    text = "line of text\n" * 20_000
    first = await n.notice_text("!r", text, txn_id="$e.r")
    await n.notice_text("!r", text, txn_id="$e.r")  # a re-run after a crash
    assert first == "$ev-$e.r"
    assert outbox.order == [s.txn_id for s in n.sends("!r", text, txn_id="$e.r")]


def test_pending_is_one_event(notifier):
    n, _ = notifier
    send = n.pending("!r", "x " * 100_000, txn_id="f")
    assert send.txn_id == "f"
    assert event_size(send.event_type, send.content) <= MAX_EVENT_BYTES
    assert send.content["body"].endswith("…\n(truncated)")


def test_lone_surrogates_are_replaced(notifier):
    n, _ = notifier
    [send] = n.sends("!r", "bad \ud800 text", txn_id="t")
    assert send.content["body"] == "bad \ufffd text"


async def test_message_kind_text_for_the_welcome(notifier):
    n, outbox = notifier
    await n.message("!r", "Hi!", txn_id="welcome.!r")
    assert outbox.sent["welcome.!r"].content["msgtype"] == MessageKind.TEXT
