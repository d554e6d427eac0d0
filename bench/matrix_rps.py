"""How many requests per second ``MatrixClient`` sustains against a local Synapse.

Starts a throwaway Synapse with lifted rate limits, registers a user (and lifts its
per-user message limit through the admin API, as an operator would), then runs each
scenario for ``--duration`` seconds:

* ``send``: ``PUT .../send/m.room.message/{txn}`` one after another, then from
  ``--concurrency`` tasks at once (every send has its own txn id);
* ``whoami``: ``GET /account/whoami``, sequential and concurrent.

Prints a table and writes JSON to ``bench/results/matrix_rps.json``. The numbers
describe this machine and this Synapse (SQLite, single process): Synapse, not the
client, is the bottleneck for sends.

    python -m bench matrix_rps [--duration 5] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import structlog
import trio

from matrix_client import MatrixClient, new_txn_id, text_content
from matrix_client.testing import LocalSynapse

RESULTS = Path(__file__).parent / "results" / "matrix_rps.json"


async def _measure(
    op: Callable[[], Awaitable[object]], *, duration_s: float, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    end = trio.current_time() + duration_s

    async def worker() -> None:
        while trio.current_time() < end:
            began = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def run(duration_s: float, concurrency: int) -> dict[str, Any]:
    async with LocalSynapse.running(ratelimits="lifted") as hs:
        admin = await hs.register("bench-admin", "bench-admin-password", admin=True)
        user = await hs.register("bench", "bench-password")
        await hs.lift_ratelimit(admin.access_token, user.user_id)
        statuses: dict[int, int] = {}

        def on_request(endpoint: str, status: int, seconds: float) -> None:
            statuses[status] = statuses.get(status, 0) + 1

        async with MatrixClient(
            hs.base_url,
            access_token=user.access_token,
            user_id=user.user_id,
            device_id=user.device_id,
        ) as client:
            client.on_request = on_request
            room_id = await client.create_room(name="bench")
            content = text_content("benchmark message")

            async def send() -> None:
                await client.send_event(room_id, "m.room.message", content, txn_id=new_txn_id())

            async def whoami() -> None:
                await client.whoami()

            scenarios: dict[str, dict[str, Any]] = {}
            for name, op in (("send", send), ("whoami", whoami)):
                for n in (1, concurrency):
                    with trio.fail_after(duration_s + 60):
                        result = await _measure(op, duration_s=duration_s, concurrency=n)
                    scenarios[f"{name} x{n}"] = result
                    print(f"  {name} x{n}: {result['rps']} req/s", file=sys.stderr)

        return {
            "benchmark": "matrix_rps",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "synapse_startup_s": round(hs.startup_s or 0.0, 3),
            "duration_s": duration_s,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "scenarios": scenarios,
            "environment": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "matrix-synapse": version("matrix-synapse"),
                "httpx": version("httpx"),
                "trio": version("trio"),
            },
        }


def _table(report: dict[str, Any]) -> str:
    header = (
        f"{'scenario':<12} {'req/s':>8} {'requests':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for name, r in report["scenarios"].items():
        lines.append(
            f"{name:<12} {r['rps']:>8} {r['requests']:>9} "
            f"{r['p50_ms']:>8} {r['p95_ms']:>8} {r['max_ms']:>8}"
        )
    lines.append(
        f"Synapse start to /versions: {report['synapse_startup_s']} s; "
        f"HTTP statuses: {report['statuses']}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench matrix_rps", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=10, help="tasks in concurrent runs")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    args = parser.parse_args()
    # Per-request debug logs would flood the terminal and cost client CPU.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    report = trio.run(run, args.duration, args.concurrency)
    print(_table(report))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
