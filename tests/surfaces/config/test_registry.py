"""Agent registry: valid files, single-agent mode, and every error naming file/entry/problem."""

from pathlib import Path

import pytest

from surfaces.config import AgentRegistry, AgentSpec, ConfigError, RegistryError, load_registry

REPO = Path(__file__).resolve().parents[3]
DEFAULT_URL = "http://agents.internal:7000/"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "agents.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(path: str | None, default_base_url: str | None = DEFAULT_URL) -> AgentRegistry:
    return load_registry(path, default_base_url=default_base_url, workspace_dir="/agents")


def errors_of(path: str | None, default_base_url: str | None = DEFAULT_URL) -> list[str]:
    with pytest.raises(RegistryError) as info:
        load(path, default_base_url)
    return info.value.lines


def test_valid_registry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
user_agents:
  "@alice:example.org": "agent-1"
agents:
  - id: "agent-0"
    label: "Agent 0"
    base_url: "http://agents.internal:7000/agent_0/"
    workspace_path: "/srv/ws/0"
  - id: "agent-1"
    label: "Agent 1"
""",
    )
    registry = load(path)
    agent0 = AgentSpec(
        "agent-0", "Agent 0", "http://agents.internal:7000/agent_0/", Path("/srv/ws/0")
    )
    agent1 = AgentSpec("agent-1", "Agent 1", DEFAULT_URL, Path("/agents/agent-1"))
    assert registry.agents == (agent0, agent1)
    assert registry.default == agent0
    assert registry.for_user("@alice:example.org") == (agent1, True)
    assert registry.for_user("@bob:example.org") == (agent0, False)
    assert registry.get("agent-1") == agent1
    assert registry.get("nope") is None
    assert dict(registry.user_agents) == {"@alice:example.org": "agent-1"}


def test_user_agents_is_optional_and_null_sections_are_empty(tmp_path: Path) -> None:
    registry = load(write(tmp_path, 'user_agents:\nagents:\n  - {id: "a", label: "A"}\n'))
    assert dict(registry.user_agents) == {}
    assert registry.for_user("@x:y") == (registry.default, False)


@pytest.mark.parametrize("scheme", ["http", "https", "ws", "wss"])
def test_url_schemes(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}://agent:7000/x"
    registry = load(write(tmp_path, f'agents:\n  - {{id: "a", label: "A", base_url: "{url}"}}\n'))
    assert registry.default.base_url == url


def test_registry_is_immutable(tmp_path: Path) -> None:
    registry = load(write(tmp_path, 'agents:\n  - {id: "a", label: "A"}\n'))
    with pytest.raises(TypeError):
        registry.user_agents["@x:y"] = "a"  # type: ignore[index]


def test_direct_construction_checks_invariants() -> None:
    agent = AgentSpec("a", "A", DEFAULT_URL, Path("/w"))
    with pytest.raises(ValueError, match="at least one agent"):
        AgentRegistry((), {})
    with pytest.raises(ValueError, match="unique"):
        AgentRegistry((agent, agent), {})
    with pytest.raises(ValueError, match="unknown agent ids: b"):
        AgentRegistry((agent,), {"@x:y": "b"})


def test_no_registry_means_one_default_agent() -> None:
    registry = load_registry(None, default_base_url="ws://agent:9000", workspace_dir="/data/ws")
    assert registry.agents == (AgentSpec("default", "Agent", "ws://agent:9000", Path("/data/ws")),)
    assert registry.for_user("@anyone:x") == (registry.default, False)


def test_no_registry_and_no_default_url_is_an_error() -> None:
    (line,) = errors_of(None, default_base_url=None)
    assert "no agent registry and no default agent URL" in line
    assert "MATRIX_AGENT_REGISTRY_PATH" in line
    assert "AGENT_BASE_URL" in line


def test_no_registry_with_bad_default_url() -> None:
    (line,) = errors_of(None, default_base_url="ftp://x")
    assert line.startswith("environment: agents.default_base_url: scheme must be")


def test_registry_error_is_a_config_error() -> None:
    assert issubclass(RegistryError, ConfigError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the top level must be a mapping with 'agents', got an empty file"),
        ("- 1\n", "the top level must be a mapping with 'agents', got list [1]"),
        ("user_agents: {}\n", "agents: no agents: the list is required"),
        ("agents: []\n", "agents: no agents: the list must not be empty"),
        ("agents: {id: a}\n", "agents: must be a list of agents, got dict"),
        ('agents:\n  - "a"\n', "agents[0]: must be a mapping with id and label, got str 'a'"),
        ('agents:\n  - {label: "A"}\n', "agents[0]: id: is required"),
        ('agents:\n  - {id: "a"}\n', "agents[0] 'a': label: is required"),
        ('agents:\n  - {id: 7, label: "A"}\n', "agents[0]: id: must be a string, got int 7"),
        ('agents:\n  - {id: "a", label: no}\n', "agents[0] 'a': label: must be a string, got bool"),
        ('agents:\n  - {id: "", label: "A"}\n', "agents[0]: id: must not be empty"),
        ('agents:\n  - {id: "a/b", label: "A"}\n', "agents[0] 'a/b': id: must not contain"),
        ('agents:\n  - {id: "..", label: "A"}\n', "agents[0] '..': id: must not contain"),
        (
            'agents:\n  - {id: "a", label: "A", base_url: "ftp://h"}\n',
            "agents[0] 'a': base_url: scheme must be http, https, ws or wss, got 'ftp://h'",
        ),
        (
            'agents:\n  - {id: "a", label: "A", base_url: "http://"}\n',
            "agents[0] 'a': base_url: must include a host, got 'http://'",
        ),
        (
            'agents:\n  - {id: "a", label: "A", base_url: "agents:7000"}\n',
            "agents[0] 'a': base_url: scheme must be",
        ),
        (
            'agents:\n  - {id: "a", label: "A", workspace_path: 5}\n',
            "agents[0] 'a': workspace_path: must be a string, got int 5",
        ),
        (
            'agents:\n  - {id: "a", label: "A", url: "http://x"}\n',
            "agents[0] 'a': url: unknown key (known: id, label, base_url, workspace_path)",
        ),
        (
            'agent:\n  - {id: "a", label: "A"}\n',
            "agent: unknown key (known: user_agents, agents, user_budgets)",
        ),
        (
            'agents:\n  - {id: "a", label: "A"}\n  - {id: "a", label: "B"}\n',
            "agents[1] 'a': duplicate id (also agents[0])",
        ),
        (
            'user_agents:\n  "@u:x": "b"\nagents:\n  - {id: "a", label: "A"}\n',
            "user_agents['@u:x']: unknown agent id 'b' (known: a)",
        ),
        (
            'user_agents:\n  "alice": "a"\nagents:\n  - {id: "a", label: "A"}\n',
            "user_agents['alice']: the key must be a Matrix user id like @user:server",
        ),
        (
            'user_agents:\n  "@u:x": 1\nagents:\n  - {id: "a", label: "A"}\n',
            "user_agents['@u:x']: agent id must be a string, got int 1",
        ),
        (
            'user_agents: ["@u:x"]\nagents:\n  - {id: "a", label: "A"}\n',
            "user_agents: must be a mapping of user id to agent id, got list",
        ),
        (
            'agents:\n  - id: "a"\n   label: x\n',
            "line 3, column 4: invalid YAML: expected <block end>",
        ),
        (
            'user_agents:\n  "@u:x": "a"\n  "@u:x": "a"\nagents: []\n',
            "line 3, column 3: invalid YAML: duplicate key '@u:x' (first at line 2)",
        ),
    ],
)
def test_errors_name_file_entry_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    lines = errors_of(path)
    assert any(line.startswith(f"{path}: {expected}") for line in lines), lines


def test_agent_without_url_and_no_default(tmp_path: Path) -> None:
    path = write(tmp_path, 'agents:\n  - {id: "a", label: "A"}\n')
    (line,) = errors_of(path, default_base_url=None)
    assert line == (
        f"{path}: agents[0] 'a': base_url: missing, and there is no default agent URL"
        " (AGENT_BASE_URL / agents.default_base_url)"
    )


def test_all_problems_reported_without_follow_on_noise(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
user_agents:
  "@u:x": "b"
agents:
  - {id: "a", label: "A", base_url: "gopher://x"}
  - {id: "b", label: 3}
""",
    )
    lines = errors_of(path)
    assert lines == [
        f"{path}: agents[0] 'a': base_url: scheme must be http, https, ws or wss, got 'gopher://x'",
        f"{path}: agents[1] 'b': label: must be a string, got int 3 (quote it in YAML)",
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.yaml")
    assert errors_of(path) == [f"{path}: cannot read: No such file or directory"]


def test_example_registry_loads() -> None:
    registry = load_registry(
        str(REPO / "config" / "agents.example.yaml"),
        default_base_url=None,
        workspace_dir="/agents",
    )
    assert [a.id for a in registry.agents] == ["agent-0", "agent-1"]
    assert registry.get("agent-1") == AgentSpec(
        "agent-1", "Agent 1", "ws://agents.internal:7001/", Path("/agents/agent-1")
    )
    assert registry.for_user("@alice:example.org")[0].id == "agent-1"


def test_duplicate_id_reported_even_when_the_entries_have_other_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
agents:
  - {id: "a", label: "A", base_url: "gopher://x"}
  - {id: "a"}
  - {id: "b", label: "B"}
  - {id: "b", label: "B again", workspace_path: 7}
""",
    )
    lines = errors_of(path)
    assert f"{path}: agents[1] 'a': duplicate id (also agents[0])" in lines
    assert f"{path}: agents[3] 'b': duplicate id (also agents[2])" in lines
    # and the entries' own problems are still there
    assert any("agents[0] 'a': base_url: scheme must be" in line for line in lines)
    assert f"{path}: agents[1] 'a': label: is required" in lines
    assert any("agents[3] 'b': workspace_path: must be a string" in line for line in lines)


def test_problems_are_structured(tmp_path: Path) -> None:
    path = write(tmp_path, 'agents:\n  - {id: "a", label: 3}\n')
    with pytest.raises(RegistryError) as info:
        load(path)
    (problem,) = info.value.problems
    assert (problem.source, problem.field) == (path, "agents[0] 'a'")
    assert problem.message == "label: must be a string, got int 3 (quote it in YAML)"
    assert problem.as_dict()["text"] == str(problem)
