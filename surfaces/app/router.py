"""What the bot does with each admitted inbox item: the lanes call the router, and the
router picks the part that handles it (onboarding, a command, staging, a turn, a
correction, a reaction).

With encryption (``crypto`` set): an ``ENCRYPTED`` item is a message the bot could not
decrypt and gets the "could not decrypt" notice; a message that came in clear in an
encrypted room is ignored (a client in an encrypted room never sends one, so it is
someone injecting events)."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import structlog

from matrix_client import MatrixClient, MatrixError
from surfaces.commands import MAX_NAME_CHARS, Commands, Corrections, Reactions
from surfaces.core import ChatStatus, ItemKind, Lane
from surfaces.delivery import Notifier, answer_relation
from surfaces.intake import CommandName, parse_command
from surfaces.session import Crypto
from surfaces.state import ChatRecord, InboxItem, Store
from surfaces.turns import IncomingFiles, TurnRequest, TurnRunner
from surfaces.workspaces import Onboarding, Threads

log = structlog.get_logger(__name__)


#: Commands that work in an archived chat (the rest get "this chat is archived"): none
#: of them talks to the agent (an archived chat's transcript can be read, saved, deleted).
_ARCHIVE_OK = frozenset(
    {
        CommandName.NEW,
        CommandName.CHATS,
        CommandName.HELP,
        CommandName.CONTEXT,
        CommandName.SAVE,
        CommandName.SNAPSHOTS,
        CommandName.FORGET,
    }
)
#: What a client encrypts in an encrypted room (so a clear copy there is forged).
_ENCRYPTED_IN_E2EE_ROOMS = frozenset(
    {
        ItemKind.TEXT,
        ItemKind.COMMAND,
        ItemKind.FILE,
        ItemKind.EDIT,
        ItemKind.REACTION,
        ItemKind.UNSUPPORTED,
    }
)
#: Silent about anything but the owner's own (others' reactions, edits, redactions
#: are theirs, not requests to the bot).
_OWNER_ONLY_SILENT = frozenset({ItemKind.REACTION, ItemKind.REDACTION, ItemKind.EDIT})


#: The notice for what intake could not pass on (``UNSUPPORTED`` items' ``what``).
_UNSUPPORTED = {
    "location": "unsupported_location",
    "sticker": "unsupported_sticker",
    "poll": "unsupported_poll",
}


@attrs.define
class Router:
    matrix: MatrixClient
    store: Store
    notifier: Notifier
    onboarding: Onboarding
    commands: Commands
    runner: TurnRunner
    files: IncomingFiles
    threads: Threads
    corrections: Corrections
    reactions: Reactions
    merge_max: int = 1
    crypto: Crypto | None = None
    #: Items admitted and not finished per lane (``LaneSupervisor.pending``): a turn
    #: looks for messages to merge only when something waits behind it.
    queued: Callable[[Lane], int] = lambda lane: 0

    async def __call__(self, item: InboxItem) -> int:
        """Act on one item; returns how many items it already marked finished (a
        turn: the item and the messages merged into it)."""
        if item.kind is ItemKind.INVITE:
            await self._invite(item)
        elif item.kind is ItemKind.BUSY:
            await self.notifier.notice(
                item.room_id, "busy", txn_id=item.event_id, n=item.payload.get("n", 0)
            )
        elif item.kind is ItemKind.LIMIT:
            await self.notifier.notice(
                item.room_id,
                item.payload.get("key", "budget_turns"),
                txn_id=item.event_id,
                seconds=item.payload.get("seconds", 1),
            )
        else:
            return await self._room_event(item)
        return 0

    async def _invite(self, item: InboxItem) -> None:
        try:
            await self.matrix.join(item.room_id)
        except MatrixError as exc:
            # The invite was withdrawn or the room is gone: nothing to do.
            log.warning("invite_join_failed", status=exc.status, errcode=exc.errcode)
            return
        log.info("invite_accepted", inviter=item.sender)
        await self.onboarding.on_dm_contact(
            item.sender,
            item.room_id,
            key=item.event_id,
            # With encryption the bot reads encrypted DMs: nothing to warn about.
            encrypted=bool(item.payload.get("encrypted")) and self.crypto is None,
        )

    async def _room_event(self, item: InboxItem) -> int:
        if await self._forged_in_clear(item):
            log.warning("plaintext_in_encrypted_room_ignored", room_id=item.room_id)
            return 0
        if item.kind is ItemKind.ENCRYPTED and self.crypto is not None:
            await self.notifier.notice(
                item.room_id,
                "undecryptable",
                txn_id=f"{item.event_id}.utd",
                count=item.payload.get("count", 1),
            )
            return 0
        chat = await self.store.get_chat(item.room_id)
        if chat is None:
            await self._dm_event(item)
            return 0
        kind = item.kind
        if item.sender != chat.owner:
            if kind in _OWNER_ONLY_SILENT:
                return 0
            if await self.store.set_chat_flag(chat.room_id, f"not_owner:{item.sender}"):
                await self.notifier.notice(
                    chat.room_id, "not_owner", txn_id=f"{item.event_id}.r", owner=chat.owner
                )
            return 0
        if kind is ItemKind.ENCRYPTED:
            return 0  # our rooms are unencrypted; never loop on what we cannot read
        body = item.payload.get("body", "")
        cmd = parse_command(body) if kind is ItemKind.COMMAND else None
        if chat.status is ChatStatus.ARCHIVED and (cmd is None or cmd.name not in _ARCHIVE_OK):
            if kind not in _OWNER_ONLY_SILENT:
                await self.notifier.notice(
                    chat.room_id, "archived_room", txn_id=f"{item.event_id}.r"
                )
            return 0
        if cmd is not None:
            await self.commands.handle(item, chat, cmd)
        elif kind is ItemKind.TEXT or (kind is ItemKind.FILE and item.payload.get("caption")):
            return await self._turn(item, chat)
        elif kind is ItemKind.FILE:
            await self.files.stage(item, chat)
        elif kind is ItemKind.EDIT:
            await self.corrections.edit(item, chat)
        elif kind is ItemKind.RERUN:
            return await self.corrections.rerun(item, chat)
        elif kind is ItemKind.REACTION:
            return await self.reactions.handle(item, chat)
        elif kind is ItemKind.REDACTION:
            await self.corrections.redact(item, chat)
        elif kind is ItemKind.UNSUPPORTED:
            await self.notifier.notice(
                chat.room_id,
                _UNSUPPORTED.get(item.payload.get("what"), "unsupported_other"),
                txn_id=f"{item.event_id}.r",
                relation=answer_relation(item),
            )
        return 0

    async def _turn(self, item: InboxItem, chat: ChatRecord) -> int:
        """A turn for ``item`` and the messages queued behind it (merged, bounded)."""
        platform_id = await self.threads.platform_chat_id(chat, item.thread)
        merge = self.merge_max if self.queued(item.lane) > 1 else 1
        request = TurnRequest(item, chat, platform_id, merge_max=merge)
        return await self.runner.run(request)

    async def _forged_in_clear(self, item: InboxItem) -> bool:
        """A message sent in clear in a room that is encrypted (see the module docstring);
        redactions are never encrypted, and hand-offs are the bot's own."""
        if self.crypto is None or item.payload.get("e2ee"):
            return False
        if item.kind not in _ENCRYPTED_IN_E2EE_ROOMS:
            return False
        return await self.crypto.is_encrypted(item.room_id)

    async def _dm_event(self, item: InboxItem) -> None:
        """A message in a room that is not a working chat: the user's DM (or a
        Space). Provisioned users are re-invited; ``!new`` creates a chat."""
        user = await self.store.get_user(item.sender)
        if user is not None and user.space_id == item.room_id:
            return
        if item.kind not in (ItemKind.TEXT, ItemKind.COMMAND, ItemKind.ENCRYPTED):
            return  # a file, reaction, edit… in the DM: not a request to onboard
        body = item.payload.get("body", "")
        cmd = parse_command(body) if item.kind is ItemKind.COMMAND else None
        await self.onboarding.on_dm_contact(
            item.sender,
            item.room_id,
            key=item.event_id,
            encrypted=item.kind is ItemKind.ENCRYPTED,
            new_chat=cmd is not None and cmd.name == CommandName.NEW,
            new_chat_name=(cmd.args[:MAX_NAME_CHARS] or None) if cmd is not None else None,
        )
