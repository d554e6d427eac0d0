"""Decryption before intake, and the encrypted events that wait for their room keys.

With encryption on, the sync task hands each batch to :func:`decrypting_intake` instead
of ``classify`` alone: the batch's room keys go into the machine first, every
``m.room.encrypted`` event is decrypted (same event id, sender and ``m.relates_to``),
and the plaintext batch is classified as usual — so the rest of the bot only ever sees
plaintext. Items that came encrypted carry ``payload["e2ee"] = True`` (the router
ignores plaintext messages in encrypted rooms: anyone who can inject events could
forge those). What does not decrypt:

* its key is missing → a key request goes out and the event **waits** (``e2ee_waiting``,
  committed with the batch and its token). A later batch bringing the key decrypts and
  classifies it then; after :data:`WAIT_FOR_KEY_S` :func:`expire_waiting` gives up on it
  (the key request is cancelled) and the room gets one "could not decrypt" notice for
  what it gave up on at once;
* it can never be read (forged, corrupt, unknown algorithm) → an ``ENCRYPTED`` item,
  answered by that notice at once;
* it replays a message index another event used → dropped.

Everything here happens in memory; the caller commits the machine's changes, the items
and the waiting rows in the batch's one transaction (``Store.admit``).
"""

from __future__ import annotations

import time

import attrs
import structlog
import trio

from matrix_client import RoomEvent, SyncBatch, TimelineItem
from surfaces.core import ItemKind, Lane
from surfaces.intake import IntakePolicy, LaneSupervisor, classify
from surfaces.session import Crypto, Decrypted
from surfaces.state import InboxItem, Store, WaitingEvent

log = structlog.get_logger(__name__)

#: How long an event waits for its room key before the user is told.
WAIT_FOR_KEY_S = 120.0
#: Events waiting at most (beyond it a new undecryptable event is answered at once).
MAX_WAITING = 1_000
#: How often the waiting events are checked for expiry, and how many per round.
EXPIRY_EVERY_S = 10.0
EXPIRY_BATCH = 200
#: ``payload["reason"]`` of an ``ENCRYPTED`` item.
REASON_MISSING_KEY = "missing_key"


@attrs.frozen
class Intake:
    """What one batch becomes: inbox items, events to keep waiting, waits resolved."""

    items: list[InboxItem]
    waiting: list[WaitingEvent]
    resolved: list[str]


async def decrypting_intake(
    batch: SyncBatch, policy: IntakePolicy, crypto: Crypto, store: Store
) -> Intake:
    """The batch's inbox items, its events to keep waiting and the waits it resolved."""
    settled = crypto.receive(batch)
    events: list[TimelineItem] = []
    plaintext: set[str] = set()
    missing: dict[str, str] = {}  # event id -> session id
    reasons: dict[str, str] = {}
    for entry in batch.events:
        if entry.event.type != "m.room.encrypted":
            events.append(entry)
            continue
        result = crypto.decrypt(entry.room_id, entry.event)
        if result.outcome is Decrypted.REPLAYED:
            continue
        if result.outcome is Decrypted.PLAINTEXT:
            events.append(TimelineItem(entry.room_id, result.event))
            plaintext.add(entry.event.event_id)
            continue
        events.append(entry)
        if result.outcome is Decrypted.MISSING_KEY and result.session_id is not None:
            missing[entry.event.event_id] = result.session_id
        else:
            reasons[entry.event.event_id] = result.reason or "unreadable"

    resolved: list[str] = []
    for waited in await store.waiting_for(sorted(settled)) if settled else []:
        result = crypto.decrypt(waited.room_id, RoomEvent.from_json(waited.event))
        if result.outcome is Decrypted.MISSING_KEY:
            continue  # the key came, but only from a later message index: keep waiting
        resolved.append(waited.event_id)
        if result.outcome is Decrypted.PLAINTEXT:
            events.append(TimelineItem(waited.room_id, result.event))
            plaintext.add(waited.event_id)
            log.info("crypto_late_key_decrypted", room_id=waited.room_id, event_id=waited.event_id)
        elif result.outcome is Decrypted.UNREADABLE:
            events.append(TimelineItem(waited.room_id, result.event))
            reasons[waited.event_id] = result.reason or "unreadable"

    room_for_waiting = MAX_WAITING - (await store.waiting_count() if missing else 0)
    items: list[InboxItem] = []
    waiting: list[WaitingEvent] = []
    raw_events = {e.event.event_id: e for e in events}
    for item in classify(attrs.evolve(batch, events=events), policy):
        if item.kind is ItemKind.ENCRYPTED:
            session_id = missing.get(item.event_id)
            if session_id is not None and len(waiting) < room_for_waiting:
                event = raw_events[item.event_id].event
                waiting.append(
                    WaitingEvent(item.event_id, item.room_id, session_id, event.to_json())
                )
                log.info("crypto_event_waits_for_key", room_id=item.room_id, event_id=item.event_id)
                continue
            reason = reasons.get(item.event_id, REASON_MISSING_KEY)
            item = attrs.evolve(item, payload={"reason": reason, "count": 1})
        elif item.event_id in plaintext:
            item = attrs.evolve(item, payload={**item.payload, "e2ee": True})
        items.append(item)
    return Intake(items, waiting, resolved)


async def expire_waiting(
    crypto: Crypto, store: Store, lanes: LaneSupervisor, *, now: float | None = None
) -> int:
    """Give up on the events that waited too long: one ``ENCRYPTED`` item per room (its
    notice says how many), the key requests cancelled; returns how many expired."""
    cutoff = (time.time() if now is None else now) - WAIT_FOR_KEY_S
    if not await store.waiting_older_than(cutoff, 1):
        return 0
    async with crypto.transaction() as take:
        # Read again under the machine's lock: the sync task admits under it too, so an
        # event it just decrypted is gone here, never both answered and given up on.
        expired = await store.waiting_older_than(cutoff, EXPIRY_BATCH)
        by_room: dict[str, list[WaitingEvent]] = {}
        for waited in expired:
            by_room.setdefault(waited.room_id, []).append(waited)
            crypto.give_up(waited.room_id, waited.session_id)
        items = [
            InboxItem(
                group[0].event_id,
                Lane.room(room_id),
                room_id,
                str(group[0].event.get("sender", "")),
                ItemKind.ENCRYPTED,
                {"reason": REASON_MISSING_KEY, "count": len(group)},
            )
            for room_id, group in by_room.items()
        ]
        admitted = await store.admit(
            None, items, crypto=take(), resolved=[w.event_id for w in expired]
        )
    if expired:
        log.warning("crypto_events_undecryptable", events=len(expired), rooms=len(by_room))
    for item in admitted:
        lanes.dispatch(item)
    crypto.wake()
    return len(expired)


async def run_expiry(
    crypto: Crypto, store: Store, lanes: LaneSupervisor, *, every_s: float = EXPIRY_EVERY_S
) -> None:
    """The task that expires waiting events, until cancelled."""
    while True:
        await trio.sleep(every_s)
        await expire_waiting(crypto, store, lanes)
