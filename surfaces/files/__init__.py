"""Files between Matrix and agent workspaces: inbound name sanitising and storage,
outbound path resolution and opening, MIME/msgtype guessing."""

from ._incoming import (
    INCOMING_DIR,
    IncomingDir,
    IncomingFileError,
    StoredFile,
    delete_incoming,
    store_incoming,
)
from ._names import MAX_NAME_BYTES, sanitize_filename, unique_path, write_new_file
from ._open import AgentFile, FileTooLargeError, open_agent_file
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
    "INCOMING_DIR",
    "MAX_NAME_BYTES",
    "AgentFile",
    "FileTooLargeError",
    "IncomingDir",
    "IncomingFileError",
    "MissingFileError",
    "NotAFileError",
    "OutboundFileError",
    "StoredFile",
    "UnsafePathError",
    "delete_incoming",
    "guess_mime",
    "guess_msgtype",
    "open_agent_file",
    "relative_to_workspace",
    "resolve_agent_path",
    "sanitize_filename",
    "store_incoming",
    "unique_path",
    "write_new_file",
]
