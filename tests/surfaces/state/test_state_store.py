"""The SQLite state store: WAL, migrations, the atomic admit, counters, intents,
staged files (product.md §8; architecture.md "Durability")."""

from __future__ import annotations

import sqlite3

import pytest

from surfaces.core import ItemKind, ItemStatus, Lane
from surfaces.state import ChatRecord, InboxItem, PendingSend, StateError, Store, TurnStart
from surfaces.state._schema import MIGRATIONS

ROOM = Lane.room("!r")
CTL = Lane.control("!r")


@pytest.fixture
def store(tmp_path):
    s = Store.open_sync(tmp_path / "state" / "surfaces.db", inline=True)
    yield s
    s.close()


def item(event_id: str, lane: Lane = ROOM, kind: ItemKind = ItemKind.TEXT, **payload) -> InboxItem:
    return InboxItem(event_id, lane, "!r", "@alice:x", kind, payload or {"body": event_id})


def chat(room: str, owner: str, local: str, pid: str, status: str = "active") -> ChatRecord:
    return ChatRecord(room, owner, local, local, "agent-0", pid, status, {})


async def test_wal_mode_schema_version_and_idempotent_migration(tmp_path):
    path = tmp_path / "surfaces.db"
    s = Store.open_sync(path, inline=True)
    await s.set_value("k", "v")
    s.close()
    s = Store.open_sync(path, inline=True)  # reopen: no migration runs twice
    try:
        assert await s.get_value("k") == "v"
        assert s.schema_version == len(MIGRATIONS)
        assert await s.integrity_check() == "ok"
    finally:
        s.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(StateError, match="newer than this build"):
        Store.open_sync(path, inline=True)


async def test_threaded_mode_works_too(tmp_path):
    s = await Store.open(tmp_path / "t.db")
    try:
        await s.set_value("a", "1")
        assert await s.get_value("a") == "1"
        assert await s.probe_writable()
        big = [item(f"$e{i}") for i in range(100)]  # above the inline admit size
        assert len(await s.admit("s1", big)) == 100
        assert s.quick_fallbacks == 0
    finally:
        s.close()


async def test_quick_calls_run_on_the_loop_unless_they_could_wait(tmp_path, monkeypatch):
    import trio

    s = await Store.open(tmp_path / "q.db")
    hops: list[str] = []
    real = trio.to_thread.run_sync

    async def counting(fn, *args, **kwargs):
        hops.append(getattr(fn, "__name__", "?"))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counting)
    try:
        await s.set_value("a", "1")
        await s.admit("s1", [item("$a")])
        assert (await s.claim_next(ROOM)).item.event_id == "$a"
        assert hops == []  # no worker-thread round trip

        # The limiter is held (a threaded call is running): the quick call queues
        # behind it in the worker thread instead of sharing the connection.
        await s._limiter.acquire()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.set_value, "b", "2")
            await trio.testing.wait_all_tasks_blocked()
            assert s.quick_fallbacks == 1
            s._limiter.release()
        assert await s.get_value("b") == "2"

        # Another process holds the write lock: the inline attempt fails fast and
        # the call waits for the lock in the worker thread, never on the loop.
        other = sqlite3.connect(str(tmp_path / "q.db"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.set_value, "c", "3")
            await trio.testing.wait_all_tasks_blocked()
            assert s.quick_fallbacks == 2
            other.execute("COMMIT")
        other.close()
        assert await s.get_value("c") == "3"
        assert len(hops) == 2
    finally:
        s.close()


async def test_checkpoint_moves_the_wal_into_the_database(tmp_path):
    s = await Store.open(tmp_path / "c.db")
    try:
        for i in range(20):
            await s.set_value(f"k{i}", "v")
        wal_pages, copied = await s.checkpoint()
        assert wal_pages > 0
        assert copied == wal_pages
        assert await s.checkpoint() == (wal_pages, wal_pages)  # nothing new since
    finally:
        s.close()


async def test_a_running_checkpoint_does_not_hold_up_the_turns_calls(tmp_path, monkeypatch):
    """The checkpoint (the one fsync) runs on its own connection and thread: quick
    calls made meanwhile still run on the loop, and commit beside it."""
    import threading

    import trio

    s = await Store.open(tmp_path / "m.db")
    started, release = threading.Event(), threading.Event()
    real = Store._checkpoint_on

    def slow_checkpoint(conn):
        assert conn is not s._conn  # the maintenance connection
        started.set()
        release.wait(10)
        return real(conn)

    monkeypatch.setattr(Store, "_checkpoint_on", staticmethod(slow_checkpoint))
    try:
        await s.set_value("a", "1")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.checkpoint)
            await trio.to_thread.run_sync(started.wait, 10)
            await s.set_value("b", "2")  # while the checkpoint is in its fsync
            await s.admit("s1", [item("$x")])
            assert s.quick_fallbacks == 0
            release.set()
        assert await s.get_value("b") == "2"
        wal_pages, copied = await s.checkpoint()
        assert copied == wal_pages > 0
    finally:
        release.set()
        s.close()


