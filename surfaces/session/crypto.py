"""The bot's end-to-end encryption at work: the crypto machine, saved, fed and drained.

:class:`Crypto` wraps one :class:`~matrix_client.crypto.OlmMachine` (the bot's device
identity, opened by ``surfaces.session.identity``) and is the one place the bot talks
to it. The rules it keeps (docs/architecture.md, "End-to-end encryption"):

* **Saved before anything leaves.** Every request the machine hands out is committed
  (``Store.save_crypto``) before it is sent, and so is the outbound session's message
  count before an encrypted event goes out — a crash after the send then re-sends the
  same request (same body, same transaction id) and never reuses a message index.
  Taking changes and committing them happen under one lock (:meth:`transaction`), so a
  task whose changes another task took waits until they are on disk.
* **A sync batch is one transaction.** :meth:`receive` feeds the batch's to-device
  events (room keys), device-list changes and key counts to the machine in memory; the
  sync task then decrypts the timeline and commits the machine's changes together with
  the inbox items and the since-token (:meth:`transaction` + ``Store.admit``). A crash
  before the commit leaves the token where it was: the server sends the to-device
  events again and the machine, reloaded from the store, processes them again.
* **One sender of requests at a time.** Key queries, claims, uploads and to-device
  messages go out under one lock, from the request task (:meth:`run`, woken after every
  batch and every 30 s) or from a send that has to share the room key first.
* **A failed commit reloads the machine** from the store, as a restart would, so memory
  never runs ahead of the disk.

Time for the machine (rotation periods, claim retries) is wall-clock milliseconds.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio

from matrix_client import (
    MAX_EVENT_BYTES,
    FailureKind,
    MatrixClient,
    RoomEvent,
    SyncBatch,
    TransportError,
    UnknownTokenError,
    classify_failure,
    event_size,
)
from matrix_client.crypto import (
    Changes,
    CryptoStore,
    DecryptionError,
    MissingSessionError,
    OlmMachine,
    OutgoingRequest,
    ReplayError,
    RequestKind,
    RoomKeyNotSharedError,
    WarningKind,
)
from surfaces.session.room_state import RoomCrypto, RoomStates
from surfaces.state import Store

log = structlog.get_logger(__name__)

#: One crypto request, the client's own retries included.
REQUEST_DEADLINE_S = 60.0
#: Rounds of ``share_room_key`` (query, claim, send) before a send gives up for now.
MAX_SHARE_ROUNDS = 8
#: Rounds of ``outgoing_requests`` per flush (a claim may lead to a dummy message …).
MAX_FLUSH_ROUNDS = 8
#: The request task looks for work at least this often (dirty device lists, unwedging).
FLUSH_INTERVAL_S = 30.0
MAX_FLUSH_BACKOFF_S = 60.0
ROOM_KEY_TYPES = frozenset({"m.room_key", "m.forwarded_room_key"})
ENCRYPTED = "m.room.encrypted"


def wall_ms() -> int:
    return int(time.time() * 1000)


class Decrypted(enum.Enum):
    """How decrypting one room event ended."""

    PLAINTEXT = "plaintext"
    #: We hold no key for it (yet): a key request went out; keep the event waiting.
    MISSING_KEY = "missing_key"
    #: It will never decrypt (corrupt, forged, unknown algorithm …): tell the user.
    UNREADABLE = "unreadable"
    #: A message index used before by another event: drop it without a word.
    REPLAYED = "replayed"


@attrs.frozen
class Decryption:
    outcome: Decrypted
    #: The plaintext event (same id, sender, ``m.relates_to``) or the encrypted one.
    event: RoomEvent
    session_id: str | None = None
    reason: str | None = None


@attrs.define(eq=False)
class Crypto:
    matrix: MatrixClient
    store: Store
    machine: OlmMachine
    crypto_store: CryptoStore
    pickle_key: bytes = attrs.field(repr=False)
    rooms: RoomStates
    clock: Callable[[], int] = wall_ms
    _save_lock: trio.Lock = attrs.Factory(trio.Lock)
    _io_lock: trio.Lock = attrs.Factory(trio.Lock)
    _wake: trio.Event = attrs.Factory(trio.Event)

    @property
    def device_id(self) -> str:
        return self.machine.device_id

    # ---- persistence -------------------------------------------------------------

    async def save(self) -> None:
        """Commit what the machine changed (waits for a commit of changes another task
        took, so on return this task's changes are on disk)."""
        async with self.transaction() as take:
            changes = take()
            if not changes.is_empty:
                await self.store.save_crypto(changes)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Callable[[], Changes]]:
        """Exclusive use of the machine's unsaved changes: inside the block, ``take()``
        hands them out to be committed in the caller's transaction (within the same
        block). Nobody else takes or commits changes meanwhile, so what the block does
        to the machine and commits is one unit; if the block raises after taking, the
        machine is reloaded from the store (memory must never run ahead of the disk).
        What is not taken stays for the next commit."""
        async with self._save_lock:
            taken: list[Changes] = []

            def take() -> Changes:
                changes = self.machine.take_changes()
                taken.append(changes)
                return changes

            try:
                yield take
            except BaseException:
                if any(not changes.is_empty for changes in taken):
                    self._reload()
                raise

    def _reload(self) -> None:
        log.warning("crypto_reloaded_after_failed_commit")
        self.machine = OlmMachine.load(
            self.crypto_store,
            pickle_key=self.pickle_key,
            user_id=self.machine.user_id,
            device_id=self.machine.device_id,
        )

    # ---- requests ----------------------------------------------------------------

    def wake(self) -> None:
        """Ask the request task to look for work now (never blocks)."""
        self._wake.set()

    async def flush(self) -> None:
        """Send every request the machine has waiting (uploads, queries, claims, then
        to-device), each saved before it goes out."""
        async with self._io_lock:
            for _ in range(MAX_FLUSH_ROUNDS):
                requests = self.machine.outgoing_requests(now_ms=self.clock())
                if not requests:
                    return
                await self._send(requests)

    async def _send(self, requests: Iterable[OutgoingRequest]) -> None:
        """Send requests (the io lock held); a refused one is marked failed and dropped,
        a transient failure ends the round (the caller retries later, same request)."""
        await self.save()
        for request in requests:
            try:
                with trio.fail_after(REQUEST_DEADLINE_S):
                    response = await self.matrix.send_crypto_request(request)
            except UnknownTokenError:
                raise
            except Exception as exc:
                if classify_failure(exc) is not FailureKind.PERMANENT:
                    raise
                log.warning(
                    "crypto_request_refused",
                    kind=request.kind.value,
                    status=getattr(exc, "status", None),
                    errcode=getattr(exc, "errcode", None),
                )
                if request.kind is RequestKind.KEYS_UPLOAD:
                    # Other keys under our key ids: this database is older than the
                    # device (copied by hand, not restored from `surfaces backup`).
                    log.error(
                        "crypto_keys_upload_refused",
                        error=str(exc),
                        fix="stop the bot, move surfaces.db* aside and start it: it comes "
                        "back as a new device (docs/operations.md, 'A lost database')",
                    )
                self.machine.mark_request_failed(request.request_id, now_ms=self.clock())
            else:
                self.machine.mark_request_sent(request.request_id, response)
            await self.save()
        self._note_warnings()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The request task: flush when woken (after each sync batch) or every
        ``FLUSH_INTERVAL_S``; transient failures back off (jittered, capped)."""
        task_status.started()
        failures = 0
        while True:
            if failures:  # backing off: a wake-up does not cut it short
                await trio.sleep(min(MAX_FLUSH_BACKOFF_S, 2.0**failures) * random.uniform(0.8, 1.2))
            else:
                with trio.move_on_after(FLUSH_INTERVAL_S):
                    await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self.flush()
            except UnknownTokenError:
                raise
            except Exception as exc:
                if classify_failure(exc) is FailureKind.FATAL:
                    raise
                failures += 1
                log.warning("crypto_requests_deferred", attempt=failures, error=repr(exc))
            else:
                failures = 0

    def _note_warnings(self) -> None:
        """Drain the machine's warnings (each was logged); a known device whose keys
        changed is the one an operator must hear about (trust on first use)."""
        for warning in self.machine.drain_warnings():
            if warning.kind is WarningKind.DEVICE_KEYS_CHANGED:
                log.warning(
                    "crypto_device_keys_changed_refused",
                    user_id=warning.user_id,
                    device_id=warning.device_id,
                    hint="the device gets no room keys until it is a new device id",
                )

    # ---- sync in -----------------------------------------------------------------

    def receive(self, batch: SyncBatch) -> set[tuple[str, str]]:
        """Feed one batch's crypto part to the machine (in memory; the caller commits
        it with the batch). Returns the (room id, session id) of room keys that came."""
        decrypted = self.machine.receive_sync_changes(
            [{"type": e.type, "sender": e.sender, "content": e.content} for e in batch.to_device],
            batch.device_lists.changed,
            batch.device_lists.left,
            batch.device_one_time_keys_count or None,
            batch.device_unused_fallback_key_types,
            now_ms=self.clock(),
        )
        self.rooms.observe(batch)
        self._note_warnings()
        settled = set()
        for event in decrypted:
            room_id, session_id = event.content.get("room_id"), event.content.get("session_id")
            if event.event_type not in ROOM_KEY_TYPES:
                continue
            if isinstance(room_id, str) and isinstance(session_id, str):
                settled.add((room_id, session_id))
        if decrypted:
            log.debug("crypto_to_device_received", events=len(decrypted), room_keys=len(settled))
        return settled

    def decrypt(self, room_id: str, event: RoomEvent) -> Decryption:
        """Decrypt an ``m.room.encrypted`` room event (a missing key is requested)."""
        try:
            plain = self.machine.decrypt_room_event(room_id, event.to_json())
        except MissingSessionError as exc:
            self.machine.request_room_key(
                room_id,
                exc.session_id,
                sender=exc.sender,
                sender_key=exc.sender_key,
                sender_device_id=exc.device_id,
            )
            return Decryption(Decrypted.MISSING_KEY, event, exc.session_id, "missing_key")
        except ReplayError:
            log.warning("crypto_replay_dropped", room_id=room_id, event_id=event.event_id)
            return Decryption(Decrypted.REPLAYED, event, reason="replayed")
        except DecryptionError as exc:
            log.warning(
                "crypto_event_unreadable",
                room_id=room_id,
                event_id=event.event_id,
                reason=type(exc).__name__,
            )
            return Decryption(Decrypted.UNREADABLE, event, reason=type(exc).__name__)
        content: dict[str, Any] = plain.content
        return Decryption(
            Decrypted.PLAINTEXT,
            attrs.evolve(event, type=plain.event_type, content=content),
            plain.session_id,
        )

    def give_up(self, room_id: str, session_id: str) -> None:
        """Stop asking for a key (its events waited long enough)."""
        self.machine.cancel_room_key_request(room_id, session_id)

    # ---- sending -------------------------------------------------------------------

    async def is_encrypted(self, room_id: str) -> bool:
        return await self.rooms.is_encrypted(room_id)

    async def encrypt(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The event to send in ``room_id``: as it is in an unencrypted room; in an
        encrypted one ``m.room.encrypted`` (the room key shared first with every device
        of the joined and invited members, rotated as the machine's rules say).

        Raises a transient :class:`TransportError` when the key could not be shared in
        a few rounds (the outbox retries the send later, same transaction id).
        """
        room = await self.rooms.get(room_id)
        if not room.encrypted:
            return event_type, content
        for _ in range(2):
            requests = self.machine.share_room_key(
                room_id, room.members, room.history_visibility, self.clock(), room.settings
            )
            if requests:
                async with self._io_lock:
                    await self._share(room_id, room)
            try:
                encrypted = self.machine.encrypt_room_event(
                    room_id, event_type, content, self.clock()
                )
                if event_size(ENCRYPTED, encrypted) > MAX_EVENT_BYTES:
                    encrypted = self._smaller(room_id, event_type, content, encrypted)
            except RoomKeyNotSharedError:
                continue  # rotated (or expired) between sharing and encrypting
            await self.save()  # the message index, before the event can leave
            return ENCRYPTED, encrypted
        raise TransportError(f"the room key of {room_id} could not be shared")

    def _smaller(
        self, room_id: str, event_type: str, content: dict[str, Any], encrypted: dict[str, Any]
    ) -> dict[str, Any]:
        """The ciphertext is a third larger than the plaintext (base64), so a reply part
        sized for a plain room can outgrow the event limit once encrypted: send it
        without its HTML, as ``turns/reply.py`` does for one too large in clear (the
        text alone always fits: the split budget leaves room for both)."""
        plain = _without_html(content)
        if plain is content:
            return encrypted  # nothing to drop: the send reports the size
        log.info("crypto_event_sent_without_html", room_id=room_id)
        return self.machine.encrypt_room_event(room_id, event_type, plain, self.clock())

    async def _share(self, room_id: str, room: RoomCrypto) -> None:
        for _ in range(MAX_SHARE_ROUNDS):
            requests = self.machine.share_room_key(
                room_id, room.members, room.history_visibility, self.clock(), room.settings
            )
            if not requests:
                return
            await self._send(requests)
        raise TransportError(f"sharing the room key of {room_id} did not settle")


def _without_html(content: dict[str, Any]) -> dict[str, Any]:
    """``content`` without ``formatted_body`` (in ``m.new_content`` too), or ``content``
    itself when it has none."""
    html_keys = ("format", "formatted_body")
    new = content.get("m.new_content")
    has_html = any(k in content for k in html_keys) or (
        isinstance(new, dict) and any(k in new for k in html_keys)
    )
    if not has_html:
        return content
    out = {k: v for k, v in content.items() if k not in html_keys}
    if isinstance(new, dict):
        out["m.new_content"] = {k: v for k, v in new.items() if k not in html_keys}
    return out
