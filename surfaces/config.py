"""Configuration: one attrs tree, loaded from an optional YAML file plus the environment.

Why this shape: operators run the bot in containers from environment variables alone,
and add a YAML file for everything else. Both sources are validated at start, before
``trio.run``, and every problem is reported at once as one line that names its source
and field, for example::

    surfaces.yaml: matrix.homeserver: must be an http(s) URL, got 'foo'
    env MATRIX_USER_ID: matrix.user_id: must look like @user:server, got 'bob'

Precedence, lowest first: field defaults, the YAML file, the legacy environment names
(``MATRIX_HOMESERVER`` ...), then the generic ``SURFACES_<SECTION>__<FIELD>`` names.
An empty environment variable counts as unset (compose files pass ``${VAR:-}``).

Example::

    config = load_config(None, os.environ)     # path from SURFACES_CONFIG, if set
    config.matrix.access_token.reveal()        # Secret: repr/str are "***"
"""

import difflib
import fnmatch
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import cattrs
import cattrs.v
import yaml
from cattrs.errors import ClassValidationError, IterableValidationError

__all__ = [
    "AgentsConfig",
    "BotConfig",
    "Config",
    "ConfigError",
    "LogConfig",
    "MatrixConfig",
    "OpsConfig",
    "Secret",
    "StreamingConfig",
    "check_url",
    "is_allowed",
    "is_user_id",
    "load_config",
    "redact_url",
]


class ConfigError(Exception):
    """The configuration is invalid. ``lines`` holds one message per problem.

    Each line names its source and field, e.g.
    ``surfaces.yaml: bot.locale: must be one of en, ru, got 'de'``.
    """

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


@attrs.frozen(repr=False)
class Secret:
    """A string that must never be printed or logged: ``repr``/``str`` are ``***``.

    ``reveal()`` returns the value at the one place that needs it (the HTTP client).
    """

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


# --------------------------------------------------------------------------- tree


@attrs.frozen
class MatrixConfig:
    homeserver: str = attrs.field(repr=lambda url: repr(redact_url(url)))
    user_id: str
    password: Secret | None = None
    access_token: Secret | None = None
    device_id: str = "SURFACES"
    sync_long_poll_s: float = 30.0

    @property
    def server_name(self) -> str:
        """The bot's own homeserver name: the part of ``user_id`` after the first colon."""
        return self.user_id.partition(":")[2]


@attrs.frozen
class AgentsConfig:
    registry_path: str | None = None
    default_base_url: str | None = attrs.field(
        default=None, repr=lambda url: repr(url if url is None else redact_url(url))
    )
    workspace_dir: str = "/agents"
    connect_timeout_s: float = 10.0
    status_timeout_s: float = 15.0
    first_text_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    total_timeout_s: float = 900.0
    retries: int = 2
    retry_base_s: float = 0.5
    max_frame_bytes: int = 1_048_576


@attrs.frozen
class BotConfig:
    brand: str = "Lambda"
    locale: str = "ru"
    allowed_users: tuple[str, ...] = ()
    room_queue_size: int = 5
    max_file_bytes: int = 52_428_800
    shutdown_grace_s: float = 20.0
    max_event_attempts: int = 3


@attrs.frozen
class StreamingConfig:
    first_message_after_s: float = 0.1
    first_edit_after_s: float = 0.8
    min_edit_interval_s: float = 1.0
    max_edit_interval_s: float = 5.0
    max_edits_per_message: int = 30
    idle_flush_s: float = 2.0
    typing_lease_s: float = 30.0


@attrs.frozen
class LogConfig:
    format: str = "console"
    level: str = "info"


@attrs.frozen
class OpsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


@attrs.frozen
class Config:
    matrix: MatrixConfig
    agents: AgentsConfig = attrs.Factory(AgentsConfig)
    bot: BotConfig = attrs.Factory(BotConfig)
    streaming: StreamingConfig = attrs.Factory(StreamingConfig)
    log: LogConfig = attrs.Factory(LogConfig)
    ops: OpsConfig = attrs.Factory(OpsConfig)
    state_dir: str = "./state"

    def allowed_patterns(self) -> tuple[str, ...]:
        """MXID glob patterns allowed to use the bot.

        An empty ``bot.allowed_users`` means "the bot's own homeserver only".
        """
        if self.bot.allowed_users:
            return self.bot.allowed_users
        return (f"@*:{_glob_escape(self.matrix.server_name)}",)

    def redacted(self) -> dict[str, Any]:
        """The whole tree as plain data (for printing), secrets masked as ``***``.

        Passwords inside URLs (``https://user:pw@host``) are masked too.
        """
        return attrs.asdict(self, value_serializer=_redact_value)


