"""Config loading: defaults, YAML + environment precedence, strict types, errors."""

from pathlib import Path

import attrs
import pytest

from surfaces.config import (
    AgentsConfig,
    BotConfig,
    Config,
    ConfigError,
    LogConfig,
    MatrixConfig,
    OpsConfig,
    Secret,
    StreamingConfig,
    UsageConfig,
    is_allowed,
    load_config,
    load_config_and_registry,
)

REPO = Path(__file__).resolve().parents[3]

BASE_ENV = {
    "MATRIX_HOMESERVER": "https://matrix.example.org",
    "MATRIX_USER_ID": "@bot:example.org",
    "MATRIX_ACCESS_TOKEN": "syt_secret_token_value",
}


def write(tmp_path: Path, text: str, name: str = "surfaces.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def errors_of(path: str | None, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ)
    return info.value.lines


def test_defaults_from_environment_alone() -> None:
    config = load_config(None, BASE_ENV)
    assert config.matrix == MatrixConfig(
        homeserver="https://matrix.example.org",
        user_id="@bot:example.org",
        access_token=Secret("syt_secret_token_value"),
    )
    assert config.matrix.device_id == "SURFACES"
    assert config.matrix.sync_long_poll_s == 30.0
    assert config.agents == AgentsConfig()
    assert config.agents.registry_path is None
    assert config.agents.default_base_url is None
    assert config.agents.workspace_dir == "/agents"
    assert (config.agents.connect_timeout_s, config.agents.total_timeout_s) == (10.0, 900.0)
    assert config.agents.retries == 2
    assert config.agents.max_frame_bytes == 1_048_576
    assert config.bot == BotConfig()
    assert config.bot.brand == "Lambda"
    assert config.bot.locale == "ru"
    assert config.bot.allowed_users == ()
    assert config.streaming == StreamingConfig()
    assert config.log == LogConfig(format="console", level="info")
    assert config.ops == OpsConfig(enabled=False, host="127.0.0.1", port=9464)
    assert config.state_dir == "./state"


def test_every_legacy_environment_name() -> None:
    env = {
        "MATRIX_HOMESERVER": "http://localhost:8008",
        "MATRIX_USER_ID": "@bot:localhost",
        "MATRIX_PASSWORD": "hunter2",
        "MATRIX_DEVICE_ID": "DEV1",
        "MATRIX_AGENT_REGISTRY_PATH": "/etc/agents.yaml",
        "AGENT_BASE_URL": "ws://agent:7000/",
        "SURFACES_WORKSPACE_DIR": "/data/agents",
        "SURFACES_STATE_DIR": "/data/state",
    }
    config = load_config(None, env)
    assert config.matrix.homeserver == "http://localhost:8008"
    assert config.matrix.user_id == "@bot:localhost"
    assert config.matrix.password == Secret("hunter2")
    assert config.matrix.access_token is None
    assert config.matrix.device_id == "DEV1"
    assert config.agents.registry_path == "/etc/agents.yaml"
    assert config.agents.default_base_url == "ws://agent:7000/"
    assert config.agents.workspace_dir == "/data/agents"
    assert config.state_dir == "/data/state"
    # the access token name is covered by BASE_ENV
    assert load_config(None, BASE_ENV).matrix.access_token.reveal() == "syt_secret_token_value"


def test_surfaces_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'bot:\n  brand: "Acme"\n')
    config = load_config(None, {**BASE_ENV, "SURFACES_CONFIG": path})
    assert config.bot.brand == "Acme"
    # an explicit path wins over SURFACES_CONFIG
    other = write(tmp_path, 'bot:\n  brand: "Other"\n', "other.yaml")
    assert load_config(other, {**BASE_ENV, "SURFACES_CONFIG": path}).bot.brand == "Other"


