"""Backpressure, crash/restart exactly-once, lost responses, poison events, shutdown."""

from __future__ import annotations

import trio
from turn_helpers import Chat, is_edit, wait_for

from matrix_client.testing import Fault
from surfaces.core import Lane


def _mentions(text: str, words: str) -> int:
    """How often ``words`` occurs as a whole message in ``text`` (alone, or in a
    merged block)."""
    return sum(text.count(f"{words}{end}") for end in ("\n</message>", "»"))


def _reply_messages(chat: Chat) -> list[dict]:
    """Bot messages (not edits) after the mark."""
    return [e for e in chat.events() if not is_edit(e)]


async def test_flood_is_bounded_and_other_rooms_keep_working(chat, autojump_clock):
    h = chat.h
    bob = h.user("bob", displayname="Bob")
    _, _, bob_room = await h.onboard(bob)
    bob_chat = Chat(h, bob, bob_room, 0)
    bob_chat.mark()
    chat.mark()
    cfg = h.app.config.bot
    capacity = cfg.room_queue_size * cfg.merge_max_messages + 1
    h.agent.chunk_delay_s = 1.0  # each answer takes a while: the room stays busy
    ids = [h.hs.text_as(chat.user, chat.room, f"flood {i}") for i in range(1000)]
    await trio.sleep(1)  # one sync admits the flood
    # Meanwhile bob is answered promptly.
    h.hs.text_as(bob, bob_room, "hi from bob")
    started = trio.current_time()
    await wait_for(bob_chat.replies)
    assert trio.current_time() - started < 10
    lanes = h.app.lanes
    assert lanes.pending(Lane.room(chat.room)) <= capacity
    assert lanes.active_lanes() <= 6  # a worker per lane (rooms, control, invites)
    await h.settle(400)
    store = h.app.store
    statuses = [await store.inbox_status(e) for e in ids]
    # The sync filter's timeline limit (50) bounds one batch; the homeserver left
    # the rest out (a limited timeline): those never reached the inbox, and the
    # user was told once. Of the 50 it did send, the user's turn budget
    # (budget.turns_burst) admitted the first ones, told once about the rest; the
    # admitted ones fit the queue (merged): all answered.
    window, burst = 50, h.app.config.budget.turns_burst
    assert burst < window < capacity
    admitted = list(range(1000 - window, 1000 - window + burst))
    assert statuses[: 1000 - window] == [None] * (1000 - window)
    assert [statuses[i] for i in admitted] == ["done"] * burst
    assert statuses[1000 - window + burst :] == ["rejected"] * (window - burst)
    replies = chat.replies()
    busy = [r for r in replies if r.startswith(chat.t("busy", n=0)[:10])]
    assert len(busy) == 1
    limited = [r for r in replies if r.startswith(chat.t("budget_turns", seconds=0)[:10])]
    assert len(limited) == 1
    chat_record = await store.get_chat(chat.room)
    received = "".join(f"{text}»" for text in h.agent.history[chat_record.platform_chat_id])
    answers = "\n".join(r for r in replies if r not in busy + limited)
    for i in admitted:  # each reached the agent once and was answered
        assert _mentions(received, f"flood {i}") == 1, i
        assert _mentions(answers, f"flood {i}") >= 1, i
    positions = [received.index(f"flood {i}") for i in admitted]
    assert positions == sorted(positions)  # in order
    assert len(h.agent.history[chat_record.platform_chat_id]) < burst  # merged
    assert lanes.pending(Lane.room(chat.room)) == 0
    # a new message after the busy period is answered
    chat.mark()
    await chat.say("later")
    assert "later" in chat.replies()[-1]


async def test_crash_mid_stream_then_restart_gives_one_full_reply(chat, autojump_clock):
    h = chat.h
    event = h.hs.text_as(chat.user, chat.room, "/slow 1 10")
    await trio.sleep(5.5)
    assert h.app.turns.running(chat.room)
    partial = chat.replies()
    assert len(partial) == 1
    assert "slow 3/10" in partial[0]
    await h.crash()
    await h.start()
    await h.settle(60)
    full = " ".join(f"slow {i}/10" for i in range(1, 11))
    assert chat.replies() == [full]
    assert len(_reply_messages(chat)) == 1
    assert await h.app.store.inbox_status(event) == "done"
    # and a second restart does not answer again
    await h.restart()
    await h.settle(30)
    assert chat.replies() == [full]


