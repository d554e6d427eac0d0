"""Typed views of Matrix responses (attrs classes).

Only the fields the client and the bot use are modelled; unknown fields are
ignored, so newer servers do not break parsing. JSON becomes these classes
through the one converter in :mod:`matrix_client._converter`.
"""

from __future__ import annotations

import enum
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

    def to_json(self) -> JsonDict:
        """The event's fields as JSON (what ``OlmMachine.decrypt_room_event`` takes, and
        what can be stored and read back with ``RoomEvent.from_json``)."""
        out: JsonDict = {
            "event_id": self.event_id,
            "type": self.type,
            "sender": self.sender,
            "origin_server_ts": self.origin_server_ts,
            "content": self.content,
            "unsigned": self.unsigned,
        }
        if self.state_key is not None:
            out["state_key"] = self.state_key
        return out

    @classmethod
    def from_json(cls, raw: JsonDict) -> RoomEvent:
        """Back from :meth:`to_json` (trusted input: what we stored ourselves)."""
        return cls(
            event_id=raw["event_id"],
            type=raw["type"],
            sender=raw["sender"],
            origin_server_ts=raw.get("origin_server_ts", 0),
            content=raw.get("content") or {},
            state_key=raw.get("state_key"),
            unsigned=raw.get("unsigned") or {},
        )


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
class ToDeviceEvent:
    """A to-device event (``/sync`` ``to_device.events``): no event id, no room.

    The homeserver deletes it once a ``/sync`` is made with a token after the
    one that delivered it: persist what you need from it together with that
    batch's ``next_batch`` (the spec; Synapse ``delete_messages_for_device``).
    """

    type: str
    sender: str
    content: JsonDict = attrs.field(factory=dict)


@attrs.frozen
class ToDevice:
    events: list[ToDeviceEvent] = attrs.field(factory=list)


@attrs.frozen
class DeviceLists:
    """Users whose device lists changed since the last sync, or who no longer share
    a room with us (E2EE device tracking). Non-string entries are dropped."""

    changed: list[str] = attrs.field(factory=list)
    left: list[str] = attrs.field(factory=list)


@attrs.frozen
class SyncResponse:
    """``GET /sync``; malformed rooms and events have already been dropped.

    ``device_unused_fallback_key_types`` is ``None`` when the server did not say
    (the spec: then the client cannot know whether its fallback key was used);
    the unstable ``org.matrix.msc2732.`` name is read when the stable one is absent.
    """

    next_batch: str
    rooms: Rooms = attrs.field(factory=Rooms)
    account_data: EventList = attrs.field(factory=EventList)
    to_device: ToDevice = attrs.field(factory=ToDevice)
    device_lists: DeviceLists = attrs.field(factory=DeviceLists)
    device_one_time_keys_count: dict[str, int] = attrs.field(factory=dict)
    device_unused_fallback_key_types: list[str] | None = None


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


class Membership(enum.StrEnum):
    """``m.room.member`` ``membership`` values."""

    JOIN = "join"
    INVITE = "invite"
    LEAVE = "leave"
    BAN = "ban"
    KNOCK = "knock"


@attrs.frozen
class RoomMember:
    """One member of ``GET /rooms/{roomId}/members`` (from its member state event)."""

    user_id: str
    membership: Membership
    display_name: str | None = None


class Presence(enum.StrEnum):
    """``presence`` values of ``PUT /presence/{userId}/status``."""

    ONLINE = "online"
    UNAVAILABLE = "unavailable"
    OFFLINE = "offline"


@attrs.frozen
class PresenceState:
    """``GET /presence/{userId}/status``. Unknown or malformed fields read as absent."""

    presence: Presence
    status_msg: str | None = None
    last_active_ago_ms: int | None = None
    currently_active: bool | None = None


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
        to_device: to-device events, in order; not deduplicated (they have no
            id). The server deletes them once the next request uses
            ``next_batch``: store what matters in the same transaction as it.
        device_lists: ``changed`` / ``left`` user ids (E2EE device tracking).
        device_one_time_keys_count: our device's unclaimed one-time keys per
            algorithm (``{}`` when the server sent none).
        device_unused_fallback_key_types: algorithms whose fallback key is
            unused; ``None`` when the server did not say.
    """

    response: SyncResponse
    since: str | None
    next_batch: str
    events: list[TimelineItem] = attrs.field(factory=list)
    invites: list[InviteItem] = attrs.field(factory=list)
    left: list[str] = attrs.field(factory=list)
    limited_rooms: list[str] = attrs.field(factory=list)
    to_device: list[ToDeviceEvent] = attrs.field(factory=list)
    device_lists: DeviceLists = attrs.field(factory=DeviceLists)
    device_one_time_keys_count: dict[str, int] = attrs.field(factory=dict)
    device_unused_fallback_key_types: list[str] | None = None
