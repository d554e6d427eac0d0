"""Onboarding: what a user's DM with the bot does.

First contact (an invite to a DM, or a message there) provisions the workspace once: a
Space, the first chat, invites, a welcome, and a reply in the DM. Later contact
re-invites the user to the Space and the active chats (creating one when none is
active), and ``!new`` in the DM creates a chat. Everything runs under the user's lock
(``Rooms.lock``) and is keyed by the triggering event, so a re-run after a crash
finishes the same work instead of doing it twice.
"""

from __future__ import annotations

import attrs

from surfaces.delivery import Notifier
from surfaces.i18n import Texts
from surfaces.state import Store, UserRecord
from surfaces.workspaces.rooms import ChatLimitError, Rooms


@attrs.define
class Onboarding:
    rooms: Rooms
    store: Store
    notifier: Notifier
    texts: Texts

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
        async with self.rooms.lock(user_id):
            user = await self.store.get_user(user_id)
            fresh = not await self._provisioned(user)
            user = await self.rooms.ensure_user(user_id, dm_room_id, user)
            if encrypted and not user.flags.get("encrypted_dm_notice"):
                # Notice first, flag after: a crash in between re-runs this item with
                # the same txn id, so the outbox still sends the notice only once.
                await self.notifier.notice(dm_room_id, "dm_encrypted", txn_id=f"{key}.enc")
                await self.store.set_user_flag(user_id, "encrypted_dm_notice")
            if fresh:
                space_id = await self.rooms.ensure_space(user)
                chat = await self.rooms.first_chat(user_id)
                await self.rooms.invite_all(user_id, [space_id, chat.room_id])
                await self.notifier.notice(
                    dm_room_id,
                    "dm_provisioned",
                    txn_id=f"{key}.dm",
                    space=self.texts("space_name", brand=self.rooms.brand, name=user.display_name),
                    chat=chat.name,
                )
                return
            space_id = await self.rooms.ensure_space(user)
            if new_chat:
                try:
                    chat = await self.rooms.create_chat_locked(user_id, new_chat_name, key=key)
                except ChatLimitError as exc:
                    await self.notifier.notice(
                        dm_room_id, "chat_limit", txn_id=f"{key}.dm", limit=exc.limit
                    )
                    return
                await self.notifier.notice(
                    dm_room_id,
                    "chat_created",
                    txn_id=f"{key}.dm",
                    name=chat.name,
                    local_id=chat.local_id,
                )
                return
            chats = await self.store.chats_of(user_id)
            if not chats:
                try:
                    chat = await self.rooms.create_chat_locked(user_id, None, key=key)
                except ChatLimitError as exc:  # every chat archived, and no room for more
                    await self.rooms.invite_all(user_id, [space_id])
                    await self.notifier.notice(
                        dm_room_id, "chat_limit", txn_id=f"{key}.dm", limit=exc.limit
                    )
                    return
                await self.rooms.invite_all(user_id, [space_id])
                await self.notifier.notice(
                    dm_room_id, "dm_reinvited_new_chat", txn_id=f"{key}.dm", chat=chat.name
                )
                return
            await self.rooms.invite_all(user_id, [space_id, *(c.room_id for c in chats)])
            await self.notifier.notice(
                dm_room_id, "dm_reinvited", txn_id=f"{key}.dm", count=len(chats)
            )

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
        first = await self.store.intent_by_key(f"first:{user.user_id}")
        if first is not None:
            return first.status == "done"
        return bool(await self.store.chats_of(user.user_id, status=None))
