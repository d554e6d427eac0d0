"""The monthly token budget's arithmetic and the runner's side of usage
(surfaces.turns.usage_budget), without a bot: a real store, a clock we set."""

from __future__ import annotations

import datetime as dt

import pytest

from surfaces.config import AgentRegistry, AgentSpec
from surfaces.core import ItemKind, Lane
from surfaces.delivery import Notifier
from surfaces.i18n import Texts
from surfaces.state import ChatRecord, InboxItem, Store
from surfaces.turns import BudgetState, UsageBudgets, UsageGate, warn_threshold

ALICE, BOB = "@alice:x", "@bob:x"
DEC = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC).timestamp()
JAN = dt.datetime(2027, 1, 1, 0, 0, 1, tzinfo=dt.UTC).timestamp()
AGENT = AgentSpec("agent-0", "Agent 0", "http://a/", "/agents/0")  # type: ignore[arg-type]


def registry(**user_budgets: int | None) -> AgentRegistry:
    return AgentRegistry((AGENT,), {}, {f"@{k}:x": v for k, v in user_budgets.items()})


@pytest.fixture
def store(tmp_path):
    s = Store.open_sync(tmp_path / "state" / "surfaces.db", inline=True)
    yield s
    s.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def gate(store: Store, budgets: UsageBudgets, clock: Clock) -> UsageGate:
    texts = Texts("en")
    return UsageGate(store, None, Notifier(None, texts), texts, budgets, clock=clock)  # type: ignore[arg-type]


CHAT = ChatRecord("!r", ALICE, "C1", "C1", "agent-0", "7", "active", {})  # type: ignore[arg-type]


def item(n: int) -> InboxItem:
    return InboxItem(f"$e{n}", Lane.room("!r"), "!r", ALICE, ItemKind.TEXT, {"body": "hi"})


async def finish(store: Store, g: UsageGate, state: BudgetState | None, n: int, tokens: int | None):
    """What the runner does at the end of a turn; → the txn ids it enqueued."""
    usage = g.usage(item(n), CHAT, "agent-0", "7", tokens)
    await store.admit(None, [item(n)])
    rows = await store.finish_event(item(n).event_id, usage=usage, warning=g.warning(state, usage))
    return [r.txn_id for r in rows]


@pytest.mark.parametrize(
    ("budget", "warn_at", "threshold"),
    [(100, 0.8, 80), (100, 0.7, 70), (3, 0.8, 3), (1_000_000, 0.8, 800_000), (10, 1.0, 10)],
)
def test_the_warning_threshold_is_exact_and_rounds_up(budget, warn_at, threshold):
    assert warn_threshold(budget, warn_at) == threshold


def test_a_budget_is_spent_at_100_percent_not_before():
    assert not BudgetState(100, 99, "2026-12").spent
    assert BudgetState(100, 100, "2026-12").spent
    assert BudgetState(100, 150, "2026-12").spent
    assert BudgetState(100, 79, "2026-12").share == pytest.approx(0.79)
    assert BudgetState(100, 0, "2026-12").resets == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_budgets_are_off_by_default_and_overridden_per_user():
    assert UsageBudgets(registry()).budget_for(ALICE) is None
    assert UsageBudgets(registry()).state(ALICE, 10**9, "2026-12") is None
    budgets = UsageBudgets(registry(alice=500, bob=None), default=100)
    assert budgets.budget_for(ALICE) == 500
    assert budgets.budget_for(BOB) is None  # exempt from the default
    assert budgets.budget_for("@carol:x") == 100
    assert UsageBudgets(registry(alice=500)).budget_for("@carol:x") is None


async def test_no_budget_means_no_query_and_no_warning(store):
    g = gate(store, UsageBudgets(registry()), Clock(DEC))
    assert await g.check(ALICE) is None
    assert await finish(store, g, None, 1, 10**6) == []
    assert await store.month_tokens(ALICE, "2026-12") == 10**6  # still counted


async def test_79_percent_is_quiet_80_is_told_once_100_is_refused(store):
    clock = Clock(DEC)
    g = gate(store, UsageBudgets(registry(), default=100), clock)
    state = await g.check(ALICE)
    assert await finish(store, g, state, 1, 79) == []
    state = await g.check(ALICE)
    assert state is not None
    assert (state.used, state.spent) == (79, False)
    assert await finish(store, g, state, 2, 1) == ["$e2.budget80"]  # 80 %: told
    state = await g.check(ALICE)
    assert await finish(store, g, state, 3, 19) == []  # 99 %: told already
    state = await g.check(ALICE)
    assert state is not None
    assert not state.spent
    assert await finish(store, g, state, 4, 1) == []  # 100 %
    state = await g.check(ALICE)
    assert state is not None
    assert state.spent
    assert state.used == 100
    # The next month starts with nothing used: allowed again, and told again at 80 %.
    clock.now = JAN
    state = await g.check(ALICE)
    assert state is not None
    assert (state.used, state.spent, state.month) == (0, False, "2027-01")
    assert await finish(store, g, state, 5, 85) == ["$e5.budget80"]


async def test_the_warning_text_names_the_share_the_budget_and_the_reset(store):
    g = gate(store, UsageBudgets(registry(), default=1_000_000), Clock(DEC))
    state = await g.check(ALICE)
    usage = g.usage(item(1), CHAT, "agent-0", "7", 900_000)
    warning = g.warning(state, usage)
    assert warning is not None
    assert warning.threshold == 800_000
    body = warning.send.content["body"]
    assert body.startswith("⚠️ You have used 80% or more of your monthly token budget (1,000,000).")
    assert "resets on 1 January 2027, 00:00 UTC" in body


async def test_unknown_counts_add_nothing_and_a_turn_crossing_the_month_counts_in_the_new_one(
    store,
):
    clock = Clock(DEC)
    g = gate(store, UsageBudgets(registry(), default=100), clock)
    state = await g.check(ALICE)
    assert await finish(store, g, state, 1, 90) == ["$e1.budget80"]
    state = await g.check(ALICE)  # checked in December (90 used) …
    clock.now = JAN  # … finished in January: counts there, 10 of 100
    assert await finish(store, g, state, 2, 10) == []
    assert await finish(store, g, state, 3, None) == []
    assert await store.month_tokens(ALICE, "2027-01") == 10


async def test_a_crossing_another_chat_did_not_see_is_told_on_the_next_turn(store):
    g = gate(store, UsageBudgets(registry(), default=100), Clock(DEC))
    before = await g.check(ALICE)  # two turns start at 0 used, in two chats
    assert await finish(store, g, before, 1, 50) == []
    # The second one finishes at 90 in all but reads 0 + 40 < 80: not offered.
    assert await finish(store, g, before, 2, 40) == []
    # The user's next turn starts past the threshold: told, even with no count of its own.
    assert await finish(store, g, await g.check(ALICE), 3, None) == ["$e3.budget80"]
