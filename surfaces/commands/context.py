"""``!context``, ``!save``, ``!snapshots``, ``!load``, ``!restore``, ``!forget``: the
chat's transcript (issue 15 §3; docs/commands.md "Context").

The transcript is written by the turns themselves (``surfaces.turns.transcript``);
these commands read it, copy it into named snapshots (per owner: a snapshot saved in
one chat loads in any other of the same user, never another user's), and *prime* an
agent with it: ``!load``/``!restore`` give the conversation a new platform chat id
(``ChatCommands.rotate``, idempotent per command) and run one turn on the room's
lane whose whole text is the primer (``surfaces.turns.primer``) — through the same
``TurnRunner`` as every turn, so a crash re-runs it into the same reply. The primer
is not added to the transcript. ``!load`` makes the snapshot the chat's transcript
(the agent's new conversation is the snapshot's); ``!restore`` leaves it as it is.
"""

from __future__ import annotations

import enum
import re
import time
import unicodedata

import attrs
import structlog

from surfaces.config import ContextConfig
from surfaces.i18n import Texts
from surfaces.metrics import Metrics
from surfaces.state import SnapshotSaved, Store, TranscriptBounds, TranscriptEntry
from surfaces.turns import TurnRequest, TurnRunner, primer_text
from surfaces.workspaces import Threads

from ._invocation import Invocation
from .chats import ChatCommands

log = structlog.get_logger(__name__)


class PrimerKind(enum.StrEnum):
    """Why a transcript primer is sent (also its kv key prefix and metric label)."""

    LOAD = "load"  # !load <name>: a snapshot into a fresh conversation
    RESTORE = "restore"  # !restore: the chat's own transcript, after the agent forgot


#: ``!context`` shows this many exchanges, each side on one line cut to this length.
CONTEXT_SHOWN = 10
CONTEXT_LINE_CHARS = 300
#: Snapshot names: a letter or digit, then letters, digits, ``-``, ``_``, ``.``.
MAX_SNAPSHOT_NAME = 40
_NAME = re.compile(rf"^[^\W_][\w.-]{{0,{MAX_SNAPSHOT_NAME - 1}}}$")


def snapshot_name(raw: str) -> str | None:
    """The canonical snapshot name (NFC, lower case), or None if ``raw`` is not one."""
    name = unicodedata.normalize("NFC", raw.strip()).casefold()
    return name if _NAME.fullmatch(name) else None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= CONTEXT_LINE_CHARS else flat[: CONTEXT_LINE_CHARS - 1] + "…"


