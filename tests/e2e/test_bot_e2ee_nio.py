"""The encrypting bot on a real Synapse, with an independent E2EE user (matrix-nio).

What the user's client (nio: its own Olm/Megolm machine, device tracking and
attachments) must see: an encrypted DM onboarding, encrypted turns both ways,
encrypted files both ways, a second device that logs in later reading the bot's next
reply, a restart that keeps the bot's sessions, and a lost database after which the
bot comes back as a new device and the room works again. Plus what Synapse does to a
new identity re-using a device id (why a lost database means a new device).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import pytest
import trio
from nio_user import MEGOLM, NioUser, Received
from test_bot_e2e import bot_rig, echo_done
from test_nio_user import nio_login

from matrix_client import MatrixClient, MatrixError
from matrix_client.crypto import MemoryCryptoStore, OlmMachine
from matrix_client.testing import LocalSynapse, RegisteredUser

pytestmark = pytest.mark.synapse

STEP_S = 30


def shown_body(message: Received) -> str:
    """What a client shows for a message or an edit of it."""
    new = message.content.get("m.new_content")
    return str(new.get("body", "")) if isinstance(new, dict) else message.body


@attrs.frozen
class Onboarded:
    dm: str
    space: str
    chat: str


async def onboard(hs: LocalSynapse, user: NioUser, token: str, bot_id: str) -> Onboarded:
    """Alice's client creates an encrypted DM with the bot; she joins what it makes."""
    with trio.fail_after(STEP_S):
        dm = await user.create_room(invite=[bot_id], is_direct=True)
        provisioned = await user.wait_message(dm, sender=bot_id)
        first = await user.wait_invite()
        await user.join(first)
        second = await user.wait_invite()
        await user.join(second)
    assert provisioned.encrypted, provisioned
    assert "«Чат 1»" in provisioned.body, provisioned.body
    create = await state(hs, token, first, "m.room.create")
    space, chat = (first, second) if create.get("type") == "m.space" else (second, first)
    return Onboarded(dm, space, chat)