def test_generic_environment_names_for_every_type() -> None:
    env = {
        **BASE_ENV,
        "SURFACES_BOT__LOCALE": "en",
        "SURFACES_BOT__ALLOWED_USERS": "@a:x, @*:y,",
        "SURFACES_BOT__ROOM_QUEUE_SIZE": "7",
        "SURFACES_OPS__ENABLED": "true",
        "SURFACES_OPS__PORT": "0",
        "SURFACES_STREAMING__MIN_EDIT_INTERVAL_S": "1.5",
        "SURFACES_LOG__FORMAT": "json",
        "SURFACES_LOG__LEVEL": "DEBUG",
        "SURFACES_AGENTS__TOTAL_TIMEOUT_S": "600",
    }
    config = load_config(None, env)
    assert config.bot.locale == "en"
    assert config.bot.allowed_users == ("@a:x", "@*:y")
    assert config.bot.room_queue_size == 7
    assert config.ops.enabled is True
    assert config.ops.port == 0
    assert config.streaming.min_edit_interval_s == 1.5
    assert config.log == LogConfig(format="json", level="debug")
    assert config.agents.total_timeout_s == 600.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("no", False)],
)
def test_env_bool_words(text: str, expected: bool) -> None:
    assert load_config(None, {**BASE_ENV, "SURFACES_OPS__ENABLED": text}).ops.enabled is expected


def test_precedence_defaults_yaml_legacy_env_generic_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
matrix:
  homeserver: "https://from-yaml.example"
  user_id: "@yaml:example.org"
  device_id: "YAMLDEV"
bot:
  brand: "FromYaml"
  locale: "en"
""",
    )
    env = {
        "MATRIX_ACCESS_TOKEN": "tok",
        "MATRIX_DEVICE_ID": "ENVDEV",
        "SURFACES_MATRIX__DEVICE_ID": "GENERICDEV",
        "SURFACES_BOT__BRAND": "FromEnv",
    }
    config = load_config(path, env)
    assert config.matrix.homeserver == "https://from-yaml.example"  # YAML over default
    assert config.bot.locale == "en"
    assert config.bot.brand == "FromEnv"  # env over YAML
    assert config.matrix.device_id == "GENERICDEV"  # generic env over legacy env
    assert config.bot.room_queue_size == 5  # default kept


def test_empty_environment_values_count_as_unset(tmp_path: Path) -> None:
    path = write(tmp_path, 'matrix:\n  device_id: "YAMLDEV"\n')
    env = {**BASE_ENV, "MATRIX_PASSWORD": "", "MATRIX_DEVICE_ID": "", "SURFACES_BOT__LOCALE": ""}
    config = load_config(path, env)
    assert config.matrix.password is None
    assert config.matrix.device_id == "YAMLDEV"
    assert config.bot.locale == "ru"


def test_full_yaml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
matrix:
  homeserver: "https://hs.example/"
  user_id: "@bot:hs.example"
  password: "pw"
  sync_long_poll_s: 10
agents:
  default_base_url: "http://agent:7000"
  retries: 0
bot:
  allowed_users: ["@alice:example.org", "@*:hs.example"]
ops:
  enabled: true
  port: 9000
log:
  level: "warning"
state_dir: "/var/lib/surfaces"
""",
    )
    config = load_config(path, {})
    assert config.matrix.homeserver == "https://hs.example"  # trailing slash dropped
    assert config.matrix.password == Secret("pw")
    assert config.matrix.sync_long_poll_s == 10.0
    assert isinstance(config.matrix.sync_long_poll_s, float)
    assert config.agents.retries == 0
    assert config.bot.allowed_users == ("@alice:example.org", "@*:hs.example")
    assert config.ops == OpsConfig(enabled=True, port=9000)
    assert config.log.level == "warning"
    assert config.state_dir == "/var/lib/surfaces"


def test_empty_yaml_file_and_empty_sections(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), BASE_ENV).bot == BotConfig()
    assert load_config(write(tmp_path, "bot:\nops:\n"), BASE_ENV).ops == OpsConfig()


