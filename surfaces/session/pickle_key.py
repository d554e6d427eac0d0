"""The pickle key: what encrypts the bot's crypto state (its keys, its sessions) inside
the state database.

Two sources, in this order:

* ``matrix.pickle_key`` (a ``Secret``, e.g. ``SURFACES_MATRIX__PICKLE_KEY`` from a
  secret store): a passphrase of 16+ characters, hashed (SHA-256, with a label) into
  the 32 bytes vodozemac wants. The operator keeps it apart from the database, so a
  stolen database alone opens nothing.
* otherwise a key file ``<state_dir>/pickle.key``: 32 random bytes (base64), created
  on first start with mode 0600, opened without following symlinks. It lives next to
  the database, so it protects against a database copied alone (a backup, a bug
  report), not against someone who reads the whole state directory.

Losing the key while the database survives makes the crypto state unreadable: the bot
refuses to start rather than silently starting over (see docs/operations.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

import structlog

from surfaces.config import Secret
from surfaces.core import FatalError

log = structlog.get_logger(__name__)

PICKLE_KEY_FILE = "pickle.key"
_LABEL = b"surfaces pickle key v1\x00"
_KEY_BYTES = 32


def key_from_passphrase(secret: Secret) -> bytes:
    """The 32-byte pickle key of a configured passphrase."""
    return hashlib.sha256(_LABEL + secret.reveal().encode("utf-8")).digest()


def load_pickle_key(configured: Secret | None, state_dir: Path) -> bytes:
    """The pickle key: the configured one, else the key file (created when missing).

    Blocking (a few small file operations): call it from a thread or before the loop
    gets busy. Raises :class:`FatalError` for a key file that is not a regular file or
    does not hold a key.
    """
    if configured is not None:
        return key_from_passphrase(configured)
    path = state_dir / PICKLE_KEY_FILE
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(_KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_key_file(path)  # another process made it meanwhile
    with os.fdopen(fd, "wb") as out:
        out.write(base64.b64encode(key) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    _fsync_dir(state_dir)
    log.info("pickle_key_file_created", path=str(path))
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise FatalError(f"cannot open the pickle key file {path}: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FatalError(f"the pickle key file {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_mode & 0o077:
            log.warning(
                "pickle_key_file_permissions",
                path=str(path),
                mode=oct(stat.S_IMODE(info.st_mode)),
                fixed_to="0o600",
            )
            os.fchmod(handle.fileno(), 0o600)
        raw = handle.read(1024)
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise FatalError(
            f"the pickle key file {path} does not hold a key (32 bytes, base64); restore it "
            "from the backup"
        )
    return key


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
