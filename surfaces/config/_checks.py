"""Field checks applied after structuring: one function per rule, one table of fields."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from surfaces.config._model import LOG_FORMATS, LOG_LEVELS, THREAD_CONTEXTS, Secret
from surfaces.config._values import check_url, is_user_id
from surfaces.i18n import LOCALES

_Check = Callable[[Any], str | None]


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value!r}"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must be 0 or more, got {value!r}"


def _at_least(minimum: int) -> _Check:
    def check(value: int) -> str | None:
        return None if value >= minimum else f"must be at least {minimum}, got {value!r}"

    return check


def _optional(check: _Check) -> _Check:
    def optional(value: Any) -> str | None:
        return None if value is None else check(value)

    return optional


def _non_empty(value: str | None) -> str | None:
    if value is None:
        return None
    return None if value.strip() else "must not be empty"


def _choice(options: tuple[str, ...]) -> _Check:
    def check(value: str) -> str | None:
        if value.lower() in options:
            return None
        return f"must be one of {', '.join(options)}, got {value!r}"

    return check


def _homeserver(value: str) -> str | None:
    problem = check_url(value, ("http", "https"))
    return None if problem is None else f"must be an http(s) URL, got {value!r}"


def _agent_url(value: str | None) -> str | None:
    return None if value is None else check_url(value, ("http", "https", "ws", "wss"))


def _user_id(value: str) -> str | None:
    return None if is_user_id(value) else f"must look like @user:server, got {value!r}"


def _secret(value: Secret | None) -> str | None:
    if value is None or value.reveal().strip():
        return None
    return "must not be empty"


#: A configured pickle key is a passphrase we hash; shorter ones are too easy to guess.
MIN_PICKLE_KEY_CHARS = 16


def _pickle_key(value: Secret | None) -> str | None:
    if value is None or len(value.reveal().strip()) >= MIN_PICKLE_KEY_CHARS:
        return None
    return f"must be at least {MIN_PICKLE_KEY_CHARS} characters (e.g. openssl rand -base64 32)"


def _device_id(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if any(ch.isspace() for ch in value):
        return f"must not contain whitespace, got {value!r}"
    return None


def _patterns(value: tuple[str, ...]) -> str | None:
    for pattern in value:
        if not pattern or any(ch.isspace() for ch in pattern):
            return f"patterns must be non-empty and without spaces, got {pattern!r}"
    return None


_LOGGER_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _logger_levels(value: Mapping[str, str]) -> str | None:
    for name, level in value.items():
        if not _LOGGER_NAME_RE.match(name):
            return f"{name!r}: not a logger name (like httpx or matrix_client._sync)"
        if level.lower() not in LOG_LEVELS:
            return f"{name}: must be one of {', '.join(LOG_LEVELS)}, got {level!r}"
    return None


def _share(value: float) -> str | None:
    return None if 0 < value <= 1 else f"must be more than 0 and at most 1, got {value!r}"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"must be between 0 and 65535, got {value!r}"


CHECKS: dict[tuple[str, str], _Check] = {
    ("matrix", "homeserver"): _homeserver,
    ("matrix", "user_id"): _user_id,
    ("matrix", "password"): _secret,
    ("matrix", "access_token"): _secret,
    ("matrix", "device_id"): _device_id,
    ("matrix", "sync_long_poll_s"): _positive,
    ("matrix", "pickle_key"): _pickle_key,
    ("agents", "registry_path"): _non_empty,
    ("agents", "default_base_url"): _agent_url,
    ("agents", "workspace_dir"): _non_empty,
    ("agents", "connect_timeout_s"): _positive,
    ("agents", "status_timeout_s"): _positive,
    ("agents", "first_text_timeout_s"): _positive,
    ("agents", "idle_timeout_s"): _positive,
    ("agents", "total_timeout_s"): _positive,
    ("agents", "retries"): _at_least(0),
    ("agents", "retry_base_s"): _non_negative,
    ("agents", "max_frame_bytes"): _at_least(1024),
    ("bot", "brand"): _non_empty,
    ("bot", "locale"): _choice(LOCALES),
    ("bot", "allowed_users"): _patterns,
    ("bot", "room_queue_size"): _at_least(1),
    ("bot", "max_file_bytes"): _at_least(1),
    ("bot", "shutdown_grace_s"): _non_negative,
    ("bot", "max_event_attempts"): _at_least(1),
    ("bot", "max_outgoing_file_bytes"): _optional(_at_least(1)),
    ("bot", "incoming_retention_days"): _non_negative,
    ("bot", "max_chats_per_user"): _at_least(1),
    ("bot", "max_staged_files"): _at_least(1),
    ("bot", "thread_context"): _choice(THREAD_CONTEXTS),
    ("bot", "merge_max_messages"): _at_least(1),
    ("streaming", "first_message_after_s"): _non_negative,
    ("streaming", "first_edit_after_s"): _non_negative,
    ("streaming", "min_edit_interval_s"): _positive,
    ("streaming", "max_edit_interval_s"): _positive,
    ("streaming", "max_edits_per_message"): _at_least(1),
    ("streaming", "idle_flush_s"): _positive,
    ("streaming", "typing_lease_s"): _positive,
    ("streaming", "max_reply_chars"): _at_least(1_000),
    ("log", "format"): _choice(LOG_FORMATS),
    ("log", "level"): _choice(LOG_LEVELS),
    ("log", "levels"): _logger_levels,
    ("ops", "host"): _non_empty,
    ("ops", "port"): _port,
    ("", "state_dir"): _non_empty,
    ("budget", "turns_per_minute"): _positive,
    ("budget", "turns_burst"): _at_least(1),
    ("budget", "commands_per_minute"): _positive,
    ("budget", "commands_burst"): _at_least(1),
    ("budget", "files_per_minute"): _positive,
    ("budget", "files_burst"): _at_least(1),
    ("usage", "monthly_token_budget"): _optional(_at_least(1)),
    ("usage", "warn_at"): _share,
    ("context", "transcript_max_entries"): _at_least(1),
    ("context", "transcript_max_bytes"): _at_least(1_024),
    ("context", "entry_max_chars"): _at_least(100),
    ("context", "retention_days"): _non_negative,
    ("context", "max_snapshots"): _at_least(1),
    ("context", "primer_max_chars"): _at_least(1_000),
    ("presence", "probe_interval_s"): _positive,
    ("presence", "probe_jitter_s"): _non_negative,
    ("presence", "probe_concurrency"): _at_least(1),
    ("presence", "away_status_s"): _positive,
    ("presence", "away_failures"): _at_least(1),
    ("presence", "away_window_s"): _positive,
    ("presence", "offline_wait_s"): _non_negative,
}
