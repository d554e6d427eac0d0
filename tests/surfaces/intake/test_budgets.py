"""Per-user token buckets at intake: rejected past the budget, one notice per period."""

from __future__ import annotations

import pytest

from surfaces.core import ItemKind, ItemStatus, Lane
from surfaces.intake import Bucket, Budgets, Rate, TokenBucket
from surfaces.intake.budgets import MAX_TRACKED
from surfaces.state import InboxItem

RATES = {
    Bucket.TURNS: Rate(per_minute=6, burst=3),
    Bucket.COMMANDS: Rate(per_minute=60, burst=2),
    Bucket.FILES: Rate(per_minute=60, burst=1),
}


def item(
    n: int, kind: ItemKind = ItemKind.TEXT, sender: str = "@a:x", room: str = "!r"
) -> InboxItem:
    lane = Lane.invite(sender) if kind is ItemKind.INVITE else Lane.room(room)
    return InboxItem(f"$e{n}", lane, room, sender, kind, {"body": "hi"})


def statuses(items: list[InboxItem]) -> list[tuple[str, str]]:
    return [(i.kind.value, i.status.value) for i in items]


def test_token_bucket_refills_at_its_rate_up_to_its_burst():
    bucket = TokenBucket(per_s=0.1, burst=2, tokens=2, updated=0.0)
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.wait_s(0.0) == pytest.approx(10.0)
    assert bucket.take(10.0)
    assert bucket.full(1_000.0)
    assert bucket.tokens == 2


def test_past_the_burst_items_are_rejected_with_one_notice():
    budgets = Budgets(RATES)
    out = budgets.apply([item(n) for n in range(6)], now=0.0)
    assert statuses(out) == [
        ("text", "pending"),
        ("text", "pending"),
        ("text", "pending"),
        ("text", "rejected"),
        ("limit", "pending"),
        ("text", "rejected"),
        ("text", "rejected"),
    ]
    notice = out[4]
    assert notice.lane == Lane.control("!r")
    assert notice.payload == {"key": "budget_turns", "seconds": 10}
    assert notice.event_id == "limit:turns:$e3"
    # Still over budget in a later batch: rejected, no second notice.
    assert statuses(budgets.apply([item(9)], now=5.0)) == [("text", "rejected")]


def test_a_new_period_gets_a_new_notice():
    budgets = Budgets(RATES)
    budgets.apply([item(n) for n in range(4)], now=0.0)  # 3 pass, 1 rejected + notice
    assert statuses(budgets.apply([item(10)], now=10.0)) == [("text", "pending")]
    out = budgets.apply([item(11)], now=10.0)
    assert statuses(out) == [("text", "rejected"), ("limit", "pending")]


def test_buckets_are_per_user_and_per_kind():
    budgets = Budgets(RATES)
    out = budgets.apply(
        [
            item(1, ItemKind.FILE),
            item(2, ItemKind.FILE),  # files: burst 1
            item(3, ItemKind.FILE, sender="@b:x"),  # another user's own bucket
            item(4, ItemKind.COMMAND),
            item(5, ItemKind.TEXT),
        ],
        now=0.0,
    )
    assert statuses(out) == [
        ("file", "pending"),
        ("file", "rejected"),
        ("limit", "pending"),
        ("file", "pending"),
        ("command", "pending"),
        ("text", "pending"),
    ]
    assert out[2].payload["key"] == "budget_files"


def test_invites_count_as_commands_and_get_no_notice():
    budgets = Budgets(RATES)
    out = budgets.apply([item(n, ItemKind.INVITE) for n in range(3)], now=0.0)
    assert statuses(out) == [("invite", "pending"), ("invite", "pending"), ("invite", "rejected")]


def test_the_bots_own_items_and_rejected_items_are_not_counted():
    budgets = Budgets(RATES)
    busy = InboxItem("busy:$x", Lane.control("!r"), "!r", "@a:x", ItemKind.BUSY, {"n": 5})
    rejected = InboxItem(
        "$y", Lane.room("!r"), "!r", "@a:x", ItemKind.TEXT, {}, status=ItemStatus.REJECTED
    )
    out = budgets.apply([busy, rejected, *(item(n) for n in range(3))], now=0.0)
    assert statuses(out) == [("busy", "pending"), ("text", "rejected"), *[("text", "pending")] * 3]


def test_memory_is_bounded_by_recently_active_users():
    budgets = Budgets(RATES)
    for n in range(MAX_TRACKED * 3):
        budgets.apply([item(n, sender=f"@u{n}:x")], now=float(n))
    # Every bucket but the last few has refilled (6 a minute, burst 3: 30 s) and is dropped.
    assert len(budgets._buckets) <= MAX_TRACKED + 1
