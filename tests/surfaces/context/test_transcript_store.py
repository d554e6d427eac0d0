"""The transcript and snapshot tables (issue 15 §3): bounds kept in the turn's own
transaction, idempotent on the turn, pruning by age, ``!forget``, owners kept apart."""

from __future__ import annotations

import time

import pytest

from surfaces.core import ItemKind, ItemStatus, Lane
from surfaces.state import (
    InboxItem,
    SnapshotSaved,
    Store,
    TranscriptBounds,
    TranscriptEntry,
    TranscriptWrite,
)

ROOM = "!r"
BOUNDS = TranscriptBounds(max_entries=5, max_bytes=10_000)


@pytest.fixture
def store(tmp_path):
    s = Store.open_sync(tmp_path / "state" / "surfaces.db", inline=True)
    yield s
    s.close()


def entry(turn: str, user: str = "hi", agent: str = "hello", room: str = ROOM, **kw):
    return TranscriptEntry(turn, room, kw.pop("conversation", ""), user, agent, **kw)


async def finish(store: Store, turn: str, bounds=BOUNDS, **kw) -> None:
    item = InboxItem(turn, Lane.room(ROOM), ROOM, "@a:x", ItemKind.TEXT, {"body": "x"})
    await store.admit(None, [item])
    await store.finish_event(
        turn, ItemStatus.DONE, transcript=TranscriptWrite(entry(turn, **kw), bounds)
    )


async def test_written_in_the_final_transaction_and_idempotent_on_the_turn(store):
    await finish(store, "$1", user="first", agent="one", files_in=("a.pdf",))
    await finish(store, "$1", user="first (edited)", agent="uno")  # a re-run of the turn
    await finish(store, "$2", user="second", agent="two", files_out=("out.txt",))
    rows = await store.transcript(ROOM)
    assert [(e.user_text, e.agent_text) for e in rows] == [
        ("first (edited)", "uno"),
        ("second", "two"),
    ]
    assert rows[1].files_out == ("out.txt",)
    assert (await store.inbox_item("$1")).status is ItemStatus.DONE


async def test_entries_bound_drops_the_oldest(store):
    for n in range(8):
        await finish(store, f"${n}", user=f"u{n}")
    assert [e.user_text for e in await store.transcript(ROOM)] == ["u3", "u4", "u5", "u6", "u7"]
    assert [e.user_text for e in await store.transcript(ROOM, last=2)] == ["u6", "u7"]


async def test_bytes_bound_drops_the_oldest_but_never_the_newest(store):
    bounds = TranscriptBounds(max_entries=100, max_bytes=250)
    for n in range(5):
        await finish(store, f"${n}", bounds, user="x" * 90, agent="")
    assert len(await store.transcript(ROOM)) == 2  # 180 bytes fit, 270 would not
    await finish(store, "$big", bounds, user="y" * 1000, agent="")
    assert [e.turn_id for e in await store.transcript(ROOM)] == ["$big"]


async def test_size_counts_utf8_bytes_of_texts_and_file_names():
    assert entry("$1", user="ж", agent="ab", files_in=("f",)).size == 2 + 2 + 1


async def test_conversations_and_rooms_are_bounded_apart(store):
    await finish(store, "$a", user="room")
    await finish(store, "$b", user="thread", conversation="$root")
    assert [e.user_text for e in await store.transcript(ROOM)] == ["room"]
    assert [e.user_text for e in await store.transcript(ROOM, "$root")] == ["thread"]
    assert await store.has_transcript(ROOM, "$root")
    assert not await store.has_transcript("!other")


async def test_retention_prunes_by_age(store):
    await finish(store, "$old")
    await finish(store, "$new")
    store._conn.execute("UPDATE transcript SET at = 0 WHERE turn_id = '$old'")
    assert await store.prune_transcripts(time.time() - 3600) == 1
    assert [e.turn_id for e in await store.transcript(ROOM)] == ["$new"]


async def test_snapshots_per_owner_overwrite_and_limit(store):
    rows = [entry("$1", user="a"), entry("$2", user="b")]
    save = store.save_snapshot
    assert await save("@a:x", "plan", ROOM, rows, max_per_owner=2) is SnapshotSaved.CREATED
    assert await save("@a:x", "plan", ROOM, rows[:1], max_per_owner=2) is SnapshotSaved.REPLACED
    assert await save("@a:x", "other", ROOM, rows, max_per_owner=2) is SnapshotSaved.CREATED
    assert await save("@a:x", "third", ROOM, rows, max_per_owner=2) is SnapshotSaved.LIMIT
    assert await save("@a:x", "plan", ROOM, rows, max_per_owner=2) is SnapshotSaved.REPLACED
    listed = await store.snapshots_of("@a:x")
    assert sorted((s.name, s.count) for s in listed) == [("other", 2), ("plan", 2)]
    loaded = await store.snapshot("@a:x", "plan")
    assert [e.user_text for e in loaded.entries] == ["a", "b"]
    assert await store.snapshot("@b:x", "plan") is None  # another owner's is never found


async def test_replace_transcript_copies_entries_with_keys_of_their_own(store):
    await finish(store, "$1", user="mine")
    snap = [entry("$9", user="s1", room="!src"), entry("$10", user="s2", room="!src")]
    for _ in range(2):  # idempotent
        await store.replace_transcript(ROOM, "", snap, BOUNDS)
        await store.replace_transcript("!third", "", snap, BOUNDS)
    assert [e.user_text for e in await store.transcript(ROOM)] == ["s1", "s2"]
    assert [e.user_text for e in await store.transcript("!third")] == ["s1", "s2"]


async def test_forget_deletes_the_rooms_transcript_and_its_snapshots(store):
    await finish(store, "$1")
    await finish(store, "$2", conversation="$thread")
    rows = await store.transcript(ROOM)
    await store.save_snapshot("@a:x", "here", ROOM, rows, max_per_owner=9)
    await store.save_snapshot("@a:x", "elsewhere", "!other", rows, max_per_owner=9)
    assert await store.forget_context(ROOM, key="forget.$f") == (2, 1)
    assert await store.forget_context(ROOM, key="forget.$f") == (2, 1)  # a re-run: the same
    assert await store.forget_context(ROOM) == (0, 0)
    assert await store.transcript(ROOM) == []
    assert [s.name for s in await store.snapshots_of("@a:x")] == ["elsewhere"]


async def test_values_are_set_in_the_final_transaction(store):
    item = InboxItem("$v", Lane.room(ROOM), ROOM, "@a:x", ItemKind.TEXT, {"body": "x"})
    await store.admit(None, [item])
    await store.finish_event("$v", values={"agent_boot.!r": "b1"})
    assert await store.get_value("agent_boot.!r") == "b1"


async def test_maintenance_prunes_transcripts_past_retention(store):
    from surfaces.app.maintenance import prune_transcripts

    await finish(store, "$old")
    await finish(store, "$new")
    store._conn.execute("UPDATE transcript SET at = 1000 WHERE turn_id = '$old'")
    assert await prune_transcripts(store, 3600, now=1000 + 3601) == 1
    assert await prune_transcripts(store, 3600, now=1000 + 3601) == 0
    assert [e.turn_id for e in await store.transcript(ROOM)] == ["$new"]