async def test_crash_before_first_text_then_restart(chat, autojump_clock):
    h = chat.h
    h.hs.text_as(chat.user, chat.room, "/silent")
    await trio.sleep(3)
    await h.crash()
    h.agent.behaviour = None
    await h.start()
    await h.settle(200)
    replies = chat.replies()
    # the re-run times out again, but the user sees exactly one notice
    assert replies.count(chat.t("agent_timeout", phase=chat.t("phase_first_text"))) == 1


async def test_lost_response_on_final_send_is_retried_with_same_txn(chat, autojump_clock):
    h = chat.h
    h.hs.inject("PUT", "/rooms/*/send/*", Fault.lost_response())
    await chat.say("/error X")
    assert chat.replies() == [chat.t("agent_error", code="X")]
    sends = [r for r in h.hs.requests_to("PUT", "/rooms/*/send/*") if r.fault is not None]
    assert len(sends) == 1
    same = [r for r in h.hs.requests_to("PUT", "/rooms/*/send/*") if r.path == sends[0].path]
    assert len(same) == 2


async def test_poison_event_bounded_retries_then_failed_with_notice(chat, autojump_clock):
    h = chat.h
    lanes = h.app.lanes
    real = lanes._handler  # the router, given to run()
    calls = []

    async def handler(item):
        if item.payload.get("body") == "poison":
            calls.append(item.event_id)
            raise RuntimeError("handler bug")
        await real(item)

    lanes._handler = handler
    poison = h.hs.text_as(chat.user, chat.room, "poison")
    h.hs.text_as(chat.user, chat.room, "after poison")
    await h.settle(120)
    assert len(calls) == h.app.config.bot.max_event_attempts
    assert await h.app.store.inbox_status(poison) == "failed"
    replies = chat.replies()
    assert replies[0] == chat.t("turn_failed")
    assert "after poison" in replies[1]


async def test_graceful_stop_lets_short_turn_finish(chat, autojump_clock):
    h = chat.h
    event = h.hs.text_as(chat.user, chat.room, "/slow 1 3")
    await trio.sleep(1.5)
    assert h.app.turns.running(chat.room)
    h.app.request_stop()
    await h.app_done.wait()
    assert chat.replies() == ["slow 1/3 slow 2/3 slow 3/3"]
    assert await _status(h, event) == "done"
    await h.start()
    await h.settle(30)
    assert chat.replies() == ["slow 1/3 slow 2/3 slow 3/3"]


async def test_graceful_stop_interrupts_long_turn_and_resumes_once(chat, autojump_clock):
    h = chat.h
    event = h.hs.text_as(chat.user, chat.room, "/slow 1 20")
    await trio.sleep(3.5)
    h.app.request_stop()
    stop_at = trio.current_time()
    await h.app_done.wait()
    assert trio.current_time() - stop_at <= h.app.config.bot.shutdown_grace_s + 10
    replies = chat.replies()
    assert len(replies) == 1
    assert replies[0].endswith(chat.t("shutting_down")), replies
    assert chat.typing_log()[-1] is False
    assert await _status(h, event) == "pending"
    await h.start()
    await h.settle(60)
    full = " ".join(f"slow {i}/20" for i in range(1, 21))
    assert chat.replies() == [full]
    assert len(_reply_messages(chat)) == 1
    assert await h.app.store.inbox_status(event) == "done"


async def _status(h, event_id):
    from pathlib import Path

    from surfaces.state import Store

    store = Store.open_sync(Path(h.state_dir) / "surfaces.db", inline=True)
    try:
        return await store.inbox_status(event_id)
    finally:
        store.close()


async def test_stop_inside_the_first_message_window_then_restart_gives_one_reply(
    chat, autojump_clock
):
    """The first text has arrived but its message waits out ``first_message_after_s``
    when the bot is stopped at once (a second signal): the user gets the partial text
    marked, and after the restart that same message is edited to the complete reply
    (no second message)."""
    h = chat.h
    event = h.hs.text_as(chat.user, chat.room, "/slow 1 3")
    await trio.sleep(0.05)
    assert h.app.turns.running(chat.room)
    assert chat.replies() == []  # inside the window: nothing posted yet
    h.app.request_stop(force=True)
    await h.app_done.wait()
    assert chat.replies() == ["slow 1/3\n\n" + chat.t("shutting_down")]
    assert len(_reply_messages(chat)) == 1
    assert await _status(h, event) == "pending"
    await h.start()
    await h.settle(30)
    assert chat.replies() == ["slow 1/3 slow 2/3 slow 3/3"]
    assert len(_reply_messages(chat)) == 1