# --------------------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ('ops:\n  enabled: "true"\n', "ops.enabled: must be true or false, got str 'true'"),
        ("ops:\n  enabled: 1\n", "ops.enabled: must be true or false, got int 1"),
        ("ops:\n  port: true\n", "ops.port: must be an integer, got bool True"),
        ('ops:\n  port: "9000"\n', "ops.port: must be an integer, got str '9000'"),
        ("ops:\n  port: 90.5\n", "ops.port: must be an integer, got float 90.5"),
        (
            "bot:\n  shutdown_grace_s: yes\n",
            "bot.shutdown_grace_s: must be a number, got bool True",
        ),
        ('bot:\n  shutdown_grace_s: "5"\n', "bot.shutdown_grace_s: must be a number, got str '5'"),
        ("bot:\n  shutdown_grace_s: .inf\n", "bot.shutdown_grace_s: must be a finite number"),
        # YAML 1.1: an unquoted `no` is a boolean, not the text "no"
        ("bot:\n  locale: no\n", "bot.locale: must be a string, got bool False (quote the value"),
        ("bot:\n  brand: 12:30\n", "bot.brand: must be a string, got int 750"),
        ('bot:\n  allowed_users: "@a:x"\n', "bot.allowed_users: must be a list of strings"),
        ('bot:\n  allowed_users: ["@a:x", 3]\n', "bot.allowed_users: item 1 must be a string"),
        ("bot: [1, 2]\n", "bot: must be a mapping, got list [1, 2]"),
        ("- 1\n", "the top level must be a mapping, got list [1]"),
        ("state_dir: 5\n", "state_dir: must be a string, got int 5"),
        ("bot:\n  brand: null\n", "bot.brand: must be a string, got null (remove the key"),
    ],
)
def test_strict_yaml_types(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = write(tmp_path, yaml_text)
    lines = errors_of(path, BASE_ENV)
    assert any(line.startswith(f"{path}: ") and expected in line for line in lines), lines


def test_secret_type_error_never_echoes_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "matrix:\n  password: 123456789\n")
    (line,) = errors_of(path, {"MATRIX_HOMESERVER": "http://h", "MATRIX_USER_ID": "@b:h"})
    assert line.startswith(f"{path}: matrix.password: must be a string, got int")
    assert "123456789" not in line


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "SURFACES_OPS__ENABLED",
            "maybe",
            "ops.enabled: must be true/false/1/0/yes/no, got 'maybe'",
        ),
        ("SURFACES_OPS__PORT", "12ab", "ops.port: must be an integer, got '12ab'"),
        ("SURFACES_OPS__PORT", "1.5", "ops.port: must be an integer, got '1.5'"),
        ("SURFACES_BOT__SHUTDOWN_GRACE_S", "soon", "bot.shutdown_grace_s: must be a number"),
        ("SURFACES_BOT__SHUTDOWN_GRACE_S", "nan", "bot.shutdown_grace_s: must be a finite number"),
    ],
)
def test_strict_env_parsing(name: str, value: str, expected: str) -> None:
    lines = errors_of(None, {**BASE_ENV, name: value})
    assert lines == [f"env {name}: {expected}"] or any(
        line.startswith(f"env {name}: {expected}") for line in lines
    ), lines


def test_unknown_keys_are_errors_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'bot:\n  locael: "en"\nopps:\n  enabled: true\n')
    lines = errors_of(path, BASE_ENV)
    assert f"{path}: bot.locael: unknown key (did you mean 'locale'?)" in lines
    assert f"{path}: opps: unknown key (did you mean 'ops'?)" in lines


def test_unknown_generic_env_names_are_errors() -> None:
    lines = errors_of(None, {**BASE_ENV, "SURFACES_BOT__LOCAL": "en", "SURFACES_BOTS__X": "1"})
    assert "env SURFACES_BOT__LOCAL: unknown setting bot.local (did you mean 'locale'?)" in lines
    assert any(line.startswith("env SURFACES_BOTS__X: unknown section 'bots'") for line in lines)
    # variables without a double underscore are not settings and are left alone
    assert load_config(None, {**BASE_ENV, "SURFACES_SYNAPSE_BIN": "x"}).bot == BotConfig()


