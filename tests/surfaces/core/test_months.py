"""Usage months are UTC calendar months (surfaces.core.months)."""

from __future__ import annotations

import datetime as dt

import pytest

from surfaces.core import month_after, month_of, month_start, resets_at


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_month_of_is_the_utc_month():
    assert month_of(ts(2026, 12, 31, 23, 59, 59)) == "2026-12"
    assert month_of(ts(2027, 1, 1)) == "2027-01"
    # 23:30 UTC on 30 November is already December in Moscow (UTC+3): still November.
    assert month_of(ts(2026, 11, 30, 23, 30)) == "2026-11"


def test_december_rolls_over_into_january_of_the_next_year():
    assert month_after("2026-12") == "2027-01"
    assert month_after("2026-01") == "2026-02"
    assert resets_at(ts(2026, 12, 7, 15, 0)) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_leap_years_end_february_on_the_29th():
    assert month_of(ts(2028, 2, 29, 23, 59, 59)) == "2028-02"
    assert resets_at(ts(2028, 2, 29, 12)) == dt.datetime(2028, 3, 1, tzinfo=dt.UTC)
    assert month_of(ts(2027, 2, 28, 23, 59, 59)) == "2027-02"
    assert month_of(ts(2027, 3, 1)) == "2027-03"
    assert resets_at(ts(2027, 2, 28)) == dt.datetime(2027, 3, 1, tzinfo=dt.UTC)


def test_month_start_is_midnight_utc_on_the_first():
    start = month_start("2027-01")
    assert start.isoformat() == "2027-01-01T00:00:00+00:00"
    assert month_of(start.timestamp()) == "2027-01"
    assert month_of(start.timestamp() - 1) == "2026-12"


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "2026-1", "202612", "x-01", ""])
def test_a_malformed_month_is_refused(bad):
    with pytest.raises(ValueError, match="not a month"):
        month_after(bad)
