"""What the crypto state machine persists: records, :class:`Changes`, the store protocol.

The machine never writes to a store on its own. It mutates its in-memory state and
accumulates one :class:`Changes` value; the caller takes it (``take_changes``) and saves
it with :meth:`CryptoStore.save_changes` in *its own* transaction, together with its own
rows (for a to-device event: "this event is processed"). That is what makes a crash at any
point safe: either the event's effects and its "processed" mark are both on disk, or
neither is and the event is fed again.

Records are plain values: pickles are already encrypted with the caller's pickle key
(vodozemac's pickle encryption) and ``data`` is JSON-serialisable metadata. A store is
dumb: it keeps rows by their key and hands them back. Reads are by key, so the machine
loads sessions lazily; only the account, tracked users, pending requests and key requests
(all small, bounded) are read at start.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import attrs


@attrs.frozen
class AccountRecord:
    user_id: str
    device_id: str
    pickle: str
    #: ``{"shared": bool}``: whether the device keys were uploaded.
    data: dict[str, Any]


@attrs.frozen
class OlmSessionRecord:
    sender_key: str
    session_id: str
    pickle: str
    created_ms: int
    last_used_ms: int


@attrs.frozen
class InboundGroupSessionRecord:
    room_id: str
    session_id: str
    sender_key: str
    pickle: str
    #: signing key, whether forwarded, and (for our own sessions) who got it at which index.
    data: dict[str, Any]


@attrs.frozen
class OutboundGroupSessionRecord:
    room_id: str
    session_id: str
    pickle: str
    #: creation time, message count, visibility, shared/pending devices.
    data: dict[str, Any]


@attrs.frozen
class DeviceRecord:
    user_id: str
    device_id: str
    #: the pinned keys and flags (deleted, keys changed); see ``_devices``.
    data: dict[str, Any]


@attrs.frozen
class TrackedUserRecord:
    user_id: str
    #: 0 when the device list is up to date; otherwise a sequence number of the change.
    dirty_seq: int


@attrs.frozen
class ReplayRecord:
    room_id: str
    session_id: str
    message_index: int
    event_id: str
    origin_server_ts: int


@attrs.frozen
class PendingRequestRecord:
    request_id: str
    #: the request (kind, body, event type, txn id) and what to do when it was sent.
    data: dict[str, Any]


@attrs.frozen
class KeyRequestRecord:
    room_id: str
    session_id: str
    #: the request id, sender key, and whether it was sent.
    data: dict[str, Any]


@attrs.frozen
class Changes:
    """Everything the machine changed since the last ``take_changes``; save it atomically."""

    account: AccountRecord | None = None
    olm_sessions: tuple[OlmSessionRecord, ...] = ()
    #: ``(sender_key, session_id)`` of Olm sessions to delete.
    removed_olm_sessions: tuple[tuple[str, str], ...] = ()
    inbound_group_sessions: tuple[InboundGroupSessionRecord, ...] = ()
    outbound_group_sessions: tuple[OutboundGroupSessionRecord, ...] = ()
    #: room ids whose outbound session is gone (rotated, invalidated).
    removed_outbound_group_sessions: tuple[str, ...] = ()
    devices: tuple[DeviceRecord, ...] = ()
    tracked_users: tuple[TrackedUserRecord, ...] = ()
    removed_tracked_users: tuple[str, ...] = ()
    replay: tuple[ReplayRecord, ...] = ()
    pending_requests: tuple[PendingRequestRecord, ...] = ()
    removed_requests: tuple[str, ...] = ()
    key_requests: tuple[KeyRequestRecord, ...] = ()
    #: ``(room_id, session_id)`` of key requests that are settled.
    removed_key_requests: tuple[tuple[str, str], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not any(
            getattr(self, field.name) for field in attrs.fields(Changes) if field.name != "account"
        ) and (self.account is None)


class CryptoStore(Protocol):
    """Where the machine's state lives between runs.

    ``save_changes`` must apply a whole :class:`Changes` or nothing (inside the caller's
    transaction). Reads return what the last saved changes left; they never see unsaved
    changes (the machine keeps those itself).
    """

    def save_changes(self, changes: Changes) -> None: ...

    def load_account(self) -> AccountRecord | None: ...

    def olm_sessions(self, sender_key: str) -> list[OlmSessionRecord]: ...

    def inbound_group_session(
        self, room_id: str, session_id: str
    ) -> InboundGroupSessionRecord | None: ...

    def outbound_group_session(self, room_id: str) -> OutboundGroupSessionRecord | None: ...

    def devices(self, user_id: str) -> list[DeviceRecord]: ...

    def tracked_users(self) -> list[TrackedUserRecord]: ...

    def replay_entry(
        self, room_id: str, session_id: str, message_index: int
    ) -> ReplayRecord | None: ...

    def pending_requests(self) -> list[PendingRequestRecord]: ...

    def key_requests(self) -> list[KeyRequestRecord]: ...


@attrs.define
class MemoryCryptoStore:
    """A :class:`CryptoStore` in dicts, for tests and throwaway machines.

    Records are deep-copied in and out, so a test cannot see a change the machine made
    but did not save.
    """

    _account: AccountRecord | None = None
    _olm: dict[tuple[str, str], OlmSessionRecord] = attrs.Factory(dict)
    _inbound: dict[tuple[str, str], InboundGroupSessionRecord] = attrs.Factory(dict)
    _outbound: dict[str, OutboundGroupSessionRecord] = attrs.Factory(dict)
    _devices: dict[tuple[str, str], DeviceRecord] = attrs.Factory(dict)
    _tracked: dict[str, TrackedUserRecord] = attrs.Factory(dict)
    _replay: dict[tuple[str, str, int], ReplayRecord] = attrs.Factory(dict)
    _requests: dict[str, PendingRequestRecord] = attrs.Factory(dict)
    _key_requests: dict[tuple[str, str], KeyRequestRecord] = attrs.Factory(dict)
    #: How many times ``save_changes`` ran (tests assert on it).
    saves: int = 0

    def save_changes(self, changes: Changes) -> None:
        changes = copy.deepcopy(changes)
        if changes.account is not None:
            self._account = changes.account
        for s in changes.olm_sessions:
            self._olm[s.sender_key, s.session_id] = s
        for key in changes.removed_olm_sessions:
            self._olm.pop(key, None)
        for g in changes.inbound_group_sessions:
            self._inbound[g.room_id, g.session_id] = g
        for room_id in changes.removed_outbound_group_sessions:
            self._outbound.pop(room_id, None)
        for o in changes.outbound_group_sessions:
            self._outbound[o.room_id] = o
        for d in changes.devices:
            self._devices[d.user_id, d.device_id] = d
        for t in changes.tracked_users:
            self._tracked[t.user_id] = t
        for user_id in changes.removed_tracked_users:
            self._tracked.pop(user_id, None)
        for r in changes.replay:
            self._replay[r.room_id, r.session_id, r.message_index] = r
        for p in changes.pending_requests:
            self._requests[p.request_id] = p
        for request_id in changes.removed_requests:
            self._requests.pop(request_id, None)
        for k in changes.key_requests:
            self._key_requests[k.room_id, k.session_id] = k
        for key in changes.removed_key_requests:
            self._key_requests.pop(key, None)
        self.saves += 1

    def load_account(self) -> AccountRecord | None:
        return copy.deepcopy(self._account)

    def olm_sessions(self, sender_key: str) -> list[OlmSessionRecord]:
        return [copy.deepcopy(s) for (k, _), s in self._olm.items() if k == sender_key]

    def inbound_group_session(
        self, room_id: str, session_id: str
    ) -> InboundGroupSessionRecord | None:
        return copy.deepcopy(self._inbound.get((room_id, session_id)))

    def outbound_group_session(self, room_id: str) -> OutboundGroupSessionRecord | None:
        return copy.deepcopy(self._outbound.get(room_id))

    def devices(self, user_id: str) -> list[DeviceRecord]:
        return [copy.deepcopy(d) for (u, _), d in self._devices.items() if u == user_id]

    def tracked_users(self) -> list[TrackedUserRecord]:
        return list(self._tracked.values())

    def replay_entry(
        self, room_id: str, session_id: str, message_index: int
    ) -> ReplayRecord | None:
        return self._replay.get((room_id, session_id, message_index))

    def pending_requests(self) -> list[PendingRequestRecord]:
        return [copy.deepcopy(p) for p in self._requests.values()]

    def key_requests(self) -> list[KeyRequestRecord]:
        return [copy.deepcopy(k) for k in self._key_requests.values()]