def test_bad_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'bot:\n  brand: "x"\n  locale: [unclosed\n')
    (line,) = errors_of(path, BASE_ENV)
    assert line.startswith(f"{path}: line ")
    assert "invalid YAML" in line


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, 'bot:\n  brand: "a"\n  brand: "b"\n')
    (line,) = errors_of(path, BASE_ENV)
    assert line.startswith(f"{path}: line 3, column 3: invalid YAML: duplicate key 'brand'")


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    assert errors_of(path, BASE_ENV) == [f"{path}: cannot read: No such file or directory"]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MATRIX_HOMESERVER", "foo", "matrix.homeserver: must be an http(s) URL, got 'foo'"),
        ("MATRIX_HOMESERVER", "ftp://h", "matrix.homeserver: must be an http(s) URL"),
        ("MATRIX_HOMESERVER", "https://", "matrix.homeserver: must be an http(s) URL"),
        ("MATRIX_USER_ID", "bob", "matrix.user_id: must look like @user:server, got 'bob'"),
        ("MATRIX_USER_ID", "@bob", "matrix.user_id: must look like @user:server"),
        ("MATRIX_USER_ID", "@bob:", "matrix.user_id: must look like @user:server"),
        ("MATRIX_DEVICE_ID", "A B", "matrix.device_id: must not contain whitespace"),
        ("AGENT_BASE_URL", "ftp://agent", "agents.default_base_url: scheme must be http, https"),
        ("AGENT_BASE_URL", "http://", "agents.default_base_url: must include a host"),
        ("AGENT_BASE_URL", "http://h:99999", "agents.default_base_url: is not a valid URL"),
        ("SURFACES_WORKSPACE_DIR", " ", "agents.workspace_dir: must not be empty"),
        ("SURFACES_STATE_DIR", " ", "state_dir: must not be empty"),
        ("SURFACES_BOT__LOCALE", "de", "bot.locale: must be one of en, ru, got 'de'"),
        ("SURFACES_BOT__ROOM_QUEUE_SIZE", "0", "bot.room_queue_size: must be at least 1"),
        ("SURFACES_BOT__SHUTDOWN_GRACE_S", "-1", "bot.shutdown_grace_s: must be 0 or more"),
        ("SURFACES_MATRIX__SYNC_LONG_POLL_S", "0", "matrix.sync_long_poll_s: must be greater"),
        ("SURFACES_AGENTS__CONNECT_TIMEOUT_S", "-2", "agents.connect_timeout_s: must be greater"),
        ("SURFACES_AGENTS__RETRIES", "-1", "agents.retries: must be at least 0"),
        ("SURFACES_STREAMING__TYPING_LEASE_S", "0", "streaming.typing_lease_s: must be greater"),
        ("SURFACES_LOG__FORMAT", "xml", "log.format: must be one of console, json, got 'xml'"),
        ("SURFACES_LOG__LEVEL", "loud", "log.level: must be one of debug, info"),
        ("SURFACES_OPS__PORT", "70000", "ops.port: must be between 0 and 65535"),
        ("SURFACES_BOT__ALLOWED_USERS", "@a b:x", "bot.allowed_users: patterns must be non-empty"),
    ],
)
def test_validation_errors_name_source_and_field(name: str, value: str, expected: str) -> None:
    lines = errors_of(None, {**BASE_ENV, name: value})
    assert any(line.startswith(f"env {name}: {expected}") for line in lines), lines


def test_validation_errors_from_yaml_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'matrix:\n  homeserver: "foo"\nbot:\n  locale: "de"\n')
    env = {"MATRIX_USER_ID": "@b:x", "MATRIX_PASSWORD": "p"}
    lines = errors_of(path, env)
    assert lines == [
        f"{path}: matrix.homeserver: must be an http(s) URL, got 'foo'",
        f"{path}: bot.locale: must be one of en, ru, got 'de'",
    ]


