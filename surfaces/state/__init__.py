"""Durable state: the SQLite store and its records."""

from surfaces.state._crypto import CRYPTO_TABLES
from surfaces.state._db import DB_NAME, DatabaseInfo
from surfaces.state._records import (
    ChatRecord,
    Claim,
    InboxItem,
    Intent,
    OutboxItem,
    PendingSend,
    StagedFile,
    TurnStart,
    UserRecord,
    WaitingEvent,
)
from surfaces.state._store import Store

__all__ = [
    "CRYPTO_TABLES",
    "DB_NAME",
    "ChatRecord",
    "Claim",
    "DatabaseInfo",
    "InboxItem",
    "Intent",
    "OutboxItem",
    "PendingSend",
    "StagedFile",
    "Store",
    "TurnStart",
    "UserRecord",
    "WaitingEvent",
]
