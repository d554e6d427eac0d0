"""Usage rows: written in the turn's final transaction, once per key; unknown counts
stay unknown; the sums of !usage and the month totals of the budget."""

from __future__ import annotations

import datetime as dt

import pytest

from surfaces.core import ItemKind, Lane
from surfaces.state import (
    MAX_TURN_TOKENS,
    InboxItem,
    PendingSend,
    Store,
    TurnUsage,
    UsageTotals,
    UsageWarning,
    known_tokens,
)

ALICE, BOB = "@alice:x", "@bob:x"
DEC = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC).timestamp()
JAN = dt.datetime(2027, 1, 1, 0, 0, 1, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def store(tmp_path):
    s = Store.open_sync(tmp_path / "state" / "surfaces.db", inline=True)
    yield s
    s.close()


def usage(key: str, tokens: int | None, room: str = "!r", owner: str = ALICE, at: float = DEC):
    return TurnUsage(key, room, owner, "agent-0", "7", tokens, at)


async def admit(store: Store, event_id: str, room: str = "!r") -> None:
    item = InboxItem(event_id, Lane.room(room), room, ALICE, ItemKind.TEXT, {"body": "hi"})
    await store.admit(None, [item])


async def turn(store: Store, row: TurnUsage, warning: UsageWarning | None = None):
    """A turn's item admitted, then finished with its usage; → the outbox rows."""
    await admit(store, row.turn_key, row.room_id)
    return await store.finish_event(row.turn_key, usage=row, warning=warning)


def send(txn: str) -> PendingSend:
    return PendingSend("!r", txn, "m.room.message", {"msgtype": "m.notice", "body": "warn"})


@pytest.mark.parametrize(
    ("value", "known"),
    [
        (12, 12),
        (1, 1),
        (None, None),
        (0, None),
        (-3, None),
        (True, None),
        ("12", None),
        (MAX_TURN_TOKENS, MAX_TURN_TOKENS),
        (MAX_TURN_TOKENS + 1, None),
        (2**70, None),
    ],
)
def test_known_tokens_treats_missing_zero_and_absurd_counts_as_unknown(value, known):
    assert known_tokens(value) == known


async def test_unknown_zero_and_counts_are_recorded_apart(store):
    for key, tokens in [("$a", 10), ("$b", None), ("$c", 0), ("$d", 5)]:
        await turn(store, usage(key, tokens))
    summary = await store.usage_summary(ALICE, "!r", "2026-12")
    assert summary.chat == UsageTotals(tokens=15, month_tokens=15, turns=4, unknown=2)
    rows = store._conn.execute("SELECT turn_key, tokens FROM usage ORDER BY turn_key").fetchall()
    assert [tuple(r) for r in rows] == [("$a", 10), ("$b", None), ("$c", None), ("$d", 5)]


async def test_finishing_a_turn_twice_counts_it_once(store):
    await turn(store, usage("$a", 100))
    # Finished again (the same item: a re-run of its final transaction): nothing doubles.
    await store.finish_event("$a", usage=usage("$a", 100))
    await store.finish_event("$a", usage=usage("$a", 70))
    assert await store.month_tokens(ALICE, "2026-12") == 100
    assert (await store.usage_summary(ALICE, "!r", "2026-12")).chat.turns == 1
    assert store._conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == 1


async def test_a_crash_before_the_commit_leaves_nothing_and_the_rerun_counts_once(
    store, monkeypatch
):
    await admit(store, "$a")

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    # The transaction fails after the usage row was written: all of it rolls back.
    monkeypatch.setattr(store, "_claim_usage_warning", crash)
    warning = UsageWarning(ALICE, "2026-12", 1, send("w"))
    with pytest.raises(RuntimeError):
        await store.finish_event("$a", usage=usage("$a", 100), warning=warning)
    assert store._conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == 0
    assert await store.month_tokens(ALICE, "2026-12") == 0
    monkeypatch.undo()
    await store.finish_event("$a", usage=usage("$a", 100), warning=warning)  # the re-run
    assert await store.month_tokens(ALICE, "2026-12") == 100


async def test_sums_per_chat_per_user_per_month_and_in_total(store):
    rows = [
        usage("$1", 10, room="!r"),
        usage("$2", 20, room="!r", at=JAN),
        usage("$3", 300, room="!other"),
        usage("$4", None, room="!other", at=JAN),
        usage("$5", 4000, room="!bobs", owner=BOB),
    ]
    for row in rows:
        await turn(store, row)
    january = await store.usage_summary(ALICE, "!r", "2027-01")
    assert january.chat == UsageTotals(tokens=30, month_tokens=20, turns=2, unknown=0)
    assert january.user == UsageTotals(tokens=330, month_tokens=20, turns=4, unknown=1)
    december = await store.usage_summary(ALICE, "!other", "2026-12")
    assert december.chat == UsageTotals(tokens=300, month_tokens=300, turns=2, unknown=1)
    assert await store.month_tokens(ALICE, "2026-12") == 310
    assert await store.month_tokens(ALICE, "2027-01") == 20
    assert await store.month_tokens(BOB, "2026-12") == 4000
    assert await store.chat_tokens("!r", ALICE) == 30
    # Another user's chat is never summed into Alice's, even by its room id.
    assert (await store.usage_summary(ALICE, "!bobs", "2026-12")).chat == UsageTotals()


async def test_the_month_total_rolls_over_with_the_utc_month(store):
    await turn(store, usage("$d", 50, at=JAN - 2))
    await turn(store, usage("$j", 7, at=JAN))
    assert await store.month_tokens(ALICE, "2026-12") == 50
    assert await store.month_tokens(ALICE, "2027-01") == 7


async def test_the_warning_is_enqueued_once_per_month_when_the_threshold_is_reached(store):
    def warning(txn: str, month: str = "2026-12") -> UsageWarning:
        return UsageWarning(ALICE, month, 80, send(txn))

    rows = await turn(store, usage("$1", 79), warning("w1"))
    assert rows == []  # 79 of 100: not yet
    rows = await turn(store, usage("$2", 1), warning("w2"))
    assert [r.txn_id for r in rows] == ["w2"]  # 80 %: told
    rows = await turn(store, usage("$3", 30), warning("w3"))
    assert rows == []  # told once this month
    # Next month starts afresh.
    rows = await turn(store, usage("$4", 90, at=JAN), warning("w4", "2027-01"))
    assert [r.txn_id for r in rows] == ["w4"]
    pending = store._conn.execute("SELECT txn_id FROM outbox ORDER BY id").fetchall()
    assert [r[0] for r in pending] == ["w2", "w4"]


async def test_begin_turn_reads_the_months_use_only_when_asked(store):
    await turn(store, usage("$a", 40))
    await admit(store, "$b")
    assert (await store.begin_turn("$b", "!r", ALICE)).month_tokens is None
    assert (await store.begin_turn("$b", "!r", ALICE, month="2026-12")).month_tokens == 40
    assert (await store.begin_turn("$b", "!r", ALICE, month="2027-01")).month_tokens == 0
    assert (await store.begin_turn("$b", "!r", BOB, month="2026-12")).month_tokens == 0
