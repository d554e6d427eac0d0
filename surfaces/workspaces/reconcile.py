"""Rebuild state from Matrix: the Space tree and the bot's own state events.

Run at start for every joined room the database does not know (all of them
after a lost database); a recovered chat's threads come back with it
(``surfaces.workspaces.threads``). Never creates rooms; idempotent; reports what it found.
The platform chat id counter is raised past every recovered id, so a rebuilt
bot never hands out an id an agent already has memory for.
"""

from __future__ import annotations

import attrs
import structlog
import trio

from matrix_client import MatrixClient, MatrixError
from surfaces.core import CHAT_EVENT, SPACE_EVENT, ChatBinding, SpaceBinding
from surfaces.state import ChatRecord, Store
from surfaces.workspaces.threads import restore_threads

log = structlog.get_logger(__name__)

CONCURRENCY = 8


@attrs.define
class ReconcileReport:
    scanned: int = 0
    chats: int = 0
    spaces: int = 0
    other: int = 0
    threads: int = 0
    errors: int = 0
    users: set[str] = attrs.field(factory=set)


async def reconcile(matrix: MatrixClient, store: Store) -> ReconcileReport:
    joined = await matrix.joined_rooms()
    known = await store.known_rooms()
    unknown = [room for room in joined if room not in known]
    report = ReconcileReport(scanned=len(unknown))
    if not unknown:
        return report
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def inspect(room_id: str) -> None:
        async with limiter:
            try:
                chat = ChatBinding.from_content(await matrix.get_state_event(room_id, CHAT_EVENT))
                if chat is not None:
                    await store.upsert_user(chat.owner)
                    report.users.add(chat.owner)
                    await store.put_chat(ChatRecord.from_binding(room_id, chat))
                    report.chats += 1
                    report.threads += await restore_threads(matrix, store, room_id)
                    return
                space = SpaceBinding.from_content(
                    await matrix.get_state_event(room_id, SPACE_EVENT)
                )
                if space is not None:
                    await store.upsert_user(
                        space.owner, space_id=room_id, dm_room_id=space.dm_room_id
                    )
                    report.users.add(space.owner)
                    report.spaces += 1
                    return
                report.other += 1
            except MatrixError as exc:
                report.errors += 1
                log.warning("reconcile_room_failed", room_id=room_id, status=exc.status)

    async with trio.open_nursery() as nursery:
        for room_id in unknown:
            nursery.start_soon(inspect, room_id)
    log.info(
        "state_reconciled",
        scanned=report.scanned,
        chats=report.chats,
        spaces=report.spaces,
        threads=report.threads,
        other_rooms=report.other,
        errors=report.errors,
        users=sorted(report.users),
        platform_chat_seq=await store.get_value(Store.PLATFORM_SEQ_KEY),
    )
    return report
