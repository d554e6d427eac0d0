"""Operations: Prometheus metrics, health state and the ops HTTP server.

Wiring, in the bot's nursery::

    metrics = Metrics(version=__version__)
    health = HealthState(stale_after_s=3 * cfg.matrix.sync_long_poll_s + 30, db_probe=probe)
    if cfg.ops.enabled:
        await nursery.start(serve_ops, cfg.ops.host, cfg.ops.port, metrics, health)
"""

from surfaces.ops.health import CheckResult, DbProbe, HealthReport, HealthState
from surfaces.ops.metrics import (
    AGENT_FAILURE_CODES,
    CONTENT_TYPE,
    MAX_ENDPOINT_LABELS,
    SYNC_ERROR_KINDS,
    TURN_OUTCOMES,
    Metrics,
)
from surfaces.ops.server import ServerLimits, handle_connection, serve_ops

__all__ = [
    "AGENT_FAILURE_CODES",
    "CONTENT_TYPE",
    "MAX_ENDPOINT_LABELS",
    "SYNC_ERROR_KINDS",
    "TURN_OUTCOMES",
    "CheckResult",
    "DbProbe",
    "HealthReport",
    "HealthState",
    "Metrics",
    "ServerLimits",
    "handle_connection",
    "serve_ops",
]
