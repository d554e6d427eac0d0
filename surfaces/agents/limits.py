"""The one mapping from the ``agents`` config section to the agent client's limits.

The bot, ``check-agents`` and ``doctor`` all talk to agents; they differ only in how
much of the configured budget a probe may spend (``probe_limits``), never in which
field means what.
"""

from __future__ import annotations

import math

import attrs

from agent_client import TurnLimits
from surfaces.config import AgentsConfig


def turn_limits(agents: AgentsConfig) -> TurnLimits:
    """The limits of a real turn, exactly as configured."""
    return TurnLimits(
        connect_s=agents.connect_timeout_s,
        status_s=agents.status_timeout_s,
        first_text_s=agents.first_text_timeout_s,
        idle_s=agents.idle_timeout_s,
        total_s=agents.total_timeout_s,
        retries=agents.retries,
        retry_base_s=agents.retry_base_s,
        max_frame_bytes=agents.max_frame_bytes,
    )


def probe_limits(agents: AgentsConfig, *, cap_s: float = math.inf) -> TurnLimits:
    """Limits for a connect → ``STATUS`` probe: the configured phase deadlines (each at
    most ``cap_s``: a diagnostic need not wait out a 15 s status timeout per agent), no
    retries, and a total that covers just those two phases."""
    limits = turn_limits(agents)
    connect_s = min(limits.connect_s, cap_s)
    status_s = min(limits.status_s, cap_s)
    return attrs.evolve(
        limits,
        connect_s=connect_s,
        status_s=status_s,
        total_s=connect_s + status_s + 1.0,
        retries=0,
    )
