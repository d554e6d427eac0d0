"""Loading: collect values with their sources (YAML, then environment), structure, check.

Every problem is collected, never the first one only: each field is structured and
checked on its own, so a missing ``matrix.homeserver`` does not hide a malformed
``matrix.user_id`` next to it, and a YAML file that does not parse still lets the
environment be checked.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from surfaces.config._checks import CHECKS
from surfaces.config._convert import CONVERTER, EnvStr, Invalid
from surfaces.config._model import (
    SECTIONS,
    TOP_LEVEL_FIELDS,
    Config,
    ConfigError,
    MatrixConfig,
    Problem,
)
from surfaces.config._values import describe
from surfaces.config._yaml import YamlProblem, read_yaml

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
#: ``SURFACES_*`` names with a meaning of their own, never taken for a setting's typo:
#: the YAML file's path, and the virtualenv of ``./dev``.
OTHER_ENV = frozenset({"SURFACES_CONFIG", "SURFACES_VENV"})
_GENERIC_ENV_RE = re.compile(r"^SURFACES_([A-Z0-9_]+?)__([A-Z0-9_]+)$")
_UNDERSCORES_RE = re.compile(r"_+")
# A field that failed to structure or check (already reported).
_INVALID: Any = object()


def env_name(section: str, field: str) -> str:
    """The environment variable for a field (the legacy name where there is one)."""
    for name, target in LEGACY_ENV.items():
        if target == (section, field):
            return name
    return f"SURFACES_{section.upper()}__{field.upper()}"


def _setting_names() -> dict[str, str]:
    """Every environment name of a setting, keyed by its near-miss form."""
    names = [*LEGACY_ENV]
    for section, cls in SECTIONS.items():
        names.extend(f"SURFACES_{section.upper()}__{f.name.upper()}" for f in attrs.fields(cls))
    return {_near_miss_form(name): name for name in names}


def _near_miss_form(name: str) -> str:
    # SURFACES_BOT_LOCALE, SURFACES_BOT___LOCALE and surfaces_bot__locale all
    # become SURFACES_BOT_LOCALE, as SURFACES_BOT__LOCALE does.
    return _UNDERSCORES_RE.sub("_", name.upper())


_SETTING_NAMES = _setting_names()


def _dotted(section: str, field: str) -> str:
    return f"{section}.{field}" if section else field


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(options)})"


def _default(field: attrs.Attribute) -> Any:
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # attrs.Factory is a class
        return default.factory()
    return default


@attrs.define
class _Loader:
    """Collects values with their sources, then structures and checks them."""

    file_label: str | None
    values: dict[str, dict[str, Any]] = attrs.Factory(lambda: {s: {} for s in [*SECTIONS, ""]})
    origins: dict[tuple[str, str], str] = attrs.Factory(dict)
    problems: list[Problem] = attrs.Factory(list)
    #: The YAML file did not parse: its fields are unknown, so "is required" is not said.
    yaml_failed: bool = False
    #: The sections that structured and passed their checks (the registry needs agents).
    sections: dict[str, Any] = attrs.Factory(dict)
    #: The result of ``build``: None when there is any problem.
    config: Config | None = None

    @property
    def label(self) -> str:
        return self.file_label or "environment"

    def origin(self, section: str, field: str) -> str:
        return self.origins.get((section, field)) or self.label

    def error(self, section: str, field: str, message: str) -> None:
        self.problems.append(Problem(self.origin(section, field), _dotted(section, field), message))

    def set(self, section: str, field: str, value: Any, origin: str) -> None:
        self.values[section][field] = value
        self.origins[(section, field)] = origin

    # -- sources

    def add_yaml(self, data: Any) -> None:
        label = self.label
        if data is None:
            return
        if not isinstance(data, dict):
            self.problems.append(
                Problem(label, None, f"the top level must be a mapping, got {describe(data)}")
            )
            return
        top_keys = [*SECTIONS, *TOP_LEVEL_FIELDS]
        for key, section_data in data.items():
            if not isinstance(key, str):
                self.problems.append(Problem(label, repr(key), "keys must be strings"))
            elif key in TOP_LEVEL_FIELDS:
                self.set("", key, section_data, label)
            elif key not in SECTIONS:
                self.problems.append(Problem(label, key, f"unknown key{_suggest(key, top_keys)}"))
            elif section_data is None:
                continue
            elif not isinstance(section_data, dict):
                self.problems.append(
                    Problem(label, key, f"must be a mapping, got {describe(section_data)}")
                )
            else:
                self._add_section(key, section_data)

    def _add_section(self, section: str, data: dict[Any, Any]) -> None:
        label = self.label
        fields = [f.name for f in attrs.fields(SECTIONS[section])]
        for key, value in data.items():
            if not isinstance(key, str):
                self.problems.append(Problem(label, f"{section}.{key!r}", "keys must be strings"))
            elif key not in fields:
                self.problems.append(
                    Problem(label, f"{section}.{key}", f"unknown key{_suggest(key, fields)}")
                )
            else:
                self.set(section, key, value, label)

    def add_env(self, environ: Mapping[str, str]) -> None:
        for name, (section, field) in LEGACY_ENV.items():
            value = environ.get(name)
            if value:
                self.set(section, field, EnvStr(value), f"env {name}")
        for name in sorted(environ):
            value = environ[name]
            if not value or name in LEGACY_ENV or name in OTHER_ENV:
                continue
            match = _GENERIC_ENV_RE.match(name)
            if match is None:
                self._near_miss(name)
                continue
            section, field = match.group(1).lower(), match.group(2).lower()
            cls = SECTIONS.get(section)
            fields = [f.name for f in attrs.fields(cls)] if cls is not None else []
            if field in fields:
                self.set(section, field, EnvStr(value), f"env {name}")
            elif self._near_miss(name):
                continue
            elif section not in SECTIONS:
                hint = _suggest(section, list(SECTIONS))
                self.problems.append(
                    Problem(f"env {name}", None, f"unknown section {section!r}{hint}")
                )
            else:
                hint = _suggest(field, fields)
                self.problems.append(
                    Problem(f"env {name}", None, f"unknown setting {section}.{field}{hint}")
                )

    def _near_miss(self, name: str) -> bool:
        """Report a misspelt setting name (one underscore, lower case); True if it was.

        Other names are left alone: the environment holds plenty that is not ours.
        """
        meant = _SETTING_NAMES.get(_near_miss_form(name))
        if meant is None or meant == name:
            return False
        self.problems.append(Problem(f"env {name}", None, f"not a setting: did you mean {meant}?"))
        return True

    # -- structure and check

    def build(self) -> Config | None:
        for section, cls in SECTIONS.items():
            obj = self._build_section(section, cls)
            if obj is not None:
                self.sections[section] = obj
        state_dir = self._field("", attrs.fields(Config).state_dir)
        self._check_login()
        if self.problems or state_dir is _INVALID:
            return None
        if state_dir is attrs.NOTHING:
            state_dir = attrs.fields(Config).state_dir.default
        return Config(**self.sections, state_dir=state_dir)

    def _field(self, section: str, field: attrs.Attribute) -> Any:
        """The structured and checked value of one field; ``attrs.NOTHING`` when it is
        not set; ``_INVALID`` (reported) when it is wrong or required and missing."""
        raw = self.values[section].get(field.name, attrs.NOTHING)
        if raw is attrs.NOTHING:
            if field.default is not attrs.NOTHING:
                return attrs.NOTHING
            if not self.yaml_failed:
                self.error(
                    section,
                    field.name,
                    f"is required: set {env_name(section, field.name)} "
                    f"or {_dotted(section, field.name)} in the YAML config",
                )
            return _INVALID
        try:
            value = CONVERTER.structure(raw, field.type)
        except Invalid as exc:
            self.error(section, field.name, str(exc))
            return _INVALID
        check = CHECKS.get((section, field.name))
        problem = None if check is None else check(value)
        if problem is not None:
            self.error(section, field.name, problem)
            return _INVALID
        return value

    def _build_section(self, section: str, cls: type) -> Any | None:
        given: dict[str, Any] = {}
        effective: dict[str, Any] = {}  # given or default; invalid fields left out
        ok = True
        for field in attrs.fields(cls):
            value = self._field(section, field)
            if value is _INVALID:
                ok = False
            elif value is attrs.NOTHING:
                effective[field.name] = _default(field)
            else:
                given[field.name] = effective[field.name] = value
        self._cross_check(section, effective)
        if not ok:
            return None
        return _normalise(section, cls(**given))

    def _cross_check(self, section: str, values: dict[str, Any]) -> None:
        if section == "streaming":
            low, high = values.get("min_edit_interval_s"), values.get("max_edit_interval_s")
            if low is not None and high is not None and low > high:
                self.error(
                    section,
                    "min_edit_interval_s",
                    f"must not exceed streaming.max_edit_interval_s ({high!r}), got {low!r}",
                )
        if section == "agents":
            total, first = values.get("total_timeout_s"), values.get("first_text_timeout_s")
            if total is not None and first is not None and total < first:
                self.error(
                    section,
                    "total_timeout_s",
                    f"must be at least agents.first_text_timeout_s ({first!r}), got {total!r}",
                )
        if section == "presence":
            interval, jitter = values.get("probe_interval_s"), values.get("probe_jitter_s")
            if interval is not None and jitter is not None and jitter >= interval:
                self.error(
                    section,
                    "probe_jitter_s",
                    f"must be less than presence.probe_interval_s ({interval!r}), got {jitter!r}",
                )

    def _check_login(self) -> None:
        given = self.values["matrix"]
        password, token = given.get("password"), given.get("access_token")
        matrix: MatrixConfig | None = self.sections.get("matrix")
        if matrix is not None:
            password, token = matrix.password, matrix.access_token
        if password is not None and token is not None:
            self.error(
                "matrix",
                "access_token",
                "set either matrix.password or matrix.access_token, not both"
                f" (password from {self.origin('matrix', 'password')})",
            )
        elif password is None and token is None and not self.yaml_failed:
            self.problems.append(
                Problem(
                    self.label,
                    "matrix.password/matrix.access_token",
                    "one is required: set MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN"
                    " (or matrix.password / matrix.access_token in the YAML config)",
                )
            )


def _normalise(section: str, obj: Any) -> Any:
    """Case-insensitive choices in lower case, the homeserver without a trailing slash."""
    if section == "bot":
        return attrs.evolve(
            obj, locale=obj.locale.lower(), thread_context=obj.thread_context.lower()
        )
    if section == "log":
        return attrs.evolve(
            obj,
            format=obj.format.lower(),
            level=obj.level.lower(),
            levels={name: level.lower() for name, level in obj.levels.items()},
        )
    if section == "matrix" and obj.homeserver.endswith("/"):
        return attrs.evolve(obj, homeserver=obj.homeserver.rstrip("/"))
    return obj


def collect(path: str | None, environ: Mapping[str, str] | None = None) -> _Loader:
    """Read every source and check every field; the loader holds the results.

    ``load_config`` and ``load_config_and_registry`` are the public ways in.
    """
    if environ is None:
        environ = os.environ
    if path is None:
        path = environ.get("SURFACES_CONFIG") or None
    loader = _Loader(file_label=path)
    if path is not None:
        try:
            loader.add_yaml(read_yaml(path))
        except YamlProblem as exc:
            loader.yaml_failed = True
            loader.problems.append(Problem(path, None, exc.message, line=exc.line))
    loader.add_env(environ)
    loader.config = loader.build()
    return loader


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration.

    Args:
        path: the YAML file; when None, ``SURFACES_CONFIG`` from ``environ`` (optional:
            without either, the environment alone configures the bot).
        environ: the environment (``os.environ`` when None).

    Raises:
        ConfigError: with every problem found, each naming its source and field.
    """
    loader = collect(path, environ)
    if loader.config is None:
        raise ConfigError(loader.problems)
    return loader.config
