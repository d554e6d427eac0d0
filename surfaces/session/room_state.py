"""What encrypting in a room needs to know about it: its ``m.room.encryption``
settings, its history visibility and its joined and invited members.

Read once per room from the homeserver (``GET /rooms/{id}/state``: one request has all
three) when a send needs it, then kept current from ``/sync``: the bot's filter
lazy-loads members, so the sync state block alone never lists them all, but every
membership change is a timeline event. Rooms are kept in a bounded LRU; a room that
falls out is read again on its next send, and sync events of rooms not held are
ignored, except ``m.room.encryption`` (remembered cheaply, so intake knows which rooms
are encrypted without a request).

A read that overlaps a sync batch touching the same room could miss a change made
between the server's answer and the batch; such a read is repeated (bounded).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import structlog

from matrix_client import MatrixClient, RoomEvent, SyncBatch
from matrix_client.crypto import MEGOLM_ALGORITHM, EncryptionSettings, HistoryVisibility, Membership

log = structlog.get_logger(__name__)

#: Rooms whose members and settings are held (a bot room has two or three members).
MAX_ROOMS = 5_000
#: Reads of one room's state that may be repeated because a batch changed it meanwhile.
MAX_READS = 3


@attrs.frozen
class RoomCrypto:
    """A room as key sharing sees it."""

    #: The ``m.room.encryption`` content, ``None`` for an unencrypted room.
    encryption: Mapping[str, Any] | None
    history_visibility: HistoryVisibility
    #: Joined and invited members (user id → membership); nobody else gets keys.
    members: Mapping[str, Membership]

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def settings(self) -> EncryptionSettings:
        return EncryptionSettings.from_content(dict(self.encryption or {}))


@attrs.define
class _Room:
    encryption: dict[str, Any] | None = None
    visibility: HistoryVisibility = HistoryVisibility.SHARED
    #: ``None`` until read from the server (then kept current from sync).
    members: dict[str, Membership] | None = None


def _encryption(content: Mapping[str, Any]) -> dict[str, Any] | None:
    """An ``m.room.encryption`` content we can speak, else ``None`` (unknown algorithm:
    we cannot encrypt for it, so we do not pretend the room is one we can)."""
    return dict(content) if content.get("algorithm") == MEGOLM_ALGORITHM else None


@attrs.define
class RoomStates:
    matrix: MatrixClient
    max_rooms: int = MAX_ROOMS
    _rooms: OrderedDict[str, _Room] = attrs.field(factory=OrderedDict)
    #: Rooms encrypted as seen in sync, held or not (bounded like the rooms).
    _encrypted_seen: OrderedDict[str, dict[str, Any]] = attrs.field(factory=OrderedDict)
    #: Rooms being read, and whether a batch touched them meanwhile.
    _reading: dict[str, bool] = attrs.field(factory=dict)

    # ---- from sync ----------------------------------------------------------------

    def observe(self, batch: SyncBatch) -> None:
        """Apply a batch's state changes (state blocks, then timelines, in order)."""
        for room_id, room in batch.response.rooms.join.items():
            self.observe_events(room_id, room.state.events)
            self.observe_events(room_id, room.timeline.events)
        for room_id in batch.left:
            self._rooms.pop(room_id, None)
            self._encrypted_seen.pop(room_id, None)

    def observe_events(self, room_id: str, events: Iterable[RoomEvent]) -> None:
        for event in events:
            if event.state_key is None:
                continue
            if event.type == "m.room.encryption" and event.state_key == "":
                encryption = _encryption(event.content)
                if encryption is not None:
                    self._remember_encrypted(room_id, encryption)
            if room_id in self._reading:
                self._reading[room_id] = True
            room = self._rooms.get(room_id)
            if room is not None:
                _apply(room, event)

    def _remember_encrypted(self, room_id: str, encryption: dict[str, Any]) -> None:
        self._encrypted_seen[room_id] = encryption
        self._encrypted_seen.move_to_end(room_id)
        while len(self._encrypted_seen) > self.max_rooms:
            self._encrypted_seen.popitem(last=False)

    # ---- reads ---------------------------------------------------------------------

    def known_encrypted(self, room_id: str) -> bool | None:
        """Whether the room is encrypted, ``None`` when we do not know without asking."""
        room = self._rooms.get(room_id)
        if room is not None and room.members is not None:
            return room.encryption is not None
        if room_id in self._encrypted_seen:
            return True
        return None

    async def is_encrypted(self, room_id: str) -> bool:
        """Whether the room is encrypted (one state request the first time)."""
        known = self.known_encrypted(room_id)
        if known is not None:
            return known
        return (await self.get(room_id)).encrypted

    async def get(self, room_id: str) -> RoomCrypto:
        """The room's settings and members, read from the server when not held.

        Raises what the client raises (callers bound the call with their deadline).
        """
        room = self._rooms.get(room_id)
        if room is None or room.members is None:
            room = await self._read(room_id)
        self._rooms.move_to_end(room_id)
        return RoomCrypto(room.encryption, room.visibility, dict(room.members or {}))

    async def _read(self, room_id: str) -> _Room:
        room = _Room()
        for _ in range(MAX_READS):
            self._reading[room_id] = False
            try:
                events = await self.matrix.get_state(room_id)
            finally:
                touched = self._reading.pop(room_id, False)
            room = _Room(members={})
            for event in events:
                _apply(room, event)
            if not touched:
                break
            log.debug("room_state_reread", room_id=room_id)
        if room.encryption is not None:
            self._remember_encrypted(room_id, room.encryption)
        self._rooms[room_id] = room
        self._rooms.move_to_end(room_id)
        while len(self._rooms) > self.max_rooms:
            self._rooms.popitem(last=False)
        return room

    def forget(self, room_id: str) -> None:
        """Read the room again next time (e.g. the bot just created it)."""
        self._rooms.pop(room_id, None)


def _apply(room: _Room, event: RoomEvent) -> None:
    content = event.content if isinstance(event.content, dict) else {}
    if event.type == "m.room.encryption" and event.state_key == "":
        # A room never becomes unencrypted (spec): a later event can only change settings.
        room.encryption = _encryption(content) or room.encryption
    elif event.type == "m.room.history_visibility" and event.state_key == "":
        room.visibility = HistoryVisibility.parse(content.get("history_visibility"))
    elif event.type == "m.room.member" and room.members is not None and event.state_key:
        membership = content.get("membership")
        if membership in ("join", "invite"):
            room.members[event.state_key] = Membership(membership)
        else:
            room.members.pop(event.state_key, None)
