"""Forged state on a real Synapse (issue 13 §1).

What the trust rule rests on is the server's behaviour, so it is checked here: who
may write the bot's binding events (anyone, in a room of their own; nobody but the
bot, in the bot's rooms), and who the ``m.room.create`` event names. Then the attack
of the issue runs against the real bot: a room with a forged binding naming another
user's agent conversation, the bot invited to it and to a second DM, the database
lost — and the bot adopts nothing of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from e2e_users import SimUser
from test_bot_e2e import STEP_S, bot_rig, echo_done, onboard, platform_chat_id, say

from matrix_client import MatrixError
from matrix_client.testing import LocalSynapse
from surfaces.core import CHAT_EVENT, SPACE_EVENT

pytestmark = pytest.mark.synapse


async def room_with_binding(user: SimUser, invite: str, content: dict) -> str:
    """``user`` creates a room with ``content`` as the bot's chat binding, inviting ``invite``."""
    return await user.client.create_room(
        invite=[invite], initial_state=[{"type": CHAT_EVENT, "state_key": "", "content": content}]
    )


def forged_binding(owner: str, local_id: str, platform_chat_id: str) -> dict:
    return {
        "version": 1,
        "owner": owner,
        "chat_id": local_id,
        "agent_id": "default",
        "platform_chat_id": platform_chat_id,
        "name": "forged",
        "status": "active",
    }


async def test_only_the_bot_can_write_its_bindings_in_its_rooms(
    synapse: LocalSynapse, make_user
) -> None:
    """In a room the bot created (``private_chat``: the invitee has power 0, state
    needs 50) the user cannot write the binding, nor link a room into the bot's
    Space; in a room of the user's own, the user can write anything — and the
    event's sender and the create event's sender tell the two apart."""
    async with (
        SimUser.open(synapse, await make_user("bot")) as bot,
        SimUser.open(synapse, await make_user("mallory")) as mallory,
    ):
        with trio.fail_after(STEP_S):
            space = await bot.client.create_room(
                is_space=True, invite=[mallory.user_id], preset="private_chat"
            )
            room = await room_with_binding(
                bot, mallory.user_id, forged_binding(mallory.user_id, "C1", "1")
            )
            await mallory.join(space)
            await mallory.join(room)
            for target, kind, key in (
                (room, CHAT_EVENT, ""),
                (space, SPACE_EVENT, ""),
                (space, "m.space.child", "!mine:elsewhere"),
            ):
                with pytest.raises(MatrixError) as refused:
                    await mallory.client.put_state_event(
                        target, kind, forged_binding(mallory.user_id, "C9", "9"), state_key=key
                    )
                assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")

            own = await room_with_binding(
                mallory, bot.user_id, forged_binding(mallory.user_id, "C1", "1")
            )
            state = {(e.type, e.state_key): e for e in await bot_view(bot, own)}
            bot_state = {(e.type, e.state_key): e for e in await bot.client.get_state(room)}
        assert state[(CHAT_EVENT, "")].sender == mallory.user_id
        assert state[("m.room.create", "")].sender == mallory.user_id
        assert bot_state[(CHAT_EVENT, "")].sender == bot.user_id
        create = bot_state[("m.room.create", "")]
        assert create.sender == bot.user_id
        if int(create.content.get("room_version", "1")) >= 11:
            assert "creator" not in create.content  # MSC2175: the sender is the creator


async def bot_view(bot: SimUser, room_id: str):
    await bot.join(room_id)
    return await bot.client.get_state(room_id)


async def test_forged_room_naming_another_users_conversation_is_not_adopted(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        bot = rig.bot_id
        async with (
            SimUser.open(synapse, await make_user("carol", displayname="Carol")) as carol,
            SimUser.open(synapse, await make_user("mallory", displayname="Mallory")) as mallory,
        ):
            ws = await onboard(carol, bot)
            pcid = await platform_chat_id(carol, ws.chat_id)
            await say(carol, ws.chat_id, bot, "my plans", echo_done("my plans", first=True))
            await onboard(mallory, bot)
            with trio.fail_after(STEP_S):
                forged = await room_with_binding(
                    mallory, bot, forged_binding(mallory.user_id, "C5", pcid)
                )
                await mallory.create_dm(bot)  # used to make the forged room "unknown"
                for _ in range(STEP_S * 5):  # the bot joins the rooms it is invited to
                    if bot in await mallory.client.joined_members(forged):
                        break
                    await trio.sleep(0.2)

            await rig.stop()
            rig.wipe_database()
            await rig.start()

            assert rig.app is not None
            assert rig.app.store is not None
            store = rig.app.store
            assert await store.get_chat(forged) is None
            chat = await store.get_chat(ws.chat_id)
            assert chat is not None
            assert (chat.owner, chat.platform_chat_id) == (carol.user_id, pcid)
            with trio.fail_after(STEP_S):
                sent = await mallory.send_text(forged, "what are her plans?")
                await mallory.wait_notice(forged, sent, bot, "отправлены повторно")
            assert rig.agent.history[pcid] == ["my plans"]
