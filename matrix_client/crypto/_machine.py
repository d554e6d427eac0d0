"""The :class:`OlmMachine`: the end-to-end encryption state machine, sans I/O.

Modelled on matrix-rust-sdk-crypto's ``OlmMachine``. It does no network I/O, runs no
tasks and reads no clock: sync data goes in (:meth:`receive_sync_changes`), requests come
out (:meth:`outgoing_requests`, :meth:`share_room_key`) and their answers go back in
(:meth:`mark_request_sent`); callers pass ``now_ms`` where time matters.

The persistence contract (see ``_store``): every call may change state; the caller takes
those changes with :meth:`take_changes` and saves them in its own transaction, and it
must do so **before sending any request it got** — requests are durable so that a crash
after the send re-issues the same request. A typical caller::

    machine.receive_sync_changes(...)   # with the to-device events stored at admit time
    store.save_changes(machine.take_changes())   # + "these events are processed"
    for request in machine.outgoing_requests(now_ms=now):
        response = send(request)         # POST/PUT with the HTTP client, with retries
        machine.mark_request_sent(request.request_id, response)  # or mark_request_failed
        store.save_changes(machine.take_changes())

To send in a room: loop ``share_room_key`` (send what it returns, mark it, save) until it
returns nothing, then ``encrypt_room_event``; do it before every send (it is cheap when
nothing changed, and it is where rotation happens). To receive: ``decrypt_room_event``;
on :class:`MissingSessionError` call ``request_room_key`` and retry the event when a
returned ``m.room_key``/``m.forwarded_room_key`` names its session (``has_room_key``).

Not here (yet): cross-signing, server-side key backup, ``m.room_key.withheld``, SAS
verification. Trust is trust on first use of each device's keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import structlog
import vodozemac

from . import _key_requests, _megolm, _requests, _sharing, _tracking
from ._account import OwnAccount
from ._errors import AccountNotFoundError, StoreError
from ._olm import decrypt_to_device, encrypt_for_device
from ._requests import Purpose
from ._sessions import device_key
from ._state import State
from ._store import Changes, CryptoStore
from ._types import (
    SIGNED_CURVE25519,
    CryptoWarning,
    DecryptedEvent,
    DecryptedToDevice,
    EncryptionSettings,
    HistoryVisibility,
    IdentityKeys,
    Membership,
    OutgoingRequest,
    RequestKind,
    WarningKind,
)

logger = structlog.get_logger(__name__)

#: How often at most we replace a wedged Olm session with one device.
UNWEDGE_INTERVAL_MS = 60 * 60 * 1000
#: The spec's ``m.room.encryption`` defaults.
DEFAULT_SETTINGS = EncryptionSettings()


def _check_pickle_key(pickle_key: bytes) -> None:
    if not isinstance(pickle_key, bytes) or len(pickle_key) != 32:
        raise ValueError("the pickle key must be 32 bytes")


class OlmMachine:
    """One device's E2EE state. Make it with :meth:`create` or :meth:`load`."""

    def __init__(self, state: State) -> None:
        self._state = state

    # -- life cycle ------------------------------------------------------------------
    @classmethod
    def create(
        cls, user_id: str, device_id: str, *, store: CryptoStore, pickle_key: bytes
    ) -> OlmMachine:
        """A new device identity; its key upload is the first outgoing request.

        Raises :class:`StoreError` if ``store`` already holds an account: replacing an
        identity is a decision for the caller (delete the rows first).
        """
        _check_pickle_key(pickle_key)
        if store.load_account() is not None:
            raise StoreError("the store already holds a device identity")
        account = OwnAccount(user_id, device_id, vodozemac.Account())
        state = State(store, pickle_key, account, {}, {}, {})
        state.account_changed()
        machine = cls(state)
        machine._ensure_upload(None, fallback_used=False)
        logger.info("crypto_identity_created", user_id=user_id, device_id=device_id)
        return machine

    @classmethod
    def load(
        cls,
        store: CryptoStore,
        *,
        pickle_key: bytes,
        user_id: str | None = None,
        device_id: str | None = None,
    ) -> OlmMachine:
        """The machine saved in ``store``.

        Raises :class:`AccountNotFoundError` for an empty store, :class:`PickleKeyError` if
        the pickles do not open with ``pickle_key``, and :class:`StoreError` if the stored
        identity is not ``user_id``/``device_id`` (when given).
        """
        _check_pickle_key(pickle_key)
        record = store.load_account()
        if record is None:
            raise AccountNotFoundError("no device identity in the store")
        if (user_id and user_id != record.user_id) or (device_id and device_id != record.device_id):
            raise StoreError(f"the store holds {record.user_id}/{record.device_id}")
        account = OwnAccount.from_record(record, pickle_key)
        state = State(
            store,
            pickle_key,
            account,
            {t.user_id: t.dirty_seq for t in store.tracked_users()},
            {r.request_id: r for r in store.pending_requests()},
            {(k.room_id, k.session_id): k for k in store.key_requests()},
        )
        state.seq = max(
            [0]
            + list(state.tracked.values())
            + [r.data["seq"] for r in state.requests.values()]
            + [k.data["seq"] for k in state.key_requests.values()]
        )
        return cls(state)

    def take_changes(self) -> Changes:
        """Everything changed since the last call; save it (atomically) before sending."""
        return self._state.take_changes()

    def drain_warnings(self) -> list[CryptoWarning]:
        """Warnings since the last call (each was also logged); bounded."""
        warnings = list(self._state.warnings)
        self._state.warnings.clear()
        return warnings

    # -- identity --------------------------------------------------------------------
    @property
    def user_id(self) -> str:
        return self._state.account.user_id

    @property
    def device_id(self) -> str:
        return self._state.account.device_id

    @property
    def identity_keys(self) -> IdentityKeys:
        return self._state.account.identity_keys

    # -- sync in ---------------------------------------------------------------------
    def update_tracked_users(self, user_ids: Iterable[str]) -> None:
        """Track the device lists of these users (members of encrypted rooms we share)."""
        _tracking.track(self._state, user_ids)

    def receive_sync_changes(
        self,
        to_device_events: Iterable[Mapping[str, Any]],
        changed_users: Iterable[str] = (),
        left_users: Iterable[str] = (),
        one_time_key_counts: Mapping[str, int] | None = None,
        unused_fallback_key_types: Iterable[str] | None = None,
        *,
        now_ms: int,
    ) -> list[DecryptedToDevice]:
        """Take one sync batch's crypto data; the to-device events that decrypted.

        ``m.room_key`` / ``m.forwarded_room_key`` are applied here and, when accepted,
        returned without their ``session_key`` (their ``room_id``/``session_id`` say which
        waiting events to retry); events that fail to decrypt, fail the payload checks or
        carry a refused key are dropped with a warning. ``None`` for the key counts means
        "the server did not say".

        A user in ``left_users`` is no longer tracked, but its pinned device keys are
        kept: forgetting them would let a server swap a device's keys while we share no
        room and have us trust the new ones on the next first use.
        """
        state = self._state
        for user_id in left_users:
            state.untrack(user_id)
        _tracking.mark_changed(state, changed_users)
        decrypted = []
        requests: list[tuple[str, dict[str, Any]]] = []
        for event in to_device_events:  # one sync batch: the server bounds it (~100)
            if not isinstance(event, Mapping):
                state.warn(WarningKind.TO_DEVICE_MALFORMED, "to-device event is not an object")
                continue
            sender, content = event.get("sender"), event.get("content")
            if not isinstance(sender, str) or not isinstance(content, dict):
                state.warn(WarningKind.TO_DEVICE_MALFORMED, "to-device without sender/content")
                continue
            event_type = event.get("type")
            if event_type == "m.room_key_request":
                requests.append((sender, content))
            elif event_type == "m.room.encrypted":
                result = decrypt_to_device(state, sender, content, now_ms)
                if result is not None:
                    result = self._handle_decrypted(result)
                if result is not None:
                    decrypted.append(result)
        cancelled = {(s, c.get("request_id")) for s, c in requests if c.get("action") != "request"}
        for sender, content in requests:
            if (sender, content.get("request_id")) not in cancelled:
                _key_requests.answer(state, sender, content, now_ms)
        if one_time_key_counts is not None or unused_fallback_key_types is not None:
            count = None
            if one_time_key_counts is not None:
                value = one_time_key_counts.get(SIGNED_CURVE25519, 0)
                count = value if isinstance(value, int) and value >= 0 else 0
            fallback_used = unused_fallback_key_types is not None and (
                SIGNED_CURVE25519 not in set(unused_fallback_key_types)
            )
            self._ensure_upload(count, fallback_used=fallback_used)
        return decrypted

    def _handle_decrypted(self, event: DecryptedToDevice) -> DecryptedToDevice | None:
        """Apply a room key; what to hand the caller (``None``: a refused room key).

        A room key is handed out without its ``session_key``: the caller needs the room
        and session id (to retry events that waited for it), never the key itself.
        """
        state = self._state
        if event.event_type == "m.room_key":
            room_id = _megolm.add_room_key(state, event)
            settled = (room_id, event.content["session_id"]) if room_id is not None else None
        elif event.event_type == "m.forwarded_room_key":
            settled = _megolm.add_forwarded_key(state, event)
        else:
            return event
        if settled is None:
            return None
        _key_requests.settle(state, *settled)
        redacted = {k: v for k, v in event.content.items() if k != "session_key"}
        return attrs.evolve(event, content=redacted)

    def _ensure_upload(self, server_count: int | None, *, fallback_used: bool) -> None:
        state = self._state
        if _requests.find(state, Purpose.UPLOAD):
            return  # its answer carries the new count
        body = state.account.keys_to_upload(server_count, fallback_used)
        if body:
            state.account_changed()
            _requests.add(state, RequestKind.KEYS_UPLOAD, body, Purpose.UPLOAD)

    # -- requests out ----------------------------------------------------------------
    def outgoing_requests(self, *, now_ms: int | None = None) -> list[OutgoingRequest]:
        """Every request waiting to be sent: uploads, queries, claims, then to-device.

        Also starts a device-list query for dirty tracked users and, when ``now_ms`` is
        given, the replacement of wedged Olm sessions (claim, then an ``m.dummy``).
        """
        state = self._state
        _tracking.ensure_query(state)
        if now_ms is not None:
            self._unwedge(now_ms)
        return _requests.ordered(state)

    def _unwedge(self, now_ms: int) -> None:
        """Start a new Olm session with each device whose session stopped decrypting."""
        state = self._state
        devices = []
        for key, (user_id, device_id, _) in list(state.wedged.items()):
            del state.wedged[key]
            last = state.unwedged_at.get(key)
            device = state.devices(user_id).get(device_id)
            if device is None or not device.usable:
                continue
            if last is not None and now_ms - last < UNWEDGE_INTERVAL_MS:
                continue
            state.unwedged_at[key] = now_ms
            devices.append(device)
        if devices and not _requests.find(state, Purpose.CLAIM_FOR_UNWEDGE):
            _tracking.add_claim(state, devices, Purpose.CLAIM_FOR_UNWEDGE, now_ms)

    def mark_request_sent(self, request_id: str, response: Mapping[str, Any]) -> None:
        """The server answered ``request_id`` with ``response`` (its JSON body).

        Unknown ids are ignored, so marking twice (or after a reload) is harmless.
        """
        state = self._state
        record = state.requests.get(request_id)
        if record is None:
            logger.debug("crypto_request_unknown", request_id=request_id)
            return
        state.remove_request(request_id)
        response = dict(response) if isinstance(response, Mapping) else {}
        purpose = Purpose(record.data["purpose"])
        if purpose is Purpose.UPLOAD:
            state.account.mark_published()
            state.account_changed()
        elif purpose is Purpose.QUERY:
            _tracking.handle_query(state, record, response)
        elif purpose in (Purpose.CLAIM_FOR_SHARE, Purpose.CLAIM_FOR_UNWEDGE):
            got = _tracking.handle_claim(state, record, response)
            if purpose is Purpose.CLAIM_FOR_UNWEDGE and got:
                now_ms = record.data["created_ms"]
                messages = {
                    d.user_id: {d.device_id: encrypt_for_device(state, d, "m.dummy", {}, now_ms)}
                    for d in got
                }
                _requests.add_to_device(state, "m.room.encrypted", messages, Purpose.DUMMY)
        elif purpose is Purpose.ROOM_KEY:
            _sharing.room_key_sent(state, record)

    def mark_request_failed(self, request_id: str, *, now_ms: int) -> None:
        """The server refused ``request_id`` for good (an error a retry will not fix).

        The request is dropped, so it does not come back in a loop: a claim's devices are
        left alone for an hour; a room-key send's devices are offered the key again on the
        next share; a query's users count as queried until their next device-list change;
        an upload's keys stay unpublished and go out again after the next sync's counts;
        a key request may be made again.
        """
        state = self._state
        record = state.requests.get(request_id)
        if record is None:
            return
        state.remove_request(request_id)
        purpose = Purpose(record.data["purpose"])
        logger.warning("crypto_request_failed", request_id=request_id, purpose=purpose.value)
        if purpose in (Purpose.CLAIM_FOR_SHARE, Purpose.CLAIM_FOR_UNWEDGE):
            for user_id, devices in record.data["body"]["one_time_keys"].items():
                for device_id in devices:
                    state.claim_failures[device_key(user_id, device_id)] = now_ms
        elif purpose is Purpose.QUERY:
            for user_id, seq in record.data["users"].items():
                if state.tracked.get(user_id) == seq:
                    state.set_tracked(user_id, 0)
        elif purpose is Purpose.ROOM_KEY:
            _sharing.room_key_failed(state, record)
        elif purpose is Purpose.KEY_REQUEST:
            state.remove_key_request(record.data["room_id"], record.data["session_id"])

    # -- rooms -----------------------------------------------------------------------
    def share_room_key(
        self,
        room_id: str,
        members: Mapping[str, Membership],
        history_visibility: HistoryVisibility,
        now_ms: int,
        settings: EncryptionSettings = DEFAULT_SETTINGS,
    ) -> list[OutgoingRequest]:
        """The next requests needed before ``encrypt_room_event`` in ``room_id``; ``[]``
        when every recipient has the current session (see ``_sharing`` for the rules).

        ``members`` is every joined and invited member (user id → membership), the bot
        included; nobody else ever gets the key.
        """
        return _sharing.share_room_key(
            self._state,
            room_id,
            {user_id: Membership(m) for user_id, m in members.items()},  # "join" works too
            HistoryVisibility(history_visibility),
            settings,
            now_ms,
        )

    def invalidate_room_session(self, room_id: str) -> None:
        """Start a new session on the next share (e.g. a member left and came back)."""
        outbound = self._state.outbound(room_id)
        if outbound is not None:
            outbound.invalidated = True
            self._state.outbound_changed(outbound)

    def encrypt_room_event(
        self, room_id: str, event_type: str, content: dict[str, Any], now_ms: int
    ) -> dict[str, Any]:
        """The ``m.room.encrypted`` content for an event; ``m.relates_to`` stays in clear.

        Raises :class:`RoomKeyNotSharedError` when there is no current session (none
        yet, or it is past its rotation period): call :meth:`share_room_key` first.
        """
        return _megolm.encrypt(self._state, room_id, event_type, content, now_ms)

    def decrypt_room_event(self, room_id: str, event: Mapping[str, Any]) -> DecryptedEvent:
        """Decrypt an ``m.room.encrypted`` room event (the whole event, as from sync).

        Raises a :class:`DecryptionError` subclass: :class:`MissingSessionError` (request
        the key and retry later), :class:`ReplayError`, :class:`RoomMismatchError`,
        :class:`SenderMismatchError`, :class:`BadCiphertextError`,
        :class:`EventFormatError`, :class:`UnsupportedAlgorithmError`.
        """
        return _megolm.decrypt(self._state, room_id, dict(event))

    def request_room_key(
        self,
        room_id: str,
        session_id: str,
        *,
        sender: str,
        sender_key: str | None = None,
        sender_device_id: str | None = None,
    ) -> OutgoingRequest | None:
        """Ask for a missing session (the fields of a :class:`MissingSessionError`).

        ``None`` when a request for it is already open; it is cancelled when the key
        arrives.
        """
        return _key_requests.request_key(
            self._state, room_id, session_id, sender, sender_key, sender_device_id
        )

    def cancel_room_key_request(self, room_id: str, session_id: str) -> None:
        """Give up on a key request (e.g. the caller's pending bound expired)."""
        _key_requests.settle(self._state, room_id, session_id)

    def has_room_key(self, room_id: str, session_id: str) -> bool:
        """Whether we hold this Megolm session (so a pending event may now decrypt)."""
        return self._state.inbound(room_id, session_id) is not None

    def device_keys_changed(self, user_id: str, device_id: str) -> bool:
        """Whether the server listed other keys for this pinned device (it gets no keys)."""
        device = self._state.devices(user_id).get(device_id)
        return device is not None and device.keys_changed

    def known_devices(self, user_id: str) -> list[str]:
        """The ids of the usable devices we know for ``user_id``."""
        return sorted(d.device_id for d in self._state.devices(user_id).values() if d.usable)
