"""The data of the fake homeserver: users, rooms, events, routes, errors."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import httpx

JsonDict = dict[str, Any]

#: Stripped state an invitee sees (spec: recommended invite_state events).
INVITE_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.encryption",
)

#: From this spec version on, timeline events carry ``unsigned.membership`` (MSC4115).
MEMBERSHIP_ON_EVENTS_VERSION = "v1.11"

DEFAULT_VERSIONS = (
    "v1.1",
    "v1.2",
    "v1.3",
    "v1.4",
    "v1.5",
    "v1.6",
    "v1.7",
    "v1.8",
    "v1.9",
    "v1.10",
    "v1.11",
)


def _version_at_least(room_version: Any, minimum: int) -> bool:
    """Whether ``room_version`` (a string; unstable ones never qualify) is ≥ ``minimum``."""
    return isinstance(room_version, str) and room_version.isdigit() and int(room_version) >= minimum


class FakeHomeserverError(Exception):
    """A helper (``send_as`` …) was used in a way the server would refuse."""


class _HttpError(FakeHomeserverError):
    """Answered as a Matrix error over HTTP; raised as-is by the direct helpers."""

    def __init__(self, status: int, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(status, errcode, message)
        self.status = status
        self.body = {"errcode": errcode, "error": message, **extra}


@attrs.define
class FakeUser:
    """A registered user. ``access_token``/``device_id`` are the latest login's."""

    user_id: str
    password: str = attrs.field(repr=False)
    access_token: str = attrs.field(repr=False)
    device_id: str
    displayname: str | None = None

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


@attrs.frozen
class FakeLogin:
    """One logged-in device of a user (``FakeHomeserver.login``): pass it to
    ``user_client`` to act as that device."""

    user_id: str
    device_id: str
    access_token: str = attrs.field(repr=False)


class EncryptionDefault(enum.StrEnum):
    """Synapse's ``encryption_enabled_by_default_for_room_type``: which new rooms
    get ``m.room.encryption`` in their initial state."""

    OFF = "off"
    INVITE = "invite"  # rooms created with the private_chat / trusted_private_chat preset
    ALL = "all"


MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"


@attrs.define
class _Fallback:
    key_id: str  # "<algorithm>:<id>"
    key: Any
    used: bool = False


@attrs.define
class _ToDevice:
    pos: int
    event: JsonDict  # {"type", "sender", "content"}


@attrs.define
class _Device:
    """A device: its keys as uploaded, its one-time keys and its to-device inbox."""

    device_id: str
    display_name: str | None = None
    keys: JsonDict | None = None
    one_time_keys: dict[str, Any] = attrs.field(factory=dict)  # "<alg>:<id>" -> key
    fallback: dict[str, _Fallback] = attrs.field(factory=dict)  # algorithm -> key
    inbox: list[_ToDevice] = attrs.field(factory=list)

    def key_counts(self) -> dict[str, int]:
        """Unclaimed one-time keys per algorithm (``signed_curve25519`` always there,
        as Synapse's ``count_e2e_one_time_keys`` does)."""
        counts = {"signed_curve25519": 0}
        for key_id in self.one_time_keys:
            algorithm = key_id.split(":", 1)[0]
            counts[algorithm] = counts.get(algorithm, 0) + 1
        return counts

    def unused_fallback_types(self) -> list[str]:
        return sorted(alg for alg, key in self.fallback.items() if not key.used)


@attrs.define
class _Entry:
    pos: int
    event: JsonDict
    txn: tuple[str, str, str] | None = None  # (user_id, device_id, txn_id) of the send


@attrs.define
class _Room:
    room_id: str
    entries: list[_Entry] = attrs.field(factory=list)
    state: dict[tuple[str, str], JsonDict] = attrs.field(factory=dict)
    member_pos: dict[str, int] = attrs.field(factory=dict)
    forgotten_by: set[str] = attrs.field(factory=set)

    def membership(self, user_id: str) -> str | None:
        event = self.state.get(("m.room.member", user_id))
        return None if event is None else event["content"].get("membership")

    def entry(self, event_id: str) -> _Entry | None:
        return next(
            (
                e
                for e in self.entries
                if isinstance(e.event, dict) and e.event.get("event_id") == event_id
            ),
            None,
        )

    def members_at(self, pos: int) -> dict[str, str]:
        """User id → membership just after stream position ``pos`` (from the timeline)."""
        members: dict[str, str] = {}
        for entry in self.entries:
            if entry.pos > pos:
                break
            user_id, membership = _member_change(entry.event)
            if user_id is not None:
                members[user_id] = membership
        return members

    def current_members(self) -> dict[str, str]:
        return {
            key: ev["content"].get("membership", "leave")
            for (etype, key), ev in self.state.items()
            if etype == "m.room.member"
        }

    def members_changed_after(self, pos: int) -> set[str]:
        """Users whose membership event is after ``pos`` (scanned from the end)."""
        changed: set[str] = set()
        for entry in reversed(self.entries):
            if entry.pos <= pos:
                break
            user_id, _ = _member_change(entry.event)
            if user_id is not None:
                changed.add(user_id)
        return changed

    def joined(self) -> list[str]:
        return [
            key
            for (etype, key), ev in self.state.items()
            if etype == "m.room.member" and ev["content"].get("membership") == "join"
        ]


def _member_change(event: Any) -> tuple[str | None, str]:
    """``(user id, membership)`` of a member event, ``(None, "")`` for anything else."""
    if not isinstance(event, dict) or event.get("type") != "m.room.member":
        return None, ""
    user_id, content = event.get("state_key"), event.get("content")
    if not isinstance(user_id, str):
        return None, ""
    value = content.get("membership") if isinstance(content, dict) else None
    return user_id, value if isinstance(value, str) else "leave"


@attrs.frozen
class _TimelineFilter:
    """The part of a sync filter the fake honours: ``room.timeline`` limit and senders."""

    limit: int = 10
    senders: frozenset[str] | None = None
    not_senders: frozenset[str] = frozenset()

    def admits(self, event: Any) -> bool:
        sender = event.get("sender") if isinstance(event, dict) else None
        if sender in self.not_senders:
            return False
        return self.senders is None or sender in self.senders


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@attrs.define
class _Session:
    user_id: str
    device_id: str


Handler = Callable[..., Awaitable[httpx.Response | JsonDict | list[Any]]]


@attrs.define
class _Route:
    method: str
    segments: tuple[str, ...]
    handler: Handler
    auth: bool = True

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if method != self.method or len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for template, actual in zip(self.segments, segments, strict=True):
            if template.startswith("{"):
                params[template[1:-1]] = actual
            elif template != actual:
                return None
        return params
