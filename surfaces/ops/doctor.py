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
    workspace:<id>  the agent's workspace directory exists and is writable (missing: a
                 warning, since only files need it and the bot creates it on the first
                 file when it can; the warning says whether it can)

Each line is ``✓`` (ok), ``!`` (warning: works, but look at it), ``✗`` (failed, with
a one-line fix) or ``-`` (skipped). Exit code 1 if any check failed, else 0 (warnings
do not fail). The first line names the version. ``--json`` prints
``{"version": ..., "python": ..., "ok": bool, "checks": [...]}`` instead, and nothing
else on stdout (log lines go to stderr, as JSON). Every network check has its own
deadline (``NETWORK_DEADLINE_S``).

The checklist type and its rendering live in ``_checklist``, the local file checks
(state directory, workspaces) in ``_local_checks``.

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
import os
import platform
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import trio

from agent_client import AgentClient, AgentFailure, Connector
from matrix_client import MatrixClient, MatrixError, RetryPolicy, TransportError, UnknownTokenError
from surfaces import __version__, version_text
from surfaces.agents import probe_limits
from surfaces.config import (
    AgentRegistry,
    AgentSpec,
    Config,
    ConfigError,
    load_config_and_registry,
    redact_url,
)
from surfaces.ops._checklist import (
    FAIL,
    MARKS,
    OK,
    SKIP,
    WARN,
    Check,
    Status,
    failed,
    render_json,
    render_text,
)
from surfaces.ops._local_checks import (
    DB_NAME,
    StateInfo,
    WriteProbe,
    check_state_dir,
    check_workspace,
    probe_write,
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
    "DB_NAME",
    "DEVICE_KEY",
    "FAIL",
    "MARKS",
    "NETWORK_DEADLINE_S",
    "OK",
    "PROBE_CHAT_ID_BASE",
    "SKIP",
    "TOKEN_KEY",
    "WARN",
    "Check",
    "StateInfo",
    "Status",
    "check_state_dir",
    "check_workspace",
    "failed",
    "main",
    "probe_write",
    "render_json",
    "render_text",
    "run_checks",
]

NETWORK_DEADLINE_S = 10.0
#: Probe chat ids: far above any platform chat id the bot allocates, so a probe never
#: touches a real conversation's memory. Agent n (registry order) gets base + n.
PROBE_CHAT_ID_BASE = 999_000_000_000
MIN_MEDIA_VERSION = (1, 11)
_RETRY = RetryPolicy(max_attempts=2, base_s=0.2, max_s=1.0, max_429_wait_s=5.0)
_VERSION_RE = re.compile(r"^[rv](\d+)\.(\d+)")


# --------------------------------------------------------------------------- config


def check_config(
    path: str | None, environ: Mapping[str, str]
) -> tuple[Check, Config | None, AgentRegistry | None]:
    source = path or environ.get("SURFACES_CONFIG") or "environment only"
    try:
        config, registry = load_config_and_registry(path, environ)
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
            # With encryption the bot's device is the one its keys belong to, which a
            # lost database may have moved away from MATRIX_DEVICE_ID: stay on it.
            device = state.stored_device if m.encryption else None
            login = await password_login(client, m, device_id=device)
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


async def check_agent(client: AgentClient, spec: AgentSpec, platform_chat_id: str) -> Check:
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
            result = await client.probe(spec.base_url, platform_chat_id)
    except trio.TooSlowError:
        return Check(name, FAIL, f"{url}: no STATUS within {client.limits.total_s + 5:g} s", fix)
    except AgentFailure as failure:
        return Check(
            name,
            FAIL,
            f"{spec.label} at {url}: {failure}",
            fix,
            {"code": failure.code, "phase": failure.phase, "platform_chat_id": platform_chat_id},
        )
    return Check(
        name,
        OK,
        f"{spec.label} at {url}: STATUS in {result.status_s * 1000:.0f} ms",
        details={
            "platform_chat_id": platform_chat_id,
            "connect_s": result.connect_s,
            "status_s": result.status_s,
        },
    )


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
    # stdout is the checklist (or the JSON document, and nothing else); library
    # warnings go to stderr, as JSON lines with --json.
    configure_logging("json" if args.json else "console", "warning")
    checks = trio.run(
        lambda: run_checks(
            args.config,
            os.environ if environ is None else environ,
            login=args.login,
            transport=transport,
            connector=connector,
        )
    )
    if args.json:
        print(render_json(checks, version=__version__, python=platform.python_version()))
    else:
        print(render_text(checks, title=f"surfaces doctor — {version_text()}"))
    return 1 if failed(checks) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
