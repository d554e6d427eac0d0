"""Presence settings (checks, defaults) and the words ``!status`` uses for presence."""

from __future__ import annotations

import pytest

from surfaces.agents import PresenceState
from surfaces.commands.presence_words import presence_words, seen_words
from surfaces.config import ConfigError, load_config
from surfaces.i18n import Texts

BASE_ENV = {
    "MATRIX_HOMESERVER": "https://hs.example",
    "MATRIX_USER_ID": "@bot:hs.example",
    "MATRIX_PASSWORD": "pw",
}


def test_presence_defaults() -> None:
    p = load_config(None, BASE_ENV).presence
    assert (p.probe_interval_s, p.probe_jitter_s, p.probe_concurrency) == (30.0, 5.0, 8)
    assert (p.away_status_s, p.away_failures, p.away_window_s) == (5.0, 2, 300.0)
    assert p.offline_wait_s == 600.0
    assert p.bot_presence is True


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SURFACES_PRESENCE__PROBE_JITTER_S": "30"}, "must be less than presence.probe_interval"),
        ({"SURFACES_PRESENCE__PROBE_INTERVAL_S": "0"}, "must be greater than 0"),
        ({"SURFACES_PRESENCE__PROBE_CONCURRENCY": "0"}, "must be at least 1"),
        ({"SURFACES_PRESENCE__OFFLINE_WAIT_S": "-1"}, "must be 0 or more"),
        ({"SURFACES_PRESENCE__AWAY_FAILURES": "0"}, "must be at least 1"),
    ],
)
def test_presence_checks(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {**BASE_ENV, **env})
    assert any(expected in line for line in caught.value.lines), caught.value.lines


@pytest.mark.parametrize(
    ("ago", "ru", "en"),
    [
        (None, "ещё не отвечал", "not seen yet"),
        (0, "был на связи только что", "last seen just now"),
        (59.9, "был на связи только что", "last seen just now"),
        (60, "был на связи 1 минуту назад", "last seen 1 minute ago"),
        (180, "был на связи 3 минуты назад", "last seen 3 minutes ago"),
        (300, "был на связи 5 минут назад", "last seen 5 minutes ago"),
        (21 * 60, "был на связи 21 минуту назад", "last seen 21 minutes ago"),
        (3600, "был на связи 1 час назад", "last seen 1 hour ago"),
        (2 * 3600 + 59 * 60, "был на связи 2 часа назад", "last seen 2 hours ago"),
        (86400 * 5, "был на связи 5 дней назад", "last seen 5 days ago"),
        (-5, "был на связи только что", "last seen just now"),  # a clock that went back
    ],
)
def test_last_seen_in_both_locales(ago, ru, en) -> None:
    assert seen_words(Texts("ru"), ago) == ru
    assert seen_words(Texts("en"), ago) == en


def test_states_in_the_words_users_read() -> None:
    ru, en = Texts("ru"), Texts("en")
    words = {
        PresenceState.ONLINE: ("в сети", "online"),
        PresenceState.AWAY: ("отошёл", "away"),
        PresenceState.OFFLINE: ("не в сети", "offline"),
        PresenceState.UNKNOWN: ("проверяю…", "checking…"),
    }
    for state, (in_ru, in_en) in words.items():
        assert presence_words(ru, state, 0).startswith(f"{in_ru}, ")
        assert presence_words(en, state, 0).startswith(f"{in_en}, ")
    assert presence_words(ru, PresenceState.AWAY, 120) == "отошёл, был на связи 2 минуты назад"
