"""What the inbox and the outbox hold: item kinds, item statuses, send outcomes.

``StrEnum`` on purpose: the values are what the SQLite rows and JSON payloads have
always held, so the enums compare equal to the stored strings and no migration is
needed; code names the members, never the strings.
"""

from __future__ import annotations

import enum


class ItemKind(enum.StrEnum):
    """What an admitted inbox item is (decided once, by intake)."""

    TEXT = "text"  # a prompt for the agent
    COMMAND = "command"  # ``!something``
    FILE = "file"  # a file or image to stage
    ENCRYPTED = "encrypted"  # an event the bot could not read
    INVITE = "invite"  # the bot was invited to a room
    BUSY = "busy"  # the bot's own "still answering" notice (backpressure)
    LIMIT = "limit"  # the bot's own "over your budget" notice (intake budgets)

    @property
    def answered(self) -> bool:
        """Whether the user expects an answer (a poisoned item gets a notice)."""
        return self in (ItemKind.TEXT, ItemKind.COMMAND, ItemKind.FILE)


class ItemStatus(enum.StrEnum):
    PENDING = "pending"  # admitted, not finished: runs (again) on its lane
    DONE = "done"
    FAILED = "failed"  # poisoned: gave up after the bounded attempts
    REJECTED = "rejected"  # admitted only to record "not answered" (a full queue)


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # persisted, not delivered yet (retried, in order per room)
    SENT = "sent"
    FAILED = "failed"  # permanent failure: logged, never retried, never blocks the room


class SendOutcome(enum.StrEnum):
    """How one outbox delivery attempt ended."""

    SENT = "sent"
    FAILED = "failed"  # permanent: the row is marked failed
    DEFERRED = "deferred"  # transient: the row stays pending, the replayer retries it
