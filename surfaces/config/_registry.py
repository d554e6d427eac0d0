"""Agent registry: which agent serves which Matrix user (product.md §6).

The registry file (path from ``agents.registry_path`` / ``MATRIX_AGENT_REGISTRY_PATH``)::

    user_agents:                  # optional: MXID -> agent id
      "@alice:example.org": "agent-1"
    user_budgets:                 # optional: MXID -> monthly token budget
      "@alice:example.org": 2000000   # her own budget instead of usage.monthly_token_budget
      "@bob:example.org": none        # none (or 0, or null): no budget for him
    agents:                       # non-empty; the first one is the default
      - id: "agent-0"             # required, unique
        label: "Agent 0"          # required
        base_url: "http://agents.internal:7000/agent_0/"   # optional
        workspace_path: "/agents/0"                         # optional

Defaults:

- ``base_url``: the global default (``AGENT_BASE_URL`` / ``agents.default_base_url``);
  an agent with neither is an error.
- ``workspace_path``: ``{workspace_dir}/{id}`` (``workspace_dir`` from
  ``SURFACES_WORKSPACE_DIR`` / ``agents.workspace_dir``). Relative paths are taken
  as given (relative to the bot's working directory).

Without a registry file the bot runs one agent, ``default`` (label "Agent"), at the
global default URL, with ``workspace_dir`` itself as its workspace, so environment
variables alone are enough to start it.
"""

import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from surfaces.config._model import ConfigError, Problem
from surfaces.config._values import check_url, describe, is_user_id
from surfaces.config._yaml import YamlProblem, read_yaml

__all__ = [
    "AGENT_URL_SCHEMES",
    "NO_BUDGET",
    "AgentRegistry",
    "AgentSpec",
    "RegistryError",
    "load_registry",
]

AGENT_URL_SCHEMES = ("http", "https", "ws", "wss")
_AGENT_KEYS = ("id", "label", "base_url", "workspace_path")
_TOP_KEYS = ("user_agents", "agents", "user_budgets")
#: A ``user_budgets`` value that exempts the user from the default budget (also 0 or null).
NO_BUDGET = "none"
#: The largest budget accepted (a typo guard; also keeps sums within SQLite's integers).
MAX_BUDGET = 10**15
_BAD_ID_RE = re.compile(r"[\s/\\]|[\x00-\x1f\x7f]")


class RegistryError(ConfigError):
    """The agent registry is invalid. ``lines`` name the file, the entry and the problem,
    e.g. ``agents.yaml: agents[1] 'agent-1': base_url: scheme must be ..., got 'ftp://x'``.

    A subclass of ``ConfigError``: callers that report configuration problems catch both.
    """


@attrs.frozen
class AgentSpec:
    id: str
    label: str
    base_url: str
    workspace_path: Path


def _freeze(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(mapping))


@attrs.frozen
class AgentRegistry:
    """The agents, in file order (the first is the default), and the user routing."""

    agents: tuple[AgentSpec, ...] = attrs.field(converter=tuple)
    user_agents: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze)
    #: MXID -> the user's monthly token budget (None: no budget), overriding the default.
    user_budgets: Mapping[str, int | None] = attrs.field(factory=dict, converter=_freeze)
    _by_id: Mapping[str, AgentSpec] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not self.agents:
            raise ValueError("an agent registry needs at least one agent")
        by_id = {agent.id: agent for agent in self.agents}
        if len(by_id) != len(self.agents):
            raise ValueError("agent ids must be unique")
        unknown = sorted(set(self.user_agents.values()) - by_id.keys())
        if unknown:
            raise ValueError(f"user_agents names unknown agent ids: {', '.join(unknown)}")
        object.__setattr__(self, "_by_id", types.MappingProxyType(by_id))

    @property
    def default(self) -> AgentSpec:
        """The agent for users who are not listed in ``user_agents``."""
        return self.agents[0]

    def for_user(self, mxid: str) -> tuple[AgentSpec, bool]:
        """The agent for ``mxid`` and whether the user is configured (listed).

        An unlisted user gets the default agent and ``False`` (the bot then tells them
        once per room that the default agent is used).
        """
        agent_id = self.user_agents.get(mxid)
        if agent_id is None:
            return self.default, False
        return self._by_id[agent_id], True

    def get(self, agent_id: str) -> AgentSpec | None:
        return self._by_id.get(agent_id)

    def budget_for(self, mxid: str, default: int | None) -> int | None:
        """The user's monthly token budget: their ``user_budgets`` entry if they have
        one (None there: no budget), else ``default`` (``usage.monthly_token_budget``)."""
        if mxid in self.user_budgets:
            return self.user_budgets[mxid]
        return default


