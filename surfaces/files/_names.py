"""Inbound file names: make a user-supplied name safe to create in a workspace.

The name comes from a Matrix event (``body``/``filename``), i.e. from anyone in the
room, and the agent later sees it as a path. So it must be one harmless path
component on every platform the workspace may be shared with: no separators, no
traversal, no control or bidi-override characters (``invoice‮fdp.exe``), no Windows
device names, and short enough for any filesystem (255-byte components).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import trio

__all__ = ["MAX_NAME_BYTES", "sanitize_filename", "unique_path", "write_new_file"]

#: Cap for a sanitised name. Leaves room for " (9999)" within the common 255 limit.
MAX_NAME_BYTES = 200
_MAX_EXTENSION_BYTES = 20
_MAX_ATTEMPTS = 10_000

_FORBIDDEN = frozenset('<>:"/\\|?*')
# Bidi controls and zero-width format characters used to disguise names.
_INVISIBLE = frozenset(
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {f"COM{d}" for d in "¹²³"}
    | {f"LPT{d}" for d in "¹²³"}
)
_COMPOUND_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst")
_STRIP = ". \t\n\r\x0b\x0c"


def _strip_ends(text: str) -> str:
    """Strip whitespace (any Unicode space) and dots from both ends."""
    while True:
        stripped = text.strip().strip(".")
        if stripped == text:
            return text
        text = stripped


def _safe_char(ch: str) -> str:
    o = ord(ch)
    if (
        ch in _FORBIDDEN
        or ch in _INVISIBLE
        or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")
        or o == 0x7F
    ):
        return "_"
    return ch


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """Longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes (whole code points)."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _split_extension(name: str) -> tuple[str, str]:
    """``("report", ".pdf")``; compound tar suffixes stay whole; dotfiles have none."""
    lower = name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def _cap_length(name: str, max_bytes: int) -> str:
    """Shorten the stem (not the extension) until ``name`` fits ``max_bytes``."""
    if _utf8_len(name) <= max_bytes:
        return name
    stem, ext = _split_extension(name)
    if not stem.strip(_STRIP) or _utf8_len(ext) > _MAX_EXTENSION_BYTES:
        stem, ext = name, ""
    stem = _truncate_utf8(stem, max_bytes - _utf8_len(ext)).rstrip(_STRIP)
    return stem + ext


def sanitize_filename(name: str | None, *, fallback: str = "file") -> str:
    """Turn an untrusted file name into one safe path component.

    Basename only (``/`` and ``\\`` both separate), NFC-normalised, control/bidi
    characters and ``<>:"/\\|?*`` replaced by ``_``, leading/trailing dots and
    spaces stripped (no hidden files, no ``..``), Windows device names prefixed with
    ``_``, at most ``MAX_NAME_BYTES`` UTF-8 bytes keeping the extension. Never empty:
    ``fallback`` (itself sanitised) is used when nothing is left.

    >>> sanitize_filename("../../etc/passwd")
    'passwd'
    >>> sanitize_filename("con.txt")
    '_con.txt'
    >>> sanitize_filename(" .. ")
    'file'
    """
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[/\\]", text)[-1]
    text = _strip_ends("".join(map(_safe_char, _strip_ends(text))))
    if not text:
        if fallback == "file":
            return "file"
        return sanitize_filename(fallback)
    stem = text.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _WINDOWS_RESERVED:
        text = "_" + text
    # Normalising again after truncation keeps the result NFC even for odd inputs.
    for _ in range(4):
        text = unicodedata.normalize("NFC", _cap_length(text, MAX_NAME_BYTES))
        if _utf8_len(text) <= MAX_NAME_BYTES:
            break
    return text or "file"


def _candidates(name: str) -> Iterator[str]:
    """``name``, ``stem (1).ext``, ``stem (2).ext`` … each within ``MAX_NAME_BYTES``."""
    yield name
    stem, ext = _split_extension(name)
    for i in range(1, _MAX_ATTEMPTS):
        tag = f" ({i})"
        room = MAX_NAME_BYTES - _utf8_len(tag + ext)
        yield _truncate_utf8(stem, max(room, 1)).rstrip(_STRIP) + tag + ext


def unique_path(directory: Path, name: str) -> Path:
    """First of ``name``, ``stem (1).ext``, … not present in ``directory``.

    ``name`` should already be sanitised. This only *looks*: two writers can get the
    same answer, so to create a file use :func:`write_new_file`, which claims the
    name atomically.
    """
    for candidate in _candidates(name):
        path = directory / candidate
        if not os.path.lexists(path):
            return path
    raise FileExistsError(f"no free name for {name!r} in {directory}")


def _write_new_file_sync(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for candidate in _candidates(sanitize_filename(name)):
        path = directory / candidate
        try:
            # O_EXCL claims the name atomically (and never follows a symlink there).
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            continue
        try:
            with open(fd, "wb", closefd=True) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        _fsync_directory(directory)
        return path
    raise FileExistsError(f"no free name for {name!r} in {directory}")


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable too (best effort: not all OSes allow it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


async def write_new_file(directory: Path, name: str, data: bytes) -> Path:
    """Store ``data`` under a new, sanitised, unique name in ``directory``; return its path.

    Creates ``directory`` if needed, picks ``name``/``name (1)``… with
    ``O_CREAT | O_EXCL`` so concurrent writers never share a file, writes, fsyncs, and
    removes the partial file if writing fails. Runs in a worker thread; a cancel
    waits for the (bounded) write to finish so no half-written file is left behind.
    """
    return await trio.to_thread.run_sync(_write_new_file_sync, directory, name, data)
