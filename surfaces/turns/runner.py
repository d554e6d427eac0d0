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
from matrix_client import MatrixClient
from surfaces.config import StreamingConfig
from surfaces.core import ItemStatus
from surfaces.delivery import Notifier, Outbox, TypingLease
from surfaces.i18n import Texts
from surfaces.metrics import Metrics
from surfaces.render import PART_BUDGET_BYTES, clip, progress_line
from surfaces.state import ChatRecord, InboxItem, PendingSend, Store
from surfaces.turns.active import ActiveTurns
from surfaces.turns.agent_choice import AgentChoice
from surfaces.turns.outgoing_files import OutgoingFiles
from surfaces.turns.reply import ReplyStream, edit_throttle

log = structlog.get_logger(__name__)

SETTLE_DEADLINE_S = 10.0  # a reply send in flight may finish before the flusher stops
#: The agent's fields in the bot's notices are cut to these first (``… (truncated)``),
#: then the notice itself is fitted to its events (``Notifier``).
MAX_QUESTION_CHARS = 16_000
MAX_AGENT_CODE_CHARS = 200

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
    active: ActiveTurns = attrs.field(factory=ActiveTurns)
    metrics: Metrics | None = None
    budget: int = PART_BUDGET_BYTES

    # ---- the turn ----------------------------------------------------------

    async def run(self, item: InboxItem, chat: ChatRecord, text: str) -> None:
        spec = await self.choice.for_chat(chat)
        start = await self.store.begin_turn(item.event_id, chat.room_id, chat.owner)
        attempt, staged = start.attempt, start.staged
        attachments = [f.rel_path for f in staged]
        cfg = self.streaming
        metrics = self.metrics
        reply = ReplyStream(
            outbox=self.outbox,
            room_id=chat.room_id,
            turn_key=item.event_id,
            attempt=attempt,
            parts=dict(start.parts),
            throttle=edit_throttle(cfg),
            budget=self.budget,
            first_message_after_s=cfg.first_message_after_s,
            on_edit=metrics.stream_edit_sent if metrics else None,
            max_chars=cfg.max_reply_chars,
            truncated_mark=self.texts("reply_truncated", limit=cfg.max_reply_chars),
        )
        typing = TypingLease(self.matrix, chat.room_id, cfg.typing_lease_s)
        active = self.active.start(chat.room_id, item.event_id)
        started = time.monotonic()
        first_text_at: float | None = None
        failure: AgentFailure | None = None
        files_sent = 0
        log.debug(
            "turn_started",
            platform_chat_id=chat.platform_chat_id,
            agent_id=spec.id,
            attempt=attempt,
            attachments=len(attachments),
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
                            spec.base_url, chat.platform_chat_id, text, attachments
                        ) as turn:
                            active.turn = turn
                            async for event in turn:
                                if isinstance(event, TextChunk):
                                    if first_text_at is None:
                                        first_text_at = time.monotonic()
                                        if metrics:
                                            metrics.agent_first_text(first_text_at - started)
                                    reply.append(event.text)
                                elif isinstance(event, SendFile):
                                    files_sent += 1
                                    await self.files_out.send(
                                        chat,
                                        spec.workspace_path,
                                        event.path,
                                        f"{item.event_id}.f{files_sent}",
                                    )
                                elif isinstance(event, ToolProgress):
                                    reply.set_progress(progress_line(event.kind, event.data))
                                elif isinstance(event, ConfirmRequest):
                                    active.confirm_id = event.id
                                    await self.notifier.notice(
                                        chat.room_id,
                                        "confirm_request",
                                        txn_id=f"{item.event_id}.a{attempt}.c{_short(event.id)}",
                                        text=self._clip(event.text, MAX_QUESTION_CHARS),
                                    )
                                elif isinstance(event, TurnEnd):
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
                        metrics.turn_finished("cancelled")
            # Cleared on every abnormal path (cancel, a bug): shielded, time-boxed.
            await typing.clear()
            raise
        finally:
            self.active.end(active)

        sends: list[PendingSend]
        if failure is not None:
            outcome = f"failed:{failure.code}"
            sends = await reply.finish(self.texts("interrupted_mark")) if reply.has_text else []
            sends.append(self._failure_notice(chat.room_id, item.event_id, attempt, failure))
            if metrics:
                metrics.agent_failed(failure.code)
        elif active.stopped:
            outcome = "stopped"
            sends = await reply.finish(self.texts("interrupted_mark")) if reply.has_text else []
        else:
            outcome = "ok"
            sends = await reply.finish()
        try:
            rows = await self.store.finish_event(
                item.event_id,
                ItemStatus.DONE,
                sends,
                unstage=[f.id for f in staged] if outcome == "ok" else (),
            )
            await self.outbox.deliver(rows)
        finally:
            # After the final text: the user sees the answer one round trip sooner.
            await typing.clear()
        total = time.monotonic() - started
        if metrics:
            metrics.turn_finished(
                {"ok": "ok", "stopped": "cancelled"}.get(outcome, "failed"), total
            )
        log.info(
            "turn_finished",
            outcome=outcome,
            seconds=round(total, 3),
            chars=reply.chars,
            dropped_chars=reply.dropped,
            edits=reply.edits_sent,
            files=files_sent,
        )

    # ---- helpers -----------------------------------------------------------

    def _failure_notice(
        self, room_id: str, event_id: str, attempt: int, failure: AgentFailure
    ) -> PendingSend:
        key = _FAILURE_KEYS.get(failure.code, "turn_failed")
        fields: dict[str, str] = {}
        if failure.code == "AGENT_TIMEOUT":
            fields["phase"] = self.texts(f"phase_{failure.phase or 'total'}")
        elif failure.code == "AGENT_ERROR":
            fields["code"] = self._clip(failure.agent_code or failure.code, MAX_AGENT_CODE_CHARS)
        return self.notifier.pending(
            room_id, self.texts(key, **fields), txn_id=f"{event_id}.a{attempt}.failure"
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