def test_cross_field_checks() -> None:
    lines = errors_of(
        None,
        {
            **BASE_ENV,
            "SURFACES_STREAMING__MIN_EDIT_INTERVAL_S": "9",
            "SURFACES_AGENTS__TOTAL_TIMEOUT_S": "60",
        },
    )
    assert any(
        line.startswith("env SURFACES_STREAMING__MIN_EDIT_INTERVAL_S: streaming.min_edit_interval")
        for line in lines
    ), lines
    assert any("agents.total_timeout_s: must be at least agents.first_text" in x for x in lines)


def test_all_problems_reported_at_once() -> None:
    lines = errors_of(None, {"SURFACES_BOT__LOCALE": "de", "SURFACES_OPS__PORT": "x"})
    assert lines == [
        "environment: matrix.homeserver: is required: set MATRIX_HOMESERVER"
        " or matrix.homeserver in the YAML config",
        "environment: matrix.user_id: is required: set MATRIX_USER_ID"
        " or matrix.user_id in the YAML config",
        "env SURFACES_BOT__LOCALE: bot.locale: must be one of en, ru, got 'de'",
        "env SURFACES_OPS__PORT: ops.port: must be an integer, got 'x'",
        "environment: matrix.password/matrix.access_token: one is required: set"
        " MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN (or matrix.password /"
        " matrix.access_token in the YAML config)",
    ]


def test_a_missing_required_field_hides_nothing_next_to_it() -> None:
    # the homeserver is missing; the other matrix fields are still checked
    lines = errors_of(
        None,
        {
            "MATRIX_USER_ID": "bob",
            "MATRIX_DEVICE_ID": "has space",
            "MATRIX_ACCESS_TOKEN": "tok",
            "SURFACES_MATRIX__SYNC_LONG_POLL_S": "-1",
            "SURFACES_STREAMING__MIN_EDIT_INTERVAL_S": "9",  # > max (default 5)
            "SURFACES_STATE_DIR": " ",
        },
    )
    assert [line.split(": ")[1] for line in lines] == [
        "matrix.homeserver",
        "matrix.user_id",
        "matrix.device_id",
        "matrix.sync_long_poll_s",
        "streaming.min_edit_interval_s",
        "state_dir",
    ]


def test_broken_yaml_still_checks_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'matrix:\n  homeserver: "https://x\n')
    lines = errors_of(path, {"SURFACES_OPS__PORT": "x", "SURFACES_BOT_LOCALE": "en"})
    assert lines[0].startswith(f"{path}: line 2, column 15: invalid YAML")
    assert lines[1:] == [
        "env SURFACES_BOT_LOCALE: not a setting: did you mean SURFACES_BOT__LOCALE?",
        "env SURFACES_OPS__PORT: ops.port: must be an integer, got 'x'",
    ]  # and no "is required": those fields may be in the file that does not parse


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("SURFACES_BOT_LOCALE", "SURFACES_BOT__LOCALE"),
        ("SURFACES_OPS_ENABLED", "SURFACES_OPS__ENABLED"),
        ("SURFACES_STREAMING_IDLE_FLUSH_S", "SURFACES_STREAMING__IDLE_FLUSH_S"),
        ("SURFACES_BOT___LOCALE", "SURFACES_BOT__LOCALE"),
        ("surfaces_bot__locale", "SURFACES_BOT__LOCALE"),
        ("SURFACES_MATRIX_HOMESERVER", "SURFACES_MATRIX__HOMESERVER"),
        ("SURFACES_STATE__DIR", "SURFACES_STATE_DIR"),
        ("matrix_homeserver", "MATRIX_HOMESERVER"),
    ],
)
def test_near_misses_of_environment_names_name_the_right_spelling(name: str, meant: str) -> None:
    lines = errors_of(None, {**BASE_ENV, name: "en"})
    assert lines == [f"env {name}: not a setting: did you mean {meant}?"]


