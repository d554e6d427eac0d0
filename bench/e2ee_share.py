"""The bot's room-key sharing on a real Synapse: time until a room key is with N devices.

    .venv/bin/python -m bench e2ee_share [--devices 10] [--rooms 10]

``bench/crypto_bench.py`` times the machine alone (no server). This times what the
bot does before the first encrypted message of a room, through its own code
(``surfaces.session.Crypto.encrypt``: the state database, the saves before each
request, the Matrix requests) against a local Synapse, for a user with ``--devices``
E2EE devices (``CryptoUser`` logins, keys uploaded) invited to an encrypted room:

* ``first_room``: devices never seen — ``/keys/query``, ``/keys/claim`` (N one-time
  keys, N Olm sessions), one ``/sendToDevice`` with N encrypted room keys;
* ``next_rooms``: a new room with the same devices — Olm sessions exist, so only the
  ``/sendToDevice`` (median over ``--rooms``);
* ``encrypt_warm``: a second message in a room whose key is shared (the steady state
  of every send: encrypt + save, no request).

Wall time and this process's CPU time, per step. Writes ``bench/results/e2ee_share.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from importlib.metadata import version
from pathlib import Path
from typing import Any

import structlog
import trio

from bench._common import write_report
from matrix_client import MatrixClient
from matrix_client.crypto import MEGOLM_ALGORITHM
from matrix_client.testing import CryptoUser, LocalSynapse
from surfaces.config import MatrixConfig, Secret
from surfaces.session import login, open_crypto
from surfaces.state import DB_NAME, Store

RESULTS = Path(__file__).parent / "results"
STEP_S = 60.0


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values) * 1000, 2),
        "min_ms": round(min(values) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


async def timed(step: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = await step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-e2ee-share-"))
    report: dict[str, Any] = {
        "benchmark": "e2ee_share",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "devices": args.devices,
        "rooms": args.rooms,
        "environment": {"matrix-synapse": version("matrix-synapse"), "vodozemac": "0.10.0"},
    }
    async with LocalSynapse.running(work / "synapse", ratelimits="lifted") as hs:
        bot_reg = await hs.register("sharebot", "bot-password")
        user_reg = await hs.register("many", "user-password")
        async with AsyncExitStack() as stack:
            for n in range(args.devices):
                client = await stack.enter_async_context(MatrixClient(hs.base_url))
                with trio.fail_after(STEP_S):
                    await client.login_password(
                        user_reg.user_id, "user-password", device_id=f"DEVICE{n}"
                    )
                    await CryptoUser.start(client)  # its keys uploaded
            config = MatrixConfig(
                homeserver=hs.base_url,
                user_id=bot_reg.user_id,
                password=Secret("bot-password"),
                device_id="SHAREBOT",
            )
            store = await Store.open(work / "bot" / DB_NAME)
            matrix = await stack.enter_async_context(MatrixClient(hs.base_url))
            with trio.fail_after(STEP_S):
                await login(matrix, store, config)
                crypto = await open_crypto(matrix, store, config, work / "bot")
                await crypto.flush()  # the bot's own keys

            async def new_room() -> str:
                return await matrix.create_room(
                    invite=[user_reg.user_id],
                    preset="private_chat",
                    initial_state=[
                        {
                            "type": "m.room.encryption",
                            "state_key": "",
                            "content": {"algorithm": MEGOLM_ALGORITHM},
                        }
                    ],
                )

            content = {"msgtype": "m.text", "body": "hello"}
            first: dict[str, Any] = {}
            next_wall: list[float] = []
            next_cpu: list[float] = []
            warm_wall: list[float] = []
            warm_cpu: list[float] = []
            for index in range(args.rooms + 1):
                with trio.fail_after(STEP_S):
                    room = await new_room()
                    await crypto.rooms.get(room)  # the room's state, read once (not timed)
                    _, wall, cpu = await timed(
                        lambda r=room: crypto.encrypt(r, "m.room.message", content)
                    )
                    if index == 0:
                        first = {"wall_ms": round(wall * 1000, 2), "cpu_ms": round(cpu * 1000, 2)}
                    else:
                        next_wall.append(wall)
                        next_cpu.append(cpu)
                    for _ in range(20):
                        _, wall, cpu = await timed(
                            lambda r=room: crypto.encrypt(r, "m.room.message", content)
                        )
                        warm_wall.append(wall)
                        warm_cpu.append(cpu)
            store.close()
    report["first_room"] = first
    report["next_rooms"] = {"wall": _stats(next_wall), "cpu": _stats(next_cpu)}
    report["encrypt_warm"] = {"wall": _stats(warm_wall), "cpu": _stats(warm_cpu)}
    return report


def markdown(report: dict[str, Any]) -> str:
    n = report["devices"]
    first, nxt, warm = report["first_room"], report["next_rooms"], report["encrypt_warm"]
    return "\n".join(
        [
            f"# Room-key sharing with {n} devices on Synapse ({report['when']})",
            "",
            "| step | wall ms | bot CPU ms |",
            "|---|---|---|",
            f"| first room: query + claim {n} + to-device | {first['wall_ms']} | "
            f"{first['cpu_ms']} |",
            f"| next room, same devices: to-device (median of {report['rooms']}) | "
            f"{nxt['wall']['median_ms']} | {nxt['cpu']['median_ms']} |",
            f"| a message in a room with its key shared (median) | "
            f"{warm['wall']['median_ms']} | {warm['cpu']['median_ms']} |",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench e2ee_share", description=__doc__)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--output", type=Path, default=RESULTS / "e2ee_share.json")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    report = trio.run(run, args)
    write_report(args.output, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
