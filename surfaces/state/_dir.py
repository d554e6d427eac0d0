"""The state directory: created private, locked for one bot at a time.

Why a lock: two ``surfaces run`` on one database would each sync, answer every
message and replay each other's outbox — every user would see two replies, and the
since-token would go back and forth. SQLite's own locking only serialises the
writes; it does not stop the second bot. So the first one holds an exclusive
``flock`` on ``<state_dir>/surfaces.lock`` for its whole life (the kernel drops it
when the process dies, however it dies: no stale lock to clean up after a crash),
and a second one refuses to start, naming the lock and the holder's pid.

Why 0700/0600: the database holds the bot's access token (``kv``
``matrix.access_token``). The directory is created 0700 and the database files
(``surfaces.db`` and its ``-wal``/``-shm``) are kept 0600, whatever the umask.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import attrs
import structlog

log = structlog.get_logger(__name__)

#: The state database's file name inside ``state_dir``.
DB_NAME = "surfaces.db"
LOCK_NAME = "surfaces.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600
#: The lock file holds the holder's pid as text; more than this is not a pid.
_MAX_PID_BYTES = 32


class StateError(Exception):
    """The state directory or database cannot be used (one line for the operator;
    ``surfaces run`` exits 2): not a directory, not writable, not a database, or a
    schema newer than this build."""


class StateLockedError(StateError):
    """Another process holds the state directory's lock (``surfaces run`` exits 4)."""

    def __init__(self, lock_path: Path, holder: int | None) -> None:
        who = f"pid {holder}" if holder is not None else "another process"
        super().__init__(
            f"the state directory is in use: {lock_path} is locked by {who} "
            "(another `surfaces run` on the same SURFACES_STATE_DIR?)"
        )
        self.lock_path = lock_path
        self.holder = holder


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 if missing; refuse a non-directory.
    An existing directory keeps its mode (the operator chose it)."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        raise StateError(f"state directory {path} exists and is not a directory") from None
    except NotADirectoryError:
        raise StateError(f"state directory {path} cannot be created: a parent is a file") from None
    except OSError as exc:
        raise StateError(f"state directory {path} cannot be created: {exc.strerror}") from None
    try:
        info = path.stat()
    except OSError as exc:
        raise StateError(f"state directory {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StateError(f"state directory {path} exists and is not a directory")
    return path


def make_private(path: Path, *, create: bool = False) -> None:
    """Mode 0600 on ``path`` — created so (before SQLite would create it with the
    umask's mode) when ``create``, else only if it exists; never through a symlink."""
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileNotFoundError:
        if create:
            raise StateError(f"{path} cannot be created: its directory is missing") from None
        return
    except IsADirectoryError:
        raise StateError(f"{path} is a directory") from None
    except OSError as exc:
        raise StateError(f"{path} cannot be opened: {exc.strerror}") from None
    try:
        make_private_fd(fd, path)
    finally:
        os.close(fd)


def make_private_fd(fd: int, path: Path) -> None:
    """Mode 0600 on an open file; a file we may not chmod (someone else's) is logged."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode == FILE_MODE:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError as exc:
        log.warning("state_file_mode_unchanged", path=str(path), mode=oct(mode), error=exc.strerror)


@attrs.define
class StateDir:
    """A locked state directory; :meth:`close` (or process exit) releases the lock."""

    path: Path
    _lock_fd: int | None = attrs.field(repr=False)

    @classmethod
    def acquire(cls, path: Path | str) -> StateDir:
        """Create the directory if needed and take its lock, or raise
        :class:`StateLockedError` at once (never waits). Blocking but quick."""
        directory = ensure_private_dir(Path(path).expanduser())
        mode = stat.S_IMODE(directory.stat().st_mode)
        if mode & 0o077:  # it holds the access token: say so once per start
            log.warning("state_dir_permissions_open", path=str(directory), mode=oct(mode))
        lock_path = directory / LOCK_NAME
        try:
            fd = os.open(
                lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
            )
        except OSError as exc:
            raise StateError(f"lock file {lock_path} cannot be opened: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateLockedError(lock_path, holder) from None
        except OSError as exc:
            os.close(fd)
            raise StateError(f"lock file {lock_path} cannot be locked: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(directory, fd)

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def close(self) -> None:
        """Release the lock. The file stays: deleting it would let a third process
        lock a new inode while a second one still waits on the old one."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, _MAX_PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() else None
