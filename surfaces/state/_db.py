"""The database core: one SQLite connection in WAL mode, where each call runs, and
transactions. The table methods live in the sibling mixins; ``Store`` composes them.

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
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, Self, TypeVar

import attrs
import trio

from surfaces.state._dir import (
    DB_NAME,  # noqa: F401  (re-exported: its home is the state directory)
    StateError,
    ensure_private_dir,
    make_private,
)
from surfaces.state._records import ChatRecord
from surfaces.state._schema import MIGRATIONS

#: The schema version this build creates and understands (newer: refused).
SCHEMA_VERSION = len(MIGRATIONS)
#: Chat rows kept in memory (about 0.5 KB each); beyond this the cache starts over.
CHAT_CACHE_SIZE = 20_000
#: Admits up to this many events run inline (a catch-up batch goes to the thread).
QUICK_ADMIT_MAX = 64
#: How long a call in the worker thread waits for another process's lock.
BUSY_TIMEOUT_MS = 10_000

P = ParamSpec("P")
R = TypeVar("R")


def _threaded(
    fn: Callable[Concatenate[Database, P], R],
) -> Callable[Concatenate[Database, P], Awaitable[R]]:
    """Run a synchronous store method in the store's worker thread."""

    @functools.wraps(fn)
    async def wrapper(self: Database, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.inline:
            # Tests on trio's virtual clock: a thread would let the clock jump
            # while SQLite works. One await keeps this a checkpoint.
            await trio.lowlevel.checkpoint()
            return fn(self, *args, **kwargs)
        return await self._in_thread(functools.partial(fn, self, *args, **kwargs))

    return wrapper


def _quick(
    fn: Callable[Concatenate[Database, P], R],
) -> Callable[Concatenate[Database, P], Awaitable[R]]:
    """Run a short point operation on the event loop when it cannot wait (see the
    module docstring), else in the worker thread."""

    @functools.wraps(fn)
    async def wrapper(self: Database, *args: P.args, **kwargs: P.kwargs) -> R:
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
class DatabaseInfo:
    integrity: list[str]  # PRAGMA integrity_check: ["ok"] when sound
    schema_version: int | None
    values: dict[str, str]


class Database:
    """The connection, its executor and the key/value table (``await Store.open(path)``)."""

    SINCE_KEY = "sync.since"
    PLATFORM_SEQ_KEY = "platform_chat_seq"
    #: Set in a copy made by ``surfaces backup``: a restored copy's crypto state is
    #: older than what peers saw (reused message indices, one-time key ids), so the
    #: bot replaces that identity on the copy's first start (``surfaces.session``).
    BACKUP_MARK_KEY = "backup.copied_at"

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
    def open_sync(cls, path: Path | str, *, inline: bool = False) -> Self:
        """Open (creating and migrating) the database. Blocking: call before trio.run
        or via ``open``.

        The directory is created 0700 and the database files are kept 0600 (they
        hold the access token; ``_dir``). Anything that makes the file unusable — not
        a database, unreadable, a schema newer than this build — is a
        :class:`StateError` with one line for the operator, never a traceback."""
        path = Path(path)
        memory = str(path) == ":memory:"
        if not memory:
            ensure_private_dir(path.parent)
            make_private(path, create=True)
        try:
            conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise StateError(f"state database {path} cannot be opened: {exc}") from None
        try:
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
        except sqlite3.Error as exc:
            conn.close()
            raise StateError(f"state database {path} cannot be used: {exc}") from None
        except BaseException:
            conn.close()
            raise
        if not memory:
            # SQLite creates -wal/-shm with the database's mode; made sure of here.
            for suffix in ("-wal", "-shm"):
                make_private(path.with_name(path.name + suffix))
        return store

    @staticmethod
    def inspect(path: Path | str, *, keys: tuple[str, ...] = ()) -> DatabaseInfo:
        """Read a database without changing it (``doctor``): integrity, schema version
        and some ``kv`` values. Blocking; raises ``sqlite3.Error`` when unreadable."""
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            integrity = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
            schema = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            marks = ", ".join("?" * len(keys))
            values = (
                dict(conn.execute(f"SELECT key, value FROM kv WHERE key IN ({marks})", keys))
                if keys
                else {}
            )
        finally:
            conn.close()
        return DatabaseInfo(integrity, schema, values)

    @classmethod
    async def open(cls, path: Path | str, *, inline: bool = False) -> Self:
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
            raise StateError(
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
