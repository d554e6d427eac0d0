"""Files from users: download, check, store in the agent's workspace, stage.

A file is written under ``<workspace>/incoming/`` with a sanitised, collision-
safe name and *staged* for its (room, user); the next text turn carries every
staged file as a workspace-relative path. Staging is keyed by the Matrix event,
so a re-run after a crash never stages (or writes) the same file twice.

Everything about the file is input (issue 13 §4): the sender's ``info.size`` is a
claim checked early but never relied on — the download stops at the limit + 1
byte and is written to disk as it arrives, so memory holds a chunk, never the
body; the workspace belongs to the agent, so the file is created through a
verified directory fd (``surfaces.files.store_incoming``). Every way this can
fail ends in a notice naming the file and the item is done: a download that
failed in transport is "send it again", a file that cannot be stored is "tell the
administrator" — neither is retried as a poison event that writes another copy.

At most ``max_staged`` files wait per (room, user): a file past that is refused before
it is downloaded, with one notice while the set stays the same (its txn id names the
oldest staged file, so the outbox sends it once; the next turn consumes the set and a
later overflow gets its own notice).

An encrypted attachment (``file`` in the content, the v2 scheme) is decrypted chunk
by chunk on its way to disk and its SHA-256 is checked after the last chunk, before
anything is staged: a mismatch (or an invalid ``file`` object) removes the partial
file and is a "could not receive" notice.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import structlog
import trio

from matrix_client import MatrixClient, MatrixError, MediaTooLargeError, TransportError
from matrix_client.crypto import AttachmentError, DecryptingChunks
from surfaces.delivery import Notifier, answer_relation
from surfaces.files import IncomingFileError, delete_incoming, sanitize_filename, store_incoming
from surfaces.state import ChatRecord, InboxItem, StagedFile, Store
from surfaces.turns.agent_choice import AgentChoice

log = structlog.get_logger(__name__)

DOWNLOAD_DEADLINE_S = 300.0
#: kv key: the incoming/ path an unfinished download writes (removed after a crash).
PARTIAL_KEY = "incoming.partial.{event_id}"


@attrs.define
class IncomingFiles:
    matrix: MatrixClient
    store: Store
    notifier: Notifier
    agents: AgentChoice
    max_file_bytes: int
    max_staged: int = 50

    async def stage(
        self, item: InboxItem, chat: ChatRecord, *, announce: bool = True
    ) -> StagedFile | None:
        """Stage the file of ``item`` (once per event); None when it was refused (the
        user is told why). ``announce=False``: no "got it" notice — the file goes to
        the agent in the turn being prepared (a caption, a merged burst)."""
        reply_txn = f"{item.event_id}.r"
        payload = item.payload
        name = sanitize_filename(payload.get("name"))
        staged = await self.store.staged_from(item.event_id)
        if staged is not None:
            return staged
        relation = answer_relation(item)
        waiting = await self.store.staged(chat.room_id, chat.owner)
        if len(waiting) >= self.max_staged:
            log.info("stage_full", staged=len(waiting))
            await self.notifier.notice(
                chat.room_id,
                "files_limit",
                txn_id=f"stagefull.{waiting[0].id}",
                relation=relation,
                limit=self.max_staged,
                name=name,
            )
            return None
        limit = self.max_file_bytes
        info = payload.get("info") if isinstance(payload.get("info"), dict) else {}
        declared = info.get("size")
        if isinstance(declared, int) and not isinstance(declared, bool) and declared > limit:
            await self._too_large(chat, reply_txn, name, declared, relation)
            return None
        file = payload.get("file") if isinstance(payload.get("file"), dict) else None
        url = file.get("url") if file is not None else payload.get("url")
        if not isinstance(url, str) or not url.startswith("mxc://"):
            log.warning("file_event_without_url")
            await self._failed(chat, reply_txn, name, relation)
            return None
        workspace = self.agents.workspace_of(chat).workspace_path
        partial_key = PARTIAL_KEY.format(event_id=item.event_id)
        await self._discard_partial(workspace, partial_key)

        async def claimed(stored_name: str) -> None:
            await self.store.set_value(partial_key, f"incoming/{stored_name}")

        content_type: str | None = None
        try:
            with trio.fail_after(DOWNLOAD_DEADLINE_S):
                async with self.matrix.download_stream(url, max_bytes=limit) as body:
                    content_type = body.content_type
                    chunks = body if file is None else DecryptingChunks(body, file)
                    stored = await store_incoming(workspace, name, chunks, claimed=claimed)
        except MediaTooLargeError as exc:
            await self.store.delete_value(partial_key)
            await self._too_large(chat, reply_txn, name, exc.seen_at_least, relation)
            return None
        except (MatrixError, TransportError, trio.TooSlowError, ValueError, AttachmentError) as exc:
            # ValueError: an mxc:// URI the client cannot parse. AttachmentError: an
            # encrypted file whose hash (or ``file`` object) is wrong.
            await self.store.delete_value(partial_key)
            log.warning("file_download_failed", error=repr(exc))
            await self._failed(chat, reply_txn, name, relation)
            return None
        except IncomingFileError as exc:
            await self.store.delete_value(partial_key)
            log.error("file_store_failed", reason=exc.reason, workspace=str(workspace))
            await self.notifier.notice(
                chat.room_id, "file_store_failed", txn_id=reply_txn, relation=relation, name=name
            )
            return None
        mime = info.get("mimetype") or content_type
        if not isinstance(mime, str):
            mime = "application/octet-stream"
        staged = await self.store.stage_file(
            chat.room_id,
            chat.owner,
            stored.rel_path,
            stored.name,
            stored.size,
            mime,
            source_event=item.event_id,
            workspace=str(workspace),
        )
        await self.store.delete_value(partial_key)
        log.info("file_staged", rel_path=stored.rel_path, size=stored.size)
        if announce:
            await self.notifier.notice(
                chat.room_id,
                "file_staged",
                txn_id=reply_txn,
                relation=relation,
                name=stored.name,
                size=stored.size,
            )
        return staged

    async def _too_large(
        self, chat: ChatRecord, txn_id: str, name: str, size: int, relation: dict | None
    ) -> None:
        limit = self.max_file_bytes
        await self.notifier.notice(
            chat.room_id,
            "file_too_large",
            txn_id=txn_id,
            relation=relation,
            name=name,
            size=size,
            limit=limit,
        )

    async def _failed(
        self, chat: ChatRecord, txn_id: str, name: str, relation: dict | None
    ) -> None:
        await self.notifier.notice(
            chat.room_id, "file_failed", txn_id=txn_id, relation=relation, name=name
        )

    async def _discard_partial(self, workspace: Path, key: str) -> None:
        """A download this event started before a crash left a partial file: remove it
        (the re-run writes the whole file again)."""
        partial = await self.store.get_value(key)
        if partial is not None:
            removed = await trio.to_thread.run_sync(delete_incoming, workspace, partial)
            log.info("file_partial_removed", rel_path=partial, removed=removed)
            await self.store.delete_value(key)
