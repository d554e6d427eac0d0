"""Files the agent sends: resolve the path inside its workspace, open, upload, post.

What the agent names is input: the path is resolved inside the agent's workspace
(anything that escapes it, symlinks included, is refused) and then opened without
following any link (``surfaces.files.open_agent_file``), so a component the agent
swaps after the check cannot redirect the upload to the bot's own files. Only a
regular file is read (a FIFO or a device never blocks the lane), only up to
``bot.max_outgoing_file_bytes``, in chunks straight from the fd to the socket, and
the whole send has a deadline. A refusal or failure is a notice to the user naming
the path, never a failed turn.

In an encrypted room the file is encrypted on its way to the upload (the v2
attachment scheme: a fresh AES-CTR key per upload, the ciphertext's SHA-256), the
upload is ``application/octet-stream``, and the message carries the ``file`` object
(key, IV, hash and url) inside its encrypted content.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import structlog
import trio

from matrix_client import MatrixClient, UnknownTokenError, media_content
from matrix_client.crypto import EncryptingChunks
from surfaces.core import clean_text
from surfaces.delivery import Notifier, Outbox
from surfaces.files import (
    FileTooLargeError,
    MissingFileError,
    NotAFileError,
    OutboundFileError,
    UnsafePathError,
    guess_mime,
    guess_msgtype,
    open_agent_file,
)
from surfaces.session import Crypto
from surfaces.state import ChatRecord, PendingSend, Store

log = structlog.get_logger(__name__)

#: The whole send of one file: open, upload (streamed), post.
SEND_DEADLINE_S = 300.0
#: What an encrypted upload is to the media repository (the real type is inside).
ENCRYPTED_MIME = "application/octet-stream"


@attrs.define
class OutgoingFiles:
    matrix: MatrixClient
    store: Store
    outbox: Outbox
    notifier: Notifier
    max_bytes: int
    deadline_s: float = SEND_DEADLINE_S
    #: Tells which rooms are encrypted (``None`` with ``matrix.encryption: false``).
    crypto: Crypto | None = None

    async def send(self, chat: ChatRecord, workspace: Path, raw_path: str, txn_id: str) -> None:
        """Upload a file the agent named and post it; a notice when we cannot."""
        shown = clean_text(raw_path)[:300]  # what notices and logs may carry
        if await self.store.sent_event_id(txn_id):
            return  # posted by an earlier attempt of this turn
        room = chat.room_id
        try:
            with trio.fail_after(self.deadline_s):
                opened = await trio.to_thread.run_sync(
                    lambda: open_agent_file(raw_path, workspace, max_bytes=self.max_bytes)
                )
                with opened:
                    mime = guess_mime(opened.name)
                    file: dict | None = None
                    if self.crypto is not None and await self.crypto.is_encrypted(room):
                        chunks = EncryptingChunks(opened.chunks())
                        url = await self.matrix.upload(
                            chunks,
                            content_type=ENCRYPTED_MIME,
                            filename=opened.name,
                            size=opened.size,
                        )
                        file = chunks.file_object(url)
                    else:
                        url = await self.matrix.upload(
                            opened.chunks(),
                            content_type=mime,
                            filename=opened.name,
                            size=opened.size,
                        )
        except FileTooLargeError as exc:
            log.warning("agent_file_too_large", path=shown, size=exc.size, limit=exc.limit)
            await self.notifier.notice(
                room,
                "file_out_too_large",
                txn_id=txn_id,
                path=shown,
                size=exc.size,
                limit=exc.limit,
            )
            return
        except MissingFileError:
            log.warning("agent_file_missing", path=shown)
            await self.notifier.notice(room, "file_out_missing", txn_id=txn_id, path=shown)
            return
        except NotAFileError as exc:  # a directory, a FIFO, a device…
            log.warning("agent_file_rejected", path=shown, reason=exc.reason)
            await self.notifier.notice(room, "file_out_not_regular", txn_id=txn_id, path=shown)
            return
        except (UnsafePathError, OutboundFileError) as exc:
            log.warning("agent_file_unsafe", path=shown, reason=exc.reason)
            await self.notifier.notice(room, "file_out_unsafe", txn_id=txn_id, path=shown)
            return
        except UnknownTokenError:
            raise
        except Exception as exc:  # upload refused, homeserver down, the deadline…
            log.warning("agent_file_upload_failed", path=shown, error=repr(exc))
            await self.notifier.notice(room, "file_out_failed", txn_id=txn_id, path=shown)
            return
        content = media_content(
            guess_msgtype(mime),
            body=opened.name,
            url=None if file is not None else url,
            file=file,
            mimetype=mime,
            size=opened.size,
        )
        await self.outbox.send(PendingSend(room, txn_id, "m.room.message", content))
        log.info("agent_file_sent", path=shown, size=opened.size)
