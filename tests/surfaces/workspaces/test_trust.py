"""Forged state (issue 13 §1): the bot believes only what it wrote itself.

Any allowed user can create a room, write the bot's binding event into it with any
content, and invite the bot. Each case below is such an attack (or a bot-written
inconsistency), followed by a restart that reconciles the room: the start always
succeeds, the forged room is never adopted, and the victim's state is untouched.
"""

from __future__ import annotations

from typing import Any

import pytest
import structlog.testing

from matrix_client import RoomEvent
from matrix_client.testing import Fault
from surfaces.core import ChatStatus
from surfaces.state import ChatConflictError, ChatConflictField, ChatRecord
from surfaces.workspaces.trust import Distrust, RoomFacts

CHAT = "org.lambda.surfaces.chat"
SPACE = "org.lambda.surfaces.space"


def binding(owner: str, local_id: str, platform_chat_id: str, agent_id: str = "default") -> dict:
    return {
        "version": 1,
        "owner": owner,
        "chat_id": local_id,
        "agent_id": agent_id,
        "platform_chat_id": platform_chat_id,
        "name": "forged",
        "status": "active",
    }


def forge_chat(harness, attacker, content: dict[str, Any]) -> str:
    """The attacker's own room with a binding in it, the bot invited (it joins)."""
    return harness.hs.create_room(
        attacker,
        name="looks legit",
        invite=[harness.bot_user.user_id],
        initial_state=[{"type": CHAT, "state_key": "", "content": content}],
    )


def bot_chat_room(harness, content: dict[str, Any], *, listed_in: str | None = None) -> str:
    """A room the bot itself created with ``content`` as its binding (a bot-written
    inconsistency), linked into the Space ``listed_in`` by the bot when given."""
    hs, bot = harness.hs, harness.bot_user
    room = hs.create_room(bot, initial_state=[{"type": CHAT, "state_key": "", "content": content}])
    if listed_in is not None:
        hs.set_state_as(bot, listed_in, "m.space.child", {"via": ["test.local"]}, room)
    return room


async def chats(tools, owner: str) -> list[tuple[str, str, str, str]]:
    return [
        (c.room_id, c.local_id, c.platform_chat_id, c.agent_id)
        for c in await tools.store.chats_of(owner, status=None)
    ]


async def victim_and_attacker(harness, tools):
    alice = harness.user("alice", displayname="Alice")
    mallory = harness.user("mallory", displayname="Mallory")
    dm_a, space_a, room_a = await harness.onboard(alice)
    dm_m, _, _ = await harness.onboard(mallory)
    await tools.say(alice, room_a, "my secret plans", settle=10)
    victim = await tools.store.get_chat(room_a)
    return alice, mallory, dm_a, space_a, room_a, dm_m, victim


async def test_forged_chat_naming_the_victims_conversation_is_never_adopted(
    harness, tools, autojump_clock
):
    """The attack of the issue: a room whose binding names Alice's agent and platform
    chat id, the bot invited to it and then to a second DM (which used to replace
    ``users.dm_room_id`` and so made the forged room "unknown"), then restarts.
    What Mallory sees: her messages there are answered as in a DM (a re-invite
    notice), never by Alice's agent conversation."""
    hs = harness.hs
    alice, mallory, _, _, room_a, dm_m, victim = await victim_and_attacker(harness, tools)
    pcid = victim.platform_chat_id
    forged = forge_chat(
        harness, mallory, binding(mallory.user_id, "C7", pcid, agent_id=victim.agent_id)
    )
    await harness.settle()
    second_dm = hs.invite_bot(harness.bot_user, inviter=mallory)
    await harness.settle()
    assert (await tools.store.get_user(mallory.user_id)).dm_room_id == dm_m  # not replaced

    for restart in (harness.restart, tools.restart_with_wiped_database):
        with structlog.testing.capture_logs() as logs:
            await restart()
            await harness.settle()
        assert await tools.store.get_chat(forged) is None
        assert [(room_a, "C1", pcid, "default")] == await chats(tools, alice.user_id)
        [untrusted] = [e for e in logs if e["event"] == "reconcile_untrusted"]
        assert (untrusted["room_id"], untrusted["reason"]) == (forged, Distrust.NOT_BOT_SENT)
    await tools.say(mallory, forged, "what were her secret plans?", settle=10)
    assert harness.agent.history[pcid] == ["my secret plans"]
    assert "отправлены повторно" in harness.bot_texts(forged)[-1]
    assert hs.membership(second_dm, harness.bot_user) == "join"


