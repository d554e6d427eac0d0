"""Looking texts up: ``t(locale, key, **fields)``, and ``Texts`` bound to one locale."""

from __future__ import annotations

from typing import Any

import attrs

from surfaces.i18n._en import EN
from surfaces.i18n._ru import RU

DEFAULT_LOCALE = "ru"
CATALOGUE: dict[str, dict[str, str]] = {"ru": RU, "en": EN}
#: The locales there is a catalogue for (the config accepts exactly these).
LOCALES = tuple(sorted(CATALOGUE))


def t(locale: str, key: str, **fields: Any) -> str:
    """The text for ``key`` in ``locale`` with ``fields`` filled in (``ru`` fills gaps)."""
    table = CATALOGUE.get(locale, RU)
    text = table.get(key) or RU[key]
    return text.format(**fields) if fields else text


@attrs.frozen
class Texts:
    """The catalogue in one locale: what a handler that writes to users is given."""

    locale: str = DEFAULT_LOCALE

    def __call__(self, key: str, **fields: Any) -> str:
        return t(self.locale, key, **fields)

    def size(self, n: int) -> str:
        return human_size(n)


def human_size(n: int) -> str:
    """A short, locale-neutral size: ``512 B``, ``1.5 KB``, ``12 MB``."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
