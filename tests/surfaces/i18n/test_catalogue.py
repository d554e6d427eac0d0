"""The message catalogue: both locales complete, plurals and sizes in each language."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from agent_client import TIMEOUT_PHASES
from surfaces.i18n import (
    CATALOGUE,
    DEFAULT_LOCALE,
    LOCALES,
    PLURAL_FORMS,
    Texts,
    format_size,
    human_size,
    plural_form,
    t,
)

ROOT = Path(__file__).resolve().parents[3]


def _parsed(text: str) -> list[tuple[str, str]]:
    return [(name, spec) for _, name, spec, _ in string.Formatter().parse(text) if name is not None]


def _fields(text: str) -> set[str]:
    return {name for name, _ in _parsed(text)}


def _sample(text: str) -> dict[str, object]:
    """A value per field of the right kind: numbers where the text counts or sizes."""
    values: dict[str, object] = {}
    for name, spec in _parsed(text):
        if spec.startswith("plural:") or spec == "size":
            values[name] = 3
        else:
            values.setdefault(name, "x")
    return values


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
        assert t(locale, key, **_sample(text))


@pytest.mark.parametrize("locale", LOCALES)
def test_specs_are_known_and_plurals_have_the_locales_forms(locale):
    for key, text in CATALOGUE[locale].items():
        for name, spec in _parsed(text):
            if spec.startswith("plural:"):
                forms = spec.removeprefix("plural:").split("|")
                assert len(forms) == PLURAL_FORMS[locale], (key, name)
                assert all(forms), (key, name)
            else:
                assert spec in ("", "size"), (key, name, spec)


def test_the_same_fields_take_numbers_in_both_locales():
    ru, en = CATALOGUE["ru"], CATALOGUE["en"]
    for key in ru:
        specs = {name: spec.split(":")[0] for name, spec in _parsed(ru[key]) if spec}
        other = {name: spec.split(":")[0] for name, spec in _parsed(en[key]) if spec}
        assert specs == other, key


def test_every_key_is_used_by_the_bot():
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for path in (ROOT / "surfaces").rglob("*.py")
        if "i18n" not in path.parts
    )
    used = {key for key in CATALOGUE["ru"] if f'"{key}"' in sources}
    # the timeout phases are looked up as f"phase_{failure.phase}"
    used |= {f"phase_{phase}" for phase in TIMEOUT_PHASES}
    assert 'f"phase_{' in sources
    assert set(CATALOGUE["ru"]) - used == set()


@pytest.mark.parametrize(
    ("n", "form"),
    [
        (0, "чатов"),
        (1, "чат"),
        (2, "чата"),
        (4, "чата"),
        (5, "чатов"),
        (11, "чатов"),
        (12, "чатов"),
        (14, "чатов"),
        (21, "чат"),
        (22, "чата"),
        (25, "чатов"),
        (101, "чат"),
        (111, "чатов"),
        (1001, "чат"),
        (1012, "чатов"),
    ],
)
def test_russian_plurals(n, form):
    assert Texts("ru").plural(n, "чат", "чата", "чатов") == form
    assert t("ru", "dm_reinvited", count=n) == (
        f"Приглашения в пространство и {n} {form} отправлены повторно."
    )


@pytest.mark.parametrize(("n", "form"), [(0, "chats"), (1, "chat"), (2, "chats"), (21, "chats")])
def test_english_plurals(n, form):
    assert Texts("en").plural(n, "chat", "chats") == form
    assert t("en", "dm_reinvited", count=n).endswith(f" {n} {form} again.")


def test_plural_rule_indices_and_form_counts():
    assert [plural_form("ru", n) for n in (1, 2, 5, 21, 111)] == [0, 1, 2, 0, 2]
    assert [plural_form("en", n) for n in (0, 1, 2)] == [1, 0, 1]
    with pytest.raises(ValueError, match="ru needs 3 plural forms"):
        Texts("ru").plural(2, "chat", "chats")


def test_counts_given_as_text_or_nonsense_never_break_a_text():
    assert t("ru", "removed_all", count="2") == "Очередь файлов очищена (2 файла)."
    assert t("ru", "removed_all", count="many") == "Очередь файлов очищена (many файлов)."
    assert t("en", "removed_all", count=None) == "Removed all waiting files (None files)."


@pytest.mark.parametrize(
    ("n", "ru", "en"),
    [
        (0, "0 Б", "0 B"),
        (512, "512 Б", "512 B"),
        (1536, "1,5 КБ", "1.5 KB"),
        (52_428_800, "50,0 МБ", "50.0 MB"),
        (3 * 1024**3, "3,0 ГБ", "3.0 GB"),
        (5 * 1024**4, "5120,0 ГБ", "5120.0 GB"),
    ],
)
def test_sizes_are_localised(n, ru, en):
    assert format_size(n, "ru") == ru
    assert Texts("ru").size(n) == ru
    assert format_size(n, "en") == en
    assert Texts("en").size(n) == en
    assert human_size(n) == en  # logs are locale-neutral


def test_size_fields_take_byte_counts_and_keep_text():
    assert t("ru", "file_too_large", name="a.iso", size=60_000_000, limit=52_428_800) == (
        "Файл «a.iso» слишком большой (57,2 МБ); предел — 50,0 МБ."
    )
    assert t("en", "files_line", n=2, name="b.pdf", size=2048) == "2. b.pdf (2.0 KB)"
    # a call site that formats the size itself still works (it is shown as given)
    assert t("ru", "files_line", n=1, name="a.txt", size="10 B") == "1. a.txt (10 B)"


def test_idle_status_reads_as_a_sentence():
    for locale in LOCALES:
        idle = t(locale, "status_turn_idle")
        assert idle[0].isupper()
        assert idle.endswith(".")
        status = t(
            locale,
            "status",
            agent="Agent",
            health=t(locale, "presence_online"),
            local_id="C1",
            platform_chat_id="7",
            turn=idle,
            files=0,
            usage=t(locale, "status_usage", tokens="0"),
        )
        assert idle in status.splitlines()
    assert t("ru", "status_turn_queued", n=1) == (
        "Сейчас агент отвечает; в очереди ещё 1 сообщение."
    )
    assert t("en", "status_turn_queued", n=2) == (
        "The agent is replying right now; 2 more messages waiting."
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_help_explains_status_and_settings(locale):
    lines = dict(
        line.split(" — ", 1) for line in t(locale, "help").splitlines()[1:] if " — " in line
    )
    assert len(lines["!status"].split()) >= 4  # what it shows, not one word
    assert len(lines["!settings"].split()) >= 3
    assert re.search(r"\((пока недоступны|not available yet)\)", lines["!settings"])


def test_unknown_locale_falls_back_to_ru():
    assert t("de", "context_reset") == "Контекст сброшен."
    assert t("en", "context_reset") == "Context cleared: the agent starts this chat afresh."
    assert t("ru", "chat_created", name="A", local_id="C2") == "Создан чат: A (C2)"
    assert t("de", "dm_reinvited", count=2).endswith("2 чата отправлены повторно.")
