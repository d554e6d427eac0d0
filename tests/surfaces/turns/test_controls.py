"""!stop, confirmations."""

from __future__ import annotations

import trio
from turn_helpers import wait_for


async def test_stop_cancels_running_turn_promptly(chat, autojump_clock):
    h = chat.h
    h.hs.text_as(chat.user, chat.room, "/slow 1 30")
    await trio.sleep(4)
    assert h.app.turns.running(chat.room)
    stop_at = trio.current_time()
    h.hs.text_as(chat.user, chat.room, "!stop")
    await wait_for(lambda: not h.app.turns.running(chat.room))
    # !stop runs on the control lane: it does not wait for the turn
    assert trio.current_time() - stop_at < 5  # vs. 26 s left in the reply
    await h.settle(5)
    replies = chat.replies()
    assert len(replies) == 1
    assert replies[0].startswith("slow 1/30")
    assert replies[0].endswith(chat.t("interrupted_mark"))
    assert "slow 30/30" not in replies[0]
    assert chat.typing_log()[-1] is False
    # the room keeps working
    chat.mark()
    await chat.say("next")
    assert "next" in chat.replies()[-1]


async def test_stop_without_turn_says_so(chat, autojump_clock):
    await chat.say("!stop")
    assert chat.replies() == [chat.t("stop_none")]


async def test_confirmation_yes_sends_user_confirm(chat, autojump_clock):
    h = chat.h
    h.hs.text_as(chat.user, chat.room, "/confirm")
    await h.settle(5)
    replies = chat.replies()
    assert replies == [chat.t("confirm_request", text="May I proceed?")]
    assert "!yes" in replies[0]
    assert h.app.turns.awaiting_confirmation(chat.room)
    await chat.say("!yes")
    replies = chat.replies()
    assert replies[-1] == "approved"
    assert chat.t("confirm_sent", answer=chat.t("confirm_yes_text")) in replies
    assert not h.app.turns.running(chat.room)


async def test_confirmation_no(chat, autojump_clock):
    chat.h.hs.text_as(chat.user, chat.room, "/confirm")
    await chat.h.settle(5)
    await chat.say("!no")
    assert chat.replies()[-1] == "declined"


async def test_yes_no_without_pending_request_are_plain_turns(chat, autojump_clock):
    await chat.say("!yes")
    assert f"«{chat.t('confirm_yes_text')}»" in chat.replies()[-1]
    await chat.say("!no")
    assert f"«{chat.t('confirm_no_text')}»" in chat.replies()[-1]
