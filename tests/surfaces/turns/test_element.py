"""Matrix as Element users speak it: replies, threads, captions, edits, reactions,
redactions, bursts, receipts, other message types (issue 14), and every turn on the
room's lane (issue 13 §3)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio
from turn_helpers import is_edit, send_file, wait_for

from agent_client.reference._server import AGENT_PATH
from surfaces.core import THREAD_EVENT, Lane


def thread_rel(root: str, last: str | None = None) -> dict[str, Any]:
    rel: dict[str, Any] = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    rel["m.in_reply_to"] = {"event_id": last or root}
    return rel


def say_in(chat, body: str, **relates_to: Any) -> str:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if relates_to:
        content["m.relates_to"] = relates_to
    return chat.h.hs.send_as(chat.user, chat.room, content)


def react(chat, target: str, key: str, user=None) -> str:
    relates = {"rel_type": "m.annotation", "event_id": target, "key": key}
    return chat.h.hs.send_as(
        user or chat.user, chat.room, {"m.relates_to": relates}, event_type="m.reaction"
    )


def edit(chat, target: str, body: str) -> str:
    content = {
        "msgtype": "m.text",
        "body": f"* {body}",
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }
    return chat.h.hs.send_as(chat.user, chat.room, content)


async def redact(chat, target: str) -> None:
    async with chat.h.hs.user_client(chat.user) as client:
        await client.redact(chat.room, target, txn_id=f"redact-{target}")


async def queue_behind_a_turn(chat, body: str) -> str:
    """Send ``body`` while a 5-second turn runs: it waits in the queue."""
    chat.h.hs.text_as(chat.user, chat.room, "/slow 1 5")
    await trio.sleep(2)
    queued = chat.h.hs.text_as(chat.user, chat.room, body)
    await trio.sleep(1)
    return queued


def reply_events(chat) -> list[dict[str, Any]]:
    """The bot's messages after the mark (edits not included)."""
    return [e for e in chat.events() if not is_edit(e)]


async def received(chat) -> list[str]:
    """What the agent got in this room's main conversation, in order."""
    record = await chat.h.app.store.get_chat(chat.room)
    return list(chat.h.agent.history.get(record.platform_chat_id, []))


# ---- replies -----------------------------------------------------------------------


async def test_a_command_in_a_reply_is_a_command(chat, autojump_clock):
    first = await chat.say("hello")
    body = f"> <{chat.user.user_id}> hello\n\n!stop"
    say_in(chat, body, **{"m.in_reply_to": {"event_id": first}})
    await chat.h.settle(5)
    assert chat.replies()[-1] == chat.t("stop_none")


async def test_a_reply_gives_the_agent_a_quote_and_the_users_own_words(chat, autojump_clock):
    await chat.say("what is 6 x 7?")
    [answer] = reply_events(chat)
    body = "> <@bot:test.local> Turn 1...\n\nand doubled?"
    say_in(chat, body, **{"m.in_reply_to": {"event_id": answer["event_id"]}})
    await chat.h.settle(30)
    texts = await received(chat)
    assert texts[-1].startswith('<quote from="assistant">\nTurn 1. You said: «what is 6 x 7?»')
    assert texts[-1].endswith("</quote>\nand doubled?")
    assert "Turn 1..." not in texts[-1]  # the fallback never reaches the agent


# ---- captions, emotes, what cannot be passed on --------------------------------------


async def test_a_captioned_file_is_one_turn(chat, autojump_clock):
    hs = chat.h.hs
    async with hs.user_client(chat.user) as client:
        mxc = await client.upload(b"PNG", content_type="image/png", filename="cat.png")
    content = {
        "msgtype": "m.image",
        "body": "what is on it?",
        "filename": "cat.png",
        "url": mxc,
        "info": {"mimetype": "image/png", "size": 3},
    }
    hs.send_as(chat.user, chat.room, content)
    await chat.h.settle(30)
    [reply] = chat.replies()  # no "file staged" notice: the turn is the answer
    assert "You said: «what is on it?»" in reply
    assert "Attachments (1): incoming/cat.png" in reply
    assert await chat.h.app.store.staged(chat.room, chat.user.user_id) == []
    # Without a caption a file is staged as before.
    chat.mark()
    await send_file(chat, "notes.txt", b"n")
    assert chat.replies()[0].startswith("📎")


