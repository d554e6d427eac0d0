"""The ``en`` locale end to end (the catalogue itself: tests/surfaces/i18n)."""

from __future__ import annotations


async def test_english_locale_end_to_end(harness, tools, autojump_clock):
    hs = harness.hs
    await harness.restart(SURFACES_BOT__LOCALE="en")
    alice = harness.user("alice", displayname="Alice")
    dm, space, room = await harness.onboard(alice)
    assert hs.state_content(room, "m.room.name")["name"] == "Chat 1"
    assert hs.state_content(space, "m.room.name")["name"] == "Lambda — Alice"
    assert harness.bot_texts(room)[0].startswith("Hi, Alice! Just write here")
    assert harness.bot_texts(dm)[0].startswith(
        "All set: I created the space “Lambda — Alice” with the chat “Chat 1”"
    )
    await tools.say(alice, room, "!new")
    assert tools.last(room)["body"] == "Chat created: Chat 2 (C2)"
    await tools.say(alice, room, "!clear")
    assert tools.last(room)["body"] == "Context cleared: the agent starts this chat afresh."
    await tools.say(alice, room, "!nope")
    assert tools.last(room)["body"] == "I don't know the command !nope. Send !help to see them all."


async def test_brand_is_configurable(harness, tools, autojump_clock):
    await harness.restart(SURFACES_BOT__BRAND="Omega")
    alice = harness.user("alice", displayname="Alice")
    _, space, _ = await harness.onboard(alice)
    assert harness.hs.state_content(space, "m.room.name")["name"] == "Omega — Alice"
