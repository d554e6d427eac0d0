"""One conversation turn: the user's text (and staged files) to the agent, the
agent's reply streamed back into the room.

The data flow (see docs/architecture.md):

    inbox event ─► resolve agent ─► begin_turn (attempt n, known reply parts)
        ─► agent turn (WebSocket) ─► ReplyStream (message + throttled edits)
                                 ├─► files out (upload, media message)
                                 └─► confirmation question (``!yes``/``!no``)
        ─► final sends + inbox "done", one transaction ─► outbox delivers them

Every ending goes through ``_finish``: success, ``!stop``, an agent failure and
a shutdown all leave the room with one reply that says what happened, and the
room usable. Only a shutdown leaves the event pending, so the restarted bot
answers it (editing the same reply message, see ``ReplyStream``).
"""

from __future__ import annotations

import hashlib
import time

import attrs
import structlog
import trio

from agent_client import (
    AgentClient,
    AgentFailure,
    ConfirmRequest,
    SendFile,
    TextChunk,
    ToolProgress,
    TurnEnd,
)
from matrix_client import MatrixClient, MatrixError, TransportError
from surfaces.config import ContextConfig, StreamingConfig
from surfaces.core import MAX_BODY_CHARS, ItemKind, ItemStatus, thread_relation
from surfaces.delivery import Notifier, Outbox, TypingLease, answer_relation
from surfaces.i18n import Texts
from surfaces.metrics import Metrics
from surfaces.render import (
    PART_BUDGET_BYTES,
    clip,
    latest_content,
    message_text,
    progress_line,
)
from surfaces.state import (
    ChatRecord,
    Followers,
    InboxItem,
    PendingSend,
    StagedFile,
    Store,
    TurnMessage,
    TurnRecord,
)
from surfaces.turns.active import ActiveTurn, ActiveTurns
from surfaces.turns.agent_choice import AgentChoice
from surfaces.turns.agent_presence import AgentPresenceHook
from surfaces.turns.agent_restarts import AgentRestarts
from surfaces.turns.outgoing_files import OutgoingFiles
from surfaces.turns.prompt import (
    MAX_PROMPT_CHARS,
    MAX_QUOTE_CHARS,
    PromptMessage,
    Quote,
    prompt_text,
)
from surfaces.turns.reply import ReplyStream, edit_throttle
from surfaces.turns.staging import IncomingFiles
from surfaces.turns.transcript import TurnNotes, conversation_of, transcript_write
from surfaces.turns.usage_budget import UsageGate

log = structlog.get_logger(__name__)

SETTLE_DEADLINE_S = 10.0  # a reply send in flight may finish before the flusher stops
#: The agent's fields in the bot's notices are cut to these first (``… (truncated)``),
#: then the notice itself is fitted to its events (``Notifier``).
MAX_QUESTION_CHARS = 16_000
MAX_AGENT_CODE_CHARS = 200
QUOTE_DEADLINE_S = 5.0  # fetching the replied-to message; past it, no quote
#: The agent's answer to a transcript primer is shown cut to this (a short reply).
PRIMER_REPLY_CHARS = 600
#: What merges into a turn: texts and files (a command keeps its place in the queue).
_MERGEABLE = frozenset({ItemKind.TEXT, ItemKind.FILE})
#: (event id, text, replied-to event id, file path) of one message of a turn.
_Message = tuple[str, str, str | None, str | None]


@attrs.frozen
class TurnRequest:
    """One turn to run: the item it runs for, the chat, the agent conversation (the
    room's platform chat id, or its thread's), and for a re-run (an edit, 🔁) the
    earlier turn to answer again into its own reply."""

    item: InboxItem
    chat: ChatRecord
    platform_chat_id: str
    rerun: TurnRecord | None = None
    merge_max: int = 1  # take up to this many messages (the item included)
    #: A transcript primer (``!load``/``!restore``): sent as the turn's whole text; the
    #: turn takes no queued messages or files, is not re-runnable, adds nothing to the
    #: transcript, and its answer is shown short.
    primer: str | None = None


def _words(item: InboxItem) -> str:
    value = item.payload.get("body") or item.payload.get("caption") or ""
    return value if isinstance(value, str) else ""


_FAILURE_KEYS = {
    "AGENT_TIMEOUT": "agent_timeout",
    "AGENT_UNAVAILABLE": "agent_unavailable",
    "AGENT_DISCONNECTED": "agent_disconnected",
    "AGENT_PROTOCOL_ERROR": "agent_protocol",
    "AGENT_ERROR": "agent_error",
}


