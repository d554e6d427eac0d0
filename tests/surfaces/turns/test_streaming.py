"""Streaming replies: first message, throttled edits, Markdown, size parts, typing."""

from __future__ import annotations

from turn_helpers import is_edit, ts

from matrix_client import MAX_EVENT_BYTES, event_size
from matrix_client.testing import Fault
from surfaces.render import EditThrottle


async def test_slow_reply_first_message_then_throttled_edits(chat, autojump_clock):
    h = chat.h
    h.hs.text_as(chat.user, chat.room, "/slow 1 12")
    await h.settle(60)
    events = chat.events()
    first, rest = events[0], events[1:]
    assert not is_edit(first)
    assert first["content"]["body"].startswith("slow 1/12")
    sent_at = ts(first)
    assert all(is_edit(e) for e in rest)
    assert all(e["content"]["m.relates_to"]["event_id"] == first["event_id"] for e in rest)
    final = rest[-1]
    full = " ".join(f"slow {i}/12" for i in range(1, 13))
    assert final["content"]["m.new_content"]["body"] == full
    assert chat.replies() == [full]
    # Intermediate edits follow the schedule: never earlier than the throttle allows.
    throttle = EditThrottle()
    throttle.message_sent(sent_at)
    intermediate = rest[:-1]
    for e in intermediate:
        due = throttle.next_edit_at()
        assert due is not None
        assert ts(e) >= due - 1e-6
        throttle.record_edit(ts(e))
    # Text arrives every second for 11 s: edits at ~0.8/1.8/3.3/5.55/8.925 after the
    # first message (chunks land on whole seconds, so each edit waits for one).
    assert 4 <= len(intermediate) <= 6
    assert len(h.app.turns) == 0


async def test_edit_cap_then_only_the_final_edit(chat, autojump_clock):
    await chat.h.restart(SURFACES_STREAMING__MAX_EDITS_PER_MESSAGE="3")
    chat.mark()
    await chat.say("/slow 1 30", settle=60)
    events = chat.events()
    assert not is_edit(events[0])
    edits = events[1:]
    assert len(edits) == 3 + 1  # the cap, then the final edit
    assert edits[-1]["content"]["m.new_content"]["body"].endswith("slow 30/30")
    assert ts(edits[-1]) - ts(edits[-2]) > 10  # nothing between the cap and the end


async def test_markdown_rendered_and_raw_html_never_passes(chat, autojump_clock):
    h = chat.h

    async def handler(request):
        ws = await request.accept()
        await _script(ws, ["**bold** and <script>alert(1)</script> <b onclick='x'>hi</b>"])

    h.agent_handler = handler
    await chat.say("hello")
    msg = chat.messages()[-1]
    assert msg["format"] == "org.matrix.custom.html"
    html = msg["formatted_body"]
    assert "<strong>bold</strong>" in html
    assert "<script" not in html
    assert "<b " not in html
    assert "&lt;script&gt;" in html  # shown as text, never as markup


async def test_long_reply_continues_in_messages_each_under_the_limit(chat, autojump_clock):
    h = chat.h
    await chat.say("/long 100000", settle=120)
    events = chat.events()
    for e in events:
        assert event_size(e["type"], e["content"]) < MAX_EVENT_BYTES
    texts = chat.replies()
    assert len(texts) >= 4
    joined = "".join(texts)
    assert (
        len(joined.replace(" ", ""))
        >= len(("lorem ipsum dolor sit amet " * 3704)[:100000].replace(" ", "")) - 100
    )
    # Each part's final state was sent as an edit of its message (or the message itself).
    assert len(h.app.turns) == 0
    # the room still works
    chat.mark()
    await chat.say("after")
    assert "after" in chat.replies()[-1]


async def test_tool_progress_shown_but_not_in_final_text(chat, autojump_clock):
    await chat.say("/tools")
    bodies = [e["content"].get("m.new_content", e["content"])["body"] for e in chat.events()]
    assert chat.replies() == ["The tools found 3 hits."]
    assert bodies[0] != "The tools found 3 hits."  # progress was shown first…
    assert bodies[-1] == "The tools found 3 hits."  # …and is gone from the final text


async def test_typing_set_and_cleared_on_success(chat, autojump_clock):
    await chat.say("/slow 1 3")
    log = chat.typing_log()
    assert log[0] is True
    assert log[-1] is False


async def test_typing_cleared_on_error(chat, autojump_clock):
    await chat.say("/slow 1 3")
    await chat.say("/error BOOM")
    log = chat.typing_log()
    assert log.count(True) >= 1  # typing was shown
    assert log[-1] is False
    assert chat.replies()[-1] == chat.t("agent_error", code="BOOM")


async def test_instant_reply_shows_no_typing(chat, autojump_clock):
    """A reply that is there before ``DELAY_S`` needs no "typing…": no requests."""
    await chat.say("/instant")
    assert chat.typing_log() == []
    assert chat.replies()[-1] == "ok"


async def test_final_text_delivered_under_rate_limits(chat, autojump_clock):
    h = chat.h
    h.hs.inject("PUT", "/rooms/*/send/*", Fault.rate_limited(retry_after_s=2), repeat=8)
    await chat.say("/slow 0.5 6", settle=120)
    assert chat.replies() == [" ".join(f"slow {i}/6" for i in range(1, 7))]
    assert h.hs.pending_faults() == 0


async def _script(ws, chunks, *, end=True):
    import json

    await ws.send_message(json.dumps({"type": "STATUS"}))
    await ws.get_message()
    for c in chunks:
        await ws.send_message(json.dumps({"type": "AGENT_EVENT_TEXT_CHUNK", "text": c}))
    if end:
        await ws.send_message(json.dumps({"type": "AGENT_EVENT_END"}))


async def test_an_instant_streamed_answer_is_one_message_without_edits(chat, autojump_clock):
    await chat.say("/chunks 100")
    [message] = chat.events()
    assert "m.relates_to" not in message["content"]
    assert message["content"]["body"].endswith("chunk 100/100")
