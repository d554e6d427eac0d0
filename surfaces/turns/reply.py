"""The reply streamer: one agent reply rendered into Matrix messages and edits.

The first text becomes a message once ``first_message_after_s`` (0.1 s) has
passed or the turn ended, whichever is first, so text that follows at once joins
it (an instant agent that streams its answer in 100 chunks costs one message, not
a message and an edit a round trip later); later text is applied as ``m.replace``
edits on the schedule of :class:`surfaces.render.EditThrottle`; the final edit
(always sent, never throttled) carries the full text. A reply larger than one
event continues in further messages (``ReplySplitter`` decides the parts, and
earlier parts stop changing once the text has grown past them).

Exactly-once: each part's *message* is sent through the outbox with the txn id
``{turn}.p{i}``, the same in every attempt of the turn, so a re-run after a crash
finds (or, via homeserver deduplication, gets back) the same message and edits
it instead of posting a second reply. Intermediate edits are best-effort; the
final sends are returned by :meth:`final_sends` for the caller to commit together
with marking the event done.

A part whose message send did not come back with an event id (cancelled at the
end of the turn while it waited out a 429, or deferred because the homeserver
was down) is still "the message with txn id ``{turn}.p{i}``" and its outbox row
holds the *first* text of that part, not the final one: re-sending the same txn
id can never change it. So :meth:`resolve_parts` asks for that event id again
(the homeserver deduplicates), and when it is still unknown :meth:`final_sends`
adds an edit that refers to the part by txn id (``TXN_REF``), which the outbox
resolves once the part's message is sent.

Bounded work and memory. The text is split by a :class:`surfaces.render.ReplySplitter`:
finished parts are kept and only the tail is split again, and the flusher takes new
text in steps with a checkpoint between them, so a reply of millions of characters
(or one 1 MiB frame) never holds the event loop for more than a step — every other
room keeps its latency. At most ``max_chars`` characters are kept (the
``streaming.max_reply_chars`` setting): what the agent sends past that is read and
dropped (the turn still runs to its END, so files and questions after the text still
arrive and the agent's own conversation stays whole), and the reply ends with ``…``
and ``truncated_mark``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs
import structlog
import trio

from matrix_client import MAX_EVENT_BYTES, edit_content, event_size, text_content
from surfaces.config import StreamingConfig
from surfaces.core import clean_text
from surfaces.delivery import TXN_REF, Outbox
from surfaces.render import MAX_CHAR_COST, EditThrottle, ReplySplitter, render_markdown
from surfaces.state import PendingSend

log = structlog.get_logger(__name__)


def message_content(body: str) -> dict:
    """A reply message with sanitised HTML when Markdown adds anything (and fits)."""
    content = text_content(body, html=render_markdown(body))
    if event_size("m.room.message", content) > MAX_EVENT_BYTES:
        content = text_content(body)
    return content


def edit_of(event_id: str, body: str) -> dict:
    content = edit_content(event_id, body, html=render_markdown(body))
    if event_size("m.room.message", content) > MAX_EVENT_BYTES:
        content = edit_content(event_id, body)
    return content


def edit_throttle(cfg: StreamingConfig) -> EditThrottle:
    """The edit schedule the ``streaming`` settings describe."""
    return EditThrottle(
        first_edit_after_s=cfg.first_edit_after_s,
        min_interval_s=cfg.min_edit_interval_s,
        max_interval_s=cfg.max_edit_interval_s,
        max_edits=cfg.max_edits_per_message,
        idle_flush_s=cfg.idle_flush_s,
    )


def _set_event() -> trio.Event:
    event = trio.Event()
    event.set()
    return event


@attrs.define
class ReplyStream:
    """Accumulates the agent's text and keeps the room's messages in step with it."""

    outbox: Outbox  # tests pass a fake with the same two methods
    room_id: str
    turn_key: str
    attempt: int
    parts: dict[int, str]  # part index -> message event id (also from earlier attempts)
    throttle: EditThrottle
    budget: int
    #: The reply's first message waits this long after the first text (or for the
    #: end of the turn, whichever is first) so text that follows at once joins it.
    first_message_after_s: float = 0.0
    on_edit: Callable[[], None] | None = None
    #: Characters kept at most (``streaming.max_reply_chars``); the rest is dropped.
    max_chars: int = 100_000
    #: Shown after ``…`` at the end of a reply cut at ``max_chars``.
    truncated_mark: str = "(truncated)"
    progress: str | None = None
    edits_sent: int = 0
    chars: int = 0  # characters kept
    dropped: int = 0  # characters received past ``max_chars``
    _splitter: ReplySplitter = attrs.field(init=False)
    _has_text: bool = False
    _shown: dict[int, str] = attrs.field(factory=dict)
    _queued_body: dict[int, str] = attrs.field(factory=dict)  # first text queued per part
    _attempted: set[int] = attrs.field(factory=set)  # part messages sent or tried
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _no_send: trio.Event = attrs.field(factory=_set_event)  # set: no send in flight
    _edit_seq: int = 0
    _gathered: bool = False  # the first message has had its window
    _throttled: bool = False  # the flusher waits for the edit throttle

    def __attrs_post_init__(self) -> None:
        self._splitter = ReplySplitter(self.budget)

    # ---- feeding (called by the turn loop; never blocks) ------------------

    def append(self, chunk: str) -> None:
        """Add the agent's text: constant work per chunk beyond copying it (the
        flusher splits it, in steps)."""
        if not chunk:
            return
        if self.truncated:
            self.dropped += len(chunk)
            return
        room = self.max_chars - self.chars
        if len(chunk) > room:
            self.dropped += len(chunk) - room
            chunk = chunk[:room]
        chunk = clean_text(chunk)  # lone surrogates could never be sent as JSON/UTF-8
        self.chars += len(chunk)
        self._splitter.feed(chunk)
        if not self._has_text and chunk and not chunk.isspace():
            self._has_text = True
        if self.dropped:
            self._splitter.feed(f"…\n\n{self.truncated_mark}")
            log.info("reply_truncated", kept_chars=self.chars)
        self.progress = None
        self.throttle.frame_received(trio.current_time())
        if self._throttled and self.chars * MAX_CHAR_COST <= self.budget:
            # The flusher waits for the throttle, and a frame only ever moves that
            # time later; with text this short no new message can be needed (a new
            # message is never throttled), so waking it per chunk would be wasted.
            return
        self._wake.set()

    def set_progress(self, line: str) -> None:
        """Show tool progress briefly (it never becomes part of the final text)."""
        self.progress = line
        self.throttle.frame_received(trio.current_time())
        self._wake.set()

    @property
    def has_text(self) -> bool:
        return self._has_text

    @property
    def truncated(self) -> bool:
        """Whether the agent sent more than ``max_chars`` (the rest was dropped)."""
        return self.dropped > 0

    def _display(self) -> list[str]:
        if self.progress:
            return self._splitter.parts_with(self.progress)
        return self._splitter.parts()

    async def _take_in(self) -> None:
        """Split the text received since the last look, one bounded step at a time,
        letting every other task run between steps."""
        while self._splitter.step():
            await trio.lowlevel.checkpoint()

    # ---- the flusher task --------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the room up to date until cancelled (the turn ends)."""
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while True:
                await self._take_in()
                display = self._display()
                if not display or not self._stale(display):
                    break
                if any(self.parts.get(i) is None for i in range(len(display))):
                    if not self._gathered and not self.parts and self.first_message_after_s:
                        # The reply's first message: gather what follows at once. An
                        # agent that answers in many chunks within the window (or
                        # ends the turn in it: the runner then cancels us and the
                        # final sends carry the text) costs one message, no edit.
                        self._gathered = True
                        await trio.sleep(self.first_message_after_s)
                        continue
                    await self._send_now(display)  # a new message is never throttled
                    self.throttle.message_sent(trio.current_time())
                    break
                due = self.throttle.due_at(1)
                if due is None:
                    break  # edit cap reached: only the final edit remains
                if trio.current_time() >= due:
                    await self._send_now(display)
                    self.throttle.record_edit(trio.current_time())
                    break
                self._throttled = True
                try:
                    with trio.move_on_at(due):
                        await self._wake.wait()
                        self._wake = trio.Event()
                finally:
                    self._throttled = False

    async def _send_now(self, display: list[str]) -> None:
        self._no_send = trio.Event()
        try:
            await self._sync_parts(display)
        finally:
            self._no_send.set()

    async def settle(self) -> None:
        """Wait for a send in flight to finish, so the turn can stop the flusher
        without cutting a request in half (which would cost a second send of the
        same message and a round trip before the final text)."""
        await self._no_send.wait()

    def _stale(self, display: list[str]) -> bool:
        return any(self._shown.get(i) != part for i, part in enumerate(display))

    async def _sync_parts(self, display: list[str]) -> None:
        for i, body in enumerate(display):
            if self._shown.get(i) == body:
                continue
            event_id = self.parts.get(i)
            if event_id is None:
                if i not in self._attempted and self.attempt == 1:
                    # The outbox keeps the *first* content queued under a txn id
                    # (INSERT OR IGNORE, and the homeserver deduplicates the txn),
                    # so that is what the room shows once the message exists.
                    self._queued_body[i] = body
                self._attempted.add(i)
                event_id = await self.outbox.send(
                    PendingSend(
                        self.room_id,
                        f"{self.turn_key}.p{i}",
                        "m.room.message",
                        message_content(body),
                    ),
                    part=(self.turn_key, i),
                )
                if event_id is None:
                    return  # homeserver unavailable: the final sends will carry it
                self.parts[i] = event_id
                shown = self._queued_body.get(i)
                if shown != body:
                    # The message went out with older text (queued before a deferral
                    # or by an earlier attempt): what it shows is not ``body``.
                    if shown is None:
                        self._shown.pop(i, None)
                    else:
                        self._shown[i] = shown
                    continue
            else:
                self._edit_seq += 1
                sent = await self.outbox.send_ephemeral(
                    self.room_id, "m.room.message", edit_of(event_id, body)
                )
                if sent is None:
                    return
                self.edits_sent += 1
                if self.on_edit is not None:
                    self.on_edit()
            self._shown[i] = body

    # ---- the end -----------------------------------------------------------

    def _part_send(self, i: int, body: str) -> PendingSend:
        return PendingSend(
            self.room_id, f"{self.turn_key}.p{i}", "m.room.message", message_content(body)
        )

    async def resolve_parts(self) -> None:
        """Learn the event ids of part messages whose send did not report one (the
        flusher was cancelled mid-send, or the send was deferred). Call after the
        flusher stopped and before :meth:`final_sends` (it also takes in the text the
        flusher had not split yet, in steps, so ``final_sends`` has little to do)."""
        await self._take_in()
        display = self._splitter.parts()
        for i in sorted(self._attempted - self.parts.keys()):
            body = display[i] if i < len(display) else ""
            event_id = await self.outbox.send(  # the row exists: its content is kept
                self._part_send(i, body), part=(self.turn_key, i)
            )
            if event_id is None:
                continue
            self.parts[i] = event_id

    def final_sends(self, suffix: str | None = None) -> list[PendingSend]:
        """The sends that make the room show the complete reply (plus ``suffix``,
        e.g. an "interrupted" mark). Commit them with the inbox event, then send.
        On the event loop prefer :meth:`finish`, which does the same in steps."""
        return [send for group in self._final_groups(suffix) for send in group]

    async def finish(self, suffix: str | None = None) -> list[PendingSend]:
        """:meth:`final_sends`, with a checkpoint after each part (building a part's
        content renders its Markdown: a long reply has hundreds of parts)."""
        await self._take_in()
        sends: list[PendingSend] = []
        for group in self._final_groups(suffix):
            sends.extend(group)
            if group:
                await trio.lowlevel.checkpoint()
        return sends

    def _final_groups(self, suffix: str | None) -> Iterator[list[PendingSend]]:
        """The final sends, one list per part (empty when the part is shown already)."""
        if not self._has_text:
            final: list[str] = []
        elif suffix:
            final = self._splitter.parts_with(suffix)
        else:
            final = self._splitter.parts()
        for i, body in enumerate(final):
            group: list[PendingSend] = []
            event_id = self.parts.get(i)
            if event_id is None:
                group.append(self._part_send(i, body))
                if i in self._attempted or self.attempt > 1:
                    # The message may exist (or be queued) with older text: edit it
                    # by reference once it is sent (see the module docstring).
                    group.append(
                        PendingSend(
                            self.room_id,
                            f"{self.turn_key}.a{self.attempt}.p{i}.final",
                            "m.room.message",
                            edit_of(f"{TXN_REF}{self.turn_key}.p{i}", body),
                        )
                    )
            elif self._shown.get(i) != body:
                group.append(
                    PendingSend(
                        self.room_id,
                        f"{self.turn_key}.a{self.attempt}.p{i}.final",
                        "m.room.message",
                        edit_of(event_id, body),
                    )
                )
            yield group
        # Parts left over from a longer earlier attempt are removed.
        yield [
            PendingSend(
                self.room_id,
                f"{self.turn_key}.a{self.attempt}.p{i}.redact",
                "m.room.redaction",
                {"redacts": event_id},
            )
            for i, event_id in sorted(self.parts.items())
            if i >= len(final)
        ]
