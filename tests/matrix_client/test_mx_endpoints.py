"""Presence, one event, members, receipts, redaction and reactions, encryption by default."""

from __future__ import annotations

import pytest
import trio

from matrix_client import (
    MatrixError,
    Membership,
    Presence,
    PresenceDisabledError,
    RoomMember,
    text_content,
)
from matrix_client.testing import EncryptionDefault, FakeHomeserver, FakeUser, Fault


async def test_presence_set_and_read_back(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        await client.set_presence(Presence.ONLINE, "ready")
        await trio.sleep(2)
        mine = await client.get_presence(bot.user_id)
        theirs = await client.get_presence(alice.user_id)
    assert (mine.presence, mine.status_msg, mine.currently_active) == (
        Presence.ONLINE,
        "ready",
        True,
    )
    assert mine.last_active_ago_ms == 2_000
    assert theirs.presence is Presence.OFFLINE
    assert hs.requests_to("PUT", "/presence/*/status")[0].body == {
        "presence": "online",
        "status_msg": "ready",
    }


async def test_presence_disabled_like_synapse_is_silent_and_reads_offline(
    bot: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs = FakeHomeserver(presence_enabled=False)
    user = hs.register("bot")
    async with hs.user_client(user) as client:
        await client.set_presence(Presence.ONLINE)  # accepted and ignored, as Synapse does
        state = await client.get_presence(user.user_id)
    assert state.presence is Presence.OFFLINE  # how to tell: we said online


@pytest.mark.parametrize(
    "fault",
    [
        Fault.error(403, "M_FORBIDDEN", "Presence is disabled"),
        Fault.error(404, "M_NOT_FOUND", "Not found"),
        Fault.error(400, "M_UNRECOGNIZED", "Unrecognized request"),
    ],
    ids=["403", "404", "400-unrecognized"],
)
async def test_presence_refused_is_presence_disabled_error(
    hs: FakeHomeserver, bot: FakeUser, fault: Fault, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", "/presence/*/status", fault)
    async with hs.user_client(bot) as client:
        with pytest.raises(PresenceDisabledError) as caught:
            await client.set_presence(Presence.UNAVAILABLE)
    assert caught.value.status == fault.status
    assert len(hs.requests_to("PUT", "/presence/*/status")) == 1  # permanent: not retried


async def test_presence_other_errors_stay_what_they_are(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("PUT", "/presence/*/status", Fault.error(400, "M_UNKNOWN", "Unable to parse state"))
    hs.inject("GET", "/presence/*/status", Fault.error(403, "M_FORBIDDEN", "not allowed to see"))
    async with hs.user_client(bot) as client:
        with pytest.raises(MatrixError) as bad:
            await client.set_presence(Presence.ONLINE)
        with pytest.raises(MatrixError) as hidden:
            await client.get_presence(alice.user_id)
    assert not isinstance(bad.value, PresenceDisabledError)
    assert not isinstance(hidden.value, PresenceDisabledError)  # a 403 on GET: not ours to see


async def test_get_event_and_its_visibility(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    quoted = hs.text_as(alice, room, "the question")
    outsider = hs.register("outsider")
    async with hs.user_client(bot) as client:
        event = await client.get_event(room, quoted)
        with pytest.raises(MatrixError) as missing:
            await client.get_event(room, "$nope")
        hs.leave_as(bot, room)
        later = hs.text_as(alice, room, "after the bot left")
        before_leaving = await client.get_event(room, quoted)
        with pytest.raises(MatrixError) as after_leaving:
            await client.get_event(room, later)
    async with hs.user_client(outsider) as other:
        with pytest.raises(MatrixError) as never_joined:
            await other.get_event(room, quoted)
    assert (event.event_id, event.sender, event.content["body"]) == (
        quoted,
        alice.user_id,
        "the question",
    )
    assert event.unsigned["membership"] == "join"
    assert before_leaving.event_id == quoted
    for caught in (missing, after_leaving, never_joined):
        assert (caught.value.status, caught.value.errcode) == (404, "M_NOT_FOUND")


async def test_room_members_with_membership_and_filters(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    carol = hs.register("carol", displayname="Carol")
    dave = hs.register("dave")
    hs.invite_as(alice, room, carol)
    hs.invite_as(alice, room, dave)
    hs.join_as(dave, room)
    hs.leave_as(dave, room)
    async with hs.user_client(bot) as client:
        everyone = await client.room_members(room)
        joined = await client.room_members(room, membership=Membership.JOIN)
        present = await client.room_members(room, not_membership=Membership.LEAVE)
    assert sorted(everyone, key=lambda m: m.user_id) == [
        RoomMember(alice.user_id, Membership.JOIN, "Alice"),
        RoomMember(bot.user_id, Membership.JOIN, "Bot"),
        RoomMember(carol.user_id, Membership.INVITE, "Carol"),
        RoomMember(dave.user_id, Membership.LEAVE, None),
    ]
    assert {m.user_id for m in joined} == {alice.user_id, bot.user_id}
    assert {m.user_id for m in present} == {alice.user_id, bot.user_id, carol.user_id}
    assert hs.requests_to("GET", "/rooms/*/members")[1].query == {"membership": "join"}


async def test_room_members_skips_malformed_members(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    chunk = [
        {"type": "m.room.member", "state_key": "@ok:x", "content": {"membership": "join"}},
        {"type": "m.room.member", "state_key": "@odd:x", "content": {"membership": "zzz"}},
        {"type": "m.room.member", "content": {"membership": "join"}},
        "garbage",
    ]
    hs.inject("GET", "/rooms/*/members", Fault.json(200, {"chunk": chunk}))
    async with hs.user_client(bot) as client:
        members = await client.room_members(room)
    assert members == [RoomMember("@ok:x", Membership.JOIN)]


async def test_read_receipt_is_m_read_with_an_object_body_as_synapse_wants(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    event_id = hs.text_as(alice, room, "read me")
    async with hs.user_client(bot) as client:
        await client.send_receipt(room, event_id)
    assert hs.receipts[(room, bot.user_id)] == event_id
    assert hs.receipt_log == [(room, bot.user_id, "m.read", event_id, {})]
    (sent,) = hs.requests_to("POST", "/rooms/*/receipt/*/*")
    assert sent.path.endswith(f"/receipt/m.read/{event_id}")
    assert sent.body == {}


async def test_fake_refuses_receipts_synapse_refuses(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        for path, body in [
            (f"/rooms/{room}/receipt/m.bogus/$e", {}),
            (f"/rooms/{room}/receipt/m.read/not-an-event", {}),
            (f"/rooms/{room}/receipt/m.read/$e", None),  # Synapse wants a JSON object
            (f"/rooms/{room}/receipt/m.read/$e", {"thread_id": ""}),
        ]:
            with pytest.raises(MatrixError) as caught:
                await client._call(
                    "POST", "/_matrix/client/v3" + path.replace("!", "%21"), "x", json_body=body
                )
            assert caught.value.status == 400
    assert hs.receipt_log == []


async def test_redaction_strips_content_by_the_spec_rules(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    message = hs.text_as(alice, room, "secret")
    reaction = hs.send_as(
        bot,
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": message, "key": "👍"}},
        "m.reaction",
    )
    history = hs.set_state_as(
        alice, room, "m.room.history_visibility", {"history_visibility": "joined", "x": 1}
    )
    async with hs.user_client(bot) as client:
        seen = await client.get_event(room, reaction)  # a reaction is an ordinary event
        await client.redact(room, message, txn_id="r1", reason="oops")
        await client.redact(room, reaction, txn_id="r2")
        await client.redact(room, history, txn_id="r3")
        redacted = await client.get_event(room, message)
        unreacted = await client.get_event(room, reaction)
        state = await client.get_state_event(room, "m.room.history_visibility")
    assert seen.type == "m.reaction"
    assert seen.content["m.relates_to"]["key"] == "👍"
    assert redacted.content == {}
    assert redacted.unsigned["redacted_because"]["content"] == {"reason": "oops"}
    assert unreacted.content == {}  # the relation goes too
    assert state == {"history_visibility": "joined"}  # the key the auth rules need stays


def test_redaction_rules_per_room_version() -> None:
    from matrix_client.testing._events import redacted_content

    member = {"membership": "join", "displayname": "A", "join_authorised_via_users_server": "@s"}
    assert redacted_content("m.room.member", member, "8") == {"membership": "join"}
    assert redacted_content("m.room.member", member, "11") == {
        "membership": "join",
        "join_authorised_via_users_server": "@s",
    }
    create = {"creator": "@a", "room_version": "10", "m.federate": False}
    assert redacted_content("m.room.create", create, "10") == {"creator": "@a"}
    assert redacted_content("m.room.create", create, "11") == create
    power = {"users": {}, "invite": 50, "notifications": {"room": 50}}
    assert redacted_content("m.room.power_levels", power, "10") == {"users": {}}
    assert redacted_content("m.room.power_levels", power, "11") == {"users": {}, "invite": 50}
    rules = {"join_rule": "restricted", "allow": [1]}
    assert redacted_content("m.room.join_rules", rules, "7") == {"join_rule": "restricted"}
    assert redacted_content("m.room.join_rules", rules, "8") == rules
    assert redacted_content("m.room.redaction", {"redacts": "$x", "reason": "r"}, "11") == {
        "redacts": "$x"
    }
    assert redacted_content("m.room.message", {"body": "x"}, "12") == {}


@pytest.mark.parametrize(
    ("rule", "preset", "encrypted"),
    [
        (EncryptionDefault.OFF, "private_chat", False),
        (EncryptionDefault.INVITE, "private_chat", True),
        (EncryptionDefault.INVITE, "trusted_private_chat", True),
        (EncryptionDefault.INVITE, "public_chat", False),
        (EncryptionDefault.ALL, "public_chat", True),
    ],
)
async def test_encryption_by_default_per_room_type(
    rule: EncryptionDefault, preset: str, encrypted: bool, autojump_clock: trio.abc.Clock
) -> None:
    hs = FakeHomeserver(encryption_by_default=rule)
    bot, alice = hs.register("bot"), hs.register("alice")
    async with hs.user_client(bot) as client:
        room_id = await client.create_room(preset=preset, invite=[alice.user_id])
        batch = await client.syncer(since=None, filter_id=None).next()
    state = hs.state_content(room_id, "m.room.encryption")
    assert (state == {"algorithm": "m.megolm.v1.aes-sha2"}) is encrypted
    assert (state is not None) is encrypted
    async with hs.user_client(alice) as invitee:
        invite = (await invitee.syncer(since=None, filter_id=None).next()).invites[0]
    assert invite.encrypted is encrypted  # stripped state shows it to the invitee
    assert batch.next_batch


async def test_own_encryption_state_is_kept_not_doubled(autojump_clock: trio.abc.Clock) -> None:
    hs = FakeHomeserver(encryption_by_default="all")
    bot = hs.register("bot")
    custom = {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 10}
    async with hs.user_client(bot) as client:
        room_id = await client.create_room(
            initial_state=[{"type": "m.room.encryption", "state_key": "", "content": custom}]
        )
        await client.send_event(room_id, "m.room.message", text_content("x"), txn_id="t")
    assert hs.state_content(room_id, "m.room.encryption") == custom
    kinds = [e["type"] for e in hs.timeline(room_id)]
    assert kinds.count("m.room.encryption") == 1
