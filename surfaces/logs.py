"""Logging: structlog configured once at start, secrets masked before rendering.

Every log line — ours and stdlib ones from httpx or trio-websocket — goes through the
same chain: context variables (room/event/chat ids bound with
``structlog.contextvars.bind_contextvars``), log level, an ISO UTC timestamp, exception
formatting, then :func:`mask_secrets`, then the JSON or console renderer, to stderr.

Example::

    configure_logging("json", "info")
    log = structlog.get_logger(__name__)
    log.info("matrix_login", user_id=user_id, access_token=token)   # -> "***"
"""

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["configure_logging", "mask_secrets", "mask_text"]

MASK = "***"

# Keys whose values are secrets: any "_"/"-"-separated word of the key is one of these
# (so "access_token" and "registration_shared_secret" are masked, "tokens_used" is not).
_SECRET_WORDS = frozenset(
    {"token", "password", "passwd", "secret", "authorization", "apikey", "cookie", "credentials"}
)
_SECRET_KEYS = frozenset({"api_key", "set-cookie", "proxy-authorization"})

_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xyz
    (re.compile(r"\b([Bb]earer|BEARER|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + MASK),
    # access_token=xyz in query strings and key=value text
    (
        re.compile(
            r"(?i)\b((?:[a-z0-9]+[_-])*(?:token|password|passwd|secret))=([^&\s\"',;]+)",
        ),
        r"\1=" + MASK,
    ),
    # "password": "xyz" in JSON-ish text
    (
        re.compile(r"(?i)(\"(?:[a-z0-9]+[_-])*(?:token|password|passwd|secret)\"\s*:\s*\")[^\"]*"),
        r"\1" + MASK,
    ),
    # Synapse access / refresh tokens wherever they appear
    (re.compile(r"\bsy[tr]_[A-Za-z0-9_]{8,}"), MASK),
    # passwords in URL userinfo
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@"), r"\1:" + MASK + "@"),
)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered in _SECRET_KEYS:
        return True
    return any(word in _SECRET_WORDS for word in re.split(r"[_\-\s.]+", lowered))


def mask_text(text: str) -> str:
    """Mask secret-looking parts of free text (``Bearer xyz``, ``access_token=xyz`` …)."""
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _mask_item(key: Any, value: Any, depth: int) -> Any:
    if value is not None and isinstance(key, str) and _is_secret_key(key):
        return MASK
    return _mask(value, depth)


def _mask(value: Any, depth: int = 0) -> Any:
    if depth > 5:
        return value
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask_item(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_mask(v, depth + 1) for v in value)
    return value


def mask_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: secret-named keys become ``***``; secret patterns in strings
    (the event text, formatted exceptions, nested dicts and lists) are masked.
    """
    for key, value in list(event_dict.items()):
        if isinstance(value, str | Mapping | list | tuple) or _is_secret_key(key):
            event_dict[key] = _mask_item(key, value, 0)
    return event_dict


class _Stderr:
    """Writes to whatever ``sys.stderr`` is at the time (test capture swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_handler: logging.Handler | None = None


def configure_logging(format: str, level: str, *, stream: TextIO | None = None) -> None:
    """Configure structlog and stdlib logging. Call once at start; calling again
    replaces the previous configuration.

    Args:
        format: ``"json"`` (one object per line) or ``"console"`` (human-readable).
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``. Stdlib
            loggers (httpx, trio-websocket, …) are shown from WARNING up at most.
        stream: where to write; the current ``sys.stderr`` by default.
    """
    global _handler
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    if format not in ("json", "console"):
        raise ValueError(f"unknown log format {format!r}")
    out: Any = stream if stream is not None else _Stderr()

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        mask_secrets,
    ]
    renderer: Processor
    if format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        isatty = getattr(stream if stream is not None else sys.stderr, "isatty", None)
        renderer = structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        context_class=dict,
        cache_logger_on_first_use=False,
    )

    # Stdlib records (httpx, trio-websocket, …) go through the same processors.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    _handler = handler
