"""Usage months: the calendar month a turn's tokens count in, in UTC.

A monthly token budget resets at the first instant of a month, and every user and
operator must read the same boundary whatever the server's time zone is, so months
are UTC calendar months (``"2026-12"``), never local ones. A turn counts in the month
it *finished* in (a turn that starts at 23:59 on 31 January and ends on 1 February
counts in February).

Pure functions of a timestamp; tested for the year change and leap years::

    >>> month_of(1798761599.0)            # 2026-12-31 23:59:59 UTC
    '2026-12'
    >>> month_after('2026-12')
    '2027-01'
    >>> month_start('2027-01').isoformat()
    '2027-01-01T00:00:00+00:00'
"""

from __future__ import annotations

import datetime as dt

__all__ = ["month_after", "month_of", "month_start", "resets_at"]


def month_of(timestamp: float) -> str:
    """The UTC month (``YYYY-MM``) of a Unix timestamp."""
    when = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return f"{when.year:04d}-{when.month:02d}"


def _parse(month: str) -> tuple[int, int]:
    year, sep, number = month.partition("-")
    if not (sep and year.isdigit() and number.isdigit() and len(number) == 2):
        raise ValueError(f"not a month like 2026-12: {month!r}")
    y, m = int(year), int(number)
    if not 1 <= m <= 12 or not 1 <= y <= 9998:
        raise ValueError(f"not a month like 2026-12: {month!r}")
    return y, m


def month_after(month: str) -> str:
    """The month after ``month``: ``2026-12`` → ``2027-01``."""
    y, m = _parse(month)
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return f"{y:04d}-{m:02d}"


def month_start(month: str) -> dt.datetime:
    """The first instant of ``month`` (00:00 UTC on its first day), timezone-aware."""
    y, m = _parse(month)
    return dt.datetime(y, m, 1, tzinfo=dt.UTC)


def resets_at(timestamp: float) -> dt.datetime:
    """When the month of ``timestamp`` ends: the start of the next UTC month."""
    return month_start(month_after(month_of(timestamp)))
