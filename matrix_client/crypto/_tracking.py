"""Device lists (``/keys/query``) and one-time-key claims (``/keys/claim``).

Device lists: the caller names the users whose devices matter (members of encrypted rooms
we share); a user is *dirty* until a query answered for them after their last change
(``device_lists.changed`` in sync). Each change gets a sequence number, so a change that
arrives while a query is in flight keeps the user dirty. A device the server stops listing
is marked deleted (the room sessions it had must rotate); a device whose keys change is
refused (trust on first use, see ``_devices``).

Claims: for a device without an Olm session we claim one of its signed one-time keys,
verify the signature with the device's pinned ed25519 key, and create an outbound Olm
session. A device with no usable key is not asked again for ``CLAIM_RETRY_MS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import vodozemac

from ._devices import Device, parse_device_keys, pin, valid_key
from ._requests import Purpose, add, find
from ._sessions import OlmSession, device_key
from ._signing import verify_signed_json
from ._state import State, newest_use
from ._store import PendingRequestRecord
from ._types import SIGNED_CURVE25519, OutgoingRequest, RequestKind, WarningKind

#: Users per ``/keys/query`` (servers cap the work per request).
MAX_USERS_PER_QUERY = 250
#: Devices of one user we accept from a query (a real user has a handful).
MAX_DEVICES_PER_USER = 500
#: Devices per ``/keys/claim``.
MAX_DEVICES_PER_CLAIM = 250
#: How long a device whose claim found no usable one-time key is left alone.
CLAIM_RETRY_MS = 60 * 60 * 1000


def track(state: State, user_ids: Iterable[str]) -> None:
    for user_id in user_ids:
        if user_id not in state.tracked:
            state.set_tracked(user_id, state.next_seq())


def mark_changed(state: State, user_ids: Iterable[str]) -> None:
    for user_id in user_ids:
        if user_id in state.tracked:
            state.set_tracked(user_id, state.next_seq())


def ensure_query(state: State) -> OutgoingRequest | None:
    """The pending query, or a new one for the dirty users; ``None`` if nobody is dirty."""
    pending = find(state, Purpose.QUERY)
    if pending:
        return None
    dirty = sorted(u for u, seq in state.tracked.items() if seq)[:MAX_USERS_PER_QUERY]
    if not dirty:
        return None
    return add(
        state,
        RequestKind.KEYS_QUERY,
        {"device_keys": {u: [] for u in dirty}},
        Purpose.QUERY,
        users={u: state.tracked[u] for u in dirty},
    )


def handle_query(state: State, record: PendingRequestRecord, response: dict[str, Any]) -> None:
    device_keys = response.get("device_keys")
    if not isinstance(device_keys, dict):
        state.warn(WarningKind.RESPONSE_MALFORMED, "keys/query answer without device_keys")
        device_keys = {}
    for user_id, seq in record.data["users"].items():
        listed = device_keys.get(user_id)
        if isinstance(listed, dict):
            _update_user(state, user_id, listed)
        # A user the server could not answer for keeps the devices we had: no loop.
        if state.tracked.get(user_id) == seq:
            state.set_tracked(user_id, 0)


def _update_user(state: State, user_id: str, listed: dict[str, Any]) -> None:
    own = state.account
    known = state.devices(user_id)
    seen: set[str] = set()
    for device_id, raw in list(listed.items())[:MAX_DEVICES_PER_USER]:
        if user_id == own.user_id and device_id == own.device_id:
            continue  # our own device: we know our keys
        parsed = parse_device_keys(user_id, device_id, raw)
        if isinstance(parsed, str):
            state.warn(WarningKind.DEVICE_KEYS_INVALID, parsed, user_id, device_id)
            continue
        seen.add(device_id)
        existing = known.get(device_id)
        kept, changed = pin(existing, parsed)
        if changed and existing is not None and not existing.keys_changed:
            state.warn(
                WarningKind.DEVICE_KEYS_CHANGED,
                "the server lists other keys for a pinned device; it gets no more keys",
                user_id,
                device_id,
            )
        if kept != existing:
            state.device_changed(kept)
    for device_id, device in list(known.items()):
        if device_id not in seen and not device.deleted:
            state.device_changed(attrs.evolve(device, deleted=True))


def claim_candidates(state: State, devices: Iterable[Device], now_ms: int) -> list[Device]:
    """The devices among ``devices`` that need an Olm session and may be claimed for now."""
    out = []
    for device in devices:
        failed_at = state.claim_failures.get(device_key(device.user_id, device.device_id))
        if failed_at is not None and now_ms - failed_at < CLAIM_RETRY_MS:
            continue
        if not state.olm_sessions(device.curve25519):
            out.append(device)
    return out


def add_claim(
    state: State, devices: list[Device], purpose: Purpose, now_ms: int
) -> OutgoingRequest:
    body: dict[str, dict[str, str]] = {}
    for device in devices[:MAX_DEVICES_PER_CLAIM]:
        body.setdefault(device.user_id, {})[device.device_id] = SIGNED_CURVE25519
    return add(state, RequestKind.KEYS_CLAIM, {"one_time_keys": body}, purpose, created_ms=now_ms)


def handle_claim(
    state: State, record: PendingRequestRecord, response: dict[str, Any]
) -> list[Device]:
    """Create Olm sessions from the claimed keys; the devices that got one."""
    created_ms: int = record.data["created_ms"]
    answered = response.get("one_time_keys")
    if not isinstance(answered, dict):
        state.warn(WarningKind.RESPONSE_MALFORMED, "keys/claim answer without one_time_keys")
        answered = {}
    got = []
    for user_id, device_ids in record.data["body"]["one_time_keys"].items():
        by_device = answered.get(user_id)
        for device_id in device_ids:
            device = state.devices(user_id).get(device_id)
            keys = by_device.get(device_id) if isinstance(by_device, dict) else None
            if device is None or not device.usable:
                continue
            if _session_from_claim(state, device, keys, created_ms):
                got.append(device)
                state.claim_failures.pop(device_key(user_id, device_id), None)
            else:
                state.claim_failures[device_key(user_id, device_id)] = created_ms
    return got


def _session_from_claim(state: State, device: Device, keys: object, now_ms: int) -> bool:
    if not isinstance(keys, dict) or len(keys) != 1:
        return False
    (key_id, signed), *_ = keys.items()
    if not isinstance(key_id, str) or not key_id.startswith(SIGNED_CURVE25519 + ":"):
        return False
    if not isinstance(signed, dict):
        return False
    otk = valid_key(signed.get("key"), vodozemac.Curve25519PublicKey)
    if otk is None or not verify_signed_json(
        signed, device.user_id, device.device_id, device.ed25519
    ):
        state.warn(
            WarningKind.ONE_TIME_KEY_INVALID,
            "claimed one-time key has no valid signature of its device",
            device.user_id,
            device.device_id,
        )
        return False
    session = state.account.account.create_outbound_session(
        vodozemac.Curve25519PublicKey.from_base64(device.curve25519),
        vodozemac.Curve25519PublicKey.from_base64(otk),
    )
    state.olm_session_changed(
        OlmSession(device.curve25519, session, now_ms, newest_use(state, device.curve25519, now_ms))
    )
    return True
