"""An end-to-end-encrypting user on a :class:`~matrix_client.MatrixClient`, for tests
and the demo: our :class:`~matrix_client.crypto.OlmMachine` with its state in memory.

It is the other side of a conversation with an encrypting bot: it uploads its keys,
takes room keys from its ``/sync`` batches, decrypts what it receives and encrypts what
it sends (sharing its room key with every device of the room's members first), and
encrypts and decrypts attachments. Its state is lost when it goes away, which is what
a throwaway test user or demo device wants; a product keeps its machine's state in a
database (the bot: ``surfaces.session``).

Use::

    async with hs.user_client(alice) as client:
        user = await CryptoUser.start(client)
        batch = await syncer.next()
        await user.receive(batch)                    # room keys, device lists, key counts
        plain = user.decrypt(room_id, event)         # the event, decrypted when it can be
        await user.send(room_id, "m.room.message", text_content("hi"))

Every request it makes goes through the client (which bounds and retries it); callers
bound the calls with ``trio.fail_after``. Sends are serialised by one lock, so two tasks
never share the same room key twice at once.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import trio

from .._client import MatrixClient
from .._content import new_txn_id
from .._errors import MatrixError
from .._models import JsonDict, Membership, RoomEvent, SyncBatch, SyncResponse
from .._retry import FailureKind, classify_failure
from ..crypto import (
    MEGOLM_ALGORITHM,
    AttachmentDecryptor,
    DecryptionError,
    EncryptionSettings,
    HistoryVisibility,
    MemoryCryptoStore,
    OlmMachine,
    RoomKeyNotSharedError,
    encrypt_attachment,
)
from ..crypto import Membership as KeyMembership

#: Rounds of ``share_room_key`` before a send gives up (each round is one stage).
MAX_SHARE_ROUNDS = 10
_PICKLE_KEY = b"test-and-demo-only-pickle-key-32"


def now_ms() -> int:
    return int(time.time() * 1000)


def decrypted_event(event: RoomEvent, event_type: str, content: dict[str, Any]) -> RoomEvent:
    """``event`` as its plaintext: the decrypted type and content, the rest unchanged."""
    return attrs.evolve(event, type=event_type, content=content)


@attrs.define(eq=False)
class CryptoUser:
    """One E2EE device of a user (see the module docstring); make it with :meth:`start`."""

    client: MatrixClient
    machine: OlmMachine
    store: MemoryCryptoStore
    #: Rooms known to be encrypted (``m.room.encryption`` content), from sync or state.
    encrypted_rooms: dict[str, dict[str, Any]] = attrs.Factory(dict)
    #: Events that did not decrypt and why (the last ones), for assertion messages.
    failures: list[tuple[str, str]] = attrs.Factory(list)
    _lock: trio.Lock = attrs.Factory(trio.Lock)

    @classmethod
    async def start(cls, client: MatrixClient) -> CryptoUser:
        """A new device identity for the client's logged-in device, keys uploaded."""
        if client.user_id is None or client.device_id is None:
            await client.whoami()
        assert client.user_id is not None
        assert client.device_id is not None
        store = MemoryCryptoStore()
        machine = OlmMachine.create(
            client.user_id, client.device_id, store=store, pickle_key=_PICKLE_KEY
        )
        user = cls(client, machine, store)
        await user.drain()
        return user

    @property
    def user_id(self) -> str:
        return self.machine.user_id

    def _save(self) -> None:
        self.store.save_changes(self.machine.take_changes())

    async def drain(self) -> None:
        """Send every request the machine has waiting (bounded: a few rounds)."""
        async with self._lock:
            await self._drain_locked()

    async def _drain_locked(self) -> None:
        for _ in range(MAX_SHARE_ROUNDS):
            requests = self.machine.outgoing_requests(now_ms=now_ms())
            if not requests:
                return
            await self._send_requests(requests)

    async def _send_requests(self, requests: list[Any]) -> None:
        for request in requests:
            self._save()
            try:
                response = await self.client.send_crypto_request(request)
            except MatrixError as exc:
                if classify_failure(exc) is not FailureKind.PERMANENT:
                    raise
                self.machine.mark_request_failed(request.request_id, now_ms=now_ms())
            else:
                self.machine.mark_request_sent(request.request_id, response)
            self._save()

    async def receive(self, batch: SyncBatch | SyncResponse) -> None:
        """Take a sync batch's (or raw response's) crypto part (to-device events, device
        lists, key counts) and note the rooms it shows to be encrypted; then send what
        that asks for."""
        response = batch.response if isinstance(batch, SyncBatch) else batch
        for room_id, room in response.rooms.join.items():
            for event in (*room.state.events, *room.timeline.events):
                if event.type == "m.room.encryption" and event.state_key == "":
                    self.encrypted_rooms[room_id] = dict(event.content)
        to_device = response.to_device.events
        self.machine.receive_sync_changes(
            [{"type": e.type, "sender": e.sender, "content": e.content} for e in to_device],
            response.device_lists.changed,
            response.device_lists.left,
            response.device_one_time_keys_count,
            response.device_unused_fallback_key_types,
            now_ms=now_ms(),
        )
        self._save()
        await self.drain()

    def decrypt(self, room_id: str, event: RoomEvent) -> RoomEvent:
        """The plaintext of an ``m.room.encrypted`` event; anything else, or what does
        not decrypt (yet), is returned as it is (``failures`` says why)."""
        if event.type != "m.room.encrypted":
            return event
        try:
            decrypted = self.machine.decrypt_room_event(room_id, event.to_json())
        except DecryptionError as exc:
            self.failures = [*self.failures[-99:], (event.event_id, repr(exc))]
            return event
        finally:
            self._save()
        return decrypted_event(event, decrypted.event_type, decrypted.content)

    async def encryption(self, room_id: str) -> dict[str, Any] | None:
        """The room's ``m.room.encryption`` content, or ``None`` when it is not encrypted."""
        if room_id not in self.encrypted_rooms:
            try:
                content = await self.client.get_state_event(room_id, "m.room.encryption")
            except MatrixError as exc:
                if exc.status != 404:
                    raise
                return None
            if not content or content.get("algorithm") != MEGOLM_ALGORITHM:
                return None
            self.encrypted_rooms[room_id] = dict(content)
        return self.encrypted_rooms[room_id]

    async def send(
        self,
        room_id: str,
        event_type: str,
        content: JsonDict,
        *,
        txn_id: str | None = None,
    ) -> str:
        """Send an event, encrypted when the room is (its key shared first)."""
        settings = await self.encryption(room_id)
        if settings is not None:
            event_type, content = await self.encrypt(room_id, event_type, content, settings)
        return await self.client.send_event(
            room_id, event_type, content, txn_id=txn_id or new_txn_id()
        )

    async def encrypt(
        self, room_id: str, event_type: str, content: JsonDict, settings: dict[str, Any]
    ) -> tuple[str, JsonDict]:
        """Share the room key with the joined and invited members' devices, then encrypt."""
        members = {
            m.user_id: KeyMembership(m.membership.value)
            for m in await self.client.room_members(room_id)
            if m.membership in (Membership.JOIN, Membership.INVITE)
        }
        visibility = HistoryVisibility.SHARED
        try:
            state = await self.client.get_state_event(room_id, "m.room.history_visibility")
            visibility = HistoryVisibility.parse((state or {}).get("history_visibility"))
        except MatrixError as exc:
            if exc.status != 404:
                raise
        rules = EncryptionSettings.from_content(settings)
        async with self._lock:
            for _ in range(MAX_SHARE_ROUNDS):
                requests = self.machine.share_room_key(
                    room_id, members, visibility, now_ms(), settings=rules
                )
                if not requests:
                    break
                await self._send_requests(requests)
            try:
                encrypted = self.machine.encrypt_room_event(room_id, event_type, content, now_ms())
            except RoomKeyNotSharedError:
                raise AssertionError(f"the room key of {room_id} did not get shared") from None
            self._save()
        return "m.room.encrypted", encrypted

    async def upload_encrypted(
        self, data: bytes, *, content_type: str, filename: str
    ) -> dict[str, Any]:
        """Encrypt ``data`` (attachment v2), upload the ciphertext: the ``file`` object."""
        ciphertext, encryptor = encrypt_attachment(data)
        url = await self.client.upload(
            ciphertext, content_type="application/octet-stream", filename=filename
        )
        return encryptor.file_object(url)

    async def download_decrypted(self, file: dict[str, Any], *, max_bytes: int) -> bytes:
        """Download an encrypted attachment and decrypt it, its SHA-256 checked."""
        decryptor = AttachmentDecryptor(file)
        parts = []
        async with self.client.download_stream(file["url"], max_bytes=max_bytes) as body:
            async for chunk in body.iter_bytes():
                parts.append(decryptor.update(chunk))
        parts.append(decryptor.finalize())
        return b"".join(parts)
