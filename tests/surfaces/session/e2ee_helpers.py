"""An end-to-end-encrypting user for the bot harness (``CryptoUser`` on the fake
homeserver), and what it sees of the bot: decrypted messages, edits applied."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from matrix_client import (
    MatrixClient,
    RoomEvent,
    Syncer,
    media_content,
    new_txn_id,
    text_content,
)
from matrix_client.crypto import MEGOLM_ALGORITHM
from matrix_client.testing import CryptoUser, FakeHomeserver, FakeUser

#: The harness environment of an encrypting bot.
ENCRYPTED = {"SURFACES_MATRIX__ENCRYPTION": "true"}


@attrs.define
class E2EEUser:
    """A user with one E2EE device: syncs, decrypts, sends encrypted."""

    hs: FakeHomeserver
    account: FakeUser
    client: MatrixClient
    crypto: CryptoUser
    syncer: Syncer

    @classmethod
    @asynccontextmanager
    async def open(cls, hs: FakeHomeserver, account: FakeUser) -> AsyncIterator[E2EEUser]:
        async with hs.user_client(account) as client:
            crypto = await CryptoUser.start(client)
            syncer = client.syncer(since=None, filter_id=None, long_poll_ms=0, min_interval_s=0)
            user = cls(hs, account, client, crypto, syncer)
            await user.sync()
            yield user

    @property
    def user_id(self) -> str:
        return self.account.user_id

    async def sync(self) -> None:
        """One ``/sync``: room keys and device-list changes, then what they ask for."""
        await self.crypto.receive(await self.syncer.next())

    async def join(self, room_id: str) -> None:
        await self.client.join(room_id)
        await self.sync()

    async def say(self, room_id: str, body: str) -> str:
        """Send an encrypted ``m.text`` (the room key shared first) → event id."""
        await self.sync()
        return await self.crypto.send(room_id, "m.room.message", text_content(body))

    async def send_file(self, room_id: str, data: bytes, name: str) -> str:
        """Upload ``data`` encrypted and post it as ``m.file`` with its ``file`` object."""
        file = await self.crypto.upload_encrypted(data, content_type="text/plain", filename=name)
        content = media_content("m.file", body=name, url="", mimetype="text/plain", size=len(data))
        content.pop("url")
        content["file"] = file
        await self.sync()
        return await self.crypto.send(room_id, "m.room.message", content)

    async def say_with_key_lost(self, room_id: str, body: str, bot: FakeUser, device: str) -> list:
        """Send an encrypted ``m.text`` whose room key never reaches the bot's device
        (taken out of its to-device inbox) → the to-device events that were lost.
        No sync here: a sync would answer the bot's key request (see the tests)."""
        event_type, content = await self.crypto.encrypt(
            room_id, "m.room.message", text_content(body), {"algorithm": MEGOLM_ALGORITHM}
        )
        lost = self.hs.take_to_device(bot, device)
        await self.client.send_event(room_id, event_type, content, txn_id=new_txn_id())
        return lost

    def decrypted(self, room_id: str, sender: str) -> list[RoomEvent]:
        """``sender``'s room events as this user reads them (without syncing)."""
        out = []
        for raw in self.hs.timeline(room_id):
            if not isinstance(raw, dict) or raw.get("sender") != sender or "state_key" in raw:
                continue
            out.append(self.crypto.decrypt(room_id, RoomEvent.from_json(raw)))
        return out

    async def shown(self, room_id: str, sender: str) -> list[dict[str, Any]]:
        """``sender``'s messages as a client shows them: decrypted, edits applied.
        An event this user cannot decrypt shows as ``{"undecrypted": event id}``."""
        await self.sync()
        shown: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        for event in self.decrypted(room_id, sender):
            if event.type == "m.room.encrypted":
                shown[event.event_id] = {"undecrypted": event.event_id}
                order.append(event.event_id)
                continue
            if event.type != "m.room.message":
                continue
            relation = event.content.get("m.relates_to") or {}
            if relation.get("rel_type") == "m.replace":
                if relation.get("event_id") in shown:
                    shown[relation["event_id"]] = event.content["m.new_content"]
                continue
            shown[event.event_id] = dict(event.content)
            order.append(event.event_id)
        return [shown[i] for i in order]

    async def bodies(self, room_id: str, sender: str) -> list[str]:
        return [m.get("body", "<undecrypted>") for m in await self.shown(room_id, sender)]


async def eventually(check: Callable[[], Awaitable[Any]], *, limit_s: float = 120.0) -> Any:
    """Let virtual time pass until ``check()`` returns something truthy (file work runs
    in worker threads, during which the virtual clock may jump ahead of it)."""
    start = trio.current_time()
    while not (result := await check()):
        if trio.current_time() - start > limit_s:
            raise AssertionError("condition not reached")
        await trio.sleep(0.5)
    return result
