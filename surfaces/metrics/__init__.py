"""Prometheus metrics behind intent-revealing methods (see ``_metrics``)."""

from surfaces.metrics._metrics import (
    AGENT_FAILURE_CODES,
    AGENT_STATES,
    CONTENT_TYPE,
    MAX_AGENT_LABELS,
    MAX_ENDPOINT_LABELS,
    MAX_STATUS_LABELS,
    NO_RESPONSE_STATUS,
    SYNC_ERROR_KINDS,
    TURN_OUTCOMES,
    Metrics,
)

__all__ = [
    "AGENT_FAILURE_CODES",
    "AGENT_STATES",
    "CONTENT_TYPE",
    "MAX_AGENT_LABELS",
    "MAX_ENDPOINT_LABELS",
    "MAX_STATUS_LABELS",
    "NO_RESPONSE_STATUS",
    "SYNC_ERROR_KINDS",
    "TURN_OUTCOMES",
    "Metrics",
]
