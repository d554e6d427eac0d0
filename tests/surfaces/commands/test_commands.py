"""Working-room commands (product.md §4), seen from the room."""

from __future__ import annotations

import pytest

from surfaces.core import ItemKind, Lane
from surfaces.intake import Command, parse_command
from surfaces.state import InboxItem

CHAT = "org.lambda.surfaces.chat"


async def onboarded(harness, name="alice", display="Alice"):
    user = harness.user(name, displayname=display)
    dm, space, room = await harness.onboard(user)
    return user, dm, space, room


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!new", Command("new", "", "!new")),
        ("!Rename  My   chat ", Command("rename", "My chat", "!Rename")),
        ("!rename\tTabbed name", Command("rename", "Tabbed name", "!rename")),
        ("!reset", Command("clear", "", "!reset")),
        ("!new first line\nsecond line", Command("new", "first line", "!new")),
        ("!frobnicate x", Command("frobnicate", "x", "!frobnicate")),
        ("hello", None),
        ("!", None),
        ("! new", None),
        ("!!", None),
        ("!a.b", None),
    ],
)
def test_parse_command(body, expected):
    assert parse_command(body) == expected


async def test_new_creates_numbered_chats_and_counters_are_never_reused(
    harness, tools, autojump_clock
):
    hs = harness.hs
    alice, _, space, room = await onboarded(harness)
    await tools.say(alice, room, "!new Проект X")
    assert tools.last(room)["body"] == "Создан чат: Проект X (C2)"
    assert tools.last(room)["msgtype"] == "m.notice"
    await tools.say(alice, room, "!new")
    assert tools.last(room)["body"] == "Создан чат: Чат 3 (C3)"
    chats = await tools.store.chats_of(alice.user_id)
    assert [c.local_id for c in chats] == ["C1", "C2", "C3"]
    for chat in chats[1:]:
        assert hs.membership(chat.room_id, alice) == "invite"
        assert hs.state_content(space, "m.space.child", chat.room_id)["via"]
        assert hs.state_content(chat.room_id, "m.space.parent", space)
        assert hs.state_content(chat.room_id, CHAT)["chat_id"] == chat.local_id
        assert hs.state_content(chat.room_id, CHAT)["platform_chat_id"] == chat.platform_chat_id
    # archive C3, then !new: C4, never C3 again
    hs.join_as(alice, chats[2].room_id)
    await harness.settle()
    await tools.say(alice, chats[2].room_id, "!archive")
    await tools.say(alice, room, "!new")
    assert tools.last(room)["body"] == "Создан чат: Чат 4 (C4)"
    ids = [c.platform_chat_id for c in await tools.store.chats_of(alice.user_id, status=None)]
    assert len(set(ids)) == 4


async def test_platform_chat_ids_are_unique_across_users(harness, tools, autojump_clock):
    alice, _, _, room_a = await onboarded(harness)
    bob, _, _, room_b = await onboarded(harness, "bob", "Bob")
    await tools.say(alice, room_a, "!new")
    await tools.say(bob, room_b, "!new")
    a = await tools.store.chats_of(alice.user_id)
    b = await tools.store.chats_of(bob.user_id)
    assert [c.local_id for c in a] == ["C1", "C2"]
    assert [c.local_id for c in b] == ["C1", "C2"]  # per-user counters
    ids = [c.platform_chat_id for c in a + b]
    assert sorted(ids, key=int) == ["1", "2", "3", "4"]


async def test_new_rerun_with_the_same_event_returns_the_same_chat(harness, tools, autojump_clock):
    """A crash after ``!new`` created its room: the re-run must not create another."""
    alice, _, _, room = await onboarded(harness)
    before = tools.created_rooms()
    commands = harness.app.router.commands
    chat = await tools.store.get_chat(room)
    item = InboxItem(
        "$new-event", Lane.room(room), room, alice.user_id, ItemKind.COMMAND, {"body": "!new Twice"}
    )
    cmd = parse_command("!new Twice")
    await commands.handle(item, chat, cmd)
    await commands.handle(item, chat, cmd)
    assert tools.created_rooms() == before + 1
    assert [c.local_id for c in await tools.store.chats_of(alice.user_id)] == ["C1", "C2"]
    # and the reply is sent once (same txn id)
    assert [m["body"] for m in tools.messages(room)].count("Создан чат: Twice (C2)") == 1
    # the same through Rooms directly
    again = await commands.chats.rooms.create_chat(alice.user_id, "Twice", key="$new-event")
    assert again.local_id == "C2"
    assert tools.created_rooms() == before + 1


