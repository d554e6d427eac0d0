"""``surfaces check-agents``: is every registered agent reachable and speaking?

For each agent: connect → expect STATUS (``AgentClient.probe``) → optionally one
real turn with ``--message``. Prints a table (or ``--json``) with the stage reached,
the presence state the bot would give it from this probe (online / away / offline,
by ``presence.away_status_s``: ``surfaces.agents.presence``) and latencies; exit code
1 when any agent failed, 2 on configuration problems.

Chat ids: checks use ``CHECK_CHAT_ID_BASE + n`` (``999000000000``, ``999000000001``,
… one per agent in registry order). Platform chat ids are far below that range, so a
check never lands in (or pollutes the memory of) a real user's chat.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import trio

from agent_client import (
    AGENT_TIMEOUT,
    AgentClient,
    AgentFailure,
    Connector,
    TextChunk,
    TurnLimits,
)
from surfaces.agents import AgentPresence, Thresholds, turn_limits
from surfaces.config import load_config_and_registry_or_exit

CHECK_CHAT_ID_BASE = 999_000_000_000
STAGES = ("none", "connected", "status", "turn")
_PREVIEW_CHARS = 60
_CONCURRENCY = 8
DEFAULT_THRESHOLDS = Thresholds()


class AgentLike(Protocol):
    """What a check needs of ``surfaces.agents.AgentSpec``."""

    id: str
    label: str
    base_url: str


@attrs.frozen
class AgentCheckResult:
    """One agent's outcome. Latencies are milliseconds from the start of its check.

    ``stage``: ``none`` (could not connect), ``connected`` (handshake done, no
    STATUS), ``status`` (ready; the final stage without ``--message``) or ``turn``
    (the message got a complete reply).
    """

    agent_id: str
    label: str
    base_url: str
    platform_chat_id: str
    ok: bool
    stage: str
    connect_ms: float | None = None
    status_ms: float | None = None
    first_text_ms: float | None = None
    turn_ms: float | None = None
    error: str | None = None
    reply_preview: str | None = None
    #: The normalised presence from this probe: ``online``, ``away`` or ``offline``.
    state: str = "offline"

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def presence_of(result: AgentCheckResult, thresholds: Thresholds) -> str:
    """The state the bot's prober would give the agent for this probe."""
    presence = AgentPresence(thresholds)
    if result.connect_ms is not None and result.status_ms is not None:
        status_s = (result.status_ms - result.connect_ms) / 1000
        presence.observe_probe(ok=True, status_s=status_s, now=0.0, wall=0.0)
    else:
        presence.observe_probe(ok=False, status_s=None, now=0.0, wall=0.0)
    return presence.state.value


async def _check_one(
    spec: AgentLike,
    platform_chat_id: str,
    client: AgentClient,
    message: str | None,
    timeout_s: float,
    thresholds: Thresholds,
) -> AgentCheckResult:
    result = await _check_stages(spec, platform_chat_id, client, message, timeout_s)
    return attrs.evolve(result, state=presence_of(result, thresholds))


async def _check_stages(
    spec: AgentLike,
    platform_chat_id: str,
    client: AgentClient,
    message: str | None,
    timeout_s: float,
) -> AgentCheckResult:
    base = {
        "agent_id": spec.id,
        "label": spec.label,
        "base_url": spec.base_url,
        "platform_chat_id": platform_chat_id,
    }
    stage = "none"
    timings: dict[str, float] = {}
    preview = None
    try:
        with trio.fail_after(timeout_s):
            probe = await client.probe(spec.base_url, platform_chat_id)
            stage = "status"
            timings["connect_ms"] = _ms(probe.connect_s)
            timings["status_ms"] = _ms(probe.status_s)
            if message is not None:
                text: list[str] = []
                turn_start = trio.current_time()
                async with client.turn(spec.base_url, platform_chat_id, message) as turn:
                    async for event in turn:
                        if isinstance(event, TextChunk):
                            if not text:
                                timings["first_text_ms"] = _ms(trio.current_time() - turn_start)
                            text.append(event.text)
                timings["turn_ms"] = _ms(trio.current_time() - turn_start)
                stage = "turn"
                reply = " ".join("".join(text).split())
                preview = reply[:_PREVIEW_CHARS] + ("…" if len(reply) > _PREVIEW_CHARS else "")
    except AgentFailure as failure:
        if failure.code == AGENT_TIMEOUT and failure.phase == "status" and stage == "none":
            stage = "connected"
        return AgentCheckResult(**base, ok=False, stage=stage, error=str(failure), **timings)
    except trio.TooSlowError:
        error = f"AGENT_TIMEOUT(total): check exceeded {timeout_s}s"
        return AgentCheckResult(**base, ok=False, stage=stage, error=error, **timings)
    return AgentCheckResult(**base, ok=True, stage=stage, reply_preview=preview, **timings)


