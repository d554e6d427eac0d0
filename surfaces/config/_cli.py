"""Loading for commands: print configuration problems and exit 2, never a traceback.

Every ``surfaces`` command that reads the configuration uses these, so a bad config
looks the same everywhere: a header, then one problem per line on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from surfaces.config._load import load_config
from surfaces.config._model import Config, ConfigError
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


def registry_for(config: Config) -> AgentRegistry:
    """The registry the config points at (or the single default agent)."""
    return load_registry(
        config.agents.registry_path,
        default_base_url=config.agents.default_base_url,
        workspace_dir=config.agents.workspace_dir,
    )


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


def load_registry_or_exit(config: Config, *, prog: str = "surfaces") -> AgentRegistry:
    """``load_registry`` from the config's agent settings; exit 2 on a problem."""
    try:
        return registry_for(config)
    except ConfigError as error:
        print_config_error(error, prog=prog)
        raise SystemExit(EXIT_CONFIG)
