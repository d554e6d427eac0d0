"""Looking texts up: ``t(locale, key, **fields)``, and ``Texts`` bound to one locale.

Besides plain ``str.format`` fields, a text may use two format specs, so that a call
site passes numbers and the catalogue words them for its language:

- ``{count:plural:чат|чата|чатов}`` — the form of the word for ``count``, by the
  locale's plural rule (:func:`plural_form`): ``ru`` has three forms (one, few, many:
  1 чат, 2 чата, 5 чатов, 21 чат), ``en`` two (one, other);
- ``{size:size}`` — a byte count as a localised size (:func:`format_size`:
  ``50,0 МБ``, ``50.0 MB``).

Both accept text as well (a call site that already formatted the value): a size
that is not an ``int`` is shown as given, and a count that is not a whole number
takes the last form ("many"/"other"). A wrong field type never breaks a reply.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from surfaces.i18n._en import EN
from surfaces.i18n._formats import format_moment, format_number, format_percent
from surfaces.i18n._ru import RU

DEFAULT_LOCALE = "ru"
CATALOGUE: dict[str, dict[str, str]] = {"ru": RU, "en": EN}
#: The locales there is a catalogue for (the config accepts exactly these).
LOCALES = tuple(sorted(CATALOGUE))
#: How many forms a ``plural:`` spec lists in each locale.
PLURAL_FORMS: dict[str, int] = {"ru": 3, "en": 2}

_PLURAL = "plural:"
_SIZE = "size"
_UNITS: dict[str, tuple[str, ...]] = {
    "ru": ("Б", "КБ", "МБ", "ГБ"),
    "en": ("B", "KB", "MB", "GB"),
}
_DECIMAL_POINT: dict[str, str] = {"ru": ",", "en": "."}


def plural_form(locale: str, n: int) -> int:
    """The index of the plural form of ``n``: ``ru`` 0 one / 1 few / 2 many
    (CLDR's rule for integers), ``en`` 0 one / 1 other."""
    if locale == "ru":
        n = abs(n)
        if n % 10 == 1 and n % 100 != 11:
            return 0
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return 1
        return 2
    return 0 if n == 1 else 1


def format_size(n: int, locale: str = "en") -> str:
    """A short size in the locale's words: ``512 Б``/``512 B``, ``1,5 КБ``/``1.5 KB``.

    Binary multiples (1 KB = 1024 B), one decimal above bytes.
    """
    units = _UNITS.get(locale, _UNITS["en"])
    point = _DECIMAL_POINT.get(locale, ".")
    size = float(n)
    for unit in units:
        if size < 1024 or unit == units[-1]:
            if unit == units[0]:
                return f"{int(size)} {unit}"
            return f"{size:.1f}".replace(".", point) + f" {unit}"
        size /= 1024
    return f"{n} {units[0]}"  # pragma: no cover - the loop always returns


def human_size(n: int) -> str:
    """A short, locale-neutral size for logs: ``512 B``, ``1.5 KB``, ``12.0 MB``."""
    return format_size(n, "en")


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


@attrs.frozen
class _Formatter(string.Formatter):
    """``str.format`` plus the ``plural:`` and ``size`` specs, for one locale."""

    locale: str

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec.startswith(_PLURAL):
            forms = format_spec[len(_PLURAL) :].split("|")
            n = _whole_number(value)
            index = len(forms) - 1 if n is None else plural_form(self.locale, n)
            return forms[min(index, len(forms) - 1)]
        if format_spec == _SIZE:
            if isinstance(value, int) and not isinstance(value, bool):
                return format_size(value, self.locale)
            return str(value)
        return super().format_field(value, format_spec)

    def render(self, text: str, fields: Mapping[str, Any]) -> str:
        return self.vformat(text, (), fields)

    def check_unused_args(
        self, used_args: set[int | str], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        return None  # like str.format: extra fields are fine


_FORMATTERS = {locale: _Formatter(locale) for locale in CATALOGUE}


def t(locale: str, key: str, **fields: Any) -> str:
    """The text for ``key`` in ``locale`` with ``fields`` filled in (``ru`` fills gaps)."""
    if locale not in CATALOGUE:
        locale = DEFAULT_LOCALE
    text = CATALOGUE[locale].get(key)
    if not text:
        locale, text = DEFAULT_LOCALE, RU[key]
    return _FORMATTERS[locale].render(text, fields) if fields else text


@attrs.frozen
class Texts:
    """The catalogue in one locale: what a handler that writes to users is given."""

    locale: str = DEFAULT_LOCALE

    def __call__(self, key: str, **fields: Any) -> str:
        return t(self.locale, key, **fields)

    def size(self, n: int) -> str:
        """``n`` bytes in this locale's words (``50,0 МБ``)."""
        return format_size(n, self.locale)

    def number(self, n: int) -> str:
        """A count with this locale's digit grouping (``1 234 567`` / ``1,234,567``)."""
        return format_number(n, self.locale)

    def percent(self, share: float) -> str:
        """A share as a percentage (``80 %`` / ``80%``), rounded down."""
        return format_percent(share, self.locale)

    def moment(self, when: dt.datetime) -> str:
        """A moment as this locale writes it, in UTC (``1 January 2027, 00:00 UTC``)."""
        return format_moment(when, self.locale)

    def plural(self, n: int, *forms: str) -> str:
        """The form of a word for ``n`` in this locale: ``plural(5, "чат", "чата", "чатов")``."""
        n_forms = PLURAL_FORMS.get(self.locale, 2)
        if len(forms) != n_forms:
            raise ValueError(f"{self.locale} needs {n_forms} plural forms, got {len(forms)}")
        return forms[plural_form(self.locale, n)]