async def test_admit_is_idempotent_and_advances_the_token(store):
    admitted = await store.admit("s1", [item("$a"), item("$b")])
    assert [i.event_id for i in admitted] == ["$a", "$b"]
    assert await store.get_value(Store.SINCE_KEY) == "s1"
    again = await store.admit("s2", [item("$b"), item("$c")])
    assert [i.event_id for i in again] == ["$c"]
    assert await store.get_value(Store.SINCE_KEY) == "s2"
    assert [i.event_id for i in await store.pending_inbox()] == ["$a", "$b", "$c"]
    rejected = await store.admit(
        "s3", [InboxItem("$d", ROOM, "!r", "@a:x", ItemKind.TEXT, {}, status=ItemStatus.REJECTED)]
    )
    assert rejected[0].status == "rejected"
    assert await store.inbox_status("$d") == "rejected"
    assert await store.admit("s4", []) == []
    assert await store.get_value(Store.SINCE_KEY) == "s4"


async def test_admit_is_atomic_with_the_token(store):
    await store.admit("s1", [item("$a")])
    bad = InboxItem("$bad", ROOM, "!r", "@a:x", ItemKind.TEXT, {"body": object()})
    with pytest.raises(TypeError):
        await store.admit("s2", [item("$b"), bad])
    assert await store.get_value(Store.SINCE_KEY) == "s1"  # token not advanced
    assert [i.event_id for i in await store.pending_inbox()] == ["$a"]  # $b rolled back


async def test_inbox_lanes_attempts_and_finish(store):
    await store.admit("s1", [item("$a", ROOM), item("$b", CTL), item("$c", ROOM)])
    assert await store.count_pending(ROOM) == 2
    claim = await store.claim_next(ROOM)
    assert (claim.item.event_id, claim.starts, claim.failures) == ("$a", 1, 0)
    assert await store.record_failure("$a") == 1
    claim = await store.claim_next(ROOM)  # not finished: the same event again
    assert (claim.item.event_id, claim.starts, claim.failures) == ("$a", 2, 1)
    send = PendingSend("!r", "txn-a", "m.room.message", {"body": "hi"})
    rows = await store.finish_event("$a", "done", [send])
    assert [(r.txn_id, r.status) for r in rows] == [("txn-a", "pending")]
    assert await store.inbox_status("$a") == "done"
    assert [o.txn_id for o in await store.pending_outbox()] == ["txn-a"]
    assert (await store.claim_next(ROOM)).item.event_id == "$c"
    assert (await store.claim_next(CTL)).item.event_id == "$b"
    await store.finish_event("$a", "failed")  # only pending rows change
    assert await store.inbox_status("$a") == "done"
    await store.finish_event("$c")
    assert await store.claim_next(ROOM) is None


async def test_finish_event_unstages_and_returns_existing_rows(store):
    await store.admit("s1", [item("$a")])
    f = await store.stage_file("!r", "@a:x", "in/a.txt", "a.txt", 1, "text/plain")
    sent = PendingSend("!r", "t-sent", "m.room.message", {"body": "earlier"})
    await store.enqueue(sent)
    await store.mark_sent("t-sent", "$ev", part=("$a", 0))
    rows = await store.finish_event("$a", "done", [sent], unstage=[f.id])
    assert [(r.status, r.event_id) for r in rows] == [("sent", "$ev")]
    assert await store.staged("!r", "@a:x") == []
    assert (await store.begin_turn("$a", "!r", "@a:x")).parts == {0: "$ev"}


async def test_outbox_enqueue_reuses_the_txn(store):
    first = await store.enqueue(PendingSend("!r", "t1", "m.room.message", {"body": "1"}))
    again = await store.enqueue(PendingSend("!r", "t1", "m.room.message", {"body": "other"}))
    assert first.id == again.id
    assert again.content == {"body": "1"}
    await store.mark_sent("t1", "$sent")
    assert await store.sent_event_id("t1") == "$sent"
    assert await store.outbox_count() == 0
    row = await store.outbox_row("t1")
    assert row is not None
    assert (row.status, row.event_id) == ("sent", "$sent")
    assert await store.outbox_row("nope") is None


async def test_chat_and_platform_counters(store):
    i1 = await store.add_chat_intent("@a:x", None, "agent-0", "k1")
    i2 = await store.add_chat_intent("@b:x", "Named", "agent-0", "k2")
    i3 = await store.add_chat_intent("@a:x", None, "agent-0", "k3")
    assert [(i.owner, i.local_id, i.platform_chat_id) for i in (i1, i2, i3)] == [
        ("@a:x", "C1", "1"),
        ("@b:x", "C1", "2"),
        ("@a:x", "C2", "3"),
    ]
    # the same key again: the same intent, nothing allocated
    assert await store.add_chat_intent("@a:x", None, "agent-0", "k1") == i1
    assert await store.allocate_platform_chat_id() == "4"
    # put_chat (reconciliation) raises both counters past what it restores
    await store.put_chat(chat("!x", "@a:x", "C7", "40"))
    i4 = await store.add_chat_intent("@a:x", None, "agent-0", "k4")
    assert (i4.local_id, i4.platform_chat_id) == ("C8", "41")
    await store.raise_platform_seq(10)  # never lowers
    assert await store.allocate_platform_chat_id() == "42"


