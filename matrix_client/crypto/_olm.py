"""Olm: one-to-one encrypted to-device messages, and the payload checks the spec requires.

Decrypting a to-device ``m.room.encrypted`` event: a pre-key message (type 0) is first
tried on the sessions it matches, and only if none does do we create an inbound session
(which uses up one of our one-time keys); a normal message (type 1) is tried on every
session with that sender key, most recently used first. The plaintext is then checked:
``sender`` is the to-device sender, ``recipient`` and ``recipient_keys.ed25519`` are us,
and ``keys.ed25519`` is the pinned key of the sender's device when we know it. Without
those checks anyone who can send us a to-device event could replay someone else's Olm
message to us, or claim to be another device.

Wedged sessions: when a normal message from a known device decrypts with none of our
sessions (we lost the session it uses, e.g. after restoring an old database), the device
is marked wedged. The next ``outgoing_requests(now_ms=…)`` claims one of its one-time keys,
starts a new outbound session and sends it an ``m.dummy`` over it, so the device's next
messages use the new session; at most once an hour per device. The lost message itself
stays lost (a room key in it is recovered through a key request when its events fail).
"""

from __future__ import annotations

import json
from typing import Any

import vodozemac

from ._devices import Device, valid_key
from ._sessions import OlmSession, device_key
from ._signing import b64decode, b64encode
from ._state import State, newest_use
from ._types import OLM_ALGORITHM, DecryptedToDevice, WarningKind

#: An Olm body larger than this is refused before decoding (to-device events are small).
MAX_OLM_BODY_CHARS = 256 * 1024


def encrypt_for_device(
    state: State, device: Device, event_type: str, content: dict[str, Any], now_ms: int
) -> dict[str, Any]:
    """The ``m.room.encrypted`` content of ``content`` for one device (needs a session)."""
    account = state.account
    sessions = state.olm_sessions(device.curve25519)
    if not sessions:
        raise LookupError("no Olm session with this device")
    session = sessions[0]
    payload = {
        "type": event_type,
        "content": content,
        "sender": account.user_id,
        "sender_device": account.device_id,
        "keys": {"ed25519": account.identity_keys.ed25519},
        "recipient": device.user_id,
        "recipient_keys": {"ed25519": device.ed25519},
    }
    message_type, ciphertext = session.session.encrypt(json.dumps(payload).encode()).to_parts()
    session.last_used_ms = max(session.last_used_ms, now_ms)
    state.olm_session_changed(session)
    return {
        "algorithm": OLM_ALGORITHM,
        "sender_key": account.identity_keys.curve25519,
        "ciphertext": {device.curve25519: {"type": message_type, "body": b64encode(ciphertext)}},
    }


def _decrypt(
    state: State, sender_key: str, message_type: int, body: bytes, now_ms: int
) -> bytes | None:
    message = vodozemac.AnyOlmMessage.from_parts(message_type, body)
    sessions = state.olm_sessions(sender_key)
    pre_key = message.to_pre_key() if message_type == 0 else None
    for session in sessions:
        if pre_key is not None and not session.session.session_matches(pre_key):
            continue
        try:
            plaintext = session.session.decrypt(message)
        except vodozemac.OlmDecryptionException:
            if pre_key is not None:
                return None  # the matching session refused it: do not start another
            continue
        session.last_used_ms = max(session.last_used_ms, now_ms)
        state.olm_session_changed(session)
        return plaintext
    if pre_key is None:
        return None
    try:
        inbound, plaintext = state.account.account.create_inbound_session(
            vodozemac.Curve25519PublicKey.from_base64(sender_key), pre_key
        )
    except vodozemac.SessionCreationException:
        return None
    state.account_changed()  # a one-time key was used up
    state.olm_session_changed(
        OlmSession(sender_key, inbound, now_ms, newest_use(state, sender_key, now_ms))
    )
    return plaintext


def decrypt_to_device(
    state: State, sender: str, content: dict[str, Any], now_ms: int
) -> DecryptedToDevice | None:
    """Decrypt and check one Olm event; ``None`` (with a warning) when it is dropped."""
    own = state.account.identity_keys
    if content.get("algorithm") != OLM_ALGORITHM:
        state.warn(WarningKind.TO_DEVICE_MALFORMED, "not an Olm event", sender)
        return None
    sender_key = valid_key(content.get("sender_key"), vodozemac.Curve25519PublicKey)
    ciphertext = content.get("ciphertext")
    ours = ciphertext.get(own.curve25519) if isinstance(ciphertext, dict) else None
    if sender_key is None or not isinstance(ours, dict):
        state.warn(WarningKind.TO_DEVICE_MALFORMED, "no sender key or not for us", sender)
        return None
    message_type, body = ours.get("type"), ours.get("body")
    if (
        message_type not in (0, 1)
        or isinstance(message_type, bool)
        or not isinstance(body, str)
        or len(body) > MAX_OLM_BODY_CHARS
    ):
        state.warn(WarningKind.TO_DEVICE_MALFORMED, "bad Olm message type or body", sender)
        return None
    try:
        plaintext = _decrypt(state, sender_key, message_type, b64decode(body), now_ms)
    except ValueError:  # bad base64 or a message vodozemac cannot decode
        plaintext = None
    if plaintext is None:
        state.warn(WarningKind.OLM_DECRYPT_FAILED, "no Olm session decrypts it", sender)
        device = state.device_by_curve(sender, sender_key)
        if device is not None and message_type == 1:
            key = device_key(sender, device.device_id)
            state.wedged[key] = (sender, device.device_id, now_ms)
        return None
    return check_payload(state, sender, sender_key, plaintext)


def check_payload(
    state: State, sender: str, sender_key: str, plaintext: bytes
) -> DecryptedToDevice | None:
    """The spec's Olm payload checks; ``None`` (with a warning naming the check) on failure."""
    own = state.account
    try:
        payload = json.loads(plaintext)
    except ValueError:
        payload = None
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("type"), str)
        or not isinstance(payload.get("content"), dict)
    ):
        state.warn(WarningKind.OLM_PAYLOAD_MISMATCH, "payload is not an event", sender)
        return None
    keys = payload.get("keys")
    recipient_keys = payload.get("recipient_keys")
    claimed = keys.get("ed25519") if isinstance(keys, dict) else None
    failed = None
    if payload.get("sender") != sender:
        failed = "payload sender is not the to-device sender"
    elif payload.get("recipient") != own.user_id:
        failed = "payload recipient is not us"
    elif (
        not isinstance(recipient_keys, dict)
        or recipient_keys.get("ed25519") != own.identity_keys.ed25519
    ):
        failed = "payload recipient_keys is not our key"
    elif valid_key(claimed, vodozemac.Ed25519PublicKey) is None:
        failed = "payload keys.ed25519 missing"
    device = state.device_by_curve(sender, sender_key)
    sender_device = payload.get("sender_device")
    if failed is None and device is not None:
        if device.ed25519 != claimed:
            failed = "payload keys.ed25519 is not the sender device's key"
        elif isinstance(sender_device, str) and sender_device != device.device_id:
            failed = "payload sender_device is not the device of the sender key"
    if failed is not None:
        state.warn(WarningKind.OLM_PAYLOAD_MISMATCH, failed, sender)
        return None
    assert isinstance(claimed, str)
    return DecryptedToDevice(
        payload["type"],
        payload["content"],
        sender,
        sender_key,
        claimed,
        device.device_id if device is not None else None,
    )