def test_other_surfaces_variables_are_left_alone() -> None:
    env = {
        **BASE_ENV,
        "SURFACES_CONFIG": "",
        "SURFACES_VENV": "/opt/venv",
        "SURFACES_STATE_DIR": "/var/lib/surfaces",
        "SURFACES_WORKSPACE_DIR": "/agents",
        "SURFACES_UID": "10001",  # a Docker build argument someone exported
        "SURFACES_E2E_SYNAPSE": "1",
        "SURFACES_BOT_LOCALE": "",  # empty counts as unset, near miss or not
    }
    assert load_config(None, env).state_dir == "/var/lib/surfaces"


def test_near_miss_forms_of_setting_names_are_unambiguous() -> None:
    from surfaces.config._load import _near_miss_form, _setting_names

    names = _setting_names()
    forms = [_near_miss_form(name) for name in names.values()]
    assert len(forms) == len(set(forms))


def test_logger_levels_from_yaml_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'log:\n  levels: {"httpx": "DEBUG", "matrix_client": "info"}\n')
    config = load_config(path, BASE_ENV)
    assert dict(config.log.levels) == {"httpx": "debug", "matrix_client": "info"}
    config = load_config(
        path, {**BASE_ENV, "SURFACES_LOG__LEVELS": "httpx=warning, trio-websocket=debug"}
    )
    assert dict(config.log.levels) == {"httpx": "warning", "trio-websocket": "debug"}
    assert load_config(None, BASE_ENV).log.levels == {}
    assert config.redacted()["log"]["levels"] == {"httpx": "warning", "trio-websocket": "debug"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("httpx", "log.levels: must be name=value pairs separated by commas, got 'httpx'"),
        ("httpx=loud", "log.levels: httpx: must be one of debug, info, warning, error"),
        ("bad name=debug", "log.levels: 'bad name': not a logger name"),
    ],
)
def test_bad_logger_levels(env: str, expected: str) -> None:
    (line,) = errors_of(None, {**BASE_ENV, "SURFACES_LOG__LEVELS": env})
    assert line.startswith(f"env SURFACES_LOG__LEVELS: {expected}"), line


def test_yaml_logger_levels_must_be_a_mapping_of_strings(tmp_path: Path) -> None:
    (line,) = errors_of(write(tmp_path, "log:\n  levels: [httpx]\n"), BASE_ENV)
    assert "log.levels: must be a mapping of names to values, got list" in line
    (line,) = errors_of(write(tmp_path, "log:\n  levels: {httpx: no}\n"), BASE_ENV)
    assert "keys and values must be strings, got bool False (quote the value" in line


@pytest.mark.parametrize(
    ("text", "line_no", "hint"),
    [
        # an unclosed quote swallows the next line; PyYAML notices on line 3
        ('matrix:\n  homeserver: "https://x\n  user_id: "@b:x"\n', 2, "closing quote"),
        # ... or the end of the file
        ('matrix:\n  homeserver: "https://x\n  user_id: x\nbot: {}\n', 2, "quoted scalar"),
        # a key without its colon runs into the next line
        ("matrix:\n  homeserver x\n  user_id: y\n", 2, "':' missing"),
        # an unclosed bracket
        ('bot:\n  allowed_users: ["@a:x"\n  locale: ru\nops: {}\n', 2, "flow sequence"),
        # wrong indentation is where it is
        ("matrix:\n  homeserver: x\n user_id: y\n", 3, "block mapping"),
        ("matrix:\n\thomeserver: x\n", 2, "indent with spaces"),
    ],
)
def test_yaml_syntax_errors_point_where_the_problem_starts(
    tmp_path: Path, text: str, line_no: int, hint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, BASE_ENV)
    (problem,) = info.value.problems
    assert problem.line == line_no
    assert str(problem).startswith(f"{path}: line {line_no}, column "), str(problem)
    assert hint in problem.message


