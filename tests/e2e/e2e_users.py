"""A simulated Matrix user for the e2e tests: a real ``MatrixClient`` on the local Synapse.

What a test does with it, as a person with Element would::

    async with SimUser.open(hs, account) as alice:
        ws = await alice.onboard(bot_user_id)          # DM → Space + "Чат 1", joined
        sent = await alice.send_text(ws.chat_id, "hi")
        reply = await alice.wait_reply(ws.chat_id, sent, bot_user_id, complete=is_done)

What the user *sees* is computed the way a client shows it (:func:`visible_messages`):
``m.replace`` edits from the original sender are applied in timeline order, redacted
messages are hidden, edit events are not messages of their own.

Nothing here sleeps blindly: waits poll the homeserver (``/sync`` for invites,
``/messages`` for timelines) and the caller bounds them with ``trio.fail_after``.

A user is end-to-end encrypting by default (``e2ee=True``): it has one E2EE device
(``matrix_client.testing.CryptoUser``, our crypto machine in memory), sends encrypted
in encrypted rooms and decrypts what it reads; every read of a timeline syncs first so
the room keys the bot sent have arrived. The bot's rooms are encrypted by default.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import trio

from matrix_client import (
    InviteItem,
    MatrixClient,
    RoomEvent,
    media_content,
    new_txn_id,
    text_content,
)
from matrix_client.testing import CryptoUser, LocalSynapse, RegisteredUser

POLL_S = 0.2
SYNC_LONG_POLL_MS = 1_000
#: An E2EE user syncs before every timeline read: a short poll keeps reads quick.
E2EE_SYNC_LONG_POLL_MS = 200
MAX_PAGES = 100


@attrs.frozen
class Shown:
    """One message as a client displays it (edits applied)."""

    event_id: str
    sender: str
    msgtype: str | None
    body: str
    content: dict[str, Any]  # the displayed content (``m.new_content`` of the last edit)
    edits: int
    index: int  # position of the original event in the room timeline


@attrs.frozen
class Workspace:
    """What onboarding gave a user: the DM, the Space and the first working room."""

    dm_id: str
    space_id: str
    chat_id: str


def visible_messages(events: list[RoomEvent]) -> list[Shown]:
    """The ``m.room.message`` events of a timeline as a client shows them.

    Edits (``m.relates_to.rel_type == "m.replace"``) replace the displayed content of
    their original when they come from the original's sender; the last one in
    timeline order wins. Redacted originals (no ``body`` left, or an explicit
    ``m.room.redaction``) are not shown; edit events are never shown on their own.
    """
    redacted = {
        e.redacts or e.content.get("redacts") for e in events if e.type == "m.room.redaction"
    }
    originals: dict[str, Shown] = {}
    order: list[str] = []
    for index, event in enumerate(events):
        if event.type != "m.room.message":
            continue
        content = event.content
        relation = content.get("m.relates_to") or {}
        if relation.get("rel_type") == "m.replace":
            target = originals.get(relation.get("event_id", ""))
            new = content.get("m.new_content")
            if target is None or target.sender != event.sender or not isinstance(new, dict):
                continue
            originals[target.event_id] = attrs.evolve(
                target,
                body=str(new.get("body", "")),
                msgtype=new.get("msgtype"),
                content=new,
                edits=target.edits + 1,
            )
            continue
        if "body" not in content or event.event_id in redacted:
            continue
        originals[event.event_id] = Shown(
            event_id=event.event_id,
            sender=event.sender,
            msgtype=content.get("msgtype"),
            body=str(content["body"]),
            content=content,
            edits=0,
            index=index,
        )
        order.append(event.event_id)
    return [originals[event_id] for event_id in order if event_id not in redacted]


@attrs.define
class SimUser:
    """One Matrix user driving real rooms. Build it with :meth:`open`."""

    account: RegisteredUser
    client: MatrixClient
    invites: dict[str, InviteItem] = attrs.field(factory=dict)
    last_shown: dict[str, list[Shown]] = attrs.field(factory=dict)
    #: The user's E2EE device (``None``: a client without encryption).
    crypto: CryptoUser | None = None
    _syncer: Any = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, hs: LocalSynapse, account: RegisteredUser, *, e2ee: bool = True
    ) -> AsyncIterator[SimUser]:
        async with MatrixClient(
            hs.base_url,
            access_token=account.access_token,
            user_id=account.user_id,
            device_id=account.device_id,
        ) as client:
            user = cls(account, client)
            user._syncer = client.syncer(
                since=None,
                filter_id=None,
                long_poll_ms=E2EE_SYNC_LONG_POLL_MS if e2ee else SYNC_LONG_POLL_MS,
                min_interval_s=0.1,
            )
            if e2ee:
                user.crypto = await CryptoUser.start(client)
            yield user

    @property
    def user_id(self) -> str:
        return self.account.user_id

    # ---- invites -----------------------------------------------------------------

    async def sync_once(self) -> None:
        """One ``/sync``: remember new invites, forget the ones we joined or lost."""
        batch = await self._syncer.next()
        if self.crypto is not None:
            await self.crypto.receive(batch)  # room keys, device lists
        for invite in batch.invites:
            self.invites[invite.room_id] = invite
        for room_id in batch.response.rooms.join if batch.response.rooms else ():
            self.invites.pop(room_id, None)
        for room_id in batch.left:
            self.invites.pop(room_id, None)

    async def wait_invite(self, predicate: Callable[[InviteItem], bool]) -> InviteItem:
        """The first pending invite matching ``predicate`` (callers bound the wait)."""
        while True:
            for invite in list(self.invites.values()):
                if predicate(invite):
                    return invite
            await self.sync_once()

    # ---- rooms ---------------------------------------------------------------------

    async def create_dm(self, bot_user_id: str) -> str:
        return await self.client.create_room(
            invite=[bot_user_id], is_direct=True, preset="trusted_private_chat"
        )

    async def join(self, room_id: str) -> None:
        await self.client.join(room_id)
        self.invites.pop(room_id, None)

    async def onboard(self, bot_user_id: str) -> Workspace:
        """Invite the bot to a DM, wait for the Space and first chat invites, join both."""
        dm_id = await self.create_dm(bot_user_id)
        space = await self.wait_invite(lambda i: i.inviter == bot_user_id and is_space_invite(i))
        chat = await self.wait_invite(lambda i: i.inviter == bot_user_id and not is_space_invite(i))
        await self.join(space.room_id)
        await self.join(chat.room_id)
        return Workspace(dm_id, space.room_id, chat.room_id)

    async def state(self, room_id: str, event_type: str, state_key: str = "") -> dict | None:
        return await self.client.get_state_event(room_id, event_type, state_key)

    # ---- messages ------------------------------------------------------------------

    async def send_text(self, room_id: str, body: str) -> str:
        return await self._send(room_id, text_content(body))

    async def _send(self, room_id: str, content: dict[str, Any]) -> str:
        """An ``m.room.message``, encrypted in an encrypted room (E2EE users)."""
        if self.crypto is not None:
            await self.sync_once()  # device lists first: a new bot device gets the key
            return await self.crypto.send(room_id, "m.room.message", content)
        return await self.client.send_event(room_id, "m.room.message", content, txn_id=new_txn_id())

    async def send_file(
        self, room_id: str, name: str, data: bytes, mimetype: str = "text/plain"
    ) -> str:
        """Upload ``data`` and post it as an ``m.file`` (a file without text); in an
        encrypted room (E2EE users) encrypted, described by a ``file`` object."""
        encrypted = self.crypto is not None and await self.crypto.encryption(room_id)
        content = media_content("m.file", body=name, url="", mimetype=mimetype, size=len(data))
        if encrypted:
            assert self.crypto is not None
            del content["url"]
            content["file"] = await self.crypto.upload_encrypted(
                data, content_type=mimetype, filename=name
            )
        else:
            content["url"] = await self.client.upload(data, content_type=mimetype, filename=name)
        content["filename"] = name
        return await self._send(room_id, content)

    async def download(self, content: dict[str, Any], *, max_bytes: int = 100_000_000) -> bytes:
        """The file of a media message: decrypted and its hash checked when encrypted."""
        file = content.get("file")
        if isinstance(file, dict):
            assert self.crypto is not None
            return await self.crypto.download_decrypted(file, max_bytes=max_bytes)
        return (await self.client.download(content["url"], max_bytes=max_bytes)).data

    async def timeline(self, room_id: str) -> list[RoomEvent]:
        """Every event of the room visible to this user, oldest first (decrypted where
        this user holds the key: an E2EE user syncs first, for the keys)."""
        if self.crypto is not None:
            await self.sync_once()
        events: list[RoomEvent] = []
        token: str | None = None
        # An empty chunk is not the end (Synapse may filter a whole page away);
        # a missing (or unchanged) ``end`` is.
        for _ in range(MAX_PAGES):
            page = await self.client.room_messages(
                room_id, from_token=token, direction="f", limit=500
            )
            crypto = self.crypto
            events.extend(
                page.chunk if crypto is None else [crypto.decrypt(room_id, e) for e in page.chunk]
            )
            if page.end is None or page.end == token:
                return events
            token = page.end
        raise AssertionError(f"{room_id}: more than {MAX_PAGES} pages of history")

    async def shown(self, room_id: str) -> list[Shown]:
        return visible_messages(await self.timeline(room_id))

    async def wait_shown(
        self, room_id: str, predicate: Callable[[list[Shown]], Any]
    ) -> list[Shown]:
        """Poll the room until ``predicate(shown messages)`` is truthy.

        On cancellation (the caller's ``fail_after``) the last view of the room is
        kept in ``last_shown`` for the failure message (see :func:`describe`).
        """
        while True:
            shown = await self.shown(room_id)
            self.last_shown[room_id] = shown
            if predicate(shown):
                return shown
            await trio.sleep(POLL_S)

    async def wait_bot_message(
        self,
        room_id: str,
        after_event_id: str | None,
        bot_user_id: str,
        predicate: Callable[[Shown], bool],
    ) -> Shown:
        """The first message of the bot after ``after_event_id`` matching ``predicate``."""
        found: list[Shown] = []

        def check(shown: list[Shown]) -> bool:
            found[:] = [
                m for m in after(shown, after_event_id) if m.sender == bot_user_id and predicate(m)
            ]
            return bool(found)

        await self.wait_shown(room_id, check)
        return found[0]

    async def wait_reply(
        self,
        room_id: str,
        after_event_id: str,
        bot_user_id: str,
        complete: Callable[[str], bool],
    ) -> Shown:
        """The bot's reply (``m.text``) after our message, once its shown text is complete."""
        return await self.wait_bot_message(
            room_id,
            after_event_id,
            bot_user_id,
            lambda m: m.msgtype == "m.text" and complete(m.body),
        )

    async def wait_notice(
        self, room_id: str, after_event_id: str | None, bot_user_id: str, contains: str
    ) -> Shown:
        """The bot's ``m.notice`` after our message whose text contains ``contains``."""
        return await self.wait_bot_message(
            room_id,
            after_event_id,
            bot_user_id,
            lambda m: m.msgtype == "m.notice" and contains in m.body,
        )


def after(shown: list[Shown], event_id: str | None) -> list[Shown]:
    """The messages after the one with ``event_id`` (all of them for ``None``)."""
    if event_id is None:
        return shown
    for position, message in enumerate(shown):
        if message.event_id == event_id:
            return shown[position + 1 :]
    return []


def is_space_invite(invite: InviteItem) -> bool:
    return any(
        s.type == "m.room.create" and s.content.get("type") == "m.space" for s in invite.state
    )


def invite_name(invite: InviteItem) -> str | None:
    for s in invite.state:
        if s.type == "m.room.name":
            return s.content.get("name")
    return None


def replies_per_message(
    shown: list[Shown], user_id: str, bot_user_id: str
) -> list[tuple[Shown, list[Shown]]]:
    """Split a room by the user's messages: each with the bot's ``m.text`` messages
    that follow it up to the next user message. Valid when the user waits for each
    reply before sending the next message (as the tests do)."""
    out: list[tuple[Shown, list[Shown]]] = []
    for message in shown:
        if message.sender == user_id:
            out.append((message, []))
        elif message.sender == bot_user_id and message.msgtype == "m.text" and out:
            out[-1][1].append(message)
    return out


def describe(shown: list[Shown], limit: int = 30) -> str:
    """A room as lines ``sender msgtype (edits): body`` for assertion messages."""
    lines = [
        f"  {m.sender.split(':')[0]} {m.msgtype} ({m.edits} edits): {m.body[:160]!r}"
        for m in shown[-limit:]
    ]
    return "\n".join(lines) or "  (no messages)"
