"""Numbers, shares and moments per locale (surfaces.i18n._formats)."""

from __future__ import annotations

import datetime as dt

import pytest

from surfaces.i18n import Texts, format_moment, format_number, format_percent, t

NNBSP = "\u202f"  # Russian digit groups: a narrow no-break space


@pytest.mark.parametrize(
    ("n", "ru", "en"),
    [
        (0, "0", "0"),
        (999, "999", "999"),
        (1000, f"1{NNBSP}000", "1,000"),
        (1_234_567, f"1{NNBSP}234{NNBSP}567", "1,234,567"),
        (-4200, f"-4{NNBSP}200", "-4,200"),
    ],
)
def test_numbers_are_grouped_per_locale(n, ru, en):
    assert format_number(n, "ru") == ru
    assert Texts("ru").number(n) == ru
    assert format_number(n, "en") == en


def test_percentages_round_down_and_follow_the_locale():
    assert format_percent(0.8, "en") == "80%"
    assert format_percent(0.8, "ru") == "80\u00a0%"
    assert format_percent(0.7999, "en") == "79%"  # never shows 80 % before it is reached
    assert Texts("en").percent(1.25) == "125%"


def test_a_reset_moment_reads_as_a_utc_day_and_time():
    new_year = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert format_moment(new_year, "en") == "1 January 2027, 00:00 UTC"
    assert format_moment(new_year, "ru") == "1 января 2027, 00:00 UTC"
    moscow = dt.timezone(dt.timedelta(hours=3))
    assert Texts("ru").moment(dt.datetime(2027, 3, 1, 3, tzinfo=moscow)) == (
        "1 марта 2027, 00:00 UTC"
    )


def test_the_budget_notices_name_the_budget_the_use_and_the_reset():
    fields = {"used": "1,000", "budget": "1,000", "resets": "1 January 2027, 00:00 UTC"}
    text = t("en", "budget_exhausted", **fields)
    assert "1,000 of 1,000" in text
    assert "1 January 2027, 00:00 UTC" in text
    ru = t("ru", "budget_exhausted", **{**fields, "resets": "1 января 2027, 00:00 UTC"})
    assert "обновится 1 января 2027, 00:00 UTC" in ru
