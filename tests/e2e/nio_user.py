"""An independent E2EE Matrix user for the e2e tests: matrix-nio, driven from trio.

The bot's encryption is ours; to test it, the user on the other side must not share
its code. nio is a complete client with its own Olm/Megolm state machine (on
vodozemac), its own device tracking and its own encrypted attachments, so what it
decrypts was encrypted the way the spec says, and what it sends is what Element
would send.

nio runs on asyncio (aiohttp) and our tests on trio, so each :class:`NioUser` owns a
daemon thread with its own asyncio loop, where its ``AsyncClient`` lives and where
all its state is touched. Trio awaits the loop's futures without a worker thread
(the future's completion wakes the trio task through its token); cancelling the trio
side cancels the asyncio task. Every call is bounded (``CALL_BOUND_S``, callers use
tighter ``trio.fail_after``), and leaving :meth:`NioUser.login`'s context closes the
client, cancels what is left on the loop and joins the thread, also when cancelled.

Use::

    async with NioUser.login(hs.base_url, alice.user_id, alice.password,
                             device_id="ALICE1", store_dir=tmp_path / "alice") as a:
        room = await a.create_room(invite=[bob_id])         # m.megolm.v1.aes-sha2
        await a.wait_joined(room, bob_id)
        await a.send_text(room, "hi")
        reply = await a.wait_message(room, sender=bob_id)    # decrypted; reply.encrypted

Trust is on first use: every device nio learns about is marked verified when it is
first seen, and sends also ignore unverified devices, so a bot's fresh device gets
the room keys without a verification dance.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)
from nio.crypto import decrypt_attachment
from nio.exceptions import EncryptionError

T = TypeVar("T")

#: Backstop for one call into the nio thread (a wait for a message is one call).
CALL_BOUND_S = 60.0
#: Long-poll of one ``/sync`` while waiting for something.
SYNC_LONG_POLL_MS = 1_000
#: nio's own per-request timeout (it retries a timed-out request at most once here).
REQUEST_TIMEOUT_S = 20.0
#: Shutdown: closing the client, then joining the loop's thread.
CLOSE_BOUND_S = 10.0
#: Messages received and not yet taken by a wait: older ones are dropped beyond this.
INBOX_LIMIT = 1_000
#: Undecryptable events kept for a late key.
UNDECRYPTED_LIMIT = 200

MEGOLM = "m.megolm.v1.aes-sha2"


class NioError(RuntimeError):
    """nio answered a call with an error response (the message names the call)."""


@attrs.frozen
class Received:
    """A room event the user received, as its client shows it.

    Attributes:
        content: the decrypted content (nio keeps ``m.relates_to``, which stays in
            clear beside the ciphertext, in it).
        encrypted: it arrived as ``m.room.encrypted`` and was decrypted.
    """

    room_id: str
    event_id: str
    sender: str
    type: str
    content: Mapping[str, Any]
    encrypted: bool

    @property
    def body(self) -> str:
        body = self.content.get("body")
        return body if isinstance(body, str) else ""

    @property
    def msgtype(self) -> str | None:
        return self.content.get("msgtype")

    @property
    def relates_to(self) -> Mapping[str, Any] | None:
        relation = self.content.get("m.relates_to")
        return relation if isinstance(relation, Mapping) else None


class NioUser:
    """One logged-in nio device of one user; see the module docstring."""

    def __init__(self, loop: _Loop, side: _NioSide) -> None:
        self._loop = loop
        self._side = side

    @classmethod
    @contextlib.asynccontextmanager
    async def login(
        cls, homeserver: str, user_id: str, password: str, *, device_id: str, store_dir: Path
    ) -> AsyncIterator[NioUser]:
        """Log in as ``device_id`` (its crypto store in ``store_dir``), upload its keys
        and do the first sync. A second device of the same user is a second login."""
        await trio.Path(store_dir).mkdir(parents=True, exist_ok=True)
        loop = _Loop(name=f"nio-{user_id}-{device_id}")
        try:
            side = await loop.call(
                _NioSide.open, homeserver, user_id, password, device_id, store_dir
            )
            try:
                yield cls(loop, side)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_BOUND_S):
                    await loop.call(side.close)
        finally:
            with trio.CancelScope(shield=True):
                await loop.close()

    @property
    def user_id(self) -> str:
        return self._side.client.user_id

    @property
    def device_id(self) -> str:
        return self._side.client.device_id

    async def sync(self) -> None:
        """One ``/sync`` round (no long poll), then keys upload/query/claim and the
        queued to-device messages, as nio's own sync loop does."""
        await self._loop.call(self._side.sync_round, 0)

    async def create_room(
        self,
        *,
        invite: Sequence[str] = (),
        name: str | None = None,
        is_direct: bool = False,
        encrypted: bool = True,
    ) -> str:
        """Create a private room (a DM with ``is_direct``), encrypted unless told not."""
        return await self._loop.call(self._side.create_room, invite, name, is_direct, encrypted)

    async def wait_invite(self, room_id: str | None = None) -> str:
        """The id of a pending invite (``room_id``'s, or any), syncing until one is there."""
        return await self._loop.call(self._side.wait_invite, room_id)

    async def join(self, room_id: str) -> None:
        await self._loop.call(self._side.join, room_id)

    async def wait_joined(self, room_id: str, user_id: str) -> None:
        """Sync until ``user_id`` is a joined member of ``room_id`` (so it gets keys)."""
        await self._loop.call(self._side.wait_joined, room_id, user_id)

    async def wait_device(self, user_id: str, device_id: str) -> None:
        """Sync and query keys until ``user_id``'s ``device_id`` is known (and trusted)."""
        await self._loop.call(self._side.wait_device, user_id, device_id)

    async def devices(self, user_id: str) -> set[str]:
        """The device ids nio knows (and trusts) for ``user_id``."""
        return await self._loop.call(self._side.devices, user_id)

    async def send_text(
        self, room_id: str, body: str, *, relates_to: Mapping[str, Any] | None = None
    ) -> str:
        """Send ``m.text`` (encrypted in an encrypted room); returns the event id."""
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        if relates_to is not None:
            content["m.relates_to"] = dict(relates_to)
        return await self._loop.call(self._side.send, room_id, content)

    async def send_file(
        self, room_id: str, data: bytes, *, filename: str, mimetype: str = "text/plain"
    ) -> str:
        """Upload ``data`` (encrypted, v2 attachment, in an encrypted room) and send it
        as ``m.file``; returns the event id."""
        return await self._loop.call(self._side.send_file, room_id, data, filename, mimetype)

    async def wait_message(
        self,
        room_id: str,
        *,
        sender: str,
        match: Callable[[Received], bool] = lambda _: True,
    ) -> Received:
        """The oldest message from ``sender`` in ``room_id`` not taken yet that ``match``
        accepts, syncing until there is one. It is taken: the next call returns a
        later one."""
        return await self._loop.call(self._side.wait_message, room_id, sender, match)

    async def download(self, message: Received) -> bytes:
        """The file of an ``m.file``/``m.image``… message: decrypted and checked
        against its SHA-256 when it came in an encrypted room (``file``), as served
        otherwise (``url``)."""
        return await self._loop.call(self._side.download, dict(message.content))


