"""``surfaces healthcheck [--config PATH] [--timeout S]``: is the running bot healthy?

For the container's ``HEALTHCHECK`` (or any monitor on the same host): it reads the
configuration exactly as the bot does (``--config`` / ``SURFACES_CONFIG``, then the
environment), so it asks the ops server where the bot really listens (``ops.host``,
``ops.port``, from YAML or environment), and ``GET /healthz``.

Exit 0 when ``/healthz`` answers 200, else 1, whatever went wrong (Docker reserves
every other code): an unhealthy answer, nothing listening, no answer within the
deadline, the ops server disabled (``ops.enabled`` false: then turn the container's
health check off too), or an invalid configuration. One line on stdout says which;
Docker keeps it in the container's health log.

A plain blocking socket, not httpx or trio: the check runs every 30 s in a fresh
interpreter and must start fast; the whole exchange has one deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Mapping

from surfaces.config import ConfigError, load_config, print_config_error

__all__ = ["DEFAULT_TIMEOUT_S", "EXIT_UNHEALTHY", "check_health", "main", "probe_address"]

EXIT_UNHEALTHY = 1
#: Below the image's ``HEALTHCHECK --timeout=10s``.
DEFAULT_TIMEOUT_S = 5.0
_MAX_RESPONSE_BYTES = 65_536


def probe_address(host: str) -> str:
    """Where to connect for a server bound to ``host``: a wildcard means loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host.strip("[]")


def check_health(host: str, port: int, *, deadline_s: float) -> tuple[bool, str]:
    """``GET /healthz`` on ``host:port`` within ``deadline_s``: (healthy, one line)."""
    until = time.monotonic() + deadline_s
    host_header = f"[{host}]" if ":" in host else host
    request = (
        f"GET /healthz HTTP/1.1\r\nHost: {host_header}:{port}\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    try:
        with socket.create_connection((host, port), timeout=deadline_s) as sock:
            sock.settimeout(max(0.001, until - time.monotonic()))
            sock.sendall(request)
            response = b""
            while len(response) < _MAX_RESPONSE_BYTES:
                sock.settimeout(max(0.001, until - time.monotonic()))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                response += chunk
    except TimeoutError:
        return False, f"no answer from {host}:{port} within {deadline_s:g} s"
    except OSError as exc:
        return False, f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    return _judge(response)


def _judge(response: bytes) -> tuple[bool, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return False, f"not an HTTP answer: {status_line[:80]!r}"
    status = int(parts[1])
    try:
        report = json.loads(body)
        failed = report.get("failed") if isinstance(report, dict) else None
    except ValueError:
        failed = None
    if status == 200:
        return True, "healthy (/healthz 200)"
    if isinstance(failed, list) and all(isinstance(name, str) for name in failed):
        return False, f"unhealthy (/healthz {status}): failed {', '.join(failed) or '?'}"
    return False, f"unhealthy (/healthz {status})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surfaces healthcheck",
        description="GET /healthz of the running bot's ops server (address from the "
        "configuration). Exit 0 if healthy, else 1.",
    )
    parser.add_argument("--config", metavar="PATH", help="YAML config (default: $SURFACES_CONFIG)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"deadline for the whole check (default {DEFAULT_TIMEOUT_S:g} s)",
    )
    return parser


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point; ``environ`` is a test seam (``os.environ`` by default)."""
    prog = "surfaces healthcheck"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else EXIT_UNHEALTHY
    try:
        config = load_config(args.config, os.environ if environ is None else environ)
    except ConfigError as error:
        print_config_error(error, prog=prog)
        print(f"{prog}: unhealthy: invalid configuration")
        return EXIT_UNHEALTHY
    if not config.ops.enabled:
        print(
            f"{prog}: unhealthy: the ops server is disabled (ops.enabled / "
            "SURFACES_OPS__ENABLED): enable it, or turn the health check off"
        )
        return EXIT_UNHEALTHY
    host = probe_address(config.ops.host)
    healthy, detail = check_health(host, config.ops.port, deadline_s=max(0.1, args.timeout))
    print(f"{prog}: {detail}")
    return 0 if healthy else EXIT_UNHEALTHY


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
