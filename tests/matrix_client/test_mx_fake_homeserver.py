"""The fake homeserver itself: an end-to-end flow and its scripting helpers."""

from __future__ import annotations

import json

import pytest
import trio

from matrix_client import MatrixError, edit_content, text_content
from matrix_client.testing import FakeHomeserver, FakeHomeserverError, FakeUser, Fault


async def test_invite_join_reply_flow(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None)
        await syncer.next()
        room = hs.invite_bot(bot, inviter=alice)
        (invite,) = (await syncer.next()).invites
        assert (invite.room_id, invite.inviter, invite.is_direct) == (room, alice.user_id, True)
        await client.join(invite.room_id)
        await syncer.next()  # our own join
        hs.text_as(alice, room, "hello bot")
        (item,) = (await syncer.next()).events
        assert (item.event.sender, item.event.content["body"]) == (alice.user_id, "hello bot")
        reply = await client.send_event(room, "m.room.message", text_content("…"), txn_id="a")
        await client.send_event(room, "m.room.message", edit_content(reply, "hi Alice"), txn_id="b")
    bodies = [m["content"]["body"] for m in hs.messages_from(bot, room)]
    assert bodies == ["…", "* hi Alice"]


async def test_alice_can_use_her_own_client(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(alice) as alice_client:
        event_id = await alice_client.send_event(
            room, "m.room.message", text_content("from alice"), txn_id="x"
        )
    assert hs.timeline(room)[-1]["event_id"] == event_id
    assert hs.requests[-1].user_id == alice.user_id


def test_helpers_refuse_what_the_server_would_refuse(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser
) -> None:
    private = hs.create_room(alice)
    with pytest.raises(FakeHomeserverError):
        hs.send_as(bot, private, {"body": "x"})
    with pytest.raises(FakeHomeserverError):
        hs.join_as(bot, private)
    with pytest.raises(FakeHomeserverError):
        hs.register("alice")


async def test_faults_match_method_and_pattern_and_are_used_in_order(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("GET", "/rooms/*/state/m.room.name/", Fault.delay(3))
    hs.inject(None, "/joined_rooms", Fault.http_status(503), Fault.http_status(504))
    assert hs.pending_faults() == 3
    async with hs.user_client(bot) as client:
        start = trio.current_time()
        assert await client.get_state_event(room, "m.room.name") == {"name": "Work"}
        assert trio.current_time() - start == pytest.approx(3.0)
        await client.joined_rooms()
    assert hs.pending_faults() == 0
    assert [r.fault for r in hs.requests_to("GET", "/joined_rooms")] == [
        "response",
        "response",
        None,
    ]


async def test_login_to_the_same_device_replaces_its_token_and_keeps_txn_scope(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    old_token = bot.access_token
    async with hs.client() as client:
        await client.login_password("bot", "password", device_id=bot.device_id)
        assert client.access_token != old_token
        first = await client.send_event(room, "m.room.message", {"body": "a"}, txn_id="same")
    async with hs.client() as client:  # a restart: new token, same device
        await client.login_password("bot", "password", device_id=bot.device_id)
        again = await client.send_event(room, "m.room.message", {"body": "a"}, txn_id="same")
    assert again == first
    assert len(hs.messages_from(bot, room)) == 1


async def test_long_poll_wakes_up_for_an_invite(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client, trio.open_nursery() as nursery:
        first = await client.sync(since=None, timeout_ms=0)

        async def invite_later() -> None:
            await trio.sleep(4)
            hs.invite_bot(bot, inviter=alice)

        nursery.start_soon(invite_later)
        start = trio.current_time()
        response = await client.sync(since=first.next_batch, timeout_ms=30_000)
        assert trio.current_time() - start == pytest.approx(4.0)
    assert len(response.rooms.invite) == 1


async def test_timeline_filter_senders_and_not_senders(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    carol = hs.register("carol")
    hs.invite_as(alice, room, carol)
    hs.join_as(carol, room)
    async with hs.user_client(bot) as client:
        start = (await client.sync(since=None, timeout_ms=0)).next_batch
        await client.send_event(room, "m.room.message", text_content("mine"), txn_id="t")
        hs.text_as(alice, room, "alice's")
        hs.text_as(carol, room, "carol's")
        not_me = await client.upload_filter({"room": {"timeline": {"not_senders": [bot.user_id]}}})
        only_carol = json.dumps({"room": {"timeline": {"senders": [carol.user_id]}}})

        async def senders(filter_id: str | None) -> list[str]:
            response = await client.sync(since=start, timeout_ms=0, filter_id=filter_id)
            return [e.sender for e in response.rooms.join[room].timeline.events]

        assert await senders(None) == [bot.user_id, alice.user_id, carol.user_id]
        assert await senders(not_me) == [alice.user_id, carol.user_id]
        assert await senders(only_carol) == [carol.user_id]
        inline_not_me = json.dumps({"room": {"timeline": {"not_senders": [bot.user_id]}}})
        assert await senders(inline_not_me) == [alice.user_id, carol.user_id]


async def test_own_events_hidden_by_the_filter_do_not_end_a_long_poll(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client, trio.open_nursery() as nursery:
        not_me = await client.upload_filter({"room": {"timeline": {"not_senders": [bot.user_id]}}})
        first = await client.sync(since=None, timeout_ms=0, filter_id=not_me)

        async def later() -> None:
            await trio.sleep(2)
            await client.send_event(room, "m.room.message", text_content("own reply"), txn_id="r")
            await trio.sleep(5)
            hs.text_as(alice, room, "next prompt")

        nursery.start_soon(later)
        start = trio.current_time()
        response = await client.sync(since=first.next_batch, timeout_ms=30_000, filter_id=not_me)
        # Woken by alice's message at 7 s, not by our own send at 2 s.
        assert trio.current_time() - start == pytest.approx(7.0)
    bodies = [e.content["body"] for e in response.rooms.join[room].timeline.events]
    assert bodies == ["next prompt"]


async def test_unsigned_membership_is_ours_at_each_event(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    """MSC4115 (spec v1.11): the syncing user's membership after each event. A
    newly joined room lists its latest events, so history from before the join."""
    room = hs.create_room(alice, name="Old room")
    hs.text_as(alice, room, "before the invite")
    async with hs.user_client(bot) as client:
        syncer = client.syncer(since=None, filter_id=None)
        await syncer.next()
        hs.invite_as(alice, room, bot)
        hs.text_as(alice, room, "while invited")
        await syncer.next()
        await client.join(room)
        hs.text_as(alice, room, "after the join")
        batch = await syncer.next()
        page = await client.room_messages(room, from_token=None, direction="b", limit=3)
    seen = [
        (e.event.type, e.event.content.get("body"), e.event.unsigned.get("membership"))
        for e in batch.events
        if e.event.type == "m.room.message" or e.event.state_key == bot.user_id
    ]
    assert seen == [
        ("m.room.message", "before the invite", "leave"),
        ("m.room.member", None, "invite"),
        ("m.room.message", "while invited", "invite"),
        ("m.room.member", None, "join"),
        ("m.room.message", "after the join", "join"),
    ]
    assert [e.unsigned["membership"] for e in page.chunk] == ["join", "join", "invite"]
    assert "v1.11" in hs.versions


async def test_no_unsigned_membership_before_v1_11(autojump_clock: trio.abc.Clock) -> None:
    hs = FakeHomeserver(versions=["v1.1", "v1.10"])
    bot = hs.register("bot")
    alice = hs.register("alice")
    room = hs.invite_bot(bot, inviter=alice)
    hs.join_as(bot, room)
    hs.text_as(alice, room, "hello")
    async with hs.user_client(bot) as client:
        batch = await client.syncer(since=None, filter_id=None).next()
    assert batch.events
    assert all("membership" not in item.event.unsigned for item in batch.events)


# -- room versions: MSC4289 creators (v12, Synapse's default) -------------------------


async def test_v12_default_power_levels_do_not_list_creators(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        room = await client.create_room(name="Work", invite=[alice.user_id])
        assert await client.get_state_event(room, "m.room.create") == {"room_version": "12"}
        power = await client.get_state_event(room, "m.room.power_levels")
    assert power is not None
    assert power["users"] == {}
    # trusted_private_chat: the invitee becomes an additional creator, still unlisted
    dm = hs.invite_bot(bot, inviter=alice)
    assert hs.state_content(dm, "m.room.create") == {
        "room_version": "12",
        "additional_creators": [bot.user_id],
    }
    assert hs.state_content(dm, "m.room.power_levels")["users"] == {}


async def test_v12_create_room_listing_a_creator_in_power_levels_is_refused(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        with pytest.raises(MatrixError) as refused:
            await client.create_room(
                name="Work", power_level_content_override={"users": {bot.user_id: 100}}
            )
        assert (refused.value.status, refused.value.errcode) == (400, "M_UNKNOWN")
        assert (
            refused.value.message == f"Creator user {bot.user_id} must not appear in content.users"
        )
        # as on Synapse, the half-made room stays: create event and the creator's join
        [orphan] = await client.joined_rooms()
        assert [e["type"] for e in hs.timeline(orphan)] == ["m.room.create", "m.room.member"]
        with pytest.raises(MatrixError) as refused:
            await client.create_room(
                initial_state=[{"type": "m.room.power_levels", "state_key": "",
                                "content": {"users": {bot.user_id: 100}}}]
            )  # fmt: skip
        assert refused.value.status == 400
    with pytest.raises(FakeHomeserverError) as direct:  # an additional creator, directly
        hs.create_room(
            alice,
            preset="trusted_private_chat",
            invite=[bot.user_id],
            power_level_content_override={"users": {bot.user_id: 50}},
        )
    assert direct.value.args == (
        400,
        "M_UNKNOWN",
        "Additional creators users must not appear in content.users",
    )


async def test_v12_power_levels_state_listing_a_creator_is_refused(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        room = await client.create_room(invite=[alice.user_id])
        power = await client.get_state_event(room, "m.room.power_levels")
        assert power is not None
        with pytest.raises(MatrixError) as refused:
            await client.put_state_event(
                room, "m.room.power_levels", {**power, "users": {bot.user_id: 100}}
            )
        assert (refused.value.status, refused.value.errcode) == (400, "M_UNKNOWN")
        assert "must not appear in content.users" in refused.value.message
        # listing anyone else is fine
        await client.put_state_event(
            room, "m.room.power_levels", {**power, "users": {alice.user_id: 50}}
        )
    assert hs.state_content(room, "m.room.power_levels")["users"] == {alice.user_id: 50}
    dm = hs.invite_bot(bot, inviter=alice)
    hs.join_as(bot, dm)
    with pytest.raises(FakeHomeserverError):  # the additional creator, by the helper
        hs.set_state_as(alice, dm, "m.room.power_levels", {"users": {bot.user_id: 100}})


async def test_v10_rooms_keep_the_creator_at_100(autojump_clock: trio.abc.Clock) -> None:
    hs = FakeHomeserver(room_version="10")
    bot = hs.register("bot")
    alice = hs.register("alice")
    async with hs.user_client(bot) as client:
        room = await client.create_room(
            power_level_content_override={"users": {bot.user_id: 100, alice.user_id: 50}}
        )
        create = await client.get_state_event(room, "m.room.create")
        assert create == {"room_version": "10", "creator": bot.user_id}
        power = await client.get_state_event(room, "m.room.power_levels")
        assert power is not None
        assert power["users"] == {bot.user_id: 100, alice.user_id: 50}
        raised = {**power, "users": {bot.user_id: 100, alice.user_id: 75}}
        await client.put_state_event(room, "m.room.power_levels", raised)
    assert hs.state_content(room, "m.room.power_levels")["users"][alice.user_id] == 75
    dm = hs.invite_bot(bot, inviter=alice)
    assert hs.state_content(dm, "m.room.create") == {"room_version": "10", "creator": alice.user_id}
    assert hs.state_content(dm, "m.room.power_levels")["users"] == {
        alice.user_id: 100,
        bot.user_id: 100,
    }
    # a v12 server still creates v10 rooms on request
    v12 = FakeHomeserver()
    carol = v12.register("carol")
    old = v12.create_room(carol, room_version="10")
    assert v12.state_content(old, "m.room.power_levels")["users"] == {carol.user_id: 100}
