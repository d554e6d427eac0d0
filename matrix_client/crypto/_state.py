"""The machine's in-memory state: bounded read caches over the store, and unsaved changes.

Lookups go: unsaved (the live objects changed since the last ``take_changes``) → cache →
store. Unsaved objects are never evicted, so a lookup never sees a stale copy from the
store; clean ones live in bounded LRU caches and are re-read on demand. ``take_changes``
pickles the unsaved objects into a :class:`Changes` and moves them into the caches.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, TypeVar

import attrs
import structlog

from ._account import OwnAccount
from ._devices import Device
from ._sessions import InboundSession, OlmSession, OutboundSession
from ._store import (
    Changes,
    CryptoStore,
    KeyRequestRecord,
    PendingRequestRecord,
    ReplayRecord,
    TrackedUserRecord,
)
from ._types import CryptoWarning, WarningKind

logger = structlog.get_logger(__name__)

K = TypeVar("K")
V = TypeVar("V")

#: Cache bounds (entries). An Olm entry is every session of one sender key.
OLM_CACHE = 1_000
INBOUND_CACHE = 2_000
OUTBOUND_CACHE = 1_000
DEVICE_CACHE = 1_000
#: Olm sessions kept per sender key (newest used first); older ones are deleted.
MAX_OLM_SESSIONS_PER_DEVICE = 8
#: Warnings kept for ``drain_warnings`` (older ones are dropped; all are logged).
MAX_WARNINGS = 1_000


@attrs.define
class Lru(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry."""

    capacity: int
    _data: OrderedDict[K, V] = attrs.Factory(OrderedDict)

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def __contains__(self, key: K) -> bool:
        return key in self._data

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)


