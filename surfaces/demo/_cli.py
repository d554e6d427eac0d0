"""``surfaces demo``'s command line (``surfaces.cli`` passes the rest of argv here)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from ._run import DemoOptions, run_demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surfaces demo",
        description="Start a throwaway Synapse on loopback, the reference agent and the "
        "bot; play a scripted conversation; then stay up for a real Matrix client.",
    )
    parser.add_argument(
        "--once", action="store_true", help="exit after the script (0 only if every step passed)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep everything here (reusable); default: a temporary directory",
    )
    parser.add_argument("--keep", action="store_true", help="do not delete the temporary state")
    parser.add_argument("--port", type=int, help="Synapse port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--locale", choices=("ru", "en"), default="ru", help="bot locale")
    parser.add_argument(
        "--verbose", action="store_true", help="bot logs to stderr instead of DIR/bot.log"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the demo, return its exit code (0, 1 or 130)."""
    args = build_parser().parse_args(argv)
    opts = DemoOptions(
        once=args.once,
        state_dir=args.state_dir,
        keep=args.keep,
        port=args.port,
        locale=args.locale,
        verbose=args.verbose,
    )
    return trio.run(run_demo, opts, sys.stdout)
