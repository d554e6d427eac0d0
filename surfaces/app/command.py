"""``surfaces run``: configuration, logging, signals, exit codes.

Exit codes: 0 after a clean shutdown; 2 for a configuration problem (before anything
starts); 3 when the credentials cannot work (rejected or revoked token, wrong user):
one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys

import structlog
import trio

from matrix_client import UnknownTokenError
from surfaces.app.bot import BotApp, first_leaf
from surfaces.config import load_config_and_registry_or_exit
from surfaces.core import FatalError
from surfaces.logs import configure_logging

log = structlog.get_logger(__name__)

EXIT_FATAL = 3


async def run_with_signals(app: BotApp) -> None:
    """Run ``app`` until it stops; SIGINT/SIGTERM start its ordered shutdown (a
    second signal forces it)."""
    try:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        log.info("signal_received", signal=signal.Signals(signum).name)
                        app.request_stop()

            nursery.start_soon(watch)
            await app.run()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        fatal = group.subgroup((FatalError, UnknownTokenError))
        if fatal is not None:
            raise first_leaf(fatal) from None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="surfaces run", description="Run the bot.")
    parser.add_argument("--config", help="YAML config file (default: $SURFACES_CONFIG)")
    args = parser.parse_args(argv)
    config, registry = load_config_and_registry_or_exit(args.config, prog="surfaces run")
    configure_logging(config.log.format, config.log.level, levels=config.log.levels)
    # Modules, classes and functions are most of the heap and never become garbage:
    # frozen, they are no longer walked by every full collection, which otherwise
    # holds the event loop (every room) for ~20 ms (bench/reply_stall.py).
    gc.collect()
    gc.freeze()
    try:
        trio.run(run_with_signals, BotApp(config, registry))
    except (FatalError, UnknownTokenError) as exc:
        log.error("bot_fatal", error=str(exc))
        print(f"surfaces: fatal: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return 0
