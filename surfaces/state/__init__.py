"""Durable state: the SQLite store and its records."""

from surfaces.state._crypto import CRYPTO_TABLES
from surfaces.state._db import SCHEMA_VERSION, DatabaseInfo
from surfaces.state._dir import DB_NAME, LOCK_NAME, StateDir, StateError, StateLockedError
from surfaces.state._records import (
    ChatRecord,
    Claim,
    ExpiredFile,
    Followers,
    InboxItem,
    Intent,
    OutboxItem,
    PendingSend,
    Snapshot,
    SnapshotSaved,
    StagedFile,
    ThreadRecord,
    TranscriptBounds,
    TranscriptEntry,
    TranscriptWrite,
    TurnMessage,
    TurnRecord,
    TurnStart,
    UserRecord,
    WaitingEvent,
)
from surfaces.state._store import Store
from surfaces.state._transcript import PRUNE_BATCH as TRANSCRIPT_PRUNE_BATCH
from surfaces.state._usage import (
    MAX_TURN_TOKENS,
    TurnUsage,
    UsageSummary,
    UsageTotals,
    UsageWarning,
    known_tokens,
)
from surfaces.state._workspaces import ChatConflictError, ChatConflictField

__all__ = [
    "CRYPTO_TABLES",
    "DB_NAME",
    "LOCK_NAME",
    "MAX_TURN_TOKENS",
    "SCHEMA_VERSION",
    "TRANSCRIPT_PRUNE_BATCH",
    "ChatConflictError",
    "ChatConflictField",
    "ChatRecord",
    "Claim",
    "DatabaseInfo",
    "ExpiredFile",
    "Followers",
    "InboxItem",
    "Intent",
    "OutboxItem",
    "PendingSend",
    "Snapshot",
    "SnapshotSaved",
    "StagedFile",
    "StateDir",
    "StateError",
    "StateLockedError",
    "Store",
    "ThreadRecord",
    "TranscriptBounds",
    "TranscriptEntry",
    "TranscriptWrite",
    "TurnMessage",
    "TurnRecord",
    "TurnStart",
    "TurnUsage",
    "UsageSummary",
    "UsageTotals",
    "UsageWarning",
    "UserRecord",
    "WaitingEvent",
    "known_tokens",
]
