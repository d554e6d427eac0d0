"""Live Olm and Megolm sessions, and their conversion to and from store records.

Each wrapper holds the vodozemac object plus what the protocol needs beside it (who sent
the session, who got our outbound session at which index). Pickles are made with the
caller's pickle key; a pickle that does not open is a :class:`PickleKeyError`.
"""

from __future__ import annotations

from typing import Any

import attrs
import vodozemac

from ._errors import PickleKeyError
from ._store import InboundGroupSessionRecord, OlmSessionRecord, OutboundGroupSessionRecord
from ._types import EncryptionSettings, HistoryVisibility


def device_key(user_id: str, device_id: str) -> str:
    """One string key for (user, device): user ids never contain ``|``."""
    return f"{user_id}|{device_id}"


def _unpickle(cls: Any, pickle: str, pickle_key: bytes) -> Any:
    try:
        return cls.from_pickle(pickle, pickle_key)
    except vodozemac.PickleException:
        raise PickleKeyError(f"{cls.__name__} pickle does not open with this key") from None


@attrs.define
class OlmSession:
    sender_key: str
    session: vodozemac.Session
    created_ms: int
    last_used_ms: int

    @property
    def session_id(self) -> str:
        return self.session.session_id

    def to_record(self, pickle_key: bytes) -> OlmSessionRecord:
        return OlmSessionRecord(
            self.sender_key,
            self.session_id,
            self.session.pickle(pickle_key),
            self.created_ms,
            self.last_used_ms,
        )

    @classmethod
    def from_record(cls, record: OlmSessionRecord, pickle_key: bytes) -> OlmSession:
        session = _unpickle(vodozemac.Session, record.pickle, pickle_key)
        return cls(record.sender_key, session, record.created_ms, record.last_used_ms)


@attrs.define
class InboundSession:
    """A Megolm session we can decrypt with.

    ``signing_key``: the ed25519 key the Olm sender claimed for it. ``forwarded``: it came
    as ``m.forwarded_room_key``, not from its creator. ``shared_with`` (our own sessions
    only): device key → ``[curve25519, message index]`` it was shared at, so a key request
    from that exact device can be answered from that index and no earlier.
    ``sender_user``: the user whose device sent us the session over Olm (``None`` for a
    forwarded one): only that user's events may be decrypted with it.
    """

    room_id: str
    sender_key: str
    session: vodozemac.InboundGroupSession
    signing_key: str
    sender_user: str | None
    forwarded: bool = False
    shared_with: dict[str, list[Any]] = attrs.Factory(dict)

    @property
    def session_id(self) -> str:
        return self.session.session_id

    def to_record(self, pickle_key: bytes) -> InboundGroupSessionRecord:
        return InboundGroupSessionRecord(
            self.room_id,
            self.session_id,
            self.sender_key,
            self.session.pickle(pickle_key),
            {
                "signing_key": self.signing_key,
                "sender_user": self.sender_user,
                "forwarded": self.forwarded,
                "shared_with": self.shared_with,
            },
        )

    @classmethod
    def from_record(cls, record: InboundGroupSessionRecord, pickle_key: bytes) -> InboundSession:
        session = _unpickle(vodozemac.InboundGroupSession, record.pickle, pickle_key)
        d = record.data
        return cls(
            record.room_id,
            record.sender_key,
            session,
            d["signing_key"],
            d["sender_user"],
            bool(d["forwarded"]),
            dict(d["shared_with"]),
        )


@attrs.define
class OutboundSession:
    """Our current Megolm session for a room and who has (or is getting) its key.

    ``shared``: device key → ``[curve25519, index]`` for devices whose to-device send was
    confirmed. ``pending``: device key → ``[curve25519, index, request_id]`` for those whose
    send is out but not yet confirmed.
    """

    room_id: str
    session: vodozemac.GroupSession
    created_ms: int
    settings: EncryptionSettings
    history_visibility: HistoryVisibility
    message_count: int = 0
    invalidated: bool = False
    shared: dict[str, list[Any]] = attrs.Factory(dict)
    pending: dict[str, list[Any]] = attrs.Factory(dict)

    @property
    def session_id(self) -> str:
        return self.session.session_id

    def expired(self, now_ms: int) -> bool:
        """Past the room's rotation period (in time or messages), or invalidated."""
        return (
            self.invalidated
            or self.message_count >= self.settings.rotation_period_msgs
            or now_ms - self.created_ms >= self.settings.rotation_period_ms
            or now_ms < self.created_ms  # the clock went back a lot: do not trust the age
        )

    def to_record(self, pickle_key: bytes) -> OutboundGroupSessionRecord:
        return OutboundGroupSessionRecord(
            self.room_id,
            self.session_id,
            self.session.pickle(pickle_key),
            {
                "created_ms": self.created_ms,
                "rotation_period_ms": self.settings.rotation_period_ms,
                "rotation_period_msgs": self.settings.rotation_period_msgs,
                "history_visibility": self.history_visibility.value,
                "message_count": self.message_count,
                "invalidated": self.invalidated,
                "shared": self.shared,
                "pending": self.pending,
            },
        )

    @classmethod
    def from_record(cls, record: OutboundGroupSessionRecord, pickle_key: bytes) -> OutboundSession:
        session = _unpickle(vodozemac.GroupSession, record.pickle, pickle_key)
        d = record.data
        return cls(
            record.room_id,
            session,
            d["created_ms"],
            EncryptionSettings(d["rotation_period_ms"], d["rotation_period_msgs"]),
            HistoryVisibility(d["history_visibility"]),
            d["message_count"],
            d["invalidated"],
            dict(d["shared"]),
            dict(d["pending"]),
        )
