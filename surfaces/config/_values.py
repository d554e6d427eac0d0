"""Value checks shared by the config and the registry: user ids, allow-list globs, URLs."""

from __future__ import annotations

import fnmatch
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# A Matrix user id: "@" localpart ":" server name (hostname or IP literal, optional port).
# The localpart may hold any printable ASCII except ":" (historical user ids).
_USER_ID_RE = re.compile(
    r"^@[\x21-\x39\x3b-\x7e]+:(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)


def is_user_id(value: str) -> bool:
    """Whether ``value`` looks like ``@user:server`` (with a valid server name)."""
    return bool(_USER_ID_RE.match(value))


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def is_allowed(user_id: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether ``user_id`` matches one of the glob ``patterns`` (fnmatch, case-sensitive,
    whole id). Malformed user ids are never allowed, so ``@*:example.org`` cannot be
    satisfied by ``@x:evil.org:example.org``.
    """
    if not is_user_id(user_id):
        return False
    return any(fnmatch.fnmatchcase(user_id, pattern) for pattern in patterns)


def check_url(value: str, schemes: tuple[str, ...]) -> str | None:
    """Return a problem description if ``value`` is not a URL with one of ``schemes``
    and a host, else None.
    """
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        return f"is not a valid URL ({exc}), got {value!r}"
    if parts.scheme.lower() not in schemes:
        names = ", ".join(schemes[:-1]) + " or " + schemes[-1] if len(schemes) > 1 else schemes[0]
        return f"scheme must be {names}, got {value!r}"
    if not parts.hostname:
        return f"must include a host, got {value!r}"
    if not port_ok:
        return f"has an invalid port, got {value!r}"
    if any(ch.isspace() for ch in value):
        return f"must not contain whitespace, got {value!r}"
    return None


def redact_url(value: str) -> str:
    """Mask the password part of a URL's userinfo (``http://u:***@h/``)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password is None:
        return value
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def describe(value: Any) -> str:
    """``bool False`` / ``int 3`` / ``str 'x'``: a value with its YAML type, for errors."""
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"
