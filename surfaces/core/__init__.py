"""The bot's vocabulary: lanes, item kinds and statuses, send outcomes, the chat binding
codec and the errors every layer may raise. Pure values; imports nothing from the bot."""

from surfaces.core.binding import (
    CHAT_EVENT,
    SPACE_EVENT,
    THREAD_EVENT,
    ChatBinding,
    ChatStatus,
    SpaceBinding,
    ThreadBinding,
    is_event_id,
    is_local_id,
    is_platform_chat_id,
)
from surfaces.core.errors import FatalError
from surfaces.core.kinds import ItemKind, ItemStatus, OutboxStatus, SendOutcome
from surfaces.core.lanes import Lane, LaneKind
from surfaces.core.months import month_after, month_of, month_start, resets_at
from surfaces.core.relations import thread_relation
from surfaces.core.text import MAX_BODY_CHARS, clean_text

__all__ = [
    "CHAT_EVENT",
    "MAX_BODY_CHARS",
    "SPACE_EVENT",
    "THREAD_EVENT",
    "ChatBinding",
    "ChatStatus",
    "FatalError",
    "ItemKind",
    "ItemStatus",
    "Lane",
    "LaneKind",
    "OutboxStatus",
    "SendOutcome",
    "SpaceBinding",
    "ThreadBinding",
    "clean_text",
    "is_event_id",
    "is_local_id",
    "is_platform_chat_id",
    "month_after",
    "month_of",
    "month_start",
    "resets_at",
    "thread_relation",
]
