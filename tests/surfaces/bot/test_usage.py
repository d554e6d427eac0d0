"""Usage end to end in the bot (fake homeserver, reference agent): ``!usage`` sums,
the ``!status`` line, the monthly budget's 80 % notice and its refusal."""

from __future__ import annotations

import time
from pathlib import Path

from surfaces.core import resets_at
from surfaces.i18n import format_moment

EN = {"SURFACES_BOT__LOCALE": "en"}


def add_user_budgets(registry: str, yaml_text: str) -> None:
    path = Path(registry)
    path.write_text(path.read_text(encoding="utf-8") + yaml_text, encoding="utf-8")


def usage_lines(tools, room: str) -> list[str]:
    return tools.last(room)["body"].splitlines()


async def test_usage_sums_chats_and_counts_turns_without_a_count(harness, tools, autojump_clock):
    await harness.restart(**EN)
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await tools.say(alice, room, "/chunks 5")  # the reference agent reports 5 tokens
    await tools.say(alice, room, "/instant")  # 1
    await tools.say(alice, room, "/error")  # no END: unknown
    await tools.say(alice, room, "!usage")
    reply = tools.last(room)
    assert reply["msgtype"] == "m.notice"
    assert reply["body"].splitlines() == [
        "📊 Tokens used (months are calendar months in UTC)",
        "This chat: 6 this month · 6 in total",
        "All your chats: 6 this month · 6 in total",
        "Replies without a token count: 1 of 3 in this chat, 1 of 3 in all your chats",
    ]
    # A second chat: its own sums, and the user's include both.
    await tools.say(alice, room, "!new")
    second = (await tools.store.chats_of(alice.user_id))[1].room_id
    harness.hs.join_as(alice, second)
    await harness.settle()
    await tools.say(alice, second, "/long 50000")  # 10,000 tokens
    await tools.say(alice, second, "!usage")
    lines = usage_lines(tools, second)
    assert lines[1] == "This chat: 10,000 this month · 10,000 in total"
    assert lines[2] == "All your chats: 10,006 this month · 10,006 in total"
    assert (
        lines[3] == "Replies without a token count: 0 of 1 in this chat, 1 of 4 in all your chats"
    )
    # Another user sees only their own numbers.
    bob = harness.user("bob")
    _, _, bobs = await harness.onboard(bob)
    await tools.say(bob, bobs, "!usage")
    assert usage_lines(tools, bobs)[2] == "All your chats: 0 this month · 0 in total"


async def test_status_shows_the_chats_total(harness, tools, autojump_clock):
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    await tools.say(alice, room, "/long 6000")  # 1 200 tokens
    await tools.say(alice, room, "!status")
    assert tools.last(room)["body"].splitlines()[-1] == "Токенов в этом чате: 1\u202f200"


async def test_the_budget_warns_once_at_80_percent_then_refuses_at_100(
    harness, tools, autojump_clock
):
    await harness.restart(SURFACES_USAGE__MONTHLY_TOKEN_BUDGET="10", **EN)
    alice = harness.user("alice")
    _, _, room = await harness.onboard(alice)
    resets = format_moment(resets_at(time.time()), "en")
    await tools.say(alice, room, "/chunks 7")  # 70 %: nothing said
    assert not [n for n in tools.notices(room) if "budget" in n]
    await tools.say(alice, room, "/chunks 1")  # 80 %: told
    warnings = [n for n in tools.notices(room) if n.startswith("⚠️")]
    assert warnings == [
        "⚠️ You have used 80% or more of your monthly token budget (10). It resets on "
        f"{resets}; once it is spent, messages won't reach the agent until then. "
        "Details: !usage."
    ]
    await tools.say(alice, room, "/chunks 1")  # 90 %: told already
    await tools.say(alice, room, "/chunks 5")  # started under the budget: runs to the end
    assert tools.last(room)["body"].startswith("chunk 1/5")
    assert len([n for n in tools.notices(room) if n.startswith("⚠️")]) == 1
    served = harness.agent.turns_served
    await tools.say(alice, room, "are you there?")
    assert harness.agent.turns_served == served  # not passed on
    refusal = tools.last(room)
    assert refusal["msgtype"] == "m.notice"
    assert refusal["body"] == (
        "⛔ Your monthly token budget is spent (14 of 10), so this message was not passed "
        f"to the agent. The budget resets on {resets}. Commands still work; details: !usage."
    )
    # A burst sent while the budget is spent gets one notice, and none of it is answered.
    refusals = len([n for n in tools.notices(room) if n.startswith("⛔")])
    for text in ("first", "second", "third"):
        harness.hs.text_as(alice, room, text)
    await harness.settle()
    assert len([n for n in tools.notices(room) if n.startswith("⛔")]) == refusals + 1
    assert harness.agent.turns_served == served
    # Commands keep working; !usage shows the spent budget.
    await tools.say(alice, room, "!usage")
    assert usage_lines(tools, room)[-1] == (
        f"Monthly token budget spent: 14 of 10; messages reach the agent again on {resets}."
    )
    # The refused message is finished once: a restart does not answer it again.
    before = len(tools.messages(room))
    await harness.restart()
    await harness.settle()
    assert len(tools.messages(room)) == before
    assert harness.agent.turns_served == served


async def test_a_registry_override_gives_one_user_a_budget_and_exempts_another(
    harness, tools, autojump_clock
):
    registry = tools.registry(
        agents=[{"id": "agent-0", "label": "Agent 0", "base_url": "http://agent.test/agent_0/"}]
    )
    add_user_budgets(
        registry, 'user_budgets:\n  "@alice:test.local": 3\n  "@bob:test.local": none\n'
    )
    await harness.restart(
        MATRIX_AGENT_REGISTRY_PATH=registry, SURFACES_USAGE__MONTHLY_TOKEN_BUDGET="1"
    )
    alice, bob = harness.user("alice"), harness.user("bob")
    _, _, alices = await harness.onboard(alice)
    _, _, bobs = await harness.onboard(bob)
    await tools.say(alice, alices, "/chunks 2")
    await tools.say(alice, alices, "/instant")  # 3 of 3
    await tools.say(bob, bobs, "/chunks 5")
    await tools.say(bob, bobs, "/instant")  # no budget for Bob despite the default of 1
    assert tools.last(bobs)["body"] == "ok"
    await tools.say(alice, alices, "/instant")
    assert tools.last(alices)["body"].startswith("⛔ Месячный лимит токенов исчерпан (3 из 3)")
    # Alice's budget line in !usage shows 100 %.
    await tools.say(alice, alices, "!usage")
    assert usage_lines(tools, alices)[-1].startswith("Месячный лимит токенов исчерпан: 3 из 3")
