"""Rooms the bot creates: a user's Space and working rooms, each created once.

Room creation is the one Matrix call that is not idempotent, so every creation
follows the same recipe: record an *intent* (with the ids the room will carry),
create the room with the bot's state event already in its initial state, then
record the result and clear the intent. A crash or a lost response in between
leaves the intent behind; the next attempt first *looks* for the room (the bot
is joined to every room it created, and the state event names owner and chat
id) and adopts it, and only creates when nothing is found.

Creation runs under a per-user lock (``Rooms.lock``), so racing invites (or an invite
racing a DM message, or two ``!new``) never create two Spaces or two ``C<n>``.

A user has at most ``max_chats_per_user`` chats, archived ones included (the bot stays
joined to them, so each costs it sync traffic for good): a new request past that raises
:class:`ChatLimitError` before any intent is written, and the caller answers with a
notice. The count is the database's, so the limit holds across restarts; a re-run of
a request that already has its intent always finishes it.

With ``encryption`` the working rooms are created encrypted (``m.room.encryption``,
``m.megolm.v1.aes-sha2``, in the initial state). Their history visibility is set to
``shared`` (the ``private_chat`` preset's default), under which invited members get the
room key too, so the welcome sent right after the invite is readable by the user (the
outbox shares the key with the invitee's devices before it sends). Spaces carry no
messages and stay unencrypted.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import attrs
import structlog
import trio

from matrix_client import MatrixClient, MatrixError
from matrix_client.crypto import MEGOLM_ALGORITHM
from surfaces.config import AgentRegistry
from surfaces.core import CHAT_EVENT, SPACE_EVENT, ChatBinding, ChatStatus, SpaceBinding
from surfaces.delivery import BindingMirror, Notifier
from surfaces.i18n import Texts
from surfaces.state import ChatRecord, Intent, Store, UserRecord
from surfaces.workspaces.trust import RoomFacts, read_room

log = structlog.get_logger(__name__)

#: The ``m.room.encryption`` of the rooms the bot creates (the spec's rotation defaults).
ENCRYPTION_CONTENT = {"algorithm": MEGOLM_ALGORITHM}


class ChatLimitError(Exception):
    """The user has ``limit`` chats already: no new one is created."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"chat limit reached ({limit})")
        self.limit = limit


