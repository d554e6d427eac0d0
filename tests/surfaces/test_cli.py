"""The `surfaces` command: check-config output and exit codes, dispatch to subcommands."""

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from surfaces import cli
from surfaces.cli import main
from surfaces.config import load_config, load_config_or_exit, load_registry_or_exit

REPO = Path(__file__).resolve().parents[2]
TOKEN = "syt_Ym90_verysecretvalue_1a2b3c"
ENV = {
    "MATRIX_HOMESERVER": "https://matrix.example.org",
    "MATRIX_USER_ID": "@bot:example.org",
    "MATRIX_ACCESS_TOKEN": TOKEN,
    "AGENT_BASE_URL": "http://agent:7000/",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment: only the variables a test sets."""
    import os

    for name in list(os.environ):
        if name.startswith(("MATRIX_", "SURFACES_", "AGENT_")):
            monkeypatch.delenv(name)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_check_config_from_environment(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert TOKEN not in out
    assert "access_token: '***'" in out
    assert "homeserver: https://matrix.example.org" in out
    assert "# allowed users (default: the bot's own homeserver): @*:example.org" in out
    assert "default: 'Agent' http://agent:7000/ workspace=/agents  [default]" in out
    assert out.rstrip().endswith("# configuration OK")


def test_check_config_json_with_registry(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config_file = tmp_path / "surfaces.yaml"
    config_file.write_text(
        f'agents:\n  registry_path: "{REPO / "config" / "agents.example.yaml"}"\n'
        'bot:\n  locale: "en"\n',
        encoding="utf-8",
    )
    assert main(["check-config", "--config", str(config_file), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert TOKEN not in out
    data = json.loads(out)
    assert data["config"]["matrix"]["access_token"] == "***"
    assert data["config"]["bot"]["locale"] == "en"
    assert data["allowed_users"] == ["@*:example.org"]
    assert [a["id"] for a in data["agents"]] == ["agent-0", "agent-1"]
    assert data["agents"][0]["default"] is True
    assert data["agents"][1]["workspace_path"] == "/agents/agent-1"
    assert data["user_agents"] == {"@alice:example.org": "agent-1", "@bob:example.org": "agent-0"}


def test_check_config_uses_surfaces_config_env(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config_file = tmp_path / "surfaces.yaml"
    config_file.write_text('bot:\n  brand: "Acme"\n', encoding="utf-8")
    env.setenv("SURFACES_CONFIG", str(config_file))
    assert main(["check-config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["bot"]["brand"] == "Acme"


def test_check_config_invalid_exits_2_with_lines(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("MATRIX_USER_ID", "bob")
    env.setenv("SURFACES_BOT__LOCALE", "de")
    assert main(["check-config"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "surfaces check-config: invalid configuration (2 problems):",
        "  env MATRIX_USER_ID: matrix.user_id: must look like @user:server, got 'bob'",
        "  env SURFACES_BOT__LOCALE: bot.locale: must be one of en, ru, got 'de'",
    ]
    assert "Traceback" not in err


def test_check_config_invalid_registry_exits_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry = tmp_path / "agents.yaml"
    registry.write_text("agents: []\n", encoding="utf-8")
    env.setenv("MATRIX_AGENT_REGISTRY_PATH", str(registry))
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert f"  {registry}: agents: no agents: the list must not be empty" in err.splitlines()


def test_check_config_no_agent_url_exits_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.delenv("AGENT_BASE_URL")
    assert main(["check-config"]) == 2
    assert "no agent registry and no default agent URL" in capsys.readouterr().err


def test_check_config_missing_file_exits_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", "--config", str(missing)]) == 2
    assert f"{missing}: cannot read" in capsys.readouterr().err


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "demo", "check-config", "check-agents", "reference-agent", "doctor"):
        assert command in out
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_subcommand_module_is_not_yet_available(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "doctor", ("surfaces.no_such_module:main", "x"))
    assert main(["doctor", "--flag"]) == 2
    assert capsys.readouterr().err == "surfaces doctor: not yet available\n"


def test_missing_entry_function_is_not_yet_available(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = types.ModuleType("surfaces_test_target")
    monkeypatch.setitem(sys.modules, "surfaces_test_target", module)
    monkeypatch.setitem(cli.COMMANDS, "demo", ("surfaces_test_target:main", "x"))
    assert main(["demo"]) == 2
    assert "surfaces demo: not yet available" in capsys.readouterr().err


def test_dispatch_passes_remaining_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    module = types.ModuleType("surfaces_test_target")
    module.main = lambda argv: seen.append(argv) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "surfaces_test_target", module)
    for command in ("run", "demo", "check-agents", "reference-agent", "doctor"):
        monkeypatch.setitem(cli.COMMANDS, command, ("surfaces_test_target:main", "x"))
        assert main([command, "--config", "x.yaml", "--help"]) == 7
    assert seen == [["--config", "x.yaml", "--help"]] * 5


def test_dispatch_none_result_is_zero_and_config_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("surfaces_test_target")
    module.ok = lambda argv: None  # type: ignore[attr-defined]
    module.bad = lambda argv: load_config(None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "surfaces_test_target", module)
    monkeypatch.setitem(cli.COMMANDS, "run", ("surfaces_test_target:ok", "x"))
    assert main(["run"]) == 0
    monkeypatch.setitem(cli.COMMANDS, "run", ("surfaces_test_target:bad", "x"))
    env.setenv("SURFACES_OPS__PORT", "x")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "surfaces run: invalid configuration (1 problem):" in err
    assert "env SURFACES_OPS__PORT: ops.port: must be an integer, got 'x'" in err


def test_import_errors_inside_a_command_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    module_name = "surfaces_test_broken"

    def broken_import(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'somedep'", name="somedep")

    monkeypatch.setattr(cli.importlib, "import_module", broken_import)
    monkeypatch.setitem(cli.COMMANDS, "run", (f"{module_name}:main", "x"))
    with pytest.raises(ModuleNotFoundError, match="somedep"):
        main(["run"])


def test_load_helpers(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config_or_exit(None)
    assert config.matrix.user_id == "@bot:example.org"
    registry = load_registry_or_exit(config)
    assert registry.default.id == "default"

    env.setenv("MATRIX_HOMESERVER", "nope")
    with pytest.raises(SystemExit) as info:
        load_config_or_exit(None, prog="surfaces run")
    assert info.value.code == 2
    assert "surfaces run: invalid configuration (1 problem):" in capsys.readouterr().err

    env.delenv("AGENT_BASE_URL")
    env.setenv("MATRIX_HOMESERVER", "https://matrix.example.org")
    with pytest.raises(SystemExit) as info:
        load_registry_or_exit(load_config_or_exit(None))
    assert info.value.code == 2


def test_python_dash_m_surfaces(env: pytest.MonkeyPatch) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "surfaces", "check-config", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["agents"][0]["id"] == "default"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import platform

    import surfaces

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == (
        f"surfaces {surfaces.__version__} (Python {platform.python_version()})\n"
    )
    assert surfaces.version_fields() == {
        "version": surfaces.__version__,
        "python": platform.python_version(),
    }


def test_version_is_the_package_version() -> None:
    import tomllib
    from importlib.metadata import version

    import surfaces

    # pyproject.toml takes the version from surfaces.__version__, the one place it is
    # written; the installed metadata is built from it.
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" in project["dynamic"]
    assert "version" not in project
    assert version("surfaces") == surfaces.__version__


def test_check_config_json_reports_problems_as_json(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config_file = tmp_path / "surfaces.yaml"
    config_file.write_text('bot:\n  locale: "de"\n  brandd: "x"\n', encoding="utf-8")
    env.setenv("SURFACES_OPS_PORT", "1")
    assert main(["check-config", "--config", str(config_file), "--json"]) == 2
    out, err = capsys.readouterr()
    assert err == ""
    data = json.loads(out)
    assert data["ok"] is False
    assert [(p["source"], p["field"]) for p in data["problems"]] == [
        (str(config_file), "bot.brandd"),
        ("env SURFACES_OPS_PORT", None),
        (str(config_file), "bot.locale"),
    ]
    assert data["problems"][1]["message"] == "not a setting: did you mean SURFACES_OPS__PORT?"
    assert all(p["text"].startswith(p["source"] + ": ") for p in data["problems"])


def test_check_config_json_yaml_syntax_error_has_its_line(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config_file = tmp_path / "surfaces.yaml"
    config_file.write_text('bot:\n  brand: "x\n', encoding="utf-8")
    assert main(["check-config", "--config", str(config_file), "--json"]) == 2
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["line"] == 2
    assert "invalid YAML" in problem["message"]


def test_check_config_reports_config_and_registry_together(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry = tmp_path / "agents.yaml"
    registry.write_text("agents: []\n", encoding="utf-8")
    env.setenv("MATRIX_AGENT_REGISTRY_PATH", str(registry))
    env.delenv("MATRIX_HOMESERVER")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "surfaces check-config: invalid configuration (2 problems):"
    assert err[1].startswith("  environment: matrix.homeserver: is required")
    assert err[2] == f"  {registry}: agents: no agents: the list must not be empty"
