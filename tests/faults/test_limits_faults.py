"""Sizes that never block a room, and per-user budgets (issue 13 §2 and §5), through
the whole bot (harness, virtual time). Each case was reproduced against the code
before the fix; the docstrings say what the user sees now (``ru`` catalogue)."""

from __future__ import annotations

import os

import pytest
import trio
import trio._path
from fault_helpers import answers_next_message, notices, replies, scripted_agent, send

from matrix_client import MAX_EVENT_BYTES, event_size
from surfaces.core import ChatStatus, ItemStatus
from surfaces.i18n import t
from surfaces.state import ChatRecord


def ru(key: str, **fields) -> str:
    return t("ru", key, **fields)


TRUNCATED = ru("truncated")


@pytest.fixture
def inline_threads(monkeypatch):
    """File I/O on the event loop (a worker thread would let autojump_clock jump)."""

    async def run_sync(fn, *args, **kwargs):
        await trio.lowlevel.checkpoint()
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)
    monkeypatch.setattr(trio._path, "run_sync", run_sync)


async def _onboarded(h, localpart: str = "alice"):
    user = h.user(localpart, displayname=localpart.title())
    dm, _, room = await h.onboard(user)
    return user, dm, room


def _every_event_fits(h, room: str) -> None:
    for e in h.bot_events(room):
        assert event_size(e["type"], e["content"]) <= MAX_EVENT_BYTES


async def _send_file(h, user, room: str, name: str, data: bytes) -> str:
    async with h.hs.user_client(user) as client:
        mxc = await client.upload(data, content_type="text/plain", filename=name)
    content = {
        "msgtype": "m.file",
        "body": name,
        "url": mxc,
        "info": {"mimetype": "text/plain", "size": len(data)},
    }
    return h.hs.send_as(user, room, content)


# ---- §2: every text through one size-aware path ------------------------------------


async def test_agent_asks_a_70k_character_question(harness, autojump_clock):
    """User sees: the question cut at 16,000 characters with «… (обрезано)» and
    «Ответь !yes или !no.»; «!yes» reaches the agent, which answers; the next
    message is answered. (Before: the notice was 70 KB, refused by the client before
    any request and retried by the outbox in a tight loop, holding every later
    message of the room, across restarts.)"""
    h = harness
    alice, _, room = await _onboarded(h)
    question = ("may I run this? " * 4_375)[:70_000]

    async def ask(ws, msg) -> None:
        await send(ws, "AGENT_EVENT_CONFIRM_REQUEST", id="q1", text=question)
        reply = await ws.get_message()
        assert '"approved": true' in reply or '"approved":true' in reply
        await send(ws, "AGENT_EVENT_TEXT_CHUNK", text="approved, done")
        await send(ws, "AGENT_EVENT_END")

    h.agent_handler = scripted_agent(ask)
    h.hs.text_as(alice, room, "do the risky thing")
    await h.settle(10)
    [asked] = notices(h, room)
    assert asked.startswith("❓ may I run this?")
    assert f"… {TRUNCATED}" in asked
    assert asked.endswith(ru("confirm_request", text="x").split("\n")[-1])
    assert len(asked) < 16_100
    h.hs.text_as(alice, room, "!yes")
    await h.settle(10)
    assert replies(h, room)[-1] == "approved, done"
    _every_event_fits(h, room)
    await answers_next_message(h, alice, room)


async def test_agent_error_with_a_70k_character_code(harness, autojump_clock):
    """User sees: «Ошибка агента: EEE…» with the code cut at 200 characters and
    «… (обрезано)»; the next message is answered."""
    h = harness
    alice, _, room = await _onboarded(h)

    async def fail(ws, msg) -> None:
        await send(ws, "ERROR", code="E" * 70_000, details="boom")

    h.agent_handler = scripted_agent(fail)
    h.hs.text_as(alice, room, "go")
    await h.settle(60)
    [failed] = notices(h, room)
    assert failed == ru("agent_error", code="E" * 200 + f"… {TRUNCATED}")
    await answers_next_message(h, alice, room)


