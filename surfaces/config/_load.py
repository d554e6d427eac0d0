"""Loading: collect values with their sources (YAML, then environment), structure, check."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError

from surfaces.config._checks import CHECKS
from surfaces.config._convert import CONVERTER, REQUIRED, EnvStr, Invalid, format_exception
from surfaces.config._model import SECTIONS, TOP_LEVEL_FIELDS, Config, ConfigError, MatrixConfig
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
_GENERIC_ENV_RE = re.compile(r"^SURFACES_([A-Z0-9_]+?)__([A-Z0-9_]+)$")


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
        top_keys = [*SECTIONS, *TOP_LEVEL_FIELDS]
        for key, section_data in data.items():
            if not isinstance(key, str):
                self.errors.append(f"{label}: {key!r}: keys must be strings")
            elif key in TOP_LEVEL_FIELDS:
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
                self.set(section, field, EnvStr(value), f"env {name}")
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
            self.set(section, field, EnvStr(value), f"env {name}")

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
            except Invalid as exc:
                self.error("", "state_dir", str(exc))
            else:
                problem = CHECKS[("", "state_dir")](state_dir)
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
        for line in cattrs.transform_error(group, path=section, format_exception=format_exception):
            message, _, path = line.rpartition(" @ ")
            field = path[len(section) + 1 :].split("[")[0].split(".")[0]
            if message == REQUIRED:
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
            check = CHECKS.get((section, field.name))
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
            obj = attrs.evolve(
                obj, locale=obj.locale.lower(), thread_context=obj.thread_context.lower()
            )
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
        except YamlProblem as exc:
            raise ConfigError([f"{path}: {exc}"])
    loader.add_env(environ)
    config = loader.build()
    if config is None:
        raise ConfigError(loader.errors)
    return config
