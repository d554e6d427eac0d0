"""Every user-facing text, in one catalogue with ``ru`` (default) and ``en``.

Keys are stable identifiers; texts take ``str.format`` fields, plus ``plural:`` and
``size`` specs so that plurals and sizes read right in each language (see
``_texts``). A missing key in a locale falls back to ``ru``; a test checks both
locales have the same keys and fields, so a translation can never break a reply.
"""

from surfaces.i18n._formats import format_moment, format_number, format_percent
from surfaces.i18n._texts import (
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

__all__ = [
    "CATALOGUE",
    "DEFAULT_LOCALE",
    "LOCALES",
    "PLURAL_FORMS",
    "Texts",
    "format_moment",
    "format_number",
    "format_percent",
    "format_size",
    "human_size",
    "plural_form",
    "t",
]