async def test_emotes_are_text_and_other_types_get_one_notice(chat, autojump_clock):
    hs = chat.h.hs
    hs.send_as(chat.user, chat.room, {"msgtype": "m.emote", "body": "waves"})
    await chat.h.settle(30)
    assert "«/me waves»" in chat.replies()[-1]
    chat.mark()
    hs.send_as(
        chat.user, chat.room, {"msgtype": "m.location", "body": "here", "geo_uri": "geo:1,2"}
    )
    hs.send_as(chat.user, chat.room, {"body": "s", "url": "mxc://x/y"}, event_type="m.sticker")
    hs.send_as(chat.user, chat.room, {"m.poll": {}}, event_type="org.matrix.msc3381.poll.start")
    await chat.h.settle(5)
    assert chat.replies() == [
        chat.t("unsupported_location"),
        chat.t("unsupported_sticker"),
        chat.t("unsupported_poll"),
    ]
    assert len(await received(chat)) == 1


# ---- threads ---------------------------------------------------------------------


async def test_a_thread_is_answered_in_it_as_its_own_conversation(chat, autojump_clock):
    h = chat.h
    root = await chat.say("/chunks 3")  # answered in the main timeline
    chat.mark()
    asked = say_in(chat, "in the thread", **thread_rel(root))
    await h.settle(30)
    [reply] = reply_events(chat)
    assert reply["content"]["m.relates_to"] == thread_rel(root, asked)
    assert "«in the thread»" in chat.replies()[-1]
    binding = h.hs.state_content(chat.room, THREAD_EVENT, root)
    record = await h.app.store.get_chat(chat.room)
    assert binding["root"] == root
    assert binding["platform_chat_id"] != record.platform_chat_id
    assert h.agent.history[binding["platform_chat_id"]] == ["in the thread"]
    # A long reply streams as edits: each keeps m.replace, and m.new_content has no
    # relation (the spec: an edit cannot move a message out of its thread).
    chat.mark()
    say_in(chat, "/slow 1 3", **thread_rel(root, asked))
    await h.settle(30)
    events = chat.events()
    assert events[0]["content"]["m.relates_to"]["rel_type"] == "m.thread"
    edits = [e for e in events if is_edit(e)]
    assert edits
    for e in edits:
        assert e["content"]["m.relates_to"]["rel_type"] == "m.replace"
        assert "m.relates_to" not in e["content"]["m.new_content"]
    assert len(h.agent.history[binding["platform_chat_id"]]) == 2  # the same conversation
    assert len(h.agent.history[record.platform_chat_id]) == 1  # the room's is its own


async def test_commands_in_a_thread_act_on_the_thread(chat, autojump_clock):
    h = chat.h
    root = await chat.say("root")
    say_in(chat, "first", **thread_rel(root))
    await h.settle(30)
    before = h.hs.state_content(chat.room, THREAD_EVENT, root)["platform_chat_id"]
    room_id = (await h.app.store.get_chat(chat.room)).platform_chat_id
    chat.mark()
    say_in(chat, "!clear", **thread_rel(root))
    await h.settle(5)
    [notice] = reply_events(chat)
    assert notice["content"]["m.relates_to"]["event_id"] == root  # answered in the thread
    after = h.hs.state_content(chat.room, THREAD_EVENT, root)["platform_chat_id"]
    assert after != before
    assert (await h.app.store.get_chat(chat.room)).platform_chat_id == room_id
    # !stop in a thread does not stop the main timeline's turn.
    h.hs.text_as(chat.user, chat.room, "/slow 1 20")
    await trio.sleep(3)
    say_in(chat, "!stop", **thread_rel(root))
    await h.settle(3)
    assert h.app.turns.running(chat.room)
    assert chat.t("stop_none") in chat.replies()


async def test_thread_context_room_shares_the_rooms_conversation(chat, autojump_clock):
    h = chat.h
    await h.restart(SURFACES_BOT__THREAD_CONTEXT="room")
    root = await chat.say("root")
    say_in(chat, "in the thread", **thread_rel(root))
    await h.settle(30)
    assert h.hs.state_content(chat.room, THREAD_EVENT, root) is None
    assert (await received(chat))[-2:] == ["root", "in the thread"]
    assert reply_events(chat)[-1]["content"]["m.relates_to"]["event_id"] == root


