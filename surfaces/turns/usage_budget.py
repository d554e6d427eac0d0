"""Usage per turn and the optional monthly token budget.

Every finished turn records the tokens the agent reported in its ``AGENT_EVENT_END``
(``TurnUsage``, written by ``Store.finish_event`` in the turn's final transaction).
What counts as "unknown": no END (a failure, ``!stop`` before the end), or END
without a valid positive ``tokens_used``. A turn interrupted by a shutdown records
nothing: its item stays pending and the re-run records it.

The budget (``usage.monthly_token_budget``, per user ``user_budgets`` in the registry;
off by default) is checked before the turn talks to the agent, against the user's
total for the current UTC month (all chats), read by the turn's ``begin_turn`` (the
round trip it makes anyway; no query at all when no budget applies). When the month's
total has reached the budget, the turn is refused: its item and the messages it took
along are finished with one notice naming the budget, the use and when it resets (in
one transaction, so a crash re-run refuses them once). A turn that starts under the
budget runs to its end even if it crosses it — the agent's count is only known
afterwards. After a turn brings the month to ``warn_at`` of the
budget, the user is told once that month (the mark is a ``kv`` row written in the
turn's final transaction). Commands never pass through here: they keep working.

Pure arithmetic (:func:`warn_threshold`, :class:`BudgetState`) is separate from the
I/O (:class:`UsageGate`), so the boundaries are tested without a bot.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import time
from collections.abc import Callable
from fractions import Fraction

import attrs
import structlog

from surfaces.config import AgentRegistry
from surfaces.core import ItemStatus, month_after, month_of, month_start
from surfaces.delivery import Notifier, Outbox, answer_relation
from surfaces.i18n import Texts
from surfaces.metrics import Metrics
from surfaces.state import ChatRecord, InboxItem, Store, TurnUsage, UsageWarning, known_tokens

log = structlog.get_logger(__name__)


@functools.lru_cache(maxsize=256)  # a Fraction costs tens of µs; budgets are few
def warn_threshold(budget: int, warn_at: float) -> int:
    """Tokens at which the user is told: ``warn_at`` of ``budget``, rounded up, exactly
    (``0.7`` of 100 is 70, not the 70.00000000000001 of float arithmetic)."""
    return max(1, math.ceil(Fraction(str(warn_at)) * budget))


@attrs.frozen
class BudgetState:
    """A user's budget for one UTC month, and what they used of it so far."""

    budget: int
    used: int
    month: str
    warn_at: float = 0.8

    @property
    def spent(self) -> bool:
        return self.used >= self.budget

    @property
    def share(self) -> float:
        return self.used / self.budget

    @property
    def threshold(self) -> int:
        return warn_threshold(self.budget, self.warn_at)

    @property
    def resets(self) -> dt.datetime:
        """The start of the next UTC month."""
        return month_start(month_after(self.month))


@attrs.frozen
class UsageBudgets:
    """Which budget applies to whom: the default from the config, the registry's
    per-user overrides (``None`` there: no budget for that user)."""

    registry: AgentRegistry
    default: int | None = None
    warn_at: float = 0.8

    def budget_for(self, owner: str) -> int | None:
        return self.registry.budget_for(owner, self.default)

    def state(self, owner: str, used: int, month: str) -> BudgetState | None:
        budget = self.budget_for(owner)
        return None if budget is None else BudgetState(budget, used, month, self.warn_at)


@attrs.define
class UsageGate:
    """The runner's side of usage: the budget check before a turn, the refusal, the
    usage row and the warning for the final transaction, and the metrics."""

    store: Store
    outbox: Outbox
    notifier: Notifier
    texts: Texts
    budgets: UsageBudgets
    metrics: Metrics | None = None
    clock: Callable[[], float] = time.time

    def month(self, owner: str) -> str | None:
        """The UTC month whose use the turn's ``begin_turn`` should read for the
        budget (``begin_turn(month=...)``); None: no budget applies to ``owner``."""
        if self.budgets.budget_for(owner) is None:
            return None
        return month_of(self.clock())

    def state(self, owner: str, month: str | None, used: int | None) -> BudgetState | None:
        """The budget the turn starts under (None: no budget applies)."""
        if month is None or used is None:
            return None
        return self.budgets.state(owner, used, month)

    async def check(self, owner: str) -> BudgetState | None:
        """The user's budget this month, read on its own (None: no budget applies)."""
        month = self.month(owner)
        if month is None:
            return None
        return self.state(owner, month, await self.store.month_tokens(owner, month))

    async def refuse(
        self, item: InboxItem, chat: ChatRecord, agent_id: str, state: BudgetState, also: list[str]
    ) -> int:
        """Finish ``item`` (and the messages the turn took along, ``also``) with one
        "budget spent" notice instead of a turn; → the items it finished."""
        notice = self.notifier.pending(
            chat.room_id,
            self.texts("budget_exhausted", **self._fields(state)),
            txn_id=f"{item.event_id}.budget",
            relation=answer_relation(item),
        )
        rows = await self.store.finish_event(item.event_id, ItemStatus.DONE, [notice], also=also)
        log.info(
            "usage_budget_refused",
            agent_id=agent_id,
            budget=state.budget,
            used=state.used,
            month=state.month,
            messages=1 + len(also),
        )
        if self.metrics:
            self.metrics.turn_refused(agent_id)
        await self.outbox.deliver(rows)
        return 1 + len(also)

    def usage(
        self,
        item: InboxItem,
        chat: ChatRecord,
        agent_id: str,
        platform_chat_id: str,
        tokens: int | None,
    ) -> TurnUsage:
        return TurnUsage(
            turn_key=item.event_id,
            room_id=chat.room_id,
            owner=chat.owner,
            agent_id=agent_id,
            platform_chat_id=platform_chat_id,
            tokens=known_tokens(tokens),
            finished_at=self.clock(),
        )

    def warning(self, state: BudgetState | None, usage: TurnUsage) -> UsageWarning | None:
        """The warning to offer the final transaction, when the month may have reached
        the threshold (the store checks the exact total and the once-a-month mark).
        Also offered when the use before the turn was past it already: a turn of
        another chat may have crossed it without being told (it read less)."""
        if state is None:
            return None
        month = usage.month
        used = (usage.tokens or 0) + (state.used if month == state.month else 0)
        if used < state.threshold:
            return None
        state = attrs.evolve(state, used=used, month=month)
        text = self.texts(
            "budget_warning",
            percent=self.texts.percent(state.warn_at),
            **self._fields(state),
        )
        send = self.notifier.pending(usage.room_id, text, txn_id=f"{usage.turn_key}.budget80")
        return UsageWarning(usage.owner, month, state.threshold, send)

    def counted(self, agent_id: str, usage: TurnUsage) -> None:
        """After the commit: the known tokens go to ``surfaces_agent_tokens_total``."""
        if self.metrics and usage.tokens is not None:
            self.metrics.agent_tokens(agent_id, usage.tokens)

    def _fields(self, state: BudgetState) -> dict[str, str]:
        return {
            "used": self.texts.number(state.used),
            "budget": self.texts.number(state.budget),
            "resets": self.texts.moment(state.resets),
        }
