"""The deployment files agree with the code: compose structure, volumes, and every
environment variable they name is a setting the configuration actually reads.

Docker is not needed: the compose files are parsed as YAML, the Dockerfile as text,
and the env examples are loaded through ``surfaces.config.load_config``.
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

import surfaces
from surfaces.config import BotConfig, Config, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = ("compose.bot.yml", "compose.fullstack.yml")
ENV_EXAMPLES = ("bot.env.example", "fullstack.env.example")

#: Environment names kept from the earlier deployment (product.md §9) -> config field.
LEGACY_ENV = {
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
#: Not a config field: where the YAML file is.
SURFACES_CONFIG = "SURFACES_CONFIG"
#: Read by the matrixdotorg/synapse image (and compose substitution), not by the bot.
SYNAPSE_ENV = {"SYNAPSE_SERVER_NAME", "SYNAPSE_REPORT_STATS"}

_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
_SUBSTITUTION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def config_fields() -> dict[tuple[str, str], attrs.Attribute]:
    """(section, field) for every setting; top-level fields have section ``""``."""
    hints = typing.get_type_hints(Config)
    fields: dict[tuple[str, str], attrs.Attribute] = {}
    for field in attrs.fields(Config):
        section_type = hints[field.name]
        if isinstance(section_type, type) and attrs.has(section_type):
            for sub in attrs.fields(section_type):
                fields[(field.name, sub.name)] = sub
        else:
            fields[("", field.name)] = field
    return fields


def env_name(section: str, field: str) -> str:
    """The name an operator uses: the legacy one where there is one."""
    for name, target in LEGACY_ENV.items():
        if target == (section, field):
            return name
    assert section, f"top-level field {field!r} has no environment name"
    return f"SURFACES_{section.upper()}__{field.upper()}"


def is_setting(name: str) -> bool:
    if name in LEGACY_ENV or name == SURFACES_CONFIG:
        return True
    match = re.fullmatch(r"SURFACES_([A-Z0-9_]+?)__([A-Z0-9_]+)", name)
    return match is not None and (match[1].lower(), match[2].lower()) in config_fields()


def env_file(name: str, *, commented: bool) -> dict[str, str]:
    """``NAME=value`` lines of a Docker env file (also ``# NAME=value`` if asked)."""
    values = {}
    for line in (DEPLOY / name).read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match and (commented or not line.lstrip().startswith("#")):
            values[match[1]] = match[2]
    return values


def compose(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def volume_mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read_only) for short-syntax volume entries."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        mounts[target] = (source, mode == ["ro"])
    return mounts


def is_surfaces_image(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("surfaces:") or "build" in service


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    args = shlex.split(command) if isinstance(command, str) else list(command)
    return [word for arg in args for word in shlex.split(arg)]


# -- the configuration contract this test relies on --------------------------------


def test_config_has_the_sections_the_deploy_files_use():
    sections = {section for section, _ in config_fields() if section}
    assert sections == {
        "matrix",
        "agents",
        "bot",
        "streaming",
        "log",
        "ops",
        "budget",
        "usage",
        "context",
        "presence",
    }
    for section, field in LEGACY_ENV.values():
        assert (section, field) in config_fields(), (section, field)


# -- compose files -----------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_structure(name):
    data = compose(name)
    services = data["services"]
    declared_volumes = set(data.get("volumes") or {})

    bot = services["bot"]
    assert is_surfaces_image(bot)
    assert bot["command"] == ["run"]
    mounts = volume_mounts(bot)
    assert "/agents" in mounts, "the shared workspace volume"
    assert "/var/lib/surfaces" in mounts, "the state volume"
    assert mounts["/agents"][0] in declared_volumes
    assert mounts["/var/lib/surfaces"][0] in declared_volumes
    ops_port = config_fields()[("ops", "port")].default
    assert any(str(port).endswith(f":{ops_port}") for port in bot.get("ports", []))

    for service_name, service in services.items():
        for target, (source, _) in volume_mounts(service).items():
            is_bind = source.startswith(("./", "/", "../"))
            assert is_bind or source in declared_volumes, (service_name, target, source)
            if is_bind and source.startswith("./"):
                # a bind-mounted file must be creatable from something in the repo
                example = DEPLOY / source
                candidates = [example.with_suffix(".example" + example.suffix)]
                candidates.append(ROOT / "config" / f"{example.stem}.example{example.suffix}")
                assert any(c.exists() for c in candidates), (service_name, source)
        for env in service.get("env_file", []):
            path = env if isinstance(env, str) else env["path"]
            assert (DEPLOY / f"{path}.example").exists(), f"{path}.example for {service_name}"


def test_bot_only_layout():
    data = compose("compose.bot.yml")
    assert set(data["services"]) == {"bot"}
    bot = data["services"]["bot"]
    assert bot["env_file"] == ["bot.env"]
    registry = environment(bot)["MATRIX_AGENT_REGISTRY_PATH"]
    assert registry == "/etc/surfaces/agents.yaml"
    source, read_only = volume_mounts(bot)[registry]
    assert read_only
    assert source == "./agents.yaml"
    # the agents run elsewhere: their workspace volume is not this project's
    agents_volume = volume_mounts(bot)["/agents"][0]
    assert data["volumes"][agents_volume]["external"] is True


def test_fullstack_layout():
    data = compose("compose.fullstack.yml")
    services = data["services"]
    assert {"synapse", "reference-agent", "bot"} <= set(services)
    assert services["synapse"]["image"].startswith("matrixdotorg/synapse")
    assert volume_mounts(services["synapse"])["/data"][0] in data["volumes"]

    agent = services["reference-agent"]
    bot = services["bot"]
    assert is_surfaces_image(agent)
    assert agent["image"] == bot["image"]

    args = command_args(agent)
    assert "reference-agent" in args
    port = args[args.index("--port") + 1]
    workspace = args[args.index("--workspace") + 1]
    assert args[args.index("--host") + 1] == "0.0.0.0"

    # one shared volume, mounted at /agents in both; the bot's only agent (no
    # registry) has workspace_dir itself as its workspace: the agent's directory
    shared = volume_mounts(agent)["/agents"][0]
    assert volume_mounts(bot)["/agents"][0] == shared
    env = environment(bot)
    assert "MATRIX_AGENT_REGISTRY_PATH" not in env
    assert env["SURFACES_WORKSPACE_DIR"] == workspace
    assert workspace.startswith("/agents/")
    assert env["AGENT_BASE_URL"] == f"http://reference-agent:{port}"
    assert env["MATRIX_HOMESERVER"] == "http://synapse:8008"

    assert set(bot["depends_on"]) == {"synapse", "reference-agent"}


# -- environment variables ----------------------------------------------------------


def test_every_compose_variable_is_a_setting():
    for name in COMPOSE_FILES:
        lines = (DEPLOY / name).read_text().splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        for variable in _SUBSTITUTION.findall(text):
            assert variable in SYNAPSE_ENV or is_setting(variable), (name, variable)
            assert any(variable in env_file(e, commented=True) for e in ENV_EXAMPLES), variable
        for service_name, service in compose(name)["services"].items():
            for variable in environment(service):
                if is_surfaces_image(service):
                    assert is_setting(variable), (name, service_name, variable)
                else:
                    assert variable in SYNAPSE_ENV, (name, service_name, variable)


@pytest.mark.parametrize("name", ENV_EXAMPLES)
def test_every_env_example_variable_is_a_setting(name):
    variables = env_file(name, commented=True)
    assert variables
    allowed_extra = SYNAPSE_ENV if name == "fullstack.env.example" else set()
    for variable in variables:
        assert variable in allowed_extra or is_setting(variable), (name, variable)


def test_bot_env_example_documents_every_setting():
    documented = env_file("bot.env.example", commented=True)
    missing = [
        env_name(section, field)
        for section, field in config_fields()
        if env_name(section, field) not in documented
    ]
    assert not missing
    assert SURFACES_CONFIG in documented


def test_env_examples_load_as_valid_config():
    # as compose would pass them: env file, then the service's environment on top
    bot = {**env_file("bot.env.example", commented=False)}
    bot |= environment(compose("compose.bot.yml")["services"]["bot"])
    bot.pop("MATRIX_AGENT_REGISTRY_PATH")  # the mounted file exists only in a container
    config = load_config(None, bot)
    assert config.matrix.user_id == bot["MATRIX_USER_ID"]

    full = {**env_file("fullstack.env.example", commented=False)}
    full |= environment(compose("compose.fullstack.yml")["services"]["bot"])
    config = load_config(None, full)
    assert config.agents.workspace_dir == "/agents/0"
    assert config.matrix.user_id.endswith(":" + full["SYNAPSE_SERVER_NAME"])


# -- Dockerfile ----------------------------------------------------------------------


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    joined = text.replace("\\\n", " ")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^USER surfaces$", text, re.M)
    # runtime dependencies only: no extras ([demo] and [test] bring Synapse)
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", joined)
    instructions = [line for line in joined.splitlines() if not line.startswith("#")]
    assert not any("synapse" in line.lower() for line in instructions)
    assert 'VOLUME ["/var/lib/surfaces", "/agents"]' in text
    assert 'ENTRYPOINT ["surfaces"]' in text
    assert 'CMD ["run"]' in text
    assert re.search(r"^EXPOSE 9464$", text, re.M)
    # the health check asks the configured ops server (surfaces.ops.healthcheck)
    healthcheck = re.search(r"^HEALTHCHECK (.*) CMD (\[.*\])$", joined, re.M)
    assert healthcheck
    assert yaml.safe_load(healthcheck[2]) == ["surfaces", "healthcheck"]
    timeout = re.search(r"--timeout=(\d+)s", healthcheck[1])
    assert timeout
    from surfaces.ops.healthcheck import DEFAULT_TIMEOUT_S

    assert int(timeout[1]) > DEFAULT_TIMEOUT_S
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)

    env_lines = re.findall(r"^ENV (.*)$", joined, re.M)
    env = dict(pair.split("=", 1) for line in env_lines for pair in line.split())
    settings = {k: v for k, v in env.items() if k.startswith(("SURFACES_", "MATRIX_"))}
    assert settings == {
        "SURFACES_STATE_DIR": "/var/lib/surfaces",
        "SURFACES_WORKSPACE_DIR": "/agents",
        "SURFACES_OPS__ENABLED": "true",
        "SURFACES_OPS__HOST": "0.0.0.0",
    }
    assert all(is_setting(k) for k in settings)

    for source in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / source).exists(), source


