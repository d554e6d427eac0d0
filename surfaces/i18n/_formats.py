"""Numbers, shares and dates written the way each locale reads them.

Token counts run into millions, so they are grouped: ``1 234 567`` in Russian (a
narrow no-break space, U+202F, as CLDR and Russian typography do: the groups never
break across lines), ``1,234,567`` in English. A share is ``80 %`` / ``80%``. A
moment (when a budget resets) is a day and a time in UTC, which every reader shares:
``1 января 2027, 00:00 UTC`` / ``1 January 2027, 00:00 UTC``.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["format_moment", "format_number", "format_percent"]

_GROUP: dict[str, str] = {"ru": "\u202f", "en": ","}
_PERCENT: dict[str, str] = {"ru": "\u00a0%", "en": "%"}
_MONTHS: dict[str, tuple[str, ...]] = {
    # Russian dates take the month in the genitive: «1 января».
    "ru": (
        "января", "февраля", "марта", "апреля", "мая", "июня",
        "июля", "августа", "сентября", "октября", "ноября", "декабря",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip


def format_number(n: int, locale: str = "en") -> str:
    """A whole number with the locale's digit grouping: ``12 345`` / ``12,345``."""
    grouped = f"{abs(n):,}".replace(",", _GROUP.get(locale, ","))
    return f"-{grouped}" if n < 0 else grouped


def format_percent(share: float, locale: str = "en") -> str:
    """A share (0.8) as a whole percentage, rounded down so 79.9 % never reads 80 %."""
    return f"{int(share * 100)}{_PERCENT.get(locale, '%')}"


def format_moment(when: dt.datetime, locale: str = "en") -> str:
    """A moment in UTC as a day and a time: ``1 January 2027, 00:00 UTC``."""
    utc = when.astimezone(dt.UTC)
    months = _MONTHS.get(locale, _MONTHS["en"])
    return f"{utc.day} {months[utc.month - 1]} {utc.year}, {utc:%H:%M} UTC"
