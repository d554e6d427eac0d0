"""Files from users: download, check, store in the agent's workspace, stage.

A file is written under ``<workspace>/incoming/`` with a sanitised, collision-
safe name and *staged* for its (room, user); the next text turn carries every
staged file as a workspace-relative path. Staging is keyed by the Matrix event,
so a re-run after a crash never stages (or writes) the same file twice.

An encrypted attachment (``file`` in the content, the v2 scheme) is decrypted as it
downloads and its SHA-256 is checked before anything is staged: a mismatch (or an
invalid ``file`` object) is a "could not receive" notice, and nothing is kept.
"""

from __future__ import annotations

import attrs
import structlog
import trio

from matrix_client import Download, MatrixClient, MatrixError, MediaTooLargeError, TransportError
from matrix_client.crypto import AttachmentError, DecryptingChunks
from surfaces.delivery import Notifier
from surfaces.files import relative_to_workspace, sanitize_filename, write_new_file
from surfaces.state import ChatRecord, InboxItem, Store
from surfaces.turns.agent_choice import AgentChoice

log = structlog.get_logger(__name__)

INCOMING_DIR = "incoming"
DOWNLOAD_DEADLINE_S = 300.0


@attrs.define
class IncomingFiles:
    matrix: MatrixClient
    store: Store
    notifier: Notifier
    agents: AgentChoice
    max_file_bytes: int

    async def stage(self, item: InboxItem, chat: ChatRecord) -> None:
        reply_txn = f"{item.event_id}.r"
        payload = item.payload
        name = sanitize_filename(payload.get("name"))
        if await self.store.staged_from(item.event_id) is not None:
            return
        limit = self.max_file_bytes
        declared = payload.get("info", {}).get("size")
        if isinstance(declared, int) and not isinstance(declared, bool) and declared > limit:
            await self.notifier.notice(
                chat.room_id,
                "file_too_large",
                txn_id=reply_txn,
                name=name,
                size=declared,
                limit=limit,
            )
            return
        file = payload.get("file") if isinstance(payload.get("file"), dict) else None
        url = file.get("url") if file is not None else payload.get("url")
        if not isinstance(url, str) or not url.startswith("mxc://"):
            log.warning("file_event_without_url")
            await self.notifier.notice(chat.room_id, "file_failed", txn_id=reply_txn, name=name)
            return
        try:
            with trio.fail_after(DOWNLOAD_DEADLINE_S):
                # Reading stops at limit + 1 bytes: the sender's info.size is a claim.
                if file is None:
                    download = await self.matrix.download(url, max_bytes=limit)
                else:
                    download = await self._download_encrypted(url, file, limit)
        except MediaTooLargeError as exc:
            await self.notifier.notice(
                chat.room_id,
                "file_too_large",
                txn_id=reply_txn,
                name=name,
                size=exc.seen_at_least,
                limit=limit,
            )
            return
        except (MatrixError, TransportError, trio.TooSlowError, AttachmentError) as exc:
            log.warning("file_download_failed", error=repr(exc))
            await self.notifier.notice(chat.room_id, "file_failed", txn_id=reply_txn, name=name)
            return
        data = download.data
        workspace = self.agents.workspace_of(chat).workspace_path
        path = await write_new_file(workspace / INCOMING_DIR, name, data)
        rel = relative_to_workspace(path, workspace)
        mime = payload.get("info", {}).get("mimetype") or download.content_type
        if not isinstance(mime, str):
            mime = "application/octet-stream"
        await self.store.stage_file(
            chat.room_id, chat.owner, rel, path.name, len(data), mime, source_event=item.event_id
        )
        log.info("file_staged", rel_path=rel, size=len(data))
        await self.notifier.notice(
            chat.room_id,
            "file_staged",
            txn_id=reply_txn,
            name=path.name,
            size=len(data),
        )

    async def _download_encrypted(self, url: str, file: dict, limit: int) -> Download:
        """Download and decrypt, chunk by chunk (the hash is checked after the last)."""
        plaintext = bytearray()
        async with self.matrix.download_stream(url, max_bytes=limit) as body:
            async for chunk in DecryptingChunks(body.iter_bytes(), file):
                plaintext += chunk
            return Download(bytes(plaintext), body.content_type)