async def get_json(hs: LocalSynapse, token: str, path: str) -> dict[str, Any]:
    """``GET /_matrix/client/v3/<path>`` as the user with ``token`` (what the server has)."""
    async with httpx.AsyncClient(
        base_url=hs.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        with trio.fail_after(STEP_S):
            response = await http.get(f"/_matrix/client/v3/{path}")
    assert response.status_code == 200, response.text
    return response.json()


async def state(hs: LocalSynapse, token: str, room: str, event_type: str) -> dict[str, Any]:
    return await get_json(hs, token, f"rooms/{quote(room)}/state/{quote(event_type)}")


async def reply_to(user: NioUser, room: str, bot_id: str, text: str, *, done) -> Received:
    """Send ``text``; the bot's reply (its original or an edit) once ``done`` holds."""
    with trio.fail_after(STEP_S):
        await user.send_text(room, text)
        return await user.wait_message(room, sender=bot_id, match=lambda m: done(shown_body(m)))


async def raw_event(hs: LocalSynapse, token: str, room: str, event_id: str) -> dict[str, Any]:
    """The event as the server stores and serves it."""
    return await get_json(hs, token, f"rooms/{quote(room)}/event/{quote(event_id)}")


async def test_encrypted_dm_onboarding_and_a_turn_both_ways(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        account = await make_user("alice", displayname="Alice")
        async with nio_login(synapse, account, "ALICE1", tmp_path) as alice:
            rooms = await onboard(synapse, alice, account.access_token, rig.bot_id)
            with trio.fail_after(STEP_S):
                welcome = await alice.wait_message(rooms.chat, sender=rig.bot_id)
            assert welcome.encrypted
            assert welcome.body.startswith("Привет, Alice!"), welcome.body
            wire = await raw_event(synapse, account.access_token, rooms.chat, welcome.event_id)
            assert wire["type"] == "m.room.encrypted"
            assert wire["content"]["algorithm"] == MEGOLM

            reply = await reply_to(
                alice, rooms.chat, rig.bot_id, "hello agent", done=echo_done("hello agent")
            )
            assert reply.encrypted
            assert rig.agent.turns_served == 1
            # An edit keeps its relation in clear (the server aggregates it).
            if reply.relates_to is not None:
                wire = await raw_event(synapse, account.access_token, rooms.chat, reply.event_id)
                assert wire["content"]["m.relates_to"]["rel_type"] == "m.replace"
                assert "hello agent" not in str(wire["content"])


async def test_encrypted_files_both_ways(synapse: LocalSynapse, make_user, tmp_path: Path) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        account = await make_user("erin")
        async with nio_login(synapse, account, "ERIN1", tmp_path) as erin:
            rooms = await onboard(synapse, erin, account.access_token, rig.bot_id)
            data = b"quarterly numbers\n" * 50
            with trio.fail_after(STEP_S):
                await erin.send_file(rooms.chat, data, filename="notes.txt")
                staged = await erin.wait_message(
                    rooms.chat, sender=rig.bot_id, match=lambda m: "notes.txt" in m.body
                )
            assert "получен" in staged.body, staged.body
            assert (rig.workspace / "incoming" / "notes.txt").read_bytes() == data
            body = shown_body(
                await reply_to(
                    erin, rooms.chat, rig.bot_id, "see attached", done=echo_done("see attached")
                )
            )
            assert f"Attachments (1): incoming/notes.txt ({len(data)} bytes)." in body, body

            with trio.fail_after(STEP_S):
                await erin.send_text(rooms.chat, "/file report.txt")
                back = await erin.wait_message(
                    rooms.chat, sender=rig.bot_id, match=lambda m: m.msgtype == "m.file"
                )
            assert back.encrypted
            assert "url" not in back.content  # inside the encrypted `file` object
            assert back.content["file"]["v"] == "v2"
            with trio.fail_after(STEP_S):
                report = await erin.download(back)
            assert report.decode().startswith("Reference agent file for chat")


async def test_a_second_device_later_reads_the_bots_next_reply(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        account = await make_user("bob")
        async with nio_login(synapse, account, "BOBLAPTOP", tmp_path) as laptop:
            rooms = await onboard(synapse, laptop, account.access_token, rig.bot_id)
            await reply_to(laptop, rooms.chat, rig.bot_id, "first", done=echo_done("first"))
            async with nio_login(synapse, account, "BOBPHONE", tmp_path) as phone:
                with trio.fail_after(STEP_S):
                    await phone.wait_joined(rooms.chat, account.user_id)
                await reply_to(laptop, rooms.chat, rig.bot_id, "second", done=echo_done("second"))
                with trio.fail_after(STEP_S):
                    on_phone = await phone.wait_message(
                        rooms.chat,
                        sender=rig.bot_id,
                        match=lambda m: echo_done("second")(shown_body(m)),
                    )
                assert on_phone.encrypted


async def _session_of(hs: LocalSynapse, account: RegisteredUser, room: str, message: Received):
    wire = await raw_event(hs, account.access_token, room, message.event_id)
    return wire["content"]["session_id"]


async def test_a_restart_keeps_the_bots_sessions(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        account = await make_user("dora")
        async with nio_login(synapse, account, "DORA1", tmp_path) as dora:
            rooms = await onboard(synapse, dora, account.access_token, rig.bot_id)
            before = await reply_to(dora, rooms.chat, rig.bot_id, "one", done=echo_done("one"))
            identity = rig.app.crypto.machine.identity_keys
            await rig.stop()
            await rig.start()
            assert rig.app.crypto.machine.identity_keys == identity
            after = await reply_to(dora, rooms.chat, rig.bot_id, "two", done=echo_done("two"))
            assert after.encrypted
            # Same outbound session: nothing new had to be shared for the reply.
            assert await _session_of(synapse, account, rooms.chat, after) == (
                await _session_of(synapse, account, rooms.chat, before)
            )


async def test_a_lost_database_gives_a_new_device_and_the_room_recovers(
    synapse: LocalSynapse, make_user, tmp_path: Path
) -> None:
    async with bot_rig(synapse, make_user, tmp_path) as rig:
        account = await make_user("fred")
        async with nio_login(synapse, account, "FRED1", tmp_path) as fred:
            rooms = await onboard(synapse, fred, account.access_token, rig.bot_id)
            await reply_to(fred, rooms.chat, rig.bot_id, "before", done=echo_done("before"))
            old_device = rig.app.crypto.device_id
            await rig.stop()
            assert rig.wipe_database()
            await rig.start()
            new_device = rig.app.crypto.device_id
            assert new_device != old_device
            with trio.fail_after(STEP_S):
                await fred.wait_device(rig.bot_id, new_device)
                assert old_device not in await fred.devices(rig.bot_id)
            reply = await reply_to(
                fred, rooms.chat, rig.bot_id, "after the loss", done=echo_done("after the loss")
            )
            assert reply.encrypted


async def test_synapse_refuses_a_new_identity_on_a_device_id_that_has_keys(
    synapse: LocalSynapse, make_user
) -> None:
    """The finding behind "a lost database means a new device": a second account on the
    same device id numbers its one-time keys from the start again, and Synapse refuses
    the upload of a key id it still holds with other content (and replaces the device
    keys of the device id regardless, which peers that pinned them refuse)."""
    account = await make_user("lost")
    async with MatrixClient(
        synapse.base_url,
        access_token=account.access_token,
        user_id=account.user_id,
        device_id=account.device_id,
    ) as client:
        for attempt in range(2):
            machine = OlmMachine.create(
                account.user_id,
                account.device_id,
                store=MemoryCryptoStore(),
                pickle_key=bytes(32),
            )
            [upload] = machine.outgoing_requests()
            with trio.fail_after(STEP_S):
                if attempt == 0:
                    machine.mark_request_sent(
                        upload.request_id, await client.send_crypto_request(upload)
                    )
                    continue
                with pytest.raises(MatrixError) as refused:
                    await client.send_crypto_request(upload)
        assert refused.value.status == 400
        assert "already exists" in refused.value.message
