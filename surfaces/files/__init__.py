"""Files between Matrix and agent workspaces: inbound name sanitising and storage,
outbound path resolution, MIME/msgtype guessing."""

from ._names import MAX_NAME_BYTES, sanitize_filename, unique_path, write_new_file
from ._paths import (
    MissingFileError,
    NotAFileError,
    OutboundFileError,
    UnsafePathError,
    guess_mime,
    guess_msgtype,
    relative_to_workspace,
    resolve_agent_path,
)

__all__ = [
    "MAX_NAME_BYTES",
    "MissingFileError",
    "NotAFileError",
    "OutboundFileError",
    "UnsafePathError",
    "guess_mime",
    "guess_msgtype",
    "relative_to_workspace",
    "resolve_agent_path",
    "sanitize_filename",
    "unique_path",
    "write_new_file",
]
