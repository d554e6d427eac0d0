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

import functools
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


_KEY_WORD_SEPARATORS = re.compile(r"[_\-\s.]+")


@functools.lru_cache(maxsize=2048)
def _is_secret_key(key: str) -> bool:
    # Memoised: log keys come from a small set (code, header and JSON field names);
    # the bound keeps arbitrary nested keys from growing it.
    lowered = key.lower()
    if lowered in _SECRET_KEYS:
        return True
    return any(word in _SECRET_WORDS for word in _KEY_WORD_SEPARATORS.split(lowered))


# No pattern above can match fewer characters ("token=x", "Basic x", "a://:x@").
_MIN_SECRET_LEN = 7


def _may_hold_secret(text: str) -> bool:
    """Cheap pre-check: False only if none of ``_TEXT_PATTERNS`` can match ``text``.

    Each pattern needs a literal: "Bearer"/"BEARER"/"bearer"/"Basic"; one of the
    secret words (case-insensitive); "syt_"/"syr_"; or "://" and "@". For ASCII text
    a lowercase substring test is exact for the case-insensitive ones; non-ASCII text
    (where ``re.IGNORECASE`` also matches e.g. the long s, U+017F, as "s") always takes
    the full path.
    """
    if len(text) < _MIN_SECRET_LEN:
        return False
    if not text.isascii():
        return True
    if "syt_" in text or "syr_" in text or ("://" in text and "@" in text):
        return True
    lowered = text.lower()
    return (
        "token" in lowered
        or "passw" in lowered
        or "secret" in lowered
        or "bearer" in lowered
        or "basic" in lowered
    )


def mask_text(text: str) -> str:
    """Mask secret-looking parts of free text (``Bearer xyz``, ``access_token=xyz`` …)."""
    if not _may_hold_secret(text):
        return text
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _mask_item(key: Any, value: Any, depth: int) -> Any:
    if value is not None and isinstance(key, str) and _is_secret_key(key):
        return MASK
    return _mask(value, depth)


def _mask(value: Any, depth: int = 0) -> Any:
    """``value`` with secrets masked; the same object when nothing needed masking
    (plain dicts, lists and tuples are only copied if an item changed)."""
    if depth > 5:
        return value
    cls = type(value)
    if cls is str:
        return mask_text(value)
    if cls is int or cls is float or cls is bool or value is None:
        return value
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        if cls is dict:
            for k, v in value.items():
                if _mask_item(k, v, depth + 1) is not v:
                    break
            else:
                return value
        return {k: _mask_item(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        masked = [_mask(v, depth + 1) for v in value]
        if (cls is list or cls is tuple) and all(
            m is v for m, v in zip(masked, value, strict=True)
        ):
            return value
        return masked if isinstance(value, list) else tuple(masked)
    return value


def mask_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: secret-named keys become ``***``; secret patterns in strings
    (the event text, formatted exceptions, nested dicts and lists) are masked.
    """
    changed: list[tuple[str, Any]] = []
    for key, value in event_dict.items():
        if value is None:
            continue
        if isinstance(key, str) and _is_secret_key(key):
            changed.append((key, MASK))
            continue
        cls = type(value)
        if cls is str:
            masked = mask_text(value)
        elif cls is int or cls is float or cls is bool:
            continue
        elif isinstance(value, str | Mapping | list | tuple):
            masked = _mask(value)
        else:
            continue
        if masked is not value:
            changed.append((key, masked))
    for key, masked in changed:
        event_dict[key] = masked
    return event_dict


class _Stderr:
    """Writes to whatever ``sys.stderr`` is at the time (test capture swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _shared_logger(logger: structlog.PrintLogger, *_args: Any) -> structlog.PrintLogger:
    return logger


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
        # One shared PrintLogger: the default factory builds a new one (and looks up
        # its file lock) for every call through a lazy module-level logger.
        logger_factory=functools.partial(_shared_logger, structlog.PrintLogger(out)),
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
