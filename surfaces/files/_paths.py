"""Outbound files: resolve a path named by the agent to a real file in its workspace.

The agent runs elsewhere and sees its workspace as ``/workspace`` (or, in older
deployments, ``/agents/<n>``); it may also use relative paths. Whatever it says, the
bot may only ever upload a *regular file inside that agent's workspace*: a path with
``..``, an absolute path elsewhere, or a symlink pointing out would otherwise let a
prompt-injected agent exfiltrate the bot's own files (config, tokens, other users'
workspaces).
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import stat
from pathlib import Path, PurePosixPath

__all__ = [
    "MissingFileError",
    "NotAFileError",
    "OutboundFileError",
    "UnsafePathError",
    "guess_mime",
    "guess_msgtype",
    "relative_to_workspace",
    "resolve_agent_path",
]


class OutboundFileError(Exception):
    """The agent named a file the bot will not send. ``reason`` is for logs/notices."""

    def __init__(self, reason: str, raw: str | None = None) -> None:
        super().__init__(reason if raw is None else f"{reason}: {raw!r}")
        self.reason = reason
        self.raw = raw


class UnsafePathError(OutboundFileError):
    """Empty, NUL byte, or the path leaves the workspace (``..``, absolute, symlink)."""


class NotAFileError(OutboundFileError):
    """The path exists inside the workspace but is a directory, FIFO, device…"""


class MissingFileError(OutboundFileError, FileNotFoundError):
    """Nothing exists at that path (also catchable as ``FileNotFoundError``)."""


def _workspace_relative(raw: str, workspace: Path, agent_mount: str) -> PurePosixPath:
    """Map the agent's spelling of a path to a path relative to its workspace."""
    path = PurePosixPath(raw)
    if not path.is_absolute():
        return path
    mount = PurePosixPath(agent_mount)
    bot_side = PurePosixPath(workspace.absolute().as_posix())
    for root in (bot_side, mount):
        if path == root or root in path.parents:
            return path.relative_to(root)
    parts = path.parts  # ("/", "agents", "<n>", ...)
    if len(parts) >= 3 and parts[1] == "agents":
        return PurePosixPath(*parts[3:]) if len(parts) > 3 else PurePosixPath()
    raise UnsafePathError("absolute path outside the workspace", raw)


def resolve_agent_path(raw: str, workspace: Path, *, agent_mount: str = "/workspace") -> Path:
    """Resolve the agent's ``raw`` path to a regular file inside ``workspace``.

    Accepts ``/workspace/x`` (``agent_mount``), ``/agents/<n>/x`` (any ``n``: it is
    the agent's view of its own workspace), the workspace's bot-side absolute path,
    and relative paths. Returns the fully resolved path (symlinks inside the
    workspace are followed; its name may differ from ``raw``'s).

    Raises:
        UnsafePathError: empty, NUL byte, absolute elsewhere, ``..`` or a symlink
            leading out of the workspace.
        MissingFileError: nothing there (or the workspace itself is missing).
        NotAFileError: a directory or other non-regular file.

    The file can still be swapped after this check; open the result with
    ``O_NOFOLLOW`` when uploading if the workspace is shared with untrusted writers.
    """
    if not raw or not raw.strip():
        raise UnsafePathError("empty path", raw)
    if "\x00" in raw:
        raise UnsafePathError("NUL byte in path", raw)
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePathError("path is not valid Unicode (lone surrogate)", raw)
    relative = _workspace_relative(raw, workspace, agent_mount)
    normalised = posixpath.normpath(relative.as_posix()) if relative.parts else "."
    if normalised == ".." or normalised.startswith("../") or normalised.startswith("/"):
        raise UnsafePathError("path escapes the workspace", raw)
    try:
        root = workspace.resolve(strict=True)
    except FileNotFoundError:
        raise MissingFileError("workspace directory is missing", str(workspace))
    try:
        # Resolve the *unnormalised* path: ``link/..`` must follow the link first.
        resolved = (root / relative).resolve(strict=True)
    except FileNotFoundError:
        raise MissingFileError("no such file", raw)
    except (OSError, RuntimeError) as exc:  # symlink loops, ENAMETOOLONG, EACCES…
        raise UnsafePathError(f"cannot resolve path ({type(exc).__name__})", raw)
    if resolved != root and root not in resolved.parents:
        raise UnsafePathError("path escapes the workspace via a symlink", raw)
    mode = resolved.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotAFileError(f"path is {kind}", raw)
    return resolved


def relative_to_workspace(path: Path, workspace: Path) -> str:
    """The POSIX path of ``path`` relative to ``workspace``, as the agent must see it.

    Inbound files are passed to the agent this way (``USER_MESSAGE.attachments``), so
    the value works whatever the workspace is mounted as on the agent's side.
    Relative ``path`` values are taken relative to ``workspace``.

    Raises:
        UnsafePathError: ``path`` is not strictly inside ``workspace``.
    """
    root = workspace.resolve()
    full = (path if path.is_absolute() else workspace / path).resolve()
    try:
        relative = full.relative_to(root)
    except ValueError:
        raise UnsafePathError("path is outside the workspace", str(path))
    if not relative.parts:
        raise UnsafePathError("path is the workspace itself", str(path))
    return relative.as_posix()


# Built-in table only (no /etc/mime.types): identical answers on every host.
_MIME = mimetypes.MimeTypes()
for _type, _ext in (
    ("text/markdown", ".md"),
    ("image/webp", ".webp"),
    ("audio/ogg", ".ogg"),
    ("audio/opus", ".opus"),
    ("audio/flac", ".flac"),
    ("audio/mp4", ".m4a"),
    ("video/webm", ".webm"),
    ("application/yaml", ".yaml"),
    ("application/yaml", ".yml"),
    ("text/csv", ".csv"),
    ("application/json", ".json"),
):
    _MIME.add_type(_type, _ext)

_OCTET_STREAM = "application/octet-stream"


def guess_mime(path: Path | str) -> str:
    """MIME type from the file name; ``application/octet-stream`` when unknown."""
    name = os.fspath(path)
    mime, _encoding = _MIME.guess_type(PurePosixPath(name).name or name, strict=False)
    return mime or _OCTET_STREAM


def guess_msgtype(mime: str) -> str:
    """Matrix ``msgtype`` for a MIME type: ``m.image``/``m.audio``/``m.video``/``m.file``.

    SVG is sent as ``m.file``: clients do not thumbnail it and it can carry script.
    """
    essence = mime.split(";", 1)[0].strip().lower()
    major = essence.split("/", 1)[0]
    if essence == "image/svg+xml":
        return "m.file"
    return {"image": "m.image", "audio": "m.audio", "video": "m.video"}.get(major, "m.file")