def load_registry(
    path: str | None, *, default_base_url: str | None, workspace_dir: str
) -> AgentRegistry:
    """Load and validate the registry file, or build the single-agent registry.

    Raises:
        RegistryError: every problem found, one line each.
    """
    if path is None:
        return _single_agent(default_base_url, workspace_dir)
    try:
        data = read_yaml(path)
    except YamlProblem as exc:
        raise RegistryError([Problem(path, None, exc.message, line=exc.line)])
    return _Parser(path, default_base_url, Path(workspace_dir)).parse(data)


def _single_agent(default_base_url: str | None, workspace_dir: str) -> AgentRegistry:
    if default_base_url is None:
        raise RegistryError(
            [
                Problem(
                    "environment",
                    "agents",
                    "no agent registry and no default agent URL:"
                    " set MATRIX_AGENT_REGISTRY_PATH (agents.registry_path) or"
                    " AGENT_BASE_URL (agents.default_base_url)",
                )
            ]
        )
    problem = check_url(default_base_url, AGENT_URL_SCHEMES)
    if problem is not None:
        raise RegistryError([Problem("environment", "agents.default_base_url", problem)])
    agent = AgentSpec("default", "Agent", default_base_url, Path(workspace_dir))
    return AgentRegistry((agent,), {})


@attrs.define
class _Parser:
    label: str
    default_base_url: str | None
    workspace_dir: Path
    errors: list[Problem] = attrs.Factory(list)
    # Ids of every entry, valid or not, so user_agents is not also blamed for them.
    seen_ids: set[str] = attrs.Factory(set)

    def error(self, where: str | None, message: str) -> None:
        self.errors.append(Problem(self.label, where, message))

    def parse(self, data: Any) -> AgentRegistry:
        agents: list[AgentSpec] = []
        user_agents: dict[str, str] = {}
        user_budgets: dict[str, int | None] = {}
        if not isinstance(data, dict):
            got = "an empty file" if data is None else describe(data)
            self.error(None, f"the top level must be a mapping with 'agents', got {got}")
        else:
            for key in data:
                if key not in _TOP_KEYS:
                    self.error(str(key), f"unknown key (known: {', '.join(_TOP_KEYS)})")
            agents = self._agents(data.get("agents"))
            user_agents = self._user_agents(data.get("user_agents"), agents)
            user_budgets = self._user_budgets(data.get("user_budgets"))
        if self.errors:
            raise RegistryError(self.errors)
        return AgentRegistry(tuple(agents), user_agents, user_budgets)

    def _agents(self, raw: Any) -> list[AgentSpec]:
        if raw is None:
            self.error("agents", "no agents: the list is required and must not be empty")
            return []
        if not isinstance(raw, list):
            self.error("agents", f"must be a list of agents, got {describe(raw)}")
            return []
        if not raw:
            self.error("agents", "no agents: the list must not be empty")
            return []
        agents: list[AgentSpec] = []
        first_index: dict[str, int] = {}
        for index, entry in enumerate(raw):
            # A duplicate id is reported whether or not either entry has other problems:
            # fixing those must not be what reveals it.
            raw_id = entry.get("id") if isinstance(entry, dict) else None
            duplicate = isinstance(raw_id, str) and raw_id in first_index
            if duplicate:
                self.error(
                    f"agents[{index}] {raw_id!r}",
                    f"duplicate id (also agents[{first_index[raw_id]}])",
                )
            elif isinstance(raw_id, str) and raw_id:
                first_index[raw_id] = index
            agent = self._agent(index, entry)
            if agent is not None and not duplicate:
                agents.append(agent)
        return agents

    def _agent(self, index: int, entry: Any) -> AgentSpec | None:
        where = f"agents[{index}]"
        if not isinstance(entry, dict):
            self.error(where, f"must be a mapping with id and label, got {describe(entry)}")
            return None
        raw_id = entry.get("id")
        if isinstance(raw_id, str) and raw_id:
            where = f"{where} {raw_id!r}"
        ok = True

        def field_error(name: str, message: str) -> None:
            nonlocal ok
            ok = False
            self.error(where, f"{name}: {message}")

        for key in entry:
            if key not in _AGENT_KEYS:
                field_error(str(key), f"unknown key (known: {', '.join(_AGENT_KEYS)})")
        values: dict[str, str] = {}
        for key in _AGENT_KEYS:
            if key not in entry or entry[key] is None:
                if key in ("id", "label"):
                    field_error(key, "is required")
                continue
            value = entry[key]
            if not isinstance(value, str):
                field_error(key, f"must be a string, got {describe(value)} (quote it in YAML)")
            elif not value.strip():
                field_error(key, "must not be empty")
            else:
                values[key] = value
        agent_id = values.get("id")
        if agent_id is not None:
            self.seen_ids.add(agent_id)
        if agent_id is not None and (_BAD_ID_RE.search(agent_id) or agent_id in (".", "..")):
            field_error(
                "id", f"must not contain spaces, slashes or control characters: {agent_id!r}"
            )
        base_url = values.get("base_url")
        if base_url is not None:
            problem = check_url(base_url, AGENT_URL_SCHEMES)
            if problem is not None:
                field_error("base_url", problem)
        elif "base_url" not in entry or entry["base_url"] is None:
            if self.default_base_url is None:
                field_error(
                    "base_url",
                    "missing, and there is no default agent URL"
                    " (AGENT_BASE_URL / agents.default_base_url)",
                )
            else:
                problem = check_url(self.default_base_url, AGENT_URL_SCHEMES)
                if problem is not None:
                    field_error("base_url", f"missing, and the default agent URL {problem}")
                base_url = self.default_base_url
        if not ok or agent_id is None or base_url is None:
            return None
        workspace = values.get("workspace_path")
        path = Path(workspace) if workspace is not None else self.workspace_dir / agent_id
        return AgentSpec(agent_id, values["label"], base_url, path)

    def _user_agents(self, raw: Any, agents: list[AgentSpec]) -> dict[str, str]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error(
                "user_agents", f"must be a mapping of user id to agent id, got {describe(raw)}"
            )
            return {}
        known = {agent.id for agent in agents}
        result: dict[str, str] = {}
        for mxid, agent_id in raw.items():
            where = f"user_agents[{mxid!r}]"
            if not isinstance(mxid, str) or not is_user_id(mxid):
                self.error(where, "the key must be a Matrix user id like @user:server")
            elif not isinstance(agent_id, str):
                self.error(where, f"agent id must be a string, got {describe(agent_id)}")
            elif agent_id not in known and agent_id in self.seen_ids:
                pass  # the agent entry itself is invalid and already reported
            elif agent_id not in known:
                listing = ", ".join(a.id for a in agents) or "none valid"
                self.error(where, f"unknown agent id {agent_id!r} (known: {listing})")
            else:
                result[mxid] = agent_id
        return result

    def _user_budgets(self, raw: Any) -> dict[str, int | None]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error(
                "user_budgets",
                f"must be a mapping of user id to a token budget, got {describe(raw)}",
            )
            return {}
        result: dict[str, int | None] = {}
        for mxid, value in raw.items():
            where = f"user_budgets[{mxid!r}]"
            if not isinstance(mxid, str) or not is_user_id(mxid):
                self.error(where, "the key must be a Matrix user id like @user:server")
            elif isinstance(value, bool):
                self.error(where, f"must be a whole number of tokens or {NO_BUDGET!r}, got {value}")
            elif (
                value is None
                or value == 0
                or (isinstance(value, str) and value.strip().lower() == NO_BUDGET)
            ):
                result[mxid] = None  # exempt from the default budget
            elif not isinstance(value, int):
                self.error(
                    where,
                    f"must be a whole number of tokens or {NO_BUDGET!r}, got {describe(value)}",
                )
            elif not 0 < value <= MAX_BUDGET:
                self.error(where, f"must be between 1 and {MAX_BUDGET} (or {NO_BUDGET!r})")
            else:
                result[mxid] = value
        return result