async def test_forged_binding_that_collides_with_the_victims_c1_does_not_stop_the_start(
    harness, tools, autojump_clock
):
    """Owner Alice, ``C1``, her platform chat id: the next start used to die on the
    UNIQUE constraint, on every restart. Now it starts and Alice keeps her C1."""
    alice, mallory, _, _, room_a, _, victim = await victim_and_attacker(harness, tools)
    forged = forge_chat(harness, mallory, binding(alice.user_id, "C1", victim.platform_chat_id))
    await harness.settle()
    await tools.restart_with_wiped_database()
    await tools.restart_with_wiped_database()  # and again: no start is ever lost
    assert await tools.store.get_chat(forged) is None
    assert [(room_a, "C1", victim.platform_chat_id, "default")] == await chats(tools, alice.user_id)
    await tools.say(alice, room_a, "still mine?", settle=10)
    assert "still mine?" in harness.bot_texts(room_a)[-1]


@pytest.mark.parametrize("by_the_bot", [False, True], ids=["forged", "bot-written"])
async def test_superscript_platform_chat_id_does_not_stop_the_start(
    harness, tools, autojump_clock, by_the_bot
):
    """``"²".isdigit()`` is True and ``int("²")`` raises: such a binding (even one in
    the bot's own room, listed in the owner's Space) is refused, the start goes on."""
    alice, mallory, _, space_a, room_a, _, _victim = await victim_and_attacker(harness, tools)
    content = binding(alice.user_id, "C2", "²")
    if by_the_bot:
        room = bot_chat_room(harness, content, listed_in=space_a)
    else:
        room = forge_chat(harness, mallory, content)
    await harness.settle()
    await tools.restart_with_wiped_database()
    assert await tools.store.get_chat(room) is None
    assert [c[0] for c in await chats(tools, alice.user_id)] == [room_a]


async def test_a_room_whose_state_is_too_large_to_read_is_skipped(harness, tools, autojump_clock):
    """A forged room padded with megabytes of state: its full state is more than the
    client reads (8 MiB); reconciliation skips the room instead of waiting for it."""
    alice, mallory, _, _, room_a, _, victim = await victim_and_attacker(harness, tools)
    forged = forge_chat(harness, mallory, binding(alice.user_id, "C2", "77"))
    await harness.settle()
    huge = Fault("response", status=200, body=b"[" + b" " * 9_000_000 + b"]")
    harness.hs.inject("GET", f"/_matrix/client/v3/rooms/{forged}/state", huge, repeat=50)
    with structlog.testing.capture_logs() as logs:
        await tools.restart_with_wiped_database()
    [report] = [e for e in logs if e["event"] == "state_reconciled"]
    assert report["errors"] == 1
    assert await tools.store.get_chat(forged) is None
    assert [(room_a, "C1", victim.platform_chat_id, "default")] == await chats(tools, alice.user_id)


async def test_forged_space_naming_the_victim_leaves_the_victim_alone(
    harness, tools, autojump_clock
):
    """A Space-typed room with the bot's Space binding naming Alice: her ``space_id``
    used to move there and she was invited into Mallory's room."""
    hs = harness.hs
    alice, mallory, dm_a, space_a, _room_a, _, _ = await victim_and_attacker(harness, tools)
    fake_space = hs.create_room(
        mallory,
        is_space=True,
        invite=[harness.bot_user.user_id],
        initial_state=[
            {
                "type": SPACE,
                "state_key": "",
                "content": {"version": 1, "owner": alice.user_id, "dm_room_id": "!mine:x"},
            }
        ],
    )
    await harness.settle()
    for restart in (harness.restart, tools.restart_with_wiped_database):
        await restart()
        await harness.settle()
        user = await tools.store.get_user(alice.user_id)
        assert (user.space_id, user.dm_room_id) == (space_a, dm_a)
    await tools.say(alice, dm_a, "where are my chats?")
    assert hs.membership(fake_space, alice) is None  # never invited there
    assert hs.membership(space_a, alice) == "join"


