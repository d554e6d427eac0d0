"""Files against a hostile agent or sender (issue 13 §4, §6), through the whole bot.

The agent owns its workspace; the sender owns ``info.size``. Each case says what
the user sees: one notice naming the file, the turn's reply complete, the room
still answering — never the bot's own files, a blocked lane or a poison notice."""

from __future__ import annotations

import os
import time

import pytest
from turn_helpers import send_file, sends_file

from matrix_client.testing import Fault
from surfaces.app.maintenance import sweep_incoming
from surfaces.state import Store

DAY = 24 * 3600.0


async def answers_again(chat) -> None:
    chat.h.agent_handler = None
    chat.mark()
    await chat.say("still there?")
    assert "still there?" in chat.replies()[-1]


async def test_agent_sends_a_fifo_the_lane_never_blocks(chat, autojump_clock):
    """User sees: «Агент назвал pipe, но это не обычный файл — не отправляю.», the
    reply «done», and the next message answered."""
    os.mkfifo(chat.h.workspace / "pipe")
    chat.h.agent_handler = sends_file("pipe")
    await chat.say("send the pipe")
    assert chat.replies() == [chat.t("file_out_not_regular", path="pipe"), "done"]
    await answers_again(chat)


async def test_agent_sends_a_20_gib_sparse_file_refused_by_size(chat, autojump_clock):
    """User sees: «Агент хотел отправить файл huge.bin (20,0 ГБ), но предел — 50,0 МБ…»;
    nothing is read (the file takes no disk space and never reaches memory)."""
    with (chat.h.workspace / "huge.bin").open("wb") as f:
        f.truncate(20 * 1024**3)
    chat.h.agent_handler = sends_file("huge.bin")
    await chat.say("send it")
    limit = chat.h.app.config.bot.max_file_bytes
    assert chat.replies() == [
        chat.t("file_out_too_large", path="huge.bin", size=20 * 1024**3, limit=limit),
        "done",
    ]
    assert not chat.h.hs.requests_to("POST", "/upload")
    await answers_again(chat)


async def test_outgoing_limit_is_its_own_setting(chat, autojump_clock):
    h = chat.h
    await h.restart(SURFACES_BOT__MAX_OUTGOING_FILE_BYTES="10")
    chat.mark()
    (h.workspace / "eleven.txt").write_bytes(b"x" * 11)
    (h.workspace / "ten.txt").write_bytes(b"x" * 10)
    h.agent_handler = sends_file("eleven.txt")
    await chat.say("send eleven")
    assert chat.t("file_out_too_large", path="eleven.txt", size=11, limit=10) in chat.replies()
    h.agent_handler = sends_file("ten.txt")
    chat.mark()
    await chat.say("send ten")
    [media] = [m for m in chat.messages() if "url" in m]
    assert h.hs.media(media["url"])[0] == b"x" * 10  # streamed from the fd, same bytes


async def test_agent_links_incoming_elsewhere_the_file_is_refused_once(
    chat, autojump_clock, tmp_path
):
    """User sees: «Не удалось сохранить файл «notes.txt» в рабочую папку агента.
    Сообщи администратору.» once — not three attempts, not «Не удалось обработать
    сообщение», and nothing is written where the link points."""
    h = chat.h
    elsewhere = tmp_path / "bot-secrets"
    elsewhere.mkdir()
    (h.workspace / "incoming").symlink_to(elsewhere)
    event_id = await send_file(chat, "notes.txt", b"hello")
    assert chat.replies() == [chat.t("file_store_failed", name="notes.txt")]
    assert list(elsewhere.iterdir()) == []
    assert await h.app.store.inbox_status(event_id) == "done"
    assert await h.app.store.staged(chat.room, chat.user.user_id) == []


async def test_a_download_that_fails_in_transport_gets_the_file_notice(chat, autojump_clock):
    """User sees: «Не удалось получить файл «a.txt». Попробуй отправить ещё раз.» — the
    file notice, not the generic poison notice, and no partial file stays behind."""
    h = chat.h
    h.hs.inject("GET", "/_matrix/client/v1/media/download/*", Fault.connect_error(), repeat=20)
    event_id = await send_file(chat, "a.txt", b"hello", settle=120)
    assert chat.replies() == [chat.t("file_failed", name="a.txt")]
    assert chat.t("turn_failed") not in chat.replies()
    assert await h.app.store.inbox_status(event_id) == "done"
    assert list((h.workspace / "incoming").glob("*")) == []


