"""Files the agent sends: resolve the path inside its workspace, upload, post.

What the agent names is input: the path is resolved inside the agent's workspace
(anything that escapes it, symlinks included, is refused) and a refusal or failure is
a notice to the user, never a failed turn.

In an encrypted room the file is encrypted before it is uploaded (the v2 attachment
scheme: a fresh AES-CTR key per file, the ciphertext's SHA-256) and the message
carries the ``file`` object (key, IV, hash and url) inside its encrypted content.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import structlog
import trio

from matrix_client import MatrixClient, media_content
from matrix_client.crypto import EncryptingChunks
from surfaces.core import clean_text
from surfaces.delivery import Notifier, Outbox
from surfaces.files import (
    MissingFileError,
    OutboundFileError,
    UnsafePathError,
    guess_mime,
    guess_msgtype,
    resolve_agent_path,
)
from surfaces.i18n import human_size
from surfaces.session import Crypto
from surfaces.state import ChatRecord, PendingSend, Store

log = structlog.get_logger(__name__)

#: What an encrypted upload is to the media repository (the real type is inside).
ENCRYPTED_MIME = "application/octet-stream"


@attrs.define
class OutgoingFiles:
    matrix: MatrixClient
    store: Store
    outbox: Outbox
    notifier: Notifier
    #: Tells which rooms are encrypted (``None`` with ``matrix.encryption: false``).
    crypto: Crypto | None = None

    async def send(self, chat: ChatRecord, workspace: Path, raw_path: str, txn_id: str) -> None:
        """Upload a file the agent named and post it; a notice when we cannot."""
        shown = clean_text(raw_path)[:300]  # what notices and logs may carry
        if await self.store.sent_event_id(txn_id):
            return  # posted by an earlier attempt of this turn
        try:
            path = resolve_agent_path(raw_path, workspace)
        except UnsafePathError:
            log.warning("agent_file_unsafe", path=shown)
            await self.notifier.notice(chat.room_id, "file_out_unsafe", txn_id=txn_id, path=shown)
            return
        except MissingFileError:
            log.warning("agent_file_missing", path=shown)
            await self.notifier.notice(chat.room_id, "file_out_missing", txn_id=txn_id, path=shown)
            return
        except OutboundFileError as exc:  # a directory, a device, …
            log.warning("agent_file_rejected", path=shown, reason=exc.reason)
            await self.notifier.notice(chat.room_id, "file_out_unsafe", txn_id=txn_id, path=shown)
            return
        try:
            data = await trio.Path(path).read_bytes()
            mime = guess_mime(path)
            file = None
            if self.crypto is not None and await self.crypto.is_encrypted(chat.room_id):
                chunks = EncryptingChunks(_Once(data))
                url = await self.matrix.upload(
                    chunks, content_type=ENCRYPTED_MIME, filename=path.name, size=len(data)
                )
                file = chunks.file_object(url)
            else:
                url = await self.matrix.upload(data, content_type=mime, filename=path.name)
        except Exception as exc:
            log.warning("agent_file_upload_failed", path=shown, error=repr(exc))
            await self.notifier.notice(chat.room_id, "file_out_failed", txn_id=txn_id, path=shown)
            return
        content = media_content(
            guess_msgtype(mime),
            body=path.name,
            url=None if file is not None else url,
            file=file,
            mimetype=mime,
            size=len(data),
        )
        await self.outbox.send(PendingSend(chat.room_id, txn_id, "m.room.message", content))
        log.info("agent_file_sent", path=shown, size=len(data), size_h=human_size(len(data)))


@attrs.frozen
class _Once:
    """The file's bytes as a one-chunk source (re-iterable for a retried upload)."""

    data: bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
