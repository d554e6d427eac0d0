"""Durable state: the SQLite store and its records."""

from surfaces.state._store import (
    ChatRecord,
    InboxItem,
    Intent,
    OutboxItem,
    PendingSend,
    StagedFile,
    Store,
    UserRecord,
)

__all__ = [
    "ChatRecord",
    "InboxItem",
    "Intent",
    "OutboxItem",
    "PendingSend",
    "StagedFile",
    "Store",
    "UserRecord",
]
