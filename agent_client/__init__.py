"""Client (and reference server) of the agent WebSocket protocol.

See ``../shared/spec/agent-protocol.md`` for the wire contract and
``docs/internals.md`` for this API. Implementation modules are private; this file
is the public surface.
"""

from ._client import AgentClient, ProbeResult
from ._connect import Connector, connect_tcp
from ._errors import (
    AGENT_DISCONNECTED,
    AGENT_ERROR,
    AGENT_PROTOCOL_ERROR,
    AGENT_TIMEOUT,
    AGENT_UNAVAILABLE,
    FAILURE_CODES,
    TIMEOUT_PHASES,
    AgentFailure,
)
from ._frames import ConfirmRequest, SendFile, TextChunk, ToolProgress, TurnEnd, TurnEvent
from ._limits import TurnLimits
from ._serial import ChatSerializer
from ._turn import Turn
from ._urls import WsTarget, endpoint_url, normalize_base_url

__all__ = [
    "AGENT_DISCONNECTED",
    "AGENT_ERROR",
    "AGENT_PROTOCOL_ERROR",
    "AGENT_TIMEOUT",
    "AGENT_UNAVAILABLE",
    "FAILURE_CODES",
    "TIMEOUT_PHASES",
    "AgentClient",
    "AgentFailure",
    "ChatSerializer",
    "ConfirmRequest",
    "Connector",
    "ProbeResult",
    "SendFile",
    "TextChunk",
    "ToolProgress",
    "Turn",
    "TurnEnd",
    "TurnEvent",
    "TurnLimits",
    "WsTarget",
    "connect_tcp",
    "endpoint_url",
    "normalize_base_url",
]
