"""The application: wiring every part (``BotApp``), the sync task, the router, upkeep,
and ``surfaces run`` (``main``). The only package that knows all the others."""

from surfaces.app.bot import BotApp
from surfaces.app.command import EXIT_FATAL, main, run_with_signals
from surfaces.app.sync_filter import build_sync_filter

__all__ = ["EXIT_FATAL", "BotApp", "build_sync_filter", "main", "run_with_signals"]
