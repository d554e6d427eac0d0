"""The deadlines, retry policy and size limits of one turn (``TurnLimits``)."""

from __future__ import annotations

import attrs


@attrs.frozen
class TurnLimits:
    """Configured limits of a turn (seconds, counts, bytes); read at the call site.

    ``max_frame_bytes`` bounds one received message, fragments assembled, in UTF-8
    bytes. A larger message closes the connection with 1009 and
    fails the turn with ``AGENT_PROTOCOL_ERROR``. ``message_queue_size`` is kept for
    configuration compatibility only: messages are read inline as the turn is
    iterated, so there is no queue to bound (at most one message is buffered).
    ``close_s`` bounds the polite WebSocket close when a turn ends or is cancelled;
    the byte stream is closed regardless.
    """

    connect_s: float = 10.0
    status_s: float = 15.0
    first_text_s: float = 120.0
    idle_s: float = 120.0
    total_s: float = 900.0
    retries: int = 2
    retry_base_s: float = 0.5
    retry_max_s: float = 8.0
    max_frame_bytes: int = 1_048_576
    message_queue_size: int = 4
    close_s: float = 2.0