def test_password_or_token_exactly_one(tmp_path: Path) -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != "MATRIX_ACCESS_TOKEN"}
    (line,) = errors_of(None, env)
    assert line.startswith("environment: matrix.password/matrix.access_token: one is required")
    assert "MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN" in line

    path = write(tmp_path, 'matrix:\n  password: "pw"\n')
    (line,) = errors_of(path, BASE_ENV)
    assert line == (
        "env MATRIX_ACCESS_TOKEN: matrix.access_token: set either matrix.password or"
        f" matrix.access_token, not both (password from {path})"
    )
    (line,) = errors_of(None, {**BASE_ENV, "SURFACES_MATRIX__ACCESS_TOKEN": "  "})
    assert line == "env SURFACES_MATRIX__ACCESS_TOKEN: matrix.access_token: must not be empty"


# --------------------------------------------------------------------------- secrets


def test_secret_masks_repr_and_str() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == str(secret) == "***"
    assert f"{secret}" == "***"
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2")
    assert secret != Secret("other")


def test_config_repr_and_redacted_hide_secrets() -> None:
    env = {
        **BASE_ENV,
        "MATRIX_HOMESERVER": "https://user:urlpass@matrix.example.org",
        "AGENT_BASE_URL": "http://agent:agentpass@agent:7000/",
    }
    config = load_config(None, env)
    for text in (repr(config), str(config.redacted())):
        assert "syt_secret_token_value" not in text
        assert "urlpass" not in text
        assert "agentpass" not in text
    redacted = config.redacted()
    assert redacted["matrix"]["access_token"] == "***"
    assert redacted["matrix"]["password"] is None
    assert redacted["matrix"]["homeserver"] == "https://user:***@matrix.example.org"
    assert redacted["agents"]["default_base_url"] == "http://agent:***@agent:7000/"
    assert redacted["bot"]["allowed_users"] == []
    assert redacted["state_dir"] == "./state"
    # the real values are still there for the code that needs them
    assert config.matrix.homeserver == "https://user:urlpass@matrix.example.org"


def test_config_is_frozen() -> None:
    config = load_config(None, BASE_ENV)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.bot = BotConfig()  # type: ignore[misc]


# --------------------------------------------------------------------------- access control


def test_allowed_patterns_default_to_own_server() -> None:
    config = load_config(None, BASE_ENV)
    assert config.allowed_patterns() == ("@*:example.org",)
    patterns = config.allowed_patterns()
    assert is_allowed("@alice:example.org", patterns)
    assert not is_allowed("@alice:example.com", patterns)
    assert not is_allowed("@alice:sub.example.org", patterns)
    assert not is_allowed("@alice:evil.org:example.org", patterns)  # malformed id
    assert not is_allowed("@Alice:EXAMPLE.ORG", patterns)  # case-sensitive


def test_allowed_patterns_escape_glob_characters_in_server_name() -> None:
    env = {**BASE_ENV, "MATRIX_USER_ID": "@bot:[::1]:8448"}
    config = load_config(None, env)
    (pattern,) = config.allowed_patterns()
    assert is_allowed("@u:[::1]:8448", (pattern,))
    assert not is_allowed("@u::8448", (pattern,))


def test_explicit_allowed_users() -> None:
    config = load_config(None, {**BASE_ENV, "SURFACES_BOT__ALLOWED_USERS": "@alice:x.org,@*:y.org"})
    patterns = config.allowed_patterns()
    assert patterns == ("@alice:x.org", "@*:y.org")
    assert is_allowed("@alice:x.org", patterns)
    assert not is_allowed("@alice2:x.org", patterns)  # full match, not prefix
    assert is_allowed("@anyone:y.org", patterns)
    assert not is_allowed("@bot:example.org", patterns)  # own server no longer implied
    assert is_allowed("@x:anything.net", ("*",))
    assert not is_allowed("not-an-id", ("*",))


# --------------------------------------------------------------------------- examples


def test_example_config_loads() -> None:
    example = REPO / "config" / "surfaces.example.yaml"
    config = load_config(str(example), {"MATRIX_ACCESS_TOKEN": "tok"})
    assert config == Config(
        matrix=MatrixConfig(
            homeserver="https://matrix.example.org",
            user_id="@surfaces:example.org",
            access_token=Secret("tok"),
        ),
    )


