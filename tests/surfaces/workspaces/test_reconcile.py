"""A lost database is rebuilt from Matrix (product.md §8): the Space tree and the
bot's own state events, without creating rooms, reporting what it recovered."""

from __future__ import annotations

import structlog.testing

from surfaces.state import Store
from surfaces.workspaces import reconcile

CHAT = "org.lambda.surfaces.chat"


async def _bindings(store: Store, *owners: str) -> dict[str, tuple]:
    out = {}
    for owner in owners:
        for c in await store.chats_of(owner, status=None):
            out[c.room_id] = (c.owner, c.local_id, c.name, c.agent_id, c.platform_chat_id, c.status)
    return out


async def _workspaces(harness, tools):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    bob = harness.user("bob", displayname="Bob")
    dm_a, space_a, room_a = await harness.onboard(alice)
    _, space_b, room_b = await harness.onboard(bob)
    await tools.say(alice, room_a, "!new Второй")
    await tools.say(alice, room_a, "!new Третий")
    room_a3 = (await tools.store.chats_of(alice.user_id))[2].room_id
    hs.join_as(alice, room_a3)
    await harness.settle()
    await tools.say(alice, room_a3, "!archive")
    await tools.say(bob, room_b, "!clear")
    await tools.say(alice, room_a, "remember me", settle=10)
    return alice, bob, dm_a, space_a, space_b, room_a


async def test_wiped_database_is_rebuilt_without_creating_rooms(harness, tools, autojump_clock):
    hs = harness.hs
    alice, bob, dm_a, space_a, _, room_a = await _workspaces(harness, tools)
    store = tools.store
    before = await _bindings(store, alice.user_id, bob.user_id)
    max_platform = max(int(b[4]) for b in before.values())
    assert max_platform == 5  # 4 chats, then bob's !clear rotated his to 5
    users_before = {u.user_id: (u.space_id, u.dm_room_id) for u in await store.all_users()}
    created = tools.created_rooms()
    served = harness.agent.turns_served

    with structlog.testing.capture_logs() as logs:
        await tools.restart_with_wiped_database()
        await harness.settle()
    store = tools.store
    assert tools.created_rooms() == created  # reconciliation never creates rooms
    assert await _bindings(store, alice.user_id, bob.user_id) == before
    users_after = {u.user_id: (u.space_id, u.dm_room_id) for u in await store.all_users()}
    assert users_after == users_before
    [report] = [e for e in logs if e["event"] == "state_reconciled"]
    assert (report["chats"], report["spaces"]) == (4, 2)
    assert report["errors"] == 0
    assert report["users"] == [alice.user_id, bob.user_id]
    assert report["platform_chat_seq"] == "5"
    # the old timelines were history on the token-less first sync: nothing re-answered
    assert harness.agent.turns_served == served
    assert await store.pending_inbox() == []

    # the counters continue: next C<n> and a platform id above every recovered one
    await tools.say(alice, room_a, "!new")
    assert tools.last(room_a)["body"] == "Создан чат: Чат 4 (C4)"
    newest = (await store.chats_of(alice.user_id))[-1]
    assert int(newest.platform_chat_id) == max_platform + 1
    assert hs.state_content(space_a, "m.space.child", newest.room_id)["via"]
    # same platform chat id → the agent's memory continues
    await tools.say(alice, room_a, "still me?", settle=10)
    pid = before[room_a][4]
    assert harness.agent.history[pid] == ["remember me", "still me?"]
    # the DM still works, with no second workspace
    await tools.say(alice, dm_a, "hi")
    assert "отправлены повторно" in harness.bot_texts(dm_a)[-1]
    assert len(tools.spaces()) == 2


async def test_reconcile_twice_is_idempotent(harness, tools, autojump_clock):
    alice, bob, *_ = await _workspaces(harness, tools)
    before = await _bindings(tools.store, alice.user_id, bob.user_id)
    matrix = harness.app.matrix
    fresh = Store.open_sync(tools.tmp_path / "rebuilt" / "surfaces.db", inline=True)
    try:
        bot_id = harness.bot_user.user_id
        first = await reconcile(matrix, fresh, harness.app.registry, bot_id)
        counts = await fresh.counts()
        platform = await fresh.get_value(Store.PLATFORM_SEQ_KEY)
        second = await reconcile(matrix, fresh, harness.app.registry, bot_id)
        assert (first.chats, first.spaces, first.errors) == (4, 2, 0)
        # the second run finds nothing new: Spaces, chats and the DM are all known
        assert (second.scanned, second.chats, second.spaces) == (0, 0, 0)
        assert await fresh.counts() == counts
        assert await fresh.get_value(Store.PLATFORM_SEQ_KEY) == platform
        assert await _bindings(fresh, alice.user_id, bob.user_id) == before
        alice_rec = await fresh.get_user(alice.user_id)
        assert alice_rec.chat_seq == 3
    finally:
        fresh.close()
    assert tools.created_rooms() == 4 + 2  # onboarding x2 + !new x2


async def test_messages_on_a_tokenless_first_sync_are_history(harness, tools, autojump_clock):
    """With no since-token (fresh or lost database), timelines hold history that may
    already have been answered: only invites are acted on."""
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    await tools.say(alice, room, "answered before", settle=10)
    await tools.stop()
    hs.text_as(alice, room, "sent while the bot was down, database lost")
    carol = harness.user("carol", displayname="Carol")
    dm_c = hs.invite_bot(harness.bot_user, inviter=carol)
    served = harness.agent.turns_served
    await tools.restart_with_wiped_database()
    await harness.settle(10)
    assert harness.agent.turns_served == served
    assert sum("answered before" in t for t in harness.bot_texts(room)) == 1
    # the invite still counts
    assert hs.membership(dm_c, harness.bot_user) == "join"
    assert (await tools.store.get_user(carol.user_id)).space_id
    # and new messages are answered again
    await tools.say(alice, room, "after restart", settle=10)
    assert "after restart" in harness.bot_texts(room)[-1]


async def test_messages_while_down_are_answered_when_the_database_survives(
    harness, tools, autojump_clock
):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    await tools.stop()
    hs.text_as(alice, room, "while you were out")
    await harness.restart()
    await harness.settle(10)
    texts = harness.bot_texts(room)
    assert sum("while you were out" in t for t in texts) == 1


async def test_invalid_state_events_are_not_adopted(harness, tools, autojump_clock):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    _, _, room = await harness.onboard(alice)
    # a room with a broken binding (non-numeric platform id) the bot is joined to
    junk = hs.create_room(harness.bot_user, name="junk")
    hs.set_state_as(
        harness.bot_user,
        junk,
        CHAT,
        {"owner": alice.user_id, "chat_id": "C9", "agent_id": "default", "platform_chat_id": "x"},
    )
    await tools.restart_with_wiped_database()
    await harness.settle()
    assert await tools.store.get_chat(junk) is None
    assert [c.room_id for c in await tools.store.chats_of(alice.user_id)] == [room]
