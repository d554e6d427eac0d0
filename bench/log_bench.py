"""Log line cost: the configured structlog chain (JSON) for typical turn log lines.

    .venv/bin/python bench/log_bench.py [--lines 20000] [--repeat 5]

Configures logging exactly as the bot does (``configure_logging("json", "info")``)
but writes to a null stream, binds the context a lane binds (``event_id``,
``room_id``, ``lane``) and emits the bot's typical per-turn lines. Reports the best
of ``--repeat`` runs, in microseconds per line:

* ``chain``: a whole info line (filtering logger → processors → JSON render → write);
* ``mask_secrets``: the masking processor alone on a rendered-ready event dict;
* ``dropped debug``: a ``log.debug`` call filtered out at level info.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import structlog

from surfaces.logs import configure_logging, mask_secrets


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _lines(log: Any) -> list[Callable[[], None]]:
    """The info lines of a typical turn, plus a rarer one with nested values."""
    return [
        lambda: log.info("turn_finished", outcome="ok", seconds=0.012, chars=2, edits=0, files=0),
        lambda: log.info(
            "agent_file_sent", path="/workspace/out/report.txt", size=1234, size_h="1.2 KB"
        ),
        lambda: log.info(
            "chat_agent_switched", old="default", new="agent_17", extra={"attempt": 1}
        ),
    ]


def _best(fn: Callable[[], None], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    configure_logging("json", "info", stream=_Null())  # type: ignore[arg-type]
    structlog.contextvars.bind_contextvars(
        event_id="$Zq3xV8u0bS1kq2Pj9rM4yW7tE6nA5cD_fG0hJ1kL2mN",
        room_id="!abcDEF:example.org",
        lane="room:!abcDEF:example.org",
    )
    log = structlog.get_logger("surfaces.turns.runner")
    lines = _lines(log)
    turn_finished = lines[0]

    def mixed() -> None:
        for line in lines:
            line()

    event: dict[str, Any] = {
        "event_id": "$Zq3xV8u0bS1kq2Pj9rM4yW7tE6nA5cD_fG0hJ1kL2mN",
        "room_id": "!abcDEF:example.org",
        "lane": "room:!abcDEF:example.org",
        "outcome": "ok",
        "seconds": 0.012,
        "chars": 2,
        "edits": 0,
        "files": 0,
        "event": "turn_finished",
        "level": "info",
        "timestamp": "2025-01-01T12:00:00.000000Z",
    }

    n, r = args.lines, args.repeat
    rows = [
        ("chain, turn_finished", _best(turn_finished, n, r)),
        ("chain, mix of 3 info lines", _best(mixed, n // 3, r) / 3),
        ("mask_secrets alone", _best(lambda: mask_secrets(None, "info", dict(event)), n, r)),
        ("  (its dict copy)", _best(lambda: dict(event), n, r)),
        ("dropped debug", _best(lambda: log.debug("x", a=1), n, r)),
    ]
    print(f"log lines, best of {r} × {n} (µs per line):")
    for name, us in rows:
        print(f"  {name:<30} {us:7.2f}")
    structlog.contextvars.clear_contextvars()


if __name__ == "__main__":
    main()
