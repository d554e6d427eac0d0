"""The message catalogue (ru default, en) and the ``en`` locale end to end."""

from __future__ import annotations

import string

import pytest

from surfaces.i18n import CATALOGUE, DEFAULT_LOCALE, LOCALES, t


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_locales_have_identical_keys_and_format_fields():
    assert DEFAULT_LOCALE == "ru"
    assert set(CATALOGUE) == set(LOCALES)
    ru, en = CATALOGUE["ru"], CATALOGUE["en"]
    assert set(ru) == set(en)
    for key in ru:
        assert _fields(ru[key]) == _fields(en[key]), key
        assert ru[key].strip(), key
        assert en[key].strip(), key


@pytest.mark.parametrize("locale", LOCALES)
def test_every_text_formats_with_its_fields(locale):
    for key, text in CATALOGUE[locale].items():
        fields = dict.fromkeys(_fields(text), "x")
        assert t(locale, key, **fields)


def test_unknown_locale_falls_back_to_ru():
    assert t("de", "context_reset") == "Контекст сброшен."
    assert t("en", "context_reset") == "Context reset."
    assert t("ru", "chat_created", name="A", chat_id="C2") == "Создан чат: A (C2)"


async def test_english_locale_end_to_end(harness, tools, autojump_clock):
    hs = harness.hs
    await harness.restart(SURFACES_BOT__LOCALE="en")
    alice = harness.user("alice", displayname="Alice")
    dm, space, room = await harness.onboard(alice)
    assert hs.state_content(room, "m.room.name")["name"] == "Chat 1"
    assert hs.state_content(space, "m.room.name")["name"] == "Lambda — Alice"
    assert harness.bot_texts(room)[0].startswith("Hi, Alice! Write to me")
    assert harness.bot_texts(dm)[0].startswith("Done: the space “Lambda — Alice”")
    await tools.say(alice, room, "!new")
    assert tools.last(room)["body"] == "Chat created: Chat 2 (C2)"
    await tools.say(alice, room, "!clear")
    assert tools.last(room)["body"] == "Context reset."
    await tools.say(alice, room, "!nope")
    assert tools.last(room)["body"] == "Unknown command !nope. See !help."


async def test_brand_is_configurable(harness, tools, autojump_clock):
    await harness.restart(SURFACES_BOT__BRAND="Omega")
    alice = harness.user("alice", displayname="Alice")
    _, space, _ = await harness.onboard(alice)
    assert harness.hs.state_content(space, "m.room.name")["name"] == "Omega — Alice"
