"""Usage against a real Synapse and the reference agent: the sums ``!usage`` shows
are the reference agent's ``tokens_used`` (one per whitespace-separated word of its
echo), a failed turn counts as a reply without a count, and a spent budget refuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from e2e_users import SimUser
from test_bot_e2e import bot_rig, command, echo_done, onboard, say

from matrix_client.testing import LocalSynapse

pytestmark = pytest.mark.synapse


def tokens_metric(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("surfaces_agent_tokens_total{")
    )


async def test_usage_sums_match_the_reference_agents_counts(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        bot = rig.bot_id
        async with SimUser.open(synapse, await make_user("ulla")) as ulla:
            ws = await onboard(ulla, bot)
            room = ws.chat_id
            expected = 0
            for text in ("hello agent", "how many tokens is this", "a third message"):
                body = await say(ulla, room, bot, text, echo_done(text))
                expected += len(body.split())  # what the reference agent reports
            await command(ulla, room, bot, "/error", "Ошибка агента")  # no END: unknown
            notice = await command(ulla, room, bot, "!usage", "Расход токенов")
            lines = notice.splitlines()
            assert lines[1] == f"Этот чат: {expected} в этом месяце · {expected} всего"
            assert lines[2] == f"Все твои чаты: {expected} в этом месяце · {expected} всего"
            assert lines[3] == (
                "Ответов без данных о токенах: 1 из 4 в этом чате, 1 из 4 во всех чатах"
            )
            status = await command(ulla, room, bot, "!status", "Токенов в этом чате")
            assert status.splitlines()[-1] == f"Токенов в этом чате: {expected}"
            assert rig.app is not None
            assert tokens_metric(rig.app.metrics.render().decode()) == expected


async def test_a_spent_budget_refuses_until_the_month_ends(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(
        synapse, make_user, tmp_path, SURFACES_USAGE__MONTHLY_TOKEN_BUDGET="5"
    ) as rig:
        bot = rig.bot_id
        async with SimUser.open(synapse, await make_user("vera")) as vera:
            ws = await onboard(vera, bot)
            room = ws.chat_id
            body = await say(vera, room, bot, "spend it", echo_done("spend it"))
            assert len(body.split()) >= 5  # the echo alone spends the budget of 5
            served = rig.agent.turns_served
            refusal = await command(vera, room, bot, "one more", "Месячный лимит")
            assert re.fullmatch(
                r"⛔ Месячный лимит токенов исчерпан \(\d+ из 5\), поэтому сообщение не "
                r"передано агенту\. Лимит обновится 1 \w+ \d{4}, 00:00 UTC\. Команды работают "
                r"как обычно; подробности — !usage\.",
                refusal,
            ), refusal
            usage = await command(vera, room, bot, "!usage", "снова дойдут")
            assert "Месячный лимит токенов исчерпан" in usage.splitlines()[-1]
            assert rig.agent.turns_served == served
