"""Per-user budgets: how much one user may ask of the bot per minute.

All users share the bot account's homeserver rate limit (and the agents, and the
bot's CPU), so without a budget one user who floods messages, commands or files
slows everyone else. Each user has three token buckets (``budget.*`` in the
configuration): **turns** (messages for the agent, in working rooms and the DM),
**commands** (``!…``, invites, and undecryptable events, which all cost the bot
work) and **files**. A bucket holds up to ``burst`` tokens and refills at
``per_minute``; each admitted event takes one.

Enforced by the sync task *before* admit (``SyncTask``: classify → backpressure →
budgets → admit), so an over-budget event costs one row, nothing else:

* it is admitted with status ``rejected`` — in the same transaction as the
  since-token, so the decision survives a restart and the event is never answered
  later (no silent drop: the inbox says what happened to it);
* the first rejection of a period adds a ``LIMIT`` item on the room's control lane:
  one notice ("too many messages, wait about N s"); further rejections of the same
  bucket stay quiet until the bucket lets an event through again. Invites get no
  notice (the bot is not in the room).

The buckets themselves live in memory: a restart refills them. That is harmless —
a restart gives each user at most one more burst — and keeps the hot path free of
writes. Memory is bounded by the users who were active lately: a full bucket is
the same as no bucket, so those are dropped.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable

import attrs
import structlog

from surfaces.core import ItemKind, ItemStatus, Lane
from surfaces.state import InboxItem

log = structlog.get_logger(__name__)

#: Buckets kept before the full ones are dropped (a sweep, not per event).
MAX_TRACKED = 1_024


class Bucket(enum.StrEnum):
    TURNS = "turns"
    COMMANDS = "commands"
    FILES = "files"

    @property
    def notice_key(self) -> str:
        """The catalogue text of this bucket's "over budget" notice."""
        return _NOTICE_KEYS[self]


_NOTICE_KEYS: dict[Bucket, str] = {
    Bucket.TURNS: "budget_turns",
    Bucket.COMMANDS: "budget_commands",
    Bucket.FILES: "budget_files",
}


_BUCKET_OF: dict[ItemKind, Bucket] = {
    ItemKind.TEXT: Bucket.TURNS,
    ItemKind.COMMAND: Bucket.COMMANDS,
    ItemKind.ENCRYPTED: Bucket.COMMANDS,
    ItemKind.INVITE: Bucket.COMMANDS,
    ItemKind.FILE: Bucket.FILES,
}


@attrs.frozen
class Rate:
    per_minute: float
    burst: int


@attrs.define
class TokenBucket:
    """``burst`` tokens at most, ``per_s`` more every second; ``take`` spends one."""

    per_s: float
    burst: float
    tokens: float
    updated: float

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_s)
            self.updated = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a token is there."""
        self._refill(now)
        return max(0.0, (1 - self.tokens) / self.per_s)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


@attrs.define
class Budgets:
    rates: dict[Bucket, Rate]
    _buckets: dict[tuple[str, Bucket], TokenBucket] = attrs.field(factory=dict)
    _notified: set[tuple[str, Bucket]] = attrs.field(factory=set)

    def apply(self, items: Iterable[InboxItem], now: float) -> list[InboxItem]:
        """The items to admit: over-budget events marked rejected, plus one notice
        item per user and bucket when its period of rejections begins. ``now`` is
        ``trio.current_time()``."""
        out: list[InboxItem] = []
        for item in items:
            bucket = _BUCKET_OF.get(item.kind)
            if bucket is None or item.status is not ItemStatus.PENDING:
                out.append(item)  # the bot's own items; what backpressure rejected
                continue
            key = (item.sender, bucket)
            tokens = self._bucket(key, now)
            if tokens.take(now):
                self._notified.discard(key)
                out.append(item)
                continue
            out.append(attrs.evolve(item, status=ItemStatus.REJECTED))
            wait = tokens.wait_s(now)
            log.info("budget_exceeded", user_id=item.sender, bucket=bucket, wait_s=round(wait, 1))
            if key not in self._notified and item.kind is not ItemKind.INVITE:
                self._notified.add(key)
                out.append(_notice(item, bucket, wait))
        if len(self._buckets) > MAX_TRACKED:
            self._forget_full(now)
        return out

    def _bucket(self, key: tuple[str, Bucket], now: float) -> TokenBucket:
        tokens = self._buckets.get(key)
        if tokens is None:
            rate = self.rates[key[1]]
            tokens = TokenBucket(rate.per_minute / 60, rate.burst, rate.burst, now)
            self._buckets[key] = tokens
        return tokens

    def _forget_full(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
            self._notified.discard(key)


def _notice(item: InboxItem, bucket: Bucket, wait_s: float) -> InboxItem:
    return InboxItem(
        event_id=f"limit:{bucket}:{item.event_id}",
        lane=Lane.control(item.room_id),
        room_id=item.room_id,
        sender=item.sender,
        kind=ItemKind.LIMIT,
        payload={"key": bucket.notice_key, "seconds": max(1, math.ceil(wait_s))},
    )