def test_dockerignore_keeps_what_the_image_needs():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in ("pyproject.toml", "README.md", "surfaces", "matrix_client", "agent_client"):
        assert needed not in ignored
    assert {".git", ".venv"} <= ignored


def test_dockerfile_oci_labels():
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    args = dict(re.findall(r"^ARG (\w+)=(\S*)$", joined, re.M))
    assert args["SURFACES_VERSION"] == surfaces.__version__
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', joined))
    assert labels["org.opencontainers.image.version"] == "${SURFACES_VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${SURFACES_REVISION}"
    assert labels["org.opencontainers.image.title"] == "Surfaces"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.base.name"].endswith(
        re.search(r"^FROM (\S+)", joined, re.M)[1]
    )


# -- stopping, versions, ports -----------------------------------------------------


def seconds(value: str) -> float:
    """``30s``, ``1m30s``, ``30`` (compose and systemd durations)."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(min|ms|m|s|h)?", value):
        total += float(number) * {"h": 3600, "min": 60, "m": 60, "s": 1, "ms": 0.001, "": 1}[unit]
    return total


SHUTDOWN_GRACE_S = attrs.fields(BotConfig).shutdown_grace_s.default


def test_every_way_to_run_the_bot_waits_longer_than_the_shutdown_grace():
    for name in COMPOSE_FILES:
        bot = compose(name)["services"]["bot"]
        assert seconds(bot["stop_grace_period"]) > SHUTDOWN_GRACE_S + 5, name
    # the docker run example in the Dockerfile
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n#", " ")
    runs = [line for line in joined.splitlines() if "docker run" in line and "surfaces:" in line]
    assert runs
    for line in runs:
        stop = re.search(r"--stop-timeout[ =](\d+)", line)
        assert stop, line
        assert int(stop[1]) > SHUTDOWN_GRACE_S + 5
    assert seconds(systemd_unit()["Service"]["TimeoutStopSec"]) > SHUTDOWN_GRACE_S + 5


def test_fullstack_synapse_is_the_version_the_tests_use():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = [
        dep.split("==", 1)[1]
        for dep in project["project"]["optional-dependencies"]["test"]
        if dep.startswith("matrix-synapse==")
    ]
    assert len(pins) == 1
    services = compose("compose.fullstack.yml")["services"]
    images = {s["image"] for s in services.values() if "synapse" in str(s.get("image", ""))}
    assert images == {f"matrixdotorg/synapse:v{pins[0]}"}


def published_ports(name: str) -> set[tuple[str, str]]:
    ports = set()
    for service in compose(name)["services"].values():
        for entry in service.get("ports", []):
            parts = str(entry).split(":")
            assert len(parts) == 3, f"{name}: publish on an explicit address: {entry}"
            ports.add((parts[0], parts[1]))
    return ports


def test_the_two_compose_layouts_can_run_on_one_host():
    bot, full = (published_ports(name) for name in COMPOSE_FILES)
    assert bot
    assert full
    hosts = {port for _, port in bot} & {port for _, port in full}
    assert not hosts, hosts
    assert all(address == "127.0.0.1" for address, _ in bot | full)  # loopback only
    names = {compose(name)["name"] for name in COMPOSE_FILES}
    assert len(names) == 2  # separate projects: separate containers and volumes


# -- systemd -------------------------------------------------------------------------


def systemd_unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((DEPLOY / "surfaces.service").read_text(encoding="utf-8"))
    return parser


def test_systemd_unit():
    unit = systemd_unit()
    service = unit["Service"]
    assert shlex.split(service["ExecStart"])[1:] == ["run"]
    assert shlex.split(service["ExecStart"])[0].endswith("/surfaces")
    # the state directory: systemd's, private, where the bot looks for it
    assert service["StateDirectory"] == "surfaces"
    assert service["StateDirectoryMode"] == "0700"
    assert service["UMask"] == "0077"
    environment = dict(
        pair.split("=", 1)
        for line in unit.get("Service", "Environment", fallback="").splitlines()
        for pair in shlex.split(line)
    )
    assert environment["SURFACES_STATE_DIR"] == "/var/lib/surfaces"
    assert all(is_setting(k) for k in environment)
    # restart on a crash, never on a config (2), credentials (3) or lock (4) problem
    assert service["Restart"] == "on-failure"
    assert set(service["RestartPreventExitStatus"].split()) == {"2", "3", "4"}
    from surfaces.app.command import EXIT_FATAL, EXIT_LOCKED
    from surfaces.config import EXIT_CONFIG

    assert (EXIT_CONFIG, EXIT_FATAL, EXIT_LOCKED) == (2, 3, 4)
    assert service["KillSignal"] == "SIGTERM"
    for option, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[option] == value, option
    assert service["User"] != "root"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]
