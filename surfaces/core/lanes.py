"""Lanes: keys whose items run one at a time, in order (see ``surfaces.intake.lanes``).

A lane is stored in the inbox as text (``room:!abc:server``); :class:`Lane` is the
parsed form, so code asks ``lane.kind is LaneKind.ROOM`` instead of testing prefixes.
"""

from __future__ import annotations

import enum

import attrs


class LaneKind(enum.StrEnum):
    ROOM = "room"  # a room's turns, files and commands, in order
    CONTROL = "ctl"  # a room's ``!stop``/``!status``/answers: never behind a turn
    INVITE = "invite"  # one user's invites (provisioning)


@attrs.frozen(cache_hash=True)  # a dict key on the hot path
class Lane:
    kind: LaneKind
    key: str  # a room id, or a user id for invites

    @classmethod
    def room(cls, room_id: str) -> Lane:
        return cls(LaneKind.ROOM, room_id)

    @classmethod
    def control(cls, room_id: str) -> Lane:
        return cls(LaneKind.CONTROL, room_id)

    @classmethod
    def invite(cls, user_id: str) -> Lane:
        return cls(LaneKind.INVITE, user_id)

    @classmethod
    def parse(cls, text: str) -> Lane:
        kind, sep, key = text.partition(":")
        if not sep:
            raise ValueError(f"not a lane: {text!r}")
        return cls(LaneKind(kind), key)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.key}"
