"""The chat transcript seen from the room (issue 15 §3): what turns record, !context,
!save / !snapshots / !load / !restore priming a fresh agent conversation, the offer of
!restore after an agent restart, a crash while priming, !forget, owners kept apart."""

from __future__ import annotations

import trio
from trio_websocket import WebSocketRequest

from surfaces.i18n import t
from surfaces.turns.primer import BEGIN, END


def tr(key: str, **fields) -> str:
    return t("ru", key, **fields)


async def onboarded(harness, name="alice", display="Alice"):
    user = harness.user(name, displayname=display)
    _, _, room = await harness.onboard(user)
    return user, room


async def pid(tools, room: str) -> str:
    return (await tools.store.get_chat(room)).platform_chat_id


async def test_turns_record_the_transcript_and_context_shows_it(harness, tools, autojump_clock):
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "hello\nthere", settle=10)
    await tools.say(alice, room, "second", settle=10)
    entries = await tools.store.transcript(room)
    assert [e.user_text for e in entries] == ["hello\nthere", "second"]
    assert entries[0].agent_text.startswith("Turn 1. You said: «hello\nthere».")
    assert entries[1].agent_text == tools.messages(room)[-1]["body"]  # the final reply text
    await tools.say(alice, room, "!context")
    lines = tools.last(room)["body"].splitlines()
    assert tools.last(room)["msgtype"] == "m.notice"
    assert lines[0] == tr("context_header", n=2, total=2)
    assert lines[1] == "Ты: hello there"  # one line per side
    assert lines[2].startswith("Агент: Turn 1.")
    assert lines[3] == "Ты: second"
    # a command is not an exchange
    assert len(await tools.store.transcript(room)) == 2


async def test_context_is_bounded_per_line_and_in_count(harness, tools, autojump_clock):
    alice, room = await onboarded(harness)
    for n in range(12):
        await tools.say(alice, room, f"m{n} " + "x" * 1000, settle=10)
    await tools.say(alice, room, "!context")
    body = tools.last(room)["body"]
    lines = body.splitlines()
    assert lines[0] == tr("context_header", n=10, total=12)
    assert "m1 " not in body
    assert "m2 " in body
    assert all(len(line) <= 310 for line in lines)


async def test_empty_transcript_answers(harness, tools, autojump_clock):
    alice, room = await onboarded(harness)
    for command, key in [
        ("!context", "context_empty"),
        ("!save", "save_empty"),
        ("!restore", "restore_empty"),
        ("!snapshots", "snapshots_empty"),
        ("!forget", "forgot_nothing"),
        ("!load", "load_usage"),
        ("!load nope", "load_unknown"),
    ]:
        await tools.say(alice, room, command)
        assert tools.last(room)["body"] == tr(key, name="nope"), command


async def test_save_snapshots_load_primes_a_new_platform_chat(harness, tools, autojump_clock):
    agent = harness.agent
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "my name is Ada", settle=10)
    await tools.say(alice, room, "I like trio", settle=10)
    await tools.say(alice, room, "!save Demo")
    assert tools.last(room)["body"] == tr("saved", name="demo", n=2)
    await tools.say(alice, room, "!snapshots")
    listing = tools.last(room)["body"].splitlines()
    assert listing[0] == tr("snapshots_header")
    assert listing[1].startswith("• demo — 2 обмена, ")
    assert listing[1].endswith("(из C1)")

    await tools.say(alice, room, "!clear")
    cleared = await pid(tools, room)
    await tools.say(alice, room, "!load demo", settle=10)
    loaded = await pid(tools, room)
    assert loaded != cleared
    assert harness.hs.state_content(room, "org.lambda.surfaces.chat")["platform_chat_id"] == loaded
    # one USER_MESSAGE: the primer, with the transcript in it
    assert len(agent.history[loaded]) == 1
    primer = agent.history[loaded][0]
    assert primer.startswith(f"{BEGIN} exchanges=2 omitted=0>>>")
    assert primer.endswith(END)
    assert "user: my name is Ada\n" in primer
    assert "user: I like trio\n" in primer
    texts = harness.bot_texts(room)
    assert texts[-2] == tr("context_loaded", name="demo", n=2, omitted="")
    assert texts[-1] == "Transcript received: 2 exchanges. I remember them now."
    # the user goes on: the agent knows the earlier conversation
    await tools.say(alice, room, "/recall", settle=10)
    assert tools.last(room)["body"] == (
        "I remember 2 earlier messages: «my name is Ada» · «I like trio»"
    )
    # the primer is not in the transcript; the snapshot's exchanges are
    users = [e.user_text for e in await tools.store.transcript(room)]
    assert users == ["my name is Ada", "I like trio", "/recall"]