def _redact_value(_inst: Any, field: attrs.Attribute | None, value: Any) -> Any:
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, tuple):
        return list(value)
    if (
        isinstance(value, str)
        and field is not None
        and ("url" in field.name or field.name == "homeserver")
    ):
        return redact_url(value)
    return value


SECTIONS: dict[str, type] = {
    "matrix": MatrixConfig,
    "agents": AgentsConfig,
    "bot": BotConfig,
    "streaming": StreamingConfig,
    "log": LogConfig,
    "ops": OpsConfig,
}
_TOP_LEVEL_FIELDS = ("state_dir",)

#: Environment names kept from the earlier deployment -> (section, field).
LEGACY_ENV: dict[str, tuple[str, str]] = {
    "MATRIX_HOMESERVER": ("matrix", "homeserver"),
    "MATRIX_USER_ID": ("matrix", "user_id"),
    "MATRIX_PASSWORD": ("matrix", "password"),
    "MATRIX_ACCESS_TOKEN": ("matrix", "access_token"),
    "MATRIX_DEVICE_ID": ("matrix", "device_id"),
    "MATRIX_AGENT_REGISTRY_PATH": ("agents", "registry_path"),
    "AGENT_BASE_URL": ("agents", "default_base_url"),
    "SURFACES_WORKSPACE_DIR": ("agents", "workspace_dir"),
    "SURFACES_STATE_DIR": ("", "state_dir"),
}
_GENERIC_ENV_RE = re.compile(r"^SURFACES_([A-Z0-9_]+?)__([A-Z0-9_]+)$")

