"""The configuration tree: attrs classes with their defaults, and ``Secret``.

No ``from __future__ import annotations`` here: the reference generator and the loader
read the field types (``attrs.fields(Config)``) as classes, not strings.
"""

import types
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from surfaces.config._values import glob_escape, redact_url


@attrs.frozen
class Problem:
    """One configuration problem: where it is, which field, what is wrong.

    ``str(problem)`` is the line operators read, e.g.
    ``surfaces.yaml: bot.locale: must be one of en, ru, got 'de'``; ``as_dict()`` is
    the same for ``check-config --json``.
    """

    source: str  # "surfaces.yaml", "env SURFACES_BOT__LOCALE", "environment", "agents.yaml"
    field: str | None  # "bot.locale", "agents[1] 'agent-1'"; None: the source as a whole
    message: str
    #: 1-based line in the source file, where known (the message says it too).
    line: int | None = None

    def __str__(self) -> str:
        if self.field is None:
            return f"{self.source}: {self.message}"
        return f"{self.source}: {self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "field": self.field,
            "message": self.message,
            "line": self.line,
            "text": str(self),
        }


class ConfigError(Exception):
    """The configuration is invalid: ``problems``, one per problem found.

    ``lines`` holds them as text, one line each naming its source and field, e.g.
    ``surfaces.yaml: bot.locale: must be one of en, ru, got 'de'``.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.lines))

    @property
    def lines(self) -> list[str]:
        return [str(problem) for problem in self.problems]


@attrs.frozen(repr=False)
class Secret:
    """A string that must never be printed or logged: ``repr``/``str`` are ``***``.

    ``reveal()`` returns the value at the one place that needs it (the HTTP client).
    """

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


# --------------------------------------------------------------------------- tree


@attrs.frozen
class MatrixConfig:
    homeserver: str = attrs.field(repr=lambda url: repr(redact_url(url)))
    user_id: str
    password: Secret | None = None
    access_token: Secret | None = None
    device_id: str = "SURFACES"
    sync_long_poll_s: float = 30.0
    #: End-to-end encryption: rooms the bot creates are encrypted, encrypted rooms work.
    encryption: bool = True
    #: Encrypts the crypto state in the database; unset: a generated key file.
    pickle_key: Secret | None = None

    @property
    def server_name(self) -> str:
        """The bot's own homeserver name: the part of ``user_id`` after the first colon."""
        return self.user_id.partition(":")[2]


@attrs.frozen
class AgentsConfig:
    registry_path: str | None = None
    default_base_url: str | None = attrs.field(
        default=None, repr=lambda url: repr(url if url is None else redact_url(url))
    )
    workspace_dir: str = "/agents"
    connect_timeout_s: float = 10.0
    status_timeout_s: float = 15.0
    first_text_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    total_timeout_s: float = 900.0
    retries: int = 2
    retry_base_s: float = 0.5
    max_frame_bytes: int = 1_048_576


@attrs.frozen
class BotConfig:
    brand: str = "Lambda"
    locale: str = "ru"
    allowed_users: tuple[str, ...] = ()
    room_queue_size: int = 5
    max_file_bytes: int = 52_428_800
    shutdown_grace_s: float = 20.0
    max_event_attempts: int = 3
    #: Largest file the bot uploads for the agent; None: the same as max_file_bytes.
    max_outgoing_file_bytes: int | None = None
    #: Days a file of incoming/ is kept after a turn carried it to the agent (0: forever).
    incoming_retention_days: float = 30.0
    max_chats_per_user: int = 200
    max_staged_files: int = 50
    thread_context: str = "thread"
    merge_max_messages: int = 10

    @property
    def outgoing_file_limit(self) -> int:
        if self.max_outgoing_file_bytes is None:
            return self.max_file_bytes
        return self.max_outgoing_file_bytes


@attrs.frozen
class StreamingConfig:
    first_message_after_s: float = 0.1
    first_edit_after_s: float = 0.8
    min_edit_interval_s: float = 1.0
    max_edit_interval_s: float = 5.0
    max_edits_per_message: int = 30
    idle_flush_s: float = 2.0
    typing_lease_s: float = 30.0
    max_reply_chars: int = 100_000


def _frozen_levels(value: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(value))


@attrs.frozen
class LogConfig:
    format: str = "console"
    level: str = "info"
    #: Logger name (a dotted prefix: ``httpx``, ``matrix_client``) -> level.
    levels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_levels, hash=False)