async def test_a_threads_binding_survives_a_lost_database(chat, tools, autojump_clock):
    h = chat.h
    root = await chat.say("root")
    say_in(chat, "one", **thread_rel(root))
    await h.settle(30)
    bound = h.hs.state_content(chat.room, THREAD_EVENT, root)["platform_chat_id"]
    # A room member's forged thread binding is not trusted.
    h.hs.set_state_as(
        chat.user,
        chat.room,
        THREAD_EVENT,
        {"version": 1, "root": "$forged", "platform_chat_id": "1"},
        state_key="$forged",
    )
    await tools.restart_with_wiped_database()
    store = h.app.store
    assert (await store.thread(chat.room, root)).platform_chat_id == bound
    assert await store.thread(chat.room, "$forged") is None
    say_in(chat, "two", **thread_rel(root))
    await h.settle(30)
    assert h.agent.history[bound][-1] == "two"


# ---- edits -----------------------------------------------------------------------


async def test_an_edit_reruns_the_latest_turn_into_the_same_reply(chat, autojump_clock):
    h = chat.h
    asked = await chat.say("teh question")
    [reply] = reply_events(chat)
    edit(chat, asked, "the question")
    await h.settle(30)
    assert len(reply_events(chat)) == 1  # no new message: the reply was edited in place
    assert chat.replies() == [chat.replies()[0]]
    assert "You said: «the question»" in chat.replies()[0]
    assert (await received(chat))[-1] == "the question"  # never the "* " fallback
    last_edit = [e for e in chat.events() if is_edit(e)][-1]
    assert last_edit["content"]["m.relates_to"]["event_id"] == reply["event_id"]


async def test_an_edit_of_an_older_message_is_ignored(chat, autojump_clock):
    h = chat.h
    older = await chat.say("first")
    await chat.say("second")
    edit(chat, older, "first, edited")
    await h.settle(30)
    assert len(reply_events(chat)) == 2
    assert "first, edited" not in "".join(await received(chat))


async def test_an_edit_stops_the_running_turn_first(chat, autojump_clock):
    h = chat.h
    asked = h.hs.text_as(chat.user, chat.room, "/slow 1 30")
    await trio.sleep(4)
    assert h.app.turns.running(chat.room)
    edit(chat, asked, "never mind, just echo")
    await wait_for(lambda: "never mind" in "".join(chat.replies()), limit=30)
    await h.settle(10)
    assert len(reply_events(chat)) == 1
    assert "«never mind, just echo»" in chat.replies()[0]
    assert "slow 30/30" not in chat.replies()[0]


async def test_an_edit_of_a_queued_message_is_what_the_agent_gets(chat, autojump_clock):
    h = chat.h
    queued = await queue_behind_a_turn(chat, "typo")
    edit(chat, queued, "fixed")
    await h.settle(40)
    texts = await received(chat)
    assert texts[-1] == "fixed"
    assert "typo" not in texts
    assert len(reply_events(chat)) == 2


# ---- reactions ---------------------------------------------------------------------


async def test_stop_reaction_on_a_streaming_reply(chat, autojump_clock):
    h = chat.h
    h.hs.text_as(chat.user, chat.room, "/slow 1 30")
    await wait_for(lambda: reply_events(chat))
    [reply] = reply_events(chat)
    react(chat, reply["event_id"], "🛑\ufe0f")
    await wait_for(lambda: not h.app.turns.running(chat.room), limit=5)
    await h.settle(5)
    assert chat.replies()[0].endswith(chat.t("interrupted_mark"))


async def test_thumbs_on_the_question_answer_it(chat, autojump_clock):
    h = chat.h
    h.hs.text_as(chat.user, chat.room, "/confirm")
    await h.settle(5)
    [question] = reply_events(chat)
    assert "👍" in question["content"]["body"]  # the notice says reactions work
    react(chat, question["event_id"], "👍️")  # Element's quick reaction: U+FE0F
    await h.settle(5)
    assert chat.replies()[-1] == "approved"
    chat.mark()
    h.hs.text_as(chat.user, chat.room, "/confirm")
    await h.settle(5)
    [question] = reply_events(chat)
    react(chat, question["event_id"], "👎")
    await h.settle(5)
    assert chat.replies()[-1] == "declined"
    # A 👍 on an answered question does nothing.
    chat.mark()
    react(chat, question["event_id"], "👍")
    await h.settle(5)
    assert chat.replies() == []


