"""Opening a file the agent named, so that what is sent is what was checked.

``resolve_agent_path`` checks a *path*; the agent owns its workspace and can swap a
component for a symlink between that check and an ``open`` by name (a symlink to
the bot's state database would upload the access token). So the file is opened by
walking the checked, symlink-free path from a directory fd of the workspace, one
``openat`` per component with ``O_NOFOLLOW``: a component swapped for a link after
the check fails the walk (``ELOOP``/``ENOTDIR``) instead of being followed. The
last component is opened ``O_NONBLOCK`` (a FIFO never blocks the open) and the fd
is ``fstat``-ed: only a regular file is read, only up to its checked size, and
never more than the configured cap.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import attrs
import trio

from surfaces.files._paths import (
    MissingFileError,
    NotAFileError,
    OutboundFileError,
    UnsafePathError,
    resolve_agent_path,
)

__all__ = ["AgentFile", "FileTooLargeError", "open_agent_file"]

#: Bytes read per worker-thread hop while uploading (memory per upload in flight).
CHUNK_BYTES = 1024 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileTooLargeError(OutboundFileError):
    """The file is larger than the bot sends (``bot.max_outgoing_file_bytes``)."""

    def __init__(self, size: int, limit: int, raw: str | None = None) -> None:
        super().__init__(f"file of {size} bytes is over the {limit} byte limit", raw)
        self.size = size
        self.limit = limit


@attrs.define(eq=False)
class AgentFile:
    """An open regular file inside the workspace; close it (or use ``with``)."""

    fd: int
    name: str
    size: int

    def chunks(self) -> _Chunks:
        """The file's first ``size`` bytes as an async iterable for a streamed upload;
        each iteration starts again at offset 0 (``pread``), so an upload retried
        after a 429 sends the same bytes."""
        return _Chunks(self)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> AgentFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@attrs.frozen
class _Chunks:
    file: AgentFile

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._read()

    async def _read(self) -> AsyncIterator[bytes]:
        offset = 0
        while offset < self.file.size:
            want = min(CHUNK_BYTES, self.file.size - offset)
            chunk = await trio.to_thread.run_sync(os.pread, self.file.fd, want, offset)
            if not chunk:
                return  # shrank meanwhile: the upload's size check refuses it
            offset += len(chunk)
            yield chunk


def open_agent_file(
    raw: str, workspace: Path, *, max_bytes: int, agent_mount: str = "/workspace"
) -> AgentFile:
    """Check ``raw`` (``resolve_agent_path``) and open that file without following any
    link inside the workspace. Blocking: run it in a worker thread.

    Raises the ``OutboundFileError`` family: ``UnsafePathError`` (also when a
    component was replaced by a link after the check), ``MissingFileError``,
    ``NotAFileError`` (directory, FIFO, device…), ``FileTooLargeError``."""
    resolved = resolve_agent_path(raw, workspace, agent_mount=agent_mount)
    root = workspace.resolve(strict=True)
    parts = resolved.relative_to(root).parts
    fd = _open_beneath(root, parts, raw)
    info = os.fstat(fd)
    problem: OutboundFileError | None = None
    if not stat.S_ISREG(info.st_mode):
        problem = NotAFileError("path is not a regular file", raw)
    elif info.st_size > max_bytes:
        problem = FileTooLargeError(info.st_size, max_bytes, raw)
    if problem is not None:
        os.close(fd)
        raise problem
    return AgentFile(fd, parts[-1], info.st_size)


def _open_beneath(root: Path, parts: Sequence[str], raw: str) -> int:
    """``openat`` walk from ``root`` (trusted, may itself be a link) with
    ``O_NOFOLLOW`` on every component → an fd of the last one."""
    if not parts:
        raise NotAFileError("path is a directory", raw)
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=directory)
            except OSError as exc:
                raise _walk_error(exc, raw) from None
            os.close(directory)
            directory = inner
        try:
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=directory)
        except OSError as exc:
            raise _walk_error(exc, raw) from None
    finally:
        os.close(directory)


def _walk_error(exc: OSError, raw: str) -> OutboundFileError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return UnsafePathError("path changed into a link after it was checked", raw)
    if exc.errno == errno.ENOENT:
        return MissingFileError("no such file", raw)
    if exc.errno in (errno.ENXIO, errno.ENODEV):  # a socket, a device without a driver
        return NotAFileError("path is not a regular file", raw)
    return UnsafePathError(f"cannot open path ({errno.errorcode.get(exc.errno, exc.errno)})", raw)
