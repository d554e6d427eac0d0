"""End-to-end through the bot on the fake homeserver: onboarding and a turn."""

from __future__ import annotations


async def test_invite_provisions_workspace_and_a_turn_gets_a_reply(harness, autojump_clock):
    alice = harness.user("alice", displayname="Alice")
    _dm, space, room = await harness.onboard(alice)
    hs = harness.hs
    assert hs.state_content(space, "m.room.create")["type"] == "m.space"
    assert hs.state_content(space, "m.space.child", room)["via"]
    assert hs.state_content(room, "m.space.parent", space)["via"]
    assert hs.state_content(space, "m.room.name")["name"] == "Lambda — Alice"
    assert hs.state_content(room, "m.room.name")["name"] == "Чат 1"
    welcome = harness.bot_texts(room)
    assert welcome
    assert welcome[0].startswith("Привет, Alice!")

    hs.text_as(alice, room, "hello there")
    await harness.settle(10)
    texts = harness.bot_texts(room)
    assert len(texts) == 2
    assert "hello there" in texts[1]
