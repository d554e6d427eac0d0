"""Shared parts of the turn benchmarks: the traced bot and agent subprocesses,
/proc readers and small statistics helpers.

The bot and the reference agent each run in their own process so the bot's CPU
and memory can be read from ``/proc/<pid>`` without the load generator's share.
Both keep a small in-memory trace (``time.monotonic()`` stamps, which is
CLOCK_MONOTONIC and so comparable across processes on Linux) and write it as
JSON to ``$BENCH_TRACE`` when they receive SIGUSR1 (then clear it), and once more
when they exit:

* bot: every HTTP request to the homeserver (method, path, start, response
  headers, status) through an ``httpx`` transport wrapper passed as
  ``BotApp(transport=...)``, and for every timeline event of every sync batch the
  time the ``/sync`` response that carried it arrived (headers) and the time
  ``Syncer.next`` returned it parsed. No product code is changed: the wrapper
  builds ``BotApp`` itself, as ``surfaces run`` does.
* agent: a ``ReferenceAgent`` subclass stamps the WebSocket accept, the
  ``USER_MESSAGE`` receipt and the moment ``AGENT_EVENT_END`` was written,
  keyed by the last word of the user's text (the benchmark's turn tag).

    python -m bench._common bot      # env: surfaces config + BENCH_TRACE
    python -m bench._common agent PORT WORKSPACE BEHAVIOUR   # env: BENCH_TRACE
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- /proc readers (bench side) ---------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of the whole process (all threads), in seconds: user space
    (Python) and kernel (syscalls: socket sends, connects, fsync...)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident set size in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": out.get("VmRSS", 0.0), "peak_rss_mb": out.get("VmHWM", 0.0)}


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def write_report(output: Path, report: dict[str, Any], md: str) -> None:
    """``output`` (JSON, everything) and the same name with ``.md`` (the tables)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    output.with_suffix(".md").write_text(md)
    print(md)
    print(f"written: {output} and {output.with_suffix('.md')}")


def summary_ms(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": ms(pct(values, 50)),
        "p90_ms": ms(pct(values, 90)),
        "p99_ms": ms(pct(values, 99)),
        "max_ms": ms(max(values) if values else None),
    }


# ---- the traced subprocesses -------------------------------------------------


class _Trace:
    def __init__(self) -> None:
        self.path = os.environ.get("BENCH_TRACE")
        self.records: dict[str, list] = {}
        self.seq = 0

    def add(self, kind: str, record: tuple) -> None:
        self.records.setdefault(kind, []).append(record)

    def dump(self) -> None:
        if not self.path:
            return
        self.seq += 1
        tmp = Path(f"{self.path}.tmp")
        tmp.write_text(json.dumps({"seq": self.seq, **self.records}))
        tmp.replace(self.path)
        self.records = {}


TRACE = _Trace()


async def _watch_signals(on_stop) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGUSR1) as signals:
        async for signum in signals:
            if signum == signal.SIGUSR1:
                TRACE.dump()
            else:
                on_stop()


class TracingTransport(httpx.AsyncBaseTransport):
    """httpx's default transport, recording each request's timing."""

    def __init__(self) -> None:
        from matrix_client._client import DEFAULT_LIMITS

        # The product's own pool limits: a client given a transport ignores them.
        self._inner = httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS)
        self.last_sync_at = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._handle(request)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        began = time.monotonic()
        response = await self._inner.handle_async_request(request)
        now = time.monotonic()
        path = request.url.path
        if path.endswith("/sync"):
            self.last_sync_at = now
        TRACE.add("requests", (request.method, path, began, now, response.status_code))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _bot_main() -> int:
    from matrix_client import _sync
    from surfaces.app import BotApp
    from surfaces.config import load_config_or_exit, load_registry_or_exit
    from surfaces.logs import configure_logging

    config = load_config_or_exit(None)
    registry = load_registry_or_exit(config)
    configure_logging(config.log.format, config.log.level)
    transport = TracingTransport()
    original_next = _sync.Syncer.next

    async def traced_next(self):  # type: ignore[no-untyped-def]
        batch = await original_next(self)
        parsed = time.monotonic()
        for item in batch.events:
            TRACE.add("arrivals", (item.event.event_id, transport.last_sync_at, parsed))
        return batch

    _sync.Syncer.next = traced_next  # type: ignore[method-assign]
    _trace_turn_steps()
    _trace_gc()
    app = BotApp(config, registry, transport=transport)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, app.request_stop)
            await app.run()
            nursery.cancel_scope.cancel()

    profile_path = os.environ.get("BENCH_CPROFILE")  # experiment: call counts per turn
    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        trio.run(run)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        TRACE.dump()
    return 0


