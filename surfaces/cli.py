"""The ``surfaces`` command.

Subcommands other than ``check-config`` belong to their own modules: the rest of the
command line is passed to that module's ``main(argv) -> int`` (each one owns its
argparse), imported only when used so a broken optional part cannot stop the others::

    surfaces run [...]              -> surfaces.app:main
    surfaces demo [...]             -> surfaces.demo:main
    surfaces check-agents [...]     -> surfaces.ops.check_agents:main
    surfaces reference-agent [...]  -> agent_client.reference:cli_main
    surfaces doctor [...]           -> surfaces.ops.doctor:main
    surfaces backup [...]           -> surfaces.ops.backup:main
    surfaces healthcheck [...]      -> surfaces.ops.healthcheck:main
    surfaces check-config [--config PATH] [--json]
    surfaces --version

Configuration problems always end with exit code 2 and one line per problem on
stderr (with ``--json``: a JSON document on stdout), never a traceback. Other
commands use :func:`load_config_or_exit` and :func:`load_registry_or_exit` (or
``load_config_and_registry_or_exit``) for the same behaviour.
"""

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from surfaces import __version__, version_text
from surfaces.config import (
    EXIT_CONFIG,
    AgentRegistry,
    Config,
    ConfigError,
    load_config_and_registry,
    load_config_or_exit,
    load_registry_or_exit,
    print_config_error,
    redact_url,
)

__all__ = ["load_config_or_exit", "load_registry_or_exit", "main", "print_config_error"]

#: subcommand -> ("module:function", help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("surfaces.app:main", "run the bot"),
    "demo": (
        "surfaces.demo:main",
        "local homeserver + reference agent + bot, a scripted conversation",
    ),
    "check-agents": (
        "surfaces.ops.check_agents:main",
        "connect to every agent, ask STATUS (exit 1 on failure)",
    ),
    "reference-agent": ("agent_client.reference:cli_main", "run the protocol's reference agent"),
    "doctor": ("surfaces.ops.doctor:main", "check the deployment (homeserver, agents, dirs)"),
    "backup": (
        "surfaces.ops.backup:main",
        "copy the state database consistently, also while the bot runs",
    ),
    "healthcheck": (
        "surfaces.ops.healthcheck:main",
        "GET /healthz of the configured ops server (exit 0 healthy, 1 not): for HEALTHCHECK",
    ),
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surfaces",
        description="A Matrix bot that gives every user a private workspace with an AI agent.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_target, help_text) in COMMANDS.items():
        # Listed for --help only: these commands parse their own arguments.
        sub.add_parser(name, help=help_text, add_help=False)
    check = sub.add_parser(
        "check-config",
        help="validate the configuration and the agent registry, print them (secrets masked)",
        description="Validate the configuration and the agent registry and print the "
        "effective settings with secrets masked. Exit 0 if valid, 2 if not.",
    )
    check.add_argument(
        "--config", metavar="PATH", help="YAML config file (default: $SURFACES_CONFIG, if set)"
    )
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _resolve(command: str) -> Callable[[list[str]], Any] | None:
    """The command's entry point, or None if its module does not exist (yet)."""
    module_name, _, function = COMMANDS[command][0].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "this module (or its package) is missing" means "not available"; a
        # missing dependency inside an existing module is a real bug: let it raise.
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            return None
        raise
    return getattr(module, function, None)


def _dispatch(command: str, argv: list[str]) -> int:
    entry = _resolve(command)
    if entry is None:
        print(f"surfaces {command}: not yet available", file=sys.stderr)
        return EXIT_CONFIG
    try:
        result = entry(argv)
    except ConfigError as error:  # safety net: commands should use *_or_exit
        print_config_error(error, prog=f"surfaces {command}")
        return EXIT_CONFIG
    return 0 if result is None else int(result)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``surfaces`` console script. Returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in COMMANDS:
        return _dispatch(args_list[0], args_list[1:])
    parser = _build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    if args.command == "check-config":
        return check_config(args.config, as_json=args.json)
    parser.print_help(sys.stderr)
    return EXIT_CONFIG


# --------------------------------------------------------------------------- check-config


def _agents_summary(config: Config, registry: AgentRegistry) -> dict[str, Any]:
    return {
        "registry_path": config.agents.registry_path,
        "allowed_users": list(config.allowed_patterns()),
        "allowed_users_default": not config.bot.allowed_users,
        "agents": [
            {
                "id": agent.id,
                "label": agent.label,
                "base_url": redact_url(agent.base_url),
                "workspace_path": str(agent.workspace_path),
                "default": index == 0,
            }
            for index, agent in enumerate(registry.agents)
        ],
        "user_agents": dict(registry.user_agents),
        "user_budgets": dict(registry.user_budgets),  # None: no budget for that user
    }


def check_config(path: str | None, *, as_json: bool = False) -> int:
    """``surfaces check-config``: 0 when config and registry are valid, else 2.

    Every problem of both is reported in one run. With ``as_json`` the answer is one
    JSON document on stdout either way: ``{"ok": true, "config": ...}`` or
    ``{"ok": false, "problems": [{"source", "field", "message", "line", "text"}]}``.
    """
    prog = "surfaces check-config"
    try:
        config, registry = load_config_and_registry(path, os.environ)
    except ConfigError as error:
        if as_json:
            problems = [problem.as_dict() for problem in error.problems]
            print(json.dumps({"ok": False, "version": __version__, "problems": problems}, indent=2))
        else:
            print_config_error(error, prog=prog)
        return EXIT_CONFIG
    summary = _agents_summary(config, registry)
    if as_json:
        document = {"ok": True, "version": __version__, "config": config.redacted(), **summary}
        print(json.dumps(document, indent=2))
        return 0
    source = path or os.environ.get("SURFACES_CONFIG") or "environment only"
    out = [f"# effective configuration (source: {source}; secrets masked)"]
    out.append(yaml.safe_dump(config.redacted(), sort_keys=False, allow_unicode=True).rstrip())
    out.append("")
    suffix = " (default: the bot's own homeserver)" if summary["allowed_users_default"] else ""
    out.append(f"# allowed users{suffix}: {', '.join(summary['allowed_users'])}")
    origin = config.agents.registry_path or "no registry: single agent from AGENT_BASE_URL"
    out.append(f"# agents ({len(registry.agents)}, {origin}):")
    for agent in summary["agents"]:
        mark = "  [default]" if agent["default"] else ""
        out.append(
            f"#   {agent['id']}: {agent['label']!r} {agent['base_url']}"
            f" workspace={agent['workspace_path']}{mark}"
        )
    if registry.user_agents:
        out.append(f"# user routing ({len(registry.user_agents)}):")
        out.extend(f"#   {mxid} -> {agent_id}" for mxid, agent_id in registry.user_agents.items())
    default = config.usage.monthly_token_budget
    if default is not None or registry.user_budgets:
        out.append(f"# monthly token budget: {default if default is not None else 'none'}")
        out.extend(
            f"#   {mxid}: {budget if budget is not None else 'none'}"
            for mxid, budget in registry.user_budgets.items()
        )
    out.append("# configuration OK")
    print("\n".join(out))
    return 0
