"""Loading for commands: print configuration problems and exit 2, never a traceback.

Every ``surfaces`` command that reads the configuration uses these, so a bad config
looks the same everywhere: a header, then one problem per line on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from surfaces.config._load import collect, load_config
from surfaces.config._model import AgentsConfig, Config, ConfigError
from surfaces.config._registry import AgentRegistry, load_registry

#: The exit code of every configuration problem (documented in docs/operations.md).
EXIT_CONFIG = 2


def print_config_error(error: ConfigError, *, prog: str = "surfaces") -> None:
    """Print a configuration error: a header, then one problem per line, to stderr."""
    count = len(error.lines)
    noun = "problem" if count == 1 else "problems"
    print(f"{prog}: invalid configuration ({count} {noun}):", file=sys.stderr)
    for line in error.lines:
        print(f"  {line}", file=sys.stderr)


def registry_for(config: Config | AgentsConfig) -> AgentRegistry:
    """The registry the config points at (or the single default agent)."""
    agents = config.agents if isinstance(config, Config) else config
    return load_registry(
        agents.registry_path,
        default_base_url=agents.default_base_url,
        workspace_dir=agents.workspace_dir,
    )


def load_config_and_registry(
    path: str | None, environ: Mapping[str, str] | None = None
) -> tuple[Config, AgentRegistry]:
    """``load_config`` and ``registry_for`` in one, reporting the problems of both.

    The registry is checked even when other sections of the configuration have
    problems (it needs only a valid ``agents`` section), so an operator sees every
    problem in one run; not when the YAML file does not parse (its ``agents`` settings
    are unknown).

    Raises:
        ConfigError: every problem of the configuration and the registry.
    """
    loader = collect(path, environ)
    problems = list(loader.problems)
    registry: AgentRegistry | None = None
    agents = loader.sections.get("agents")
    if agents is not None and not loader.yaml_failed:
        try:
            registry = registry_for(agents)
        except ConfigError as error:
            problems.extend(error.problems)
    if problems or loader.config is None or registry is None:
        raise ConfigError(problems)
    return loader.config, registry


def load_config_or_exit(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    prog: str = "surfaces",
) -> Config:
    """``load_config`` for commands: on a problem print it and exit with code 2."""
    try:
        return load_config(path, os.environ if environ is None else environ)
    except ConfigError as error:
        print_config_error(error, prog=prog)
        raise SystemExit(EXIT_CONFIG)


def load_config_and_registry_or_exit(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    prog: str = "surfaces",
) -> tuple[Config, AgentRegistry]:
    """``load_config_and_registry`` for commands: on problems print them, exit 2."""
    try:
        return load_config_and_registry(path, os.environ if environ is None else environ)
    except ConfigError as error:
        print_config_error(error, prog=prog)
        raise SystemExit(EXIT_CONFIG)


def load_registry_or_exit(config: Config, *, prog: str = "surfaces") -> AgentRegistry:
    """``load_registry`` from the config's agent settings; exit 2 on a problem."""
    try:
        return registry_for(config)
    except ConfigError as error:
        print_config_error(error, prog=prog)
        raise SystemExit(EXIT_CONFIG)