async def test_load_into_another_chat_and_names(harness, tools, autojump_clock):
    agent = harness.agent
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "first", settle=10)
    await tools.say(alice, room, "!save ../etc")
    assert tools.last(room)["body"] == tr("save_bad_name", limit=40)
    await tools.say(alice, room, "!save " + "a" * 41)
    assert tools.last(room)["body"] == tr("save_bad_name", limit=40)
    await tools.say(alice, room, "!save план.v2")  # letters of any script
    assert tools.last(room)["body"] == tr("saved", name="план.v2", n=1)
    await tools.say(alice, room, "second", settle=10)
    await tools.say(alice, room, "!save ПЛАН.v2")  # names are case-insensitive
    assert tools.last(room)["body"] == tr("saved_replaced", name="план.v2", n=2)
    await tools.say(alice, room, "!save")  # default: the date and time
    assert tools.last(room)["body"].startswith("Снимок «20")

    await tools.say(alice, room, "!new")
    other = (await tools.store.chats_of(alice.user_id))[-1].room_id
    harness.hs.join_as(alice, other)
    await harness.settle()
    await tools.say(alice, other, "!load план.v2", settle=10)
    primer = agent.history[await pid(tools, other)][0]
    assert "user: first\n" in primer
    assert "user: second\n" in primer


async def test_another_users_snapshot_cannot_be_loaded(harness, tools, autojump_clock):
    alice, room_a = await onboarded(harness)
    bob, room_b = await onboarded(harness, "bob", "Bob")
    await tools.say(bob, room_b, "bob's secret", settle=10)
    await tools.say(bob, room_b, "!save mine")
    before = await pid(tools, room_a)
    await tools.say(alice, room_a, "!load mine", settle=10)
    assert tools.last(room_a)["body"] == tr("load_unknown", name="mine")
    assert await pid(tools, room_a) == before
    assert not any("secret" in m for m in harness.agent.history.get(before, []))
    await tools.say(alice, room_a, "!snapshots")
    assert tools.last(room_a)["body"] == tr("snapshots_empty")


async def test_snapshot_limit(harness, tools, autojump_clock):
    await harness.restart(SURFACES_CONTEXT__MAX_SNAPSHOTS="1")
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "first", settle=10)
    await tools.say(alice, room, "!save a")
    await tools.say(alice, room, "!save b")
    assert tools.last(room)["body"] == tr("snapshots_limit", limit=1)
    await tools.say(alice, room, "!save a")
    assert tools.last(room)["body"] == tr("saved_replaced", name="a", n=1)


async def test_restore_reprimes_from_the_chats_own_transcript(harness, tools, autojump_clock):
    agent = harness.agent
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "remember 42", settle=10)
    old = await pid(tools, room)
    await tools.say(alice, room, "!restore", settle=10)
    new = await pid(tools, room)
    assert new != old
    assert agent.history[new][0].startswith(BEGIN)
    assert "user: remember 42\n" in agent.history[new][0]
    assert harness.bot_texts(room)[-2] == tr("context_restored", name="", n=1, omitted="")
    assert [e.user_text for e in await tools.store.transcript(room)] == ["remember 42"]


async def test_restarted_agent_is_offered_restore_once(harness, tools, autojump_clock):
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "one", settle=10)
    await tools.say(alice, room, "two", settle=10)
    assert tr("restore_offer") not in tools.notices(room)  # the same agent process
    harness.agent.boot_id = "after-restart"
    harness.agent.history.clear()
    await tools.say(alice, room, "three", settle=10)
    assert tools.notices(room).count(tr("restore_offer")) == 1
    assert tools.last(room)["body"] == tr("restore_offer")  # after the reply
    await tools.say(alice, room, "four", settle=10)
    await harness.restart()  # remembered durably, not only in memory
    await tools.say(alice, room, "five", settle=10)
    assert tools.notices(room).count(tr("restore_offer")) == 1
    await tools.say(alice, room, "!restore", settle=10)
    assert "user: three\n" in harness.agent.history[await pid(tools, room)][0]
    assert tools.notices(room).count(tr("restore_offer")) == 1


async def test_a_new_chat_with_no_transcript_is_not_offered_restore(harness, tools, autojump_clock):
    alice, room = await onboarded(harness)
    harness.agent.boot_id = "b2"
    await tools.say(alice, room, "hello", settle=10)
    assert tr("restore_offer") not in tools.notices(room)