@attrs.define
class ContextCommands:
    store: Store
    chats: ChatCommands
    runner: TurnRunner
    threads: Threads
    texts: Texts
    config: ContextConfig = attrs.Factory(ContextConfig)
    metrics: Metrics | None = None

    @property
    def bounds(self) -> TranscriptBounds:
        c = self.config
        return TranscriptBounds(c.transcript_max_entries, c.transcript_max_bytes)

    def _conversation(self, call: Invocation) -> str:
        thread = call.item.thread
        return thread if thread is not None and self.threads.own_context(thread) else ""

    # ---- reading ---------------------------------------------------------------

    async def context(self, call: Invocation) -> None:
        room, conv = call.chat.room_id, self._conversation(call)
        entries = await self.store.transcript(room, conv)
        if not entries:
            await call.reply("context_empty")
            return
        shown = entries[-CONTEXT_SHOWN:]
        lines = [self.texts("context_header", n=len(shown), total=len(entries))]
        for e in shown:
            if e.user_text:
                lines.append(self.texts("context_you", text=_one_line(e.user_text)))
            names = [*e.files_in, *e.files_out]
            if names:
                lines.append(self.texts("context_files", names=_one_line(", ".join(names))))
            lines.append(self.texts("context_agent", text=_one_line(e.agent_text) or "—"))
        await call.reply.text("\n".join(lines))

    async def snapshots(self, call: Invocation) -> None:
        snaps = await self.store.snapshots_of(call.chat.owner)
        if not snaps:
            await call.reply("snapshots_empty")
            return
        local = {c.room_id: c.local_id for c in await self.store.chats_of(call.chat.owner)}
        lines = [self.texts("snapshots_header")]
        for s in snaps:
            date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(s.created_at))
            lines.append(
                self.texts(
                    "snapshots_line", name=s.name, n=s.count, date=date,
                    chat=local.get(s.room_id, "—"),
                )
            )  # fmt: skip
        await call.reply.text("\n".join(lines))

    # ---- writing ---------------------------------------------------------------

    async def save(self, call: Invocation) -> None:
        chat = call.chat
        if call.cmd.args:
            name = snapshot_name(call.cmd.args)
            if name is None:
                log.info("snapshot_name_refused", length=len(call.cmd.args))
                await call.reply("save_bad_name", limit=MAX_SNAPSHOT_NAME)
                return
        else:
            name = await self._default_name(call)
        entries = await self.store.transcript(chat.room_id, self._conversation(call))
        if not entries:
            await call.reply("save_empty")
            return
        saved = await self.store.save_snapshot(
            chat.owner, name, chat.room_id, entries, max_per_owner=self.config.max_snapshots
        )
        log.info("snapshot_saved", outcome=str(saved), entries=len(entries))
        if saved is SnapshotSaved.LIMIT:
            await call.reply("snapshots_limit", limit=self.config.max_snapshots)
        elif saved is SnapshotSaved.REPLACED:
            await call.reply("saved_replaced", name=name, n=len(entries))
        else:
            await call.reply("saved", name=name, n=len(entries))

    async def _default_name(self, call: Invocation) -> str:
        """Date and time (UTC) of the first run of this command: kept per event, so a
        re-run after a crash saves under the same name."""
        key = f"save.{call.item.event_id}"
        name = await self.store.get_value(key)
        if name is None:
            name = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
            await self.store.set_value(key, name)
        return name

    async def forget(self, call: Invocation) -> None:
        room = call.chat.room_id
        entries, snapshots = await self.store.forget_context(
            room, key=f"forget.{call.item.event_id}"
        )
        log.info("chat_context_forgotten", entries=entries, snapshots=snapshots)
        if not entries and not snapshots:
            await call.reply("forgot_nothing")
        else:
            await call.reply("forgot", entries=entries, snapshots=snapshots)

    # ---- priming ---------------------------------------------------------------

    async def load(self, call: Invocation) -> None:
        if not call.cmd.args:
            await call.reply("load_usage")
            return
        name = snapshot_name(call.cmd.args)
        snap = None if name is None else await self.store.snapshot(call.chat.owner, name)
        if snap is None or not snap.entries:
            shown = name or call.cmd.args[:MAX_SNAPSHOT_NAME]
            await call.reply("load_unknown", name=shown)
            return
        await self._prime(call, list(snap.entries), PrimerKind.LOAD, name=snap.name)

    async def restore(self, call: Invocation) -> None:
        entries = await self.store.transcript(call.chat.room_id, self._conversation(call))
        if not entries:
            await call.reply("restore_empty")
            return
        await self._prime(call, entries, PrimerKind.RESTORE)

    async def _prime(
        self, call: Invocation, entries: list[TranscriptEntry], kind: PrimerKind, name: str = ""
    ) -> None:
        primer = primer_text(entries, max_chars=self.config.primer_max_chars)
        new_id = await self.chats.rotate(call, kind)
        chat = await self.store.get_chat(call.chat.room_id) or call.chat
        if kind is PrimerKind.LOAD:
            await self.store.replace_transcript(
                chat.room_id, self._conversation(call), entries, self.bounds
            )
        omitted = self.texts("primer_omitted", omitted=primer.omitted) if primer.omitted else ""
        key = "context_loaded" if kind is PrimerKind.LOAD else "context_restored"
        await call.reply(key, name=name, n=primer.included, omitted=omitted)
        log.info(
            "context_priming", kind=kind, included=primer.included, omitted=primer.omitted,
            chars=len(primer.text), platform_chat_id=new_id,
        )  # fmt: skip
        if self.metrics:
            self.metrics.context_primed(kind)
        await self.runner.run(TurnRequest(call.item, chat, new_id, primer=primer.text))