@attrs.define
class TurnRunner:
    """Runs turns; gets exactly the services a turn uses (no bag of everything)."""

    store: Store
    outbox: Outbox
    notifier: Notifier
    matrix: MatrixClient  # the typing lease
    agents: AgentClient
    choice: AgentChoice
    files_out: OutgoingFiles
    streaming: StreamingConfig
    texts: Texts
    files_in: IncomingFiles
    active: ActiveTurns = attrs.field(factory=ActiveTurns)
    metrics: Metrics | None = None
    budget: int = PART_BUDGET_BYTES
    #: Tokens per turn and the monthly budget (``usage_budget``); None: not counted.
    usage: UsageGate | None = None
    context: ContextConfig = attrs.Factory(ContextConfig)
    #: The agent's presence: waits for an offline agent, learns from the outcome.
    presence: AgentPresenceHook | None = None
    restarts: AgentRestarts = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.restarts = AgentRestarts(self.store, self.notifier, self.texts, self.metrics)

    # ---- the turn ----------------------------------------------------------

    async def run(self, request: TurnRequest) -> int:
        """Run one turn; returns how many inbox items it finished (the item and the
        queued messages merged into it), all in the transaction of its final sends."""
        item, chat = request.item, request.chat
        rerun = request.rerun
        key = rerun.turn_id if rerun is not None else item.event_id
        thread = rerun.thread_root if rerun is not None else item.thread
        room_id = chat.room_id
        # Registered before anything is taken from the queue, so a redaction or an
        # edit of any message this turn takes finds it here (``ActiveTurn.concerns``).
        active = self.active.start(room_id, key, thread)
        active.messages.add(item.event_id)
        if rerun is not None:
            active.messages.update(m.event_id for m in rerun.messages)
        try:
            return await self._run(request, active, key, thread)
        finally:
            self.active.end(active)

    def _followers(self, request: TurnRequest, thread: str | None) -> Followers | None:
        """Which queued messages this turn takes along (a burst merged, bounded)."""
        if request.rerun is not None or request.primer is not None or request.merge_max <= 1:
            return None
        item, owner = request.item, request.chat.owner
        chars = len(_words(item))

        def accept(other: InboxItem) -> bool:
            nonlocal chars
            if other.kind not in _MERGEABLE or other.sender != owner or other.thread != thread:
                return False
            chars += len(_words(other))
            return chars <= MAX_PROMPT_CHARS

        return Followers(item.lane, item.seq, request.merge_max - 1, accept)

    async def _run(
        self, request: TurnRequest, active: ActiveTurn, key: str, thread: str | None
    ) -> int:
        item, chat, rerun, primer = request.item, request.chat, request.rerun, request.primer
        spec = await self.choice.for_chat(chat)
        if self.presence is not None and not await self.presence.ready(spec.id, item, active):
            return 0  # stopped while waiting for the agent: the lane marks the item done
        gate = self.usage
        month = gate.month(chat.owner) if gate is not None else None
        start = await self.store.begin_turn(
            key, chat.room_id, chat.owner, self._followers(request, thread), month=month
        )
        followers = start.followers
        allowance = gate.state(chat.owner, month, start.month_tokens) if gate else None
        if gate is not None and allowance is not None and allowance.spent:
            also = [f.event_id for f in followers]
            return await gate.refuse(item, chat, spec.id, allowance, also)
        active.messages.update(f.event_id for f in followers)
        attempt = start.attempt
        staged = list(start.staged) if rerun is None and primer is None else []
        if primer is not None:
            messages: list[_Message] = [(item.event_id, primer, None, None)]
            attachments: list[str] = []
        elif rerun is not None:
            messages = [(m.event_id, m.text, m.reply_to, None) for m in rerun.messages]
            attachments = list(rerun.attachments)
        else:
            messages, staged = await self._gather(chat, [item, *followers], staged)
            attachments = [f.rel_path for f in staged]
        record = TurnRecord(
            turn_id=key,
            room_id=chat.room_id,
            thread_root=thread,
            messages=tuple(TurnMessage(m[0], m[1], m[2]) for m in messages),
            attachments=tuple(attachments),
        )
        text = prompt_text(
            [PromptMessage(m[1], await self._quote(chat, m[2]), m[3]) for m in messages]
        )
        relation = thread_relation(thread, messages[-1][0]) if thread else None
        cfg = self.streaming
        metrics = self.metrics
        reply = ReplyStream(
            outbox=self.outbox,
            room_id=chat.room_id,
            turn_key=key,
            attempt=attempt,
            parts=dict(start.parts),
            throttle=edit_throttle(cfg),
            budget=self.budget,
            first_message_after_s=cfg.first_message_after_s,
            on_edit=metrics.stream_edit_sent if metrics else None,
            max_chars=cfg.max_reply_chars if primer is None else PRIMER_REPLY_CHARS,
            truncated_mark=self.texts("reply_truncated", limit=cfg.max_reply_chars),
            relation=relation,
        )
        active.reply_parts = reply.parts
        typing = TypingLease(self.matrix, chat.room_id, cfg.typing_lease_s)
        started = time.monotonic()
        first_text_at: float | None = None
        failure: AgentFailure | None = None
        tokens: int | None = None  # the agent's count, once its END arrived
        files_sent = 0
        notes = TurnNotes(self.context.entry_max_chars)
        boot_id: str | None = None
        log.debug(
            "turn_started",
            platform_chat_id=request.platform_chat_id,
            agent_id=spec.id,
            attempt=attempt,
            attachments=len(attachments),
            merged=len(followers),
            rerun=rerun is not None,
        )
        if metrics:
            metrics.turn_started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(typing.keep)
                nursery.start_soon(reply.run)  # no scheduling round before the agent connect
                with active.scope:
                    try:
                        async with self.agents.turn(
                            spec.base_url, request.platform_chat_id, text, attachments
                        ) as turn:
                            active.turn = turn
                            boot_id = turn.boot_id
                            async for event in turn:
                                if isinstance(event, TextChunk):
                                    notes.text(event.text)
                                    if first_text_at is None:
                                        first_text_at = time.monotonic()
                                        if metrics:
                                            metrics.agent_first_text(first_text_at - started)
                                    reply.append(event.text)
                                elif isinstance(event, SendFile):
                                    files_sent += 1
                                    notes.file(event.path)
                                    await self.files_out.send(
                                        chat,
                                        spec.workspace_path,
                                        event.path,
                                        # A re-run's files are its own (a crash
                                        # re-run of it finds them by this id).
                                        f"{item.event_id}.f{files_sent}",
                                    )
                                elif isinstance(event, ToolProgress):
                                    reply.set_progress(progress_line(event.kind, event.data))
                                elif isinstance(event, ConfirmRequest):
                                    active.confirm_id = event.id
                                    active.confirm_event = await self.notifier.notice(
                                        chat.room_id,
                                        "confirm_request",
                                        txn_id=f"{key}.a{attempt}.c{_short(event.id)}",
                                        relation=relation,
                                        text=self._clip(event.text, MAX_QUESTION_CHARS),
                                    )
                                elif isinstance(event, TurnEnd):
                                    tokens = event.tokens_used
                                    break
                    except AgentFailure as exc:
                        failure = exc
                with trio.move_on_after(SETTLE_DEADLINE_S):
                    await reply.settle()
                nursery.cancel_scope.cancel()
            await reply.resolve_parts()
        except BaseException as exc:
            # Shutdown (or the lane was cancelled): finalize what the user sees as
            # interrupted, keep the event pending so the restarted bot answers it.
            # The cancellation arrives wrapped in an ExceptionGroup when it passes
            # through the turn's nursery (strict exception groups), so a plain
            # ``except trio.Cancelled`` would never run this.
            if _only_cancelled(exc):
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await reply.resolve_parts()
                    sends = (
                        await reply.finish(self.texts("shutting_down")) if reply.has_text else []
                    )
                    await self.outbox.flush(sends)
                    log.info("turn_interrupted_by_shutdown", attempt=attempt)
                    if metrics:
                        metrics.turn_finished("cancelled", agent=spec.id)
            # Cleared on every abnormal path (cancel, a bug): shielded, time-boxed.
            await typing.clear()
            raise
        finally:
            self.active.end(active)
        finished = [f.event_id for f in followers]
        if self.presence is not None:
            self.presence.observe(spec.id, failure, stopped=active.stopped)

        sends: list[PendingSend]
        if failure is not None:
            outcome = f"failed:{failure.code}"
            sends = await reply.finish(self.texts("interrupted_mark")) if reply.has_text else []
            sends.append(self._failure_notice(chat.room_id, key, attempt, failure, relation))
            if metrics:
                metrics.agent_failed(failure.code)
        elif active.stopped:
            outcome = "stopped"
            sends = await reply.finish(self.texts("interrupted_mark")) if reply.has_text else []
        else:
            outcome = "ok"
            sends = await reply.finish()
        usage = (
            gate.usage(item, chat, spec.id, request.platform_chat_id, tokens)
            if gate is not None
            else None
        )
        transcript = None
        if primer is None and (outcome == "ok" or reply.has_text):
            transcript = transcript_write(
                self.context,
                turn_id=key,
                chat=chat,
                conversation=conversation_of(chat, thread, request.platform_chat_id),
                words=(m[1] for m in messages),
                files_in=[f.name for f in staged] if rerun is None else attachments,
                notes=notes,
            )
        values = await self.restarts.seen(
            chat,
            boot_id,
            event_id=item.event_id,
            relation=relation,
            sends=sends,
            priming=primer is not None,
        )
        try:
            rows = await self.store.finish_event(
                item.event_id,
                ItemStatus.DONE,
                sends,
                unstage=[f.id for f in staged] if outcome == "ok" else (),
                also=finished,
                record=record if primer is None else None,
                usage=usage,
                warning=gate.warning(allowance, usage) if gate and usage else None,
                transcript=transcript,
                values=values,
            )
            if gate is not None and usage is not None:
                gate.counted(spec.id, usage)
            if boot_id is not None:
                self.restarts.remember(chat.room_id, boot_id)
            await self.outbox.deliver(rows, parts=reply.part_txns())
        finally:
            # After the final text: the user sees the answer one round trip sooner.
            await typing.clear()
        total = time.monotonic() - started
        if metrics:
            metrics.turn_finished(
                {"ok": "ok", "stopped": "cancelled"}.get(outcome, "failed"), total, agent=spec.id
            )
        log.info(
            "turn_finished",
            outcome=outcome,
            seconds=round(total, 3),
            chars=reply.chars,
            dropped_chars=reply.dropped,
            edits=reply.edits_sent,
            files=files_sent,
            tokens=usage.tokens if usage is not None else tokens,
        )
        return 1 + len(finished)

    # ---- preparing the prompt ------------------------------------------------

    async def _gather(
        self, chat: ChatRecord, items: list[InboxItem], staged: list[StagedFile]
    ) -> tuple[list[_Message], list[StagedFile]]:
        """The turn's messages in order (files staged on the way, without a "got it"
        notice: they go to the agent now) and every file the turn carries."""
        messages: list[_Message] = []
        known = {f.id for f in staged}
        for queued in items:
            payload = queued.payload
            if payload.get("truncated"):
                await self.notifier.notice(
                    chat.room_id,
                    "message_truncated",
                    txn_id=f"{queued.event_id}.t",
                    relation=answer_relation(queued),
                    limit=MAX_BODY_CHARS,
                )
            reply_to = payload.get("reply_to") if isinstance(payload.get("reply_to"), str) else None
            if queued.kind is ItemKind.FILE:
                file = await self.files_in.stage(queued, chat, announce=False)
                if file is not None and file.id not in known:
                    known.add(file.id)
                    staged.append(file)
                caption = payload.get("caption") or ""
                if caption or file is not None:
                    messages.append(
                        (queued.event_id, caption, reply_to, file.rel_path if file else None)
                    )
            else:
                messages.append((queued.event_id, payload.get("body", ""), reply_to, None))
        if not messages:
            messages.append((items[0].event_id, "", None, None))
        return messages, staged

    async def _quote(self, chat: ChatRecord, event_id: str | None) -> Quote | None:
        """The replied-to message, as the agent is shown it (bounded; None when it
        cannot be fetched in time: the turn goes on without it)."""
        if event_id is None:
            return None
        event = None
        with trio.move_on_after(QUOTE_DEADLINE_S):
            try:
                event = await self.matrix.get_event(chat.room_id, event_id)
            except (MatrixError, TransportError) as exc:
                log.info("quote_unavailable", quoted=event_id, error=repr(exc))
        if event is None:
            return None
        content = latest_content(event.content, event.unsigned)
        text = message_text(content, is_reply=True)[: MAX_QUOTE_CHARS * 2]
        if not text.strip():
            return None
        sender = event.sender
        if sender == chat.owner:
            sender = "you"
        elif sender == self.matrix.user_id:
            sender = "assistant"
        return Quote(sender, text)

    # ---- helpers -----------------------------------------------------------

    def _failure_notice(
        self,
        room_id: str,
        event_id: str,
        attempt: int,
        failure: AgentFailure,
        relation: dict | None,
    ) -> PendingSend:
        key = _FAILURE_KEYS.get(failure.code, "turn_failed")
        fields: dict[str, str] = {}
        if failure.code == "AGENT_TIMEOUT":
            fields["phase"] = self.texts(f"phase_{failure.phase or 'total'}")
        elif failure.code == "AGENT_ERROR":
            fields["code"] = self._clip(failure.agent_code or failure.code, MAX_AGENT_CODE_CHARS)
        return self.notifier.pending(
            room_id,
            self.texts(key, **fields),
            txn_id=f"{event_id}.a{attempt}.failure",
            relation=relation,
        )

    def _clip(self, text: str, max_chars: int) -> str:
        return clip(text, max_chars, self.texts("truncated"))


def _only_cancelled(exc: BaseException) -> bool:
    """True for ``trio.Cancelled`` or a group made only of them."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in exc.exceptions)
    return isinstance(exc, trio.Cancelled)


def _short(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]
