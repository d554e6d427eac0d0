"""``!usage``: the tokens the user's agent reported, summed for people.

This chat and all the user's chats, each this month (UTC) and in total, how many
replies came without a count (never guessed as 0), and the monthly budget when one
applies to the user. Only the chat's owner reaches a command (the router answers
anyone else with ``not_owner``), and every sum is filtered by that owner, so one
user's numbers never reach another. A read: it answers while a turn runs (control
lane) and when the budget is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from surfaces.core import month_of
from surfaces.i18n import Texts
from surfaces.state import Store
from surfaces.turns import UsageBudgets

from ._invocation import Invocation


@attrs.define
class UsageCommands:
    store: Store
    budgets: UsageBudgets
    texts: Texts
    clock: Callable[[], float] = time.time

    async def usage(self, call: Invocation) -> None:
        chat, n = call.chat, self.texts.number
        month = month_of(self.clock())
        summary = await self.store.usage_summary(chat.owner, chat.room_id, month)
        lines = [
            self.texts(
                "usage",
                chat_month=n(summary.chat.month_tokens),
                chat_total=n(summary.chat.tokens),
                user_month=n(summary.user.month_tokens),
                user_total=n(summary.user.tokens),
                chat_unknown=n(summary.chat.unknown),
                chat_turns=n(summary.chat.turns),
                user_unknown=n(summary.user.unknown),
                user_turns=n(summary.user.turns),
            )
        ]
        state = self.budgets.state(chat.owner, summary.user.month_tokens, month)
        if state is not None:
            fields = {
                "used": n(state.used),
                "budget": n(state.budget),
                "resets": self.texts.moment(state.resets),
            }
            if state.spent:
                lines.append(self.texts("usage_budget_spent", **fields))
            else:
                lines.append(
                    self.texts("usage_budget", percent=self.texts.percent(state.share), **fields)
                )
        await call.reply.text("\n".join(lines))
