"""Files the agent sends: resolve the path inside its workspace, upload, post.

What the agent names is input: the path is resolved inside the agent's workspace
(anything that escapes it, symlinks included, is refused) and a refusal or failure is
a notice to the user, never a failed turn.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import structlog
import trio

from matrix_client import MatrixClient, media_content
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
from surfaces.state import ChatRecord, PendingSend, Store

log = structlog.get_logger(__name__)


@attrs.define
class OutgoingFiles:
    matrix: MatrixClient
    store: Store
    outbox: Outbox
    notifier: Notifier

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
            url = await self.matrix.upload(data, content_type=mime, filename=path.name)
        except Exception as exc:
            log.warning("agent_file_upload_failed", path=shown, error=repr(exc))
            await self.notifier.notice(chat.room_id, "file_out_failed", txn_id=txn_id, path=shown)
            return
        content = media_content(
            guess_msgtype(mime), body=path.name, url=url, mimetype=mime, size=len(data)
        )
        await self.outbox.send(PendingSend(chat.room_id, txn_id, "m.room.message", content))
        log.info("agent_file_sent", path=shown, size=len(data), size_h=human_size(len(data)))
