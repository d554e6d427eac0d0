"""``surfaces run``: configuration, logging, signals, exit codes.

Exit codes (docs/operations.md): 0 after a clean shutdown (a signal during start-up
included); 2 for a configuration problem or an unusable state directory/database (not
a directory, not a database, a schema newer than this build); 3 when the credentials
cannot work (rejected or revoked token, wrong user); 4 when another ``surfaces run``
holds the state directory's lock. Each is one line on stderr, no traceback. A
homeserver that does not answer is never an exit: start-up waits for it.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys

import structlog
import trio

from matrix_client import UnknownTokenError
from surfaces.app.bot import FATAL_ERRORS, BotApp, first_leaf
from surfaces.config import EXIT_CONFIG, load_config_and_registry_or_exit
from surfaces.core import FatalError
from surfaces.logs import configure_logging
from surfaces.state import StateError, StateLockedError

log = structlog.get_logger(__name__)

EXIT_FATAL = 3
EXIT_LOCKED = 4


async def run_with_signals(app: BotApp) -> None:
    """Run ``app`` until it stops; SIGINT/SIGTERM start its ordered shutdown (a
    second signal forces it). The signal watcher is running before the app starts,
    so a signal while start-up waits for the homeserver is honoured at once."""
    try:
        async with trio.open_nursery() as nursery:

            async def watch(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED):
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    task_status.started()
                    async for signum in signals:
                        log.info("signal_received", signal=signal.Signals(signum).name)
                        app.request_stop()

            await nursery.start(watch)
            await app.run()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        fatal = group.subgroup(FATAL_ERRORS)
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
        return _fatal(exc, EXIT_FATAL)
    except StateLockedError as exc:
        return _fatal(exc, EXIT_LOCKED)
    except StateError as exc:
        return _fatal(exc, EXIT_CONFIG)
    return 0


def _fatal(exc: BaseException, code: int) -> int:
    log.error("bot_fatal", error=str(exc), exit_code=code)
    print(f"surfaces: fatal: {exc}", file=sys.stderr)
    return code
