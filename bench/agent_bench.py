"""Agent client throughput and per-turn overhead against the reference agent.

    .venv/bin/python bench/agent_bench.py [--turns 200] [--frames 20000] [--url URL]

Without ``--url`` the reference agent runs in the same process and event loop on
127.0.0.1 (port 0), so the numbers include both ends of the socket. Measures:

* per-turn overhead: sequential ``/instant`` turns (connect, STATUS, USER_MESSAGE,
  one chunk, END, close) — mean / p50 / p95 / max milliseconds, and per turn the
  process's CPU time and the trio scheduler's task steps and I/O waits (steadier
  than wall time on a busy machine; both ends unless ``--url``);
* streaming: one ``/chunks N`` turn — frames per second through the client;
* concurrency: ``--parallel`` turns of ``/instant`` at once, in distinct chats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import structlog
import trio

from agent_client import AgentClient, TurnLimits
from agent_client.reference import serve_reference_agent


class _StepCounter(trio.abc.Instrument):
    """Scheduler work per turn: task steps and I/O waits (each is an epoll call)."""

    both_ends = True

    def __init__(self) -> None:
        self.steps = 0
        self.io_waits = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1

    def before_io_wait(self, timeout: float) -> None:
        self.io_waits += 1


async def one_turn(client: AgentClient, base: str, chat: str, text: str) -> int:
    frames = 0
    async with client.turn(base, chat, text) as turn:
        async for _event in turn:
            frames += 1
    return frames


async def bench(base: str, turns: int, frames: int, parallel: int) -> None:
    client = AgentClient(TurnLimits(retries=0))
    await one_turn(client, base, "1", "/instant")  # warm-up

    latencies = []
    steps = _StepCounter()
    trio.lowlevel.add_instrument(steps)
    cpu_start = time.process_time()
    for i in range(turns):
        start = time.perf_counter()
        await one_turn(client, base, str(100 + i % 10), "/instant")
        latencies.append((time.perf_counter() - start) * 1000)
    cpu = time.process_time() - cpu_start
    trio.lowlevel.remove_instrument(steps)
    latencies.sort()
    print(f"per-turn overhead over {turns} sequential /instant turns (ms):")
    print(
        f"  mean {statistics.fmean(latencies):.2f}  p50 {latencies[len(latencies) // 2]:.2f}"
        f"  p95 {latencies[int(len(latencies) * 0.95)]:.2f}  max {latencies[-1]:.2f}"
        f"  -> {1000 / statistics.fmean(latencies):.0f} turns/s"
    )
    print(
        f"  per turn: {cpu / turns * 1e6:.0f} µs CPU of this process,"
        f" {steps.steps / turns:.1f} trio task steps, {steps.io_waits / turns:.1f} I/O waits"
        + (" (both ends)" if steps.both_ends else " (client only)")
    )

    start = time.perf_counter()
    got = await one_turn(client, base, "2", f"/chunks {frames}")
    elapsed = time.perf_counter() - start
    print(f"streaming: {got} frames in {elapsed * 1000:.0f} ms -> {got / elapsed:,.0f} frames/s")

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(parallel):
            nursery.start_soon(one_turn, client, base, str(10_000 + i), "/instant")
    elapsed = time.perf_counter() - start
    print(
        f"concurrency: {parallel} parallel /instant turns in {elapsed * 1000:.0f} ms"
        f" -> {parallel / elapsed:.0f} turns/s"
    )


async def run(args: argparse.Namespace) -> None:
    if args.url:
        _StepCounter.both_ends = False
        await bench(args.url, args.turns, args.frames, args.parallel)
        return
    with tempfile.TemporaryDirectory() as workspace:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_reference_agent, "127.0.0.1", 0, Path(workspace))
            await bench(f"http://127.0.0.1:{port}", args.turns, args.frames, args.parallel)
            nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--url", help="an already running agent (default: in-process)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings+
    trio.run(run, args)


if __name__ == "__main__":
    main()
