"""Issue 15 §2: what recording usage costs — bytes per turn in the database, CPU per turn.

Bytes: two databases get the same N turns through ``Store.finish_event`` (an admitted
inbox item, one final send each), one with a usage row per turn and one without;
``dbstat`` gives the bytes per table and index, and the file size (after a checkpoint)
the total. CPU: the recording path alone, in-process with the store inline (as the bot
runs its quick calls on the event loop): ``finish_event`` with and without ``usage=``,
plus the budget check before a turn and the warning the runner builds when a budget
applies. Medians of ``--repeat`` runs, with their spread as the noise.

    python -m bench usage_costs [--turns 5000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from surfaces.config import AgentRegistry, AgentSpec
from surfaces.core import ItemKind, Lane
from surfaces.delivery import Notifier
from surfaces.i18n import Texts
from surfaces.state import ChatRecord, InboxItem, PendingSend, Store
from surfaces.turns import UsageBudgets, UsageGate

ROOM = "!kXyPqRsTuVwAbCdEfG:example.org"
OWNER = "@alice.anderson:example.org"
CHAT = ChatRecord(ROOM, OWNER, "C1", "Чат 1", "agent-0", "1234", "active", {})  # type: ignore[arg-type]


def event_id(n: int) -> str:
    return f"$Zq3xV8u0bS1kq2Pj9rM4yW7tE6nA5cD_fG0hJ{n:06d}"  # 44 characters, as Synapse's


def _send(n: int) -> PendingSend:
    body = "Turn reply " * 20
    return PendingSend(ROOM, f"{event_id(n)}.p0.final", "m.room.message", {"body": body})


def _gate(store: Store, budget: int | None) -> UsageGate:
    agent = AgentSpec("agent-0", "Agent 0", "http://a/", Path("/agents/0"))
    texts = Texts("ru")
    budgets = UsageBudgets(AgentRegistry((agent,), {}), budget)
    return UsageGate(store, None, Notifier(None, texts), texts, budgets)  # type: ignore[arg-type]


async def _turns(store: Store, n: int, *, usage: bool, budget: int | None = None) -> float:
    """N turns' store work (``begin_turn`` and the final ``finish_event``, as the runner
    calls them), with or without usage; → CPU seconds of it."""
    gate = _gate(store, budget)
    items = [
        InboxItem(event_id(i), Lane.room(ROOM), ROOM, OWNER, ItemKind.TEXT, {"body": "hi"})
        for i in range(n)
    ]
    await store.admit(None, items)
    spent = 0.0
    for i, item in enumerate(items):
        sends = [_send(i)]
        start = time.process_time()
        if usage:
            month = gate.month(OWNER)
            begun = await store.begin_turn(item.event_id, ROOM, OWNER, month=month)
            state = gate.state(OWNER, month, begun.month_tokens)
            row = gate.usage(item, CHAT, "agent-0", "1234", 1000 + i % 500)
            await store.finish_event(
                item.event_id, sends=sends, usage=row, warning=gate.warning(state, row)
            )
        else:
            await store.begin_turn(item.event_id, ROOM, OWNER)
            await store.finish_event(item.event_id, sends=sends)
        spent += time.process_time() - start
    return spent


def _table_bytes(store: Store) -> dict[str, int]:
    rows = store._conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _db_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def _bytes(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sizes: dict[bool, tuple[int, dict[str, int]]] = {}
        for usage in (False, True):
            path = Path(tmp) / f"u{int(usage)}" / "surfaces.db"
            store = Store.open_sync(path, inline=True)
            await _turns(store, n, usage=usage)
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes[usage] = (_db_size(path), _table_bytes(store))
            store.close()
        (plain, _), (with_usage, tables) = sizes[False], sizes[True]
        usage_tables = {k: v for k, v in tables.items() if k.startswith("usage")}
        print(f"bytes, {n} turns:")
        print(f"  file without usage {plain:>10,} B")
        extra = (with_usage - plain) / n
        print(f"  file with usage    {with_usage:>10,} B   (+{extra:.0f} B/turn)")
        for name, size in sorted(usage_tables.items()):
            print(f"  {name:<28} {size:>10,} B   ({size / n:.0f} B/turn)")
        print(f"  usage tables total {sum(usage_tables.values()) / n:.0f} B/turn (dbstat pages)")


def _median(runs: list[float]) -> tuple[float, float]:
    return statistics.median(runs), (max(runs) - min(runs))


async def _cpu(n: int, repeat: int) -> None:
    results: dict[str, list[float]] = {"plain": [], "usage": [], "usage+budget": []}
    cases: dict[str, Callable[[Store], object]] = {
        "plain": lambda s: _turns(s, n, usage=False),
        "usage": lambda s: _turns(s, n, usage=True),
        "usage+budget": lambda s: _turns(s, n, usage=True, budget=10**12),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            for name, case in cases.items():  # interleaved, so drift hits all alike
                path = Path(tmp) / f"{name}-{r}" / "surfaces.db"
                store = Store.open_sync(path, inline=True)
                results[name].append(await case(store) / n)  # type: ignore[misc]
                store.close()
    base, base_noise = _median(results["plain"])
    print(f"CPU per turn, begin_turn + finish_event ({n} turns × {repeat} runs):")
    for name, runs in results.items():
        med, spread = _median(runs)
        extra = "" if name == "plain" else f"   (+{(med - base) * 1e6:.1f} µs)"
        print(f"  {name:<14} {med * 1e6:7.1f} µs median, ± {spread * 1e6 / 2:.1f}{extra}")
    noise = base_noise * 1e6
    print(f"  (noise of the plain case: {noise:.1f} µs between runs; cpus={os.cpu_count()})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    async def run() -> None:
        await _bytes(args.turns)
        await _cpu(args.turns, args.repeat)

    trio.run(run)
    return 0
