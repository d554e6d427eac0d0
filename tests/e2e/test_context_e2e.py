"""Context that survives the agent (issue 15 §3) on a real Synapse with the reference
agent: ``!save`` then ``!load`` primes a *new* platform chat id with the transcript
(seen by the user in ``!status`` and the chat's state event, and by the agent in the
text it received), and the agent then knows the earlier conversation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio
from e2e_users import SimUser
from test_bot_e2e import STEP_S, bot_rig, command, echo_done, onboard, platform_chat_id, say, within

from matrix_client.testing import LocalSynapse
from surfaces.turns.primer import BEGIN, END

pytestmark = pytest.mark.synapse

_PLATFORM_ID = re.compile(r"id на платформе: (\S+)")


async def status_platform_id(user: SimUser, room: str, bot: str) -> str:
    body = await command(user, room, bot, "!status", "id на платформе:")
    match = _PLATFORM_ID.search(body)
    assert match, body
    return match.group(1)


async def test_save_then_load_primes_a_new_platform_chat_id(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        bot, agent = rig.bot_id, rig.agent
        account = await make_user("ctx", displayname="Ctx")
        async with SimUser.open(synapse, account) as user:
            room = (await onboard(user, bot)).chat_id
            word = "my code word is heron"
            await say(user, room, bot, word, echo_done(word, first=True))
            await command(user, room, bot, "!save e2e", "Снимок «e2e» сохранён (1 обмен)")
            await command(user, room, bot, "!context", "Ты: my code word is heron")
            before = await status_platform_id(user, room, bot)

            with within(STEP_S, user, room, "the agent's answer to the primer"):
                sent = await user.send_text(room, "!load e2e")
                await user.wait_notice(room, sent, bot, "📥 Загружаю «e2e»")
                await user.wait_reply(
                    room, sent, bot, lambda body: body.startswith("Transcript received: 1 ")
                )
            after = await status_platform_id(user, room, bot)
            assert after != before
            assert await platform_chat_id(user, room) == after
            # the agent got one USER_MESSAGE on the new id: the delimited transcript
            assert len(agent.history[after]) == 1
            primer = agent.history[after][0]
            assert primer.startswith(f"{BEGIN} exchanges=1 omitted=0>>>")
            assert f"\nuser: {word}\n" in primer
            assert primer.endswith(END)
            assert agent.history[before][0] == word  # the old conversation, untouched

            recalled = await say(
                user, room, bot, "/recall", lambda body: body.startswith("I remember")
            )
            assert recalled == f"I remember 1 earlier messages: «{word}»"

            # !restore primes yet another conversation from the chat's own transcript
            with within(STEP_S, user, room, "the agent's answer to !restore"):
                sent = await user.send_text(room, "!restore")
                await user.wait_notice(room, sent, bot, "📥 Восстанавливаю этот чат")
                await user.wait_reply(
                    room, sent, bot, lambda body: body.startswith("Transcript received: 2 ")
                )
            restored = await platform_chat_id(user, room)
            assert restored not in (before, after)
            assert f"\nuser: {word}\n" in agent.history[restored][0]
            with trio.fail_after(STEP_S):
                await command(user, room, bot, "!forget", "🗑 Журнал этого чата удалён")