async def test_crash_during_priming_primes_once(harness, tools, autojump_clock):
    agent = harness.agent
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "keep me", settle=10)
    await tools.say(alice, room, "!save k")
    stall = trio.Event()

    async def stalling(request: WebSocketRequest) -> None:
        stall.set()
        await trio.sleep_forever()  # the agent never answers the first primer

    harness.agent_handler = stalling
    harness.hs.text_as(alice, room, "!load k")
    await stall.wait()
    during = await pid(tools, room)
    await harness.crash()
    harness.agent_handler = None
    await harness.start()
    await harness.settle(30)
    assert await pid(tools, room) == during  # rotated once, not again by the re-run
    assert len(agent.history[during]) == 1
    texts = harness.bot_texts(room)
    assert texts.count(tr("context_loaded", name="k", n=1, omitted="")) == 1
    assert texts.count("Transcript received: 1 exchanges. I remember them now.") == 1
    assert texts[-1] == "Transcript received: 1 exchanges. I remember them now."


async def test_forget_deletes_transcript_and_snapshots(harness, tools, autojump_clock):
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "one", settle=10)
    await tools.say(alice, room, "two", settle=10)
    await tools.say(alice, room, "!save s1")
    await tools.say(alice, room, "!save s2")
    await tools.say(alice, room, "!forget")
    assert tools.last(room)["body"] == tr("forgot", entries=2, snapshots=2)
    assert await tools.store.transcript(room) == []
    assert await tools.store.snapshots_of(alice.user_id) == []
    await tools.say(alice, room, "!forget")
    assert tools.last(room)["body"] == tr("forgot_nothing")
    await tools.say(alice, room, "!load s1")
    assert tools.last(room)["body"] == tr("load_unknown", name="s1")


async def test_help_lists_the_context_commands_in_both_locales():
    for locale in ("ru", "en"):
        help_text = t(locale, "help")
        for command in ("!context", "!save", "!snapshots", "!load", "!restore", "!forget"):
            assert command in help_text, (locale, command)


async def test_file_names_in_and_out_are_recorded(harness, tools, autojump_clock, monkeypatch):
    import trio._path

    async def run_sync(fn, *args, **kwargs):  # file I/O on the loop (virtual clock)
        await trio.lowlevel.checkpoint()
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)
    monkeypatch.setattr(trio._path, "run_sync", run_sync)
    alice, room = await onboarded(harness)
    async with harness.hs.user_client(alice) as client:
        mxc = await client.upload(b"data", content_type="text/plain", filename="notes.txt")
    content = {"msgtype": "m.file", "body": "notes.txt", "url": mxc, "info": {"size": 4}}
    harness.hs.send_as(alice, room, content)
    await harness.settle(10)
    await tools.say(alice, room, "/file out.txt hi", settle=10)
    entry = (await tools.store.transcript(room))[-1]
    assert entry.user_text == "/file out.txt hi"
    assert entry.files_in == ("notes.txt",)
    assert entry.files_out == ("out.txt",)
    await tools.say(alice, room, "!context")
    assert "  📎 notes.txt, out.txt" in tools.last(room)["body"].splitlines()


async def test_load_in_a_thread_primes_the_threads_conversation(harness, tools, autojump_clock):
    agent = harness.agent
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "in the room", settle=10)
    await tools.say(alice, room, "!save r")
    root = harness.hs.text_as(alice, room, "a thread")
    await harness.settle(10)
    harness.hs.send_as(
        alice,
        room,
        {
            "msgtype": "m.text",
            "body": "!load r",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        },
    )
    await harness.settle(10)
    thread = await tools.store.thread(room, root)
    assert agent.history[thread.platform_chat_id][-1].startswith(BEGIN)
    assert "user: in the room\n" in agent.history[thread.platform_chat_id][-1]
    # the room's conversation is untouched; the thread's transcript is the snapshot's
    room_side = [e.user_text for e in await tools.store.transcript(room)]
    assert room_side == ["in the room", "a thread"]  # the root is in the main timeline
    assert [e.user_text for e in await tools.store.transcript(room, root)] == ["in the room"]


async def test_an_archived_chats_transcript_can_be_saved_and_forgotten(
    harness, tools, autojump_clock
):
    alice, room = await onboarded(harness)
    await tools.say(alice, room, "before archiving", settle=10)
    await tools.say(alice, room, "!archive")
    await tools.say(alice, room, "!save old")
    assert tools.last(room)["body"] == tr("saved", name="old", n=1)
    await tools.say(alice, room, "!restore")  # needs the agent: not in an archived chat
    assert tools.last(room)["body"] == tr("archived_room")
    await tools.say(alice, room, "!forget")
    assert tools.last(room)["body"] == tr("forgot", entries=1, snapshots=1)
