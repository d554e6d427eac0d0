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
    AgentFailure,
    ConfirmRequest,
    SendFile,
    TextChunk,
    ToolProgress,
    Turn,
    TurnEnd,
)
from matrix_client import media_content
from surfaces.bot.context import Bot
from surfaces.bot.intake import clean_text
from surfaces.files import (
    MissingFileError,
    OutboundFileError,
    UnsafePathError,
    guess_mime,
    guess_msgtype,
    resolve_agent_path,
)
from surfaces.i18n import human_size
from surfaces.render import PART_BUDGET_BYTES, EditThrottle, progress_line
from surfaces.state import ChatRecord, InboxItem, PendingSend
from surfaces.turns.reply import ReplyStream
from surfaces.turns.typing import TypingLease

log = structlog.get_logger(__name__)

SETTLE_DEADLINE_S = 10.0  # a reply send in flight may finish before the flusher stops

_FAILURE_KEYS = {
    "AGENT_TIMEOUT": "agent_timeout",
    "AGENT_UNAVAILABLE": "agent_unavailable",
    "AGENT_DISCONNECTED": "agent_disconnected",
    "AGENT_PROTOCOL_ERROR": "agent_protocol",
    "AGENT_ERROR": "agent_error",
}


@attrs.define
class ActiveTurn:
    """What other lanes may touch while a turn runs: ``!stop``, ``!yes``/``!no``."""

    room_id: str
    event_id: str
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    turn: Turn | None = None
    confirm_id: str | None = None
    stopped: bool = False


