"""Durable state: the SQLite store and its records."""

from surfaces.state._store import (
    ChatRecord,
    Claim,
    InboxItem,
    Intent,
    OutboxItem,
    PendingSend,
    StagedFile,
    Store,
    TurnStart,
    UserRecord,
)

__all__ = [
    "ChatRecord",
    "Claim",
    "InboxItem",
    "Intent",
    "OutboxItem",
    "PendingSend",
    "StagedFile",
    "Store",
    "TurnStart",
    "UserRecord",
]