@attrs.define
class Rooms:
    matrix: MatrixClient
    store: Store
    notifier: Notifier  # the welcome message
    mirror: BindingMirror
    registry: AgentRegistry
    texts: Texts
    server_name: str
    brand: str
    bot_user_id: str
    max_chats_per_user: int = 200
    encryption: bool = False
    #: Told of every invite the bot makes. The bot's sync filter hides its own events,
    #: so the encrypting side (``Crypto.rooms.forget``) re-reads the room's members
    #: instead of waiting for an invite it will never see.
    invited: Callable[[str], None] = lambda room_id: None
    _locks: weakref.WeakValueDictionary[str, trio.Lock] = attrs.field(
        factory=weakref.WeakValueDictionary
    )

    def lock(self, user_id: str) -> trio.Lock:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = trio.Lock()
            self._locks[user_id] = lock
        return lock

    async def create_chat(self, owner: str, name: str | None, *, key: str) -> ChatRecord:
        """A new working room in the owner's Space (next ``C<n>``, new platform id).

        ``key`` identifies the request (the ``!new`` event id): a re-run returns the
        chat the first run created instead of creating another."""
        async with self.lock(owner):
            user = await self.ensure_user(owner, None, await self.store.get_user(owner))
            await self.ensure_space(user)
            return await self.create_chat_locked(owner, name, key=key)

    async def ensure_space(self, user: UserRecord) -> str:
        if user.space_id:
            return user.space_id
        owner = user.user_id
        intent = await self.store.intent_by_key(f"space:{owner}")
        if intent is not None and intent.status == "done" and intent.room_id:
            await self.store.upsert_user(owner, space_id=intent.room_id)
            return intent.room_id
        if intent is not None and intent.status == "open":
            # An earlier attempt may have created it before a crash or a lost response.
            found = await self._find_room(SPACE_EVENT, owner, lambda f: f.space is not None)
            if found:
                log.info("space_adopted", user_id=owner, space_id=found)
                await self.store.upsert_user(owner, space_id=found)
                await self.store.complete_intent(intent.id, found)
                return found
        intent = await self.store.add_space_intent(owner)
        name = self.texts("space_name", brand=self.brand, name=user.display_name)
        space_id = await self.matrix.create_room(
            name=name,
            is_space=True,
            invite=[owner],
            preset="private_chat",
            power_level_content_override=self._power_levels(),
            initial_state=[
                {
                    "type": SPACE_EVENT,
                    "state_key": "",
                    "content": SpaceBinding(owner, user.dm_room_id).to_content(),
                }
            ],
        )
        await self.store.upsert_user(owner, space_id=space_id)
        await self.store.complete_intent(intent.id, space_id)
        log.info("space_created", user_id=owner, space_id=space_id)
        return space_id

    async def ensure_user(
        self, user_id: str, dm_room_id: str | None, user: UserRecord | None
    ) -> UserRecord:
        """The user's row, created if needed, with ``dm_room_id`` as their DM if they
        have none yet.

        A recorded DM is never replaced by another room: any room a user invites the
        bot to becomes "a DM" the bot answers in, and replacing the record each time
        made the first one unknown to the database — a room for reconciliation to
        adopt on the next start (issue 13). The bot still answers in the second
        room (the router treats every non-chat room as a DM); it is only not recorded,
        and the first contact there is logged (``dm_second_room``)."""
        display = user.display_name if user else None
        if not display:
            try:
                display = await self.matrix.get_display_name(user_id)
            except MatrixError:
                display = None
        recorded = user.dm_room_id if user is not None else None
        if recorded and dm_room_id and dm_room_id != recorded:
            log.info("dm_second_room", user_id=user_id, dm_room_id=recorded, other=dm_room_id)
            dm_room_id = None
        return await self.store.upsert_user(
            user_id, display_name=display or user_id, dm_room_id=dm_room_id
        )

    # ---- chats -----------------------------------------------------------

    async def first_chat(self, owner: str) -> ChatRecord:
        key = f"first:{owner}"
        if await self.store.intent_by_key(key) is None:
            chats = await self.store.chats_of(owner)
            if chats:
                return chats[0]  # rebuilt from Matrix (no intent survives a lost database)
        # With an intent, always go through it: a room reconciliation already put
        # into the database still needs its Space link and the intent completed.
        return await self.create_chat_locked(owner, None, key=key, welcome=True)

    async def create_chat_locked(
        self, owner: str, name: str | None, *, key: str, welcome: bool = False
    ) -> ChatRecord:
        chat = await self._chat_for_key(owner, name, key=key)
        if welcome:
            # Sent on every path (created, adopted after a lost response, re-run):
            # the txn id makes it exactly-once.
            user = await self.store.get_user(owner)
            await self.notifier.message(
                chat.room_id,
                self.texts("welcome", name=user.display_name if user else owner),
                txn_id=f"welcome.{chat.room_id}",
            )
        return chat

    async def _chat_for_key(self, owner: str, name: str | None, *, key: str) -> ChatRecord:
        intent = await self.store.intent_by_key(key)
        if intent is not None:
            # The same request again (a re-run after a crash): never a second room.
            if intent.status == "done" and intent.room_id:
                chat = await self.store.get_chat(intent.room_id)
                if chat is not None:
                    return chat
                return await self._finish_chat(intent, intent.room_id)
            user = await self.store.get_user(owner)
            space_id = user.space_id if user is not None else None

            def is_this_chat(facts: RoomFacts) -> bool:
                chat = facts.chat_for(owner, space_id)
                return chat is not None and chat.local_id == intent.local_id

            found = await self._find_room(CHAT_EVENT, owner, is_this_chat)
            if found:
                log.info("chat_adopted", owner=owner, local_id=intent.local_id, room_id=found)
                return await self._finish_chat(intent, found)
            return await self._create_from_intent(intent)
        have = len(await self.store.chats_of(owner, status=None))
        if have >= self.max_chats_per_user:
            log.info("chat_limit_reached", owner=owner, chats=have)
            raise ChatLimitError(self.max_chats_per_user)
        spec, _ = self.registry.for_user(owner)
        intent = await self.store.add_chat_intent(owner, name, spec.id, key)
        return await self._create_from_intent(intent)

    async def _create_from_intent(self, intent: Intent) -> ChatRecord:
        user = await self.store.get_user(intent.owner)
        assert user is not None
        assert user.space_id is not None
        assert intent.local_id
        assert intent.agent_id
        assert intent.platform_chat_id
        number = intent.local_id[1:]
        name = intent.name or self.texts("first_chat_name", n=number)
        content = ChatBinding(
            intent.owner, intent.local_id, intent.agent_id, intent.platform_chat_id, name
        ).to_content()
        room_id = await self.matrix.create_room(
            name=name,
            invite=[intent.owner],
            preset="private_chat",
            power_level_content_override=self._power_levels(),
            initial_state=[
                {"type": CHAT_EVENT, "state_key": "", "content": content},
                {
                    "type": "m.space.parent",
                    "state_key": user.space_id,
                    "content": {"via": [self.server_name], "canonical": True},
                },
                *self._encryption_state(),
            ],
        )
        chat = await self._finish_chat(attrs.evolve(intent, name=name), room_id)
        log.info(
            "chat_created",
            owner=intent.owner,
            local_id=intent.local_id,
            room_id=room_id,
            platform_chat_id=intent.platform_chat_id,
        )
        return chat

    async def _finish_chat(self, intent: Intent, room_id: str) -> ChatRecord:
        user = await self.store.get_user(intent.owner)
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
            status=ChatStatus.ACTIVE,
            flags={},
        )
        await self.store.put_chat(chat)
        if user.space_id:
            await self.link_child(user.space_id, room_id)
        await self.store.complete_intent(intent.id, room_id)
        return chat

    async def link_child(self, space_id: str, room_id: str, *, linked: bool = True) -> None:
        content = {"via": [self.server_name], "suggested": True} if linked else {}
        await self.matrix.put_state_event(space_id, "m.space.child", content, state_key=room_id)

    async def write_chat_state(self, chat: ChatRecord) -> None:
        await self.mirror.write_chat(chat)

    # ---- helpers ---------------------------------------------------------

    def _encryption_state(self) -> list[dict]:
        if not self.encryption:
            return []
        return [
            {"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION_CONTENT},
            # The preset's default, said out loud: invitees get the room key, so the
            # welcome sent right after the invite is readable (a server configured
            # with another default would otherwise decide that).
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "shared"},
            },
        ]

    def _power_levels(self) -> dict | None:
        """No override: the ``private_chat`` preset already gives the creator (the
        bot) full power, and room version 12 (MSC4289) forbids listing creators in
        ``users`` at all (Synapse rejects the createRoom)."""
        return None

    async def invite_all(self, user_id: str, rooms: Iterable[str]) -> None:
        for room_id in rooms:
            try:
                await self.matrix.invite(room_id, user_id)
                self.invited(room_id)
            except MatrixError as exc:
                # Already joined, or the room is gone: log and go on with the others.
                log.info(
                    "reinvite_skipped", room_id=room_id, status=exc.status, errcode=exc.errcode
                )

    async def _find_room(
        self, event_type: str, owner: str, match: Callable[[RoomFacts], bool]
    ) -> str | None:
        """The bot's room whose ``event_type`` binding names ``owner`` and that
        ``match`` accepts — judged by the trust rule (``trust``): a binding the bot
        sent, in a room the bot created. Content first (one small request per
        room), the full state only for a room that claims to be the one."""
        for room_id in await self.matrix.joined_rooms():
            try:
                content = await self.matrix.get_state_event(room_id, event_type)
                if not content or content.get("owner") != owner:
                    continue
                facts = await read_room(self.matrix, room_id, self.bot_user_id)
            except MatrixError:
                continue
            if match(facts):
                return room_id
            log.warning("adopt_refused", room_id=room_id, owner=owner, reason=facts.distrust)
        return None