def test_example_config_holds_defaults_except_marked_examples() -> None:
    example = REPO / "config" / "surfaces.example.yaml"
    config = load_config(str(example), {"MATRIX_ACCESS_TOKEN": "tok"})
    assert config.matrix.access_token == Secret("tok")  # null in the file: the default
    defaults = Config(matrix=config.matrix)
    for section in attrs.fields(Config):
        if section.name != "matrix":
            assert getattr(config, section.name) == getattr(defaults, section.name), section
    text = example.read_text(encoding="utf-8")
    for field in attrs.fields(MatrixConfig):
        (line,) = [line for line in text.splitlines() if line.startswith(f"  {field.name}:")]
        if field.default is attrs.NOTHING:
            assert "# example" in line, field.name
        else:
            assert "# example" not in line
            if field.name != "access_token":
                assert getattr(config.matrix, field.name) == field.default, field.name
    values = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert sum("# example" in line for line in values) == 2  # only the two above


def test_example_config_lists_every_field() -> None:
    text = (REPO / "config" / "surfaces.example.yaml").read_text(encoding="utf-8")
    classes = (MatrixConfig, AgentsConfig, BotConfig, StreamingConfig, LogConfig, OpsConfig)
    for cls in (*classes, UsageConfig):
        for field in attrs.fields(cls):
            assert f"\n  {field.name}:" in text, (cls.__name__, field.name)
    assert "\nstate_dir:" in text


def test_config_and_registry_problems_in_one_run(tmp_path: Path) -> None:
    registry = write(tmp_path, 'agents:\n  - {id: "a"}\n', name="agents.yaml")
    env = {"MATRIX_USER_ID": "bob", "MATRIX_AGENT_REGISTRY_PATH": registry}
    with pytest.raises(ConfigError) as info:
        load_config_and_registry(None, env)
    fields = [(p.source, p.field) for p in info.value.problems]
    assert ("environment", "matrix.homeserver") in fields
    assert ("env MATRIX_USER_ID", "matrix.user_id") in fields
    assert (registry, "agents[0] 'a'") in fields  # label is required
    # without a valid agents section the registry is not guessed at
    with pytest.raises(ConfigError) as info:
        load_config_and_registry(None, {**BASE_ENV, "SURFACES_AGENTS__RETRIES": "x"})
    assert [p.field for p in info.value.problems] == ["agents.retries"]
    # nor when the YAML file does not parse: it may hold the agent settings
    broken = write(tmp_path, 'agents:\n  default_base_url: "ws://a\n')
    with pytest.raises(ConfigError) as info:
        load_config_and_registry(broken, BASE_ENV)
    assert [p.source for p in info.value.problems] == [broken]
    config, reg = load_config_and_registry(None, {**BASE_ENV, "AGENT_BASE_URL": "ws://a/"})
    assert config.matrix.user_id == "@bot:example.org"
    assert reg.default.base_url == "ws://a/"


def test_encryption_is_on_by_default_and_switched_by_the_environment() -> None:
    assert load_config(None, BASE_ENV).matrix.encryption is True
    assert load_config(None, BASE_ENV).matrix.pickle_key is None
    off = load_config(None, {**BASE_ENV, "SURFACES_MATRIX__ENCRYPTION": "false"})
    assert off.matrix.encryption is False
    keyed = load_config(None, {**BASE_ENV, "SURFACES_MATRIX__PICKLE_KEY": "k" * 32})
    assert keyed.matrix.pickle_key == Secret("k" * 32)
    assert "k" * 32 not in repr(keyed)


def test_a_short_pickle_key_is_refused() -> None:
    lines = errors_of(None, {**BASE_ENV, "SURFACES_MATRIX__PICKLE_KEY": "short"})
    assert len(lines) == 1
    assert "matrix.pickle_key" in lines[0]
    assert "at least 16" in lines[0]
    assert "short" not in lines[0]