async def test_chats_lists_active_chats_and_marks_the_current_one(harness, tools, autojump_clock):
    alice, _, _, room = await onboarded(harness)
    await tools.say(alice, room, "!new Второй")
    await tools.say(alice, room, "!chats")
    reply = tools.last(room)
    assert reply["msgtype"] == "m.notice"
    assert reply["body"].splitlines() == ["Твои чаты:", "▶ C1 — Чат 1", "• C2 — Второй"]


async def test_rename_changes_the_room_name_and_the_chat(harness, tools, autojump_clock):
    hs = harness.hs
    alice, _, _, room = await onboarded(harness)
    chat_before = await tools.store.get_chat(room)
    await tools.say(alice, room, "!rename")
    assert tools.last(room)["body"] == "Использование: !rename <новое имя>"
    assert hs.state_content(room, "m.room.name")["name"] == "Чат 1"

    await tools.say(alice, room, "!rename   Планы на год ")
    assert tools.last(room)["body"] == "Чат переименован: Планы на год"
    assert hs.state_content(room, "m.room.name")["name"] == "Планы на год"
    chat = await tools.store.get_chat(room)
    assert chat.name == "Планы на год"
    assert (chat.local_id, chat.platform_chat_id) == ("C1", chat_before.platform_chat_id)
    assert hs.state_content(room, CHAT)["name"] == "Планы на год"
    await tools.say(alice, room, "!chats")
    assert "▶ C1 — Планы на год" in tools.last(room)["body"]


async def test_archive(harness, tools, autojump_clock):
    hs = harness.hs
    alice, _, space, room = await onboarded(harness)
    await tools.say(alice, room, "!new Другой")
    await tools.say(alice, room, "hello agent", settle=10)
    await tools.say(alice, room, "!archive")
    assert tools.last(room)["body"].startswith("Чат C1 архивирован.")
    assert tools.last(room)["msgtype"] == "m.notice"
    assert hs.state_content(space, "m.space.child", room) == {}
    assert hs.state_content(room, CHAT)["status"] == "archived"
    assert (await tools.store.get_chat(room)).status == "archived"
    assert [c.local_id for c in await tools.store.chats_of(alice.user_id)] == ["C2"]

    served = harness.agent.turns_served
    await tools.say(alice, room, "anyone?")
    assert tools.last(room)["body"] == "Этот чат в архиве. Создай новый командой !new."
    await tools.say(alice, room, "!clear")
    assert tools.last(room)["body"] == "Этот чат в архиве. Создай новый командой !new."
    assert harness.agent.turns_served == served
    # !chats still works there, and no longer lists it
    await tools.say(alice, room, "!chats")
    assert tools.last(room)["body"].splitlines() == ["Твои чаты:", "• C2 — Другой"]
    # agent memory is not deleted: the binding is kept
    assert (await tools.store.get_chat(room)).platform_chat_id == "1"


async def test_clear_rotates_the_platform_chat_id(harness, tools, autojump_clock):
    hs = harness.hs
    agent = harness.agent
    alice, _, _, room = await onboarded(harness)
    old = (await tools.store.get_chat(room)).platform_chat_id
    await tools.say(alice, room, "first", settle=10)
    assert agent.history[old] == ["first"]

    await tools.say(alice, room, "!reset")
    assert tools.last(room)["body"] == "Контекст сброшен."
    new = (await tools.store.get_chat(room)).platform_chat_id
    assert new != old
    assert int(new) > int(old)
    assert hs.state_content(room, CHAT)["platform_chat_id"] == new
    await tools.say(alice, room, "second", settle=10)
    assert agent.history[new] == ["second"]
    assert agent.history[old] == ["first"]
    await tools.say(alice, room, "!clear")
    assert (await tools.store.get_chat(room)).platform_chat_id not in (old, new)


