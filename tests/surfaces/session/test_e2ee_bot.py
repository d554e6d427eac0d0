"""The encrypting bot against the fake homeserver, with an E2EE user (``CryptoUser``):
device keys, onboarding in encrypted rooms, encrypted turns both ways, key sharing and
rotation, keys that come late or never, crashes around the batch that brings a key."""

from __future__ import annotations

import time

import pytest
from e2ee_helpers import ENCRYPTED, E2EEUser, eventually

from matrix_client.crypto import MEGOLM_ALGORITHM
from surfaces.app.decryption import WAIT_FOR_KEY_S, expire_waiting
from surfaces.ops.backup import backup_database

BOT_DEVICE = "SURFACESBOT"


@pytest.fixture
async def bot(harness):
    """The harness bot with encryption on (a restart of the default one)."""
    await harness.restart(**ENCRYPTED)
    return harness


async def onboard(h, user: E2EEUser) -> tuple[str, str]:
    """An encrypted DM to the bot; the user joins the first chat → (dm, chat room)."""
    dm = h.hs.invite_bot(h.bot_user, inviter=user.account, encrypted=True)
    await h.settle()
    [chat] = await h.app.store.chats_of(user.user_id)
    await user.join(chat.room_id)
    await h.settle()
    return dm, chat.room_id


def bot_id(h) -> str:
    return h.bot_user.user_id


async def test_device_keys_one_time_keys_and_a_fallback_key_are_uploaded(bot, autojump_clock):
    hs = bot.hs
    keys = hs.device_keys(bot.bot_user, BOT_DEVICE)
    assert keys is not None
    assert keys["device_id"] == BOT_DEVICE
    assert set(keys["algorithms"]) >= {"m.olm.v1.curve25519-aes-sha2", MEGOLM_ALGORITHM}
    counts = hs.one_time_key_counts(bot.bot_user, BOT_DEVICE)
    assert counts["signed_curve25519"] > 0
    upload = hs.requests_to("POST", "/keys/upload")[0].body
    assert upload["fallback_keys"]
    assert bot.app.crypto.device_id == BOT_DEVICE


