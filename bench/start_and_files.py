"""Issue 13 numbers: coming up after a homeserver outage at start, and memory during
a refused download.

    ./dev bench start_and_files outage [--outage 30]     # real Synapse, real process
    ./dev bench start_and_files download [--size 20000000 --limit 1000]

``outage``: a loopback gate in front of a throwaway Synapse refuses connections
(nothing listens) for ``--outage`` seconds; ``surfaces run`` is started against the
gate at the same moment. Reported: when the gate opened, when the bot logged
``bot_started``, the difference (the time to come up once the server is back), and
the ``homeserver_unavailable_at_start`` attempts it logged meanwhile.

``download``: a child process downloads ``--size`` bytes of media under a
``--limit`` byte cap from a local HTTP server, the way the bot stores a user's file
(``download_stream`` → ``store_incoming``), once with a declared ``Content-Length``
and once chunked (no length: the body itself must be cut at limit + 1); for
contrast, once into memory without a cap (what the bot did before). Reported: the
child's peak RSS growth (``VmHWM`` after − ``VmRSS`` before) and the bytes read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[1]


# ---- outage ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _pipe(a: trio.SocketStream, b: trio.SocketStream) -> None:
    try:
        while data := await a.receive_some(65536):
            await b.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await b.aclose()


async def _gate(port: int, upstream: int, closed_s: float, opened: list[float]) -> None:
    """Nothing listens on ``port`` for ``closed_s``; then forward to ``upstream``."""
    await trio.sleep(closed_s)

    async def forward(client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream("127.0.0.1", upstream)
        async with trio.open_nursery() as n:
            n.start_soon(_pipe, client, server)
            n.start_soon(_pipe, server, client)

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    opened.append(time.monotonic())
    await trio.serve_listeners(forward, listeners)


async def _outage(outage_s: float) -> dict:
    from matrix_client.testing import LocalSynapse

    async with LocalSynapse.running(ratelimits="lifted") as hs:
        password = f"pw-{uuid.uuid4().hex}"
        bot = await hs.register(f"startbot-{uuid.uuid4().hex[:6]}", password)
        upstream = int(hs.base_url.rsplit(":", 1)[1].strip("/"))
        gate = _free_port()
        with tempfile.TemporaryDirectory() as tmp:
            log_path = Path(tmp) / "bot.log"
            env = {
                **os.environ,
                "MATRIX_HOMESERVER": f"http://127.0.0.1:{gate}",
                "MATRIX_USER_ID": bot.user_id,
                "MATRIX_PASSWORD": password,
                "AGENT_BASE_URL": "http://127.0.0.1:9/",
                "SURFACES_WORKSPACE_DIR": tmp,
                "SURFACES_STATE_DIR": str(Path(tmp) / "state"),
                "SURFACES_LOG__FORMAT": "json",
            }
            opened: list[float] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_gate, gate, upstream, outage_s, opened)
                started = time.monotonic()
                with log_path.open("wb") as out:
                    process = await trio.lowlevel.open_process(
                        [sys.executable, "-m", "surfaces", "run"],
                        env=env,
                        stdout=out,
                        stderr=out,
                        cwd=REPO,
                    )
                up_at = None
                with trio.move_on_after(outage_s + 120):
                    while up_at is None:
                        if "bot_started" in log_path.read_text(errors="replace"):
                            up_at = time.monotonic()
                        await trio.sleep(0.05)
                process.terminate()
                await process.wait()
                nursery.cancel_scope.cancel()
            lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    attempts = [e for e in lines if e.get("event") == "homeserver_unavailable_at_start"]
    return {
        "outage_s": outage_s,
        "gate_opened_after_s": round(opened[0] - started, 2) if opened else None,
        "bot_started_after_s": round(up_at - started, 2) if up_at else None,
        "up_after_server_back_s": round(up_at - opened[0], 2) if up_at and opened else None,
        "attempts": len(attempts),
        "delays_s": [e["next_delay_s"] for e in attempts],
    }


# ---- download ----------------------------------------------------------------------


def _media_server(size: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/_matrix/client/versions"):
                body = json.dumps({"versions": ["v1.11"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            chunked = "chunked" in self.path
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * 65536
            try:
                sent = 0
                while sent < size:
                    piece = block[: min(len(block), size - sent)]
                    if chunked:
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    else:
                        self.wfile.write(piece)
                    sent += len(piece)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading: that is the point

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


async def _child_download(url: str, mode: str, limit: int) -> dict:
    from matrix_client import MatrixClient, MediaTooLargeError
    from surfaces.files import store_incoming

    async with MatrixClient(url, access_token="x") as client:
        await client.versions()
        before = _status_kb("VmRSS")
        mxc = f"mxc://bench/{mode}"
        outcome = "stored"
        read = 0
        with tempfile.TemporaryDirectory() as ws:
            try:
                if mode == "memory":
                    download = await client.download(mxc, max_bytes=10**9)
                    read = len(download.data)
                else:
                    async with client.download_stream(mxc, max_bytes=limit) as body:
                        try:
                            await store_incoming(Path(ws), "f.bin", body)
                        finally:
                            read = body.bytes_read
            except MediaTooLargeError as exc:
                outcome = f"refused (seen at least {exc.seen_at_least} bytes)"
        peak = _status_kb("VmHWM")
    return {"mode": mode, "outcome": outcome, "bytes_kept": read, "rss_growth_kb": peak - before}


def _download(size: int, limit: int) -> list[dict]:
    server = _media_server(size)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    results = []
    try:
        for mode in ("declared", "chunked", "memory"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.start_and_files", "_child", url, mode, str(limit)],
                capture_output=True,
                check=True,
                cwd=REPO,
                text=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        server.shutdown()
    return results


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _, _, url, mode, limit = sys.argv
        print(json.dumps(trio.run(_child_download, url, mode, int(limit))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["outage", "download", "all"], nargs="?", default="all")
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=20_000_000)
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args(sys.argv[1:])
    if args.what in ("download", "all"):
        for row in _download(args.size, args.limit):
            print(json.dumps(row))
    if args.what in ("outage", "all"):
        print(json.dumps(trio.run(_outage, args.outage)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
