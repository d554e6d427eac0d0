"""Event-loop stalls while one very long reply streams (issue 13 §5).

    python -m bench reply_stall                          # 4 M characters, 4,000-char chunks
    python -m bench reply_stall --chars 4000000 --chunk 1048576
    python -m bench reply_stall --max-reply-chars 100000  # the default reply cap

One ``ReplyStream`` (the turn's reply renderer: splitting, Markdown, edits) is fed a
long Markdown text (prose, lists, code fences, some Cyrillic; seeded, so every run
gets the same text) one frame every ``--interval-ms`` (1 ms: 4 M characters a second
in 4,000-character frames), with a fake outbox that answers every send after
``--send-latency-ms`` (a homeserver round trip, awaited, so it never holds the loop).
The turn's end is included: ``resolve_parts`` and ``finish`` (``final_sends`` before
issue 13), as the runner calls them.

What is measured, on the real clock:

* **longest task step**: a trio ``Instrument`` times every task step (the time one
  task held the event loop between two checkpoints); the longest one is the stall
  every other room saw. Which task it was is printed too.
  The garbage collector's pauses are timed too (``gc.callbacks``) and the longest step
  is also given without them: a full collection stops the process for as long as it
  takes to walk every object, whatever task happens to run.
* **watchdog gap**: a task that sleeps 1 ms in a loop records its largest lateness
  (the same stall, seen from another room's side).
* the work done: reply messages and edits sent, wall time, and the process CPU.

By default the reply cap (``streaming.max_reply_chars``) is raised above ``--chars``,
so the whole text is kept and split: that is the worst case for the splitter. Pass
``--max-reply-chars`` to measure with a cap.
"""

from __future__ import annotations

import argparse
import gc
import logging
import random
import time
from typing import Any

import attrs
import structlog
import trio

from surfaces.config import StreamingConfig
from surfaces.render import PART_BUDGET_BYTES
from surfaces.turns import ReplyStream, edit_throttle

#: Words the text is made of (a Russian share, as the first users write).
PHRASES = (
    "the a reply stream splits long text into parts that each fit one event",
    "while the agent keeps writing and every room must stay responsive",
    "ответ агента приходит частями и каждая комната должна отвечать сразу",
)
WORDS = [word for phrase in PHRASES for word in phrase.split(" ")]


