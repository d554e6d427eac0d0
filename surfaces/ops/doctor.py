"""``surfaces doctor [--config PATH] [--json] [--login]``: is this deployment healthy?

Checks, in order (later checks are skipped when what they need failed)::

    config       load_config + the agent registry (the same validation as start-up)
    homeserver   GET /_matrix/client/versions answers; v1.11 (authenticated media)
                 advertised, else a warning (the bot falls back to legacy media)
    credentials  the configured access token (whoami), else the token the bot saved in
                 its state DB, else: see "Password-only configurations" below
    device       the device id the credentials use vs MATRIX_DEVICE_ID and vs the one
                 the bot used last time (txn ids are scoped per device)
    state_dir    exists (or can be created), writable; surfaces.db, if present, opens
                 read-only and passes PRAGMA integrity_check
    agent:<id>   connect → STATUS (AgentClient.probe, no message sent) with a chat id
                 from the reserved range 999000000000+ (never a real conversation)
    workspace:<id>  the agent's workspace directory exists and is writable

Each line is ``✓`` (ok), ``!`` (warning: works, but look at it), ``✗`` (failed, with
a one-line fix) or ``-`` (skipped). Exit code 1 if any check failed, else 0 (warnings
do not fail). ``--json`` prints ``{"ok": bool, "checks": [...]}`` instead. Every
network check has its own deadline (``NETWORK_DEADLINE_S``).

Password-only configurations: doctor does not log in by default. A login creates an
access token (and, with a new device id, a new device that other users' clients see),
and logging out afterwards would delete the device — the bot's own device, if doctor
used the bot's device id, which would log the running bot out. So without a token to
test, the credentials check is a warning saying the bot logs in at start. With
``--login`` doctor logs in once on the bot's own fixed device id (no new device) and
stores the token in the state DB exactly where the bot looks for it, so the bot
reuses it instead of creating another; nothing is logged out. Use ``--login`` while
the bot is stopped: a homeserver may revoke a device's older tokens on a new login to
it (the fake homeserver does; Synapse 1.163 does not), which would end the running
bot's session.

Test seams: :func:`run_checks` accepts an httpx ``transport`` (``FakeHomeserver``
behind ``httpx.MockTransport``), an agent ``connector`` (memory streams) and
``probe_write`` (the writability probe).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from agent_client import AgentClient, AgentFailure, Connector
from matrix_client import MatrixClient, MatrixError, RetryPolicy, TransportError, UnknownTokenError
from surfaces.agents import probe_limits
from surfaces.config import (
    AgentRegistry,
    AgentSpec,
    Config,
    ConfigError,
    load_config,
    load_registry,
    redact_url,
)
from surfaces.session import (
    DEVICE_KEY,
    TOKEN_KEY,
    Credential,
    LoginRejected,
    credential_plan,
    identity_problem,
    password_login,
)
from surfaces.state import Store

__all__ = [
    "NETWORK_DEADLINE_S",
    "PROBE_CHAT_ID_BASE",
    "Check",
    "main",
    "render_text",
    "run_checks",
]

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MARKS = {OK: "✓", WARN: "!", FAIL: "✗", SKIP: "-"}
NETWORK_DEADLINE_S = 10.0
#: Probe chat ids: far above any platform chat id the bot allocates, so a probe never
#: touches a real conversation's memory. Agent n (registry order) gets base + n.
PROBE_CHAT_ID_BASE = 999_000_000_000
DB_NAME = "surfaces.db"
MIN_MEDIA_VERSION = (1, 11)
_RETRY = RetryPolicy(max_attempts=2, base_s=0.2, max_s=1.0, max_429_wait_s=5.0)
_VERSION_RE = re.compile(r"^[rv](\d+)\.(\d+)")


@attrs.frozen
class Check:
    """One line of the checklist."""

    name: str
    status: str  # ok | warn | fail | skip
    summary: str
    fix: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "fix": self.fix,
            "details": dict(self.details),
        }


WriteProbe = Callable[[Path], None]


def probe_write(directory: Path) -> None:
    """Create and delete a file in ``directory`` (raises OSError if that fails).

    An actual write, not ``os.access``: root passes ``os.access`` everywhere, and a
    read-only mount only shows on a write.
    """
    probe = directory / f".surfaces-doctor-{uuid.uuid4().hex[:8]}"
    probe.write_bytes(b"")
    probe.unlink()


# --------------------------------------------------------------------------- config


def check_config(
    path: str | None, environ: Mapping[str, str]
) -> tuple[Check, Config | None, AgentRegistry | None]:
    source = path or environ.get("SURFACES_CONFIG") or "environment only"
    try:
        config = load_config(path, environ)
        registry = load_registry(
            config.agents.registry_path,
            default_base_url=config.agents.default_base_url,
            workspace_dir=config.agents.workspace_dir,
        )
    except ConfigError as error:
        return (
            Check(
                "config",
                FAIL,
                f"invalid configuration ({source}): " + "; ".join(error.lines),
                "fix the fields named above (`surfaces check-config` shows the effective settings)",
                {"source": source, "problems": list(error.lines)},
            ),
            None,
            None,
        )
    n = len(registry.agents)
    return (
        Check(
            "config",
            OK,
            f"valid ({source}); bot {config.matrix.user_id}, {n} agent{'s' * (n != 1)}",
            details={"source": source, "agents": [a.id for a in registry.agents]},
        ),
        config,
        registry,
    )


# --------------------------------------------------------------------------- homeserver


def _version_tuple(version: str) -> tuple[int, int] | None:
    match = _VERSION_RE.match(version)
    return (int(match[1]), int(match[2])) if match else None


def _network_problem(exc: BaseException) -> str:
    if isinstance(exc, MatrixError):
        return f"HTTP {exc.status} {exc.errcode or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


async def check_homeserver(client: MatrixClient, homeserver: str) -> Check:
    url = redact_url(homeserver)
    try:
        with trio.fail_after(NETWORK_DEADLINE_S):
            versions = await client.versions()
    except trio.TooSlowError:
        return Check(
            "homeserver",
            FAIL,
            f"{url}: no answer to /versions within {NETWORK_DEADLINE_S:g} s",
            "check MATRIX_HOMESERVER and that the bot's network reaches the homeserver",
        )
    except (MatrixError, TransportError, httpx.HTTPError, OSError) as exc:
        return Check(
            "homeserver",
            FAIL,
            f"{url}: /versions failed: {_network_problem(exc)}",
            "check MATRIX_HOMESERVER (the client-server API base URL, e.g. https://matrix.example.org)",
        )
    parsed = [v for v in map(_version_tuple, versions.versions) if v is not None]
    latest = max(parsed, default=None)
    details = {"url": url, "versions": list(versions.versions)}
    latest_text = f"v{latest[0]}.{latest[1]}" if latest else "none"
    if latest is None or latest < MIN_MEDIA_VERSION:
        return Check(
            "homeserver",
            WARN,
            f"{url} answers, but advertises no v1.11 (latest {latest_text}): no authenticated "
            "media; the bot falls back to the legacy media API",
            "upgrade the homeserver (Synapse ≥ 1.111) — legacy media may be disabled",
            details,
        )
    return Check(
        "homeserver", OK, f"{url} answers /versions (up to {latest_text})", details=details
    )


# --------------------------------------------------------------------------- state dir


@attrs.frozen
class StateInfo:
    check: Check
    stored_token: str | None = attrs.field(default=None, repr=False)
    stored_device: str | None = None
    db_path: Path | None = None


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_state_dir(config: Config, write: WriteProbe = probe_write) -> StateInfo:
    """Blocking (file system, SQLite): call through ``trio.to_thread``."""
    state = Path(config.state_dir).expanduser().resolve()
    fix_dir = f"set SURFACES_STATE_DIR to a writable directory (now {state})"
    if state.exists() and not state.is_dir():
        return StateInfo(Check("state_dir", FAIL, f"{state} is not a directory", fix_dir))
    if not state.exists():
        parent = _nearest_existing(state)
        if not parent.is_dir():
            return StateInfo(
                Check("state_dir", FAIL, f"{state} cannot be created ({parent} is a file)", fix_dir)
            )
        try:
            write(parent)
        except OSError as exc:
            return StateInfo(
                Check("state_dir", FAIL, f"{state} cannot be created: {parent}: {exc}", fix_dir)
            )
        return StateInfo(
            Check("state_dir", OK, f"{state} does not exist yet; the bot will create it"),
            db_path=state / DB_NAME,
        )
    try:
        write(state)
    except OSError as exc:
        return StateInfo(Check("state_dir", FAIL, f"{state} is not writable: {exc}", fix_dir))
    db = state / DB_NAME
    if not db.exists():
        return StateInfo(
            Check("state_dir", OK, f"{state} writable; no database yet (first start)"), db_path=db
        )
    try:
        info = Store.inspect(db, keys=(TOKEN_KEY, DEVICE_KEY))
    except sqlite3.Error as exc:
        return StateInfo(
            Check(
                "state_dir",
                FAIL,
                f"{db} cannot be read: {exc}",
                "stop the bot, move the file aside (keep it for analysis) and restart: the bot "
                "rebuilds chats and bindings from Matrix",
            ),
            db_path=db,
        )
    result, schema, kv = info.integrity, info.schema_version, info.values
    if result != ["ok"]:
        return StateInfo(
            Check(
                "state_dir",
                FAIL,
                f"{db} is damaged: integrity_check: {'; '.join(result[:3])}",
                "stop the bot, restore a backup or move the file aside; the bot rebuilds from "
                "Matrix",
                {"integrity_check": result[:20]},
            ),
            db_path=db,
        )
    return StateInfo(
        Check(
            "state_dir",
            OK,
            f"{state} writable; {DB_NAME} passes integrity_check (schema v{schema})",
            details={"path": str(state), "schema_version": schema},
        ),
        stored_token=kv.get(TOKEN_KEY),
        stored_device=kv.get(DEVICE_KEY),
        db_path=db,
    )


# --------------------------------------------------------------------------- credentials


async def _whoami(client: MatrixClient, token: str) -> Any:
    client.access_token = token
    with trio.fail_after(NETWORK_DEADLINE_S):
        return await client.whoami()


async def check_credentials(
    client: MatrixClient, config: Config, state: StateInfo, *, login: bool
) -> tuple[Check, Any]:
    """Returns the check and the whoami answer (None when not verified)."""
    m = config.matrix
    name = "credentials"
    plan = credential_plan(m, state.stored_token)
    try:
        if not plan:
            return Check(
                name,
                FAIL,
                "neither MATRIX_ACCESS_TOKEN nor MATRIX_PASSWORD is set",
                "set MATRIX_PASSWORD (the bot logs in once and keeps its device) or "
                "MATRIX_ACCESS_TOKEN",
            ), None
        first = plan[0]
        if first is Credential.CONFIGURED_TOKEN:
            assert m.access_token is not None
            try:
                who = await _whoami(client, m.access_token.reveal())
            except UnknownTokenError:
                return Check(
                    name,
                    FAIL,
                    "MATRIX_ACCESS_TOKEN was rejected (M_UNKNOWN_TOKEN)",
                    "create a new access token for the bot, or unset it and set MATRIX_PASSWORD",
                ), None
        elif first is Credential.STORED_TOKEN:
            assert state.stored_token is not None
            try:
                who = await _whoami(client, state.stored_token)
            except UnknownTokenError:
                if Credential.PASSWORD not in plan:
                    return Check(
                        name,
                        FAIL,
                        "the token saved in the state DB expired and no MATRIX_PASSWORD is set",
                        "set MATRIX_PASSWORD (or MATRIX_ACCESS_TOKEN)",
                    ), None
                return Check(
                    name,
                    WARN,
                    "the token saved in the state DB expired; the bot logs in with "
                    f"MATRIX_PASSWORD at start (device {m.device_id})",
                    "none needed; `surfaces doctor --login` verifies the password now",
                ), None
        elif not login:
            return Check(
                name,
                WARN,
                f"password not verified: the bot logs in at start (device {m.device_id}); "
                "doctor does not log in unasked",
                "run `surfaces doctor --login` to verify it (logs in on the bot's own device; "
                "the token is saved for the bot)",
            ), None
        else:
            return await _password_login(client, config, state)
        source = first.value
    except trio.TooSlowError:
        return Check(
            name,
            FAIL,
            f"the homeserver did not answer within {NETWORK_DEADLINE_S:g} s",
            "check the homeserver's health",
        ), None
    except (MatrixError, TransportError, httpx.HTTPError, OSError) as exc:
        return Check(
            name, FAIL, f"whoami failed: {_network_problem(exc)}", "check the homeserver"
        ), None
    if identity_problem(who, m) is not None:
        return Check(
            name,
            FAIL,
            f"{source} belongs to {who.user_id}, not MATRIX_USER_ID={m.user_id}",
            "use the bot account's own token, or fix MATRIX_USER_ID",
        ), who
    return Check(name, OK, f"{source} is valid for {who.user_id}"), who


async def _password_login(
    client: MatrixClient, config: Config, state: StateInfo
) -> tuple[Check, Any]:
    m = config.matrix
    try:
        with trio.fail_after(NETWORK_DEADLINE_S):
            login = await password_login(client, m)
            who = await client.whoami()
    except LoginRejected as exc:
        return Check(
            "credentials",
            FAIL,
            f"login as {m.user_id} failed: {exc.reason}",
            "check MATRIX_USER_ID / MATRIX_PASSWORD",
        ), None
    saved = ""
    if state.db_path is not None:
        store = await Store.open(state.db_path)  # creates and migrates it, as the bot would
        try:
            await store.set_value(TOKEN_KEY, login.access_token)
        finally:
            store.close()
        saved = "; token saved in the state DB for the bot"
    return Check(
        "credentials",
        OK,
        f"password login as {who.user_id} works (device {login.device_id}){saved}",
    ), who


def check_device(config: Config, who: Any, state: StateInfo) -> Check:
    current = getattr(who, "device_id", None)
    configured = config.matrix.device_id
    if current is None:
        return Check("device", SKIP, "credentials not verified; device id unknown")
    if state.stored_device and state.stored_device != current:
        return Check(
            "device",
            WARN,
            f"device changed: the bot last ran as {state.stored_device}, the credentials now "
            f"use {current}",
            "keep one device per bot (txn ids are per device: a replay after a device change "
            "may repeat a message)",
            {"current": current, "previous": state.stored_device, "configured": configured},
        )
    if config.matrix.access_token is not None and current != configured:
        return Check(
            "device",
            WARN,
            f"the access token is for device {current}, but MATRIX_DEVICE_ID is {configured}",
            f"set MATRIX_DEVICE_ID={current} so a later password login keeps the same device",
            {"current": current, "configured": configured},
        )
    return Check("device", OK, f"stable device id {current}", details={"current": current})


# --------------------------------------------------------------------------- agents


async def check_agent(client: AgentClient, spec: AgentSpec, chat_id: str) -> Check:
    name = f"agent:{spec.id}"
    url = redact_url(spec.base_url)
    fix = (
        f"check that agent {spec.id!r} runs and that {url} (registry base_url / "
        "AGENT_BASE_URL) reaches it from the bot"
    )
    try:
        # The client's own limits (connect/status/total) fire first, with a precise
        # phase; this deadline is only a safety net.
        with trio.fail_after(client.limits.total_s + 5):
            result = await client.probe(spec.base_url, chat_id)
    except trio.TooSlowError:
        return Check(name, FAIL, f"{url}: no STATUS within {client.limits.total_s + 5:g} s", fix)
    except AgentFailure as failure:
        return Check(
            name,
            FAIL,
            f"{spec.label} at {url}: {failure}",
            fix,
            {"code": failure.code, "phase": failure.phase, "chat_id": chat_id},
        )
    return Check(
        name,
        OK,
        f"{spec.label} at {url}: STATUS in {result.status_s * 1000:.0f} ms",
        details={"chat_id": chat_id, "connect_s": result.connect_s, "status_s": result.status_s},
    )


def check_workspace(spec: AgentSpec, write: WriteProbe = probe_write) -> Check:
    """Blocking (file system): call through ``trio.to_thread``."""
    name = f"workspace:{spec.id}"
    path = Path(spec.workspace_path).expanduser()
    fix_env = "(SURFACES_WORKSPACE_DIR or the registry's workspace_path)"
    if not path.exists():
        return Check(
            name,
            FAIL,
            f"{path} does not exist",
            f"mount the agent's shared workspace volume at {path} or fix the path {fix_env}",
        )
    if not path.is_dir():
        return Check(name, FAIL, f"{path} is not a directory", f"fix the path {fix_env}")
    try:
        write(path)
    except OSError as exc:
        return Check(
            name,
            FAIL,
            f"{path} is not writable: {exc.strerror or exc}",
            f"give the bot's user write access to {path} (incoming files are stored there)",
        )
    return Check(name, OK, f"{path} exists and is writable")


# --------------------------------------------------------------------------- all


async def run_checks(
    config_path: str | None,
    environ: Mapping[str, str],
    *,
    login: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    connector: Connector | None = None,
    write: WriteProbe = probe_write,
) -> list[Check]:
    """Every check, in checklist order. Never raises for a failed check."""
    config_check, config, registry = check_config(config_path, environ)
    checks = [config_check]
    if config is None or registry is None:
        skipped = ("homeserver", "credentials", "device", "state_dir", "agents", "workspaces")
        checks.extend(Check(n, SKIP, "needs a valid configuration") for n in skipped)
        return checks

    state = await trio.to_thread.run_sync(check_state_dir, config, write)
    async with MatrixClient(config.matrix.homeserver, retry=_RETRY, transport=transport) as client:
        homeserver = await check_homeserver(client, config.matrix.homeserver)
        checks.append(homeserver)
        if homeserver.status == FAIL:
            checks.append(Check("credentials", SKIP, "homeserver unreachable"))
            checks.append(Check("device", SKIP, "homeserver unreachable"))
        else:
            credentials, who = await check_credentials(client, config, state, login=login)
            checks.append(credentials)
            checks.append(check_device(config, who, state))
    checks.append(state.check)

    limits = probe_limits(config.agents, cap_s=NETWORK_DEADLINE_S)
    agents = AgentClient(limits, connector=connector)
    results: list[Check | None] = [None] * len(registry.agents)

    async def probe(index: int, spec: AgentSpec) -> None:
        results[index] = await check_agent(agents, spec, str(PROBE_CHAT_ID_BASE + index))

    async with trio.open_nursery() as nursery:  # agents are probed concurrently
        for index, spec in enumerate(registry.agents):
            nursery.start_soon(probe, index, spec)
    checks.extend(c for c in results if c is not None)
    seen: set[Path] = set()
    for spec in registry.agents:
        if spec.workspace_path in seen:
            continue
        seen.add(spec.workspace_path)
        checks.append(await trio.to_thread.run_sync(check_workspace, spec, write))
    return checks


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


def render_text(checks: Sequence[Check]) -> str:
    lines = ["surfaces doctor"]
    for c in checks:
        lines.append(f"{MARKS[c.status]} {c.name}: {c.summary}")
        if c.fix and c.status in (FAIL, WARN):
            lines.append(f"    fix: {c.fix}")
    counts = {s: sum(1 for c in checks if c.status == s) for s in (OK, WARN, FAIL, SKIP)}
    lines.append(
        f"{counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failed, {counts[SKIP]} skipped"
    )
    return "\n".join(lines)


def render_json(checks: Sequence[Check]) -> str:
    return json.dumps(
        {"ok": not failed(checks), "checks": [c.as_dict() for c in checks]},
        indent=2,
        ensure_ascii=False,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surfaces doctor",
        description="Check the deployment: config, homeserver, credentials, device, state "
        "directory, agents, workspaces. Exit 1 if a check failed.",
    )
    parser.add_argument("--config", metavar="PATH", help="YAML config (default: $SURFACES_CONFIG)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--login",
        action="store_true",
        help="with a password-only config, verify it by logging in on the bot's own device "
        "(the token is saved in the state DB for the bot; nothing is logged out). "
        "Use it while the bot is stopped.",
    )
    return parser


def main(
    argv: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    connector: Connector | None = None,
) -> int:
    """Entry point; ``environ``, ``transport`` and ``connector`` are test seams."""
    from surfaces.logs import configure_logging

    args = build_parser().parse_args(argv)
    # stdout is the checklist (or JSON); library warnings go to stderr.
    configure_logging("console", "warning")
    checks = trio.run(
        lambda: run_checks(
            args.config,
            os.environ if environ is None else environ,
            login=args.login,
            transport=transport,
            connector=connector,
        )
    )
    print(render_json(checks) if args.json else render_text(checks))
    return 1 if failed(checks) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