@attrs.frozen
class OpsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


@attrs.frozen
class BudgetConfig:
    """Per-user token buckets (``surfaces.intake.Budgets``): a rate and a burst each."""

    turns_per_minute: float = 20.0
    turns_burst: int = 30
    commands_per_minute: float = 30.0
    commands_burst: int = 60
    files_per_minute: float = 30.0
    files_burst: int = 50


@attrs.frozen
class UsageConfig:
    """Monthly token budgets (``surfaces.turns.UsageBudgets``); off by default."""

    #: Tokens a user may use per UTC month, all chats together; None: no budget.
    monthly_token_budget: int | None = None
    #: The share of the budget at which the user is told (once a month).
    warn_at: float = 0.8


@attrs.frozen
class ContextConfig:
    """The chat transcript and its snapshots (``!context``, ``!save``, ``!load``,
    ``!restore``, ``!forget``; docs/commands.md "Context")."""

    #: Exchanges kept per conversation; the oldest go first.
    transcript_max_entries: int = 200
    #: UTF-8 bytes of text kept per conversation; the oldest exchanges go first.
    transcript_max_bytes: int = 262_144
    #: Each side of an exchange is cut to this many characters in the transcript.
    entry_max_chars: int = 4_000
    #: Days an exchange is kept (0: until the bounds push it out).
    retention_days: float = 90.0
    #: Snapshots one user may keep (``!save`` past it is refused; a name is reused).
    max_snapshots: int = 50
    #: Largest primer (``!load``/``!restore``) sent to the agent, in characters.
    primer_max_chars: int = 32_000


@attrs.frozen
class PresenceConfig:
    """Agent presence (``surfaces.agents.presence``): the probe schedule, what counts
    as degraded, and how long a message waits for an offline agent."""

    probe_interval_s: float = 30.0
    probe_jitter_s: float = 5.0
    probe_concurrency: int = 8
    away_status_s: float = 5.0
    away_failures: int = 2
    away_window_s: float = 300.0
    offline_wait_s: float = 600.0
    bot_presence: bool = True


@attrs.frozen
class Config:
    matrix: MatrixConfig
    agents: AgentsConfig = attrs.Factory(AgentsConfig)
    bot: BotConfig = attrs.Factory(BotConfig)
    streaming: StreamingConfig = attrs.Factory(StreamingConfig)
    log: LogConfig = attrs.Factory(LogConfig)
    ops: OpsConfig = attrs.Factory(OpsConfig)
    state_dir: str = "./state"
    budget: BudgetConfig = attrs.Factory(BudgetConfig)
    usage: UsageConfig = attrs.Factory(UsageConfig)
    context: ContextConfig = attrs.Factory(ContextConfig)
    presence: PresenceConfig = attrs.Factory(PresenceConfig)

    def allowed_patterns(self) -> tuple[str, ...]:
        """MXID glob patterns allowed to use the bot.

        An empty ``bot.allowed_users`` means "the bot's own homeserver only".
        """
        if self.bot.allowed_users:
            return self.bot.allowed_users
        return (f"@*:{glob_escape(self.matrix.server_name)}",)

    def redacted(self) -> dict[str, Any]:
        """The whole tree as plain data (for printing), secrets masked as ``***``.

        Passwords inside URLs (``https://user:pw@host``) are masked too.
        """
        return attrs.asdict(self, value_serializer=_redact_value)


def _redact_value(_inst: Any, field: attrs.Attribute | None, value: Any) -> Any:
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    if (
        isinstance(value, str)
        and field is not None
        and ("url" in field.name or field.name == "homeserver")
    ):
        return redact_url(value)
    return value


SECTIONS: dict[str, type] = {
    "matrix": MatrixConfig,
    "agents": AgentsConfig,
    "bot": BotConfig,
    "streaming": StreamingConfig,
    "log": LogConfig,
    "ops": OpsConfig,
    "budget": BudgetConfig,
    "usage": UsageConfig,
    "context": ContextConfig,
    "presence": PresenceConfig,
}
TOP_LEVEL_FIELDS = ("state_dir",)


LOG_FORMATS = ("console", "json")
#: ``bot.thread_context``: a thread is its own agent conversation, or shares the room's.
THREAD_CONTEXTS = ("thread", "room")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
