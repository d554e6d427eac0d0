"""Probe traffic per agent (issue 15 §1): what one presence probe costs on the wire.

    python -m bench probe_traffic                 # 50 probes, 30 s interval
    python -m bench probe_traffic --probes 200 --interval 30

A probe is what the prober does every ``presence.probe_interval_s`` per agent:
TCP connect → WebSocket handshake → the agent's ``STATUS`` → close (close frame both
ways). It runs against the reference agent over loopback TCP, through the bot's own
agent client (``AgentClient.probe`` with ``probe_limits``); a counting connector
records the TCP payload bytes in each direction. TCP/IP framing is estimated from the
kernel's segment counters (``/proc/net/snmp`` ``Tcp: OutSegs``, loopback: both ends
are this host, so each segment is counted once by its sender), which other processes
on the machine may inflate a little: the payload numbers are exact, the segment count
an upper bound.

Also timed: one probe's latency (what ``!status`` used to wait for on every call; it
now reads the prober's last result and makes no connection).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import attrs
import trio

from agent_client import AgentClient, WsTarget, connect_tcp
from agent_client.reference import serve_reference_agent
from surfaces.agents import probe_limits
from surfaces.config import AgentsConfig

#: IPv4 + TCP headers with the timestamp option, as Linux sends them (no Ethernet).
SEGMENT_HEADER_BYTES = 52


@attrs.define
class Counter:
    sent: int = 0
    received: int = 0


class CountingStream(trio.abc.Stream):
    def __init__(self, inner: trio.abc.Stream, counter: Counter) -> None:
        self._inner, self._counter = inner, counter

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._counter.sent += len(data)
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._inner.receive_some(max_bytes)
        self._counter.received += len(data)
        return data

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


def tcp_out_segments() -> int | None:
    try:
        lines = Path("/proc/net/snmp").read_text().splitlines()
    except OSError:
        return None
    tcp = [line.split() for line in lines if line.startswith("Tcp:")]
    header, values = tcp[0], tcp[1]
    return int(values[header.index("OutSegs")])


async def measure(probes: int) -> dict[str, float]:
    counters: list[Counter] = []

    async def connector(target: WsTarget) -> trio.abc.Stream:
        counter = Counter()
        counters.append(counter)
        return CountingStream(await connect_tcp(target), counter)

    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as workspace:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_reference_agent, "127.0.0.1", 0, Path(workspace))
            client = AgentClient(probe_limits(AgentsConfig()), connector=connector)
            base = f"http://127.0.0.1:{port}/"
            await client.probe(base, "998000000000")  # warm-up (imports, first connect)
            counters.clear()
            segments_before = tcp_out_segments()
            for _ in range(probes):
                started = time.perf_counter()
                await client.probe(base, "998000000000")
                latencies.append(time.perf_counter() - started)
            await trio.sleep(0.2)  # the last FIN/ACKs
            segments_after = tcp_out_segments()
            nursery.cancel_scope.cancel()
    sent = statistics.mean(c.sent for c in counters)
    received = statistics.mean(c.received for c in counters)
    segments = (
        (segments_after - segments_before) / probes
        if segments_before is not None and segments_after is not None
        else float("nan")
    )
    return {
        "sent": sent,
        "received": received,
        "segments": segments,
        "latency_ms_median": statistics.median(latencies) * 1000,
        "latency_ms_max": max(latencies) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench probe_traffic")
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--interval", type=float, default=30.0, help="probe interval, s")
    args = parser.parse_args()
    r = trio.run(measure, args.probes)
    per_hour = 3600 / args.interval
    payload = r["sent"] + r["received"]
    framing = r["segments"] * SEGMENT_HEADER_BYTES
    print(f"one probe (reference agent, loopback), mean of {args.probes}:")
    print(f"  payload: {r['sent']:.0f} B bot → agent, {r['received']:.0f} B agent → bot")
    print(
        f"  TCP segments (both ways, upper bound): {r['segments']:.1f}"
        f" ≈ {framing:.0f} B of IPv4+TCP headers"
    )
    print(f"  latency: median {r['latency_ms_median']:.2f} ms, max {r['latency_ms_max']:.2f} ms")
    print(f"per agent per hour at {args.interval:g} s: {per_hour:.0f} connections,")
    print(
        f"  {payload * per_hour / 1024:.1f} KiB payload,"
        f" ≈ {(payload + framing) * per_hour / 1024:.1f} KiB with TCP/IP headers"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
