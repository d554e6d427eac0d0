"""Every user-facing text, in one catalogue with ``ru`` (default) and ``en``.

Keys are stable identifiers; texts take ``str.format`` fields. A missing key in a
locale falls back to ``ru``; a test checks both locales have the same keys and
fields, so a translation can never break a reply.
"""

from surfaces.i18n._texts import CATALOGUE, DEFAULT_LOCALE, LOCALES, Texts, human_size, t

__all__ = ["CATALOGUE", "DEFAULT_LOCALE", "LOCALES", "Texts", "human_size", "t"]