def markdown_text(chars: int, seed: int = 13) -> str:
    """A deterministic Markdown document of about ``chars`` characters."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        kind = rng.random()
        if kind < 0.15:
            lines = [f"    x_{i} = compute({i}, {rng.randint(0, 999)})" for i in range(8)]
            block = "```python\n" + "\n".join(lines) + "\n```"
        elif kind < 0.3:
            block = "\n".join(
                f"- {' '.join(rng.choices(WORDS, k=rng.randint(3, 12)))}" for _ in range(5)
            )
        else:
            block = " ".join(rng.choices(WORDS, k=rng.randint(20, 120))) + "."
        out.append(block)
        size += len(block) + 2
    return "\n\n".join(out)[:chars]


@attrs.define
class LatencyOutbox:
    """The two outbox methods ``ReplyStream`` uses, answering after a delay."""

    latency_s: float
    messages: int = 0
    edits: int = 0

    async def send(self, send: Any, *, part: Any = None) -> str:
        await trio.sleep(self.latency_s)
        self.messages += 1
        return f"$m{self.messages}"

    async def send_ephemeral(self, room_id: str, event_type: str, content: dict) -> str:
        await trio.sleep(self.latency_s)
        self.edits += 1
        return f"$e{self.edits}"


@attrs.define(eq=False)
class StepTimer(trio.abc.Instrument):
    """The longest single task step (the time one task held the loop), with and
    without the garbage collector's pauses inside it (the collector stops the whole
    process whatever the code does; its longest pause is reported on its own)."""

    longest_s: float = 0.0
    longest_task: str = ""
    longest_without_gc_s: float = 0.0
    longest_gc_s: float = 0.0
    steps: int = 0
    _started: float = 0.0
    _gc_total: float = 0.0
    _gc_at_start: float = 0.0
    _gc_began: float = 0.0

    def gc_callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_began
            self._gc_total += pause
            self.longest_gc_s = max(self.longest_gc_s, pause)

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._gc_at_start = self._gc_total
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self._started
        self.steps += 1
        if took > self.longest_s:
            self.longest_s, self.longest_task = took, task.name
        without_gc = took - (self._gc_total - self._gc_at_start)
        self.longest_without_gc_s = max(self.longest_without_gc_s, without_gc)


def make_stream(outbox: LatencyOutbox, max_reply_chars: int) -> ReplyStream:
    cfg = StreamingConfig()
    kwargs: dict[str, Any] = dict(
        outbox=outbox,
        room_id="!bench:x",
        turn_key="$bench",
        attempt=1,
        parts={},
        throttle=edit_throttle(cfg),
        budget=PART_BUDGET_BYTES,
        first_message_after_s=cfg.first_message_after_s,
    )
    if "max_chars" in attrs.fields_dict(ReplyStream):  # the reply cap (issue 13)
        kwargs["max_chars"] = max_reply_chars
        kwargs["truncated_mark"] = "✂️ (truncated)"
    return ReplyStream(**kwargs)


async def stream_once(
    text: str, chunk: int, interval_s: float, latency_s: float, max_reply_chars: int
) -> dict:
    outbox = LatencyOutbox(latency_s)
    reply = make_stream(outbox, max_reply_chars)
    lateness = 0.0
    started = time.perf_counter()
    cpu = time.process_time()

    async def watchdog() -> None:
        nonlocal lateness
        while True:
            before = time.perf_counter()
            await trio.sleep(0.001)
            lateness = max(lateness, time.perf_counter() - before - 0.001)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watchdog)
        async with trio.open_nursery() as turn:
            await turn.start(reply.run)
            for i in range(0, len(text), chunk):
                reply.append(text[i : i + chunk])
                await trio.sleep(interval_s)  # the next frame arrives
            await trio.sleep(1.0)  # the flusher catches up before the END, as in a real turn
            turn.cancel_scope.cancel()
        await reply.resolve_parts()
        await trio.lowlevel.checkpoint()
        if hasattr(reply, "finish"):
            final = await reply.finish()  # the runner's path (issue 13)
        else:
            final = reply.final_sends()
        await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "watchdog_gap_ms": lateness * 1000,
        "messages": outbox.messages,
        "edits": outbox.edits,
        "final_sends": len(final),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=4_000_000)
    parser.add_argument("--chunk", type=int, default=4_000, help="characters per agent frame")
    parser.add_argument("--interval-ms", type=float, default=1.0, help="between agent frames")
    parser.add_argument("--send-latency-ms", type=float, default=5.0)
    parser.add_argument(
        "--max-reply-chars", type=int, default=0, help="reply cap (0: above --chars)"
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after set-up (as a server would)"
    )
    args = parser.parse_args()
    # The bot's own log lines (one per deferred send) are not what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    text = markdown_text(args.chars)
    cap = args.max_reply_chars or args.chars + 1
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    timer = StepTimer()
    gc.callbacks.append(timer.gc_callback)
    result = trio.run(
        stream_once,
        text,
        args.chunk,
        args.interval_ms / 1000,
        args.send_latency_ms / 1000,
        cap,
        instruments=[timer],
    )
    print(
        f"{len(text):,} characters in {args.chunk:,}-character chunks, reply cap {cap:,}: "
        f"longest task step {timer.longest_s * 1000:.1f} ms ({timer.longest_task}), "
        f"{timer.longest_without_gc_s * 1000:.1f} ms without GC pauses (longest GC pause "
        f"{timer.longest_gc_s * 1000:.1f} ms), "
        f"watchdog gap {result['watchdog_gap_ms']:.1f} ms, wall {result['wall_s']:.2f} s, "
        f"CPU {result['cpu_s']:.2f} s, {result['messages']} messages, {result['edits']} edits, "
        f"{result['final_sends']} final sends, {timer.steps:,} task steps"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