async def test_status_help_settings_are_notices(harness, tools, autojump_clock):
    alice, _, _, room = await onboarded(harness)
    chat = await tools.store.get_chat(room)
    await tools.store.stage_file(room, alice.user_id, "in/a.txt", "a.txt", 10, "text/plain")
    await tools.say(alice, room, "!status")
    status = tools.last(room)
    assert status["msgtype"] == "m.notice"
    assert status["body"].splitlines() == [
        "Агент: Agent (в сети, был на связи только что)",
        f"Чат: C1 · id на платформе: {chat.platform_chat_id}",
        "Сейчас ничего не выполняется.",
        "Файлов в очереди: 1",
        "Токенов в этом чате: 0",
    ]
    await tools.say(alice, room, "!help")
    help_ = tools.last(room)
    assert help_["msgtype"] == "m.notice"
    assert help_["body"].startswith("Команды:")
    for word in (
        "!new",
        "!chats",
        "!rename",
        "!archive",
        "!clear",
        "!stop",
        "!list",
        "!remove",
        "!status",
    ):
        assert word in help_["body"]
    await tools.say(alice, room, "!settings")
    settings = tools.last(room)
    assert settings["msgtype"] == "m.notice"
    assert settings["body"] == "Настройки агента пока недоступны на платформе."
    assert harness.agent.turns_served == 0


async def test_status_while_a_turn_runs(harness, tools, autojump_clock):
    alice, _, _, room = await onboarded(harness)
    harness.hs.text_as(alice, room, "/slow 30")
    await harness.settle(2)
    await tools.say(alice, room, "!status", settle=1)
    assert "Сейчас агент отвечает." in tools.notices(room)[-1]


async def test_list_and_remove(harness, tools, autojump_clock):
    alice, _, _, room = await onboarded(harness)
    await tools.say(alice, room, "!list")
    assert tools.last(room)["body"] == "Очередь файлов пуста."
    store = tools.store
    await store.stage_file(room, alice.user_id, "in/a.txt", "a.txt", 10, "text/plain")
    await store.stage_file(room, alice.user_id, "in/b.pdf", "b.pdf", 2048, "application/pdf")
    await store.stage_file(room, alice.user_id, "in/c.png", "c.png", 5, "image/png")
    await tools.say(alice, room, "!list")
    assert tools.last(room)["body"].splitlines() == [
        "Файлы для следующего сообщения:",
        "1. a.txt (10 Б)",
        "2. b.pdf (2,0 КБ)",
        "3. c.png (5 Б)",
    ]
    for bad, text in (
        ("!remove", "Использование: !remove <номер> или !remove all"),
        ("!remove x", "Использование: !remove <номер> или !remove all"),
        ("!remove ²", "Использование: !remove <номер> или !remove all"),
        ("!remove 0", "Нет файла с номером 0. В очереди 3 файла."),
        ("!remove 4", "Нет файла с номером 4. В очереди 3 файла."),
    ):
        await tools.say(alice, room, bad)
        assert tools.last(room)["body"] == text
    assert len(await store.staged(room, alice.user_id)) == 3
    await tools.say(alice, room, "!remove 2")
    assert tools.last(room)["body"] == "Файл убран из очереди: b.pdf"
    assert [f.name for f in await store.staged(room, alice.user_id)] == ["a.txt", "c.png"]
    await tools.say(alice, room, "!remove all")
    assert tools.last(room)["body"] == "Очередь файлов очищена (2 файла)."
    assert await store.staged(room, alice.user_id) == []
    assert await store.pending_inbox() == []


async def test_unknown_command_hints_help(harness, tools, autojump_clock):
    alice, _, _, room = await onboarded(harness)
    await tools.say(alice, room, "!frobnicate now")
    hint = tools.last(room)
    assert hint["msgtype"] == "m.notice"
    assert hint["body"] == "Неизвестная команда !frobnicate. Список команд — !help."
    assert harness.agent.turns_served == 0


async def test_stop_without_a_turn(harness, tools, autojump_clock):
    alice, _, _, room = await onboarded(harness)
    await tools.say(alice, room, "!stop")
    assert tools.last(room)["body"] == "Сейчас нет запущенного ответа."