async def test_bot_written_conflicts_keep_the_older_room_and_are_logged(
    harness, tools, autojump_clock
):
    """Bindings the bot wrote that disagree (two rooms claiming Alice's C1; a room
    claiming Bob's platform chat id): the older room wins, each case is logged with
    both room ids, and the start succeeds."""
    alice = harness.user("alice", displayname="Alice")
    bob = harness.user("bob", displayname="Bob")
    _, space_a, room_a = await harness.onboard(alice)
    _, _, room_b = await harness.onboard(bob)
    bob_chat = await tools.store.get_chat(room_b)
    claims = {}
    for local_id, pcid in (("C1", "40"), ("C2", bob_chat.platform_chat_id)):
        room = bot_chat_room(harness, binding(alice.user_id, local_id, pcid), listed_in=space_a)
        claims[local_id] = room
    with structlog.testing.capture_logs() as logs:
        await tools.restart_with_wiped_database()
    conflicts = {
        (e["what"], e["kept"], e["dropped"]) for e in logs if e["event"] == "reconcile_conflict"
    }
    assert conflicts == {
        (ChatConflictField.LOCAL_ID, room_a, claims["C1"]),
        (ChatConflictField.PLATFORM_CHAT_ID, room_b, claims["C2"]),
    }
    assert [c[0] for c in await chats(tools, alice.user_id)] == [room_a]
    assert (await tools.store.get_chat(room_b)).owner == bob.user_id


async def test_unknown_agent_id_in_a_bot_binding_falls_back_to_the_users_agent(
    harness, tools, autojump_clock
):
    alice = harness.user("alice", displayname="Alice")
    _, space_a, _ = await harness.onboard(alice)
    content = binding(alice.user_id, "C2", "9", agent_id="gone-agent")
    room = bot_chat_room(harness, content, listed_in=space_a)
    with structlog.testing.capture_logs() as logs:
        await tools.restart_with_wiped_database()
    chat = await tools.store.get_chat(room)
    assert (chat.local_id, chat.platform_chat_id, chat.agent_id) == ("C2", "9", "default")
    [fallback] = [e for e in logs if e["event"] == "reconcile_agent_unknown"]
    assert (fallback["agent_id"], fallback["using"]) == ("gone-agent", "default")


async def test_a_bot_room_the_space_does_not_list_is_not_adopted(harness, tools, autojump_clock):
    """The bot's own room with a valid binding, but Alice's Space does not list it
    (nor does any Space of hers): not hers as far as the bot can prove."""
    alice = harness.user("alice", displayname="Alice")
    _, _, room_a = await harness.onboard(alice)
    stray = bot_chat_room(harness, binding(alice.user_id, "C2", "9"))
    await tools.restart_with_wiped_database()
    assert await tools.store.get_chat(stray) is None
    assert [c[0] for c in await chats(tools, alice.user_id)] == [room_a]


async def test_a_second_dm_is_answered_but_does_not_replace_the_first(
    harness, tools, autojump_clock
):
    hs = harness.hs
    alice = harness.user("alice", displayname="Alice")
    dm, _, _ = await harness.onboard(alice)
    with structlog.testing.capture_logs() as logs:
        second = hs.invite_bot(harness.bot_user, inviter=alice)
        await harness.settle()
    assert (await tools.store.get_user(alice.user_id)).dm_room_id == dm
    [seen] = [e for e in logs if e["event"] == "dm_second_room"]
    assert (seen["dm_room_id"], seen["other"]) == (dm, second)
    assert "отправлены повторно" in harness.bot_texts(second)[-1]
    await harness.restart()
    assert (await tools.store.get_user(alice.user_id)).dm_room_id == dm