def _trace_gc() -> None:
    """Every garbage collection of the bot: (generation, seconds), via ``gc.callbacks``."""
    import gc

    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            TRACE.add("gc", (info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(callback)


def _trace_turn_steps() -> None:
    """Stamps that split "bot in" into its steps (wrappers, no product change):
    ``dispatched`` (admitted, handed to its lane), ``turn_started`` (the lane worker
    runs the turn) by event id, and ``agent_turn`` (the agent turn is opened) by the
    turn tag (the text's last word)."""
    from agent_client import AgentClient
    from surfaces.intake import LaneSupervisor
    from surfaces.turns import TurnRunner

    dispatch, run, turn = LaneSupervisor.dispatch, TurnRunner.run, AgentClient.turn

    def traced_dispatch(self, item):  # type: ignore[no-untyped-def]
        TRACE.add("dispatched", (item.event_id, time.monotonic()))
        return dispatch(self, item)

    async def traced_run(self, request):  # type: ignore[no-untyped-def]
        TRACE.add("turn_started", (request.item.event_id, time.monotonic()))
        return await run(self, request)

    def traced_turn(self, base_url, chat_id, text, attachments=()):  # type: ignore[no-untyped-def]
        words = text.split()
        TRACE.add("agent_turn", (words[-1] if words else "", time.monotonic()))
        return turn(self, base_url, chat_id, text, attachments)

    LaneSupervisor.dispatch = traced_dispatch  # type: ignore[method-assign]
    TurnRunner.run = traced_run  # type: ignore[method-assign]
    AgentClient.turn = traced_turn  # type: ignore[method-assign]


def _agent_main(port: int, workspace: str, behaviour: str) -> int:
    from trio_websocket import WebSocketConnection

    from agent_client.reference import ReferenceAgent, serve_reference_agent

    handled_at: contextvars.ContextVar[float] = contextvars.ContextVar("handled_at", default=0.0)

    class TracedAgent(ReferenceAgent):
        async def handle(self, request) -> None:  # type: ignore[no-untyped-def]
            handled_at.set(time.monotonic())  # the upgrade request is read
            await super().handle(request)

        @staticmethod
        async def _send(ws: WebSocketConnection, ftype: str, **fields: Any) -> None:
            await ReferenceAgent._send(ws, ftype, **fields)
            if ftype == "STATUS":  # the agent's own share of "bot in": accept + STATUS
                ws._bench_share = time.monotonic() - handled_at.get()  # type: ignore[attr-defined]

        async def _receive(self, ws: WebSocketConnection) -> dict[str, Any]:
            frame = await super()._receive(ws)
            if frame.get("type") == "USER_MESSAGE":
                text = str(frame.get("text", ""))
                tag = text.split()[-1] if text.split() else ""
                ws._bench_tag = tag  # type: ignore[attr-defined]
                TRACE.add("user_message", (tag, time.monotonic()))
                TRACE.add("agent_share", (tag, getattr(ws, "_bench_share", 0.0)))
            return frame

        async def _run(self, ws, name, args, chat_id, text, *rest) -> None:  # type: ignore[no-untyped-def]
            # As the reference behaviours, but the reply ends with the turn tag so
            # the user's client can tell which turn a reply belongs to.
            tag = text.split()[-1] if text.split() else ""
            if name == "instant":
                await self._text(ws, f"ok {tag}")
                await self._end(ws, 1)
            elif name == "chunks":
                n = max(1, min(10_000, int(args[0]) if args and args[0].isdigit() else 10))
                for i in range(n):
                    await self._text(ws, f"chunk {i + 1}/{n}" + (f" {tag}" if i == n - 1 else "\n"))
                await self._end(ws, n)
            else:
                await super()._run(ws, name, args, chat_id, text, *rest)

        async def _end(self, ws: WebSocketConnection, tokens: int) -> None:
            await super()._end(ws, tokens)
            TRACE.add("end", (getattr(ws, "_bench_tag", ""), time.monotonic()))

    agent = TracedAgent(Path(workspace), behaviour=behaviour or None)
    stop = trio.Event()

    async def run_with_agent() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, stop.set)
            await nursery.start(
                lambda task_status: serve_reference_agent(
                    "127.0.0.1", port, Path(workspace), agent=agent, task_status=task_status
                )
            )
            print("ready", flush=True)
            await stop.wait()
            nursery.cancel_scope.cancel()

    try:
        trio.run(run_with_agent)
    finally:
        TRACE.dump()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["bot"]:
        sys.exit(_bot_main())
    if sys.argv[1:2] == ["agent"]:
        sys.exit(_agent_main(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
