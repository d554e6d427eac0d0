"""Megolm: room keys in, room events out and in.

Decryption checks, in order: the content is well formed; we hold the session (else
:class:`MissingSessionError`, which carries what a key request needs); the event's sender
is the user who gave us the session; the ciphertext verifies; the message index was not
used before by another event (replay protection, kept durably as (session, index) →
(event id, timestamp)); the plaintext names this room. ``m.relates_to`` is outside the
ciphertext (spec: so servers can aggregate edits and threads) and is put back into the
decrypted content.
"""

from __future__ import annotations

import json
from typing import Any

import vodozemac

from ._errors import (
    BadCiphertextError,
    EventFormatError,
    MissingSessionError,
    ReplayError,
    RoomKeyNotSharedError,
    RoomMismatchError,
    SenderMismatchError,
    UnsupportedAlgorithmError,
)
from ._sessions import InboundSession, OutboundSession
from ._state import State
from ._store import ReplayRecord
from ._types import (
    MEGOLM_ALGORITHM,
    DecryptedEvent,
    DecryptedToDevice,
    EncryptionSettings,
    HistoryVisibility,
    SenderTrust,
    WarningKind,
)

#: A Megolm ciphertext larger than this is refused (an event is at most 64 KiB).
MAX_CIPHERTEXT_CHARS = 96 * 1024
RELATES_TO = "m.relates_to"


def _str_field(content: dict[str, Any], name: str, max_len: int = 255) -> str | None:
    value = content.get(name)
    return value if isinstance(value, str) and 0 < len(value) <= max_len else None


def store_inbound(state: State, new: InboundSession) -> bool:
    """Keep ``new`` unless we hold a session as good (same sender, no later first index)."""
    existing = state.inbound(new.room_id, new.session_id)
    if existing is not None:
        if existing.sender_key != new.sender_key:
            return False
        better_index = new.session.first_known_index < existing.session.first_known_index
        if not better_index and not (existing.forwarded and not new.forwarded):
            return False
        new.shared_with = existing.shared_with
    state.inbound_changed(new)
    return True


def _open(
    state: State, kind: WarningKind, session_key: str, session_id: str, sender: str
) -> vodozemac.InboundGroupSession | None:
    """The session in a room key (``kind`` says which: a forward carries an export)."""
    try:
        if kind is WarningKind.FORWARDED_KEY_REJECTED:
            key = vodozemac.ExportedSessionKey(session_key)
            session = vodozemac.InboundGroupSession.import_session(key)
        else:
            session = vodozemac.InboundGroupSession(vodozemac.SessionKey(session_key))
    except ValueError:
        state.warn(kind, "invalid session key", sender)
        return None
    if session.session_id != session_id:
        state.warn(kind, "session id does not match the key", sender)
        return None
    return session


def add_room_key(state: State, event: DecryptedToDevice) -> str | None:
    """Accept an ``m.room_key``; the (room id, session id) it gave us, or ``None``."""
    c = event.content
    room_id, session_id = _str_field(c, "room_id"), _str_field(c, "session_id")
    session_key = _str_field(c, "session_key", 4096)
    if c.get("algorithm") != MEGOLM_ALGORITHM or not (room_id and session_id and session_key):
        state.warn(WarningKind.ROOM_KEY_REJECTED, "malformed m.room_key", event.sender)
        return None
    session = _open(state, WarningKind.ROOM_KEY_REJECTED, session_key, session_id, event.sender)
    if session is None:
        return None
    inbound = InboundSession(room_id, event.sender_key, session, event.sender_ed25519, event.sender)
    if not store_inbound(state, inbound):
        return None
    return room_id


def add_forwarded_key(state: State, event: DecryptedToDevice) -> tuple[str, str] | None:
    """Accept an ``m.forwarded_room_key`` we asked for, from a device allowed to send it.

    Allowed: one of our own user's pinned devices, or the device that created the session
    (its Olm key is the session's sender key). Anything unrequested is dropped: accepting
    unasked keys would let anyone plant sessions we then attribute to someone else.
    """
    c = event.content
    room_id, session_id = _str_field(c, "room_id"), _str_field(c, "session_id")
    sender_key = _str_field(c, "sender_key", 64)
    claimed = _str_field(c, "sender_claimed_ed25519_key", 64)
    session_key = _str_field(c, "session_key", 4096)
    if c.get("algorithm") != MEGOLM_ALGORITHM or not (
        room_id and session_id and sender_key and claimed and session_key
    ):
        state.warn(WarningKind.FORWARDED_KEY_REJECTED, "malformed forwarded key", event.sender)
        return None
    if (room_id, session_id) not in state.key_requests:
        state.warn(WarningKind.FORWARDED_KEY_REJECTED, "we did not ask for it", event.sender)
        return None
    from_creator = event.sender_key == sender_key
    own_device = event.sender == state.account.user_id and event.sender_device_id is not None
    if not (from_creator or own_device):
        state.warn(WarningKind.FORWARDED_KEY_REJECTED, "not from a trusted device", event.sender)
        return None
    session = _open(
        state, WarningKind.FORWARDED_KEY_REJECTED, session_key, session_id, event.sender
    )
    if session is None:
        return None
    inbound = InboundSession(
        room_id,
        sender_key,
        session,
        claimed,
        event.sender if from_creator else None,
        forwarded=not from_creator,
    )
    if not store_inbound(state, inbound):
        return None
    return room_id, session_id


