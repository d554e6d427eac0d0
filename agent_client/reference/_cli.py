"""``surfaces reference-agent`` / ``python -m agent_client.reference``."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio

from ._server import BEHAVIOURS, ReferenceAgent, parse_behaviour, serve_reference_agent


def build_parser(prog: str = "surfaces reference-agent") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the reference agent (the server side of the agent protocol).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    parser.add_argument("--workspace", default=".", help="workspace directory (.)")
    parser.add_argument(
        "--behaviour",
        default=None,
        help="default behaviour for plain messages, e.g. 'instant' or 'slow 0.5'; one of: "
        + ", ".join(BEHAVIOURS),
    )
    parser.add_argument(
        "--chunk-delay", type=float, default=0.02, help="seconds between echo chunks (0.02)"
    )
    return parser


async def _run(args: argparse.Namespace) -> None:
    agent = ReferenceAgent(
        Path(args.workspace), behaviour=args.behaviour, chunk_delay_s=args.chunk_delay
    )
    # Ctrl-C / SIGTERM cancel the server: a clean exit with code 0, no traceback.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            serve = partial(serve_reference_agent, agent=agent)
            port = await nursery.start(serve, args.host, args.port, agent.workspace)
            print(
                f"reference agent listening on ws://{args.host}:{port}/v1/agent_ws/{{chat_id}}/"
                f" (workspace {agent.workspace})",
                flush=True,
            )
            async for signum in signals:
                print(f"reference agent stopping ({signal.Signals(signum).name})", flush=True)
                nursery.cancel_scope.cancel()
                break


def cli_main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv`` (without the program name) and serve; returns 0."""
    args = build_parser().parse_args(argv)
    if args.behaviour is not None and parse_behaviour(args.behaviour) is None:
        print(
            f"unknown behaviour {args.behaviour!r}; known: {', '.join(BEHAVIOURS)}", file=sys.stderr
        )
        return 2
    if not Path(args.workspace).is_dir():
        print(f"workspace {args.workspace!r} is not a directory", file=sys.stderr)
        return 2
    try:
        trio.run(_run, args)
    except KeyboardInterrupt:  # a second Ctrl-C before the handler took over
        pass
    except OSError as exc:
        print(f"reference agent: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


main = cli_main
