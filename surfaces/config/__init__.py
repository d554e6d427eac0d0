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

from surfaces.config._cli import (
    EXIT_CONFIG,
    load_config_and_registry,
    load_config_and_registry_or_exit,
    load_config_or_exit,
    load_registry_or_exit,
    print_config_error,
    registry_for,
)
from surfaces.config._load import LEGACY_ENV, env_name, load_config
from surfaces.config._model import (
    SECTIONS,
    AgentsConfig,
    BotConfig,
    BudgetConfig,
    Config,
    ConfigError,
    ContextConfig,
    LogConfig,
    MatrixConfig,
    OpsConfig,
    PresenceConfig,
    Problem,
    Secret,
    StreamingConfig,
    UsageConfig,
)
from surfaces.config._registry import (
    AGENT_URL_SCHEMES,
    NO_BUDGET,
    AgentRegistry,
    AgentSpec,
    RegistryError,
    load_registry,
)
from surfaces.config._values import check_url, describe, is_allowed, is_user_id, redact_url
from surfaces.config._yaml import YamlProblem, read_yaml

__all__ = [
    "AGENT_URL_SCHEMES",
    "EXIT_CONFIG",
    "LEGACY_ENV",
    "NO_BUDGET",
    "SECTIONS",
    "AgentRegistry",
    "AgentSpec",
    "AgentsConfig",
    "BotConfig",
    "BudgetConfig",
    "Config",
    "ConfigError",
    "ContextConfig",
    "LogConfig",
    "MatrixConfig",
    "OpsConfig",
    "PresenceConfig",
    "Problem",
    "RegistryError",
    "Secret",
    "StreamingConfig",
    "UsageConfig",
    "YamlProblem",
    "check_url",
    "describe",
    "env_name",
    "is_allowed",
    "is_user_id",
    "load_config",
    "load_config_and_registry",
    "load_config_and_registry_or_exit",
    "load_config_or_exit",
    "load_registry",
    "load_registry_or_exit",
    "print_config_error",
    "read_yaml",
    "redact_url",
    "registry_for",
]
