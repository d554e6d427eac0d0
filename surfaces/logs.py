"""Logging: structlog configured once at start, secrets masked before rendering.

Every log line — ours and stdlib ones from httpx or trio-websocket — goes through the
same chain: context variables (room/event/chat ids bound with
``structlog.contextvars.bind_contextvars``), the logger's name, log level, an ISO UTC
timestamp, exception formatting, then :func:`mask_secrets`, then the JSON or console
renderer, to stderr.

Levels can differ per logger (``log.levels: {httpx: debug}``), by dotted name prefix,
the longest match winning, for our structlog loggers (``matrix_client._client``) and
stdlib ones (``httpx``) alike, so the HTTP layer can be debugged without the rest.

In JSON mode every line on stderr is one JSON object: tracebacks are structured
(``exception``: a list of ``{exc_type, exc_value, frames: [{filename, lineno, name}]}``,
exception groups nested in ``exceptions``; never frame locals, which may hold
secrets), an uncaught exception is logged as ``uncaught_exception`` instead of being
printed by the interpreter, and Python warnings go through logging too.

Example::

    configure_logging("json", "info", levels={"httpx": "debug"})
    log = structlog.get_logger(__name__)
    log.info("matrix_login", user_id=user_id, access_token=token)   # -> "***"
"""

import functools
import logging
import re
import sys
import types
from collections.abc import Mapping
from typing import Any, TextIO

import attrs
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

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


#: How deep plain values are searched for secrets (log fields are shallow).
_MAX_DEPTH = 5
#: How deep a structured traceback is searched: trio nests exception groups, and
#: every message in them must be masked.
_MAX_TRACEBACK_DEPTH = 64


def _mask_item(key: Any, value: Any, depth: int, max_depth: int) -> Any:
    if value is not None and isinstance(key, str) and _is_secret_key(key):
        return MASK
    return _mask(value, depth, max_depth)


def _mask(value: Any, depth: int = 0, max_depth: int = _MAX_DEPTH) -> Any:
    """``value`` with secrets masked; the same object when nothing needed masking
    (plain dicts, lists and tuples are only copied if an item changed)."""
    if depth > max_depth:
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
                if _mask_item(k, v, depth + 1, max_depth) is not v:
                    break
            else:
                return value
        return {k: _mask_item(k, v, depth + 1, max_depth) for k, v in value.items()}
    if isinstance(value, list | tuple):
        masked = [_mask(v, depth + 1, max_depth) for v in value]
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
        elif key == "exception":
            masked = _mask(value, max_depth=_MAX_TRACEBACK_DEPTH)
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


class _NamedLogger:
    """The one shared ``PrintLogger`` under a logger's name.

    ``structlog.get_logger(__name__)`` passes the name to the logger factory; keeping
    it on the wrapped logger lets processors filter and label by name.
    """

    __slots__ = ("_printer", "name")

    def __init__(self, name: str, printer: structlog.PrintLogger) -> None:
        self.name = name
        self._printer = printer

    def msg(self, message: str) -> None:
        self._printer.msg(message)

    debug = info = warning = warn = error = err = critical = fatal = exception = failure = msg
    log = msg


#: Distinct logger names remembered (module names: a few dozen).
_MAX_NAMED_LOGGERS = 1024


@attrs.define
class _LoggerFactory:
    printer: structlog.PrintLogger
    _named: dict[str, _NamedLogger] = attrs.field(factory=dict)

    def __call__(self, *args: Any) -> _NamedLogger:
        name = args[0] if args and isinstance(args[0], str) else ""
        logger = self._named.get(name)
        if logger is None:
            logger = _NamedLogger(name, self.printer)
            if len(self._named) < _MAX_NAMED_LOGGERS:
                self._named[name] = logger
        return logger


def _add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", "")
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


_METHOD_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "err": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


@attrs.define
class _PerLoggerLevels:
    """structlog processor: drop events below their logger's level.

    ``levels`` maps dotted name prefixes to levels; a name's level is that of its
    longest matching prefix (``matrix_client`` covers ``matrix_client._sync``), else
    ``default``. Only installed when ``log.levels`` is set; the bound logger then
    filters at the lowest level named, and this decides the rest.
    """

    default: int
    levels: Mapping[str, int]
    _memo: dict[str, int] = attrs.field(factory=dict)

    def level_for(self, name: str) -> int:
        level = self._memo.get(name)
        if level is None:
            level = self.default
            for prefix in sorted(self.levels, key=len, reverse=True):
                if name == prefix or name.startswith(prefix + "."):
                    level = self.levels[prefix]
                    break
            if len(self._memo) < _MAX_NAMED_LOGGERS:
                self._memo[name] = level
        return level

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        wanted = self.level_for(getattr(logger, "name", ""))
        if _METHOD_LEVELS.get(method, logging.INFO) < wanted:
            raise structlog.DropEvent
        return event_dict


def _level(level: str) -> int:
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    return numeric


_handler: logging.Handler | None = None
#: Stdlib loggers whose level we set, reset when logging is configured again.
_leveled: list[logging.Logger] = []
_original_excepthook = sys.excepthook


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: types.TracebackType | None
) -> None:
    """``sys.excepthook`` in JSON mode: the crash is a JSON line like every other."""
    if issubclass(exc_type, KeyboardInterrupt):
        _original_excepthook(exc_type, exc, tb)
        return
    exc_info: ExcInfo = (exc_type, exc, tb)  # type: ignore[assignment]
    structlog.get_logger("surfaces").critical("uncaught_exception", exc_info=exc_info)


def configure_logging(
    format: str,
    level: str,
    *,
    levels: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging. Call once at start; calling again
    replaces the previous configuration.

    Args:
        format: ``"json"`` (one object per line) or ``"console"`` (human-readable).
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``. Stdlib
            loggers (httpx, trio-websocket, …) are shown from WARNING up at most,
            unless ``levels`` names them.
        levels: logger name prefix -> level (``{"httpx": "debug"}``), for ours and
            stdlib loggers; the longest matching prefix wins.
        stream: where to write; the current ``sys.stderr`` by default.
    """
    global _handler
    numeric = _level(level)
    per_logger = {name: _level(value) for name, value in (levels or {}).items()}
    if format not in ("json", "console"):
        raise ValueError(f"unknown log format {format!r}")
    out: Any = stream if stream is not None else _Stderr()

    exceptions: Processor
    renderer: Processor
    if format == "json":
        # Structured, so a traceback is part of its JSON line; never frame locals.
        exceptions = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False, use_rich=False)
        )
        renderer = structlog.processors.JSONRenderer()
    else:
        exceptions = structlog.processors.format_exc_info
        isatty = getattr(stream if stream is not None else sys.stderr, "isatty", None)
        renderer = structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        exceptions,
        mask_secrets,
    ]
    first: list[Processor] = [_add_logger_name]
    if per_logger:
        first.insert(0, _PerLoggerLevels(numeric, per_logger))

    structlog.configure(
        processors=[*first, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(min([numeric, *per_logger.values()])),
        # One shared PrintLogger: the default factory builds a new one (and looks up
        # its file lock) for every call through a lazy module-level logger.
        logger_factory=_LoggerFactory(structlog.PrintLogger(out)),
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
    while _leveled:
        _leveled.pop().setLevel(logging.NOTSET)
    for name, value in per_logger.items():
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.setLevel(value)
        _leveled.append(stdlib_logger)

    json_mode = format == "json"
    sys.excepthook = _log_uncaught if json_mode else _original_excepthook
    logging.captureWarnings(json_mode)
