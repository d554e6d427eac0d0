"""Rebuild state from Matrix: the Space tree and the bot's own state events.

Run at start for every joined room the database does not know (all of them
after a lost database). Never creates rooms; idempotent; reports what it found.
The platform chat id counter is raised past every recovered id, so a rebuilt
bot never hands out an id an agent already has memory for.

Only what the bot wrote counts (``trust``): a forged binding in a user's room is
logged (``reconcile_untrusted``) and ignored. What the bot wrote can still
disagree with the database or with itself — two rooms claiming one ``C<n>`` or one
platform chat id, two Spaces for one user — and then the database wins, then the
older room; each such case is logged as ``reconcile_conflict`` with both room
ids. Nothing found in a room can stop the start: only a homeserver that does not
answer makes reconciliation fail (and the caller waits for it to answer).
"""

from __future__ import annotations

import attrs
import structlog
import trio

from matrix_client import MatrixClient, MatrixError
from surfaces.config import AgentRegistry
from surfaces.core import CHAT_EVENT, SPACE_EVENT, ChatBinding, SpaceBinding
from surfaces.session import homeserver_unavailable
from surfaces.state import ChatConflictError, ChatRecord, Store
from surfaces.workspaces.trust import RoomFacts, oldest_first, read_room

log = structlog.get_logger(__name__)

CONCURRENCY = 8


@attrs.define
class ReconcileReport:
    scanned: int = 0
    chats: int = 0
    spaces: int = 0
    other: int = 0
    untrusted: int = 0
    conflicts: int = 0
    errors: int = 0
    users: set[str] = attrs.field(factory=set)


async def reconcile(
    matrix: MatrixClient, store: Store, registry: AgentRegistry, bot_user_id: str
) -> ReconcileReport:
    joined = await matrix.joined_rooms()
    known = await store.known_rooms()
    unknown = [room for room in joined if room not in known]
    report = ReconcileReport(scanned=len(unknown))
    if not unknown:
        return report
    run = _Reconcile(matrix, store, registry, bot_user_id, report)
    found = await run.read_all(unknown)
    await run.adopt_spaces([f for f in found if f.space is not None])
    await run.adopt_chats([f for f in found if f.chat is not None])
    report.other = sum(1 for f in found if f.chat is None and f.space is None)
    log.info(
        "state_reconciled",
        scanned=report.scanned,
        chats=report.chats,
        spaces=report.spaces,
        other_rooms=report.other,
        untrusted=report.untrusted,
        conflicts=report.conflicts,
        errors=report.errors,
        users=sorted(report.users),
        platform_chat_seq=await store.get_value(Store.PLATFORM_SEQ_KEY),
    )
    return report


@attrs.define
class _Reconcile:
    matrix: MatrixClient
    store: Store
    registry: AgentRegistry
    bot: str
    report: ReconcileReport
    #: Spaces read for checking chat links, by room id (the unknown ones and the
    #: owners' Spaces the database already knows).
    _spaces: dict[str, RoomFacts] = attrs.field(factory=dict)

    async def read_all(self, rooms: list[str]) -> list[RoomFacts]:
        found: list[RoomFacts] = []
        limiter = trio.CapacityLimiter(CONCURRENCY)

        async def inspect(room_id: str) -> None:
            async with limiter:
                facts = await self._read(room_id)
            if facts is None:
                return
            if facts.distrust is not None:
                self.report.untrusted += 1
                log.warning("reconcile_untrusted", room_id=room_id, reason=facts.distrust)
            found.append(facts)

        async with trio.open_nursery() as nursery:
            for room_id in rooms:
                nursery.start_soon(inspect, room_id)
        return oldest_first(found)

    async def _read(self, room_id: str, *, claimed: bool = False) -> RoomFacts | None:
        """The room's facts; ``claimed=False`` first asks for the two binding events
        (small answers) and reads the full state only when one is well formed, so a
        room with megabytes of state costs that only when it claims to be ours."""
        try:
            if not claimed and not await self._claims_a_binding(room_id):
                return RoomFacts(room_id, bot_created=False, is_space=False, created_ts=0)
            return await read_room(self.matrix, room_id, self.bot)
        except MatrixError as exc:
            if homeserver_unavailable(exc):
                raise  # the whole reconciliation waits for the server (idempotent)
            # The server answered for this room (we were kicked, it is gone): skip it.
            self.report.errors += 1
            log.warning("reconcile_room_failed", room_id=room_id, status=exc.status)
            return None

    async def _claims_a_binding(self, room_id: str) -> bool:
        chat = await self.matrix.get_state_event(room_id, CHAT_EVENT)
        if ChatBinding.from_content(chat) is not None:
            return True
        space = await self.matrix.get_state_event(room_id, SPACE_EVENT)
        return SpaceBinding.from_content(space) is not None

    async def adopt_spaces(self, spaces: list[RoomFacts]) -> None:
        for facts in spaces:  # oldest first: the older of two Spaces of one user wins
            assert facts.space is not None
            self._spaces[facts.room_id] = facts
            owner = facts.space.owner
            user = await self.store.get_user(owner)
            if user is not None and user.space_id and user.space_id != facts.room_id:
                self._conflict("space", owner, kept=user.space_id, dropped=facts.room_id)
                continue
            # A DM already recorded is never replaced (see Rooms.ensure_user).
            dm = facts.space.dm_room_id if user is None or not user.dm_room_id else None
            await self.store.upsert_user(owner, space_id=facts.room_id, dm_room_id=dm)
            self.report.users.add(owner)
            self.report.spaces += 1

    async def adopt_chats(self, chats: list[RoomFacts]) -> None:
        for facts in chats:  # oldest first: the older of two rooms claiming one id wins
            chat = facts.chat
            assert chat is not None
            if not await self._listed(facts):
                self.report.untrusted += 1
                log.warning(
                    "reconcile_untrusted",
                    room_id=facts.room_id,
                    reason="chat_not_listed_in_the_owners_space",
                    owner=chat.owner,
                )
                continue
            record = ChatRecord.from_binding(facts.room_id, chat)
            if self.registry.get(chat.agent_id) is None:
                spec, _ = self.registry.for_user(chat.owner)
                log.warning(
                    "reconcile_agent_unknown",
                    room_id=facts.room_id,
                    agent_id=chat.agent_id[:100],
                    using=spec.id,
                )
                record = attrs.evolve(record, agent_id=spec.id)
            try:
                await self.store.put_chat(record)
            except ChatConflictError as exc:
                self._conflict(exc.field, chat.owner, kept=exc.room_id, dropped=facts.room_id)
                continue
            self.report.users.add(chat.owner)
            self.report.chats += 1

    async def _listed(self, chat: RoomFacts) -> bool:
        """Whether a trusted Space of the chat's owner lists the room."""
        assert chat.chat is not None
        owner = chat.chat.owner
        candidates = [s for s in self._spaces.values() if s.space and s.space.owner == owner]
        user = await self.store.get_user(owner)
        if user is not None and user.space_id and user.space_id not in self._spaces:
            facts = await self._read(user.space_id, claimed=True)
            if facts is not None:
                self._spaces[user.space_id] = facts
                candidates.append(facts)
        return any(space.lists(chat) for space in candidates)

    def _conflict(self, what: str, owner: str, *, kept: str, dropped: str) -> None:
        self.report.conflicts += 1
        log.warning("reconcile_conflict", what=what, owner=owner, kept=kept, dropped=dropped)
