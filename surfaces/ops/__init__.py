"""Operations: health state and the ops HTTP server (exported here), and the
operator commands in their own modules: ``doctor``, ``check_agents``, ``backup``,
``healthcheck`` (each with ``main(argv) -> int``, run by ``surfaces <command>``).

Wiring, in the bot's nursery::

    health = HealthState(stale_after_s=3 * cfg.matrix.sync_long_poll_s + 30, db_probe=probe)
    if cfg.ops.enabled:
        await nursery.start(serve_ops, cfg.ops.host, cfg.ops.port, metrics, health)
"""

from surfaces.ops.health import CheckResult, DbProbe, HealthReport, HealthState
from surfaces.ops.server import ServerLimits, handle_connection, serve_ops

__all__ = [
    "CheckResult",
    "DbProbe",
    "HealthReport",
    "HealthState",
    "ServerLimits",
    "handle_connection",
    "serve_ops",
]
