"""Workspaces: a user's Space and working rooms, created once and kept in sync.

Room creation is the one Matrix call that is not idempotent, so every creation
follows the same recipe: record an *intent* (with the ids the room will carry),
create the room with the bot's state event already in its initial state, then
record the result and clear the intent. A crash or a lost response in between
leaves the intent behind; the next attempt first *looks* for the room (the bot
is joined to every room it created, and the state event names owner and chat
id) and adopts it, and only creates when nothing is found.

Provisioning runs under a per-user lock, so racing invites (or an invite racing
a DM message) never create two Spaces.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import attrs
import structlog
import trio

from matrix_client import MatrixError, text_content
from surfaces.bot.context import Bot
from surfaces.bot.events import (
    CHAT_EVENT,
    SPACE_EVENT,
    chat_content,
    parse_chat_content,
    space_content,
)
from surfaces.state import ChatRecord, Intent, PendingSend, UserRecord

log = structlog.get_logger(__name__)


@attrs.define
class Workspaces:
    bot: Bot
    _locks: weakref.WeakValueDictionary[str, trio.Lock] = attrs.field(
        factory=weakref.WeakValueDictionary
    )

    def lock(self, user_id: str) -> trio.Lock:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = trio.Lock()
            self._locks[user_id] = lock
        return lock

    # ---- entry points ----------------------------------------------------

    async def on_dm_contact(
        self,
        user_id: str,
        dm_room_id: str,
        *,
        key: str,
        encrypted: bool,
        new_chat: bool = False,
        new_chat_name: str | None = None,
    ) -> None:
        """An invite to, or a message in, a DM from an allowed user.

        Provisions the workspace once; afterwards re-invites the user to the
        Space and active chats (creating one if none is active) and says so in
        the DM. ``key`` makes the DM replies exactly-once."""
        bot = self.bot
        async with self.lock(user_id):
            user = await bot.store.get_user(user_id)
            fresh = not await self._provisioned(user)
            user = await self._ensure_user(user_id, dm_room_id, user)
            if encrypted and not user.flags.get("encrypted_dm_notice"):
                # Notice first, flag after: a crash in between re-runs this item with
                # the same txn id, so the outbox still sends the notice only once.
                await bot.notice(dm_room_id, "dm_encrypted", txn_id=f"{key}.enc")
                await bot.store.set_user_flag(user_id, "encrypted_dm_notice")
            if fresh:
                space_id = await self.ensure_space(user)
                chat = await self._first_chat(user_id)
                await self._invite_all(user_id, [space_id, chat.room_id])
                await bot.notice(
                    dm_room_id,
                    "dm_provisioned",
                    txn_id=f"{key}.dm",
                    space=bot.t("space_name", brand=bot.config.bot.brand, name=user.display_name),
                    chat=chat.name,
                )
                return
            space_id = await self.ensure_space(user)
            if new_chat:
                chat = await self._create_chat_locked(user_id, new_chat_name, key=key)
                await bot.notice(
                    dm_room_id,
                    "chat_created",
                    txn_id=f"{key}.dm",
                    name=chat.name,
                    chat_id=chat.local_id,
                )
                return
            chats = await bot.store.chats_of(user_id)
            if not chats:
                chat = await self._create_chat_locked(user_id, None, key=key)
                await self._invite_all(user_id, [space_id])
                await bot.notice(
                    dm_room_id, "dm_reinvited_new_chat", txn_id=f"{key}.dm", chat=chat.name
                )
                return
            await self._invite_all(user_id, [space_id, *(c.room_id for c in chats)])
            await bot.notice(dm_room_id, "dm_reinvited", txn_id=f"{key}.dm", count=len(chats))

    async def create_chat(self, owner: str, name: str | None, *, key: str) -> ChatRecord:
        """A new working room in the owner's Space (next ``C<n>``, new platform id).

        ``key`` identifies the request (the ``!new`` event id): a re-run returns the
        chat the first run created instead of creating another."""
        async with self.lock(owner):
            user = await self._ensure_user(owner, None, await self.bot.store.get_user(owner))
            await self.ensure_space(user)
            return await self._create_chat_locked(owner, name, key=key)

    # ---- users and spaces ------------------------------------------------

    async def _provisioned(self, user: UserRecord | None) -> bool:
        """Whether first contact finished: a Space *and* the first chat.

        Not just "has a Space": when the first chat's creation failed or its
        response was lost (then a restart), the re-run must finish the *same*
        first chat (``C1``, its intent's platform id, the welcome, the
        "workspace ready" reply), not treat the user as provisioned and open a
        second chat. A user rebuilt from Matrix by reconciliation has no intent
        but has chats."""
        if user is None or user.space_id is None:
            return False
        first = await self.bot.store.intent_by_key(f"first:{user.user_id}")
        if first is not None:
            return first.status == "done"
        return bool(await self.bot.store.chats_of(user.user_id, status=None))

    async def _ensure_user(
        self, user_id: str, dm_room_id: str | None, user: UserRecord | None
    ) -> UserRecord:
        display = user.display_name if user else None
        if not display:
            try:
                display = await self.bot.matrix.get_display_name(user_id)
            except MatrixError:
                display = None
        return await self.bot.store.upsert_user(
            user_id, display_name=display or user_id, dm_room_id=dm_room_id
        )

    async def ensure_space(self, user: UserRecord) -> str:
        bot = self.bot
        if user.space_id:
            return user.space_id
        owner = user.user_id
        intent = await bot.store.intent_by_key(f"space:{owner}")
        if intent is not None and intent.status == "done" and intent.room_id:
            await bot.store.upsert_user(owner, space_id=intent.room_id)
            return intent.room_id
        if intent is not None and intent.status == "open":
            # An earlier attempt may have created it before a crash or a lost response.
            found = await self._find_room(SPACE_EVENT, lambda c: c.get("owner") == owner)
            if found:
                log.info("space_adopted", user_id=owner, space_id=found)
                await bot.store.upsert_user(owner, space_id=found)
                await bot.store.complete_intent(intent.id, found)
                return found
        intent = await bot.store.add_space_intent(owner)
        name = bot.t("space_name", brand=bot.config.bot.brand, name=user.display_name)
        space_id = await bot.matrix.create_room(
            name=name,
            is_space=True,
            invite=[owner],
            preset="private_chat",
            power_level_content_override=self._power_levels(),
            initial_state=[
                {
                    "type": SPACE_EVENT,
                    "state_key": "",
                    "content": space_content(owner=owner, dm_room_id=user.dm_room_id),
                }
            ],
        )
        await bot.store.upsert_user(owner, space_id=space_id)
        await bot.store.complete_intent(intent.id, space_id)
        log.info("space_created", user_id=owner, space_id=space_id)
        return space_id

    # ---- chats -----------------------------------------------------------

    async def _first_chat(self, owner: str) -> ChatRecord:
        key = f"first:{owner}"
        if await self.bot.store.intent_by_key(key) is None:
            chats = await self.bot.store.chats_of(owner)
            if chats:
                return chats[0]  # rebuilt from Matrix (no intent survives a lost database)
        # With an intent, always go through it: a room reconciliation already put
        # into the database still needs its Space link and the intent completed.
        return await self._create_chat_locked(owner, None, key=key, welcome=True)

    async def _create_chat_locked(
        self, owner: str, name: str | None, *, key: str, welcome: bool = False
    ) -> ChatRecord:
        chat = await self._chat_for_key(owner, name, key=key)
        if welcome:
            # Sent on every path (created, adopted after a lost response, re-run):
            # the txn id makes it exactly-once.
            user = await self.bot.store.get_user(owner)
            await self.bot.outbox.send(
                PendingSend(
                    chat.room_id,
                    f"welcome.{chat.room_id}",
                    "m.room.message",
                    text_content(self.bot.t("welcome", name=user.display_name if user else owner)),
                )
            )
        return chat

    async def _chat_for_key(self, owner: str, name: str | None, *, key: str) -> ChatRecord:
        bot = self.bot
        intent = await bot.store.intent_by_key(key)
        if intent is not None:
            # The same request again (a re-run after a crash): never a second room.
            if intent.status == "done" and intent.room_id:
                chat = await bot.store.get_chat(intent.room_id)
                if chat is not None:
                    return chat
                return await self._finish_chat(intent, intent.room_id)
            found = await self._find_room(
                CHAT_EVENT,
                lambda c: c.get("owner") == owner and c.get("chat_id") == intent.local_id,
            )
            if found:
                log.info("chat_adopted", owner=owner, chat_id=intent.local_id, room_id=found)
                return await self._finish_chat(intent, found)
            return await self._create_from_intent(intent)
        spec, _ = bot.registry.for_user(owner)
        intent = await bot.store.add_chat_intent(owner, name, spec.id, key)
        return await self._create_from_intent(intent)

    async def _create_from_intent(self, intent: Intent) -> ChatRecord:
        bot = self.bot
        user = await bot.store.get_user(intent.owner)
        assert user is not None
        assert user.space_id is not None
        assert intent.local_id
        assert intent.agent_id
        assert intent.platform_chat_id
        number = intent.local_id[1:]
        name = intent.name or bot.t("first_chat_name", n=number)
        content = chat_content(
            owner=intent.owner,
            local_id=intent.local_id,
            agent_id=intent.agent_id,
            platform_chat_id=intent.platform_chat_id,
            name=name,
        )
        room_id = await bot.matrix.create_room(
            name=name,
            invite=[intent.owner],
            preset="private_chat",
            power_level_content_override=self._power_levels(),
            initial_state=[
                {"type": CHAT_EVENT, "state_key": "", "content": content},
                {
                    "type": "m.space.parent",
                    "state_key": user.space_id,
                    "content": {"via": [bot.server_name], "canonical": True},
                },
            ],
        )
        chat = await self._finish_chat(attrs.evolve(intent, name=name), room_id)
        log.info(
            "chat_created",
            owner=intent.owner,
            chat_id=intent.local_id,
            room_id=room_id,
            platform_chat_id=intent.platform_chat_id,
        )
        return chat

    async def _finish_chat(self, intent: Intent, room_id: str) -> ChatRecord:
        bot = self.bot
        user = await bot.store.get_user(intent.owner)
        assert user is not None
        assert intent.local_id
        assert intent.agent_id
        assert intent.platform_chat_id
        chat = ChatRecord(
            room_id=room_id,
            owner=intent.owner,
            local_id=intent.local_id,
            name=intent.name or intent.local_id,
            agent_id=intent.agent_id,
            platform_chat_id=intent.platform_chat_id,
            status="active",
            flags={},
        )
        await bot.store.put_chat(chat)
        if user.space_id:
            await self.link_child(user.space_id, room_id)
        await bot.store.complete_intent(intent.id, room_id)
        return chat

    async def link_child(self, space_id: str, room_id: str, *, linked: bool = True) -> None:
        content = {"via": [self.bot.server_name], "suggested": True} if linked else {}
        await self.bot.matrix.put_state_event(space_id, "m.space.child", content, state_key=room_id)

    async def write_chat_state(self, chat: ChatRecord) -> None:
        await self.bot.write_chat_state(chat)

    # ---- helpers ---------------------------------------------------------

    def _power_levels(self) -> dict | None:
        """No override: the ``private_chat`` preset already gives the creator (the
        bot) full power, and room version 12 (MSC4289) forbids listing creators in
        ``users`` at all (Synapse rejects the createRoom)."""
        return None

    async def _invite_all(self, user_id: str, rooms: Iterable[str]) -> None:
        for room_id in rooms:
            try:
                await self.bot.matrix.invite(room_id, user_id)
            except MatrixError as exc:
                # Already joined, or the room is gone: log and go on with the others.
                log.info(
                    "reinvite_skipped", room_id=room_id, status=exc.status, errcode=exc.errcode
                )

    async def _find_room(self, event_type: str, match) -> str | None:
        """Look through the bot's rooms for one whose ``event_type`` state matches."""
        for room_id in await self.bot.matrix.joined_rooms():
            try:
                content = await self.bot.matrix.get_state_event(room_id, event_type)
            except MatrixError:
                continue
            if content and match(content):
                if event_type == CHAT_EVENT and parse_chat_content(content) is None:
                    continue
                return room_id
        return None
