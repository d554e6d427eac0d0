"""Typed views of Matrix responses (attrs classes).

Only the fields the client and the bot use are modelled; unknown fields are
ignored, so newer servers do not break parsing. JSON becomes these classes
through the one converter in :mod:`matrix_client._converter`.
"""

from __future__ import annotations

from typing import Any

import attrs

JsonDict = dict[str, Any]


@attrs.frozen
class Versions:
    """``GET /_matrix/client/versions``."""

    versions: list[str] = attrs.field(factory=list)
    unstable_features: JsonDict = attrs.field(factory=dict)

    def supports(self, version: str) -> bool:
        """Whether the server advertises spec ``version`` (e.g. ``"v1.11"``)."""
        return version in self.versions

    def at_least(self, version: str) -> bool:
        """Whether the server advertises spec ``version`` or a later ``vX.Y``.

        ``"r0.x"`` and malformed entries never count; ``version`` must be ``vX.Y``.
        """
        wanted = _spec_version(version)
        if wanted is None:
            raise ValueError(f"not a spec version: {version!r}")
        return any((v := _spec_version(s)) is not None and v >= wanted for s in self.versions)


def _spec_version(text: object) -> tuple[int, int] | None:
    """``"v1.11"`` → ``(1, 11)``; anything else → ``None``."""
    if not isinstance(text, str) or not text.startswith("v"):
        return None
    major, dot, minor = text[1:].partition(".")
    if not dot or not (major + minor).isascii() or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


@attrs.frozen
class LoginResponse:
    user_id: str
    access_token: str = attrs.field(repr=False)
    device_id: str


@attrs.frozen
class WhoAmI:
    user_id: str
    device_id: str | None = None
    is_guest: bool = False


@attrs.frozen
class RoomEvent:
    """A room event (timeline or state).

    ``redacts`` is read from the top level or, for room version 11+, from
    ``content.redacts``. ``state_key`` is ``None`` for message-like events.
    """

    event_id: str
    type: str
    sender: str
    origin_server_ts: int = 0
    content: JsonDict = attrs.field(factory=dict)
    state_key: str | None = None
    unsigned: JsonDict = attrs.field(factory=dict)
    redacts: str | None = None


@attrs.frozen
class StrippedStateEvent:
    """A stripped state event, as in ``invite_state`` (no event id, no timestamp)."""

    type: str
    state_key: str
    sender: str
    content: JsonDict = attrs.field(factory=dict)


@attrs.frozen
class Timeline:
    events: list[RoomEvent] = attrs.field(factory=list)
    limited: bool = False
    prev_batch: str | None = None


@attrs.frozen
class State:
    events: list[RoomEvent] = attrs.field(factory=list)


@attrs.frozen
class EventList:
    """``{"events": [...]}`` blocks whose events are passed through as raw dicts."""

    events: list[JsonDict] = attrs.field(factory=list)


@attrs.frozen
class JoinedRoom:
    timeline: Timeline = attrs.field(factory=Timeline)
    state: State = attrs.field(factory=State)
    ephemeral: EventList = attrs.field(factory=EventList)
    account_data: EventList = attrs.field(factory=EventList)


@attrs.frozen
class InviteState:
    events: list[StrippedStateEvent] = attrs.field(factory=list)


@attrs.frozen
class InvitedRoom:
    invite_state: InviteState = attrs.field(factory=InviteState)


@attrs.frozen
class LeftRoom:
    timeline: Timeline = attrs.field(factory=Timeline)
    state: State = attrs.field(factory=State)


@attrs.frozen
class Rooms:
    join: dict[str, JoinedRoom] = attrs.field(factory=dict)
    invite: dict[str, InvitedRoom] = attrs.field(factory=dict)
    leave: dict[str, LeftRoom] = attrs.field(factory=dict)


@attrs.frozen
class SyncResponse:
    """``GET /sync``; malformed rooms and events have already been dropped."""

    next_batch: str
    rooms: Rooms = attrs.field(factory=Rooms)
    account_data: EventList = attrs.field(factory=EventList)


@attrs.frozen
class MessagesPage:
    """``GET /rooms/{roomId}/messages``; ``end`` is ``None`` when there is no more."""

    start: str
    end: str | None = None
    chunk: list[RoomEvent] = attrs.field(factory=list)
    state: list[RoomEvent] = attrs.field(factory=list)


@attrs.frozen
class Download:
    data: bytes
    content_type: str | None = None
    filename: str | None = None


@attrs.frozen
class MediaConfig:
    """Media repository limits; ``upload_size`` is ``None`` when not advertised."""

    upload_size: int | None = None


# Items of a processed sync batch (see matrix_client._sync.Syncer).


@attrs.frozen
class TimelineItem:
    room_id: str
    event: RoomEvent


@attrs.frozen
class InviteItem:
    """A pending invite. ``inviter`` is the sender of our ``m.room.member`` invite."""

    room_id: str
    inviter: str | None
    is_direct: bool
    encrypted: bool
    state: list[StrippedStateEvent] = attrs.field(factory=list)


@attrs.frozen
class SyncBatch:
    """One processed ``/sync`` response.

    Attributes:
        response: the parsed response, everything included.
        since: the token this batch was requested with.
        next_batch: the token to persist; the next request uses it.
        events: joined-room timeline events, in order, deduplicated by event id.
        invites: invites in this batch.
        left: rooms we left or were removed from.
        limited_rooms: joined rooms whose timeline was ``limited`` (a gap).
    """

    response: SyncResponse
    since: str | None
    next_batch: str
    events: list[TimelineItem] = attrs.field(factory=list)
    invites: list[InviteItem] = attrs.field(factory=list)
    left: list[str] = attrs.field(factory=list)
    limited_rooms: list[str] = attrs.field(factory=list)
