"""Row mappers: one function per table from ``sqlite3.Row`` to its record."""

from __future__ import annotations

import json
import sqlite3

from surfaces.core import ChatStatus, ItemKind, ItemStatus, Lane, OutboxStatus
from surfaces.state._records import (
    ChatRecord,
    InboxItem,
    Intent,
    OutboxItem,
    StagedFile,
    UserRecord,
)


def _intent(r: sqlite3.Row) -> Intent:
    return Intent(
        r["id"],
        r["owner"],
        r["kind"],
        r["local_id"],
        r["name"],
        r["agent_id"],
        r["platform_chat_id"],
        r["key"],
        r["status"],
        r["room_id"],
    )


def _user(row: sqlite3.Row) -> UserRecord:
    return UserRecord(
        user_id=row["user_id"],
        display_name=row["display_name"],
        space_id=row["space_id"],
        dm_room_id=row["dm_room_id"],
        chat_seq=row["chat_seq"],
        flags=json.loads(row["flags"]),
    )


def _staged(r: sqlite3.Row) -> StagedFile:
    return StagedFile(
        r["id"],
        r["room_id"],
        r["user_id"],
        r["rel_path"],
        r["name"],
        r["size"],
        r["mime"],
        r["workspace"],
    )


def _chat(row: sqlite3.Row) -> ChatRecord:
    return ChatRecord(
        room_id=row["room_id"],
        owner=row["owner"],
        local_id=row["local_id"],
        name=row["name"],
        agent_id=row["agent_id"],
        platform_chat_id=row["platform_chat_id"],
        status=ChatStatus(row["status"]),
        flags=json.loads(row["flags"]),
    )


def _inbox(row: sqlite3.Row) -> InboxItem:
    return InboxItem(
        event_id=row["event_id"],
        lane=Lane.parse(row["lane"]),
        room_id=row["room_id"],
        sender=row["sender"],
        kind=ItemKind(row["kind"]),
        payload=json.loads(row["payload"]),
        seq=row["seq"],
        status=ItemStatus(row["status"]),
        attempts=row["attempts"],
    )


def _outbox(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        room_id=row["room_id"],
        txn_id=row["txn_id"],
        event_type=row["event_type"],
        content=json.loads(row["content"]),
        status=OutboxStatus(row["status"]),
        event_id=row["event_id"],
    )