async def test_chats_with_450_chats_is_split_into_notices(harness, autojump_clock):
    """User sees: «!chats» answered in two notices (each one event) that list all 450
    chats; the next message is answered. (Before: one 100 KB notice, refused for
    ever, and the room's later messages behind it.)"""
    h = harness
    alice, _, room = await _onboarded(h)
    for n in range(2, 452):
        await h.app.store.put_chat(
            ChatRecord(
                f"!seeded{n}:test",
                alice.user_id,
                f"C{n}",
                "Очень длинное название чата " * 3,
                "default",
                str(10_000 + n),
                ChatStatus.ACTIVE,
                {},
            )
        )
    h.hs.text_as(alice, room, "!chats")
    await h.settle(10)
    listing = notices(h, room)
    assert len(listing) == 2
    joined = "\n".join(listing)
    assert all(f"C{n} —" in joined for n in range(1, 452))
    assert TRUNCATED not in joined
    _every_event_fits(h, room)
    await answers_next_message(h, alice, room)


async def test_list_with_300_long_names_is_split_into_notices(harness, autojump_clock):
    """User sees: «!list» answered in several notices, every staged file listed; the
    next message is answered (and carries the files)."""
    h = harness
    alice, _, room = await _onboarded(h)
    for n in range(300):
        await h.app.store.stage_file(
            room, alice.user_id, f"incoming/f{n}", f"{n:03d}-" + "n" * 195, 10, "text/plain"
        )
    h.hs.text_as(alice, room, "!list")
    await h.settle(10)
    listing = notices(h, room)
    assert len(listing) >= 2
    joined = "\n".join(listing)
    assert all(f"{n:03d}-" in joined for n in range(300))
    _every_event_fits(h, room)
    await answers_next_message(h, alice, room)


async def test_reply_longer_than_max_reply_chars_is_truncated_with_a_mark(harness, autojump_clock):
    """User sees: the first 100,000 characters of a 300,000-character reply, over
    several messages, ending «…» and «✂️ (ответ обрезан: длиннее 100000 символов)»;
    no failure notice (the turn still read the agent to its END); the next message
    is answered."""
    h = harness
    alice, _, room = await _onboarded(h)
    line = "0123456789 abcdefghij klmnopqrst uvwxyz.\n"  # 41 characters

    async def flood(ws, msg) -> None:
        for _ in range(300):
            await send(ws, "AGENT_EVENT_TEXT_CHUNK", text=line * 25)  # 1,025 characters
        await send(ws, "AGENT_EVENT_END")

    h.agent_handler = scripted_agent(flood)
    h.hs.text_as(alice, room, "write a lot")
    await h.settle(120)
    texts = replies(h, room)[1:]  # [0] is the welcome
    assert len(texts) >= 7
    assert texts[-1].endswith("…\n\n" + ru("reply_truncated", limit=100_000))
    kept = sum(len(p) for p in texts)
    assert 99_000 < kept < 102_000
    assert notices(h, room) == []
    _every_event_fits(h, room)
    await answers_next_message(h, alice, room)


# ---- §5: per-user budgets and caps ---------------------------------------------------


async def test_message_flood_is_answered_up_to_the_budget_with_one_notice(harness, autojump_clock):
    """Budget 3 messages at once, then 6 a minute. User sees: 8 messages at once →
    the first 3 answered, one notice «⏳ Слишком много сообщений подряд…», the other
    5 never answered (admitted as rejected: not after a restart either); 10 s later a
    message is answered again."""
    h = harness
    await h.restart(
        SURFACES_BUDGET__TURNS_BURST="3",
        SURFACES_BUDGET__TURNS_PER_MINUTE="6",
        SURFACES_BOT__ROOM_QUEUE_SIZE="50",
    )
    alice, _, room = await _onboarded(h)
    sent = [h.hs.text_as(alice, room, f"flood {n}") for n in range(8)]
    await h.settle(60)
    answered = [r for r in replies(h, room) if "flood" in r]
    assert len(answered) == 3
    assert all(f"«flood {n}»" in answered[n] for n in range(3))
    [limit] = notices(h, room)
    assert limit == ru("budget_turns", seconds=10)
    for event_id in sent[3:]:
        assert await h.app.store.inbox_status(event_id) is ItemStatus.REJECTED
    await h.restart()
    await h.settle(30)
    assert len([r for r in replies(h, room) if "flood" in r]) == 3
    await answers_next_message(h, alice, room)