async def test_regenerate_writes_into_the_same_reply(chat, autojump_clock):
    h = chat.h
    await chat.say("tell me")
    [reply] = reply_events(chat)
    first = chat.replies()[0]
    react(chat, reply["event_id"], "🔁")
    await h.settle(30)
    assert len(reply_events(chat)) == 1
    assert chat.replies()[0] != first  # the agent answered again (turn 2)
    assert "Turn 2. You said: «tell me»" in chat.replies()[0]
    assert (await received(chat)) == ["tell me", "tell me"]
    # 🔁 on an older reply does nothing.
    await chat.say("next")
    react(chat, reply["event_id"], "🔁")
    await h.settle(30)
    assert len(await received(chat)) == 3


async def test_reactions_of_others_are_ignored(chat, autojump_clock):
    h = chat.h
    mallory = h.user("mallory")
    h.hs.invite_as(h.bot_user, chat.room, mallory)
    h.hs.join_as(mallory, chat.room)
    await chat.say("mine")
    [reply] = reply_events(chat)
    chat.mark()
    react(chat, reply["event_id"], "🔁", user=mallory)
    await h.settle(30)
    assert chat.replies() == []  # no regenerate, no not-owner notice
    assert len(await received(chat)) == 1


# ---- redactions ---------------------------------------------------------------------


async def test_a_redacted_queued_message_never_reaches_the_agent(chat, autojump_clock):
    h = chat.h
    queued = await queue_behind_a_turn(chat, "oops, secret")
    await redact(chat, queued)
    await h.settle(40)
    assert "oops, secret" not in "".join(await received(chat))
    assert await h.app.store.inbox_status(queued) == "withdrawn"
    assert len(reply_events(chat)) == 1
    assert h.app.lanes.pending(Lane.room(chat.room)) == 0


async def test_redacting_the_running_turns_message_stops_it(chat, autojump_clock):
    h = chat.h
    asked = h.hs.text_as(chat.user, chat.room, "/slow 1 30")
    await trio.sleep(4)
    await redact(chat, asked)
    await wait_for(lambda: not h.app.turns.running(chat.room), limit=5)
    await h.settle(5)
    assert chat.replies()[0].endswith(chat.t("interrupted_mark"))


# ---- bursts ------------------------------------------------------------------------


async def test_a_burst_of_20_reaches_the_agent_once_each_and_all_are_answered(chat, autojump_clock):
    h = chat.h
    h.agent.chunk_delay_s = 0.5
    ids = []
    for i in range(20):
        ids.append(h.hs.text_as(chat.user, chat.room, f"burst {i}"))
        await trio.sleep(0.2)  # typed quickly, arriving over several syncs
    await h.settle(120)
    texts = "".join(f"{t}»" for t in await received(chat))
    answers = "\n".join(chat.replies())
    for i in range(20):
        mentions = sum(texts.count(f"burst {i}{end}") for end in ("\n</message>", "»"))
        assert mentions == 1, i
        assert f"burst {i}" in answers, i
    assert 1 < len(await received(chat)) < 20  # merged into a few turns
    assert [await h.app.store.inbox_status(e) for e in ids] == ["done"] * 20
    assert not [r for r in chat.replies() if r.startswith(chat.t("busy", n=0)[:10])]


async def test_merged_messages_carry_their_files(chat, autojump_clock):
    h = chat.h
    h.hs.text_as(chat.user, chat.room, "/slow 1 3")
    await trio.sleep(1)
    h.hs.text_as(chat.user, chat.room, "look at this")
    await send_file(chat, "a.txt", b"aaa", settle=0.5)
    h.hs.text_as(chat.user, chat.room, "and tell me")
    await h.settle(40)
    last = (await received(chat))[-1]
    assert last.startswith('<message n="1" of="3">\nlook at this\n</message>')
    assert 'file="incoming/a.txt"' in last
    assert "Attachments (1): incoming/a.txt" in chat.replies()[-1]


# ---- read receipts ------------------------------------------------------------------