async def test_encrypted_dm_onboarding_encrypted_rooms_and_a_readable_welcome(
    bot, tools, autojump_clock
):
    alice = bot.user("alice", displayname="Alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        dm, room = await onboard(bot, user)
        assert bot.hs.state_content(room, "m.room.encryption") == {"algorithm": MEGOLM_ALGORITHM}
        user_record = await tools.store.get_user(alice.user_id)
        assert bot.hs.state_content(user_record.space_id, "m.room.encryption") is None
        # Nothing in clear: every bot message in both rooms is m.room.encrypted.
        for r in (dm, room):
            assert bot.hs.messages_from(bot.bot_user, r) == []
        # The welcome went out while alice was only invited: she can read it.
        [welcome] = await user.bodies(room, bot_id(bot))
        assert welcome.startswith("Привет, Alice!")
        dm_texts = await user.bodies(dm, bot_id(bot))
        assert len(dm_texts) == 1
        assert "«Чат 1»" in dm_texts[0]  # provisioned; no "this DM is encrypted" notice


async def test_an_encrypted_turn_both_ways(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        await user.say(room, "hello there")
        await bot.settle(10)
        texts = await user.bodies(room, bot_id(bot))
        assert "You said: «hello there»" in texts[-1]
        assert bot.hs.messages_from(bot.bot_user, room) == []  # the reply and its edits
        # The user's message was decrypted (its room key came over Olm, in the batch).
        assert bot.agent.turns_served == 1


async def test_keys_are_claimed_and_shared_over_olm_with_every_member_device(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        claims = bot.hs.requests_to("POST", "/keys/claim")
        assert any(alice.user_id in r.body["one_time_keys"] for r in claims)
        sends = [
            r for r in bot.hs.requests_to("PUT", "/sendToDevice/*") if r.user_id == bot_id(bot)
        ]
        assert sends
        assert all(r.path.split("/")[-2] == "m.room.encrypted" for r in sends)
        targets = {d for r in sends for d in r.body["messages"].get(alice.user_id, {})}
        assert targets == {alice.device_id}
        # A second device of alice (logged in later) gets the key before the next reply.
        second = bot.hs.login(alice, device_id="ALICE2")
        async with bot.hs.user_client(second) as client2:
            from matrix_client.testing import CryptoUser

            other = await CryptoUser.start(client2)
            await user.say(room, "from the first device")
            await bot.settle(10)
            batch = await client2.syncer(since=None, filter_id=None).next()
            await other.receive(batch)
            readable = [
                e.content.get("body")
                for e in (
                    other.decrypt(room, ev.event)
                    for ev in batch.events
                    if ev.room_id == room and ev.event.sender == bot_id(bot)
                )
                if e.type == "m.room.message"
            ]
            assert any("from the first device" in (b or "") for b in readable), readable


def _session_ids(h, room: str) -> list[str]:
    return [
        e["content"]["session_id"] for e in h.hs.messages_from(h.bot_user, room, "m.room.encrypted")
    ]


async def test_the_room_key_rotates_when_a_member_leaves(bot, autojump_clock):
    alice, bob = bot.user("alice"), bot.user("bob")
    async with E2EEUser.open(bot.hs, alice) as user, E2EEUser.open(bot.hs, bob) as guest:
        _, room = await onboard(bot, user)
        bot.hs.invite_as(bot.bot_user, room, bob)
        await guest.join(room)
        await user.say(room, "one")
        await bot.settle(10)
        before = _session_ids(bot, room)[-1]
        bot.hs.leave_as(bob, room)
        await bot.settle()
        await user.say(room, "two")
        await bot.settle(10)
        after = _session_ids(bot, room)[-1]
        assert after != before
        # bob's device never got the new session.
        to_bob = [
            r
            for r in bot.hs.requests_to("PUT", "/sendToDevice/*")
            if r.user_id == bot_id(bot) and bob.user_id in r.body.get("messages", {})
        ]
        assert to_bob  # he had the old one
        assert "two" in (await user.bodies(room, bot_id(bot)))[-1]


async def test_the_room_key_rotates_after_the_rooms_message_count(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        bot.hs.set_state_as(
            alice,
            room,
            "m.room.encryption",
            {"algorithm": MEGOLM_ALGORITHM, "rotation_period_msgs": 3},
        )
        await bot.settle()
        await user.say(room, "a")
        await bot.settle(10)
        await user.say(room, "b")
        await bot.settle(10)
        sessions = _session_ids(bot, room)
        # The settings change started a session; then no more than 3 messages per session.
        counts: dict[str, int] = {}
        for session in sessions[1:]:
            counts[session] = counts.get(session, 0) + 1
        assert len(set(sessions)) >= 3
        assert max(counts.values()) <= 3


async def test_a_key_that_comes_late_still_gets_the_message_answered(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        # Alice's client sends the message, but its room key to the bot is lost.
        await user.sync()
        inbox = await user.say_with_key_lost(room, "late key", bot.bot_user, BOT_DEVICE)
        assert inbox  # the room key was on its way
        await bot.settle(10)
        assert bot.agent.turns_served == 0
        # The bot asked alice's devices for the key.
        requests = [
            r
            for r in bot.hs.requests_to("PUT", "/sendToDevice/m.room_key_request/*")
            if r.user_id == bot_id(bot)
        ]
        assert requests
        assert await bot.app.store.waiting_count() == 1
        # The key arrives (re-sent): the message is decrypted and answered.
        bot.hs.send_to_device_as(
            alice, "m.room.encrypted", {bot_id(bot): {BOT_DEVICE: inbox[-1]["content"]}}
        )
        await bot.settle(10)
        assert bot.agent.turns_served == 1
        assert "late key" in (await user.bodies(room, bot_id(bot)))[-1]
        assert await bot.app.store.waiting_count() == 0


async def test_a_lost_room_key_comes_back_through_a_key_request(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        await user.sync()
        await user.say_with_key_lost(room, "asked for", bot.bot_user, BOT_DEVICE)
        await bot.settle(10)
        assert await bot.app.store.waiting_count() == 1
        # Alice's device syncs: it gets the bot's m.room_key_request and, as the session
        # is hers and she shared it with that device, forwards the key.
        await user.sync()
        await bot.settle(10)
        assert await bot.app.store.waiting_count() == 0
        assert bot.agent.turns_served == 1
        assert "asked for" in (await user.bodies(room, bot_id(bot)))[-1]
        forwarded = [
            r
            for r in bot.hs.requests_to("PUT", "/sendToDevice/m.room.encrypted/*")
            if r.user_id == alice.user_id and bot_id(bot) in r.body["messages"]
        ]
        assert len(forwarded) >= 2  # the lost m.room_key, then the m.forwarded_room_key


async def test_a_key_that_never_comes_gets_one_notice(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        await user.sync()
        for n in range(2):  # alice's device does not sync: nobody answers the key request
            await user.say_with_key_lost(room, f"lost {n}", bot.bot_user, BOT_DEVICE)
            await bot.settle()
        assert await bot.app.store.waiting_count() == 2
        crypto, store, lanes = bot.app.crypto, bot.app.store, bot.app.lanes
        assert await expire_waiting(crypto, store, lanes, now=time.time() + WAIT_FOR_KEY_S - 5) == 0
        assert await expire_waiting(crypto, store, lanes, now=time.time() + WAIT_FOR_KEY_S + 5) == 2
        await bot.settle()
        assert await expire_waiting(crypto, store, lanes, now=time.time() + WAIT_FOR_KEY_S + 5) == 0
        texts = await user.bodies(room, bot_id(bot))
        notices = [t for t in texts if "расшифровать" in t]
        assert len(notices) == 1
        assert "2" in notices[0]
        assert bot.agent.turns_served == 0


async def test_a_crash_before_the_batch_commits_loses_no_room_key(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        store = bot.app.store
        real_admit = store.admit
        crashed = []

        async def admit_then_crash(next_batch, items, **kwargs):
            if kwargs.get("crypto") is not None and not kwargs["crypto"].is_empty and not crashed:
                crashed.append(True)
                await bot.crash()  # the process dies before the transaction commits
            return await real_admit(next_batch, items, **kwargs)

        store.admit = admit_then_crash
        await user.say(room, "survives the crash")
        await bot.settle()
        assert crashed
        assert bot.agent.turns_served == 0
        await bot.start()
        await bot.settle(10)
        assert bot.agent.turns_served == 1
        assert "survives the crash" in (await user.bodies(room, bot_id(bot)))[-1]


async def test_a_restart_keeps_the_identity_and_the_sessions(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        await user.say(room, "before")
        await bot.settle(10)
        identity = bot.app.crypto.machine.identity_keys
        outbound = _session_ids(bot, room)[-1]
        uploads = len(bot.hs.requests_to("POST", "/keys/upload"))
        await bot.restart()
        assert bot.app.crypto.machine.identity_keys == identity
        assert len(bot.hs.requests_to("POST", "/keys/upload")) == uploads  # nothing new
        claims = len(bot.hs.requests_to("POST", "/keys/claim"))
        await user.say(room, "after")
        await bot.settle(10)
        assert "after" in (await user.bodies(room, bot_id(bot)))[-1]
        assert _session_ids(bot, room)[-1] == outbound  # the same outbound session
        assert len(bot.hs.requests_to("POST", "/keys/claim")) == claims  # same Olm sessions


async def test_a_lost_database_means_a_new_device_and_rooms_recover(bot, tools, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        await user.say(room, "before")
        await bot.settle(10)
        await tools.restart_with_wiped_database(**ENCRYPTED)
        new_device = bot.app.crypto.device_id
        assert new_device.startswith(f"{BOT_DEVICE}_")
        devices = bot.hs.devices(bot.bot_user)
        assert new_device in devices
        assert BOT_DEVICE not in devices  # the old device was deleted (password UIA)
        # Alice's client sees the bot's new device and shares its key with it.
        await user.say(room, "after the loss")
        await bot.settle(10)
        assert "after the loss" in (await user.bodies(room, bot_id(bot)))[-1]
        # The next start keeps the new device (password login included).
        await bot.restart()
        assert bot.app.crypto.device_id == new_device


async def test_plaintext_messages_in_an_encrypted_room_are_ignored(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        bot.hs.text_as(alice, room, "injected in clear")
        await bot.settle(10)
        assert bot.agent.turns_served == 0
        # Unencrypted rooms keep working with encryption on.
        plain = bot.hs.create_room(alice, invite=[bot_id(bot)])
        await bot.settle()
        assert bot.hs.membership(plain, bot.bot_user) == "join"
        bot.hs.text_as(alice, plain, "!chats")
        await bot.settle()
        assert bot.hs.messages_from(bot.bot_user, plain)  # answered in clear


async def test_encrypted_files_both_ways(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        data = b"secret notes\n" * 100
        await user.send_file(room, data, "notes.txt")
        staged = bot.workspace / "incoming" / "notes.txt"

        async def stored() -> bool:
            return staged.exists() and staged.read_bytes() == data

        await eventually(stored)
        # What went over the wire was ciphertext only.
        uploads = [r for r in bot.hs.requests_to("POST", "/media/*/upload")]
        assert all(b"secret notes" not in (r.body or b"") for r in uploads)
        await user.say(room, "/file report.txt")

        async def posted() -> list:
            shown = await user.shown(room, bot_id(bot))
            return [m for m in shown if m.get("msgtype") == "m.file"]

        [sent] = await eventually(posted)
        assert "url" not in sent
        file = sent["file"]
        assert file["v"] == "v2"
        stored, content_type, _ = bot.hs.media(file["url"])
        assert content_type == "application/octet-stream"
        assert b"Reference agent file" not in stored
        report = await user.crypto.download_decrypted(file, max_bytes=10_000)
        assert report.startswith(b"Reference agent file for chat")


async def test_a_tampered_encrypted_file_is_refused_and_not_staged(bot, tools, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        file = await user.crypto.upload_encrypted(b"real", content_type="text/plain", filename="x")
        file["hashes"] = {"sha256": "A" * 43}  # the server (or anyone) swapped the media
        content = {"msgtype": "m.file", "body": "x.txt", "file": file, "info": {"size": 4}}
        await user.sync()
        await user.crypto.send(room, "m.room.message", content)

        async def answered() -> bool:
            return any("x.txt" in t for t in await user.bodies(room, bot_id(bot)))

        await eventually(answered)
        assert not (bot.workspace / "incoming").exists() or not list(
            (bot.workspace / "incoming").iterdir()
        )
        assert await tools.store.staged(room, alice.user_id) == []


async def test_a_restored_backup_starts_as_a_new_device(bot, tools, tmp_path, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        copy = tmp_path / "backup.db"
        backup_database(bot.state_dir / "surfaces.db", copy)
        await user.say(room, "after the backup")
        await bot.settle(10)
        await tools.stop()
        for path in bot.state_dir.glob("surfaces.db*"):
            path.unlink()
        copy.rename(bot.state_dir / "surfaces.db")
        await bot.start()
        # Its keys are older than what alice's device saw: a new device instead.
        assert bot.app.crypto.device_id.startswith(f"{BOT_DEVICE}_")
        assert BOT_DEVICE not in bot.hs.devices(bot.bot_user)
        assert await bot.app.store.get_value("backup.copied_at") is None
        await user.say(room, "after the restore")
        await bot.settle(10)
        assert "after the restore" in (await user.bodies(room, bot_id(bot)))[-1]


async def test_a_long_formatted_reply_fits_once_encrypted(bot, autojump_clock):
    alice = bot.user("alice")
    async with E2EEUser.open(bot.hs, alice) as user:
        _, room = await onboard(bot, user)
        words = " ".join(f"**w{n}**" for n in range(2_400))  # Markdown: HTML as large
        await user.say(room, words)
        await bot.settle(30)
        shown = await user.shown(room, bot_id(bot))
        text = "".join(m.get("body", "") for m in shown[1:])
        assert "w2399" in text
        assert all("undecrypted" not in m for m in shown)
        failed = await bot.app.store.outbox_count()
        assert failed == 0
