"""Room key requests (``m.room_key_request``), ours and other devices'.

Ours: for an event we cannot decrypt we ask the sender's devices (the one named in the
event, or all of them) and our own other devices, once per session; when the key arrives
(``m.room_key`` or an accepted ``m.forwarded_room_key``) we send a cancellation so the
others stop answering. At most ``MAX_ACTIVE_KEY_REQUESTS`` are open; the oldest give way.

Theirs — our policy: we answer only for a session **we created** and only to a device
that we shared that session with ourselves (same user, device id and curve25519 key), from
the message index it got. Such a device already had the key, so answering leaks nothing:
it recovers a key it lost. Requests from anyone else, including other devices of our own
user (the bot has exactly one device; another device logged in with its credentials is
not to be handed its keys), are ignored and logged.
"""

from __future__ import annotations

from typing import Any

from ._olm import encrypt_for_device
from ._requests import Purpose, add_to_device, find
from ._sessions import device_key
from ._state import State
from ._store import KeyRequestRecord
from ._types import MEGOLM_ALGORITHM, OutgoingRequest, WarningKind

MAX_ACTIVE_KEY_REQUESTS = 256


def request_key(
    state: State,
    room_id: str,
    session_id: str,
    sender: str,
    sender_key: str | None,
    sender_device_id: str | None,
) -> OutgoingRequest | None:
    """Queue a key request; ``None`` if one for this session is already open."""
    if (room_id, session_id) in state.key_requests:
        return None
    while len(state.key_requests) >= MAX_ACTIVE_KEY_REQUESTS:
        oldest = min(state.key_requests.values(), key=lambda r: r.data["seq"])
        settle(state, oldest.room_id, oldest.session_id)
    own = state.account
    body: dict[str, Any] = {"algorithm": MEGOLM_ALGORITHM, "room_id": room_id}
    body["session_id"] = session_id
    if sender_key is not None:
        body["sender_key"] = sender_key
    request_id = f"{state.next_seq()}-{session_id[:16]}"
    content = {
        "action": "request",
        "body": body,
        "request_id": request_id,
        "requesting_device_id": own.device_id,
    }
    targets = {sender: [sender_device_id or "*"], own.user_id: ["*"]}
    if sender == own.user_id:
        targets = {own.user_id: ["*"]}
    messages = {u: dict.fromkeys(devices, content) for u, devices in targets.items()}
    (request,) = add_to_device(
        state,
        "m.room_key_request",
        messages,
        Purpose.KEY_REQUEST,
        room_id=room_id,
        session_id=session_id,
    )
    state.put_key_request(
        KeyRequestRecord(
            room_id,
            session_id,
            {"request_id": request_id, "targets": targets, "seq": state.next_seq()},
        )
    )
    return request


def settle(state: State, room_id: str, session_id: str) -> None:
    """The key arrived (or we gave up): cancel the request where it went out."""
    record = state.key_requests.get((room_id, session_id))
    if record is None:
        return
    state.remove_key_request(room_id, session_id)
    unsent = find(state, Purpose.KEY_REQUEST, room_id=room_id, session_id=session_id)
    for pending in unsent:
        state.remove_request(pending.request_id)
    if unsent:
        return  # it never went out: nothing to cancel
    content = {
        "action": "request_cancellation",
        "request_id": record.data["request_id"],
        "requesting_device_id": state.account.device_id,
    }
    messages = {u: dict.fromkeys(d, content) for u, d in record.data["targets"].items()}
    add_to_device(state, "m.room_key_request", messages, Purpose.KEY_REQUEST_CANCEL)


def answer(state: State, sender: str, content: dict[str, Any], now_ms: int) -> None:
    """Answer one incoming ``m.room_key_request`` if our policy allows it (see module)."""
    own = state.account
    device_id = content.get("requesting_device_id")
    body = content.get("body")
    if content.get("action") != "request" or not isinstance(device_id, str):
        return
    if sender == own.user_id and device_id == own.device_id:
        return  # our own request, echoed to our own device
    if not isinstance(body, dict) or body.get("algorithm") != MEGOLM_ALGORITHM:
        return
    room_id, session_id = body.get("room_id"), body.get("session_id")
    if not isinstance(room_id, str) or not isinstance(session_id, str):
        return
    session = state.inbound(room_id, session_id)
    device = state.devices(sender).get(device_id)
    shared = session.shared_with.get(device_key(sender, device_id)) if session else None
    if (
        session is None
        or session.sender_key != own.identity_keys.curve25519
        or device is None
        or not device.usable
        or shared is None
        or shared[0] != device.curve25519
        or not state.olm_sessions(device.curve25519)
    ):
        state.warn(
            WarningKind.KEY_REQUEST_IGNORED,
            "not a session we shared with that device",
            sender,
            device_id,
        )
        return
    exported = session.session.export_at(max(shared[1], session.session.first_known_index))
    if exported is None:
        return
    forwarded = {
        "algorithm": MEGOLM_ALGORITHM,
        "room_id": room_id,
        "sender_key": session.sender_key,
        "session_id": session_id,
        "session_key": exported.to_base64(),
        "sender_claimed_ed25519_key": session.signing_key,
        "forwarding_curve25519_key_chain": [],
    }
    encrypted = encrypt_for_device(state, device, "m.forwarded_room_key", forwarded, now_ms)
    add_to_device(
        state, "m.room.encrypted", {sender: {device_id: encrypted}}, Purpose.FORWARDED_KEY
    )
