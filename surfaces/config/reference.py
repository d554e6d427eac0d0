"""The configuration reference, generated from the config classes.

``docs/configuration.md`` embeds :func:`render_reference` between two marker
lines; a test fails when a field is added without a description or the docs are
stale. Regenerate with ``python -m surfaces.config.reference --write``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

from surfaces.config import LEGACY_ENV, Config, env_name

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m surfaces.config.reference --write) -->"
END = "<!-- END GENERATED REFERENCE -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

HELP: dict[str, str] = {
    "matrix.homeserver": "Homeserver base URL (http or https).",
    "matrix.user_id": "The bot's MXID, `@bot:example.org`.",
    "matrix.password": "Password login (with the fixed device id). One of password / access token.",
    "matrix.access_token": "An existing access token instead of a password.",
    "matrix.device_id": (
        "Fixed device id: transaction ids are scoped per device, so keeping it stable keeps "
        "retried sends exactly-once across restarts."
    ),
    "matrix.sync_long_poll_s": "Long-poll timeout of `/sync`.",
    "matrix.encryption": (
        "End-to-end encryption (Olm/Megolm): rooms the bot creates are encrypted and it "
        "reads and writes encrypted rooms and DMs. `false`: unencrypted rooms, and one "
        "notice in an encrypted DM that the bot cannot read it."
    ),
    "matrix.pickle_key": (
        "Passphrase (16+ characters) that encrypts the bot's keys in the state database. "
        "Unset: a random key in `{state_dir}/pickle.key` (mode 0600). Back it up with the "
        "database; without it the crypto state cannot be opened."
    ),
    "agents.registry_path": (
        "Agent registry YAML (see below). Unset: one agent `default` at `AGENT_BASE_URL` "
        "with the workspace `workspace_dir`."
    ),
    "agents.default_base_url": "Base URL for agents without their own `base_url`.",
    "agents.workspace_dir": (
        "Bot-side root of agent workspaces; an agent's default workspace is "
        "`{workspace_dir}/{agent id}`."
    ),
    "agents.connect_timeout_s": "Deadline to open the agent WebSocket.",
    "agents.status_timeout_s": "Deadline for the agent's first frame (`STATUS`).",
    "agents.first_text_timeout_s": "Deadline for the first text of a reply.",
    "agents.idle_timeout_s": "Longest gap between two agent frames.",
    "agents.total_timeout_s": "Longest whole turn.",
    "agents.retries": "Automatic retries of a turn that failed before any text arrived.",
    "agents.retry_base_s": "First retry delay (doubles per retry).",
    "agents.max_frame_bytes": "Largest agent frame accepted (larger: protocol error).",
    "bot.brand": "Brand word in Space names: `{brand} — {display name}`.",
    "bot.locale": "Reply language: `ru` or `en`.",
    "bot.allowed_users": (
        "MXID glob patterns allowed to use the bot (comma-separated in the environment). "
        "Empty: the bot's own homeserver only (`@*:server`)."
    ),
    "bot.room_queue_size": (
        "Turns that may wait per room behind the running one (each up to "
        "`merge_max_messages` merged messages); further messages are refused with one "
        "busy notice."
    ),
    "bot.max_file_bytes": "Largest file accepted from a user.",
    "bot.shutdown_grace_s": "How long running turns may finish after SIGTERM/SIGINT.",
    "bot.max_event_attempts": "Processing attempts of one event before it is marked failed.",
    "bot.max_outgoing_file_bytes": (
        "Largest file the bot uploads when the agent sends one (larger: a notice instead). "
        "Unset: the same as `bot.max_file_bytes`."
    ),
    "bot.incoming_retention_days": (
        "Days a file in the agent's `incoming/` is kept after a turn carried it to the "
        "agent; `0` keeps them. Files taken off the list with `!remove` are deleted at once."
    ),
    "bot.max_chats_per_user": (
        "Chats one user may have, archived ones included (the bot stays in them); `!new` "
        "past it is answered with a notice."
    ),
    "bot.max_staged_files": (
        "Files one user may have waiting in one room for the next message; more are "
        "refused with one notice."
    ),
    "bot.thread_context": (
        "`thread`: a Matrix thread is its own agent conversation (own platform chat id); "
        "`room`: threads share the room's."
    ),
    "bot.merge_max_messages": (
        "Messages that waited behind a running turn are merged into the next one, up to "
        "this many per turn (in order, each delimited)."
    ),
    "streaming.first_message_after_s": (
        "Text arriving this soon after the reply's first text joins its first message "
        "(an agent that answers at once in many chunks gets one message, no edit)."
    ),
    "streaming.first_edit_after_s": "Delay of the first edit after the reply's first message.",
    "streaming.min_edit_interval_s": "Gap after the first edit; grows ×1.5 per edit.",
    "streaming.max_edit_interval_s": "Largest gap between edits.",
    "streaming.max_edits_per_message": "Edit cap per message (the final edit is extra).",
    "streaming.idle_flush_s": "Pending text is shown after this pause in the agent stream.",
    "streaming.typing_lease_s": "Typing notification lease (refreshed at 80 %).",
    "streaming.max_reply_chars": (
        "Longest reply kept, in characters; the rest is read and dropped, and the reply "
        'ends with `…` and a "truncated" mark.'
    ),
    "log.format": "`console` or `json`.",
    "log.level": (
        "`debug`, `info`, `warning`, `error` or `critical`. Libraries that log through "
        "the standard `logging` module (httpx, trio-websocket) show `warning` and up "
        "unless `log.levels` names them."
    ),
    "log.levels": (
        "Levels per logger, by dotted name prefix: `{httpx: debug, matrix_client: info}` "
        "in YAML, `httpx=debug,matrix_client=info` in the environment. The longest "
        "matching prefix wins; other loggers use `log.level`."
    ),
    "ops.enabled": "Serve `/healthz`, `/readyz` and `/metrics`.",
    "ops.host": "Address of the ops server.",
    "ops.port": "Port of the ops server.",
    "state_dir": "Where the SQLite state database lives (`surfaces.db`).",
    "budget.turns_per_minute": (
        "Messages for the agent one user may send per minute, sustained (a token bucket, "
        "all rooms together); past the budget they are not answered and one notice says so."
    ),
    "budget.turns_burst": "Messages one user may send at once before the rate applies.",
    "budget.commands_per_minute": "Commands (and invites) per user and minute, sustained.",
    "budget.commands_burst": "Commands one user may send at once.",
    "budget.files_per_minute": "Files per user and minute, sustained.",
    "budget.files_burst": "Files one user may send at once.",
    "usage.monthly_token_budget": (
        "Tokens one user may use per calendar month (UTC), all chats together; unset: no "
        "budget. Past it, messages for the agent get a notice instead of an answer until "
        "the month ends (commands keep working). Per user: `user_budgets` in the registry."
    ),
    "usage.warn_at": (
        "Share of the budget (0–1] at which the user is told, once a month, that it is "
        "nearly spent."
    ),
    "context.transcript_max_entries": (
        "Exchanges (a turn's words, the agent's final reply, file names) the transcript "
        "keeps per conversation; the oldest go first, in the turn's own transaction."
    ),
    "context.transcript_max_bytes": (
        "UTF-8 bytes of text the transcript keeps per conversation; the oldest exchanges "
        "go first (the newest always stays)."
    ),
    "context.entry_max_chars": (
        "Each side of an exchange (the user's words, the agent's reply) is cut to this "
        "many characters in the transcript (with `…`)."
    ),
    "context.retention_days": (
        "Days an exchange is kept (pruned every 6 h); `0`: until the bounds push it out. "
        "Snapshots are kept until `!forget` in their room."
    ),
    "context.max_snapshots": (
        "Snapshots (`!save`) one user may keep; past it `!save` with a new name is refused "
        "(the same name overwrites)."
    ),
    "context.primer_max_chars": (
        "Largest transcript primer `!load`/`!restore` send to the agent, in characters; "
        "the oldest exchanges are left out first."
    ),
    "presence.probe_interval_s": (
        "How often every registry agent is probed (connect → `STATUS`, under the agent "
        "connect/status deadlines). A real turn counts as a probe too."
    ),
    "presence.probe_jitter_s": (
        "Each wait between probes is `probe_interval_s` ± up to this much, at random, so "
        "agents are not probed in lock-step. Less than `probe_interval_s`."
    ),
    "presence.probe_concurrency": "Probes in flight at once, over all agents.",
    "presence.away_status_s": (
        "An agent whose `STATUS` takes longer than this (seconds after connecting) is "
        "*away* (answers, but degraded)."
    ),
    "presence.away_failures": (
        "This many failed turns within `away_window_s` make an answering agent *away*; "
        "a turn that succeeds clears them."
    ),
    "presence.away_window_s": "The window in which failed turns count for *away*.",
    "presence.offline_wait_s": (
        "A message for an agent known to be *offline* gets a notice and waits up to this "
        "long for the agent to come back (then it runs; still offline: the usual failure "
        "notice). `0`: no waiting, the turn fails after the connect timeout."
    ),
    "presence.bot_presence": (
        "Set the bot's own Matrix presence from its agents: `online` (all online), "
        "`unavailable` with a status message naming the problem, `offline` on shutdown."
    ),
}


def fields() -> list[tuple[str, str, object]]:
    """(dotted name, environment name, default) for every config field."""
    out: list[tuple[str, str, object]] = []
    legacy = {v: k for k, v in LEGACY_ENV.items()}
    for section in attrs.fields(Config):
        if attrs.has(section.type):
            for f in attrs.fields(section.type):
                env = legacy.get((section.name, f.name)) or env_name(section.name, f.name)
                out.append((f"{section.name}.{f.name}", env, f.default))
        else:
            env = legacy.get(("", section.name)) or env_name("", section.name)
            out.append((section.name, env, section.default))
    return out


def _default(value: object) -> str:
    if isinstance(value, attrs.Factory):  # type: ignore[arg-type]  # attrs.Factory is a class
        value = value.factory()
    if value is attrs.NOTHING:
        return "**required**"
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return "`[]`" if not value else f"`{list(value)}`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def render_reference() -> str:
    lines = ["| Field (YAML) | Environment | Default | Meaning |", "|---|---|---|---|"]
    for name, env, default in fields():
        lines.append(f"| `{name}` | `{env}` | {_default(default)} | {HELP[name]} |")
    return "\n".join(lines)


def splice(doc: str) -> str:
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{render_reference()}\n{END}{tail}"


if __name__ == "__main__":  # pragma: no cover - developer tool
    text = DOC.read_text(encoding="utf-8")
    if "--write" in sys.argv:
        DOC.write_text(splice(text), encoding="utf-8")
    else:
        print(render_reference())
