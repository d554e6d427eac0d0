"""Rooms, state, members, profile, /messages, typing, receipts, redaction."""

from __future__ import annotations

import pytest
import trio

from matrix_client import MatrixError
from matrix_client.testing import FakeHomeserver, FakeUser, Fault


async def test_create_space_with_state_invite_and_power_levels(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        space = await client.create_room(
            name="Lambda",
            topic="workspace",
            is_space=True,
            invite=[alice.user_id],
            initial_state=[{"type": "org.example.owner", "state_key": "",
                            "content": {"user": alice.user_id}}],
            power_level_content_override={"users": {alice.user_id: 50}},
        )  # fmt: skip
        assert await client.joined_rooms() == [space]
        assert await client.get_state_event(space, "m.room.create") == {
            "room_version": "12",
            "type": "m.space",
        }
        assert (await client.get_state_event(space, "m.room.name")) == {"name": "Lambda"}
        owner = await client.get_state_event(space, "org.example.owner")
        assert owner == {"user": alice.user_id}
        power = await client.get_state_event(space, "m.room.power_levels")
        assert power is not None
        assert power["users"] == {alice.user_id: 50}  # v12: the creator is implicit
    body = hs.requests_to("POST", "/createRoom")[0].body
    assert body["creation_content"] == {"type": "m.space"}
    assert hs.membership(space, alice) == "invite"


async def test_join_invite_leave_forget(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    room_id = hs.invite_bot(bot, inviter=alice)
    carol = hs.register("carol", displayname="Carol")
    async with hs.user_client(bot) as client:
        assert await client.join(room_id) == room_id
        assert await client.joined_members(room_id) == {
            alice.user_id: "Alice",
            bot.user_id: "Bot",
        }
        await client.invite(room_id, carol.user_id)
        assert hs.membership(room_id, carol) == "invite"
        await client.invite(room_id, carol.user_id)  # already invited: fine
        await client.invite(room_id, alice.user_id)  # already joined (403): fine
        await client.leave(room_id)
        assert await client.joined_rooms() == []
        await client.forget(room_id)
    assert hs.membership(room_id, bot) == "leave"


async def test_invite_forbidden_for_other_reasons_raises(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    hs.inject("POST", "/rooms/*/invite", Fault.error(403, "M_FORBIDDEN", "You may not invite"))
    async with hs.user_client(bot) as client:
        with pytest.raises(MatrixError) as info:
            await client.invite(room, "@someone:test.local")
    assert info.value.errcode == "M_FORBIDDEN"


async def test_invite_already_member_by_membership_lookup(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    # Another server's wording: the membership check identifies the case.
    hs.inject("POST", "/rooms/*/invite", Fault.error(403, "M_FORBIDDEN", "Target is member"))
    async with hs.user_client(bot) as client:
        await client.invite(room, alice.user_id)


async def test_join_not_invited_is_forbidden(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    private = hs.create_room(alice)
    async with hs.user_client(bot) as client:
        with pytest.raises(MatrixError) as info:
            await client.join(private)
    assert info.value.status == 403


async def test_state_get_missing_is_none_and_put_roundtrip(
    hs: FakeHomeserver, bot: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    async with hs.user_client(bot) as client:
        assert await client.get_state_event(room, "org.example.binding", "k") is None
        event_id = await client.put_state_event(room, "org.example.binding", {"a": 1}, "k")
        assert await client.get_state_event(room, "org.example.binding", "k") == {"a": 1}
        # Identical state again: deduplicated by the server (and retry-safe).
        assert await client.put_state_event(room, "org.example.binding", {"a": 1}, "k") == (
            event_id
        )
        state = await client.get_state(room)
    types = {(e.type, e.state_key) for e in state}
    assert ("org.example.binding", "k") in types
    assert ("m.room.member", bot.user_id) in types


async def test_display_name(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, autojump_clock: trio.abc.Clock
) -> None:
    nameless = hs.register("nameless")
    async with hs.user_client(bot) as client:
        assert await client.get_display_name(alice.user_id) == "Alice"
        assert await client.get_display_name(nameless.user_id) is None
        assert await client.get_display_name("@ghost:test.local") is None


async def test_messages_pages_backwards_and_forwards(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    for n in range(5):
        hs.text_as(alice, room, f"m{n}")
    async with hs.user_client(bot) as client:
        page = await client.room_messages(room, from_token=None, limit=3)
        assert [e.content["body"] for e in page.chunk] == ["m4", "m3", "m2"]
        assert page.end is not None
        older = await client.room_messages(room, from_token=page.end, limit=3)
        assert [e.content.get("body") for e in older.chunk] == ["m1", "m0", None]
        forward = await client.room_messages(
            room, from_token=older.end, direction="f", limit=100, filter={"types": ["x"]}
        )
        assert forward.end is None
        assert [e.content.get("body") for e in forward.chunk][-5:] == [
            "m0", "m1", "m2", "m3", "m4",
        ]  # fmt: skip
    assert "filter" in hs.requests_to("GET", "/rooms/*/messages")[-1].query


async def test_typing_receipts_and_redaction(
    hs: FakeHomeserver, bot: FakeUser, alice: FakeUser, room: str, autojump_clock: trio.abc.Clock
) -> None:
    target = hs.text_as(alice, room, "secret")
    async with hs.user_client(bot) as client:
        await client.set_typing(room, True, timeout_ms=10_000)
        await client.set_typing(room, False)
        await client.send_receipt(room, target)
        hs.inject("PUT", "/rooms/*/redact/*", Fault.lost_response())
        redaction = await client.redact(room, target, txn_id="r1", reason="oops")
    assert hs.typing_log == [(room, bot.user_id, True), (room, bot.user_id, False)]
    assert hs.requests_to("PUT", "/rooms/*/typing/*")[0].body == {"typing": True, "timeout": 10_000}
    assert hs.receipts[(room, bot.user_id)] == target
    redactions = hs.messages_from(bot, room, "m.room.redaction")
    assert [r["event_id"] for r in redactions] == [redaction]
    assert redactions[0]["redacts"] == target
    assert next(e for e in hs.timeline(room) if e["event_id"] == target)["content"] == {}