async def test_lost_create_response_adopts_the_bots_room_not_a_forged_one(
    harness, tools, autojump_clock
):
    """Alice's first chat is created but the response is lost; before the restart
    looks for it, Mallory has a room claiming to be Alice's C1. The bot adopts its
    own room."""
    hs = harness.hs
    mallory = harness.user("mallory", displayname="Mallory")
    alice = harness.user("alice", displayname="Alice")
    await harness.onboard(mallory)
    forged = forge_chat(harness, mallory, binding(alice.user_id, "C1", "1"))
    await harness.settle()
    hs.inject("POST", "/createRoom", Fault.delay(0), Fault.lost_response())
    hs.invite_bot(harness.bot_user, inviter=alice)
    await harness.settle(0.5)
    with structlog.testing.capture_logs() as logs:
        await harness.restart()
        await harness.settle()
    [chat] = await tools.store.chats_of(alice.user_id)
    assert chat.room_id != forged
    assert hs.timeline(chat.room_id)[0]["sender"] == harness.bot_user.user_id
    assert forged in {e["room_id"] for e in logs if e["event"] == "adopt_refused"}


# ---- the rule itself, on state events ------------------------------------------------

BOT = "@bot:hs"


def event(kind: str, sender: str, content: dict, state_key: str = "", ts: int = 1) -> RoomEvent:
    return RoomEvent(f"$e{kind}{state_key}", kind, sender, ts, content, state_key)


def chat_state(creator: str = BOT, sender: str = BOT, **create: Any) -> list[RoomEvent]:
    return [
        event("m.room.create", creator, {"room_version": "12", **create}),
        event(CHAT, sender, binding("@a:hs", "C1", "1")),
    ]


def test_chat_binding_counts_only_when_the_bot_sent_it_in_its_own_room() -> None:
    assert RoomFacts.from_state("!r", chat_state(), BOT).chat is not None
    assert RoomFacts.from_state("!r", chat_state(sender="@a:hs"), BOT).distrust is (
        Distrust.NOT_BOT_SENT
    )
    assert RoomFacts.from_state("!r", chat_state(creator="@a:hs"), BOT).distrust is (
        Distrust.NOT_BOT_CREATED
    )
    # room versions before 11 carry `creator`; it must be the bot too
    old = chat_state()
    old[0] = event("m.room.create", BOT, {"room_version": "10", "creator": "@a:hs"})
    assert RoomFacts.from_state("!r", old, BOT).distrust is Distrust.NOT_BOT_CREATED
    assert RoomFacts.from_state("!r", chat_state()[1:], BOT).distrust is Distrust.NOT_BOT_CREATED


def test_space_listing_needs_the_bots_child_event_and_the_same_owner() -> None:
    chat = RoomFacts.from_state("!c", chat_state(), BOT)
    space_binding = {"version": 1, "owner": "@a:hs"}

    def space(owner_binding: dict, child_sender: str) -> RoomFacts:
        return RoomFacts.from_state(
            "!s",
            [
                event("m.room.create", BOT, {"room_version": "12", "type": "m.space"}),
                event(SPACE, BOT, owner_binding),
                event("m.space.child", child_sender, {}, state_key="!c"),
            ],
            BOT,
        )

    assert space(space_binding, BOT).lists(chat)  # unlinked by !archive still counts
    assert not space(space_binding, "@a:hs").lists(chat)
    assert not space({"version": 1, "owner": "@b:hs"}, BOT).lists(chat)
    not_a_space = RoomFacts.from_state(
        "!s", [event("m.room.create", BOT, {}), event(SPACE, BOT, space_binding)], BOT
    )
    assert not_a_space.distrust is Distrust.NOT_A_SPACE


async def test_store_refuses_a_second_room_for_one_local_or_platform_id(tools, autojump_clock):
    store = tools.store

    def record(room: str, local_id: str, pcid: str) -> ChatRecord:
        return ChatRecord(room, "@a:hs", local_id, "n", "default", pcid, ChatStatus.ACTIVE, {})

    await store.put_chat(record("!one", "C1", "100"))
    await store.put_chat(record("!one", "C1", "100"))  # the same room again: fine
    with pytest.raises(ChatConflictError) as local:
        await store.put_chat(record("!two", "C1", "101"))
    with pytest.raises(ChatConflictError) as platform:
        await store.put_chat(record("!two", "C2", "100"))
    assert (local.value.field, local.value.room_id) == (ChatConflictField.LOCAL_ID, "!one")
    assert platform.value.field is ChatConflictField.PLATFORM_CHAT_ID
    assert await store.get_chat("!two") is None