@attrs.define
class State:
    store: CryptoStore
    pickle_key: bytes = attrs.field(repr=False)
    account: OwnAccount
    tracked: dict[str, int]
    requests: dict[str, PendingRequestRecord]
    key_requests: dict[tuple[str, str], KeyRequestRecord]

    _olm_cache: Lru[str, list[OlmSession]] = attrs.Factory(lambda: Lru(OLM_CACHE))
    _inbound_cache: Lru[tuple[str, str], InboundSession] = attrs.Factory(lambda: Lru(INBOUND_CACHE))
    _outbound_cache: Lru[str, OutboundSession] = attrs.Factory(lambda: Lru(OUTBOUND_CACHE))
    _device_cache: Lru[str, dict[str, Device]] = attrs.Factory(lambda: Lru(DEVICE_CACHE))

    #: For ``drain_warnings``; bounded.
    warnings: deque[CryptoWarning] = attrs.Factory(lambda: deque(maxlen=MAX_WARNINGS))
    #: Devices whose Olm sessions failed to decrypt: device key → (user, device, when).
    #: In memory only: after a restart a wedged session is detected again.
    wedged: dict[str, tuple[str, str, int]] = attrs.Factory(dict)
    #: When each device's last OTK claim found no usable key (in memory only).
    claim_failures: dict[str, int] = attrs.Factory(dict)
    #: When we last unwedged each device (bounded by the devices we talk to).
    unwedged_at: dict[str, int] = attrs.Factory(dict)
    seq: int = 0

    _account_dirty: bool = False
    _olm_dirty: dict[str, list[OlmSession]] = attrs.Factory(dict)
    _olm_removed: set[tuple[str, str]] = attrs.Factory(set)
    _inbound_dirty: dict[tuple[str, str], InboundSession] = attrs.Factory(dict)
    _outbound_dirty: dict[str, OutboundSession] = attrs.Factory(dict)
    _outbound_removed: set[str] = attrs.Factory(set)
    _devices_dirty: dict[str, dict[str, Device]] = attrs.Factory(dict)
    _changed_devices: set[tuple[str, str]] = attrs.Factory(set)
    _tracked_dirty: set[str] = attrs.Factory(set)
    _tracked_removed: set[str] = attrs.Factory(set)
    _replay_dirty: dict[tuple[str, str, int], ReplayRecord] = attrs.Factory(dict)
    _requests_dirty: set[str] = attrs.Factory(set)
    _requests_removed: set[str] = attrs.Factory(set)
    _key_requests_dirty: set[tuple[str, str]] = attrs.Factory(set)
    _key_requests_removed: set[tuple[str, str]] = attrs.Factory(set)

    def warn(
        self,
        kind: WarningKind,
        reason: str,
        user_id: str | None = None,
        device_id: str | None = None,
    ) -> None:
        """Record a warning for the caller and log it (never with key material)."""
        self.warnings.append(CryptoWarning(kind, reason, user_id, device_id))
        logger.warning("crypto_" + kind.value, reason=reason, user_id=user_id, device_id=device_id)

    def next_seq(self) -> int:
        """A fresh, increasing number (device-list change sequence, request order)."""
        self.seq += 1
        return self.seq

    # -- account ---------------------------------------------------------------------
    def account_changed(self) -> None:
        self._account_dirty = True

    # -- Olm sessions ----------------------------------------------------------------
    def olm_sessions(self, sender_key: str) -> list[OlmSession]:
        """Every Olm session with ``sender_key``, most recently used first (live list)."""
        sessions = self._olm_dirty.get(sender_key)
        if sessions is None:
            sessions = self._olm_cache.get(sender_key)
        if sessions is None:
            sessions = [
                OlmSession.from_record(r, self.pickle_key)
                for r in self.store.olm_sessions(sender_key)
                if (sender_key, r.session_id) not in self._olm_removed
            ]
            sessions.sort(key=lambda s: s.last_used_ms, reverse=True)
            self._olm_cache.put(sender_key, sessions)
        return sessions

    def olm_session_changed(self, session: OlmSession) -> None:
        sessions = self.olm_sessions(session.sender_key)
        if not any(s is session for s in sessions):
            sessions.append(session)
        sessions.sort(key=lambda s: s.last_used_ms, reverse=True)
        for old in sessions[MAX_OLM_SESSIONS_PER_DEVICE:]:
            self._olm_removed.add((old.sender_key, old.session_id))
        del sessions[MAX_OLM_SESSIONS_PER_DEVICE:]
        self._olm_removed.discard((session.sender_key, session.session_id))
        self._olm_dirty[session.sender_key] = sessions

    # -- Megolm sessions -------------------------------------------------------------
    def inbound(self, room_id: str, session_id: str) -> InboundSession | None:
        key = (room_id, session_id)
        session = self._inbound_dirty.get(key) or self._inbound_cache.get(key)
        if session is None:
            record = self.store.inbound_group_session(room_id, session_id)
            if record is None:
                return None
            session = InboundSession.from_record(record, self.pickle_key)
            self._inbound_cache.put(key, session)
        return session

    def inbound_changed(self, session: InboundSession) -> None:
        self._inbound_dirty[session.room_id, session.session_id] = session

    def outbound(self, room_id: str) -> OutboundSession | None:
        if room_id in self._outbound_removed:
            return None
        session = self._outbound_dirty.get(room_id) or self._outbound_cache.get(room_id)
        if session is None:
            record = self.store.outbound_group_session(room_id)
            if record is None:
                return None
            session = OutboundSession.from_record(record, self.pickle_key)
            self._outbound_cache.put(room_id, session)
        return session

    def outbound_changed(self, session: OutboundSession) -> None:
        self._outbound_removed.discard(session.room_id)
        self._outbound_dirty[session.room_id] = session

    def outbound_removed(self, room_id: str) -> None:
        self._outbound_dirty.pop(room_id, None)
        self._outbound_cache.pop(room_id)
        self._outbound_removed.add(room_id)

    # -- devices ---------------------------------------------------------------------
    def devices(self, user_id: str) -> dict[str, Device]:
        """Every pinned device of ``user_id`` by device id (deleted ones included)."""
        devices = self._devices_dirty.get(user_id)
        if devices is None:
            devices = self._device_cache.get(user_id)
        if devices is None:
            devices = {r.device_id: Device.from_record(r) for r in self.store.devices(user_id)}
            self._device_cache.put(user_id, devices)
        return devices

    def device_changed(self, device: Device) -> None:
        devices = self.devices(device.user_id)
        devices[device.device_id] = device
        self._devices_dirty[device.user_id] = devices
        self._changed_devices.add((device.user_id, device.device_id))

    def device_by_curve(self, user_id: str, curve25519: str) -> Device | None:
        for device in self.devices(user_id).values():
            if device.curve25519 == curve25519:
                return device
        return None

    # -- tracked users, replay, requests ----------------------------------------------
    def set_tracked(self, user_id: str, dirty_seq: int) -> None:
        self.tracked[user_id] = dirty_seq
        self._tracked_removed.discard(user_id)
        self._tracked_dirty.add(user_id)

    def untrack(self, user_id: str) -> None:
        self.tracked.pop(user_id, None)
        self._tracked_dirty.discard(user_id)
        self._tracked_removed.add(user_id)

    def replay_entry(self, room_id: str, session_id: str, index: int) -> ReplayRecord | None:
        entry = self._replay_dirty.get((room_id, session_id, index))
        return entry or self.store.replay_entry(room_id, session_id, index)

    def add_replay_entry(self, entry: ReplayRecord) -> None:
        self._replay_dirty[entry.room_id, entry.session_id, entry.message_index] = entry

    def put_request(self, record: PendingRequestRecord) -> None:
        self.requests[record.request_id] = record
        self._requests_removed.discard(record.request_id)
        self._requests_dirty.add(record.request_id)

    def remove_request(self, request_id: str) -> None:
        self.requests.pop(request_id, None)
        self._requests_dirty.discard(request_id)
        self._requests_removed.add(request_id)

    def put_key_request(self, record: KeyRequestRecord) -> None:
        key = (record.room_id, record.session_id)
        self.key_requests[key] = record
        self._key_requests_removed.discard(key)
        self._key_requests_dirty.add(key)

    def remove_key_request(self, room_id: str, session_id: str) -> None:
        key = (room_id, session_id)
        self.key_requests.pop(key, None)
        self._key_requests_dirty.discard(key)
        self._key_requests_removed.add(key)

    # -- changes ---------------------------------------------------------------------
    def take_changes(self) -> Changes:
        key = self.pickle_key
        changes = Changes(
            account=self.account.to_record(key) if self._account_dirty else None,
            olm_sessions=tuple(
                s.to_record(key) for sessions in self._olm_dirty.values() for s in sessions
            ),
            removed_olm_sessions=tuple(sorted(self._olm_removed)),
            inbound_group_sessions=tuple(s.to_record(key) for s in self._inbound_dirty.values()),
            outbound_group_sessions=tuple(s.to_record(key) for s in self._outbound_dirty.values()),
            removed_outbound_group_sessions=tuple(sorted(self._outbound_removed)),
            devices=tuple(self.devices(u)[d].to_record() for u, d in sorted(self._changed_devices)),
            tracked_users=tuple(
                TrackedUserRecord(u, self.tracked[u]) for u in sorted(self._tracked_dirty)
            ),
            removed_tracked_users=tuple(sorted(self._tracked_removed)),
            replay=tuple(self._replay_dirty.values()),
            pending_requests=tuple(self.requests[r] for r in self._requests_dirty),
            removed_requests=tuple(sorted(self._requests_removed)),
            key_requests=tuple(self.key_requests[k] for k in self._key_requests_dirty),
            removed_key_requests=tuple(sorted(self._key_requests_removed)),
        )
        for sender_key, sessions in self._olm_dirty.items():
            self._olm_cache.put(sender_key, sessions)
        for k, s in self._inbound_dirty.items():
            self._inbound_cache.put(k, s)
        for room_id, o in self._outbound_dirty.items():
            self._outbound_cache.put(room_id, o)
        for user_id, devices in self._devices_dirty.items():
            self._device_cache.put(user_id, devices)
        self._account_dirty = False
        for dirty in (
            self._olm_dirty,
            self._olm_removed,
            self._inbound_dirty,
            self._outbound_dirty,
            self._outbound_removed,
            self._devices_dirty,
            self._changed_devices,
            self._tracked_dirty,
            self._tracked_removed,
            self._replay_dirty,
            self._requests_dirty,
            self._requests_removed,
            self._key_requests_dirty,
            self._key_requests_removed,
        ):
            dirty.clear()
        return changes


def newest_use(state: State, sender_key: str, now_ms: int) -> int:
    """The "last used" time for a new session with ``sender_key``: after every older one.

    A new session is the one the peer will use (it just created it, or we did to replace
    a wedged one), so it must sort first even if the clock says otherwise.
    """
    newest = max((s.last_used_ms for s in state.olm_sessions(sender_key)), default=now_ms - 1)
    return max(now_ms, newest + 1)
