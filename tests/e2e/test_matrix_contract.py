"""Contract tests: ``matrix_client.MatrixClient`` against a real Synapse.

Each test registers fresh users on the session's lifted-ratelimit Synapse. Real
sockets, so no ``autojump_clock``; every wait is bounded with ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from matrix_client import (
    MatrixClient,
    MatrixError,
    MediaTooLargeError,
    Membership,
    Presence,
    SyncBatch,
    Syncer,
    UnknownTokenError,
    edit_content,
    media_content,
    new_txn_id,
    text_content,
)
from matrix_client.testing import LocalSynapse, RegisteredUser

pytestmark = pytest.mark.synapse

STEP_S = 15  # bound of one request-sized step (Synapse answers in milliseconds)
LONG_POLL_MS = 10_000


@asynccontextmanager
async def client_for(hs: LocalSynapse, user: RegisteredUser) -> AsyncIterator[MatrixClient]:
    async with MatrixClient(
        hs.base_url,
        access_token=user.access_token,
        user_id=user.user_id,
        device_id=user.device_id,
    ) as client:
        yield client


async def next_batch_where(syncer: Syncer, predicate: Callable[[SyncBatch], bool]) -> SyncBatch:
    """Long-poll until a batch satisfies ``predicate`` (callers bound the wait)."""
    while True:
        batch = await syncer.next()
        if predicate(batch):
            return batch


async def test_versions_supports_authenticated_media(synapse: LocalSynapse) -> None:
    async with MatrixClient(synapse.base_url) as client:
        with trio.fail_after(STEP_S):
            versions = await client.versions()
    assert versions.supports("v1.11")
    assert "v1.11" in versions.versions


async def test_password_login_with_fixed_device_then_whoami(
    synapse: LocalSynapse, make_user
) -> None:
    user = await make_user("login")
    async with MatrixClient(synapse.base_url) as client:
        with trio.fail_after(STEP_S):
            login = await client.login_password(
                user.localpart, user.password, device_id="SURFACES", device_display_name="bot"
            )
            assert login.user_id == user.user_id
            assert login.device_id == "SURFACES"
            assert client.access_token == login.access_token

            whoami = await client.whoami()
    assert whoami.user_id == user.user_id
    assert whoami.device_id == "SURFACES"
    assert (client.user_id, client.device_id) == (user.user_id, "SURFACES")

    # Logging in again with the same device id keeps the device (txn ids stay valid).
    async with MatrixClient(synapse.base_url) as again:
        with trio.fail_after(STEP_S):
            relogin = await again.login_password(user.user_id, user.password, device_id="SURFACES")
    assert relogin.device_id == "SURFACES"


async def test_access_token_login_whoami_and_logout(synapse: LocalSynapse, make_user) -> None:
    user = await make_user("token")
    async with MatrixClient(synapse.base_url, access_token=user.access_token) as client:
        with trio.fail_after(STEP_S):
            whoami = await client.whoami()
            assert (whoami.user_id, whoami.device_id) == (user.user_id, user.device_id)
            assert (client.user_id, client.device_id) == (user.user_id, user.device_id)

            await client.logout()
    # The token is dead now: a fatal error for the bot, never retried.
    async with MatrixClient(synapse.base_url, access_token=user.access_token) as dead:
        with trio.fail_after(STEP_S), pytest.raises(UnknownTokenError):
            await dead.whoami()


async def test_space_with_child_room_linked_both_ways(synapse: LocalSynapse, make_user) -> None:
    alice = await make_user("space")
    via = {"via": [synapse.server_name]}
    async with client_for(synapse, alice) as client:
        with trio.fail_after(STEP_S):
            space_id = await client.create_room(name="Workspace", is_space=True)
            room_id = await client.create_room(
                name="Chat",
                topic="first chat",
                initial_state=[
                    {
                        "type": "m.space.parent",
                        "state_key": space_id,
                        "content": {**via, "canonical": True},
                    }
                ],
            )
            child_event_id = await client.put_state_event(
                space_id, "m.space.child", via, state_key=room_id
            )

            child = await client.get_state_event(space_id, "m.space.child", room_id)
            parent = await client.get_state_event(room_id, "m.space.parent", space_id)
            missing = await client.get_state_event(space_id, "m.space.child", "!nope:localhost")
            space_state = await client.get_state(space_id)
            room_name = await client.get_state_event(room_id, "m.room.name")
            rooms = await client.joined_rooms()

    assert child_event_id.startswith("$")
    assert child == via
    assert parent == {**via, "canonical": True}
    assert missing is None
    create = next(e for e in space_state if e.type == "m.room.create")
    assert create.content.get("type") == "m.space"
    children = [e for e in space_state if e.type == "m.space.child"]
    assert [(e.state_key, e.event_id) for e in children] == [(room_id, child_event_id)]
    assert room_name == {"name": "Chat"}
    assert {space_id, room_id} <= set(rooms)


async def test_invite_join_members_and_leave(synapse: LocalSynapse, make_user) -> None:
    alice = await make_user("alice", displayname="Alice")
    bob = await make_user("bob", displayname="Bob")
    async with client_for(synapse, alice) as a, client_for(synapse, bob) as b:
        bob_sync = b.syncer(since=None, filter_id=None, long_poll_ms=LONG_POLL_MS)
        with trio.fail_after(STEP_S):
            await bob_sync.next()  # initial sync, timeout=0
            room_id = await a.create_room(name="Pair")
            await a.invite(room_id, bob.user_id)

        with trio.fail_after(STEP_S):
            batch = await next_batch_where(
                bob_sync, lambda bt: any(i.room_id == room_id for i in bt.invites)
            )
        invite = next(i for i in batch.invites if i.room_id == room_id)
        assert invite.inviter == alice.user_id
        assert not invite.is_direct
        assert not invite.encrypted

        with trio.fail_after(STEP_S):
            assert await b.join(room_id) == room_id
            await a.invite(room_id, bob.user_id)  # already in the room: not an error
            members = await a.joined_members(room_id)
            name = await b.get_display_name(alice.user_id)
            assert room_id in await b.joined_rooms()

            await b.leave(room_id)
            await b.forget(room_id)
            assert room_id not in await b.joined_rooms()
            after = await a.joined_members(room_id)

    assert members == {alice.user_id: "Alice", bob.user_id: "Bob"}
    assert name == "Alice"
    assert set(after) == {alice.user_id}


async def test_send_is_idempotent_per_txn_id_edit_relates_and_redact(
    synapse: LocalSynapse, make_user
) -> None:
    alice = await make_user("sender")
    async with client_for(synapse, alice) as client:
        with trio.fail_after(STEP_S):
            room_id = await client.create_room(name="Edits")
            txn = new_txn_id()
            content = text_content("hello", html="<b>hello</b>", mentions=[alice.user_id])
            original = await client.send_event(room_id, "m.room.message", content, txn_id=txn)
            # A retry with the same txn id (e.g. after a lost response) is the same event.
            assert await client.send_event(room_id, "m.room.message", content, txn_id=txn) == (
                original
            )
            edit = await client.send_event(
                room_id,
                "m.room.message",
                edit_content(original, "hello, edited"),
                txn_id=new_txn_id(),
            )
            doomed = await client.send_event(
                room_id, "m.room.message", text_content("delete me"), txn_id=new_txn_id()
            )
            redaction = await client.redact(room_id, doomed, txn_id=new_txn_id(), reason="test")
            page = await client.room_messages(room_id, from_token=None, direction="b", limit=50)

    events = {e.event_id: e for e in page.chunk}
    messages = [e for e in reversed(page.chunk) if e.type == "m.room.message"]
    assert [e.event_id for e in messages] == [original, edit, doomed]

    first = events[original]
    assert first.content["body"] == "hello"
    assert first.content["format"] == "org.matrix.custom.html"
    assert first.content["m.mentions"] == {"user_ids": [alice.user_id]}
    # Synapse aggregates the edit onto the original event.
    assert first.unsigned["m.relations"]["m.replace"]["event_id"] == edit

    edited = events[edit]
    assert edited.content["m.relates_to"] == {"rel_type": "m.replace", "event_id": original}
    assert edited.content["m.new_content"]["body"] == "hello, edited"
    assert edited.content["body"] == "* hello, edited"

    assert events[doomed].content == {}
    assert events[doomed].unsigned["redacted_because"]["event_id"] == redaction
    assert events[redaction].redacts == doomed


async def test_typing_reaches_the_other_member(synapse: LocalSynapse, make_user) -> None:
    alice = await make_user("typist")
    bob = await make_user("watcher")
    async with client_for(synapse, alice) as a, client_for(synapse, bob) as b:
        with trio.fail_after(STEP_S):
            room_id = await a.create_room(invite=[bob.user_id])
            await b.join(room_id)
            bob_sync = b.syncer(since=None, filter_id=None, long_poll_ms=LONG_POLL_MS)
            await bob_sync.next()
            await a.set_typing(room_id, True, timeout_ms=20_000)

        def typing_users(batch: SyncBatch) -> list[str] | None:
            """User ids of the room's m.typing event, or None when the batch has none."""
            room = batch.response.rooms.join.get(room_id)
            for event in room.ephemeral.events if room else []:
                if event["type"] == "m.typing":
                    return list(event["content"]["user_ids"])
            return None

        with trio.fail_after(STEP_S):
            await next_batch_where(bob_sync, lambda bt: typing_users(bt) == [alice.user_id])
            await a.set_typing(room_id, False)
            await next_batch_where(bob_sync, lambda bt: typing_users(bt) == [])


