"""Content builders and the event-size check."""

from __future__ import annotations

import json

import pytest
import trio

from matrix_client import (
    ENVELOPE_OVERHEAD_BYTES,
    MAX_EVENT_BYTES,
    EventTooLargeError,
    edit_content,
    event_size,
    media_content,
    new_txn_id,
    notice_content,
    text_content,
)
from matrix_client.testing import FakeHomeserver, FakeUser


def test_text_without_mentions_has_empty_mentions() -> None:
    assert text_content("hello") == {"msgtype": "m.text", "body": "hello", "m.mentions": {}}


def test_text_with_html_and_mentions() -> None:
    content = text_content(
        "hi Alice", html="hi <a href='https://matrix.to/#/@a:x'>Alice</a>", mentions=["@a:x"]
    )
    assert content == {
        "msgtype": "m.text",
        "body": "hi Alice",
        "format": "org.matrix.custom.html",
        "formatted_body": "hi <a href='https://matrix.to/#/@a:x'>Alice</a>",
        "m.mentions": {"user_ids": ["@a:x"]},
    }


def test_notice() -> None:
    content = notice_content("working…", html="<i>working…</i>")
    assert content["msgtype"] == "m.notice"
    assert content["formatted_body"] == "<i>working…</i>"
    assert content["m.mentions"] == {}


def test_edit_shape() -> None:
    content = edit_content("$orig", "new text", html="<b>new</b> text", mentions=["@a:x"])
    assert content == {
        "msgtype": "m.text",
        "body": "* new text",
        "format": "org.matrix.custom.html",
        "formatted_body": "* <b>new</b> text",
        "m.mentions": {},
        "m.new_content": {
            "msgtype": "m.text",
            "body": "new text",
            "format": "org.matrix.custom.html",
            "formatted_body": "<b>new</b> text",
            "m.mentions": {"user_ids": ["@a:x"]},
        },
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
    }


def test_edit_plain_text_and_notice_msgtype() -> None:
    content = edit_content("$o", "t", msgtype="m.notice")
    assert "format" not in content
    assert "format" not in content["m.new_content"]
    assert content["msgtype"] == content["m.new_content"]["msgtype"] == "m.notice"


def test_media_content() -> None:
    content = media_content(
        "m.file", body="report.pdf", url="mxc://s/id", mimetype="application/pdf", size=10,
        extra_info={"w": 1},
    )  # fmt: skip
    assert content["info"] == {"mimetype": "application/pdf", "size": 10, "w": 1}
    assert content["url"] == "mxc://s/id"
    assert content["m.mentions"] == {}


def test_event_size_is_serialised_json_plus_envelope() -> None:
    content = {"body": "é"}  # UTF-8 bytes, not \\u escapes
    expected = len('{"content":{"body":"é"},"type":"m.room.message"}'.encode()) + (
        ENVELOPE_OVERHEAD_BYTES
    )
    assert event_size("m.room.message", content) == expected


def test_txn_ids_are_unique() -> None:
    assert len({new_txn_id() for _ in range(100)}) == 100


async def test_too_large_event_raises_before_any_request(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    body = "x" * (MAX_EVENT_BYTES - ENVELOPE_OVERHEAD_BYTES)
    async with hs.user_client(bot) as client:
        before = len(hs.requests)
        with pytest.raises(EventTooLargeError) as info:
            await client.send_event(room, "m.room.message", text_content(body), txn_id="t")
        with pytest.raises(EventTooLargeError):
            await client.put_state_event(room, "x.big", {"v": body})
        assert len(hs.requests) == before
        assert info.value.size > MAX_EVENT_BYTES
        # Just under the estimate's limit is sent, and the server accepts it.
        overhead = len(json.dumps(text_content(""), separators=(",", ":"))) + len(
            '{"content":,"type":"m.room.message"}'
        )
        fitting = "x" * (MAX_EVENT_BYTES - ENVELOPE_OVERHEAD_BYTES - overhead)
        content = text_content(fitting)
        assert event_size("m.room.message", content) == MAX_EVENT_BYTES
        await client.send_event(room, "m.room.message", content, txn_id="t2")
    assert len(hs.messages_from(bot, room)) == 1


async def test_sent_content_arrives_unchanged(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        original = await client.send_event(
            room, "m.room.message", text_content("a", html="<p>a</p>"), txn_id="1"
        )
        edit = edit_content(original, "b", html="<p>b</p>")
        await client.send_event(room, "m.room.message", edit, txn_id="2")
    sent = hs.messages_from(bot, room)
    assert sent[1]["content"] == edit
    assert sent[1]["content"]["m.relates_to"]["event_id"] == original
