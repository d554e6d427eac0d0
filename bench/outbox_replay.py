"""Outbox replayer against a homeserver that fails every send (issue 13 §2).

    python -m bench outbox_replay                     # 30 s, client retries off
    python -m bench outbox_replay --seconds 60 --client-attempts 6

A real ``Outbox`` (SQLite store in a temporary directory, the replayer task running)
and a real ``MatrixClient`` whose transport answers every request with ``500``.
One room: a first send fails inline and is left to the replayer, and a room worker
keeps sending into the same room every ``--send-every`` seconds (notices, replies:
each one finds the room blocked). Counted on the real clock: HTTP send attempts,
reported per minute.

``--client-attempts 1`` turns the client's own retries off, so every attempt is one
request and what is left is the replayer's pacing; with the default client policy
(6 attempts with backoff) each replayer attempt is several requests.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import httpx
import structlog
import trio

from matrix_client import MatrixClient, RetryPolicy
from surfaces.delivery import Outbox
from surfaces.state import PendingSend, Store


async def measure(seconds: float, client_attempts: int, send_every_s: float) -> dict:
    sends = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sends
        if "/send/" in request.url.path:
            sends += 1
        return httpx.Response(500, json={"errcode": "M_UNKNOWN", "error": "down"})

    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "surfaces.db", inline=True)
        try:
            async with MatrixClient(
                "http://hs.invalid",
                access_token="t",
                user_id="@bot:x",
                device_id="D",
                retry=RetryPolicy(max_attempts=client_attempts, base_s=0.5, max_s=30.0),
                transport=httpx.MockTransport(handler),
            ) as matrix:
                outbox = Outbox(store, matrix)
                started = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    await nursery.start(outbox.run)

                    async def worker() -> None:
                        n = 0
                        while True:
                            n += 1
                            body = {"msgtype": "m.notice", "body": f"notice {n}"}
                            await outbox.send(
                                PendingSend("!room:x", f"n{n}", "m.room.message", body)
                            )
                            await trio.sleep(send_every_s)

                    nursery.start_soon(worker)
                    await trio.sleep(seconds)
                    nursery.cancel_scope.cancel()
                elapsed = time.perf_counter() - started
                pending = await store.outbox_count()
        finally:
            store.close()
    return {"sends": sends, "seconds": elapsed, "pending": pending}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--client-attempts", type=int, default=1)
    parser.add_argument("--send-every", type=float, default=0.5)
    args = parser.parse_args()
    # The bot's own log lines (one per deferred send) are not what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    r = trio.run(measure, args.seconds, args.client_attempts, args.send_every)
    per_minute = r["sends"] / r["seconds"] * 60
    print(
        f"client attempts {args.client_attempts}: {r['sends']:,} send requests in "
        f"{r['seconds']:.1f} s = {per_minute:,.0f} per minute; {r['pending']} rows pending"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
