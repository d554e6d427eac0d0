"""A hand-rolled, trio-native Matrix client-server API client on httpx.

This module is the public API; implementation modules are private. No bot
logic lives here: the package is usable on its own. A scripted in-memory fake
homeserver for tests lives in :mod:`matrix_client.testing`.
"""

from ._client import AUTHENTICATED_MEDIA_VERSION, MatrixClient, parse_mxc
from ._content import (
    ENVELOPE_OVERHEAD_BYTES,
    HTML_FORMAT,
    MAX_EVENT_BYTES,
    canonical_json,
    edit_content,
    event_size,
    media_content,
    new_txn_id,
    notice_content,
    text_content,
)
from ._errors import (
    EventTooLargeError,
    MatrixError,
    RateLimitedError,
    ResponseFormatError,
    TransportError,
    UnknownTokenError,
)
from ._models import (
    Download,
    InviteItem,
    JoinedRoom,
    LeftRoom,
    LoginResponse,
    MediaConfig,
    MessagesPage,
    RoomEvent,
    Rooms,
    StrippedStateEvent,
    SyncBatch,
    SyncResponse,
    Timeline,
    TimelineItem,
    Versions,
    WhoAmI,
)
from ._retry import FailureKind, RetryPolicy, call_with_retry, classify
from ._sync import Syncer

__all__ = [
    "AUTHENTICATED_MEDIA_VERSION",
    "ENVELOPE_OVERHEAD_BYTES",
    "HTML_FORMAT",
    "MAX_EVENT_BYTES",
    "Download",
    "EventTooLargeError",
    "FailureKind",
    "InviteItem",
    "JoinedRoom",
    "LeftRoom",
    "LoginResponse",
    "MatrixClient",
    "MatrixError",
    "MediaConfig",
    "MessagesPage",
    "RateLimitedError",
    "ResponseFormatError",
    "RetryPolicy",
    "RoomEvent",
    "Rooms",
    "StrippedStateEvent",
    "SyncBatch",
    "SyncResponse",
    "Syncer",
    "Timeline",
    "TimelineItem",
    "TransportError",
    "UnknownTokenError",
    "Versions",
    "WhoAmI",
    "call_with_retry",
    "canonical_json",
    "classify",
    "edit_content",
    "event_size",
    "media_content",
    "new_txn_id",
    "notice_content",
    "parse_mxc",
    "text_content",
]
