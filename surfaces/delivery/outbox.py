"""The outbox: every send that must happen exactly once goes through here.

A send is persisted with its transaction id *before* the first attempt and the
same id is reused on every retry, after a restart too; the homeserver
deduplicates by (device, txn id), so a send whose response was lost is never
doubled. Sends are attempted inline by the room worker that made them (which
keeps a room's messages in order); when the homeserver is down past the
client's retry budget the row stays pending and the replayer task delivers it
later, in order per room. Intermediate stream edits are *not* durable: losing
one is harmless because the final edit, which is durable, carries everything.

An edit may name its target by transaction id (``m.relates_to.event_id`` =
``TXN_REF + txn_id``) when the target's event id is not known yet (its send was
deferred or interrupted); the reference is resolved when the edit is sent, which
is after the target (rows go out in order per room).

While a row is being attempted inline the replayer leaves its room alone, so the
two never race on the same room (order, and doubled retries under 429).

Failures. One classifier decides (``matrix_client.classify_failure``): a *permanent* failure
(an event too large, 4xx) marks the row failed at once, with one log line, and the
room's later rows go on; a *transient* one (5xx, network, 429 past the client's
budget, the send deadline) leaves the row pending and *blocks the room*: its later
sends queue behind it (order), and the replayer retries the room on its own backoff —
``retry_base_s``, doubling per failed round up to ``max_backoff_s`` (60 s), jittered.
Nothing shortcuts a room's backoff: a room worker's sends into a blocked room are
queued without a request, and nudges only tell the replayer that a room was newly
blocked (so it can wait for that room's first retry). So a homeserver outage costs
one request per blocked room per backoff step, not rounds back to back, and a room
is delivered at most ``max_backoff_s`` after the homeserver is back.

In an encrypted room every send goes out as ``m.room.encrypted`` (the ``encryptor``,
``surfaces.session.Crypto``, wired by the app): the event is encrypted at each attempt,
right before it is sent, so a retried send carries a fresh ciphertext under the same
transaction id (the server keeps the first). Stream edits are encrypted the same way;
``m.relates_to`` stays in clear. Redactions are never encrypted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs
import structlog
import trio

from matrix_client import (
    FailureKind,
    MatrixClient,
    UnknownTokenError,
    classify_failure,
    new_txn_id,
)
from surfaces.core import OutboxStatus, SendOutcome
from surfaces.state import OutboxItem, PendingSend, Store

log = structlog.get_logger(__name__)

#: Prefix of an edit target given by transaction id (resolved at send time).
TXN_REF = "txn:"


def _txn_ref(content: dict) -> str | None:
    rel = content.get("m.relates_to")
    if isinstance(rel, dict):
        target = rel.get("event_id")
        if isinstance(target, str) and target.startswith(TXN_REF):
            return target[len(TXN_REF) :]
    return None


class RoomEncryptor(Protocol):
    """What the outbox needs of end-to-end encryption (``surfaces.session.Crypto``)."""

    async def encrypt(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The event type and content to send in ``room_id`` (encrypted if it is)."""
        ...


@attrs.define
class _Backoff:
    """A blocked room: its rows wait for the replayer's next try at ``next_at``."""

    failures: int
    next_at: float


