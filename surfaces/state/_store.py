"""The bot's durable state: one SQLite database in WAL mode.

Why SQLite: one process owns the state, it must survive a crash at any point,
and the operator backs it up with one file copy.

Where the calls run. The connection is used by one thread at a time, behind a
limiter of one. Work that can take long runs in a worker thread
(``trio.to_thread``): scans whose size grows with the state (pending rows at
start, pruning, counts, integrity checks) and large admits. The WAL
checkpoint is the only step that fsyncs, because ``synchronous=NORMAL`` in WAL
mode makes a commit a write to the page cache, and automatic checkpoints are
off: ``Store.checkpoint`` runs from a maintenance task, on a second connection
in a thread of its own, so its fsync never holds up the turns' calls. The point operations
of a turn (``@_quick``) run on the event loop: each is a few indexed statements,
tens of microseconds, whereas a trip to a worker thread and back costs about
0.2 ms of CPU in thread hand-offs (measured: 3 ms of a 10 ms turn). A quick call
falls back to the worker thread whenever it could wait: the limiter is held
(a threaded call is running) or SQLite reports the database locked (another
process, e.g. a backup, holds the write lock; the inline attempt uses no busy
timeout and fails before changing anything).

Transactions are short and each public method is one transaction; the methods
that must be atomic together (admitting events with the since-token, finishing
a turn with its final sends) are single methods for that reason.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs
import trio

from surfaces.state._schema import MIGRATIONS

#: Chat rows kept in memory (about 0.5 KB each); beyond this the cache starts over.
CHAT_CACHE_SIZE = 20_000
#: Admits up to this many events run inline (a catch-up batch goes to the thread).
QUICK_ADMIT_MAX = 64
#: How long a call in the worker thread waits for another process's lock.
BUSY_TIMEOUT_MS = 10_000

P = ParamSpec("P")
R = TypeVar("R")


def _threaded(
    fn: Callable[Concatenate[Store, P], R],
) -> Callable[Concatenate[Store, P], Awaitable[R]]:
    """Run a synchronous store method in the store's worker thread."""

    @functools.wraps(fn)
    async def wrapper(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.inline:
            # Tests on trio's virtual clock: a thread would let the clock jump
            # while SQLite works. One await keeps this a checkpoint.
            await trio.lowlevel.checkpoint()
            return fn(self, *args, **kwargs)
        return await self._in_thread(functools.partial(fn, self, *args, **kwargs))

    return wrapper


def _quick(
    fn: Callable[Concatenate[Store, P], R],
) -> Callable[Concatenate[Store, P], Awaitable[R]]:
    """Run a short point operation on the event loop when it cannot wait (see the
    module docstring), else in the worker thread."""

    @functools.wraps(fn)
    async def wrapper(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        await trio.lowlevel.checkpoint()
        if self.inline:
            return fn(self, *args, **kwargs)
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            self.quick_fallbacks += 1
        else:
            try:
                return fn(self, *args, **kwargs)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in _LOCKED_CODES:
                    raise
                self.quick_fallbacks += 1
            finally:
                self._limiter.release()
        return await self._in_thread(functools.partial(fn, self, *args, **kwargs))

    return wrapper


#: SQLITE_BUSY and SQLITE_LOCKED: another connection holds a lock we need.
_LOCKED_CODES = frozenset({5, 6})


@attrs.frozen
class InboxItem:
    """An admitted event the bot will act on (a message, an invite, …)."""

    event_id: str
    lane: str
    room_id: str
    sender: str
    kind: str
    payload: dict[str, Any]
    seq: int = 0
    status: str = "pending"
    attempts: int = 0


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
    room_id: str
    owner: str
    local_id: str
    name: str
    agent_id: str
    platform_chat_id: str
    status: str
    flags: dict[str, Any]


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


@attrs.frozen
class OutboxItem:
    id: int
    room_id: str
    txn_id: str
    event_type: str
    content: dict[str, Any]
    status: str
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


@attrs.frozen
class PendingSend:
    """A send recorded in the outbox in the same transaction as another change."""

    room_id: str
    txn_id: str
    event_type: str
    content: dict[str, Any]


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
        r["id"], r["room_id"], r["user_id"], r["rel_path"], r["name"], r["size"], r["mime"]
    )


def _chat(row: sqlite3.Row) -> ChatRecord:
    return ChatRecord(
        room_id=row["room_id"],
        owner=row["owner"],
        local_id=row["local_id"],
        name=row["name"],
        agent_id=row["agent_id"],
        platform_chat_id=row["platform_chat_id"],
        status=row["status"],
        flags=json.loads(row["flags"]),
    )


def _inbox(row: sqlite3.Row) -> InboxItem:
    return InboxItem(
        event_id=row["event_id"],
        lane=row["lane"],
        room_id=row["room_id"],
        sender=row["sender"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        seq=row["seq"],
        status=row["status"],
        attempts=row["attempts"],
    )


def _outbox(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        room_id=row["room_id"],
        txn_id=row["txn_id"],
        event_type=row["event_type"],
        content=json.loads(row["content"]),
        status=row["status"],
        event_id=row["event_id"],
    )


class Store:
    """Async facade over the SQLite state database. Open with ``await Store.open(path)``."""

    SINCE_KEY = "sync.since"
    PLATFORM_SEQ_KEY = "platform_chat_seq"

    def __init__(self, conn: sqlite3.Connection, path: Path, *, inline: bool = False) -> None:
        self._conn = conn
        self.path = path
        self.inline = inline
        self._limiter = trio.CapacityLimiter(1)
        #: The WAL checkpoint's own connection and thread (see ``checkpoint``).
        self._maint_conn: sqlite3.Connection | None = None
        self._maint_limiter = trio.CapacityLimiter(1)
        #: Quick calls that had to go to the worker thread (a gauge for operators).
        self.quick_fallbacks = 0
        # Read-through cache of chat rows: every event in a working room reads its
        # chat, and every write to ``chats`` goes through this class and drops the
        # entry (in the same serialised worker), so a hit is never stale.
        self._chats: dict[str, ChatRecord] = {}

    # ---- lifecycle -------------------------------------------------------

    @classmethod
    def open_sync(cls, path: Path | str, *, inline: bool = False) -> Store:
        """Open (creating and migrating) the database. Blocking: call before trio.run
        or via ``open``."""
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=10.0
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (not a power loss of the last
        # commits); FULL costs an fsync per commit. A bot crash is what we guard against.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Commits on the event loop must not fsync: checkpoints (the fsync) run from
        # ``checkpoint`` in the worker thread. Lock waits happen only there too
        # (``_in_thread`` sets the busy timeout); an inline call fails fast instead.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        store = cls(conn, path, inline=inline)
        store._migrate()
        conn.execute("PRAGMA busy_timeout=0")
        return store

    @classmethod
    async def open(cls, path: Path | str, *, inline: bool = False) -> Store:
        """Open the database. ``inline=True`` runs SQLite on the event loop: for
        tests on ``autojump_clock`` only (production keeps the loop free)."""
        if inline:
            return cls.open_sync(path, inline=True)
        return await trio.to_thread.run_sync(cls.open_sync, path)

    def close(self) -> None:
        if self._maint_conn is not None:
            self._maint_conn.close()
            self._maint_conn = None
        self._conn.close()

    async def _in_thread(self, call: Callable[[], R]) -> R:
        def run() -> R:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            try:
                return call()
            finally:
                self._conn.execute("PRAGMA busy_timeout=0")

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def checkpoint(self) -> tuple[int, int]:
        """Copy committed WAL pages into the database file (``PASSIVE``: never
        waits for readers or writers). Returns (WAL pages, pages checkpointed).
        The bot calls this every few seconds from its maintenance task.

        It runs on a connection of its own, in its own worker thread: the
        checkpoint is the one step that fsyncs (milliseconds, more on a busy
        disk), and on the main connection it would hold the store's limiter, so
        every quick call of a turn that came along meanwhile would fall back to
        the thread and wait for it (measured: the tail of "bot in" latency). A
        passive checkpoint takes no write lock, so commits go on beside it."""
        if self.inline or str(self.path) == ":memory:":
            await trio.lowlevel.checkpoint()
            return self._checkpoint_on(self._conn)
        return await trio.to_thread.run_sync(self._checkpoint_sync, limiter=self._maint_limiter)

    def _checkpoint_sync(self) -> tuple[int, int]:
        if self._maint_conn is None:
            conn = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._maint_conn = conn
        return self._checkpoint_on(self._maint_conn)

    @staticmethod
    def _checkpoint_on(conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[1]), int(row[2])

    def _migrate(self) -> None:
        c = self._conn
        c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = c.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
        current = row["v"] or 0
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"state database {self.path} has schema version {current}, newer than this "
                f"build knows ({len(MIGRATIONS)}); upgrade surfaces or restore a backup"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self._tx():
                for statement in _split_sql(MIGRATIONS[version - 1]):
                    c.execute(statement)
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    # ---- key/value -------------------------------------------------------

    def _get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def _set(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @_quick
    def get_value(self, key: str) -> str | None:
        return self._get(key)

    @_quick
    def set_value(self, key: str, value: str) -> None:
        with self._tx():
            self._set(key, value)

    @_quick
    def delete_value(self, key: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM kv WHERE key = ?", (key,))

    # ---- inbox -----------------------------------------------------------

    async def admit(self, next_batch: str, items: Sequence[InboxItem]) -> list[InboxItem]:
        """Admit events and advance the since-token in one transaction.

        Returns the items that were new (an event seen before — e.g. the same
        sync replayed after a crash — is not admitted twice)."""
        if len(items) <= QUICK_ADMIT_MAX:
            return await self._admit_quick(next_batch, items)
        return await self._admit_threaded(next_batch, items)

    def _admit(self, next_batch: str, items: Sequence[InboxItem]) -> list[InboxItem]:
        admitted: list[InboxItem] = []
        now = time.time()
        with self._tx():
            for item in items:
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO inbox "
                    "(event_id, lane, room_id, sender, kind, payload, status, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.event_id,
                        item.lane,
                        item.room_id,
                        item.sender,
                        item.kind,
                        json.dumps(item.payload),
                        item.status,
                        now,
                    ),
                )
                if cur.rowcount:
                    admitted.append(attrs.evolve(item, seq=cur.lastrowid))
            self._set(self.SINCE_KEY, next_batch)
        return admitted

    _admit_quick = _quick(_admit)
    _admit_threaded = _threaded(_admit)

    @_threaded
    def pending_inbox(self) -> list[InboxItem]:
        rows = self._conn.execute(
            "SELECT * FROM inbox WHERE status = 'pending' ORDER BY seq"
        ).fetchall()
        return [_inbox(r) for r in rows]

    @_quick
    def claim_next(self, lane: str) -> Claim | None:
        """The lane's oldest pending event with one more start counted, in one
        round trip (the worker's hot path: fetch, count the start durably before
        the work begins, read the failures so far)."""
        row = self._conn.execute(
            "SELECT * FROM inbox WHERE status = 'pending' AND lane = ? ORDER BY seq LIMIT 1",
            (lane,),
        ).fetchone()
        if row is None:
            return None
        with self._tx():
            self._conn.execute(
                "UPDATE inbox SET attempts = attempts + 1 WHERE event_id = ?", (row["event_id"],)
            )
        return Claim(_inbox(row), starts=int(row["attempts"]) + 1, failures=int(row["failures"]))

    @_quick
    def count_pending(self, lane: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM inbox WHERE status = 'pending' AND lane = ?", (lane,)
        ).fetchone()
        return int(row["n"])

    @_quick
    def record_failure(self, event_id: str) -> int:
        """Count a processing attempt that raised; returns the failures so far."""
        with self._tx():
            self._conn.execute(
                "UPDATE inbox SET failures = failures + 1 WHERE event_id = ?", (event_id,)
            )
            row = self._conn.execute(
                "SELECT failures FROM inbox WHERE event_id = ?", (event_id,)
            ).fetchone()
        return int(row["failures"]) if row else 0

    @_quick
    def finish_event(
        self,
        event_id: str,
        status: str = "done",
        sends: Sequence[PendingSend] = (),
        *,
        unstage: Sequence[int] = (),
    ) -> list[OutboxItem]:
        """Mark an inbox event finished, record its final sends and drop the staged
        files it consumed, atomically. Returns the sends' outbox rows (an earlier
        attempt's row if the txn id was seen before), ready for ``Outbox.deliver``."""
        with self._tx():
            self._enqueue_many(sends)
            for file_id in unstage:
                self._conn.execute("DELETE FROM stage WHERE id = ?", (file_id,))
            self._conn.execute(
                "UPDATE inbox SET status = ? WHERE event_id = ? AND status = 'pending'",
                (status, event_id),
            )
            return [self._outbox_by_txn(s.txn_id) for s in sends]

    @_quick
    def inbox_status(self, event_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT status FROM inbox WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else row["status"]

    @_threaded
    def prune_inbox(self, keep_seconds: float) -> int:
        """Forget finished events older than ``keep_seconds`` (bounded growth)."""
        cutoff = time.time() - keep_seconds
        with self._tx():
            cur = self._conn.execute(
                "DELETE FROM inbox WHERE status != 'pending' AND created_at < ?", (cutoff,)
            )
            self._conn.execute(
                "DELETE FROM outbox WHERE status != 'pending' AND created_at < ?", (cutoff,)
            )
            self._conn.execute(
                "DELETE FROM turns WHERE event_id NOT IN (SELECT event_id FROM inbox)"
            )
            self._conn.execute(
                "DELETE FROM turn_parts WHERE event_id NOT IN (SELECT event_id FROM inbox)"
            )
        return cur.rowcount

    # ---- outbox ----------------------------------------------------------

    def _enqueue_many(self, sends: Iterable[PendingSend]) -> None:
        now = time.time()
        for s in sends:
            self._conn.execute(
                "INSERT OR IGNORE INTO outbox (room_id, txn_id, event_type, content, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (s.room_id, s.txn_id, s.event_type, json.dumps(s.content), now),
            )

    def _outbox_by_txn(self, txn_id: str) -> OutboxItem:
        return _outbox(
            self._conn.execute("SELECT * FROM outbox WHERE txn_id = ?", (txn_id,)).fetchone()
        )

    @_quick
    def enqueue(self, send: PendingSend) -> OutboxItem:
        """Persist a send before its first attempt; a txn id seen before returns the
        existing row (so a re-run reuses the same transaction id)."""
        with self._tx():
            self._enqueue_many([send])
            return self._outbox_by_txn(send.txn_id)

    @_quick
    def mark_sent(
        self,
        txn_id: str,
        event_id: str | None,
        status: str = "sent",
        *,
        part: tuple[str, int] | None = None,
    ) -> None:
        """Record a send's outcome; with ``part`` (turn event id, part index) also
        remember the reply message it created, in the same transaction."""
        with self._tx():
            self._conn.execute(
                "UPDATE outbox SET status = ?, event_id = ? WHERE txn_id = ?",
                (status, event_id, txn_id),
            )
            if part is not None and event_id is not None:
                self._record_part(part[0], part[1], event_id)

    @_threaded
    def pending_outbox(self) -> list[OutboxItem]:
        rows = self._conn.execute(
            "SELECT * FROM outbox WHERE status = 'pending' ORDER BY id"
        ).fetchall()
        return [_outbox(r) for r in rows]

    @_quick
    def outbox_count(self) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return int(row["n"])

    @_quick
    def outbox_row(self, txn_id: str) -> OutboxItem | None:
        row = self._conn.execute("SELECT * FROM outbox WHERE txn_id = ?", (txn_id,)).fetchone()
        return None if row is None else _outbox(row)

    @_quick
    def sent_event_id(self, txn_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT event_id FROM outbox WHERE txn_id = ? AND status = 'sent'", (txn_id,)
        ).fetchone()
        return None if row is None else row["event_id"]

    # ---- turns -----------------------------------------------------------

    @_quick
    def begin_turn(self, event_id: str, room_id: str, user_id: str) -> TurnStart:
        """Start (or restart) a turn: its attempt number, the reply messages an
        earlier attempt already posted (by part index), and the files the user
        staged in the room for it. One round trip for the turn's set-up."""
        with self._tx():
            self._conn.execute(
                "INSERT INTO turns (event_id, attempt) VALUES (?, 1) "
                "ON CONFLICT(event_id) DO UPDATE SET attempt = attempt + 1",
                (event_id,),
            )
            attempt = self._conn.execute(
                "SELECT attempt FROM turns WHERE event_id = ?", (event_id,)
            ).fetchone()["attempt"]
            parts = {
                r["part"]: r["reply_event_id"]
                for r in self._conn.execute(
                    "SELECT part, reply_event_id FROM turn_parts WHERE event_id = ?", (event_id,)
                )
            }
        return TurnStart(int(attempt), parts, self._staged_files(room_id, user_id))

    def _record_part(self, event_id: str, part: int, reply_event_id: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO turn_parts (event_id, part, reply_event_id) VALUES (?, ?, ?)",
            (event_id, part, reply_event_id),
        )

    @_quick
    def record_part(self, event_id: str, part: int, reply_event_id: str) -> None:
        with self._tx():
            self._record_part(event_id, part, reply_event_id)

    # ---- users -----------------------------------------------------------

    @_quick
    def get_user(self, user_id: str) -> UserRecord | None:
        row = self._conn.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return None if row is None else _user(row)

    @_threaded
    def all_users(self) -> list[UserRecord]:
        return [_user(r) for r in self._conn.execute("SELECT * FROM users ORDER BY user_id")]

    @_quick
    def upsert_user(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        space_id: str | None = None,
        dm_room_id: str | None = None,
    ) -> UserRecord:
        """Create the user row if missing; set the given non-None fields."""
        with self._tx():
            self._conn.execute(
                "INSERT OR IGNORE INTO users (user_id, created_at) VALUES (?, ?)",
                (user_id, time.time()),
            )
            for column, value in (
                ("display_name", display_name),
                ("space_id", space_id),
                ("dm_room_id", dm_room_id),
            ):
                if value is not None:
                    self._conn.execute(
                        f"UPDATE users SET {column} = ? WHERE user_id = ?", (value, user_id)
                    )
            row = self._conn.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return _user(row)

    @_quick
    def set_user_flag(self, user_id: str, flag: str, value: Any = True) -> bool:
        """Set a flag; returns False if it already had that value (one-time notices)."""
        with self._tx():
            row = self._conn.execute(
                "SELECT flags FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
            if row is None:
                return False
            flags = json.loads(row["flags"])
            if flags.get(flag) == value:
                return False
            flags[flag] = value
            self._conn.execute(
                "UPDATE users SET flags = ? WHERE user_id = ?", (json.dumps(flags), user_id)
            )
        return True

    @_quick
    def raise_chat_seq(self, user_id: str, at_least: int) -> None:
        with self._tx():
            self._conn.execute(
                "UPDATE users SET chat_seq = MAX(chat_seq, ?) WHERE user_id = ?",
                (at_least, user_id),
            )

    # ---- chats -----------------------------------------------------------

    async def get_chat(self, room_id: str) -> ChatRecord | None:
        """The chat bound to ``room_id``; from memory after the first read."""
        chat = self._chats.get(room_id)
        if chat is None:
            return await self._load_chat(room_id)
        await trio.lowlevel.checkpoint()
        return chat

    @_quick
    def _load_chat(self, room_id: str) -> ChatRecord | None:
        row = self._conn.execute("SELECT * FROM chats WHERE room_id = ?", (room_id,)).fetchone()
        if row is None:
            return None
        if len(self._chats) >= CHAT_CACHE_SIZE:
            self._chats.clear()  # bounded; rows are re-read on demand
        chat = self._chats[room_id] = _chat(row)
        return chat

    @_quick
    def chats_of(self, owner: str, *, status: str | None = "active") -> list[ChatRecord]:
        if status is None:
            rows = self._conn.execute(
                "SELECT * FROM chats WHERE owner = ? ORDER BY created_at, local_id", (owner,)
            )
        else:
            rows = self._conn.execute(
                "SELECT * FROM chats WHERE owner = ? AND status = ? ORDER BY created_at, local_id",
                (owner, status),
            )
        return [_chat(r) for r in rows]

    @_threaded
    def known_rooms(self) -> set[str]:
        """Every room id the state knows: chats, spaces and DMs."""
        rooms = {r["room_id"] for r in self._conn.execute("SELECT room_id FROM chats")}
        for r in self._conn.execute("SELECT space_id, dm_room_id FROM users"):
            rooms.update(x for x in (r["space_id"], r["dm_room_id"]) if x)
        return rooms

    @_quick
    def put_chat(self, chat: ChatRecord) -> None:
        """Insert or replace a chat binding (used by creation and reconciliation)."""
        self._chats.pop(chat.room_id, None)
        with self._tx():
            self._conn.execute(
                "INSERT INTO chats (room_id, owner, local_id, name, agent_id, platform_chat_id, "
                "status, flags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(room_id) DO UPDATE SET owner = excluded.owner, "
                "local_id = excluded.local_id, name = excluded.name, "
                "agent_id = excluded.agent_id, platform_chat_id = excluded.platform_chat_id, "
                "status = excluded.status",
                (
                    chat.room_id,
                    chat.owner,
                    chat.local_id,
                    chat.name,
                    chat.agent_id,
                    chat.platform_chat_id,
                    chat.status,
                    json.dumps(chat.flags),
                    time.time(),
                ),
            )
            self._raise_platform_seq(int(chat.platform_chat_id))
            n = _local_number(chat.local_id)
            if n is not None:
                self._conn.execute(
                    "UPDATE users SET chat_seq = MAX(chat_seq, ?) WHERE user_id = ?",
                    (n, chat.owner),
                )

    @_quick
    def update_chat(self, room_id: str, **fields: Any) -> ChatRecord | None:
        allowed = {"name", "agent_id", "platform_chat_id", "status"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update chat fields {sorted(unknown)}")
        self._chats.pop(room_id, None)
        with self._tx():
            for column, value in fields.items():
                self._conn.execute(
                    f"UPDATE chats SET {column} = ? WHERE room_id = ?", (value, room_id)
                )
            row = self._conn.execute("SELECT * FROM chats WHERE room_id = ?", (room_id,)).fetchone()
        return None if row is None else _chat(row)

    @_quick
    def set_chat_flag(self, room_id: str, flag: str, value: Any = True) -> bool:
        """Set a flag on a chat; False if it already had that value."""
        self._chats.pop(room_id, None)
        with self._tx():
            row = self._conn.execute(
                "SELECT flags FROM chats WHERE room_id = ?", (room_id,)
            ).fetchone()
            if row is None:
                return False
            flags = json.loads(row["flags"])
            if flags.get(flag) == value:
                return False
            flags[flag] = value
            self._conn.execute(
                "UPDATE chats SET flags = ? WHERE room_id = ?", (json.dumps(flags), room_id)
            )
        return True

    # ---- counters and intents -------------------------------------------

    def _raise_platform_seq(self, at_least: int) -> None:
        current = int(self._get(self.PLATFORM_SEQ_KEY) or 0)
        if at_least > current:
            self._set(self.PLATFORM_SEQ_KEY, str(at_least))

    def _next_platform_id(self) -> str:
        value = int(self._get(self.PLATFORM_SEQ_KEY) or 0) + 1
        self._set(self.PLATFORM_SEQ_KEY, str(value))
        return str(value)

    @_quick
    def allocate_platform_chat_id(self) -> str:
        with self._tx():
            return self._next_platform_id()

    @_quick
    def raise_platform_seq(self, at_least: int) -> None:
        with self._tx():
            self._raise_platform_seq(at_least)

    @_quick
    def add_chat_intent(self, owner: str, name: str | None, agent_id: str, key: str) -> Intent:
        """Allocate the next ``C<n>`` and platform chat id and record the intent to
        create the room, in one transaction. ``key`` identifies the request (e.g.
        the ``!new`` event): asking again with the same key returns the same intent,
        so a re-run after a crash never allocates or creates twice."""
        with self._tx():
            row = self._conn.execute("SELECT * FROM intents WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return _intent(row)
            self._conn.execute(
                "INSERT OR IGNORE INTO users (user_id, created_at) VALUES (?, ?)",
                (owner, time.time()),
            )
            self._conn.execute(
                "UPDATE users SET chat_seq = chat_seq + 1 WHERE user_id = ?", (owner,)
            )
            seq = self._conn.execute(
                "SELECT chat_seq FROM users WHERE user_id = ?", (owner,)
            ).fetchone()["chat_seq"]
            platform_id = self._next_platform_id()
            self._conn.execute(
                "INSERT INTO intents (key, owner, kind, local_id, name, agent_id, "
                "platform_chat_id, created_at) VALUES (?, ?, 'chat', ?, ?, ?, ?, ?)",
                (key, owner, f"C{seq}", name, agent_id, platform_id, time.time()),
            )
            row = self._conn.execute("SELECT * FROM intents WHERE key = ?", (key,)).fetchone()
        return _intent(row)

    @_quick
    def add_space_intent(self, owner: str) -> Intent:
        key = f"space:{owner}"
        with self._tx():
            self._conn.execute(
                "INSERT OR IGNORE INTO intents (key, owner, kind, created_at) "
                "VALUES (?, ?, 'space', ?)",
                (key, owner, time.time()),
            )
            row = self._conn.execute("SELECT * FROM intents WHERE key = ?", (key,)).fetchone()
        return _intent(row)

    @_quick
    def open_intents(self, owner: str) -> list[Intent]:
        rows = self._conn.execute(
            "SELECT * FROM intents WHERE owner = ? AND status = 'open' ORDER BY id", (owner,)
        ).fetchall()
        return [_intent(r) for r in rows]

    @_quick
    def intent_by_key(self, key: str) -> Intent | None:
        row = self._conn.execute("SELECT * FROM intents WHERE key = ?", (key,)).fetchone()
        return None if row is None else _intent(row)

    @_quick
    def complete_intent(self, intent_id: int, room_id: str | None) -> None:
        """Mark an intent carried out (kept, so a re-run of its request finds the room)."""
        with self._tx():
            self._conn.execute(
                "UPDATE intents SET status = ?, room_id = ? WHERE id = ?",
                ("done" if room_id else "dropped", room_id, intent_id),
            )

    # ---- staged files ----------------------------------------------------

    @_quick
    def stage_file(
        self,
        room_id: str,
        user_id: str,
        rel_path: str,
        name: str,
        size: int,
        mime: str,
        source_event: str | None = None,
    ) -> StagedFile:
        with self._tx():
            cur = self._conn.execute(
                "INSERT INTO stage (room_id, user_id, rel_path, name, size, mime, source_event, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (room_id, user_id, rel_path, name, size, mime, source_event, time.time()),
            )
        return StagedFile(int(cur.lastrowid or 0), room_id, user_id, rel_path, name, size, mime)

    def _staged_files(self, room_id: str, user_id: str) -> list[StagedFile]:
        rows = self._conn.execute(
            "SELECT * FROM stage WHERE room_id = ? AND user_id = ? ORDER BY id", (room_id, user_id)
        ).fetchall()
        return [_staged(r) for r in rows]

    @_quick
    def staged(self, room_id: str, user_id: str) -> list[StagedFile]:
        return self._staged_files(room_id, user_id)

    @_quick
    def staged_from(self, source_event: str) -> StagedFile | None:
        r = self._conn.execute(
            "SELECT * FROM stage WHERE source_event = ?", (source_event,)
        ).fetchone()
        return None if r is None else _staged(r)

    @_quick
    def unstage(self, ids: Sequence[int]) -> int:
        with self._tx():
            n = 0
            for i in ids:
                n += self._conn.execute("DELETE FROM stage WHERE id = ?", (i,)).rowcount
        return n

    # ---- maintenance -----------------------------------------------------

    @_threaded
    def integrity_check(self) -> str:
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    @_quick
    def probe_writable(self) -> bool:
        with self._tx():
            self._set("health.probe", str(time.time()))
        return True

    @_threaded
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for table in ("users", "chats", "inbox", "outbox", "stage", "intents"):
            out[table] = int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        return out


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _local_number(local_id: str) -> int | None:
    if local_id.startswith("C") and local_id[1:].isdigit():
        return int(local_id[1:])
    return None