async def test_command_flood_gets_one_notice(harness, autojump_clock):
    """Budget 2 commands at once. User sees: 5 × «!help» → 2 help texts and one
    notice «⏳ Слишком много команд подряд…»."""
    h = harness
    await h.restart(SURFACES_BUDGET__COMMANDS_BURST="2")
    alice, _, room = await _onboarded(h)
    for _ in range(5):
        h.hs.text_as(alice, room, "!help")
    await h.settle(30)
    got = notices(h, room)
    assert got.count(ru("help")) == 2
    assert [n for n in got if n != ru("help")] == [ru("budget_commands", seconds=2)]


async def test_file_flood_gets_one_notice(harness, autojump_clock, inline_threads):
    """Budget 2 files at once. User sees: 4 files → 2 «📎 …» staged notices and one
    «⏳ Слишком много файлов подряд…»; only 2 files are staged."""
    h = harness
    await h.restart(SURFACES_BUDGET__FILES_BURST="2")
    alice, _, room = await _onboarded(h)
    for n in range(4):
        await _send_file(h, alice, room, f"f{n}.txt", os.urandom(16))
    await h.settle(30)
    got = notices(h, room)
    assert len([n for n in got if n.startswith("📎")]) == 2
    assert [n for n in got if not n.startswith("📎")] == [ru("budget_files", seconds=2)]
    assert len(await h.app.store.staged(room, alice.user_id)) == 2


async def test_chat_cap(harness, autojump_clock):
    """At most 2 chats. User sees: «!new» → «Создан чат…»; «!new» again (in the room
    or in the DM) → «Достигнут предел — 2 чатов…»; no room is created."""
    h = harness
    await h.restart(SURFACES_BOT__MAX_CHATS_PER_USER="2")
    alice, dm, room = await _onboarded(h)
    h.hs.text_as(alice, room, "!new second")
    await h.settle(30)
    assert notices(h, room)[-1].startswith(ru("chat_created", name="second", local_id="C2")[:10])
    rooms = len(h.hs.rooms())
    h.hs.text_as(alice, room, "!new third")
    await h.settle(30)
    assert notices(h, room)[-1] == ru("chat_limit", limit=2)
    h.hs.text_as(alice, dm, "!new fourth")
    await h.settle(30)
    assert notices(h, dm)[-1] == ru("chat_limit", limit=2)
    assert len(h.hs.rooms()) == rooms
    assert len(await h.app.store.chats_of(alice.user_id, status=None)) == 2


async def test_staged_files_cap(harness, autojump_clock, inline_threads):
    """At most 2 staged files. User sees: 4 files → 2 «📎 …» and one «Для следующего
    сообщения уже ждут 2 файлов…» (not two); after a message consumed them, a new
    file is staged again."""
    h = harness
    await h.restart(SURFACES_BOT__MAX_STAGED_FILES="2")
    alice, _, room = await _onboarded(h)
    for n in range(4):
        await _send_file(h, alice, room, f"f{n}.txt", b"data")
        await h.settle(5)
    got = notices(h, room)
    assert len([n for n in got if n.startswith("📎")]) == 2
    assert [n for n in got if not n.startswith("📎")] == [ru("files_limit", limit=2, name="f2.txt")]
    h.hs.text_as(alice, room, "here they are")
    await h.settle(30)
    await _send_file(h, alice, room, "later.txt", b"data")
    await h.settle(5)
    assert notices(h, room)[-1].startswith("📎")
    assert [f.name for f in await h.app.store.staged(room, alice.user_id)] == ["later.txt"]


async def test_agent_text_with_lone_surrogates_is_sent(harness, autojump_clock):
    """An agent's text with a lone surrogate (a valid JSON escape, invalid Unicode) used
    to crash the reply when its event was measured, three times, then the poison
    notice. User sees: the reply, with U+FFFD where the surrogate was."""
    h = harness
    alice, _, room = await _onboarded(h)

    async def odd(ws, msg) -> None:
        await ws.send_message('{"type": "AGENT_EVENT_TEXT_CHUNK", "text": "odd \\ud800 text"}')
        await send(ws, "AGENT_EVENT_END")

    h.agent_handler = scripted_agent(odd)
    h.hs.text_as(alice, room, "say something odd")
    await h.settle(30)
    assert replies(h, room)[-1] == "odd \ufffd text"
    assert notices(h, room) == []
    await answers_next_message(h, alice, room)