@attrs.define
class Outbox:
    store: Store
    matrix: MatrixClient
    replay_interval_s: float = 5.0  # sweep for pending rows nobody is sending
    send_deadline_s: float = 180.0  # covers the client's own 429/5xx retries
    ephemeral_deadline_s: float = 30.0
    retry_base_s: float = 1.0  # a blocked room's first retry
    max_backoff_s: float = 60.0
    #: Told (room id, when the request started) after each event sent: a sender's own
    #: event marks the room read for it (``ReadReceipts.covered``).
    on_sent: Callable[[str, float], None] | None = None
    _blocked: dict[str, _Backoff] = attrs.field(factory=dict)
    _nudge: trio.Event = attrs.field(factory=trio.Event)
    _inflight: dict[str, int] = attrs.field(factory=dict)  # room -> inline sends running
    #: Encrypts sends to encrypted rooms; ``None`` with ``matrix.encryption: false``.
    encryptor: RoomEncryptor | None = None

    async def send(self, send: PendingSend, *, part: tuple[str, int] | None = None) -> str | None:
        """Persist then send. Returns the event id, or None if it is left for the
        replayer (homeserver unavailable) or failed permanently (logged).

        ``part`` (turn event id, part index): remember the message as that part of
        the turn's reply, in the same transaction that records the send."""
        row = await self.store.enqueue(send)
        if row.status is OutboxStatus.SENT:
            # An earlier attempt (before a crash) already sent it.
            if part is not None and row.event_id is not None:
                await self.store.record_part(part[0], part[1], row.event_id)
            return row.event_id
        return await self._deliver_row(row, part)

    async def deliver(
        self, rows: Iterable[OutboxItem], parts: Mapping[str, tuple[str, int]] | None = None
    ) -> list[str | None]:
        """Send rows that are already persisted (``Store.finish_event`` returns them).

        ``parts`` (txn id → turn event id, part index): rows that are a turn's reply
        messages, remembered as its parts when sent (in the transaction of the sent
        mark), so a later edit or 🔁 finds the reply of an instant turn too."""
        out: list[str | None] = []
        for row in rows:
            if row.status is OutboxStatus.PENDING:
                part = parts.get(row.txn_id) if parts else None
                out.append(await self._deliver_row(row, part))
            else:
                out.append(row.event_id if row.status is OutboxStatus.SENT else None)
        return out

    async def flush(self, sends: Iterable[PendingSend]) -> list[str | None]:
        """Persist (if not yet) and send, in order."""
        out: list[str | None] = []
        for s in sends:
            out.append(await self.send(s))
        return out

    async def _deliver_row(self, row: OutboxItem, part: tuple[str, int] | None) -> str | None:
        if row.status is OutboxStatus.FAILED:
            return None
        self._inflight[row.room_id] = self._inflight.get(row.room_id, 0) + 1
        try:
            event_id, _ = await self._attempt(row, inline=True, part=part)
        finally:
            self._inflight[row.room_id] -= 1
            if not self._inflight[row.room_id]:
                del self._inflight[row.room_id]
        return event_id

    async def send_ephemeral(self, room_id: str, event_type: str, content: dict) -> str | None:
        """A best-effort send (stream edits, typing-time notices): not persisted."""
        if room_id in self._blocked:
            return None
        started = trio.current_time()
        try:
            with trio.fail_after(self.ephemeral_deadline_s):
                event_type, content = await self._encrypted(room_id, event_type, content)
                event_id = await self.matrix.send_event(
                    room_id, event_type, content, txn_id=new_txn_id()
                )
            if self.on_sent is not None:
                self.on_sent(room_id, started)
            return event_id
        except UnknownTokenError:
            raise
        except Exception as exc:  # best effort: whatever the kind, the final edit follows
            log.warning(
                "matrix_send_ephemeral_failed",
                room_id=room_id,
                kind=classify_failure(exc).value,
                error=repr(exc),
            )
            return None

    async def _attempt(
        self, row: OutboxItem, *, inline: bool, part: tuple[str, int] | None = None
    ) -> tuple[str | None, SendOutcome]:
        """One delivery attempt: returns the event id (if sent) and the outcome."""
        if inline and row.room_id in self._blocked:
            # Behind the room's earlier rows, which the replayer sends in order on the
            # room's backoff; no request now (and no nudge: nothing new to retry).
            return None, SendOutcome.DEFERRED
        content = row.content
        ref = _txn_ref(content)
        if ref is not None:
            target = await self.store.sent_event_id(ref)
            if target is None:
                target_row = await self.store.outbox_row(ref)
                if target_row is not None and target_row.status is OutboxStatus.PENDING:
                    self._block(row, RuntimeError(f"edit target {ref} not sent yet"))
                    return None, SendOutcome.DEFERRED
                log.error(
                    "outbox_send_failed_permanently",
                    room_id=row.room_id,
                    txn_id=row.txn_id,
                    kind=FailureKind.PERMANENT.value,
                    reason="edit target failed",
                )
                await self.store.mark_sent(row.txn_id, None, status=OutboxStatus.FAILED)
                return None, SendOutcome.FAILED
            content = {**content, "m.relates_to": {**content["m.relates_to"], "event_id": target}}
        started = trio.current_time()
        try:
            # httpx's timeouts restart on every byte; a server that drips its answer
            # must not hold the room's worker forever. Expiry is transient: the row
            # stays pending and the replayer retries it with the same txn id.
            with trio.fail_after(self.send_deadline_s):
                if row.event_type == "m.room.redaction":
                    event_id = await self.matrix.redact(
                        row.room_id, row.content["redacts"], txn_id=row.txn_id
                    )
                else:
                    event_type, content = await self._encrypted(
                        row.room_id, row.event_type, content
                    )
                    event_id = await self.matrix.send_event(
                        row.room_id, event_type, content, txn_id=row.txn_id
                    )
        except UnknownTokenError:
            raise
        except Exception as exc:
            # One classifier for every Matrix call (matrix_client's): what will not
            # get better by retrying the same request is marked failed at once, so
            # it never holds up the room's later messages.
            if classify_failure(exc) is FailureKind.PERMANENT:
                log.error(
                    "outbox_send_failed_permanently",
                    room_id=row.room_id,
                    txn_id=row.txn_id,
                    kind=FailureKind.PERMANENT.value,
                    status=getattr(exc, "status", None),
                    errcode=getattr(exc, "errcode", None),
                    error=repr(exc),
                )
                await self.store.mark_sent(row.txn_id, None, status=OutboxStatus.FAILED)
                return None, SendOutcome.FAILED
            self._block(row, exc)
            return None, SendOutcome.DEFERRED
        if self.on_sent is not None:
            self.on_sent(row.room_id, started)
        await self.store.mark_sent(row.txn_id, event_id, part=part)
        return event_id, SendOutcome.SENT

    async def _encrypted(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        if self.encryptor is None:
            return event_type, content
        return await self.encryptor.encrypt(room_id, event_type, content)

    def _block(self, row: OutboxItem, exc: BaseException) -> None:
        """The row stays pending: block its room and schedule the room's next try."""
        now = trio.current_time()
        backoff = self._blocked.get(row.room_id)
        fields = {
            "room_id": row.room_id,
            "txn_id": row.txn_id,
            "kind": classify_failure(exc).value,
            "status": getattr(exc, "status", None),
            "errcode": getattr(exc, "errcode", None),
            "error": repr(exc),
        }
        if backoff is None:
            delay = self._delay(1)
            self._blocked[row.room_id] = _Backoff(1, now + delay)
            # Logged once per blocked period; the retries are debug lines.
            log.warning("outbox_send_deferred", retry_in_s=round(delay, 2), **fields)
            self._nudge.set()  # the replayer may be waiting longer than this room's try
        else:
            backoff.failures += 1
            delay = self._delay(backoff.failures)
            backoff.next_at = now + delay
            log.debug(
                "outbox_send_retry_failed",
                failures=backoff.failures,
                retry_in_s=round(delay, 2),
                **fields,
            )

    def _delay(self, failures: int) -> float:
        base = min(self.max_backoff_s, self.retry_base_s * 2 ** (failures - 1))
        return base * random.uniform(0.8, 1.2)

    async def replay(self) -> int:
        """Send every pending row now, in order per room, whatever the rooms' backoff
        (at start-up and shutdown). Returns how many rows remain pending."""
        return await self._replay(due_only=False)

    async def _replay(self, *, due_only: bool) -> int:
        # Which rooms were blocked, and how often, when the round began: only those
        # can be unblocked by it (a room blocked by a room worker meanwhile keeps its
        # backoff, or its next send would overtake the row that just failed).
        before = {room: b.failures for room, b in self._blocked.items()}
        rows = await self.store.pending_outbox()
        now = trio.current_time()
        stuck: set[str] = set()
        tried: set[str] = set()
        waiting: set[str] = set()  # blocked rooms not retried in this round
        for row in rows:
            room = row.room_id
            if room in stuck:
                continue
            backoff = self._blocked.get(room)
            if due_only and backoff is not None and backoff.next_at > now:
                waiting.add(room)
                continue
            if room in self._inflight:
                # A room worker is sending inline (and will finish its own rows in
                # order); retrying the same rows here would only race with it.
                waiting.add(room)
                if backoff is not None:
                    backoff.next_at = max(backoff.next_at, now + self.retry_base_s)
                continue
            tried.add(room)
            _, outcome = await self._attempt(row, inline=False)
            log.debug("outbox_replayed", txn_id=row.txn_id, outcome=outcome)
            if outcome is SendOutcome.DEFERRED:
                stuck.add(room)
        # A room blocked before the round whose rows all went out (or failed for
        # good), or that has no pending row any more, is unblocked.
        for room, failures in before.items():
            backoff = self._blocked.get(room)
            if backoff is None or backoff.failures != failures:
                continue
            if room not in stuck and room not in waiting:
                del self._blocked[room]
                if room in tried:
                    log.info("outbox_room_recovered", room_id=room, failures=failures)
        return await self.store.outbox_count()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The replayer: retries each blocked room when its backoff is due, and sweeps
        for pending rows nobody is sending every ``replay_interval_s``. Runs until
        cancelled; a nudge never makes it retry a room before the room is due."""
        task_status.started()
        sweep_at = trio.current_time() + self.replay_interval_s
        while True:
            wake_at = min([sweep_at, *(b.next_at for b in self._blocked.values())])
            with trio.move_on_at(wake_at):
                await self._nudge.wait()
            self._nudge = trio.Event()
            now = trio.current_time()
            if now >= sweep_at:
                sweep_at = now + self.replay_interval_s
                if not await self.store.outbox_count():
                    continue
            elif not any(b.next_at <= now for b in self._blocked.values()):
                continue  # a nudge: a room was newly blocked; wait for its turn
            remaining = await self._replay(due_only=True)
            log.debug("outbox_replay_round", remaining=remaining, blocked=len(self._blocked))