@attrs.define(eq=False)
class _NioSide:
    """The nio client and what it received; touched only on the loop's thread."""

    client: AsyncClient
    inbox: deque[Received] = attrs.field(factory=lambda: deque(maxlen=INBOX_LIMIT))
    undecrypted: deque[MegolmEvent] = attrs.field(factory=lambda: deque(maxlen=UNDECRYPTED_LIMIT))
    invites: list[str] = attrs.Factory(list)

    @classmethod
    async def open(
        cls, homeserver: str, user_id: str, password: str, device_id: str, store_dir: Path
    ) -> _NioSide:
        config = AsyncClientConfig(
            encryption_enabled=True,
            store_sync_tokens=True,
            # nio retries forever by default; a test wants an error instead.
            max_limit_exceeded=3,
            max_timeouts=1,
            request_timeout=REQUEST_TIMEOUT_S,
        )
        client = AsyncClient(
            homeserver, user_id, device_id=device_id, store_path=str(store_dir), config=config
        )
        side = cls(client)
        try:
            _ok(await client.login(password, device_name=device_id), "login")
            await side.sync_round(0)
        except BaseException:
            await client.close()
            raise
        return side

    async def close(self) -> None:
        await self.client.close()

    async def sync_round(self, timeout_ms: int) -> None:
        response = _ok(await self.client.sync(timeout=timeout_ms), "sync")
        assert isinstance(response, SyncResponse)
        await self._keys_housekeeping()
        self.invites.extend(r for r in response.rooms.invite if r not in self.invites)
        for room_id, joined in response.rooms.join.items():
            for event in joined.timeline.events:
                self._record(room_id, event)
        self._retry_undecrypted()

    async def _keys_housekeeping(self) -> None:
        # What nio's sync_forever does after every sync, then trust on first use.
        client = self.client
        for sent in await client.send_to_device_messages():
            _ok(sent, "to-device")
        if client.should_upload_keys:
            _ok(await client.keys_upload(), "keys upload")
        if client.should_query_keys:
            _ok(await client.keys_query(), "keys query")
        if client.should_claim_keys:
            _ok(await client.keys_claim(client.get_users_for_key_claiming()), "keys claim")
        for devices in client.device_store.values():
            for device in devices.values():
                if not device.verified and not device.blacklisted:
                    client.verify_device(device)

    def _record(self, room_id: str, event: Any) -> None:
        if isinstance(event, MegolmEvent):  # no key (yet): kept for a late one
            event.room_id = room_id
            self.undecrypted.append(event)
            return
        source = getattr(event, "source", None)
        if not isinstance(source, dict) or "state_key" in source:
            return
        content = source.get("content")
        if not isinstance(content, dict) or not isinstance(source.get("type"), str):
            return
        self.inbox.append(
            Received(
                room_id=room_id,
                event_id=event.event_id,
                sender=event.sender,
                type=source["type"],
                content=content,
                encrypted=bool(getattr(event, "decrypted", False)),
            )
        )

    def _retry_undecrypted(self) -> None:
        waiting, self.undecrypted = self.undecrypted, deque(maxlen=UNDECRYPTED_LIMIT)
        for event in waiting:
            try:
                decrypted = self.client.decrypt_event(event)
            except EncryptionError:
                self.undecrypted.append(event)
                continue
            self._record(event.room_id, decrypted)

    async def _sync_until(self, done: Callable[[], T | None]) -> T:
        while (result := done()) is None:
            await self.sync_round(SYNC_LONG_POLL_MS)
        return result

    async def create_room(
        self, invite: Sequence[str], name: str | None, is_direct: bool, encrypted: bool
    ) -> str:
        state = (
            [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]
            if encrypted
            else []
        )
        response = _ok(
            await self.client.room_create(
                name=name,
                is_direct=is_direct,
                preset=RoomPreset.trusted_private_chat if is_direct else RoomPreset.private_chat,
                invite=list(invite),
                initial_state=state,
            ),
            "create room",
        )
        assert isinstance(response, RoomCreateResponse)
        room_id = response.room_id
        await self._sync_until(lambda: room_id if room_id in self.client.rooms else None)
        return room_id

    async def wait_invite(self, room_id: str | None) -> str:
        def pending() -> str | None:
            return next((r for r in self.invites if room_id in (None, r)), None)

        return await self._sync_until(pending)

    async def join(self, room_id: str) -> None:
        _ok(await self.client.join(room_id), f"join {room_id}")
        with contextlib.suppress(ValueError):
            self.invites.remove(room_id)
        await self._sync_until(lambda: True if room_id in self.client.rooms else None)

    async def wait_joined(self, room_id: str, user_id: str) -> None:
        def joined() -> bool | None:
            room = self.client.rooms.get(room_id)
            member = room is not None and user_id in room.users
            return True if member and user_id not in room.invited_users else None

        await self._sync_until(joined)

    async def wait_device(self, user_id: str, device_id: str) -> None:
        await self._sync_until(lambda: True if device_id in self._device_ids(user_id) else None)

    async def devices(self, user_id: str) -> set[str]:
        return self._device_ids(user_id)

    def _device_ids(self, user_id: str) -> set[str]:
        return {d.id for d in self.client.device_store.active_user_devices(user_id)}

    async def send(self, room_id: str, content: dict[str, Any]) -> str:
        await self._sync_until(lambda: True if room_id in self.client.rooms else None)
        await self._keys_housekeeping()  # a device that appeared since: keys first
        response = _ok(
            await self.client.room_send(
                room_id, "m.room.message", content, ignore_unverified_devices=True
            ),
            f"send to {room_id}",
        )
        assert isinstance(response, RoomSendResponse)
        return response.event_id

    async def send_file(self, room_id: str, data: bytes, filename: str, mimetype: str) -> str:
        await self._sync_until(lambda: True if room_id in self.client.rooms else None)
        encrypted = self.client.rooms[room_id].encrypted
        upload, keys = await self.client.upload(
            io.BytesIO(data),
            content_type=mimetype,
            filename=filename,
            encrypt=encrypted,
            filesize=len(data),
        )
        response = _ok(upload, f"upload {filename}")
        assert isinstance(response, UploadResponse)
        content: dict[str, Any] = {
            "msgtype": "m.file",
            "body": filename,
            "filename": filename,
            "info": {"mimetype": mimetype, "size": len(data)},
        }
        if encrypted:
            assert keys is not None
            content["file"] = {"url": response.content_uri, **keys}
        else:
            content["url"] = response.content_uri
        return await self.send(room_id, content)

    async def wait_message(
        self, room_id: str, sender: str, match: Callable[[Received], bool]
    ) -> Received:
        def take() -> Received | None:
            for message in self.inbox:
                wanted = message.type == "m.room.message" and message.room_id == room_id
                if wanted and message.sender == sender and match(message):
                    self.inbox.remove(message)
                    return message
            return None

        return await self._sync_until(take)

    async def download(self, content: dict[str, Any]) -> bytes:
        file = content.get("file")
        url = file.get("url") if isinstance(file, dict) else content.get("url")
        if not isinstance(url, str):
            raise NioError(f"no media URL in {content!r:.200}")
        response = _ok(await self.client.download(mxc=url), f"download {url}")
        body: bytes = response.body
        if not isinstance(file, dict):
            return body
        # Raises EncryptionError when the SHA-256 does not match the ciphertext.
        return decrypt_attachment(body, file["key"]["k"], file["hashes"]["sha256"], file["iv"])