async def test_intents_lifecycle(store):
    space = await store.add_space_intent("@a:x")
    assert await store.add_space_intent("@a:x") == space
    chat_intent = await store.add_chat_intent("@a:x", None, "agent-0", "first:@a:x")
    assert [i.kind for i in await store.open_intents("@a:x")] == ["space", "chat"]
    await store.complete_intent(space.id, "!space")
    await store.complete_intent(chat_intent.id, None)
    assert await store.open_intents("@a:x") == []
    done = await store.intent_by_key("space:@a:x")
    assert (done.status, done.room_id) == ("done", "!space")
    assert (await store.intent_by_key("first:@a:x")).status == "dropped"
    assert await store.intent_by_key("nope") is None


async def test_users_chats_and_flags(store):
    u = await store.upsert_user("@a:x", display_name="A", dm_room_id="!dm")
    assert (u.display_name, u.space_id, u.dm_room_id, u.chat_seq) == ("A", None, "!dm", 0)
    u = await store.upsert_user("@a:x", space_id="!s")  # other fields kept
    assert (u.display_name, u.space_id, u.dm_room_id) == ("A", "!s", "!dm")
    assert await store.set_user_flag("@a:x", "enc") is True
    assert await store.set_user_flag("@a:x", "enc") is False
    assert await store.set_user_flag("@nobody:x", "enc") is False
    await store.put_chat(chat("!c1", "@a:x", "C1", "1"))
    await store.put_chat(chat("!c2", "@a:x", "C2", "2", status="archived"))
    assert [c.room_id for c in await store.chats_of("@a:x")] == ["!c1"]
    assert [c.room_id for c in await store.chats_of("@a:x", status=None)] == ["!c1", "!c2"]
    assert await store.known_rooms() == {"!c1", "!c2", "!s", "!dm"}
    assert await store.set_chat_flag("!c1", "seen") is True
    assert await store.set_chat_flag("!c1", "seen") is False
    await store.put_chat(chat("!c1", "@a:x", "C1", "9"))  # replace keeps the flags
    c1 = await store.get_chat("!c1")
    assert (c1.platform_chat_id, c1.flags) == ("9", {"seen": True})
    updated = await store.update_chat("!c1", name="New", status="archived")
    assert (updated.name, updated.status) == ("New", "archived")
    assert await store.get_chat("!c1") == updated  # the cached row was dropped
    await store.set_chat_flag("!c1", "other")
    assert (await store.get_chat("!c1")).flags == {"seen": True, "other": True}
    await store.put_chat(chat("!c1", "@a:x", "C1", "10"))
    assert (await store.get_chat("!c1")).platform_chat_id == "10"
    assert await store.get_chat("!missing") is None
    assert await store.update_chat("!missing", name="x") is None
    with pytest.raises(ValueError, match="owner"):
        await store.update_chat("!c1", owner="@evil:x")


async def test_staged_files(store):
    a = await store.stage_file("!r", "@a:x", "in/a.txt", "a.txt", 1, "text/plain", "$e1")
    b = await store.stage_file("!r", "@a:x", "in/b.txt", "b.txt", 2, "text/plain")
    await store.stage_file("!r", "@b:x", "in/c.txt", "c.txt", 3, "text/plain")
    await store.stage_file("!other", "@a:x", "in/d.txt", "d.txt", 4, "text/plain")
    assert [f.name for f in await store.staged("!r", "@a:x")] == ["a.txt", "b.txt"]
    assert await store.staged_from("$e1") == a
    assert await store.staged_from("$none") is None
    assert [f.id for f in await store.unstage([a.id, b.id, 999])] == [a.id, b.id]
    assert await store.staged("!r", "@a:x") == []
    assert len(await store.staged("!r", "@b:x")) == 1


async def test_turns_and_counts(store):
    assert await store.begin_turn("$t", "!r", "@a:x") == TurnStart(1, {}, [])
    await store.record_part("$t", 0, "$reply0")
    f = await store.stage_file("!r", "@a:x", "in/a.txt", "a.txt", 1, "text/plain")
    assert await store.begin_turn("$t", "!r", "@a:x") == TurnStart(2, {0: "$reply0"}, [f])
    counts = await store.counts()
    assert set(counts) == {"users", "chats", "inbox", "outbox", "stage", "intents"}
    assert await store.integrity_check() == "ok"