async def test_queued_messages_get_a_read_receipt_answered_ones_need_none(chat, autojump_clock):
    h = chat.h
    receipts = h.hs.receipts
    bot = h.bot_user.user_id
    await chat.say("/instant")
    assert (chat.room, bot) not in receipts  # the answer itself marks it seen
    h.hs.text_as(chat.user, chat.room, "/slow 10 3")  # one text now, the next in 10 s
    await trio.sleep(1)
    queued = h.hs.text_as(chat.user, chat.room, "waiting")
    await trio.sleep(4)
    assert receipts[(chat.room, bot)] == queued  # seen, while the turn still runs
    assert h.app.turns.running(chat.room)


# ---- issue 13 §3: every turn on the room's lane ----------------------------------------


async def test_the_agent_never_sees_two_connections_for_one_conversation(chat, autojump_clock):
    h = chat.h
    open_now: Counter[str] = Counter()
    most: Counter[str] = Counter()

    async def recording(request):
        conversation = AGENT_PATH.match(request.path)["chat"]
        open_now[conversation] += 1
        most[conversation] = max(most[conversation], open_now[conversation])
        try:
            await h.agent.handle(request)
        finally:
            open_now[conversation] -= 1

    h.agent_handler = recording
    h.agent.chunk_delay_s = 0.5
    h.hs.text_as(chat.user, chat.room, "/confirm")
    await h.settle(3)
    assert h.app.turns.awaiting_confirmation(chat.room)
    # The first !yes answers the question (classified onto the control lane while it
    # was pending); the rest find it answered: each becomes a turn on the room lane.
    for _ in range(5):
        h.hs.text_as(chat.user, chat.room, "!yes")
    for i in range(5):
        h.hs.text_as(chat.user, chat.room, f"text {i}")
    await h.settle(120)
    assert most
    assert max(most.values()) == 1
    texts = await received(chat)
    assert (
        texts.count(chat.t("confirm_yes_text"))
        + sum(t.count(f">\n{chat.t('confirm_yes_text')}\n<") for t in texts)
        >= 1
    )
    assert h.app.lanes.pending(Lane.room(chat.room)) == 0
    assert not h.app.turns.running(chat.room)


async def test_a_crash_mid_merged_turn_answers_the_whole_burst_once_into_one_reply(
    chat, autojump_clock
):
    h = chat.h
    h.hs.text_as(chat.user, chat.room, "/instant")
    await h.settle(1)
    chat.mark()
    h.agent.chunk_delay_s = 2.0
    h.hs.text_as(chat.user, chat.room, "/slow 2 3")  # the room is busy for ~4 s
    await trio.sleep(1)
    burst = [h.hs.text_as(chat.user, chat.room, f"part {i}") for i in range(3)]
    await wait_for(lambda: len(reply_events(chat)) == 2, limit=30)  # the merged reply began
    await h.crash()
    await h.start()
    await h.settle(60)
    assert [await h.app.store.inbox_status(e) for e in burst] == ["done"] * 3
    assert len(reply_events(chat)) == 2  # the slow reply and one merged reply, no more
    final = chat.replies()[-1]
    assert all(f"part {i}" in final for i in range(3))


async def test_regenerate_finds_an_instant_reply_too(chat, autojump_clock):
    # An instant reply is one of the turn's final sends (no streaming message): the
    # outbox still remembers it as the turn's reply part.
    h = chat.h
    await chat.say("/instant")
    [reply] = reply_events(chat)
    react(chat, reply["event_id"], "🔁")
    await h.settle(30)
    assert (await received(chat)) == ["/instant", "/instant"]
    edits = [e for e in chat.events() if is_edit(e)]
    assert [e["content"]["m.relates_to"]["event_id"] for e in edits] == [reply["event_id"]]
    assert len(reply_events(chat)) == 1


async def test_answers_without_a_question_count_against_the_rooms_queue(chat, autojump_clock):
    h = chat.h
    await h.restart(SURFACES_BOT__ROOM_QUEUE_SIZE="1", SURFACES_BOT__MERGE_MAX_MESSAGES="1")
    chat.mark()
    h.hs.text_as(chat.user, chat.room, "/slow 1 10")
    await trio.sleep(2)
    for _ in range(6):
        h.hs.text_as(chat.user, chat.room, "!yes")
    await h.settle(120)
    answers = [t for t in await received(chat) if t == chat.t("confirm_yes_text")]
    assert 1 <= len(answers) < 6  # bounded by the queue, like any message
    busy = [r for r in chat.replies() if r.startswith(chat.t("busy", n=0)[:10])]
    assert len(busy) == 1