LOCALES = ("en", "ru")
LOG_FORMATS = ("console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


# --------------------------------------------------------------------------- helpers

# A Matrix user id: "@" localpart ":" server name (hostname or IP literal, optional port).
# The localpart may hold any printable ASCII except ":" (historical user ids).
_USER_ID_RE = re.compile(
    r"^@[\x21-\x39\x3b-\x7e]+:(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)


def is_user_id(value: str) -> bool:
    """Whether ``value`` looks like ``@user:server`` (with a valid server name)."""
    return bool(_USER_ID_RE.match(value))


def _glob_escape(text: str) -> str:
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


class _YamlProblem(Exception):
    """Reading or parsing a YAML file failed; the message is ready to show."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:
            continue  # unhashable: construct_mapping reports it
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file strictly (safe loader, duplicate keys rejected).

    Raises ``_YamlProblem`` with a message such as ``line 3, column 5: invalid YAML: ...``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _YamlProblem(f"cannot read: not UTF-8 text ({exc.reason})")
    except OSError as exc:
        raise _YamlProblem(f"cannot read: {exc.strerror or exc}")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem:
            what = f"{exc.problem} ({exc.context})"
        raise _YamlProblem(f"{where}invalid YAML: {what}")
    except yaml.YAMLError as exc:
        raise _YamlProblem(f"invalid YAML: {exc}")


def describe(value: Any) -> str:
    """``bool False`` / ``int 3`` / ``str 'x'``: a value with its YAML type, for errors."""
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"


def _yaml11_hint(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return " (quote the value in YAML: unquoted yes/no/on/off/null and numbers are not text)"
    return ""


# --------------------------------------------------------------------------- converter


class _EnvStr(str):
    """Text that came from an environment variable: numbers and booleans are parsed
    from it; in YAML the value must already have the right type.
    """

    __slots__ = ()


class _Invalid(ValueError):
    """A structuring problem whose message is shown as is."""


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return str(value)
    if value is None:
        raise _Invalid("must be a string, got null (remove the key to use the default)")
    raise _Invalid(f"must be a string, got {describe(value)}{_yaml11_hint(value)}")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, _EnvStr):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _Invalid(f"must be true/false/1/0/yes/no, got {str(value)!r}")
    raise _Invalid(f"must be true or false, got {describe(value)}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, _EnvStr):
        try:
            return int(value.strip())
        except ValueError:
            raise _Invalid(f"must be an integer, got {str(value)!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Invalid(f"must be an integer, got {describe(value)}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, _EnvStr):
        try:
            result = float(value.strip())
        except ValueError:
            raise _Invalid(f"must be a number, got {str(value)!r}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    else:
        raise _Invalid(f"must be a number, got {describe(value)}")
    if not math.isfinite(result):
        raise _Invalid(f"must be a finite number, got {result!r}")
    return result


def _structure_str_tuple(value: Any, _: type) -> tuple[str, ...]:
    if isinstance(value, _EnvStr):  # comma-separated in the environment
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if not isinstance(value, list | tuple):
        raise _Invalid(f"must be a list of strings, got {describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _Invalid(f"item {index} must be a string, got {describe(item)}")
    return tuple(value)


def _structure_secret(value: Any, _: type) -> Secret:
    if isinstance(value, str):
        return Secret(str(value))
    # Never echo the value: it may be a real secret typed without quotes.
    raise _Invalid(f"must be a string, got {type(value).__name__}{_yaml11_hint(value)}")


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(Secret, _structure_secret)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)
    return converter


#: The one converter used for configuration (strict hooks; see module docstring).
CONVERTER = _make_converter()

_REQUIRED = "\x00required"


def _format_exception(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, _Invalid):
        return str(exc)
    if isinstance(exc, KeyError):
        return _REQUIRED
    return cattrs.v.format_exception(exc, type_)


# --------------------------------------------------------------------------- validation

_Check = Callable[[Any], str | None]


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value!r}"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must be 0 or more, got {value!r}"


def _at_least(minimum: int) -> _Check:
    def check(value: int) -> str | None:
        return None if value >= minimum else f"must be at least {minimum}, got {value!r}"

    return check


def _non_empty(value: str | None) -> str | None:
    if value is None:
        return None
    return None if value.strip() else "must not be empty"


def _choice(options: tuple[str, ...]) -> _Check:
    def check(value: str) -> str | None:
        if value.lower() in options:
            return None
        return f"must be one of {', '.join(options)}, got {value!r}"

    return check


def _homeserver(value: str) -> str | None:
    problem = check_url(value, ("http", "https"))
    return None if problem is None else f"must be an http(s) URL, got {value!r}"


def _agent_url(value: str | None) -> str | None:
    return None if value is None else check_url(value, ("http", "https", "ws", "wss"))


def _user_id(value: str) -> str | None:
    return None if is_user_id(value) else f"must look like @user:server, got {value!r}"


def _secret(value: Secret | None) -> str | None:
    if value is None or value.reveal().strip():
        return None
    return "must not be empty"


def _device_id(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if any(ch.isspace() for ch in value):
        return f"must not contain whitespace, got {value!r}"
    return None


def _patterns(value: tuple[str, ...]) -> str | None:
    for pattern in value:
        if not pattern or any(ch.isspace() for ch in pattern):
            return f"patterns must be non-empty and without spaces, got {pattern!r}"
    return None


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"must be between 0 and 65535, got {value!r}"


_CHECKS: dict[tuple[str, str], _Check] = {
    ("matrix", "homeserver"): _homeserver,
    ("matrix", "user_id"): _user_id,
    ("matrix", "password"): _secret,
    ("matrix", "access_token"): _secret,
    ("matrix", "device_id"): _device_id,
    ("matrix", "sync_long_poll_s"): _positive,
    ("agents", "registry_path"): _non_empty,
    ("agents", "default_base_url"): _agent_url,
    ("agents", "workspace_dir"): _non_empty,
    ("agents", "connect_timeout_s"): _positive,
    ("agents", "status_timeout_s"): _positive,
    ("agents", "first_text_timeout_s"): _positive,
    ("agents", "idle_timeout_s"): _positive,
    ("agents", "total_timeout_s"): _positive,
    ("agents", "retries"): _at_least(0),
    ("agents", "retry_base_s"): _non_negative,
    ("agents", "max_frame_bytes"): _at_least(1024),
    ("bot", "brand"): _non_empty,
    ("bot", "locale"): _choice(LOCALES),
    ("bot", "allowed_users"): _patterns,
    ("bot", "room_queue_size"): _at_least(1),
    ("bot", "max_file_bytes"): _at_least(1),
    ("bot", "shutdown_grace_s"): _non_negative,
    ("bot", "max_event_attempts"): _at_least(1),
    ("streaming", "first_message_after_s"): _non_negative,
    ("streaming", "first_edit_after_s"): _non_negative,
    ("streaming", "min_edit_interval_s"): _positive,
    ("streaming", "max_edit_interval_s"): _positive,
    ("streaming", "max_edits_per_message"): _at_least(1),
    ("streaming", "idle_flush_s"): _positive,
    ("streaming", "typing_lease_s"): _positive,
    ("log", "format"): _choice(LOG_FORMATS),
    ("log", "level"): _choice(LOG_LEVELS),
    ("ops", "host"): _non_empty,
    ("ops", "port"): _port,
    ("", "state_dir"): _non_empty,
}


def env_name(section: str, field: str) -> str:
    """The environment variable for a field (the legacy name where there is one)."""
    for name, target in LEGACY_ENV.items():
        if target == (section, field):
            return name
    return f"SURFACES_{section.upper()}__{field.upper()}"


def _dotted(section: str, field: str) -> str:
    return f"{section}.{field}" if section else field


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(options)})"


@attrs.define
class _Loader:
    """Collects values with their sources, then structures and validates them."""

    file_label: str | None
    values: dict[str, dict[str, Any]] = attrs.Factory(lambda: {s: {} for s in [*SECTIONS, ""]})
    origins: dict[tuple[str, str], str] = attrs.Factory(dict)
    errors: list[str] = attrs.Factory(list)

    def origin(self, section: str, field: str) -> str:
        found = self.origins.get((section, field))
        if found is not None:
            return found
        return self.file_label or "environment"

    def error(self, section: str, field: str, message: str) -> None:
        self.errors.append(f"{self.origin(section, field)}: {_dotted(section, field)}: {message}")

    def set(self, section: str, field: str, value: Any, origin: str) -> None:
        self.values[section][field] = value
        self.origins[(section, field)] = origin

    # -- sources

    def add_yaml(self, data: Any) -> None:
        label = self.file_label
        if data is None:
            return
        if not isinstance(data, dict):
            self.errors.append(f"{label}: the top level must be a mapping, got {describe(data)}")
            return
        top_keys = [*SECTIONS, *_TOP_LEVEL_FIELDS]
        for key, section_data in data.items():
            if not isinstance(key, str):
                self.errors.append(f"{label}: {key!r}: keys must be strings")
            elif key in _TOP_LEVEL_FIELDS:
                self.set("", key, section_data, label)
            elif key not in SECTIONS:
                self.errors.append(f"{label}: {key}: unknown key{_suggest(key, top_keys)}")
            elif section_data is None:
                continue
            elif not isinstance(section_data, dict):
                self.errors.append(
                    f"{label}: {key}: must be a mapping, got {describe(section_data)}"
                )
            else:
                self._add_section(key, section_data)

    def _add_section(self, section: str, data: dict[Any, Any]) -> None:
        label = self.file_label
        fields = [f.name for f in attrs.fields(SECTIONS[section])]
        for key, value in data.items():
            if not isinstance(key, str):
                self.errors.append(f"{label}: {section}.{key!r}: keys must be strings")
            elif key not in fields:
                self.errors.append(f"{label}: {section}.{key}: unknown key{_suggest(key, fields)}")
            else:
                self.set(section, key, value, label)

    def add_env(self, environ: Mapping[str, str]) -> None:
        for name, (section, field) in LEGACY_ENV.items():
            value = environ.get(name)
            if value:
                self.set(section, field, _EnvStr(value), f"env {name}")
        for name in sorted(environ):
            match = _GENERIC_ENV_RE.match(name)
            value = environ[name]
            if match is None or not value:
                continue
            section, field = match.group(1).lower(), match.group(2).lower()
            if section not in SECTIONS:
                self.errors.append(
                    f"env {name}: unknown section {section!r}{_suggest(section, list(SECTIONS))}"
                )
                continue
            fields = [f.name for f in attrs.fields(SECTIONS[section])]
            if field not in fields:
                self.errors.append(
                    f"env {name}: unknown setting {section}.{field}{_suggest(field, fields)}"
                )
                continue
            self.set(section, field, _EnvStr(value), f"env {name}")

    # -- structure and validate

    def build(self) -> Config | None:
        sections: dict[str, Any] = {}
        for section, cls in SECTIONS.items():
            try:
                sections[section] = CONVERTER.structure(self.values[section], cls)
            except (ClassValidationError, IterableValidationError) as group:
                self._report(section, group)
        state_dir = Config.__attrs_attrs__.state_dir.default
        if "state_dir" in self.values[""]:
            try:
                state_dir = CONVERTER.structure(self.values[""]["state_dir"], str)
            except _Invalid as exc:
                self.error("", "state_dir", str(exc))
            else:
                problem = _CHECKS[("", "state_dir")](state_dir)
                if problem is not None:
                    self.error("", "state_dir", problem)
        for section, obj in list(sections.items()):
            sections[section] = self._validate(section, obj)
        if "matrix" in sections:
            self._check_login(sections["matrix"])
        if self.errors:
            return None
        return Config(**sections, state_dir=state_dir)

    def _report(self, section: str, group: Exception) -> None:
        for line in cattrs.transform_error(group, path=section, format_exception=_format_exception):
            message, _, path = line.rpartition(" @ ")
            field = path[len(section) + 1 :].split("[")[0].split(".")[0]
            if message == _REQUIRED:
                message = (
                    f"is required: set {env_name(section, field)} "
                    f"or {_dotted(section, field)} in the YAML config"
                )
            if field:
                self.error(section, field, message)
            else:
                self.errors.append(f"{self.file_label or 'environment'}: {section}: {message}")

    def _validate(self, section: str, obj: Any) -> Any:
        for field in attrs.fields(type(obj)):
            check = _CHECKS.get((section, field.name))
            if check is None:
                continue
            problem = check(getattr(obj, field.name))
            if problem is not None:
                self.error(section, field.name, problem)
        if section == "streaming" and obj.min_edit_interval_s > obj.max_edit_interval_s:
            self.error(
                section,
                "min_edit_interval_s",
                f"must not exceed streaming.max_edit_interval_s ({obj.max_edit_interval_s!r}),"
                f" got {obj.min_edit_interval_s!r}",
            )
        if section == "agents" and obj.total_timeout_s < obj.first_text_timeout_s:
            self.error(
                section,
                "total_timeout_s",
                f"must be at least agents.first_text_timeout_s ({obj.first_text_timeout_s!r}),"
                f" got {obj.total_timeout_s!r}",
            )
        # Normalise case-insensitive choices and trailing slashes.
        if section == "bot":
            obj = attrs.evolve(obj, locale=obj.locale.lower())
        elif section == "log":
            obj = attrs.evolve(obj, format=obj.format.lower(), level=obj.level.lower())
        elif section == "matrix" and obj.homeserver.endswith("/"):
            obj = attrs.evolve(obj, homeserver=obj.homeserver.rstrip("/"))
        return obj

    def _check_login(self, matrix: MatrixConfig) -> None:
        if matrix.password is not None and matrix.access_token is not None:
            self.error(
                "matrix",
                "access_token",
                "set either matrix.password or matrix.access_token, not both"
                f" (password from {self.origin('matrix', 'password')})",
            )
        elif matrix.password is None and matrix.access_token is None:
            self.errors.append(
                f"{self.file_label or 'environment'}: matrix.password/matrix.access_token:"
                " one is required: set MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN"
                " (or matrix.password / matrix.access_token in the YAML config)"
            )


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration.

    Args:
        path: the YAML file; when None, ``SURFACES_CONFIG`` from ``environ`` (optional:
            without either, the environment alone configures the bot).
        environ: the environment (``os.environ`` when None).

    Raises:
        ConfigError: with one line per problem, each naming its source and field.
    """
    if environ is None:
        environ = os.environ
    if path is None:
        path = environ.get("SURFACES_CONFIG") or None
    loader = _Loader(file_label=path)
    if path is not None:
        try:
            loader.add_yaml(read_yaml(path))
        except _YamlProblem as exc:
            raise ConfigError([f"{path}: {exc}"])
    loader.add_env(environ)
    config = loader.build()
    if config is None:
        raise ConfigError(loader.errors)
    return config
