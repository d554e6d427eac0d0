"""Onboarding (product.md §2): invite → join → Space + first chat, exactly once."""

from __future__ import annotations

from matrix_client.testing import Fault

CHAT = "org.lambda.surfaces.chat"
SPACE = "org.lambda.surfaces.space"


async def test_invite_creates_space_and_first_chat_linked_both_ways(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    dm = hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle()

    assert hs.membership(dm, harness.bot_user) == "join"
    user = await tools.store.get_user(alice.user_id)
    assert user is not None
    assert user.dm_room_id == dm
    space = user.space_id
    [chat] = await tools.store.chats_of(alice.user_id)
    room = chat.room_id
    assert tools.spaces() == [space]
    assert hs.state_content(space, "m.room.name")["name"] == "Lambda — Alice"
    assert hs.state_content(space, SPACE) == {
        "version": 1,
        "owner": alice.user_id,
        "dm_room_id": dm,
    }
    assert hs.state_content(room, "m.room.name")["name"] == "Чат 1"
    assert hs.state_content(space, "m.space.child", room)["via"] == ["test.local"]
    assert hs.state_content(room, "m.space.parent", space)["via"] == ["test.local"]
    # invited to both; the bot created both (v12: all-powerful, so not listed in the
    # power levels — Synapse would refuse them otherwise); rooms are unencrypted
    assert hs.membership(space, alice) == "invite"
    assert hs.membership(room, alice) == "invite"
    for r in (space, room):
        assert hs.timeline(r)[0]["sender"] == harness.bot_user.user_id
        assert hs.state_content(r, "m.room.create")["room_version"] == "12"
        assert harness.bot_user.user_id not in hs.state_content(r, "m.room.power_levels")["users"]
        assert hs.state_content(r, "m.room.encryption") is None
    # the bot's binding in the room
    assert hs.state_content(room, CHAT) == {
        "version": 1,
        "owner": alice.user_id,
        "chat_id": "C1",
        "agent_id": "default",
        "platform_chat_id": chat.platform_chat_id,
        "name": "Чат 1",
        "status": "active",
    }
    # what the user sees: a welcome in the room, a reply in the DM
    welcome = tools.messages(room)
    assert len(welcome) == 1
    assert welcome[0]["body"].startswith("Привет, Alice! Пиши — я здесь.")
    assert "!new" in welcome[0]["body"]
    [reply] = harness.bot_texts(dm)
    assert "«Lambda — Alice»" in reply
    assert "«Чат 1»" in reply
    assert tools.created_rooms() == 2


async def test_space_name_falls_back_to_the_mxid(harness, tools, autojump_clock):
    bob = harness.user("bob")  # no display name
    harness.hs.invite_bot(harness.bot_user, inviter=bob)
    await harness.settle()
    user = await tools.store.get_user(bob.user_id)
    assert harness.hs.state_content(user.space_id, "m.room.name")["name"] == (
        "Lambda — @bob:test.local"
    )
    [chat] = await tools.store.chats_of(bob.user_id)
    assert harness.bot_texts(chat.room_id)[0].startswith("Привет, @bob:test.local!")


async def test_two_dms_inviting_at_once_provision_one_workspace(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    dm1 = hs.invite_bot(harness.bot_user, inviter=alice)
    dm2 = hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle()

    assert hs.membership(dm1, harness.bot_user) == "join"
    assert hs.membership(dm2, harness.bot_user) == "join"
    assert len(tools.spaces()) == 1
    assert len(tools.bot_rooms()) == 1
    assert tools.created_rooms() == 2
    assert len(await tools.store.chats_of(alice.user_id)) == 1
    # first DM: "workspace ready"; second: "invites sent again" — one reply each
    assert len(harness.bot_texts(dm1)) == 1
    assert "Готово" in harness.bot_texts(dm1)[0]
    assert harness.bot_texts(dm2) == ["Приглашения в пространство и 1 чат отправлены повторно."]


async def test_an_invite_racing_a_dm_message_provisions_once(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    dm1 = hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle()
    # a second DM invite and a message in the first arrive in the same sync
    hs.text_as(alice, dm1, "hello?")
    dm2 = hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle()
    assert len(tools.spaces()) == 1
    assert len(tools.bot_rooms()) == 1
    assert len(harness.bot_texts(dm1)) == 2
    assert len(harness.bot_texts(dm2)) == 1


async def test_same_invite_seen_twice_is_admitted_once(harness, tools, autojump_clock):
    """A sync replayed after a crash (same since-token) lists the invite again,
    possibly with a newer next_batch: it must be the same inbox item."""
    from matrix_client import InviteItem, SyncBatch
    from surfaces.intake import IntakePolicy, classify

    policy = IntakePolicy(own_user_id="@bot:test.local", is_allowed=lambda u: True)
    invite = InviteItem("!dm:test.local", "@alice:test.local", True, False)
    first = classify(SyncBatch(None, "s5", "s9", invites=[invite]), policy)
    replay = classify(SyncBatch(None, "s5", "s12", invites=[invite]), policy)
    assert [i.event_id for i in first] == [i.event_id for i in replay]
    store = tools.store
    assert len(await store.admit("s9", first)) == 1
    assert await store.admit("s12", replay) == []


async def test_restart_after_the_chat_creation_failed_finishes_the_same_workspace(
    harness, tools, autojump_clock
):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    # the Space is created; creating the chat fails (the room is not created)
    hs.inject("POST", "/createRoom", Fault.delay(0), Fault.error(500, "M_UNKNOWN", "boom"))
    dm = hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle(0.5)
    assert len(tools.spaces()) == 1
    assert tools.bot_rooms() == []
    await harness.restart()
    await harness.settle()

    assert len(tools.spaces()) == 1
    [room] = tools.bot_rooms()
    [chat] = await tools.store.chats_of(alice.user_id)
    assert chat.room_id == room
    assert chat.local_id == "C1"
    assert chat.platform_chat_id == "1"  # the intent's id, not a fresh allocation
    assert hs.state_content(room, "m.room.name")["name"] == "Чат 1"
    user = await tools.store.get_user(alice.user_id)
    assert hs.state_content(user.space_id, "m.space.child", room)["via"]
    assert harness.bot_texts(room)[0].startswith("Привет, Alice!")
    [reply] = harness.bot_texts(dm)
    assert "Готово" in reply


async def test_lost_create_room_response_then_restart_adopts_the_room(
    harness, tools, autojump_clock
):
    """createRoom applied, response lost (never blind-retried): the restarted bot
    finds the room by its state event instead of creating another."""
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    hs.inject("POST", "/createRoom", Fault.delay(0), Fault.lost_response())
    dm = hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle(0.5)
    assert len(tools.bot_rooms()) == 1  # created on the server, unknown to the bot
    assert await tools.store.chats_of(alice.user_id) == []
    await harness.restart()
    await harness.settle()

    assert tools.created_rooms() == 2  # Space + chat: nothing created twice
    assert len(tools.spaces()) == 1
    [room] = tools.bot_rooms()
    [chat] = await tools.store.chats_of(alice.user_id)
    assert (chat.room_id, chat.local_id, chat.platform_chat_id) == (room, "C1", "1")
    user = await tools.store.get_user(alice.user_id)
    assert hs.state_content(user.space_id, "m.space.child", room)["via"]
    assert [i.status for i in await tools.store.open_intents(alice.user_id)] == []
    assert len(harness.bot_texts(room)) == 1  # the welcome, once
    assert len(harness.bot_texts(dm)) == 1


async def test_lost_space_response_is_adopted(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    hs.inject("POST", "/createRoom", Fault.lost_response())
    hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle(0.5)
    await harness.restart()
    await harness.settle()
    assert len(tools.spaces()) == 1
    assert tools.created_rooms() == 2
    [chat] = await tools.store.chats_of(alice.user_id)
    assert chat.local_id == "C1"


async def test_repeat_invite_and_dm_message_reinvite_and_reply(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    dm, space, room = await harness.onboard(alice)
    hs.leave_as(alice, space)
    hs.leave_as(alice, room)

    await tools.say(alice, dm, "где мои чаты?")
    assert hs.membership(space, alice) == "invite"
    assert hs.membership(room, alice) == "invite"
    assert harness.bot_texts(dm)[-1] == ("Приглашения в пространство и 1 чат отправлены повторно.")

    # the bot is kicked from the DM and invited again: it joins and replies
    hs.kick_as(alice, dm, harness.bot_user)
    hs.invite_as(alice, dm, harness.bot_user, is_direct=True)
    await harness.settle()
    assert hs.membership(dm, harness.bot_user) == "join"
    assert len(harness.bot_texts(dm)) == 3
    # a brand-new DM from the same user: also a reply, still one workspace
    dm2 = hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle()
    assert len(harness.bot_texts(dm2)) == 1
    assert len(tools.spaces()) == 1
    assert tools.created_rooms() == 2
    assert harness.agent.turns_served == 0


async def test_dm_with_no_active_chat_creates_one(harness, tools, autojump_clock):
    alice = harness.user("alice", displayname="Alice")
    dm, _, room = await harness.onboard(alice)
    await tools.say(alice, room, "!archive")
    await tools.say(alice, dm, "hi")
    chats = await tools.store.chats_of(alice.user_id)
    assert [c.local_id for c in chats] == ["C2"]
    assert harness.bot_texts(dm)[-1] == (
        "Активных чатов не было — создан новый: Чат 2. Приглашения отправлены."
    )
    assert harness.hs.membership(chats[0].room_id, alice) == "invite"


async def test_new_in_the_dm_creates_a_chat(harness, tools, autojump_clock):
    alice = harness.user("alice", displayname="Alice")
    dm, space, _ = await harness.onboard(alice)
    await tools.say(alice, dm, "!new Идеи")
    chats = await tools.store.chats_of(alice.user_id)
    assert [(c.local_id, c.name) for c in chats] == [("C1", "Чат 1"), ("C2", "Идеи")]
    assert harness.bot_texts(dm)[-1] == "Создан чат: Идеи (C2)"
    new_room = chats[1].room_id
    assert harness.hs.membership(new_room, alice) == "invite"
    assert harness.hs.state_content(space, "m.space.child", new_room)["via"]


async def test_encrypted_dm_gets_one_notice_and_still_provisions(harness, tools, autojump_clock):
    # matrix.encryption: false (the harness default) keeps this behaviour; the encrypting
    # bot reads the DM instead (tests/surfaces/session/test_e2ee_bot.py).
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    dm = hs.invite_bot(harness.bot_user, inviter=alice, encrypted=True)
    await harness.settle()
    user = await tools.store.get_user(alice.user_id)
    assert user.space_id
    assert len(await tools.store.chats_of(alice.user_id)) == 1
    notices = tools.notices(dm)
    assert sum("зашифрован" in n for n in notices) == 1

    # undecryptable events in the DM: no crash, no loop, still one notice
    for i in range(3):
        hs.send_as(
            alice,
            dm,
            {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": f"x{i}"},
            event_type="m.room.encrypted",
        )
    await harness.settle(10)
    notices = tools.notices(dm)
    assert sum("зашифрован" in n for n in notices) == 1
    assert len(tools.spaces()) == 1
    assert harness.agent.turns_served == 0
    assert await tools.store.pending_inbox() == []
    # the bot still works afterwards
    await tools.say(alice, dm, "ping")
    assert "отправлены повторно" in harness.bot_texts(dm)[-1]


async def test_undecryptable_event_in_a_working_room_is_ignored(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    before = len(harness.bot_texts(room))
    hs.send_as(
        alice,
        room,
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x"},
        event_type="m.room.encrypted",
    )
    await harness.settle()
    assert len(harness.bot_texts(room)) == before
    assert await tools.store.pending_inbox() == []
    await tools.say(alice, room, "still here?", settle=10)
    assert "still here?" in harness.bot_texts(room)[-1]
