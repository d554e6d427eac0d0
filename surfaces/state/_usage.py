"""Usage: the tokens each finished turn used, and the sums ``!usage`` and the monthly
budget read.

A row is written in the turn's final transaction (``Store.finish_event(...,
usage=...)``), keyed by the inbox item the turn ran for, and only by the transaction
that moves that item from pending to done: a crash re-run either finds the item
still pending (the first commit never happened) or done (it did, and the re-run
does not run again), so nothing counts twice. The sums are kept beside the rows, per
owner, UTC month and chat (``usage_totals``), in the same transaction. A re-run the user
asked for (an edit, 🔁) is an item of its own, so its tokens count too — the agent
spent them. ``tokens`` is NULL when the agent gave no count (missing, invalid, 0 or
absurdly large): "unknown", counted as a turn without a count, never as 0 tokens.
"""

from __future__ import annotations

import sqlite3

import attrs

from surfaces.core import month_of
from surfaces.state._db import Database, _quick
from surfaces.state._records import PendingSend

#: More than this in one turn is not a count we believe (a hostile or broken agent):
#: recorded as unknown. It also keeps every SUM far from SQLite's 64-bit limit.
MAX_TURN_TOKENS = 1_000_000_000


def known_tokens(value: object) -> int | None:
    """The agent's ``tokens_used`` as a count, or None for "unknown" (missing, not an
    int, 0, negative or over :data:`MAX_TURN_TOKENS`)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_TURN_TOKENS else None


@attrs.frozen
class TurnUsage:
    """What one finished turn used, for its ``usage`` row."""

    turn_key: str  # the inbox item the turn ran for
    room_id: str
    owner: str
    agent_id: str
    platform_chat_id: str
    tokens: int | None  # None: unknown (see ``known_tokens``)
    finished_at: float  # Unix time; its UTC month is the month it counts in

    @property
    def month(self) -> str:
        return month_of(self.finished_at)


@attrs.frozen
class UsageWarning:
    """The "budget nearly spent" notice, sent at most once per user and month: in the
    turn's final transaction, only when the user's month total has reached
    ``threshold`` and the ``(owner, month)`` mark was not set yet."""

    owner: str
    month: str
    threshold: int
    send: PendingSend

    @property
    def key(self) -> str:
        return f"usage.warned:{self.month}:{self.owner}"


@attrs.frozen
class UsageTotals:
    """Sums over one scope (a chat, or all of a user's chats)."""

    tokens: int = 0  # known tokens, all time
    month_tokens: int = 0  # known tokens in the month asked for
    turns: int = 0  # finished turns, all time
    unknown: int = 0  # of them, turns without a count


@attrs.frozen
class UsageSummary:
    chat: UsageTotals
    user: UsageTotals


_TOTALS = (
    "SELECT COALESCE(SUM(tokens), 0) AS tokens, "
    "COALESCE(SUM(CASE WHEN month = ? THEN tokens END), 0) AS month_tokens, "
    "COALESCE(SUM(turns), 0) AS turns, COALESCE(SUM(unknown), 0) AS unknown "
    "FROM usage_totals WHERE owner = ?"
)


class UsageTables(Database):
    def _record_usage(self, usage: TurnUsage) -> None:
        """The turn's row and its chat's month totals. The caller calls this once per
        turn: in the transaction that moves the turn's inbox item from pending to
        done (``Store.finish_event``), which a re-run cannot do again."""
        tokens, month = known_tokens(usage.tokens), usage.month
        self._conn.execute(
            "INSERT INTO usage (turn_key, room_id, owner, agent_id, platform_chat_id, "
            "tokens, month, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                usage.turn_key,
                usage.room_id,
                usage.owner,
                usage.agent_id,
                usage.platform_chat_id,
                tokens,
                month,
                usage.finished_at,
            ),
        )
        self._conn.execute(
            "INSERT INTO usage_totals (owner, month, room_id, tokens, turns, unknown) "
            "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT(owner, month, room_id) DO UPDATE SET "
            "tokens = tokens + excluded.tokens, turns = turns + 1, "
            "unknown = unknown + excluded.unknown",
            (usage.owner, month, usage.room_id, tokens or 0, int(tokens is None)),
        )

    def _month_tokens(self, owner: str, month: str) -> int:
        # A range of the primary key: one row per chat the user used this month.
        row = self._conn.execute(
            "SELECT COALESCE(SUM(tokens), 0) FROM usage_totals WHERE owner = ? AND month = ?",
            (owner, month),
        ).fetchone()
        return int(row[0])

    def _claim_usage_warning(self, warning: UsageWarning) -> bool:
        """True once per user and month, when the month total has reached the
        threshold: the mark is set in the caller's transaction, with the send."""
        if self._month_tokens(warning.owner, warning.month) < warning.threshold:
            return False
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO kv (key, value) VALUES (?, '1')", (warning.key,)
        )
        return cur.rowcount == 1

    @_quick
    def month_tokens(self, owner: str, month: str) -> int:
        """Known tokens of all ``owner``'s chats in ``month`` (the budget's use)."""
        return self._month_tokens(owner, month)

    @_quick
    def usage_summary(self, owner: str, room_id: str, month: str) -> UsageSummary:
        """``!usage``: this chat's and all the user's sums (all time and ``month``),
        from the totals (a row per chat and month)."""
        chat = self._conn.execute(_TOTALS + " AND room_id = ?", (month, owner, room_id)).fetchone()
        user = self._conn.execute(_TOTALS, (month, owner)).fetchone()
        return UsageSummary(_totals(chat), _totals(user))

    @_quick
    def chat_tokens(self, room_id: str, owner: str) -> int:
        """Known tokens of one chat, all time (``!status``)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(tokens), 0) FROM usage_totals WHERE owner = ? AND room_id = ?",
            (owner, room_id),
        ).fetchone()
        return int(row[0])


def _totals(row: sqlite3.Row) -> UsageTotals:
    return UsageTotals(
        int(row["tokens"]), int(row["month_tokens"]), int(row["turns"]), int(row["unknown"])
    )