@pytest.mark.parametrize("declared", [5, None], ids=["lying-info-size", "no-info-size"])
async def test_a_body_over_the_limit_is_refused_whatever_info_size_says(
    chat, autojump_clock, declared
):
    h = chat.h
    await h.restart(SURFACES_BOT__MAX_FILE_BYTES="1000")
    chat.mark()
    await send_file(chat, "big.bin", b"x" * 20_000, declared_size=declared)
    prefix = chat.t("file_too_large", name="big.bin", size=0, limit=1).split("(")[0]
    assert chat.replies()[-1].startswith(prefix)
    assert list((h.workspace / "incoming").glob("*")) == []


async def test_remove_deletes_the_file_and_a_rerun_removes_the_same_one(chat, autojump_clock):
    """``!remove 1`` run again after a crash (its inbox row still pending) removes
    nothing more: the user sees one «Файл убран из очереди: a.txt» and b.txt, c.txt
    stay on the list."""
    h = chat.h
    for name in ("a.txt", "b.txt", "c.txt"):
        await send_file(chat, name, name.encode())
    event_id = await chat.say("!remove 1")
    store = h.app.store
    names = [f.name for f in await store.staged(chat.room, chat.user.user_id)]
    assert names == ["b.txt", "c.txt"]
    assert not (h.workspace / "incoming" / "a.txt").exists()
    # as if the bot died after removing and before marking the command done
    store._conn.execute("UPDATE inbox SET status = 'pending' WHERE event_id = ?", (event_id,))
    await h.restart()
    await h.settle(10)
    row = h.app.store._conn.execute(
        "SELECT attempts, status FROM inbox WHERE event_id = ?", (event_id,)
    ).fetchone()
    assert (row["attempts"], row["status"]) == (2, "done")  # it did run again
    assert [f.name for f in await h.app.store.staged(chat.room, chat.user.user_id)] == names
    removed = chat.t("removed_one", name="a.txt")
    assert chat.replies().count(removed) == 1
    assert (h.workspace / "incoming" / "b.txt").exists()


async def test_retention_deletes_carried_files_after_the_period_only(chat, autojump_clock):
    """A file a turn carried to the agent is kept for ``incoming_retention_days``,
    then deleted; a file still waiting for a turn is never deleted."""
    h = chat.h
    await send_file(chat, "carried.txt", b"c")
    await chat.say("here it is")  # the turn carries carried.txt to the agent
    await send_file(chat, "waiting.txt", b"w")
    incoming = h.workspace / "incoming"
    store = h.app.store
    assert await sweep_incoming(store, 30 * DAY, now=time.time() + 29 * DAY) == 0
    assert (incoming / "carried.txt").exists()
    assert await sweep_incoming(store, 30 * DAY, now=time.time() + 31 * DAY) == 1
    assert not (incoming / "carried.txt").exists()
    assert (incoming / "waiting.txt").exists()
    assert await sweep_incoming(store, 30 * DAY, now=time.time() + 31 * DAY) == 0


async def test_a_partial_file_left_by_a_crash_is_removed_by_the_rerun(chat, autojump_clock):
    """A download interrupted by a crash left ``incoming/a.txt`` half-written; the
    re-run of the same event removes it and stores the whole file once."""
    h = chat.h
    incoming = h.workspace / "incoming"
    incoming.mkdir()
    (incoming / "a.txt").write_bytes(b"hal")
    h.app.request_stop()
    await h.app_done.wait()
    event_id = await send_file(chat, "a.txt", b"half and the rest", settle=0)
    # what the interrupted run had recorded before writing (PARTIAL_KEY)
    store = Store.open_sync(h.state_dir / "surfaces.db", inline=True)
    await store.set_value(f"incoming.partial.{event_id}", "incoming/a.txt")
    store.close()
    await h.start()
    await h.settle(10)
    staged = await h.app.store.staged(chat.room, chat.user.user_id)
    assert [(f.name, f.size) for f in staged] == [("a.txt", len(b"half and the rest"))]
    assert sorted(p.name for p in incoming.iterdir()) == ["a.txt"]
    assert (incoming / "a.txt").read_bytes() == b"half and the rest"