async def test_upload_download_round_trip_and_media_config(
    synapse: LocalSynapse, make_user
) -> None:
    alice = await make_user("media")
    data = bytes(range(256)) * 1024  # 256 KiB, every byte value
    async with client_for(synapse, alice) as client:
        with trio.fail_after(STEP_S):
            config = await client.media_config()
            mxc = await client.upload(data, content_type="application/pdf", filename="report.pdf")
            download = await client.download(mxc)
            room_id = await client.create_room()
            content = media_content(
                "m.file", body="report.pdf", url=mxc, mimetype="application/pdf", size=len(data)
            )
            event_id = await client.send_event(room_id, "m.room.message", content, txn_id="f1")
            page = await client.room_messages(room_id, from_token=None, limit=5)

    assert config.upload_size == 50 * 1024 * 1024
    assert mxc.startswith(f"mxc://{synapse.server_name}/")
    assert download.data == data
    assert download.content_type == "application/pdf"
    assert download.filename == "report.pdf"
    sent = next(e for e in page.chunk if e.event_id == event_id)
    assert sent.content["url"] == mxc
    assert sent.content["info"]["size"] == len(data)


async def test_sync_long_poll_delivers_the_other_users_message(
    synapse: LocalSynapse, make_user
) -> None:
    alice = await make_user("speaker")
    bob = await make_user("listener")
    async with client_for(synapse, alice) as a, client_for(synapse, bob) as b:
        with trio.fail_after(STEP_S):
            room_id = await a.create_room(invite=[bob.user_id])
            await b.join(room_id)
            filter_id = await b.upload_filter(
                {
                    "presence": {"types": []},
                    "room": {
                        "timeline": {"limit": 20},
                        "state": {"lazy_load_members": True},
                    },
                }
            )
            bob_sync = b.syncer(since=None, filter_id=filter_id, long_poll_ms=LONG_POLL_MS)
            first = await bob_sync.next()  # timeout=0: returns at once
        assert first.since is None
        assert bob_sync.since == first.next_batch

        received: list[SyncBatch] = []

        def has_hello(batch: SyncBatch) -> bool:
            return any(
                item.room_id == room_id
                and item.event.sender == alice.user_id
                and item.event.content.get("body") == "hello bob"
                for item in batch.events
            )

        async def listen() -> None:
            received.append(await next_batch_where(bob_sync, has_hello))

        with trio.fail_after(STEP_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                # Let bob's long-poll reach Synapse first (not required for
                # correctness: an earlier send is returned at once instead).
                await trio.testing.wait_all_tasks_blocked()
                await a.send_event(
                    room_id, "m.room.message", text_content("hello bob"), txn_id=new_txn_id()
                )

    (batch,) = received
    assert batch.since is not None
    hello = [i for i in batch.events if i.event.content.get("body") == "hello bob"]
    assert len(hello) == 1
    assert hello[0].event.type == "m.room.message"


# -- E2EE transport, presence, one event, members, receipts, streamed media -------------


def _device_keys(user_id: str, device_id: str, tag: str) -> dict:
    return {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{device_id}": f"curve{tag}", f"ed25519:{device_id}": f"ed{tag}"},
        "signatures": {user_id: {f"ed25519:{device_id}": f"sig{tag}"}},
    }


async def test_keys_upload_query_claim_and_to_device_between_two_devices(
    synapse: LocalSynapse, make_user
) -> None:
    alice = await make_user("keys-alice")
    async with client_for(synapse, alice) as phone, MatrixClient(synapse.base_url) as laptop:
        with trio.fail_after(STEP_S):
            await laptop.login_password(alice.localpart, alice.password, device_id="LAPTOP")
            uploaded = await laptop.keys_upload(
                {
                    "device_keys": _device_keys(alice.user_id, "LAPTOP", "L"),
                    "one_time_keys": {
                        "signed_curve25519:AAAA": {"key": "otk1", "signatures": {}},
                    },
                    "fallback_keys": {
                        "signed_curve25519:FFFF": {"key": "fb", "fallback": True, "signatures": {}}
                    },
                }
            )
            queried = await phone.keys_query({"device_keys": {alice.user_id: []}})
            wanted = {"one_time_keys": {alice.user_id: {"LAPTOP": "signed_curve25519"}}}
            first = await phone.keys_claim(wanted)
            second = await phone.keys_claim(wanted)  # no one-time key left: the fallback

            laptop_sync = laptop.syncer(since=None, filter_id=None, long_poll_ms=LONG_POLL_MS)
            start = await laptop_sync.next()
            await phone.send_to_device(
                "m.room_key_request", {alice.user_id: {"LAPTOP": {"n": 1}}}, txn_id="td1"
            )
            await phone.send_to_device(  # the same txn again: delivered once
                "m.room_key_request", {alice.user_id: {"LAPTOP": {"n": 1}}}, txn_id="td1"
            )
            delivering = await next_batch_where(laptop_sync, lambda b: bool(b.to_device))
            after = await laptop.sync(since=delivering.next_batch, timeout_ms=0)
            lost = await laptop.sync(since=start.next_batch, timeout_ms=0)

    assert uploaded["one_time_key_counts"].get("signed_curve25519") == 1
    assert (
        queried["device_keys"][alice.user_id]["LAPTOP"]["keys"]
        == (_device_keys(alice.user_id, "LAPTOP", "L")["keys"])
    )
    assert list(first["one_time_keys"][alice.user_id]["LAPTOP"]) == ["signed_curve25519:AAAA"]
    assert list(second["one_time_keys"][alice.user_id]["LAPTOP"]) == ["signed_curve25519:FFFF"]
    assert start.device_unused_fallback_key_types == []  # the fallback key was used
    assert [(e.type, e.sender, e.content) for e in delivering.to_device] == [
        ("m.room_key_request", alice.user_id, {"n": 1})
    ]
    # Once a sync used the delivering token, Synapse deleted the message.
    assert after.to_device.events == []
    assert lost.to_device.events == []


async def test_device_lists_changed_when_a_room_member_uploads_keys(
    synapse: LocalSynapse, make_user
) -> None:
    alice = await make_user("dl-alice")
    bob = await make_user("dl-bob")
    async with client_for(synapse, alice) as a, client_for(synapse, bob) as b:
        with trio.fail_after(STEP_S):
            room_id = await a.create_room(invite=[bob.user_id])
            await b.join(room_id)
            alice_sync = a.syncer(since=None, filter_id=None, long_poll_ms=LONG_POLL_MS)
            await alice_sync.next()
            await b.keys_upload({"device_keys": _device_keys(bob.user_id, bob.device_id, "B")})
            batch = await next_batch_where(
                alice_sync, lambda bt: bob.user_id in bt.device_lists.changed
            )
    assert bob.user_id in batch.device_lists.changed


async def test_presence_disabled_synapse_accepts_and_ignores(
    synapse: LocalSynapse, make_user
) -> None:
    # The session's Synapse runs with presence.enabled: false (surfaces.local_synapse).
    alice = await make_user("presence")
    async with client_for(synapse, alice) as client:
        with trio.fail_after(STEP_S):
            await client.set_presence(Presence.ONLINE, "here")  # no error: 200 {}
            state = await client.get_presence(alice.user_id)
    assert state.presence is Presence.OFFLINE  # what tells a bot that presence is off


async def test_get_event_members_and_read_receipt(synapse: LocalSynapse, make_user) -> None:
    alice = await make_user("ev-alice", displayname="Alice")
    bob = await make_user("ev-bob")
    carol = await make_user("ev-carol")
    async with client_for(synapse, alice) as a, client_for(synapse, bob) as b:
        with trio.fail_after(STEP_S):
            room_id = await a.create_room(invite=[bob.user_id, carol.user_id])
            await b.join(room_id)
            event_id = await a.send_event(
                room_id, "m.room.message", text_content("quote me"), txn_id=new_txn_id()
            )
            fetched = await b.get_event(room_id, event_id)
            with pytest.raises(MatrixError) as missing:
                await b.get_event(room_id, "$doesnotexist")
            members = await b.room_members(room_id)
            invited = await b.room_members(room_id, membership=Membership.INVITE)

            alice_sync = a.syncer(since=None, filter_id=None, long_poll_ms=LONG_POLL_MS)
            await alice_sync.next()
            await b.send_receipt(room_id, event_id)

            def read_by_bob(batch: SyncBatch) -> bool:
                room = batch.response.rooms.join.get(room_id)
                return any(
                    e.get("type") == "m.receipt"
                    and bob.user_id in e["content"].get(event_id, {}).get("m.read", {})
                    for e in (room.ephemeral.events if room else [])
                )

            await next_batch_where(alice_sync, read_by_bob)

    assert (fetched.event_id, fetched.sender, fetched.content["body"]) == (
        event_id,
        alice.user_id,
        "quote me",
    )
    assert (missing.value.status, missing.value.errcode) == (404, "M_NOT_FOUND")
    assert {(m.user_id, m.membership) for m in members} == {
        (alice.user_id, Membership.JOIN),
        (bob.user_id, Membership.JOIN),
        (carol.user_id, Membership.INVITE),
    }
    assert [m.user_id for m in invited] == [carol.user_id]


async def test_streamed_upload_and_capped_download(synapse: LocalSynapse, make_user) -> None:
    alice = await make_user("stream")
    data = bytes(range(256)) * 4096  # 1 MiB

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 65_536):
            yield data[start : start + 65_536]

    async with client_for(synapse, alice) as client:
        with trio.fail_after(STEP_S):
            mxc = await client.upload(chunks(), size=len(data), content_type="application/pdf")
            received = bytearray()
            async with client.download_stream(mxc, max_bytes=len(data)) as body:
                async for chunk in body.iter_bytes():
                    received += chunk
            with pytest.raises(MediaTooLargeError):
                await client.download(mxc, max_bytes=1_000)
    assert bytes(received) == data
