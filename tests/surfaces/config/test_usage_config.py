"""Monthly token budgets: ``usage.*`` in the config, ``user_budgets`` in the registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from surfaces.cli import main
from surfaces.config import ConfigError, RegistryError, load_config, load_registry

ENV = {"MATRIX_HOMESERVER": "http://hs", "MATRIX_USER_ID": "@bot:hs", "MATRIX_PASSWORD": "p"}
AGENTS = 'agents:\n  - id: "agent-0"\n    label: "Agent 0"\n    base_url: "http://a/"\n'


def registry(tmp_path: Path, budgets: str):
    path = tmp_path / "agents.yaml"
    path.write_text(AGENTS + budgets, encoding="utf-8")
    return load_registry(str(path), default_base_url=None, workspace_dir="/agents")


def test_budgets_are_off_by_default():
    usage = load_config(None, ENV).usage
    assert usage.monthly_token_budget is None
    assert usage.warn_at == 0.8


def test_a_default_budget_and_warning_share_from_the_environment():
    env = {
        **ENV,
        "SURFACES_USAGE__MONTHLY_TOKEN_BUDGET": "100000",
        "SURFACES_USAGE__WARN_AT": "0.9",
    }
    usage = load_config(None, env).usage
    assert (usage.monthly_token_budget, usage.warn_at) == (100_000, 0.9)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MONTHLY_TOKEN_BUDGET", "0", "usage.monthly_token_budget: must be at least 1, got 0"),
        ("MONTHLY_TOKEN_BUDGET", "-5", "must be at least 1"),
        ("WARN_AT", "0", "usage.warn_at: must be more than 0 and at most 1, got 0.0"),
        ("WARN_AT", "1.5", "must be more than 0 and at most 1"),
    ],
)
def test_bad_usage_values_are_named(key, value, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, {**ENV, f"SURFACES_USAGE__{key}": value})
    assert any(message in line for line in info.value.lines)


def test_user_budgets_override_the_default_and_none_or_zero_exempt(tmp_path):
    reg = registry(
        tmp_path,
        'user_budgets:\n  "@alice:x": 2000\n  "@bob:x": none\n  "@carol:x": 0\n  "@dan:x": null\n',
    )
    assert reg.budget_for("@alice:x", 500) == 2000
    assert reg.budget_for("@alice:x", None) == 2000  # a budget of her own, default off
    for exempt in ("@bob:x", "@carol:x", "@dan:x"):
        assert reg.budget_for(exempt, 500) is None
    assert reg.budget_for("@eve:x", 500) == 500
    assert reg.budget_for("@eve:x", None) is None


def test_without_user_budgets_everyone_has_the_default(tmp_path):
    reg = registry(tmp_path, "")
    assert reg.user_budgets == {}
    assert reg.budget_for("@alice:x", 7) == 7


def test_bad_user_budgets_are_reported_one_line_each(tmp_path):
    with pytest.raises(RegistryError) as info:
        registry(
            tmp_path,
            'user_budgets:\n  "alice": 5\n  "@b:x": "lots"\n  "@c:x": -1\n  "@d:x": true\n'
            '  "@e:x": 1.5\n',
        )
    lines = info.value.lines
    assert len(lines) == 5, lines
    assert "user_budgets['alice']: the key must be a Matrix user id" in lines[0]
    assert "user_budgets['@b:x']: must be a whole number of tokens or 'none', got" in lines[1]
    assert "user_budgets['@c:x']: must be between 1 and" in lines[2]
    assert "user_budgets['@d:x']: must be a whole number of tokens or 'none', got True" in lines[3]
    assert "user_budgets['@e:x']: must be a whole number" in lines[4]


def test_user_budgets_must_be_a_mapping(tmp_path):
    with pytest.raises(RegistryError) as info:
        registry(tmp_path, "user_budgets: [1, 2]\n")
    assert "user_budgets: must be a mapping of user id to a token budget" in info.value.lines[0]


def test_check_config_shows_the_budgets(monkeypatch, capsys, tmp_path):
    for name in list(os.environ):
        if name.startswith(("MATRIX_", "SURFACES_", "AGENT_")):
            monkeypatch.delenv(name)
    path = tmp_path / "agents.yaml"
    path.write_text(
        AGENTS + 'user_budgets:\n  "@alice:x": 2000\n  "@bob:x": none\n', encoding="utf-8"
    )
    for name, value in {
        **ENV,
        "MATRIX_AGENT_REGISTRY_PATH": str(path),
        "SURFACES_USAGE__MONTHLY_TOKEN_BUDGET": "500",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "# monthly token budget: 500\n#   @alice:x: 2000\n#   @bob:x: none\n" in out
    assert main(["check-config", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["user_budgets"] == {"@alice:x": 2000, "@bob:x": None}
    assert data["config"]["usage"] == {"monthly_token_budget": 500, "warn_at": 0.8}
