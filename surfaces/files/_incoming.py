"""Files from users, stored under ``<workspace>/incoming/`` without trusting the workspace.

The agent owns its workspace: it can replace ``incoming/`` with a symlink to any
directory the bot can write (``O_EXCL`` on the file guards only the last component),
or put a symlink where the next file will be created. So the directory is opened once
as a verified fd — created with ``mkdirat`` (which never follows a link at that name)
and opened with ``O_NOFOLLOW | O_DIRECTORY`` (a symlink or a file there is refused) —
and the file is created *relative to that fd* with ``O_CREAT | O_EXCL | O_NOFOLLOW``.
Whatever the agent does to the path meanwhile, the bytes land in that directory.

The body is written as it arrives (at most :data:`CHUNK_BYTES` held in memory), and a
failed or cancelled write removes its partial file. A refusal is an
:class:`IncomingFileError`: deterministic (the same directory, the same disk), so the
caller tells the user and does not retry.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path, PurePosixPath

import attrs
import trio

from surfaces.files._names import _candidates, sanitize_filename

__all__ = [
    "INCOMING_DIR",
    "IncomingDir",
    "IncomingFileError",
    "StoredFile",
    "delete_incoming",
    "store_incoming",
]

INCOMING_DIR = "incoming"
#: Written per worker-thread hop (and the most of a body held in memory).
CHUNK_BYTES = 1024 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class IncomingFileError(Exception):
    """The file cannot be stored: ``incoming/`` is a link or not a directory, the
    disk is full, permissions… ``reason`` is for logs (never shown with paths)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class StoredFile:
    name: str  # the file name in incoming/ (sanitised, made unique)
    rel_path: str  # as the agent sees it: "incoming/<name>"
    size: int


@attrs.define(eq=False)
class IncomingDir:
    """A verified fd of ``<workspace>/incoming``. Blocking methods: worker thread."""

    fd: int

    @classmethod
    def open(cls, workspace: Path, *, create: bool = True) -> IncomingDir:
        try:
            if create:
                workspace.mkdir(parents=True, exist_ok=True)  # the operator's path
            root = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise IncomingFileError(f"workspace cannot be opened ({_code(exc)})") from None
        try:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(INCOMING_DIR, dir_fd=root)  # mkdirat: never follows a link
            try:
                return cls(os.open(INCOMING_DIR, _DIR_FLAGS, dir_fd=root))
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise IncomingFileError("incoming/ is a link or not a directory") from None
                raise IncomingFileError(f"incoming/ cannot be opened ({_code(exc)})") from None
        except OSError as exc:
            raise IncomingFileError(f"incoming/ cannot be created ({_code(exc)})") from None
        finally:
            os.close(root)

    def create(self, name: str) -> tuple[int, str]:
        """A new file named ``name`` or ``name (1)``… → (fd, the name used)."""
        for candidate in _candidates(sanitize_filename(name)):
            try:
                return os.open(candidate, _NEW_FILE, 0o644, dir_fd=self.fd), candidate
            except FileExistsError:
                continue  # taken (by a file, a link, anything): the next name
            except OSError as exc:
                raise IncomingFileError(f"file cannot be created ({_code(exc)})") from None
        raise IncomingFileError("no free file name")

    def unlink(self, name: str) -> bool:
        """Remove ``name`` from this directory (a link is removed, never followed)."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def sync(self) -> None:
        """Make new entries durable (best effort: not every file system allows it)."""
        with contextlib.suppress(OSError):
            os.fsync(self.fd)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


async def store_incoming(
    workspace: Path,
    name: str,
    chunks: AsyncIterable[bytes],
    *,
    claimed: Callable[[str], Awaitable[None]] | None = None,
) -> StoredFile:
    """Write ``chunks`` to a new file in ``<workspace>/incoming`` (see the module doc).

    ``claimed(name)`` is awaited once the name is taken and before any byte is
    written, so a caller can record it and clean up after a crash
    (:func:`delete_incoming`). Whatever ``chunks`` raises goes up, after the partial
    file is removed; :class:`IncomingFileError` when the file cannot be stored."""
    directory = await trio.to_thread.run_sync(IncomingDir.open, workspace)
    try:
        fd, stored_name = await trio.to_thread.run_sync(directory.create, name)
        size = 0
        try:
            if claimed is not None:
                await claimed(stored_name)
            buffer = bytearray()
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= CHUNK_BYTES:
                    size += await trio.to_thread.run_sync(_write_all, fd, bytes(buffer))
                    buffer.clear()
            size += await trio.to_thread.run_sync(_write_all, fd, bytes(buffer))
            await trio.to_thread.run_sync(os.fsync, fd)
        except BaseException:
            # Synchronous and quick: runs even while being cancelled.
            os.close(fd)
            fd = -1
            directory.unlink(stored_name)
            raise
        finally:
            if fd >= 0:
                os.close(fd)
        await trio.to_thread.run_sync(directory.sync)
    finally:
        directory.close()
    return StoredFile(stored_name, f"{INCOMING_DIR}/{stored_name}", size)


def delete_incoming(workspace: Path, rel_path: str) -> bool:
    """Delete ``incoming/<name>`` from ``workspace`` through a verified directory fd.
    False when it was gone already, or ``rel_path`` is not a file of ``incoming/``
    (nothing outside it is ever deleted). Blocking: worker thread."""
    parts = PurePosixPath(rel_path).parts
    if len(parts) != 2 or parts[0] != INCOMING_DIR or parts[1] in (".", ".."):
        return False
    try:
        directory = IncomingDir.open(workspace, create=False)
    except IncomingFileError:
        return False
    try:
        return directory.unlink(parts[1])
    except OSError:
        return False
    finally:
        directory.close()


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError as exc:
            raise IncomingFileError(f"file cannot be written ({_code(exc)})") from None
        view = view[written:]
    return len(data)


def _code(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))
