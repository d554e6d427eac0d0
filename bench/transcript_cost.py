"""issue 15 §3: what the chat transcript costs per turn — bytes in the state database
and CPU of the recording path — in-process, on a real SQLite file (WAL), no network.

    python -m bench transcript_cost [--turns 4000] [--rooms 40] [--seed 1] [--mix instant]

A realistic mix of turns (short questions and long ones, Russian and English text, the
agent's replies from a line to a long answer cut at ``context.entry_max_chars``, one
turn in ten with a file) is finished twice on two fresh stores through
``Store.finish_event``: once as before (no transcript) and once with the turn's
transcript write, built as the runner builds it (``TurnNotes`` fed chunk by chunk,
``transcript_write``) plus the ``boot_id`` lookup. Reported:

* bytes per turn: growth of the database (pages in use after a checkpoint) with the
  transcript minus without it, over the turns; and the text bytes the rows count;
* steady state: a room past its bound (200 entries) keeps its size; the CPU of a
  finish that trims;
* CPU per turn (``time.process_time``) of ``finish_event`` with and without the
  transcript, and of building the entry (notes + write) alone.
Numbers, never asserted; ``bench/RESULTS.md`` keeps the ones worth keeping.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import trio

from surfaces.config import ContextConfig
from surfaces.core import ChatStatus, ItemKind, ItemStatus, Lane
from surfaces.state import ChatRecord, InboxItem, PendingSend, Store
from surfaces.turns.transcript import TurnNotes, transcript_write

WORDS_RU = [
    "привет",
    "как",
    "дела",
    "сделай",
    "отчёт",
    "по",
    "продажам",
    "за",
    "неделю",
    "и",
    "проверь",
    "таблицу",
]
WORDS_EN = [
    "hello",
    "please",
    "summarise",
    "the",
    "report",
    "and",
    "check",
    "the",
    "figures",
    "for",
    "last",
    "week",
]


def _text(rng: random.Random, chars: int) -> str:
    words = WORDS_RU if rng.random() < 0.5 else WORDS_EN
    out: list[str] = []
    n = 0
    while n < chars:
        w = rng.choice(words)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:chars]


def _mix(rng: random.Random, instant: bool = False) -> tuple[str, str, list[str]]:
    if instant:  # the turn benchmark's shape: a short tagged message, the agent says "ok"
        return f"turn t{rng.randrange(10**6)}", "ok", []
    user = _text(rng, rng.choice([40] * 5 + [150] * 3 + [600, 2500]))
    agent = _text(rng, rng.choice([200] * 3 + [800] * 4 + [2000] * 2 + [6000]))
    files = ["incoming/report.pdf"] if rng.random() < 0.1 else []
    return user, agent, files


def _db_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size
    finally:
        conn.close()


async def _run(args: argparse.Namespace) -> None:
    cfg = ContextConfig()
    rng = random.Random(args.seed)
    instant = args.mix == "instant"
    turns = [(_mix(rng, instant), f"!room{n % args.rooms}:x") for n in range(args.turns)]
    print(f"mix: {args.mix}")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for mode in ("without", "with"):
            path = Path(tmp) / mode / "surfaces.db"
            store = Store.open_sync(path, inline=True)
            before = _db_bytes(path)
            finish_cpu: list[float] = []
            build_cpu: list[float] = []
            boots: set[str] = set()
            for n, ((user, agent, files), room) in enumerate(turns):
                event = f"$e{n}"
                item = InboxItem(
                    event, Lane.room(room), room, "@u:x", ItemKind.TEXT, {"body": user}
                )
                await store.admit(None, [item])
                chat = ChatRecord(room, "@u:x", "C1", "C1", "agent-0", "1", ChatStatus.ACTIVE, {})
                send = PendingSend(room, f"{event}.p0", "m.room.message", {"body": agent[:3000]})
                t0 = time.process_time()
                write = None
                values = None
                if mode == "with":
                    notes = TurnNotes(cfg.entry_max_chars)
                    for i in range(0, len(agent), 100):  # the agent streams ~100-char chunks
                        notes.text(agent[i : i + 100])
                    write = transcript_write(
                        cfg, turn_id=event, chat=chat, conversation="", words=[user],
                        files_in=files, notes=notes,
                    )  # fmt: skip
                    # the runner reads the stored boot_id once per room (then from memory)
                    if room not in boots:
                        await store.get_value("agent_boot." + room)
                        boots.add(room)
                        values = {"agent_boot." + room: "b1"}
                t1 = time.process_time()
                await store.finish_event(
                    event, ItemStatus.DONE, [send], transcript=write, values=values
                )
                t2 = time.process_time()
                build_cpu.append(t1 - t0)
                finish_cpu.append(t2 - t1)
            store.close()
            results[mode] = (_db_bytes(path) - before, finish_cpu, build_cpu)
        grown_with, finish_with, build = results["with"]
        grown_without, finish_without, _ = results["without"]
        n = args.turns
        text_bytes = sum(
            len(u[:cfg.entry_max_chars].encode()) + len(a[:cfg.entry_max_chars].encode())
            for (u, a, _f), _r in turns
        )  # fmt: skip
        print(f"turns: {n} in {args.rooms} rooms (≤ {cfg.transcript_max_entries} kept per room)")
        print(f"database growth without transcript: {grown_without / n:8.0f} B/turn")
        print(f"database growth with transcript:    {grown_with / n:8.0f} B/turn")
        print(f"transcript bytes per turn (db):     {(grown_with - grown_without) / n:8.0f} B")
        print(f"  of which text (UTF-8, cut):       {text_bytes / n:8.0f} B")

        def us(values: list[float]) -> str:
            return (
                f"mean {statistics.fmean(values) * 1e6:6.1f} µs, "
                f"median {statistics.median(values) * 1e6:6.1f} µs"
            )

        print(f"CPU finish_event without:  {us(finish_without)}")
        print(f"CPU finish_event with:     {us(finish_with)}")
        print(f"CPU building the entry:    {us(build)} (notes, write, boot_id lookup)")
        extra = statistics.fmean(finish_with) + statistics.fmean(build)
        extra -= statistics.fmean(finish_without)
        print(f"CPU added per turn:        {extra * 1e6:6.1f} µs")

        # steady state: one room far past its bound
        path = Path(tmp) / "steady" / "surfaces.db"
        store = Store.open_sync(path, inline=True)
        room = "!steady:x"
        chat = ChatRecord(room, "@u:x", "C1", "C1", "agent-0", "1", ChatStatus.ACTIVE, {})
        trim_cpu: list[float] = []
        sizes = []
        for k in range(3 * cfg.transcript_max_entries):
            (user, agent, files), _ = turns[k % len(turns)]
            event = f"$s{k}"
            item = InboxItem(event, Lane.room(room), room, "@u:x", ItemKind.TEXT, {"body": user})
            await store.admit(None, [item])
            notes = TurnNotes(cfg.entry_max_chars)
            notes.text(agent)
            write = transcript_write(
                cfg, turn_id=event, chat=chat, conversation="", words=[user],
                files_in=files, notes=notes,
            )  # fmt: skip
            t0 = time.process_time()
            await store.finish_event(event, ItemStatus.DONE, (), transcript=write)
            trim_cpu.append(time.process_time() - t0)
            if k in (cfg.transcript_max_entries, 3 * cfg.transcript_max_entries - 1):
                sizes.append(len(await store.transcript(room)))
        store.close()
        print(
            f"steady state: entries kept {sizes} (bound {cfg.transcript_max_entries}); "
            f"finish_event with trim: {us(trim_cpu[cfg.transcript_max_entries :])}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench transcript_cost")
    parser.add_argument("--turns", type=int, default=4000)
    parser.add_argument("--rooms", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--mix", choices=("realistic", "instant"), default="realistic",
        help="realistic: questions and answers of many sizes; instant: the turn benchmark's",
    )  # fmt: skip
    trio.run(_run, parser.parse_args())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
