"""The records the store hands out: frozen values, never live rows."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs

from surfaces.core import ChatBinding, ChatStatus, ItemKind, ItemStatus, Lane, OutboxStatus


@attrs.frozen
class InboxItem:
    """An admitted event the bot will act on (a message, an invite, …)."""

    event_id: str
    lane: Lane
    room_id: str
    sender: str
    kind: ItemKind
    payload: dict[str, Any]
    seq: int = 0
    status: ItemStatus = ItemStatus.PENDING
    attempts: int = 0

    @property
    def thread(self) -> str | None:
        """The root of the thread the event was sent in (None: the main timeline)."""
        root = self.payload.get("thread")
        return root if isinstance(root, str) else None


@attrs.frozen
class UserRecord:
    user_id: str
    display_name: str | None
    space_id: str | None
    dm_room_id: str | None
    chat_seq: int
    flags: dict[str, Any]


@attrs.frozen
class ChatRecord:
    """A working room's chat: its binding (what Matrix mirrors) plus local flags."""

    room_id: str
    owner: str
    local_id: str
    name: str
    agent_id: str
    platform_chat_id: str
    status: ChatStatus
    flags: dict[str, Any]

    @property
    def binding(self) -> ChatBinding:
        return ChatBinding(
            self.owner, self.local_id, self.agent_id, self.platform_chat_id, self.name, self.status
        )

    @classmethod
    def from_binding(
        cls, room_id: str, binding: ChatBinding, flags: dict[str, Any] | None = None
    ) -> ChatRecord:
        return cls(
            room_id=room_id,
            owner=binding.owner,
            local_id=binding.local_id,
            name=binding.name,
            agent_id=binding.agent_id,
            platform_chat_id=binding.platform_chat_id,
            status=binding.status,
            flags=dict(flags or {}),
        )


@attrs.frozen
class Intent:
    id: int
    owner: str
    kind: str
    local_id: str | None
    name: str | None
    agent_id: str | None
    platform_chat_id: str | None
    key: str | None = None
    status: str = "open"
    room_id: str | None = None


@attrs.frozen
class OutboxItem:
    id: int
    room_id: str
    txn_id: str
    event_type: str
    content: dict[str, Any]
    status: OutboxStatus
    event_id: str | None


@attrs.frozen
class StagedFile:
    id: int
    room_id: str
    user_id: str
    rel_path: str
    name: str
    size: int
    mime: str
    #: The agent workspace it was written to (None for files staged before it was kept).
    workspace: str | None = None


@attrs.frozen
class ExpiredFile:
    """A file a turn carried to the agent, past its retention: to delete from disk."""

    id: int
    workspace: str
    rel_path: str


@attrs.frozen
class Claim:
    """An inbox event a lane worker took up, with its start and failure counts."""

    item: InboxItem
    starts: int
    failures: int


@attrs.frozen
class TurnStart:
    """What a turn needs from the store before it talks to the agent."""

    attempt: int
    parts: dict[int, str]
    staged: list[StagedFile]
    #: Queued items taken into this turn (a burst merged), in order.
    followers: list[InboxItem] = attrs.Factory(list)
    #: The user's known tokens in the month asked for (``begin_turn(month=...)``: the
    #: budget check rides on this round trip); None when not asked.
    month_tokens: int | None = None


@attrs.frozen
class Followers:
    """Which queued items a turn takes along: the lane's next pending items after
    ``after_seq``, as long as ``accept`` says yes, at most ``limit``."""

    lane: Lane
    after_seq: int
    limit: int
    accept: Callable[[InboxItem], bool]


@attrs.frozen
class TurnMessage:
    """One user message a turn answered: its event, its words, what it quoted."""

    event_id: str
    text: str
    reply_to: str | None = None


@attrs.frozen
class TurnRecord:
    """What a turn was asked, kept so an edit or 🔁 can run it again."""

    turn_id: str
    room_id: str
    thread_root: str | None
    messages: tuple[TurnMessage, ...]
    attachments: tuple[str, ...]


@attrs.frozen
class ThreadRecord:
    room_id: str
    root: str
    platform_chat_id: str
    mirrored: bool


@attrs.frozen
class PendingSend:
    """A send recorded in the outbox in the same transaction as another change."""

    room_id: str
    txn_id: str
    event_type: str
    content: dict[str, Any]


@attrs.frozen
class WaitingEvent:
    """An encrypted room event whose Megolm session we do not hold yet: admitted with the
    sync token that delivered it, kept until the key arrives or its time is up."""

    event_id: str
    room_id: str
    session_id: str
    #: The event as it came in ``/sync`` (``type``, ``sender``, ``content``, …).
    event: dict[str, Any]
    created_at: float = 0.0


@attrs.frozen
class TranscriptEntry:
    """One exchange of a chat's transcript: what the user's turn said, the agent's
    final reply text, and the names of the files that went in and out."""

    turn_id: str
    room_id: str
    #: '' for the room's conversation, else the root of a thread that is its own.
    conversation: str
    user_text: str
    agent_text: str
    files_in: tuple[str, ...] = ()
    files_out: tuple[str, ...] = ()
    at: float = 0.0

    @property
    def size(self) -> int:
        """Bytes the entry counts against ``TranscriptBounds.max_bytes`` (UTF-8 text)."""
        names = sum(len(n.encode()) for n in (*self.files_in, *self.files_out))
        return len(self.user_text.encode()) + len(self.agent_text.encode()) + names


@attrs.frozen
class TranscriptBounds:
    """How much transcript one conversation keeps: the oldest entries go first."""

    max_entries: int = 200
    max_bytes: int = 262_144


@attrs.frozen
class TranscriptWrite:
    """A turn's transcript entry, written in the turn's final transaction and
    trimmed to ``bounds`` there."""

    entry: TranscriptEntry
    bounds: TranscriptBounds


@attrs.frozen
class Snapshot:
    """A named copy of a conversation's transcript (``!save``), per owner; listed
    without its entries (``snapshots_of``), loaded with them (``snapshot``)."""

    owner: str
    name: str
    room_id: str
    created_at: float
    count: int
    entries: tuple[TranscriptEntry, ...] = ()


class SnapshotSaved(enum.StrEnum):
    """What ``Store.save_snapshot`` did."""

    CREATED = "created"
    REPLACED = "replaced"  # the owner had one of that name: overwritten
    LIMIT = "limit"  # the owner has ``max_per_owner`` others: nothing written