@attrs.define
class TurnRunner:
    bot: Bot
    budget: int = PART_BUDGET_BYTES
    active: dict[str, ActiveTurn] = attrs.field(factory=dict)

    # ---- queries and controls from other lanes --------------------------

    def running(self, room_id: str) -> bool:
        return room_id in self.active

    def awaiting_confirmation(self, room_id: str) -> bool:
        active = self.active.get(room_id)
        return active is not None and active.confirm_id is not None

    def stop(self, room_id: str) -> bool:
        active = self.active.get(room_id)
        if active is None:
            return False
        active.stopped = True
        active.scope.cancel()
        return True

    async def confirm(self, room_id: str, approved: bool) -> bool:
        active = self.active.get(room_id)
        if active is None or active.confirm_id is None or active.turn is None:
            return False
        request_id, active.confirm_id = active.confirm_id, None
        await active.turn.confirm(request_id, approved)
        return True

    # ---- the turn ----------------------------------------------------------

    async def run(self, item: InboxItem, chat: ChatRecord, text: str) -> None:
        bot = self.bot
        spec = await self._agent_for(chat)
        start = await bot.store.begin_turn(item.event_id, chat.room_id, chat.owner)
        attempt, staged = start.attempt, start.staged
        attachments = [f.rel_path for f in staged]
        cfg = bot.config.streaming
        reply = ReplyStream(
            outbox=bot.outbox,
            room_id=chat.room_id,
            turn_key=item.event_id,
            attempt=attempt,
            parts=dict(start.parts),
            throttle=EditThrottle(
                first_edit_after_s=cfg.first_edit_after_s,
                min_interval_s=cfg.min_edit_interval_s,
                max_interval_s=cfg.max_edit_interval_s,
                max_edits=cfg.max_edits_per_message,
                idle_flush_s=cfg.idle_flush_s,
            ),
            budget=self.budget,
            first_message_after_s=cfg.first_message_after_s,
            on_edit=bot.metrics.stream_edit_sent if bot.metrics else None,
        )
        typing = TypingLease(bot.matrix, chat.room_id, cfg.typing_lease_s)
        active = ActiveTurn(chat.room_id, item.event_id)
        self.active[chat.room_id] = active
        metrics = bot.metrics
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
                        async with bot.agents.turn(
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
                                    await self._send_file(
                                        chat,
                                        spec.workspace_path,
                                        event.path,
                                        f"{item.event_id}.f{files_sent}",
                                    )
                                elif isinstance(event, ToolProgress):
                                    reply.set_progress(progress_line(event.kind, event.data))
                                elif isinstance(event, ConfirmRequest):
                                    active.confirm_id = event.id
                                    await bot.notice(
                                        chat.room_id,
                                        "confirm_request",
                                        txn_id=f"{item.event_id}.a{attempt}.c{_short(event.id)}",
                                        text=event.text,
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
                    sends = reply.final_sends(bot.t("shutting_down")) if reply.has_text else []
                    await bot.outbox.flush(sends)
                    log.info("turn_interrupted_by_shutdown", attempt=attempt)
                    if metrics:
                        metrics.turn_finished("cancelled")
            # Cleared on every abnormal path (cancel, a bug): shielded, time-boxed.
            await typing.clear()
            raise
        finally:
            self.active.pop(chat.room_id, None)

        sends: list[PendingSend]
        if failure is not None:
            outcome = f"failed:{failure.code}"
            sends = reply.final_sends(bot.t("interrupted_mark")) if reply.has_text else []
            sends.append(self._failure_notice(chat.room_id, item.event_id, attempt, failure))
            if metrics:
                metrics.agent_failed(failure.code)
        elif active.stopped:
            outcome = "stopped"
            sends = reply.final_sends(bot.t("interrupted_mark")) if reply.has_text else []
        else:
            outcome = "ok"
            sends = reply.final_sends()
        try:
            rows = await bot.store.finish_event(
                item.event_id,
                "done",
                sends,
                unstage=[f.id for f in staged] if outcome == "ok" else (),
            )
            await bot.outbox.deliver(rows)
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
            chars=len(reply.text),
            edits=reply.edits_sent,
            files=files_sent,
        )

    # ---- helpers -----------------------------------------------------------

    async def _agent_for(self, chat: ChatRecord):
        """The chat's agent; a user configured later is switched over here, keeping
        the platform chat id. The default agent is announced once per room."""
        bot = self.bot
        spec, configured = bot.registry.for_user(chat.owner)
        current = bot.registry.get(chat.agent_id)
        if (configured and chat.agent_id != spec.id) or current is None:
            log.info("chat_agent_switched", old=chat.agent_id, new=spec.id)
            chat = attrs.evolve(chat, agent_id=spec.id)
            await bot.store.update_chat(chat.room_id, agent_id=spec.id)
            await bot.write_chat_state(chat)
            current = spec
        single = len(bot.registry.agents) == 1 and not bot.registry.user_agents
        if (
            not configured
            and not single
            and not chat.flags.get("default_agent_notice")
            and await bot.store.set_chat_flag(chat.room_id, "default_agent_notice")
        ):
            await bot.notice(
                chat.room_id,
                "default_agent",
                txn_id=f"default-agent.{chat.room_id}",
                agent=current.label,
            )
        return current

    def _failure_notice(
        self, room_id: str, event_id: str, attempt: int, failure: AgentFailure
    ) -> PendingSend:
        from matrix_client import notice_content

        key = _FAILURE_KEYS.get(failure.code, "turn_failed")
        fields: dict[str, str] = {}
        if failure.code == "AGENT_TIMEOUT":
            fields["phase"] = self.bot.t(f"phase_{failure.phase or 'total'}")
        elif failure.code == "AGENT_ERROR":
            fields["code"] = failure.agent_code or failure.code
        return PendingSend(
            room_id,
            f"{event_id}.a{attempt}.failure",
            "m.room.message",
            notice_content(self.bot.t(key, **fields)),
        )

    async def _send_file(self, chat: ChatRecord, workspace, raw_path: str, txn_id: str) -> None:
        """Upload a file the agent named and post it; a notice when we cannot."""
        bot = self.bot
        shown = clean_text(raw_path)[:300]  # what notices and logs may carry
        if await bot.store.sent_event_id(txn_id):
            return  # posted by an earlier attempt of this turn
        try:
            path = resolve_agent_path(raw_path, workspace)
        except UnsafePathError:
            log.warning("agent_file_unsafe", path=shown)
            await bot.notice(chat.room_id, "file_out_unsafe", txn_id=txn_id, path=shown)
            return
        except MissingFileError:
            log.warning("agent_file_missing", path=shown)
            await bot.notice(chat.room_id, "file_out_missing", txn_id=txn_id, path=shown)
            return
        except OutboundFileError as exc:  # a directory, a device, …
            log.warning("agent_file_rejected", path=shown, reason=exc.reason)
            await bot.notice(chat.room_id, "file_out_unsafe", txn_id=txn_id, path=shown)
            return
        try:
            data = await trio.Path(path).read_bytes()
            mime = guess_mime(path)
            url = await bot.matrix.upload(data, content_type=mime, filename=path.name)
        except Exception as exc:
            log.warning("agent_file_upload_failed", path=shown, error=repr(exc))
            await bot.notice(chat.room_id, "file_out_failed", txn_id=txn_id, path=shown)
            return
        content = media_content(
            guess_msgtype(mime), body=path.name, url=url, mimetype=mime, size=len(data)
        )
        await bot.outbox.send(PendingSend(chat.room_id, txn_id, "m.room.message", content))
        log.info("agent_file_sent", path=shown, size=len(data), size_h=human_size(len(data)))


def _only_cancelled(exc: BaseException) -> bool:
    """True for ``trio.Cancelled`` or a group made only of them."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in exc.exceptions)
    return isinstance(exc, trio.Cancelled)


def _short(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]