async def check_agents(
    specs: Sequence[AgentLike],
    *,
    timeout_s: float,
    message: str | None,
    limits: TurnLimits,
    connector: Connector | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[AgentCheckResult]:
    """Check every agent concurrently (at most 8 at a time); results in input order.

    Probes use no retries (a check reports what it sees); ``timeout_s`` bounds each
    agent's whole check, ``limits`` the individual phases.
    """
    client = AgentClient(
        attrs.evolve(limits, retries=0, total_s=min(limits.total_s, timeout_s)),
        connector=connector,
    )
    results: list[AgentCheckResult | None] = [None] * len(specs)
    limiter = trio.CapacityLimiter(_CONCURRENCY)

    async def run(index: int, spec: AgentLike) -> None:
        async with limiter:
            platform_chat_id = str(CHECK_CHAT_ID_BASE + index)
            results[index] = await _check_one(
                spec, platform_chat_id, client, message, timeout_s, thresholds
            )

    async with trio.open_nursery() as nursery:
        for index, spec in enumerate(specs):
            nursery.start_soon(run, index, spec)
    return [r for r in results if r is not None]


def format_table(results: Sequence[AgentCheckResult]) -> str:
    """A plain-text table, one row per agent, then a summary line."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    headers = ("AGENT", "RESULT", "STATE", "STAGE", "CONNECT ms", "STATUS ms", "TURN ms", "DETAIL")
    rows = [
        (
            r.agent_id,
            "ok" if r.ok else "FAIL",
            r.state,
            r.stage,
            cell(r.connect_ms),
            cell(r.status_ms),
            cell(r.turn_ms),
            (r.error if not r.ok else r.reply_preview) or "",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results) - failed}/{len(results)} agents ok")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surfaces check-agents",
        description="Connect to every registered agent and expect STATUS "
        "(and, with --message, one complete turn). Exit 1 if any agent fails.",
    )
    parser.add_argument("--config", help="configuration file (default: SURFACES_CONFIG)")
    parser.add_argument(
        "--agent", action="append", default=[], metavar="ID", help="only this agent (repeatable)"
    )
    parser.add_argument(
        "--base-url",
        help="check this agent URL instead of the registry (no configuration needed)",
    )
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per agent (20)")
    parser.add_argument("--message", help="also send this message and wait for the reply")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


@attrs.frozen
class _AdHocAgent:
    id: str
    label: str
    base_url: str


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.timeout <= 0:
        print("surfaces check-agents: --timeout must be positive", file=sys.stderr)
        return 2
    specs: Sequence[AgentLike]
    thresholds = Thresholds()
    if args.base_url:
        specs = [_AdHocAgent("adhoc", "ad hoc", args.base_url)]
        limits = TurnLimits()
    else:
        prog = "surfaces check-agents"
        config, registry = load_config_and_registry_or_exit(args.config, prog=prog)
        limits = turn_limits(config.agents)
        p = config.presence
        thresholds = Thresholds(p.away_status_s, p.away_failures, p.away_window_s)
        specs = list(registry.agents)
    if args.agent:
        known = {s.id for s in specs}
        unknown = [a for a in args.agent if a not in known]
        if unknown:
            print(
                f"surfaces check-agents: unknown agent id(s): {', '.join(unknown)}"
                f" (known: {', '.join(sorted(known))})",
                file=sys.stderr,
            )
            return 2
        specs = [s for s in specs if s.id in args.agent]
    results = trio.run(
        lambda: check_agents(
            specs,
            timeout_s=args.timeout,
            message=args.message,
            limits=limits,
            thresholds=thresholds,
        )
    )
    if args.json:
        print(json.dumps([r.to_json() for r in results], ensure_ascii=False, indent=2))
    else:
        print(format_table(results))
    return 0 if all(r.ok for r in results) else 1