def new_outbound(
    state: State,
    room_id: str,
    settings: EncryptionSettings,
    visibility: HistoryVisibility,
    now_ms: int,
) -> OutboundSession:
    """A fresh outbound session, and its inbound twin so we can read our own messages."""
    session = vodozemac.GroupSession()
    keys = state.account.identity_keys
    inbound = vodozemac.InboundGroupSession(session.session_key)
    state.inbound_changed(
        InboundSession(room_id, keys.curve25519, inbound, keys.ed25519, state.account.user_id)
    )
    outbound = OutboundSession(room_id, session, now_ms, settings, visibility)
    state.outbound_changed(outbound)
    return outbound


def encrypt(
    state: State, room_id: str, event_type: str, content: dict[str, Any], now_ms: int
) -> dict[str, Any]:
    outbound = state.outbound(room_id)
    if outbound is None or outbound.expired(now_ms):
        raise RoomKeyNotSharedError(f"no current room key for {room_id}: share one first")
    plain_content = dict(content)
    relates_to = plain_content.pop(RELATES_TO, None)
    plaintext = json.dumps({"type": event_type, "content": plain_content, "room_id": room_id})
    message = outbound.session.encrypt(plaintext.encode())
    outbound.message_count += 1
    state.outbound_changed(outbound)
    keys = state.account.identity_keys
    encrypted: dict[str, Any] = {
        "algorithm": MEGOLM_ALGORITHM,
        "sender_key": keys.curve25519,
        "ciphertext": message.to_base64(),
        "session_id": outbound.session_id,
        "device_id": state.account.device_id,
    }
    if relates_to is not None:
        encrypted[RELATES_TO] = relates_to
    return encrypted


def decrypt(state: State, room_id: str, event: dict[str, Any]) -> DecryptedEvent:
    content = event.get("content")
    sender, event_id = event.get("sender"), event.get("event_id")
    ts = event.get("origin_server_ts")
    if (
        not isinstance(content, dict)
        or not isinstance(sender, str)
        or not isinstance(event_id, str)
    ):
        raise EventFormatError("event without content, sender or event_id")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise EventFormatError("event without origin_server_ts")
    if content.get("algorithm") != MEGOLM_ALGORITHM:
        raise UnsupportedAlgorithmError(f"algorithm {content.get('algorithm')!r}")
    session_id = _str_field(content, "session_id", 128)
    ciphertext = content.get("ciphertext")
    if session_id is None or not isinstance(ciphertext, str):
        raise EventFormatError("no session_id or ciphertext")
    if len(ciphertext) > MAX_CIPHERTEXT_CHARS:
        raise EventFormatError("ciphertext too large")
    claimed_key = content.get("sender_key")
    claimed_device = content.get("device_id")
    claimed_device = claimed_device if isinstance(claimed_device, str) else None
    session = state.inbound(room_id, session_id)
    if session is None:
        raise MissingSessionError(
            room_id,
            session_id,
            claimed_key if isinstance(claimed_key, str) else None,
            sender,
            claimed_device,
        )
    if isinstance(claimed_key, str) and claimed_key != session.sender_key:
        raise SenderMismatchError("the event's sender_key is not the session's")
    if session.sender_user is not None and session.sender_user != sender:
        raise SenderMismatchError(f"the session belongs to {session.sender_user}, not {sender}")
    try:
        message = vodozemac.MegolmMessage.from_base64(ciphertext)
    except ValueError:
        raise BadCiphertextError("the ciphertext does not decode") from None
    index = message.message_index()
    if index < session.session.first_known_index:
        raise MissingSessionError(
            room_id,
            session_id,
            session.sender_key,
            sender,
            claimed_device,
            session.session.first_known_index,
        )
    try:
        decrypted = session.session.decrypt(message)
    except vodozemac.MegolmDecryptionException:
        raise BadCiphertextError("the ciphertext does not verify or decrypt") from None
    seen = state.replay_entry(room_id, session_id, index)
    if seen is not None and (seen.event_id, seen.origin_server_ts) != (event_id, ts):
        raise ReplayError(f"message index {index} of {session_id} was used by {seen.event_id}")
    try:
        plaintext = json.loads(decrypted.plaintext)
    except ValueError:
        raise EventFormatError("the plaintext is not JSON") from None
    if (
        not isinstance(plaintext, dict)
        or not isinstance(plaintext.get("type"), str)
        or not isinstance(plaintext.get("content"), dict)
    ):
        raise EventFormatError("the plaintext is not an event")
    if plaintext.get("room_id") != room_id:
        raise RoomMismatchError("the plaintext names another room")
    if seen is None:
        state.add_replay_entry(ReplayRecord(room_id, session_id, index, event_id, ts))
    own = state.account
    if sender == own.user_id and session.sender_key == own.identity_keys.curve25519:
        device_id: str | None = own.device_id
    else:
        device = state.device_by_curve(sender, session.sender_key)
        device_id = device.device_id if device is not None else None
    trust = _trust(state, session, sender)
    decrypted_content = dict(plaintext["content"])
    decrypted_content.pop(RELATES_TO, None)
    relates_to = content.get(RELATES_TO)
    if isinstance(relates_to, dict):
        decrypted_content[RELATES_TO] = relates_to
    return DecryptedEvent(
        plaintext["type"],
        decrypted_content,
        room_id,
        sender,
        event_id,
        session_id,
        index,
        session.sender_key,
        device_id,
        trust,
    )


def _trust(state: State, session: InboundSession, sender: str) -> SenderTrust:
    own = state.account
    if sender == own.user_id and session.sender_key == own.identity_keys.curve25519:
        return SenderTrust.PINNED_DEVICE if not session.forwarded else SenderTrust.UNVERIFIED
    device = state.device_by_curve(sender, session.sender_key)
    if device is None:
        return SenderTrust.UNKNOWN_DEVICE
    if session.forwarded or device.keys_changed or device.ed25519 != session.signing_key:
        return SenderTrust.UNVERIFIED
    return SenderTrust.PINNED_DEVICE