class _Loop:
    """An asyncio event loop on its own daemon thread, called into from trio."""

    def __init__(self, *, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop and wait for it, within ``CALL_BOUND_S``;
        cancelling the caller cancels the asyncio task."""

        async def bounded() -> T:
            return await fn(*args)

        future = asyncio.run_coroutine_threadsafe(bounded(), self._loop)
        with trio.fail_after(CALL_BOUND_S):
            return await _wait_future(future)

    async def close(self) -> None:
        """Cancel what is left on the loop, stop it and join its thread (bounded)."""
        if self._loop.is_running():
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                future = asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self._loop)
                with trio.move_on_after(CLOSE_BOUND_S):
                    await _wait_future(future)
            self._loop.call_soon_threadsafe(self._loop.stop)
        await trio.to_thread.run_sync(self._thread.join, CLOSE_BOUND_S)
        if not self._thread.is_alive():
            self._loop.close()


async def _wait_future(future: concurrent.futures.Future[T]) -> T:
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_: object) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    try:
        await done.wait()
    except BaseException:
        future.cancel()
        raise
    return future.result()


async def _cancel_the_rest() -> None:
    me = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not me]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


def _ok(response: T, what: str) -> T:
    if isinstance(response, ErrorResponse):
        raise NioError(f"{what}: {response}")
    return response
